"""The small server-rendered web page: sign in, tasks, live events, inbox, settings.

No front-end build step: Jinja2 templates, one stylesheet and one script served from the
package. The page signs in with the user's API token, kept in an HttpOnly, SameSite=Strict
cookie; forms post back here and every action goes through the same services the API uses,
so the same checks apply.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from sse_starlette.sse import EventSourceResponse

from ambient.agent.digest import DigestSetting, EventDigestService
from ambient.bridge.endpoints import (
    EndpointCipher,
    EndpointCreate,
    EndpointError,
    EndpointInputError,
    EndpointPublic,
    Endpoints,
)
from ambient.clients.guard import DestinationGuard
from ambient.clients.notify.targets import TargetError, TargetPolicy
from ambient.domain.push import PushConfig, stored_push_config
from ambient.domain.users import Language, UserCreate, UserSettings
from ambient.history import MAX_ID
from ambient.push import save_push_config
from ambient.status import system_status
from ambient.storage.event_cursor import follow
from ambient.storage.models import User
from ambient.storage.repositories import (
    EventRepository,
    InboxRepository,
    UserExistsError,
    UserRepository,
    user_public,
)
from ambient.task_inputs import ConfigError, InvalidTaskError, TaskError, TaskNotFoundError
from ambient.task_reads import TaskSummary
from ambient.tasks import TaskService
from ambient.wiring import AppState
from ambient.xiaozhi import (
    DeviceAdded,
    DeviceError,
    DeviceRefusedError,
    DeviceService,
    InvalidDeviceError,
    normalize_device_id,
)
from api.deps import SessionDep, StateDep, get_state
from api.i18n import Words, from_accept_language, page_language, templates, words
from api.routers.chat import ChatRequest, chat_turn
from api.routers.events import LastEventId, resume_cursor
from api.security import refuse_cross_site_writes

# Every write of the pages is checked for a cross-site origin (the cookie is SameSite=Strict;
# this is the second lock), on the router so no new form can miss it.
router = APIRouter(include_in_schema=False, dependencies=[Depends(refuse_cross_site_writes)])
HERE = Path(__file__).resolve().parent.parent
STATIC = {"app.css": "text/css", "app.js": "text/javascript", "share.css": "text/css"}
COOKIE = "ambient_token"
POLL_SECONDS = 1.0


def field_errors(
    exc: ValidationError | ConfigError, _: Words, labels: dict[str, str] | None = None
) -> str:
    """Field errors as the form shows them: ``labels`` turns a field into its label.

    The labels are the form's (translated); the rule broken is the model's own English words.
    A service's ConfigError names fields inside the config, as the form's own fields.
    """
    if isinstance(exc, ConfigError):
        errors = [(loc[1:] if loc[:1] == ("config",) else loc, msg) for loc, msg in exc.errors]
    else:
        errors = [(tuple(e["loc"]), e["msg"]) for e in exc.errors(include_url=False)]
    parts = []
    for raw, message in errors:
        loc = [str(p) for p in raw]
        label = (labels or {}).get(loc[0]) if loc else None
        if label is not None:
            label = _(label)
            # Lists come from one line per item: "Pages, line 2".
            if loc[1:2] and loc[1].isdigit():
                label = _("%(label)s, line %(line)d", label=label, line=int(loc[1]) + 1)
            where = label
        else:
            where = ".".join(loc) or _("value")
        parts.append(f"{where}: {message.removeprefix('Value error, ')}")
    return "; ".join(parts)


# The services word their errors for MCP callers ("...; call list_tasks"); a page says what
# happened in its own words and offers its own links instead.
def what_went_wrong(exc: Exception) -> str:
    """The first clause of a service error: what is wrong, without the tool to call next."""
    text = str(exc).split("; ", 1)[0]
    return text[:1].upper() + text[1:]


def task_problem(exc: TaskError, _: Words) -> str:
    if isinstance(exc, TaskNotFoundError):
        return _("That task is not one of yours; it may have been deleted.")
    if isinstance(exc, InvalidTaskError):
        return what_went_wrong(exc)
    return _("Tasks are unavailable right now; try again in a moment.")


def N_(message: str) -> str:
    """Marks a msgid for the catalog where it is translated later (labels, tables)."""
    return message


MONITOR_LABELS = {
    "urls": N_("Pages"),
    "keywords": N_("Keywords"),
    "check_interval_minutes": N_("Every (minutes)"),
    "name": N_("Name (optional)"),
}


async def page_user(request: Request, session: SessionDep) -> User | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    return await UserRepository(session).by_token(token)


MaybeUser = Annotated[User | None, Depends(page_user)]


def _language(request: Request, user: Any) -> Language:
    return page_language(
        request, getattr(user, "language", None), get_state(request).settings.default_language
    )


async def page_words(request: Request, user: MaybeUser) -> Words:
    """What the routers put on a page (flash messages, errors), in the page's language."""
    return words(_language(request, user))


