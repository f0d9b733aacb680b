"""小智 devices, what waits for a person, and the per-wake context facts (who is speaking:
`ambient.speakers`).

A device is a 小智 speaker known by its MAC (the `device-id` header xiaozhi-server sends). It
belongs to one user, authenticates with its own token (stored hashed), and may name other
users who allowed it to answer them by voiceprint. Every permission is decided here, so the
API, the CLI and the voice tools cannot differ.

    DeviceError
    ├── InvalidDeviceError   bad input, nothing changed (API: 422 naming the field)
    │   └── AmbiguousDeviceError  a reference naming several devices (API: 422 at the ref)
    ├── DeviceRefusedError   the caller may not (API: 403)
    └── DeviceNotFoundError  no such device among the caller's (API: 404)
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.service import RPCError

from ambient import temporal
from ambient.briefing.models import BriefingStatus
from ambient.briefing.service import BriefingService
from ambient.domain.users import OPERATOR, Language
from ambient.refusals import Refusal, said_back
from ambient.remediation.safety import named_anywhere
from ambient.remediation.service import RemediationService
from ambient.remediation.storage import RemediationRepository
from ambient.remediation.views import RemediationError, RemediationSummary
from ambient.speakers import DEFAULT_ASSISTANT, UNMATCHED_WARNING
from ambient.storage import Database
from ambient.storage.audit import AuditRepository
from ambient.storage.models import MAX_ID, User, XiaozhiDevice
from ambient.storage.repositories import EventRepository
from ambient.storage.users import UserRepository, hash_token
from ambient.storage.users import new_api_token as _new_token
from workflows.remediation import GradedRemediationWorkflow

log = logging.getLogger(__name__)
T = TypeVar("T")

# A MAC as xiaozhi-server sends it (aa:bb:cc:dd:ee:ff), or any short id of the same letters.
_DEVICE_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z:_.-]{0,63}$")
# A MAC as routers and labels write it (AA-BB-CC-DD-EE-FF, aabb.ccdd.eeff, AABBCCDDEEFF), or as
# 小智 writes it over MQTT (aa_bb_cc_dd_ee_ff in its client id and topic): stored as the firmware
# sends it in `device-id`, aa:bb:cc:dd:ee:ff, or no wake would ever match.
_MAC = re.compile(
    r"^[0-9a-f]{2}([-:_]?)[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}$|^(?:[0-9a-f]{4}\.){2}[0-9a-f]{4}$"
)
DEVICE_TOKEN_PREFIX = "xzd_"


class DeviceError(Exception):
    """Base of device errors."""


class InvalidDeviceError(DeviceError):
    """Bad input: nothing was changed."""


class AmbiguousDeviceError(InvalidDeviceError):
    """A device reference (``ref``) naming several devices: nothing was changed."""

    def __init__(self, refusal: Refusal, ref: str) -> None:
        super().__init__(refusal)
        self.ref = ref


class DeviceRefusedError(DeviceError):
    """The caller may not do this."""


class DeviceNotFoundError(DeviceError):
    """No such device among the caller's."""


class DeviceView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    device_id: str
    user: str
    speakers: list[str] = Field(description="other users this device may answer by voiceprint")
    withdrawn: list[str] = Field(
        default_factory=list,
        description="users whose consent the owner (or an admin) withdrew: they may not allow "
        "the device again until let back",
    )
    created_at: datetime
    warning: str | None = Field(
        default=None,
        description="why a voice it does not match may read but not act, while it answers others "
        "and its owner has no voiceprint id (as the settings page's card says it)",
    )


class DeviceConsent(BaseModel):
    """The answer to an allow (or its withdrawal): what the caller may know. Not whose device
    it is: a MAC is no secret, and its owner is theirs to tell."""

    device_id: str
    speakers: list[str] = Field(
        description="who this device may answer by voiceprint: all of them for its owner or an "
        "admin; anyone else's answer names only themselves, if they allowed it"
    )
    allowed: bool = Field(description="whether the caller's consent is now given")


