"""What happened and what was sent, for one user: events, inbox messages and deliveries.

One set of reads behind the MCP tools (list_events, read_inbox, list_deliveries), the API
routes (/events, /inbox, /deliveries) and the CLI (`ambient events|inbox|deliveries`).
A caller sees their own records; an admin may name another user (the operator's CLI may
read any). Deliveries show targets redacted (no tokens, keys or query strings).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, TypeVar, get_args
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from ambient.domain.configs import NUL_REFUSED, holds_nul
from ambient.domain.deliver_later import retries_ended_before
from ambient.domain.notify import CHANNEL_TYPES, INTERNAL_ERROR, made_here, redact_target
from ambient.refusals import N_
from ambient.storage.audit import AuditRepository
from ambient.storage.models import AuditRecord, Delivery
from ambient.storage.repositories import DeliveryRepository, EventRepository, InboxRepository
from ambient.storage.users import UserRepository, user_subject

# pending: in flight; deferred: its receiver said "try again later", a deliver-later run has it.
DeliveryState = Literal["pending", "deferred", "sent", "failed", "suppressed"]
# Every event kind the product records (a filter takes no other), as the pages name it (the
# kind stays the id in the API and the CLI).
EVENT_KINDS = {
    "watch.hit": N_("keyword found"),
    "watch.change": N_("page changed"),
    "watch.failing": N_("checks failing"),
    "watch.recovered": N_("checks work again"),
    "watch.breach": N_("threshold crossed"),
    "watch.recovery": N_("back within the threshold"),
    "watch.breach_unwatched": N_("breach no longer watched"),
    "watch.already_told": N_("already told, not told again"),
    "watch.poll_failed": N_("a check failed"),
    "watch.url_removed": N_("page no longer watched"),
    "watch.delivery_failed": N_("notification not delivered"),
    "watch.remediation_requested": N_("remediation asked for"),
    "watch.remediation_started": N_("remediation started"),
    "watch.remediation_refused": N_("remediation refused"),
    "watch.paused": N_("paused"),
    "watch.resumed": N_("resumed"),
    "watch.stopped": N_("stopped"),
    "schedule.reminder": N_("reminder"),
    "schedule.news_digest": N_("news digest"),
    "schedule.delivery_failed": N_("notification not delivered"),
    "agent.digest": N_("summary sent"),
    "agent.held": N_("nothing worth telling"),
    "delivery.failed": N_("push not delivered"),
    "briefing.prepared": N_("briefing prepared"),
    "briefing.given": N_("briefing given"),
    "briefing.pushed": N_("briefing pushed"),
    "briefing.failed": N_("briefing failed"),
    "remediation.resolved": N_("remediation resolved"),
    "remediation.joined_as_name": N_("alert joined another's remediation as a name only"),
}
# A `delivery.failed` that says `retrying: true` is not the end (a transient failure retried,
# or handed to a deliver-later run): the pages name it so, not "not delivered".
RETRYING = N_("push not delivered yet; retrying")


def event_name(kind: str, payload: dict[str, Any] | None) -> str:
    """The name the pages give an event (to translate): its kind's, or a retried failure's."""
    if kind == "delivery.failed" and (payload or {}).get("retrying") is True:
        return RETRYING
    return EVENT_KINDS.get(kind, kind)


class ScopeError(PermissionError):
    """The caller asked for another user's records without being an admin."""


class FilterError(ValueError):
    """A filter no record can match (a status or channel the product has not): "field: why"."""

    @property
    def field(self) -> str:
        return str(self).partition(": ")[0]


def _storable(**filters: str | None) -> None:
    """Refuse a text filter no row can hold: a NUL (PostgreSQL refuses it in a query)."""
    for name, value in filters.items():
        if value is not None and holds_nul(value):
            raise FilterError(f"{name}: {NUL_REFUSED}")


class EventPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    kind: str
    user: str | None
    task: str | None
    payload: dict[str, Any]
    created_at: datetime


class InboxMessagePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    kind: str
    title: str
    body: str
    link: str | None
    read: bool
    created_at: datetime


class DeliveryPublic(BaseModel):
    id: int
    user: str | None
    task: str | None
    kind: str | None
    channel: str
    target: str = Field(description="redacted: no tokens, keys or query strings")
    status: str
    attempts: int
    error: str | None
    lease_until: datetime | None = Field(description="while pending: in flight until then")
    retry_until: datetime | None = Field(
        description="while deferred: tried again until then (its receiver said try again later)"
    )
    created_at: datetime
    updated_at: datetime


async def whose(session: AsyncSession, caller: str, is_admin: bool, user: str | None) -> str:
    """The user whose records to read: the caller, or (admins only) the one named."""
    if user is None or user == caller:
        return caller
    if not is_admin:
        raise ScopeError(f"only an admin reads another user's records; you are {caller!r}")
    # A misspelt name is refused, not read as "none".
    await UserRepository(session).existing(
        user, FilterError(f"user: no user {user!r}; omit user for your own records")
    )
    return user


