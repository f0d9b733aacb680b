"""The settings page family: language and wake words, event digest, push channels, 小智
devices and xiaozhi.me 接入点 — each saved through its service, which checks who may do what.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from fastapi import status
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from ambient import user_settings
from ambient.agent.digest import DigestSetting, DigestState
from ambient.bridge.endpoints import (
    EndpointCreate,
    EndpointError,
    EndpointInputError,
    Endpoints,
    said_error,
)
from ambient.briefing.errors import BriefingUnavailableError
from ambient.clients.notify.targets import TargetError
from ambient.domain import field_errors as fields
from ambient.domain.push import PushConfig, keeping, stored_push_config
from ambient.domain.users import CLEARABLE_SETTINGS, Language, UserSettings
from ambient.push import save_push_config
from ambient.refusals import N_
from ambient.storage.models import utcnow
from ambient.storage.users import SettingRefusedError, user_public
from ambient.xiaozhi import DEVICE_TOKEN_PREFIX, DeviceService, normalize_device_id
from ambient.xiaozhi_errors import DeviceError, DeviceRefusedError, InvalidDeviceError
from ambient.xiaozhi_views import DeviceAdded, DeviceView
from api.deps import SessionDep
from api.i18n import Words, from_accept_language
from api.routers.page_words import field_errors, in_words, what_went_wrong
from api.routers.pages import (
    FormText,
    Page,
    PageWords,
    UserPage,
    back,
    keyed,
    language_of,
    notice,
    page_router,
    render,
)
from api.routers.signin_pages import SAME_FORM_WITHIN

router = page_router()
SETTINGS = "/app/settings"  # the page, and where each of its forms answers back to


async def _settings_page(
    page: UserPage,
    *,
    errors: str | None = None,
    added: DeviceAdded | None = None,
    typed: dict[str, Any] | None = None,
) -> HTMLResponse:
    """The page; after a refusal, ``typed`` is the refused form as sent, shown again."""
    # typed: "settings" (the settings' fields), "channels", "device_id", "allow_device",
    # "endpoint" (url, verbatim) or "digest".
    request, state, me = page.request, page.state, page.me
    typed = typed or {}
    browser = from_accept_language(request.headers.get("accept-language"))
    shown = user_public(me).model_copy(update=typed.get("settings", {}))
    push = stored_push_config(me.push_config)
    try:
        digest: DigestState | None = await state.digests.get(me.name)
    except Exception:  # Temporal down: the rest of the settings still work
        digest = None
    shown_digest = typed.get("digest", digest) if digest is not None else None
    async with state.db.session() as session:
        endpoints = await Endpoints.of(session, state.settings).list(me)
    # An endpoint's last error as the bridge wrote it, said in the page's language if known.
    _ = Words(language_of(request, me))
    errors_said = {e.id: in_words(said_error(e.last_error), _) for e in endpoints if e.last_error}
    return render(
        request,
        "settings.html",
        {
            "user": user_public(me),
            "form_id": device_form_id(me.name),  # the add-device form's: sent again, shown again
            "shown": shown,
            "channels": typed.get("channels", push.channels),
            "device_id": typed.get("device_id", ""),
            "allow_device": typed.get("allow_device", ""),
            "endpoint": typed.get("endpoint", {}),
            "digest": shown_digest,
            "digest_paused": digest is not None and digest.paused,
            # Through the same services as the API: they decide what the caller sees.
            "devices": await state.devices.list(me.name),
            "withdrawals": await state.devices.withdrawals(me.name),
            "endpoints": endpoints,
            "endpoint_errors": errors_said,
            "added": added,
            "languages": LANGUAGE_NAMES,
            "permissions": PERMISSION_WORDS,
            "push_kinds": PUSH_KINDS,
            # What the pages speak when none is chosen: the browser's language, else the server's.
            "browser_language": LANGUAGE_NAMES.get(browser) if browser else None,
            "default_language": LANGUAGE_NAMES[state.settings.default_language],
            "errors": errors,
            "msg": None if errors else notice(request),
        },
        # A device just added is created (201); a refused form is shown again (422).
        201 if added else status.HTTP_422_UNPROCESSABLE_CONTENT if errors else status.HTTP_200_OK,
    )


# A rollback permission as the page names it (the value stays the API's).
PERMISSION_WORDS = {"none": N_("none"), "dry_run": N_("dry run"), "execute": N_("execute")}
# Each language named in itself, as a language menu does.
LANGUAGE_NAMES = {Language.ZH: "中文", Language.EN: "English"}


@router.get(SETTINGS, response_class=HTMLResponse)
async def settings_form(page: Page) -> Response:
    return await _settings_page(page)


@router.post("/app/digest")
async def save_digest(
    page: Page, _: PageWords, enabled: FormText = "", every_minutes: FormText = "15"
) -> Response:
    sent = {"enabled": enabled == "on", "every_minutes": every_minutes or "15"}
    try:
        setting = DigestSetting.model_validate(sent)
    except ValidationError as exc:
        errors = field_errors(exc, _, DIGEST_LABELS)
        return await _settings_page(page, errors=errors, typed={"digest": sent})
    await page.state.digests.set(page.me.name, setting)
    return back(
        SETTINGS, _("Assistant digest on") if setting.enabled else _("Assistant digest off")
    )


@router.post(SETTINGS)
async def save_settings(page: Page, session: SessionDep, _: PageWords) -> Response:
    form = await page.request.form()
    # The form posts every setting as text; wake words one a line, as a comma may be part of
    # one ("你好，小智", "hey, ambient").
    sent: dict[str, Any] = {k: str(form.get(k, "")).strip() for k in UserSettings.model_fields}
    sent["wake_words"] = [line.strip() for line in sent["wake_words"].splitlines() if line.strip()]
    # An emptied setting is cleared where it may be; the others keep their stored value.
    data = {key: value or None for key, value in sent.items() if value or key in CLEARABLE_SETTINGS}
    # The wake words shown are the words kept: emptied, there are none (as PATCH /users/me
    # with []); it said "Settings saved" and kept them.
    data["wake_words"] = sent["wake_words"]
    try:
        # Permissions are not settings: only an admin grants them, through the users API.
        wanted = UserSettings.model_validate(data)
        await user_settings.save_settings(
            session,
            page.me,
            wanted,
            page.state.briefings,
            settings=page.state.settings,
            tasks=page.state.tasks,
        )
    except ValidationError as exc:
        errors = field_errors(exc, _, SETTINGS_LABELS)
    except SettingRefusedError as exc:
        errors = f"{_(SETTINGS_LABELS[exc.field])}: {in_words(exc.args[0], _)}"
    except BriefingUnavailableError as exc:
        errors = in_words(exc.args[0], _)
    else:
        # Said in the language just chosen: the next page speaks it too.
        _ = Words(language_of(page.request, page.me))
        return back(SETTINGS, _("Settings saved"))
    return await _settings_page(page, errors=errors, typed={"settings": sent})


# The digest's field as its form labels it.
DIGEST_LABELS = {"every_minutes": N_("Look every (minutes)")}


# The settings as the form labels them (refusals name the field by its label).
SETTINGS_LABELS = {
    "email": N_("Email"),
    "phone": N_("Phone"),
    "wake_words": N_("Wake words (one per line)"),
    "assistant_name": N_("Assistant name"),
    "voiceprint_id": N_("Voiceprint id"),
    "timezone": N_("Time zone"),
    "briefing_prepare_at": N_("Briefing prepared at"),
    "briefing_window_start": N_("Greeting window from"),
    "briefing_window_end": N_("until"),
    "language": N_("Language of these pages"),
}


@router.post("/app/push")
async def save_push(page: Page, session: SessionDep, _: PageWords) -> Response:
    form = await page.request.form()
    types, targets = form.getlist("type"), form.getlist("target")
    kinds = form.getlist("kinds")
    sent: list[dict[str, Any]] = []  # as typed, to show again if refused
    for index, (kind, target) in enumerate(zip(types, targets, strict=False)):
        if str(kind):
            chosen = [k.split(":", 1)[1] for k in map(str, kinds) if k.startswith(f"{index}:")]
            sent.append({"type": str(kind), "target": str(target).strip(), "kinds": chosen})
    # No kind ticked: the channel carries every kind (sent without "kinds").
    channels = [{key: v for key, v in channel.items() if v or key != "kinds"} for channel in sent]
    try:
        # The page edits channels only: the quiet hours set elsewhere stay as they are stored.
        quiet = stored_push_config(page.me.push_config).quiet_hours
        config = PushConfig.model_validate(
            {"channels": channels}, context=keeping(page.me.push_config)
        )
        config = config.model_copy(update={"quiet_hours": quiet})
        await save_push_config(session, page.me, config, page.state.channels.policy)
    except ValidationError as exc:
        errors = "; ".join(
            f"{channel_field(loc, _)}: {in_words(message, _)}"
            for loc, message in fields.field_errors(exc)
        )
    except TargetError as exc:
        where = channel_field(exc.loc, _)  # its target: ("channels", 0, "target")
        errors = f"{where}: {in_words(exc.problem, _)}"
    else:
        await session.commit()
        return back(SETTINGS, _("Push channels saved"))
    return await _settings_page(page, errors=errors, typed={"channels": sent})


# A channel's fields as the form labels them.
CHANNEL_LABELS = {"type": N_("Type"), "target": N_("Target")}


def channel_field(loc: Sequence[str | int], _: Words) -> str:
    """Where a push refusal is, as the form numbers its channels: "Channel 2, Target"."""
    # A refused form is shown again with the channels as sent, so the numbers match.
    if len(loc) < 2 or loc[0] != "channels" or not str(loc[1]).isdigit():
        return ".".join(map(str, loc)) or _("value")
    channel = _("Channel %(number)s", number=int(loc[1]) + 1)
    if len(loc) == 2:
        return channel
    label = CHANNEL_LABELS.get(str(loc[2]))
    field = _(label) if label and len(loc) == 3 else ".".join(map(str, loc[2:]))
    return _("%(channel)s, %(field)s", channel=channel, field=field)


# What each push channel carries, as the settings page names it (values stay the API's).
PUSH_KINDS = (N_("briefing"), N_("watch"), N_("remediation"), N_("system"))


# --- 小智 devices: through DeviceService, which checks who may do what ---------------------


@router.post("/app/xiaozhi/devices")
async def add_device(
    page: Page, _: PageWords, device_id: FormText = "", form: FormText = ""
) -> Response:
    """Register one of your 小智 devices; the page shows its token once (never in a URL). The
    same form sent again within a minute (a reload) shows the token its first send made."""
    typed, me, devices = {"device_id": device_id}, page.me, page.state.devices
    try:
        mac = normalize_device_id(device_id)
    except InvalidDeviceError:
        return await _settings_page(page, errors=_(DEVICE_ID_RULE), typed=typed)
    made = _form_device_token(form, me.name, mac) if _form_issued(form, me.name) else None
    try:
        added = await devices.add(me.name, me.name, device_id, token=made)
    except InvalidDeviceError:
        # The id is well formed (checked above), so it is taken: by this form's first send,
        # by you, or by someone whose device you cannot remove.
        mine = {d.device_id: d for d in await devices.list(me.name) if d.user == me.name}
        if made and (again := await _made_by(devices, mac, made)) and mac in mine:
            return await _settings_page(
                page, added=DeviceAdded(**mine[mac].model_dump(), token=again)
            )
        if mac in mine:
            taken = _("Device %(device)s is already registered; remove it first.", device=mac)
        else:
            taken = _(
                "Device %(device)s is registered by another person: only its owner or an "
                "admin can remove it.",
                device=mac,
            )
        return await _settings_page(page, errors=taken, typed=typed)
    return await _settings_page(page, added=added)


# How long an add-device form the page issued makes its token from its id (else: a new one).
FORM_VALID = timedelta(minutes=10)


def device_form_id(user: str) -> str:
    """An add-device form's id, issued to ``user`` now: when, a nonce of its own (two pages
    shown in one second are two forms), and the server's signature of them."""
    issued, nonce = str(int(utcnow().timestamp())), secrets.token_hex(8)
    return f"{issued}.{nonce}.{keyed('device-form', user, issued, nonce)[:32]}"