PageWords = Annotated[Words, Depends(page_words)]


def require(user: User | None) -> User:
    if user is None:
        # Browsers follow this to the sign-in form.
        raise HTTPException(status.HTTP_303_SEE_OTHER, headers={"Location": "/signin"})
    return user


def render(
    request: Request, name: str, context: dict[str, Any], code: int = status.HTTP_200_OK
) -> HTMLResponse:
    # The same language the routers' messages were put in: the user in the context (or the
    # browser's, or the server's default).
    language = _language(request, context.get("user"))
    return templates(language).TemplateResponse(request, name, context, status_code=code)


def back(path: str, message: str | None = None) -> RedirectResponse:
    joiner = "&" if "?" in path else "?"
    target = path if message is None else f"{path}{joiner}msg={quote(message)}"
    return RedirectResponse(target, status.HTTP_303_SEE_OTHER)


@router.get("/static/{name}")
async def static(name: str) -> FileResponse:
    if name not in STATIC:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such asset")
    return FileResponse(HERE / "static" / name, media_type=STATIC[name])


@router.get("/", response_class=HTMLResponse)
async def index(request: Request, state: StateDep, user: MaybeUser) -> Response:
    if user is not None:
        return back("/app")
    report = await system_status(state.settings, state.temporal, state.db)
    return render(
        request,
        "index.html",
        {
            "status": report.model_dump(),
            "open_registration": getattr(state.settings, "open_registration", False),
        },
    )


@router.get("/signin", response_class=HTMLResponse)
async def signin_form(request: Request) -> HTMLResponse:
    return render(request, "signin.html", {"error": None})


@router.post("/signin")
async def signin(
    request: Request, session: SessionDep, _: PageWords, token: Annotated[str, Form()] = ""
) -> Response:
    user = await UserRepository(session).by_token(token.strip()) if token.strip() else None
    if user is None:
        return render(
            request,
            "signin.html",
            {"error": _("That token is not valid. Use the token printed at registration.")},
            status.HTTP_401_UNAUTHORIZED,
        )
    response = back("/app")
    _sign_in(response, request, token.strip())
    return response


def _sign_in(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        max_age=30 * 24 * 3600,
    )


@router.get("/register", response_class=HTMLResponse)
async def register_form(request: Request, state: StateDep) -> Response:
    if not state.settings.open_registration:
        return render(request, "register.html", {"closed": True}, status.HTTP_404_NOT_FOUND)
    return render(request, "register.html", {"closed": False, "error": None})