class DeviceAdded(DeviceView):
    token: str = Field(description="the device token, shown once (stored hashed)")


def normalize_device_id(value: str) -> str:
    """MACs compare case-insensitively: stored and looked up lowercase."""
    value = value.strip()
    if not _DEVICE_ID.fullmatch(value):
        raise InvalidDeviceError(
            "device_id: the device's MAC as xiaozhi-server sends it in `device-id` "
            "(e.g. aa:bb:cc:dd:ee:ff), 1-64 letters, digits, ':', '_', '.', '-'"
        )
    value = value.lower()
    if _MAC.match(value):
        digits = re.sub(r"[-:._]", "", value)
        return ":".join(digits[i : i + 2] for i in range(0, 12, 2))
    return value


def _device_keys(ref: str) -> set[str]:
    """What a device reference may be stored as: as typed (rows from before MACs were
    normalized) and normalized."""
    keys = {ref.strip().lower()}
    with suppress(InvalidDeviceError):
        keys.add(normalize_device_id(ref))
    return keys


class DeviceService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def _admin(self, name: str | None) -> bool:
        """Whether ``name`` may act on everyone's devices; None is the operator (the CLI)."""
        if name is None:
            return True
        async with self.db.session() as session:
            refusal = DeviceRefusedError(f"{name!r} is not a registered user")
            user = await UserRepository(session).existing(name, refusal)
        return user.is_admin

    async def add(
        self, actor: str | None, user: str, device_id: str, *, speakers: list[str] | None = None
    ) -> DeviceAdded:
        """Register a device to ``user`` (the user themself or an admin may)."""
        if actor != user and not await self._admin(actor):
            raise DeviceRefusedError("you may register devices only for yourself (or be an admin)")
        mac = normalize_device_id(device_id)
        names = sorted(set(speakers or []) - {user})
        if names and not await self._admin(actor):
            # Being answered by someone else's speaker is each person's own consent.
            raise DeviceRefusedError(
                "speakers: each user allows a device for themself (`allow`); "
                "only an admin or the operator names them at registration"
            )
        token = DEVICE_TOKEN_PREFIX + _new_token()
        async with self.db.session() as session:
            users = UserRepository(session)
            await users.existing(user, InvalidDeviceError(f"user: no user {user!r}"))
            for name in names:
                await users.existing(name, InvalidDeviceError(f"speakers: no user {name!r}"))
            row = XiaozhiDevice(
                device_id=mac, user=user, token_hash=hash_token(token), speakers=names
            )
            session.add(row)
            try:
                await session.flush()
            except IntegrityError:
                raise InvalidDeviceError(
                    f"device_id: {mac} is already registered; remove it first"
                ) from None
            await _audit(session, actor, "xiaozhi.device.add", row, speakers=names)
            await session.commit()
            [view] = await _viewed(session, [row])
        return DeviceAdded(**view.model_dump(), token=token)

    async def list(self, actor: str | None) -> list[DeviceView]:
        """The caller's devices (every device for an admin or the operator)."""
        query = select(XiaozhiDevice).order_by(XiaozhiDevice.id)
        if not await self._admin(actor):
            query = query.where(XiaozhiDevice.user == actor)
        async with self.db.session() as session:
            return await _viewed(session, await session.scalars(query))

    async def remove(self, actor: str | None, ref: str) -> DeviceView:
        """Remove by numeric id or device id (owner or admin); the token stops working."""
        admin = await self._admin(actor)
        async with self.db.session() as session:
            row = await self._find(session, ref, lambda row: admin or row.user == actor)
            if row is None:
                raise DeviceNotFoundError(f"no device {said_back(ref, 64)} among yours")
            view = DeviceView.model_validate(row)
            await session.execute(delete(XiaozhiDevice).where(XiaozhiDevice.id == row.id))
            await _audit(session, actor, "xiaozhi.device.remove", row)
            await session.commit()
        return view

    async def allow(self, actor: str, ref: str, *, allowed: bool = True) -> DeviceConsent:
        """The caller lets this device answer them by voiceprint (or, ``allowed=False``, stops).

        Anyone may allow any device id they name: it only ever shares the caller's own data,
        and only with that device's owner's rights or less. Its number names it only to its
        owner, an admin, or who allowed it already (numbers walked from 1 must not list every
        speaker's MAC and owner); and another's answer shows only the caller's own consent,
        not whose device it is (a MAC is no secret: the answer named the user behind any MAC).
        """
        admin = await self._admin(actor)
        # Read, then written back with the caller in or out: one allow at a time per device
        # (the row locked on PostgreSQL, the write lock taken first on SQLite), or a consent
        # given at the same moment is lost.
        async with self.db.write_session() as session:
            row = await self._find(
                session,
                ref,
                lambda row: (
                    admin
                    or row.user == actor
                    or actor in (row.speakers or [])
                    or row.device_id in _device_keys(ref)
                ),
            )
            if row is None:
                raise DeviceNotFoundError(f"no device {said_back(ref, 64)}")
            if allowed and actor in (row.withdrawn or []):
                # The owner's withdrawal stands until they undo it: a re-allow undid it at once.
                # Said by role, not name: whose device it is is its owner's to tell.
                raise DeviceRefusedError(
                    Refusal(
                        "Its owner (or an admin) withdrew your consent to %(device)s: you may "
                        "allow it again once its owner or an admin lets you back (ask its owner)",
                        device=row.device_id,
                    )
                )
            names = set(row.speakers or [])
            names = names | {actor} if allowed else names - {actor}
            row.speakers = sorted(names - {row.user})
            action = "xiaozhi.device.allow" if allowed else "xiaozhi.device.disallow"
            await _audit(session, actor, action, row)
            await session.commit()
            speakers = row.speakers if admin or row.user == actor else [actor] if allowed else []
            return DeviceConsent(device_id=row.device_id, speakers=speakers, allowed=allowed)

    @staticmethod
    async def _find(
        session: AsyncSession, ref: str, known: Callable[[XiaozhiDevice], bool]
    ) -> XiaozhiDevice | None:
        """The one device ``ref`` names among those the caller may know (``known``); a
        reference naming several (one's number, another's device id) is refused."""
        named: ColumnElement[bool] = XiaozhiDevice.device_id.in_(_device_keys(ref))
        number = ref.strip()
        # A number the database cannot hold ('²' is a digit to isdigit, not to int) is no id.
        if number.isascii() and number.isdigit() and int(number) <= MAX_ID:
            named = or_(named, XiaozhiDevice.id == int(number))
        found = select(XiaozhiDevice).where(named).with_for_update()
        rows = (await session.scalars(found)).all()
        rows = sorted((row for row in rows if known(row)), key=lambda row: row.id)
        if len(rows) > 1:
            raise AmbiguousDeviceError(
                Refusal(
                    "%(ref)s names %(count)s devices: %(listing)s; nothing changed; "
                    "name the one you mean by a reference only it has",
                    ref=said_back(ref, 64),
                    count=len(rows),
                    listing=", ".join(f"device {row.id} ({row.device_id})" for row in rows),
                ),
                ref,
            )
        return rows[0] if rows else None

    async def authenticate(self, device_id: str, token: str) -> XiaozhiDevice:
        """The device, if ``token`` is the token of one of its owner's devices.

        xiaozhi-server sends the same configured headers for every device it serves, and only
        ``device-id`` tells them apart: one token answers for all of its owner's speakers.
        Raises DeviceRefusedError for a token that is no device's, and DeviceNotFoundError,
        saying how to register it, for a device that is not one of the token owner's (one not
        registered yet, or someone else's: the same words for both).
        """
        try:
            mac = normalize_device_id(device_id)
        except InvalidDeviceError:
            mac = device_id.strip().lower()
        async with self.db.session() as session:
            holder = await session.scalar(
                select(XiaozhiDevice).where(XiaozhiDevice.token_hash == hash_token(token))
            )
            row = await session.scalar(select(XiaozhiDevice).where(XiaozhiDevice.device_id == mac))
        if holder is None:
            raise DeviceRefusedError(
                "wrong device token: send the token shown when one of your devices was registered"
            )
        if row is None or holder.user != row.user:
            raise DeviceNotFoundError(
                f"device {mac} is not one of {holder.user}'s devices: register it"
                " (POST /xiaozhi/devices, or ambient xiaozhi device add)"
            )
        return row

    async def withdraw(self, actor: str | None, ref: str, speaker: str) -> DeviceView:
        """The device stops answering ``speaker``, whose consent its owner (or an admin) takes
        back: someone else's consent is theirs to give, the owner's speaker the owner's to keep."""
        admin = await self._admin(actor)
        async with self.db.write_session() as session:
            row = await self._find(session, ref, lambda row: admin or row.user == actor)
            if row is None:
                # Naming oneself: one's own consent is withdrawn where it was given. Said to
                # anyone who names themself, whether the device exists or not.
                own = f"; to stop it answering you, DELETE /xiaozhi/devices/{ref[:64]}/allow"
                own += " (or Stop allowing on your settings page)"
                raise DeviceNotFoundError(
                    f"no device {said_back(ref, 64)} among yours{own if speaker == actor else ''}"
                )
            if speaker not in (row.speakers or []):
                raise InvalidDeviceError(
                    f"{said_back(speaker, 63)} has not allowed {row.device_id}; it answers "
                    f"{', '.join(row.speakers or []) or 'only its owner'}; nothing changed"
                )
            row.speakers = [name for name in row.speakers if name != speaker]
            row.withdrawn = sorted({*(row.withdrawn or []), speaker})  # until let back
            await _audit(session, actor, "xiaozhi.device.withdraw", row, speaker=speaker)
            await session.commit()
            return (await _viewed(session, [row]))[0]

    async def let_back(self, actor: str | None, ref: str, speaker: str) -> DeviceView:
        """``speaker``, whose consent the owner (or an admin) withdrew, may allow the device
        again (owner or admin): their consent is still theirs to give."""
        admin = await self._admin(actor)
        async with self.db.write_session() as session:
            row = await self._find(session, ref, lambda row: admin or row.user == actor)
            if row is None:
                raise DeviceNotFoundError(f"no device {said_back(ref, 64)} among yours")
            if speaker not in (row.withdrawn or []):
                raise InvalidDeviceError(
                    f"{said_back(speaker, 63)} is not withdrawn from {row.device_id}; withdrawn:"
                    f" {', '.join(row.withdrawn or []) or 'no one'}; nothing changed"
                )
            row.withdrawn = [name for name in row.withdrawn if name != speaker]
            await _audit(session, actor, "xiaozhi.device.let_back", row, speaker=speaker)
            await session.commit()
            return (await _viewed(session, [row]))[0]