def _form_issued(form: str, user: str) -> bool:
    """Whether ``form`` is an id the page issued to ``user`` within FORM_VALID: only such a
    form's add makes its token from it (sent again later, a removed device's came back)."""
    issued, _, rest = form.partition(".")
    nonce, _, signature = rest.partition(".")
    expected = keyed("device-form", user, issued, nonce)[:32]
    if not issued.isdigit() or not hmac.compare_digest(signature, expected):
        return False
    return utcnow().timestamp() - int(issued) < FORM_VALID.total_seconds()


def _form_device_token(form: str, user: str, mac: str) -> str:
    """The device token an issued form's add of ``mac`` makes: the same for one form, user and
    device (its second send finds the device its first made), made with the server's key."""
    return DEVICE_TOKEN_PREFIX + keyed("device", form, user, mac)


async def _made_by(devices: DeviceService, mac: str, token: str) -> str | None:
    """``token`` if the device ``mac`` holds it and was added within SAME_FORM_WITHIN (a form
    sent again later shows nothing it made); else None."""
    try:
        row = await devices.authenticate(mac, token)
    except DeviceError:
        return None
    return token if utcnow() - row.created_at < SAME_FORM_WITHIN else None


DEVICE_ID_RULE = N_(
    "Device id: the MAC xiaozhi-server sends as device-id (e.g. aa:bb:cc:dd:ee:ff), "
    "1-64 letters, digits, ':', '_', '.', '-'."
)


