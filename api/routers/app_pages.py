"""The /app dashboard page family: your tasks (create, steer, detail), inbox, live events, chat.

Every action goes through the same services the API uses (TaskService for tasks), so the
same rules apply; the page only translates their refusals into its own words and labels.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import Form, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sse_starlette.sse import EventSourceResponse

from ambient import no_answer
from ambient.domain.numbers import WHOLE_NUMBER
from ambient.history import EventPublic, event_name
from ambient.refusals import N_, Refusal
from ambient.status import TEMPORAL_NOT_SET_UP, temporal_not_set_up
from ambient.storage.event_cursor import READ_LIMIT, newest_id
from ambient.storage.models import MAX_ID, next_before
from ambient.storage.repositories import EventRepository, InboxRepository
from ambient.watches.inputs import (
    ConfigError,
    InvalidTaskError,
    TaskError,
    TaskNotFoundError,
    WorkerSilentError,
)
from ambient.watches.listing import TaskSummary
from ambient.watches.pauses import wait_said
from ambient.watches.summaries import SAYING, rules_in, summary_said
from api.deps import SessionDep
from api.errors import INPUT_SHOWN
from api.i18n import Words, error_words, in_zone
from api.routers import chat as chat_door
from api.routers.chat import ChatDep, ChatRequest
from api.routers.events import LastEventId, stream
from api.routers.page_words import field_errors, in_words, what_went_wrong, worker_unanswered
from api.routers.pages import (
    FormText,
    Page,
    PageId,
    PageWords,
    UserPage,
    _user_of,
    back,
    page_router,
    page_words,
    render,
)

router = page_router()
TASKS_PER_PAGE = 50
# The inbox a page at a time, newest first (its Older messages link gives the next).
INBOX_PER_PAGE = 20
# A page of the inbox: the messages before this one (a link the page gave, or a form's field).
InboxBefore = Annotated[int | None, Query(ge=1, le=MAX_ID), WHOLE_NUMBER]


def task_problem(exc: TaskError, _: Words) -> str:
    if isinstance(exc, TaskNotFoundError):
        return _("That task is not one of yours; it may have been deleted.")
    if isinstance(exc, ConfigError):  # only a new monitor's form sends a config
        return field_errors(exc, _, MONITOR_LABELS)
    if isinstance(exc, InvalidTaskError):
        return what_went_wrong(exc, _)
    silent = N_(
        "The task's worker did not answer in time (busy or stopped); try again in a moment."
    )
    if isinstance(exc, WorkerSilentError) and exc.sent:  # asked again: done twice
        silent = N_(
            "The task was asked and may still do it (its worker is busy or stopped); check "
            "the task before asking again."
        )
    return worker_unanswered(exc, _, silent) or _(
        "Tasks are unavailable right now; try again in a moment."
    )


async def not_found(request: Request, _: Exception) -> Response:
    """The MCP apps' 404 (their mount at "/" takes every path no API route matched); under
    /app, the pages', on a page."""
    if request.url.path == "/app" or request.url.path.startswith("/app/"):
        return await no_such_page(request)
    said = f"no API path {request.url.path[:INPUT_SHOWN]}; the API's paths are listed at /docs"
    return JSONResponse({"detail": said}, status_code=404)


async def no_such_page(request: Request) -> Response:
    """A mistyped address under /app (the MCP mount's 404): a page saying where pages start."""
    try:
        user = await _user_of(request)
    except (SQLAlchemyError, OSError):  # the database away: the page, as to one signed out
        user = None
    _ = await page_words(request, user)
    path = request.url.path[:INPUT_SHOWN]
    problem = _("There is no page %(path)s; the pages start at /app.", path=path)
    context = {"user": user, "heading": _("No such page"), "problem": problem}
    return render(request, "unavailable.html", context, status.HTTP_404_NOT_FOUND)


MONITOR_LABELS = {
    "urls": N_("Pages"),
    "keywords": N_("Keywords"),
    "check_interval_minutes": N_("Every (minutes)"),
    "name": N_("Name (optional)"),
}


@router.get("/app", response_class=HTMLResponse)
async def dashboard(
    page: Page, session: SessionDep, _: PageWords, inbox_before: InboxBefore = None
) -> Response:
    return await _dashboard(page, session, _, inbox_before=inbox_before)