_NO_VOICEPRINT = (User.voiceprint_id.is_(None), User.voiceprint_id == "")


async def _viewed(session: AsyncSession, rows: Iterable[XiaozhiDevice]) -> list[DeviceView]:
    """The devices as listed, each answering others while its owner has no voiceprint id
    warned (UNMATCHED_WARNING): a mark like "未知" there may read but not act (resolve_speaker)."""
    rows = list(rows)
    owners = {row.user for row in rows if row.speakers}
    query = select(User.name).where(User.name.in_(owners), or_(*_NO_VOICEPRINT))
    bare = set(await session.scalars(query)) if owners else set()
    return [
        DeviceView.model_validate(row).model_copy(
            update={"warning": UNMATCHED_WARNING if row.user in bare and row.speakers else None}
        )
        for row in rows
    ]


async def _audit(
    session: AsyncSession, actor: str | None, action: str, row: XiaozhiDevice, **detail: Any
) -> None:
    await AuditRepository(session).append(
        actor=actor or OPERATOR,
        action=action,
        subject=f"xiaozhi-device:{row.device_id}",
        detail={"user": row.user, **detail},
    )


# --- what waits for a person ---------------------------------------------------------------


ASKED_AT_MOST = 20  # runs a lookup asks (a query each, in parallel)