async def audit_records(
    session: AsyncSession,
    caller: str,
    is_admin: bool,
    *,
    subject: str | None,
    subject_prefix: str | None,
    **filters: Any,
) -> list[AuditRecord]:
    """Audit records, oldest first, as ``caller`` may read them: an admin all, a member those
    about their own user only (asked for another's, ScopeError), whatever the door."""
    if not is_admin:
        own = user_subject(caller)
        if subject_prefix is not None or (subject is not None and subject != own):
            raise ScopeError(f"members read only the records about themselves (subject={own})")
        subject = own
    # Paged by the last id: none past one still being committed.
    return await AuditRepository(session).list(
        subject=subject, subject_prefix=subject_prefix, settled=True, **filters
    )


T = TypeVar("T")


async def found_for(
    session: AsyncSession, user: str | None, rows: list[T], *, everyone: bool = True
) -> list[T]:
    """The ``rows`` an operator's read of ``user`` found; none for a user that does not exist is
    refused: a misspelt name read as "none" said nothing happened. (A deleted user's records
    are still read: the operator's history is whole.) ``everyone``: the read may name no user
    (its refusal says so)."""
    if user is not None and not rows:
        hint = "omit it for everyone's records" if everyone else "`ambient user list` names them"
        await UserRepository(session).existing(user, FilterError(f"user: no user {user!r}; {hint}"))
    return rows


RETRIES_ENDED = "; its retries ended"  # a deferred row's error, its give-up past


def delivery_public(row: Delivery, ended_before: datetime, *, operator: bool) -> DeliveryPublic:
    """A delivery as the doors show it: a deferred one whose give-up fell ``ended_before``
    (`retries_ended_before`) failed, its retries ended (its run was terminated: no code
    said so); to a member, an error the product made is `error_shown`."""
    public = DeliveryPublic.model_validate(row, from_attributes=True)
    # Rows written before targets were redacted on write still hold the raw target.
    shown: dict[str, Any] = {"target": redact_target(row.channel, row.target)}
    if row.retries_ended(ended_before):
        shown |= {"status": "failed", "error": f"{row.error}{RETRIES_ENDED}"}
    shown["error"] = error_shown(shown.get("error", row.error), operator=operator)
    return public.model_copy(update=shown)


def error_shown(error: str | None, *, operator: bool) -> str | None:
    """A delivery's error as its reader sees it: one the product made (`INTERNAL_ERROR`: a
    bug, the database's text, its SQL or host) is an administrator's."""
    if error and made_here(error) and not operator:
        return f"{error.partition(INTERNAL_ERROR)[0]}{INTERNAL_ERROR}its text is an administrator's"
    return error


async def events(
    session: AsyncSession,
    user: str | None,
    *,
    kind: str | None = None,
    task: str | None = None,
    since: datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
    operator: bool,
    zone: str | None = None,
) -> list[EventPublic]:
    """Events newest first, page by page with ``before_id`` (``user`` None: everyone's); read
    by a member (not ``operator``), as `event_public` shows them. A ``since`` without an
    offset is a wall time in ``zone``, the reader's (as search_logs reads one), else UTC."""
    _storable(kind=kind, task=task)
    if kind is not None and kind not in EVENT_KINDS:
        raise FilterError(f"kind: {kind!r} is not {', '.join(EVENT_KINDS)}")
    if since is not None and since.tzinfo is None and zone:
        since = since.replace(tzinfo=ZoneInfo(zone))
    rows = await EventRepository(session).list(
        user=user, kind=kind, task=task, since=since, before_id=before_id, limit=limit
    )
    return [event_public(row, operator=operator) for row in rows]


def event_public(row: Any, *, operator: bool) -> EventPublic:
    """An event as its reader sees it: a failure's error the product made (a delivery.failed's:
    the database's text, its host) is an administrator's, as in the deliveries."""
    event = EventPublic.model_validate(row)
    if isinstance(error := event.payload.get("error"), str):
        event.payload = {**event.payload, "error": error_shown(error, operator=operator)}
    return event


async def inbox(
    session: AsyncSession,
    user: str,
    *,
    unread_only: bool = False,
    before_id: int | None = None,
    limit: int = 50,
) -> list[InboxMessagePublic]:
    rows = await InboxRepository(session).list(
        user, limit=limit, unread_only=unread_only, before_id=before_id
    )
    return [InboxMessagePublic.model_validate(row) for row in rows]


async def deliveries(
    session: AsyncSession,
    user: str | None,
    *,
    status: str | None = None,
    channel: str | None = None,
    task: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
    operator: bool,
) -> list[DeliveryPublic]:
    """Deliveries newest first; page with ``before_id`` (``user`` None: everyone's). A status
    or channel that does not exist is refused, never answered with nothing. Read by a member
    (not ``operator``), an internal error's text is masked, as their sends say it."""
    if status is not None and status not in get_args(DeliveryState):
        raise FilterError(f"status: {status!r} is not {', '.join(get_args(DeliveryState))}")
    if channel is not None and channel not in CHANNEL_TYPES:
        raise FilterError(f"channel: {channel!r} is not {', '.join(CHANNEL_TYPES)}")
    _storable(task=task)
    ended = retries_ended_before(datetime.now(UTC))
    rows = await DeliveryRepository(session).list(
        user=user,
        status=status,
        channel=channel,
        task=task,
        before_id=before_id,
        limit=limit,
        ended_before=ended,
    )
    return [delivery_public(row, ended, operator=operator) for row in rows]