async def _dashboard(
    page: UserPage,
    session: AsyncSession,
    _: Words,
    *,
    typed: dict[str, str] | None = None,
    problem: str | None = None,
    inbox_before: int | None = None,
) -> Response:
    """The dashboard; after a refused monitor, ``typed`` is its form as sent, shown again;
    ``inbox_before``: the page of the inbox older than that message (the newest otherwise)."""
    tasks_error = None
    tasks: list[TaskSummary] = []
    next_tasks: str | None = None
    # One page of tasks, as list_tasks answers: a user with thousands must still get the page.
    tasks_page = page.request.query_params.get("tasks_page") or None
    name = page.me.name
    try:
        # A deleted task is not listed (its delete says so); list_tasks still shows it stopped.
        # A Temporal that does not answer (hung, not down) held the page blank for 30 s.
        async with asyncio.timeout(no_answer.QUERY_TIMEOUT.total_seconds()):
            listed = await page.state.tasks.list(
                name, page_size=TASKS_PER_PAGE, page_token=tasks_page, without_stopped=True
            )
        tasks, next_tasks = list(listed), listed.next_page_token
    except InvalidTaskError:  # a stale or edited link: start again from the first page
        return back("/app", _("That page of tasks is no longer there; here is the first."))
    except Exception as exc:  # Temporal down must not take the page down: say so instead.
        tasks_error = _(
            TEMPORAL_NOT_SET_UP
            if temporal_not_set_up(exc)
            else N_("Tasks are unavailable right now; your events and inbox below still work.")
        )
    events = await EventRepository(session).list(user=name, limit=20)
    # One more than a page: whether there are older messages is known without counting.
    inbox = await InboxRepository(session).list(
        name, limit=INBOX_PER_PAGE + 1, unread_only=False, before_id=inbox_before
    )
    inbox, older_inbox = inbox[:INBOX_PER_PAGE], next_before(inbox, INBOX_PER_PAGE)
    return page.show(
        "app.html",
        refused=problem,
        tasks=tasks,
        tasks_error=tasks_error,
        next_tasks=next_tasks,
        first_tasks_page=tasks_page is None,
        # Each task's summary in the reader's words (stored in English for the API and the
        # Temporal Web UI).
        summaries={t.task_id: summary_words(t.summary, _) for t in tasks if t.summary},
        events=events,
        event_name=event_name,
        # The live feed goes on from near the newest event, anyone's: from the reader's own
        # last it read through every other user's since (a new user's, from the first). One
        # read's worth below the newest: an event of the reader's with an id below it that
        # commits late (PostgreSQL), or after the list above was read, still comes.
        last_event_id=max(
            max((e.id for e in events), default=0), await newest_id(session) - READ_LIMIT
        ),
        inbox=inbox,
        inbox_before=inbox_before,
        older_inbox=older_inbox,
        typed=typed or {"interval": "30"},
    )


def lines_of(text: str, commas: str = "") -> list[str]:
    """A field's items, one a line (pages: a URL's query may hold commas), or between
    ``commas`` too (keywords: "，" and "、" are the commas a Chinese user types); from a
    ``re:`` item to the line's end is one regular expression (its commas: ``re:\\d{1,3}``)."""
    items: list[str] = []
    for line in text.splitlines():
        found = re.search(f"(?:^|[{re.escape(commas)}])\\s*re:", line) if commas else None
        plain = line[: found.start()] if found else line
        for comma in commas:
            plain = plain.replace(comma, "\n")
        items += [*plain.splitlines(), line[found.end() - 3 :] if found else ""]
    return [item.strip() for item in items if item.strip()]


@router.post("/app/tasks")
async def create_web_monitor(
    page: Page,
    session: SessionDep,
    _: PageWords,
    urls: FormText = "",
    keywords: FormText = "",
    interval: FormText = "30",
    name: FormText = "",
) -> Response:
    # float() also reads "１０", "1_0" and "1e1": only ASCII digits (a decimal point) are read
    # as the number; anything else goes as typed, for the config model to name the field.
    typed_number = re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", interval.strip())
    minutes: float | str = float(typed_number[0]) if typed_number else interval
    config: dict[str, Any] = {
        "urls": lines_of(urls),
        "keywords": lines_of(keywords, ",，、"),
        "check_interval_minutes": minutes,
    }
    try:
        ref = await page.state.tasks.create(
            page.me.name, "web_monitor", config, name.strip() or None
        )
    except TaskError as exc:
        # The form comes back as it was filled in, with what is wrong with it.
        typed = {"urls": urls, "keywords": keywords, "interval": interval, "name": name}
        problem = _("Not created: %(why)s", why=task_problem(exc, _))
        return await _dashboard(page, session, _, typed=typed, problem=problem)
    if ref.created:
        done = _("Created %(task)s", task=ref.task_id)
    else:
        done = _("Exists: %(task)s", task=ref.task_id)
    for more in baseline_said(ref.baseline, _):
        done = _("%(said)s; %(more)s", said=done, more=more)
    return back("/app", done)