def failing_in_a_row(pages: list[tuple[str, str | None, int]]) -> tuple[str, str]:
    """How badly watches fail, a clause in Chinese and English: the most checks failed in a row
    a failing page's ``watch.failing`` told (at least that many now); none under two."""
    worst = max((failures for _, _, failures in pages), default=0)
    if worst < 2:
        return "", ""
    if len({task for task, _, _ in pages}) == 1:
        return f"，至少连续失败了 {worst} 次", f", at least {worst} times in a row"
    return f"，最严重的至少连续失败了 {worst} 次", f", the worst at least {worst} times in a row"


async def waiting_for(service: RemediationService, user: str) -> list[RemediationSummary]:
    """Runs waiting for this user's approval now, oldest first ("the first one" is the one
    that has waited longest, the same every time it is asked).

    Candidates are the open runs the user may see (``may_steer``, as ``list_runs`` lists
    them). The runs table is written at milestones, not when a run starts waiting, so the
    server's list narrows them first to the runs whose state attribute says waiting (one call,
    however many runs are open: acting and verifying runs are not asked), and each of those is
    then asked (a query each, in parallel) through the service, which decides who may see it
    and what its state is now.
    """
    shown = await _shown_waiting(service)
    async with service.db.session() as session:
        account = await UserRepository(session).get(user)
        if account is None:
            return []
        repository = RemediationRepository(session)
        seen = await repository.seen_by(account, service.settings.remediation_approvers)
        # Of those the user may see, the runs the server lists, however many newer ones are
        # open; without its list, the newest open ones.
        rows = await repository.list(
            open_only=True, ids=shown, seen=seen, limit=1000 if shown is not None else 500
        )
    mine = [RemediationSummary.model_validate(row) for row in rows]
    # Rows come newest first: the ASKED_AT_MOST that waited longest are asked. Past them, a
    # run the server lists as waiting is taken at its word (its answer is checked again when
    # it is given): after a storm of 52, "approve t500" found nothing, and 20 were said to wait.
    runs, listed = mine[-ASKED_AT_MOST:], (mine[:-ASKED_AT_MOST] if shown is not None else [])

    async def live(run: RemediationSummary) -> RemediationSummary | None:
        try:
            view = await service.get(user, run.remediation_id)
        except RemediationError as exc:
            if temporal.SILENT_WORKER in str(exc):
                raise  # whether it waits is unknown, not "no"
            return None
        if temporal.FAILED_TASK in view.unanswered:
            return None  # its worker keeps failing it: no answer can be taken (as it ended)
        if view.unanswered:  # its state as recorded: whether it waits is the run's to say
            raise RemediationError(view.unanswered)
        if view.state != "waiting_approval" or view.run_key != run.run_key:
            return None
        return run.model_copy(update={"state": view.state})

    found = [r for r in await asyncio.gather(*(live(r) for r in runs)) if r is not None]
    found += [r.model_copy(update={"state": "waiting_approval"}) for r in listed]
    return sorted(found, key=lambda r: (r.started_at, r.remediation_id))