@router.post("/register")
async def register(
    request: Request,
    state: StateDep,
    session: SessionDep,
    _: PageWords,
    name: Annotated[str, Form()] = "",
    email: Annotated[str, Form()] = "",
) -> Response:
    """Open registration (AMBIENT_OPEN_REGISTRATION): a member, signed in at once.

    The new user's language is the one their browser asks for, if zh or en; otherwise it is
    left unchosen and follows AMBIENT_DEFAULT_LANGUAGE.
    """
    if not state.settings.open_registration:
        return render(request, "register.html", {"closed": True}, status.HTTP_404_NOT_FOUND)
    asked = from_accept_language(request.headers.get("accept-language"))
    try:
        data = UserCreate.model_validate(
            {"name": name.strip(), "email": email.strip() or None, "language": asked}
        )
        user, token = await UserRepository(session).create(data, actor="open-registration")
    except ValidationError as exc:
        error = field_errors(exc, _)
    except UserExistsError:
        error = _("name: %(name)s is taken", name=repr(name.strip()))
    else:
        await session.commit()
        response = render(request, "registered.html", {"user": user, "token": token})
        _sign_in(response, request, token)
        return response
    return render(
        request,
        "register.html",
        {"closed": False, "error": error},
        status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


@router.post("/signout")
async def signout() -> Response:
    response = back("/")
    response.delete_cookie(COOKIE)
    return response


@router.get("/app", response_class=HTMLResponse)
async def dashboard(
    request: Request, state: StateDep, session: SessionDep, user: MaybeUser, _: PageWords
) -> HTMLResponse:
    me = require(user)
    tasks_error = None
    tasks: list[TaskSummary] = []
    try:
        tasks = list(await TaskService(state.temporal, state.settings, state.db).list(me.name))
    except Exception:  # Temporal down must not take the page down: say so instead.
        tasks_error = _("Tasks are unavailable right now; your events and inbox below still work.")
    events = await EventRepository(session).list(user=me.name, limit=20)
    inbox = await InboxRepository(session).list(me.name, limit=20, unread_only=False)
    return render(
        request,
        "app.html",
        {
            "user": me,
            "tasks": tasks,
            "tasks_error": tasks_error,
            "events": events,
            "last_event_id": max((e.id for e in events), default=0),
            "inbox": inbox,
            "msg": request.query_params.get("msg"),
        },
    )


def _lines(text: str) -> list[str]:
    return [part.strip() for part in text.replace(",", "\n").splitlines() if part.strip()]


@router.post("/app/tasks")
async def create_web_monitor(
    request: Request,
    state: StateDep,
    user: MaybeUser,
    _: PageWords,
    urls: Annotated[str, Form()] = "",
    keywords: Annotated[str, Form()] = "",
    interval: Annotated[str, Form()] = "30",
    name: Annotated[str, Form()] = "",
) -> Response:
    me = require(user)
    try:
        minutes: float | str = float(interval)
    except ValueError:
        minutes = interval  # let the config model name the field
    config: dict[str, Any] = {
        "urls": _lines(urls),
        "keywords": _lines(keywords),
        "check_interval_minutes": minutes,
    }
    try:
        ref = await TaskService(state.temporal, state.settings, state.db).create(
            me.name, "web_monitor", config, name.strip() or None
        )
    except ConfigError as exc:
        return back("/app", _("Not created: %(why)s", why=field_errors(exc, _, MONITOR_LABELS)))
    except TaskError as exc:
        return back("/app", _("Not created: %(why)s", why=task_problem(exc, _)))
    if ref.created:
        return back("/app", _("Created %(task)s", task=ref.task_id))
    return back("/app", _("Exists: %(task)s", task=ref.task_id))


# The task buttons and states as the pages name them (the values stay the API's).
TASK_ACTIONS = {
    "pause": N_("pause"),
    "resume": N_("resume"),
    "trigger": N_("trigger"),
    "delete": N_("delete"),
}
ACTIONS = set(TASK_ACTIONS)
TASK_STATES = {
    "active": N_("active"),
    "paused": N_("paused"),
    "stopped": N_("stopped"),
}


@router.post("/app/tasks/action")
async def task_action(
    state: StateDep,
    user: MaybeUser,
    _: PageWords,
    task_id: Annotated[str, Form()],
    action: Annotated[str, Form()],
) -> Response:
    me = require(user)
    if action not in ACTIONS:
        return back("/app", _("Unknown action %(action)s", action=repr(action)))
    service = TaskService(state.temporal, state.settings, state.db)
    try:
        ref = await getattr(service, action)(me.name, task_id)
    except TaskError as exc:
        return back("/app", task_problem(exc, _))
    return back(
        "/app",
        _(
            "%(action)s: %(task)s is %(state)s",
            action=_(TASK_ACTIONS[action]),
            task=ref.task_id,
            state=_(TASK_STATES.get(ref.state.value, ref.state.value)),
        ),
    )


@router.get("/app/task", response_class=HTMLResponse)
async def task_detail(
    request: Request,
    state: StateDep,
    user: MaybeUser,
    _: PageWords,
    id: Annotated[str, Query(max_length=255)],
) -> Response:
    me = require(user)
    try:
        task = await TaskService(state.temporal, state.settings, state.db).get(me.name, id)
    except TaskError as exc:
        return back("/app", task_problem(exc, _))
    return render(
        request,
        "task.html",
        {"user": me, "task": task, "detail": json.dumps(task.detail, indent=2, default=str)},
    )


@router.post("/app/inbox/read")
async def inbox_read(
    session: SessionDep, user: MaybeUser, message_id: Annotated[int, Form()]
) -> Response:
    me = require(user)
    await InboxRepository(session).mark_read(me.name, message_id)
    await session.commit()
    return back("/app")


@router.get("/app/events/stream")
async def event_stream(
    request: Request,
    state: StateDep,
    user: MaybeUser,
    after_id: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    last_event_id: LastEventId = None,
) -> EventSourceResponse:
    """The caller's new events as server-sent events (EventSource sends the cookie, and the
    last event's id when it reconnects: late commits and a dropped connection lose none)."""
    name = require(user).name
    cursor = resume_cursor(after_id, last_event_id)

    async def events() -> AsyncIterator[dict[str, str]]:
        async for row, token in follow(
            state.db, cursor, user=name, stopped=request.is_disconnected, poll_seconds=POLL_SECONDS
        ):
            yield {
                "id": token,
                "event": "ambient",
                "data": json.dumps(
                    {
                        "id": row.id,
                        "kind": row.kind,
                        "task": row.task,
                        "created_at": row.created_at.isoformat(),
                        "payload": row.payload,
                    },
                    ensure_ascii=False,
                    default=str,
                ),
            }

    return EventSourceResponse(events())


@router.post("/app/chat")
async def chat(body: ChatRequest, state: StateDep, user: MaybeUser) -> Response:
    """The chat box: the same turn as POST /chat, signed in by the page's cookie."""
    return await chat_turn(body, require(user), state)


async def _settings_page(
    request: Request,
    state: AppState,
    me: User,
    *,
    errors: str | None = None,
    added: DeviceAdded | None = None,
    code: int = status.HTTP_200_OK,
) -> HTMLResponse:
    try:
        digest: DigestSetting | None = await EventDigestService(state.temporal, state.settings).get(
            me.name
        )
    except Exception:  # Temporal down: the rest of the settings still work
        digest = None
    return render(
        request,
        "settings.html",
        {
            "user": user_public(me),
            "push": stored_push_config(me.push_config),
            "digest": digest,
            # Through the same services as the API: they decide what the caller sees.
            "devices": await DeviceService(state.db).list(me.name),
            "endpoints": await _endpoint_list(state, me),
            "endpoint_states": ENDPOINT_STATES,
            "added": added,
            "languages": LANGUAGE_NAMES,
            "push_kinds": PUSH_KINDS,
            "default_language": LANGUAGE_NAMES[state.settings.default_language],
            "errors": errors,
            "msg": None if errors else request.query_params.get("msg"),
        },
        status.HTTP_422_UNPROCESSABLE_CONTENT if errors and code == status.HTTP_200_OK else code,
    )


# Each language named in itself, as a language menu does.
LANGUAGE_NAMES = {Language.ZH: "中文", Language.EN: "English"}


@router.get("/app/settings", response_class=HTMLResponse)
async def settings_form(request: Request, state: StateDep, user: MaybeUser) -> Response:
    return await _settings_page(request, state, require(user))


@router.post("/app/digest")
async def save_digest(
    state: StateDep,
    user: MaybeUser,
    _: PageWords,
    enabled: Annotated[str, Form()] = "",
    every_minutes: Annotated[str, Form()] = "15",
) -> Response:
    me = require(user)
    try:
        setting = DigestSetting.model_validate(
            {"enabled": enabled == "on", "every_minutes": every_minutes or "15"}
        )
    except ValidationError as exc:
        return back("/app/settings", field_errors(exc, _))
    await EventDigestService(state.temporal, state.settings).set(me.name, setting)
    return back(
        "/app/settings", _("Assistant digest on") if setting.enabled else _("Assistant digest off")
    )


@router.post("/app/settings")
async def save_settings(
    request: Request, state: StateDep, session: SessionDep, user: MaybeUser, _: PageWords
) -> Response:
    me = require(user)
    form = await request.form()
    fields = {
        key: str(form.get(key, "")).strip()
        for key in (
            "email",
            "phone",
            "assistant_name",
            "voiceprint_id",
            "timezone",
            "briefing_prepare_at",
            "briefing_window_start",
            "briefing_window_end",
            "language",
        )
    }
    data: dict[str, Any] = {key: value for key, value in fields.items() if value}
    wake_words = _lines(str(form.get("wake_words", "")).replace(",", "\n"))
    if wake_words:
        data["wake_words"] = wake_words
    try:
        # Permissions are not settings: only an admin grants them, through the users API.
        parsed = UserSettings.model_validate(data)
    except ValidationError as exc:
        return await _settings_page(request, state, me, errors=field_errors(exc, _))
    await UserRepository(session).update(me, parsed)
    await session.commit()
    # Said in the language just chosen: the next page speaks it too.
    _ = words(_language(request, me))
    return back("/app/settings", _("Settings saved"))


@router.post("/app/push")
async def save_push(
    request: Request,
    state: StateDep,
    session: SessionDep,
    user: MaybeUser,
    _: PageWords,
) -> Response:
    me = require(user)
    form = await request.form()
    types, targets = form.getlist("type"), form.getlist("target")
    kinds = form.getlist("kinds")
    channels: list[dict[str, Any]] = []
    for index, (kind, target) in enumerate(zip(types, targets, strict=False)):
        if not str(kind):
            continue
        chosen = [k.split(":", 1)[1] for k in map(str, kinds) if k.startswith(f"{index}:")]
        channel: dict[str, Any] = {"type": str(kind), "target": str(target).strip()}
        if chosen:
            channel["kinds"] = chosen
        channels.append(channel)
    try:
        config = PushConfig.model_validate({"channels": channels})
        policy = state.channels.policy or TargetPolicy.from_settings(state.settings)
        await save_push_config(session, me, config, policy)
    except ValidationError as exc:
        return await _settings_page(request, state, me, errors=field_errors(exc, _))
    except TargetError as exc:
        return await _settings_page(request, state, me, errors=str(exc))
    await session.commit()
    return back("/app/settings", _("Push channels saved"))


# What each push channel carries, as the settings page names it (values stay the API's).
PUSH_KINDS = (N_("briefing"), N_("watch"), N_("remediation"))


# --- 小智 devices: through DeviceService, which checks who may do what ---------------------


@router.post("/app/xiaozhi/devices")
async def add_device(
    request: Request,
    state: StateDep,
    user: MaybeUser,
    _: PageWords,
    device_id: Annotated[str, Form()] = "",
) -> Response:
    """Register one of your 小智 devices; the page shows its token once (never in a URL)."""
    me = require(user)
    try:
        normalize_device_id(device_id)
    except InvalidDeviceError:
        return await _settings_page(request, state, me, errors=_(DEVICE_ID_RULE))
    try:
        added = await DeviceService(state.db).add(me.name, me.name, device_id)
    except InvalidDeviceError:
        # The id is well formed (checked above), so it is taken.
        return await _settings_page(
            request,
            state,
            me,
            errors=_(
                "Device %(device)s is already registered; remove it first.",
                device=device_id.strip().lower(),
            ),
        )
    except DeviceRefusedError:
        return await _settings_page(
            request, state, me, errors=_("You may register devices only for yourself.")
        )
    return await _settings_page(request, state, me, added=added, code=status.HTTP_201_CREATED)


DEVICE_ID_RULE = N_(
    "Device id: the MAC xiaozhi-server sends as device-id (e.g. aa:bb:cc:dd:ee:ff), "
    "1-64 letters, digits, ':', '_', '.', '-'."
)


@router.post("/app/xiaozhi/devices/remove")
async def remove_device(
    state: StateDep, user: MaybeUser, _: PageWords, device: Annotated[str, Form()] = ""
) -> Response:
    me = require(user)
    try:
        removed = await DeviceService(state.db).remove(me.name, device)
    except DeviceError:
        return back("/app/settings", _("No device %(device)s among yours.", device=device))
    return back(
        "/app/settings",
        _("Removed %(device)s: its token no longer works.", device=removed.device_id),
    )


@router.post("/app/xiaozhi/devices/allow")
async def allow_device(
    state: StateDep,
    user: MaybeUser,
    _: PageWords,
    device: Annotated[str, Form()] = "",
    allowed: Annotated[str, Form()] = "on",
) -> Response:
    """Let a device (anyone's) answer you by your voiceprint, or stop it: your own consent."""
    me = require(user)
    yes = allowed != "off"
    try:
        view = await DeviceService(state.db).allow(me.name, device, allowed=yes)
    except DeviceError:
        return back("/app/settings", _("There is no device %(device)s.", device=device))
    if yes:
        message = _("%(device)s may now answer you by your voiceprint.", device=view.device_id)
    else:
        message = _("%(device)s no longer answers you.", device=view.device_id)
    return back("/app/settings", message)


# --- xiaozhi.me 接入点: through the bridge's Endpoints service (owner or admin) -------------

ENDPOINT_STATES = {"connected": N_("connected"), "retrying": N_("retrying")}
ENDPOINT_LABELS = {"url": N_("接入点 URL"), "user": N_("User")}


def _endpoints(state: AppState, session: AsyncSession) -> Endpoints:
    cipher = EndpointCipher(state.settings.secret_key.get_secret_value())
    return Endpoints(session, cipher, DestinationGuard(state.settings.fetch_allow_cidrs))


async def _endpoint_list(state: AppState, me: User) -> list[EndpointPublic]:
    async with state.db.session() as session:
        return await _endpoints(state, session).list(me)


@router.post("/app/xiaozhi/endpoints")
async def add_endpoint(
    request: Request,
    state: StateDep,
    session: SessionDep,
    user: MaybeUser,
    _: PageWords,
    url: Annotated[str, Form()] = "",
    verbatim: Annotated[str, Form()] = "",
) -> Response:
    """Register a 接入点 URL for yourself. Its token is never shown again: the page answers
    with a redirect naming the masked URL, so the token is in no page, URL or history."""
    me = require(user)
    try:
        data = EndpointCreate(user=me.name, url=url, verbatim=verbatim == "on")
        added = await _endpoints(state, session).add(me, data)
    except ValidationError as exc:
        errors = field_errors(exc, _, ENDPOINT_LABELS)
        return await _settings_page(request, state, me, errors=errors)
    except EndpointInputError as exc:
        label = _(ENDPOINT_LABELS.get(exc.field, exc.field))
        return await _settings_page(request, state, me, errors=f"{label}: {exc.message}")
    except EndpointError:
        return await _settings_page(
            request, state, me, errors=_("You may register endpoints only for yourself.")
        )
    return back(
        "/app/settings",
        _("Added %(url)s: it is dialed within a few seconds.", url=added.url),
    )


@router.post("/app/xiaozhi/endpoints/remove")
async def remove_endpoint(
    state: StateDep,
    session: SessionDep,
    user: MaybeUser,
    _: PageWords,
    endpoint: Annotated[str, Form()] = "",
) -> Response:
    me = require(user)
    try:
        gone = await _endpoints(state, session).remove(me, int(endpoint))
    except (ValueError, EndpointError):
        return back("/app/settings", _("No endpoint %(id)s among yours.", id=endpoint))
    return back("/app/settings", _("Removed %(url)s: its connection closes.", url=gone.url))