def baseline_said(baseline: dict[str, Any] | None, _: Words) -> list[str]:
    """What a new web monitor's first check left to act on: each page it could not read and
    why (or has not read yet); none when it read them all; its first check not over yet."""
    if baseline is None:
        return [_("its first check has not finished yet: its page shows what it finds")]
    pages = baseline.get("urls") or {}
    return [
        _("%(page)s: %(found)s", page=url, found=found_said(seen, _))
        for url, seen in pages.items()
        if seen.get("outcome") in (None, "error")
    ]


# The task buttons and states: the API's values are the msgids the pages translate.
TASK_ACTIONS = (N_("pause"), N_("resume"), N_("trigger"), N_("delete"))
TASK_STATES = (N_("active"), N_("paused"), N_("stopped"))
# A task's kind as its page names it (the value stays the API's).
TASK_KINDS = {
    "web_monitor": N_("web monitor"),
    "threshold_watch": N_("threshold watch"),
    "schedule": N_("reminder"),
    "news_digest": N_("news digest"),
    "daily_briefing": N_("morning briefing"),
}


# A reminder's days, as a task's summary names them (a threshold watch's lines: RULE_WORDS).
DAY_NAMES = {
    "mon": N_("Mon"),
    "tue": N_("Tue"),
    "wed": N_("Wed"),
    "thu": N_("Thu"),
    "fri": N_("Fri"),
    "sat": N_("Sat"),
    "sun": N_("Sun"),
}


def summary_words(summary: str, _: Words) -> str:
    """A task's summary (list_tasks' English) in the page's language; one it does not know
    (an older release's) as it is."""
    said = summary_said(summary)
    if said is None:
        return summary
    if said.msgid == SAYING:  # a reminder's, with its message: the summary said first
        inner = summary_words(str(said.values["summary"]), _)
        return in_words(Refusal(SAYING, summary=inner, message=said.values["message"]), _)
    values = dict(said.values)
    if "days" in values:
        # The list's comma is a word of the language too (Chinese lists with 、).
        days = [_(DAY_NAMES[d]) if d in DAY_NAMES else d for d in str(values["days"]).split(",")]
        values["days"] = _(", ").join(days)
    if "rules" in values:
        values["rules"] = rules_in(str(values["rules"]), _)
    return in_words(Refusal(said.msgid, **values), _)


@router.post("/app/tasks/action")
async def task_action(page: Page, _: PageWords, task_id: FormText, action: FormText) -> Response:
    if action not in TASK_ACTIONS:
        return back("/app", _("Unknown action %(action)s", action=repr(action)))
    try:
        ref = await getattr(page.state.tasks, action)(page.me.name, task_id)
    except TaskError as exc:
        return back("/app", task_problem(exc, _))
    # A delete answers once the list shows the task stopped (the page it comes back to lists
    # it so, or not at all): the service waits for it, for every door.
    done = _(
        "%(action)s: %(task)s is %(state)s",
        action=_(action),
        task=ref.task_id,
        state=_(ref.state.value),
    )
    # A check now that did not ask a page (its server asked us to wait) says so, and when.
    waits = [in_words(wait_said(wait, page.me.timezone), _) for wait in ref.waits]
    if ref.note and not waits:
        waits = [_(ref.note)]  # a control its worker did not confirm in time
    # A web monitor's check now says what it found on each page it checked; a threshold
    # watch's, what it read.
    pages = (ref.checked or {}).get("urls") or {}
    said = [
        _("%(page)s: %(found)s", page=url, found=found_said(seen, _)) for url, seen in pages.items()
    ]
    if ref.checked and "urls" not in ref.checked:
        said.append(read_said(ref.checked, _))
    for more in waits + said:
        done = _("%(said)s; %(more)s", said=done, more=more)
    return back("/app", done)


# What a check now found on a page (the service's ``checked`` outcomes), as the page says it.
FOUND = {
    "changed": N_("changed"),
    "unchanged": N_("unchanged"),
    "not_modified": N_("unchanged"),
    "baseline": N_("checked for the first time"),
}