_SHOWN_WAITING = (
    f'WorkflowType = "{GradedRemediationWorkflow.__name__}" '
    f'AND {temporal.STATE.name} = "waiting_approval" AND ExecutionStatus = "Running"'
)


async def _shown_waiting(service: RemediationService) -> set[str] | None:
    """The remediation ids the server lists as waiting for an approval; None when the list
    cannot be had (then every open run is asked). The list follows the workflow by a moment
    (it is indexed after the state is set), so a run that began to wait just now may be
    missing for that moment; one listed that no longer waits is dropped by its query."""
    try:
        return {e.id async for e in service.client.list_workflows(_SHOWN_WAITING, limit=1000)}
    except RPCError as exc:
        log.warning("approvals: the server's list failed (%s); asking every open run", exc)
        return None


# --- the context provider ------------------------------------------------------------------


class VoiceFacts(BaseModel):
    """What a voice model needs at the start of a conversation with this user."""

    assistant_name: str
    user: str
    briefing_ready: bool = Field(description="today's briefing is prepared and not yet given")
    briefing_given_today: bool
    open_alerts: int = Field(description="remediations still running or waiting")
    approvals_waiting: int | None = Field(
        description="remediations waiting for this user's approval; null if not known in time"
    )
    watches_failing: int = Field(
        default=0, description="this user's watches whose checks are failing now"
    )
    hint: str