@router.post("/app/xiaozhi/devices/remove")
async def remove_device(page: Page, _: PageWords, device: FormText = "") -> Response:
    try:
        removed = await page.state.devices.remove(page.me.name, device)
    except InvalidDeviceError as exc:  # a reference naming two devices
        return back(SETTINGS, what_went_wrong(exc, _))
    except DeviceError:
        return back(SETTINGS, _("No device %(device)s among yours.", device=device))
    return back(
        SETTINGS, _("Removed %(device)s: its token no longer works.", device=removed.device_id)
    )


@router.post("/app/xiaozhi/devices/allow")
async def allow_device(
    page: Page, _: PageWords, device: FormText = "", allowed: FormText = "on"
) -> Response:
    """Let a device (anyone's) answer you by your voiceprint, or stop it: your own consent."""
    yes, typed = allowed != "off", {"allow_device": device}
    try:
        view = await page.state.devices.allow(page.me.name, device, allowed=yes)
    except (InvalidDeviceError, DeviceRefusedError) as exc:  # two named; a consent withdrawn
        return await _settings_page(page, errors=what_went_wrong(exc, _), typed=typed)
    except DeviceError:
        errors = _("There is no device %(device)s.", device=device)
        return await _settings_page(page, errors=errors, typed=typed)
    if yes:
        message = _("%(device)s may now answer you by your voiceprint.", device=view.device_id)
    else:
        message = _("%(device)s no longer answers you.", device=view.device_id)
    return back(SETTINGS, message)