def found_said(seen: dict[str, Any], _: Words) -> str:
    """One page's outcome: changed, a keyword hit and which, unchanged, or failed and why (a
    page no check has read yet: not checked yet)."""
    if seen.get("outcome") is None:
        return _("not checked yet")
    outcome = str(seen.get("outcome"))
    if outcome == "hit":
        return _("keyword found: %(keywords)s", keywords=", ".join(seen.get("hits") or ()))
    if outcome == "error":
        return failed_said(seen.get("error"), _)
    return _(FOUND[outcome]) if outcome in FOUND else outcome


def failed_said(error: Any, _: Words) -> str:
    """A failed check and why: a fetch's usual failures (an HTTP status, a timeout) in the
    page's language, any other error as the check said it."""
    said = str(error or "?")
    return _("failed: %(error)s", error=error_words(said, _))


def read_said(read: dict[str, Any], _: Words) -> str:
    """What a threshold watch's check now read: the value past its lines or within them, or
    why it read none."""
    if read.get("outcome") == "error" or read.get("value") is None:
        return failed_said(read.get("error"), _)
    if read.get("outcome") == "breach":
        return _("read %(value)s: past its threshold", value=read["value"])
    return _("read %(value)s: within its threshold", value=read["value"])


# A time as a task's status gives it (ISO 8601 with its offset, UTC): shown in the reader's zone.
STATUS_TIME = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)")


def zoned(value: Any, zone: str | None) -> Any:
    """A task's status as its page shows it: every time in it in the time zone ``zone``."""
    if isinstance(value, dict):
        return {key: zoned(item, zone) for key, item in value.items()}
    if isinstance(value, list):
        return [zoned(item, zone) for item in value]
    if isinstance(value, str) and STATUS_TIME.fullmatch(value):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return in_zone(value, zone).isoformat()
    return value


@router.get("/app/task", response_class=HTMLResponse)
async def task_detail(page: Page, _: PageWords, id: PageId) -> Response:
    try:
        task = await page.state.tasks.get(page.me.name, id)
    except TaskError as exc:
        return back("/app", task_problem(exc, _))
    urls = task.detail.get("urls") if task.kind.value == "web_monitor" else None
    # Each page's last check as the dashboard's check now says it (its error once, in words).
    pages = {
        url: found_said({"outcome": seen.get("last_outcome"), "error": seen.get("last_error")}, _)
        for url, seen in (urls.items() if isinstance(urls, dict) else [])
    }
    return page.show(
        "task.html",
        task=task,
        pages=pages,
        kind=TASK_KINDS.get(task.kind.value, task.kind.value),
        # As typed: a Chinese keyword or message is shown, not its \u escapes.
        config=json.dumps(task.config, indent=2, ensure_ascii=False),
        detail=json.dumps(
            zoned(task.detail, page.me.timezone), indent=2, default=str, ensure_ascii=False
        ),
    )


@router.post("/app/inbox/read")
async def inbox_read(
    page: Page,
    session: SessionDep,
    message_id: Annotated[int, Form(ge=1, le=MAX_ID), WHOLE_NUMBER],
    # The page of the inbox the message was on: marking it read comes back there.
    inbox_before: Annotated[int | None, Form(ge=1, le=MAX_ID), WHOLE_NUMBER] = None,
) -> Response:
    await InboxRepository(session).mark_read(page.me.name, message_id)
    await session.commit()
    return back("/app" if inbox_before is None else f"/app?inbox_before={inbox_before}")


@router.get("/app/events/stream")
async def event_stream(
    page: Page,
    _: PageWords,
    after_id: Annotated[int, Query(ge=0, le=MAX_ID), WHOLE_NUMBER] = 0,
    last_event_id: LastEventId = None,
) -> EventSourceResponse:
    """The caller's new events as server-sent events (EventSource sends the cookie, and the
    last event's id when it reconnects: late commits and a dropped connection lose none)."""

    def frame(event: EventPublic) -> tuple[str, Any]:
        return "ambient", {
            "id": event.id,
            "kind": event.kind,
            "name": _(event_name(event.kind, event.payload)),
            "task": event.task,
            # In the user's time zone, as the page's own list gives it (the script shows it).
            "created_at": in_zone(event.created_at, page.me.timezone).isoformat(),
            "payload": event.payload,
        }

    return stream(page.request, page.state.db, page.me, after_id, last_event_id, frame)


@router.post("/app/chat")
async def chat(body: ChatRequest, page: Page, chat: ChatDep, _: PageWords) -> Response:
    """The chat box: the same turn as POST /chat, signed in by the page's cookie, the
    product's own words in the page's language."""
    return await chat_door.turn(body, page.me, chat, _)