async def voice_facts(
    db: Database,
    user: User,
    remediations: RemediationService | None = None,
    *,
    briefings: BriefingService | None = None,
    budget: float = 0.5,
    default_language: Language = Language.ZH,
) -> VoiceFacts:
    """The app database, plus at most ``budget`` seconds of Temporal for the briefing (what
    greet would answer), the approvals waiting and the runs still open: past that the briefing
    is not said ready, the approvals are unknown (None), the open runs are the rows', and the
    rest still answers."""
    approvers = remediations.settings.remediation_approvers if remediations else {}
    async with db.session() as session:
        repository = RemediationRepository(session)
        # The runs "what needs me" lists (list_runs): also another's on a cluster of theirs.
        seen = await repository.seen_by(user, approvers)
        runs = await repository.list(seen=seen, open_only=True, limit=None)
        pages = await EventRepository(session).failing(user=user.name)
    failing = len({task for task, _, _ in pages})

    async def approvals() -> int | None:
        if remediations is None:
            return 0 if not runs else None
        # What waits for the user may be another's run, on a cluster the policy names them for.
        if not runs and not named_anywhere(user.name, remediations.settings.remediation_approvers):
            return 0
        return len(await waiting_for(remediations, user.name))

    async def still_open() -> int:
        # A run Temporal closed (terminated in the Web UI) never wrote its row: not open.
        if remediations is None or not runs:
            return len(runs)
        now = await remediations.states_now([RemediationSummary.model_validate(r) for r in runs])
        return sum(now.get(row.run_key) != "aborted" for row in runs)

    async def briefing() -> BriefingStatus | None:
        return None if briefings is None else await briefings.read_status(user.name)

    async def in_time(work: Awaitable[T], what: str) -> T | None:
        try:
            async with asyncio.timeout(budget):
                return await work
        except Exception as exc:
            log.warning("context for %s: %s unknown (%s)", user.name, what, type(exc).__name__)
            return None

    waiting, status, open_now = await asyncio.gather(
        in_time(approvals(), "approvals"),
        in_time(briefing(), "briefing"),
        in_time(still_open(), "open runs"),
    )
    ready, given = status.at(datetime.now(UTC)) if status else (False, False)
    name = user.assistant_name or DEFAULT_ASSISTANT
    if ready:
        zh = f"用户问候时，请调用 greet 工具播报今日简报。({name}: call greet for the briefing.)"
        en = f"When the user greets {name}, call greet to say today's briefing."
    elif waiting:
        zh = f"有 {waiting} 个修复在等审批，可调用 what_needs_me。"
        en = f"Fixes waiting for approval: {waiting}. Call what_needs_me."
    elif failing:
        row, row_en = failing_in_a_row(pages)
        zh = f"有 {failing} 个监控一直检查失败{row}，可调用 what_needs_me。"
        en = f"Watches failing their checks: {failing}{row_en}. Call what_needs_me."
    else:
        zh = "用户询问运维情况时，使用语音工具回答。"
        en = "When the user asks about operations, answer with the voice tools."
    # In the user's language, as the voice tools answer them (Chinese unless they chose en).
    hint = en if (user.language or default_language) == Language.EN else zh
    return VoiceFacts(
        assistant_name=name,
        user=user.name,
        briefing_ready=ready,
        briefing_given_today=given,
        open_alerts=len(runs) if open_now is None else open_now,
        approvals_waiting=waiting,
        watches_failing=failing,
        hint=hint,
    )