# A device's change of one speaker: the service's call, and what the page says once made.
SpeakerChange = Callable[[DeviceService, str, str, str], Awaitable[DeviceView]]


def _speaker_change(act: SpeakerChange, words: str) -> Callable[..., Awaitable[Response]]:
    """The route of one change of a device's speaker (``act``, said by ``words``)."""

    async def change_speaker(
        page: Page, _: PageWords, device: FormText = "", speaker: FormText = ""
    ) -> Response:
        try:
            view = await act(page.state.devices, page.me.name, device, speaker)
        except InvalidDeviceError as exc:
            return back(SETTINGS, what_went_wrong(exc, _))
        except DeviceError:
            return back(SETTINGS, _("No device %(device)s among yours.", device=device))
        return back(SETTINGS, _(words, device=view.device_id, name=speaker))

    return change_speaker


# Each its own name and description (the one handler's docstring would be both's).
router.post(
    "/app/xiaozhi/devices/withdraw",
    name="withdraw_speaker",
    description="Stop your device answering someone who allowed it: their consent, your speaker.",
)(_speaker_change(DeviceService.withdraw, N_("%(device)s no longer answers %(name)s.")))
router.post(
    "/app/xiaozhi/devices/let-back",
    name="let_speaker_back",
    description="Let someone whose consent you withdrew allow your device again.",
)(_speaker_change(DeviceService.let_back, N_("%(name)s may allow %(device)s again.")))


@router.post("/app/xiaozhi/withdrawn/let-back")
async def let_withdrawn_back(
    page: Page, _: PageWords, user: FormText = "", speaker: FormText = ""
) -> Response:
    """Let back someone withdrawn from an owner's devices, naming no device (none may be left).
    The form names the owner, yours too: an empty one is the service's to refuse."""
    try:
        await page.state.devices.let_back_from(page.me.name, user, speaker)
    except DeviceError as exc:  # not withdrawn (another tab), no owner, or not the caller's
        return back(SETTINGS, what_went_wrong(exc, _))
    if user == page.me.name:
        return back(SETTINGS, _("%(name)s may allow your devices again.", name=speaker))
    said = _("%(name)s may allow %(owner)s's devices again.", name=speaker, owner=user)
    return back(SETTINGS, said)


# --- xiaozhi.me 接入点: through the bridge's Endpoints service (owner or admin) -------------

# An endpoint's state: the service's value is the msgid the page translates.
ENDPOINT_STATES = (N_("connected"), N_("retrying"))
ENDPOINT_LABELS = {"url": N_("接入点 URL"), "user": N_("User")}


@router.post("/app/xiaozhi/endpoints")
async def add_endpoint(
    page: Page, session: SessionDep, _: PageWords, url: FormText = "", verbatim: FormText = ""
) -> Response:
    """Register a 接入点 URL for yourself. Its token is never shown again: the page answers
    with a redirect naming the masked URL, so the token is in no page, URL or history."""
    try:
        data = EndpointCreate(user=page.me.name, url=url, verbatim=verbatim == "on")
        added = await Endpoints.of(session, page.state.settings).add(page.me, data)
    except ValidationError as exc:
        errors = field_errors(exc, _, ENDPOINT_LABELS)
    except EndpointInputError as exc:
        errors = f"{_(ENDPOINT_LABELS.get(exc.field, exc.field))}: {in_words(exc.message, _)}"
    else:
        return back(SETTINGS, _("Added %(url)s: it is dialed within a few seconds.", url=added.url))
    typed = {"endpoint": {"url": url, "verbatim": verbatim == "on"}}
    return await _settings_page(page, errors=errors, typed=typed)


@router.post("/app/xiaozhi/endpoints/remove")
async def remove_endpoint(
    page: Page, session: SessionDep, _: PageWords, endpoint: FormText = ""
) -> Response:
    try:
        # int() also reads "１", "١", " 1 " and "1_0": only the ASCII digits the page wrote.
        if not (endpoint.isascii() and endpoint.isdigit()):
            raise ValueError(endpoint)
        gone = await Endpoints.of(session, page.state.settings).remove(page.me, int(endpoint))
    except (ValueError, EndpointError):
        # The page names endpoints by URL, never by this number: removed in another tab.
        return back(
            SETTINGS, _("That 接入点 is not among yours: it may have been removed already.")
        )
    return back(SETTINGS, _("Removed %(url)s: its connection closes.", url=gone.url))
