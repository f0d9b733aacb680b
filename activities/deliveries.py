"""A notification's deliveries as rows: where a message goes (`targets_for`, for a
`Recipient`), each delivery's row (`delivery_key`) and the posts it has sent (`RowPosts`), and how
a failed delivery is kept and said (`give_up`, `record_failure`). The notify activity
(activities/notify.py) and a poll's sends use them; docs/notifications.md, "Delivery".
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from temporalio import activity

from ambient.clients.notify.errors import TAKEN_OVER, TransientNotifyError
from ambient.clients.notify.secrets import SecretResolver
from ambient.domain.notify import (
    HANDING,
    INTERNAL_ERROR,
    KEY_HASH,
    NOTIFY_TRIES,
    Delivery,
    DeliveryStatus,
    NotificationKind,
    NotifyRequest,
    Target,
    handed_ended,
)
from ambient.domain.push import PushChannel, QuietHours, fallback_address
from ambient.log_redaction import redact
from ambient.storage import Database
from ambient.storage.models import Delivery as Row
from ambient.storage.repositories import DeliveryRepository, EventRepository, receivers_text

LEASE_MARGIN = timedelta(seconds=5)  # time to record the outcome after the send is cut off
GIVE_UP_TRIES = NOTIFY_TRIES  # the tries its callers give notify_given_up
MAX_KEY = 255  # deliveries.key
MAX_SHOWN = 512  # deliveries.target
POSTS = "posts:"  # a delivery row's provider_id while a message in several posts is under way
# A try cut off by its deadline after the message was handed over, before the answer.
HANDED_TIMED_OUT = (
    "permanent: no answer within {seconds:g}s after the message was handed to the receiver: "
    "it may have been delivered; not sent again"
)
GIVEN_UP = (
    "transient: no try finished this send (the last ended in flight, timed out or lost its worker)"
)
# A delivery retried or deferred whose channel left the user's channels (the push config edited:
# the channel removed, its address changed, its kinds narrowed) before a try sent it.
UNWANTED_CAUSE = (
    "permanent: its channel was taken out of your push config (removed, its target changed or "
    "its kinds narrowed)"
)
UNWANTED = f"{UNWANTED_CAUSE} before a try sent it; not sent"
# What a delivery said "retrying" is told when quiet hours hold it back at a later try.
HELD_LATER = "suppressed: held back by quiet hours when tried again; not sent"


@dataclass(frozen=True)
class Recipient:
    """Who the notification is for, as the delivery rules need it."""

    name: str
    exists: bool
    is_admin: bool
    email: str | None
    phone: str | None
    timezone: str
    channels: list[PushChannel]
    quiet_hours: QuietHours | None
    config_problems: list[str]
    # What they read: their choice, else the server's default (the registry's).
    language: str = "zh"


@dataclass
class RowPosts:
    """Posts sent so far, kept on the row (``posts:N``): a retry or a new worker goes on after."""

    db: Database
    key: str
    done: int
    attempt: int  # the row's attempts when this try took it: which try holds it
    handed: bool = False
    several: bool = False

    async def sent(self) -> None:
        self.done += 1
        await self._kept(lambda rows: rows.posted(self.key, self.attempt, f"{POSTS}{self.done}"))

    async def handing(self) -> None:
        """See `Posts.handing`: kept until this try records its outcome. A post of a message
        in several is counted sent as it goes: the count not lost, the next try posts the rest."""
        handing = f"{POSTS}{self.done + 1}" if self.several else HANDING
        await self._kept(lambda rows: rows.posted(self.key, self.attempt, handing))

    async def refused(self) -> None:
        """See `Posts.refused`."""
        sent = f"{POSTS}{self.done}" if self.done else None
        await self._kept(lambda rows: rows.posted(self.key, self.attempt, sent))

    async def hold(self, seconds: float) -> None:
        """The send's deadline moved to ``seconds`` from now: the row's lease with it."""
        until = datetime.now(UTC) + timedelta(seconds=seconds) + LEASE_MARGIN
        await self._kept(lambda rows: rows.hold(self.key, self.attempt, until))

    async def _kept(self, write: Callable[[DeliveryRepository], Awaitable[int]]) -> None:
        """``write`` on this try's row; a try that lost it (its lease ran out and another took
        it over, or it was ended) stops sending there: the try holding the row sends, and
        ``_deliver`` answers this one as in flight."""
        async with self.db.writing() as session:
            if not await write(DeliveryRepository(session)):
                raise TransientNotifyError(TAKEN_OVER)


def delivery_key(request_key: str, channel: str, target: str) -> str:
    """The delivery row's key: readable when it fits the column, else its target hashed and,
    only for a request key too long to keep whole, that key cut too."""
    # The hash covers the request's key too: two long request keys that differ only past the
    # cut are two deliveries, not one. The key stays stable across retries either way. Its
    # first 128 bits: the whole hash cut a 190-character request key (a threshold watch's of
    # long names), whose deliveries `under` and `defer` then did not find by its prefix.
    key = f"{request_key}:{channel}:{target}"
    if len(key) <= MAX_KEY:
        return key
    hashed = f":{channel}:sha256:{hashlib.sha256(key.encode()).hexdigest()[:KEY_HASH]}"
    return request_key[: MAX_KEY - len(hashed)] + hashed


def targets_for(
    kind: NotificationKind,
    wanted: list[Target],
    recipient: Recipient,
    secrets: SecretResolver,
) -> tuple[list[Target], bool]:
    """Where a message of ``kind`` goes, each place once (`Target.same_destination`: a robot
    named by its key and by a `secret:NAME` of ``secrets`` the recipient may use is one, an
    address in other capitals too), the first target naming it kept as written, and whether
    quiet hours hold it back now."""
    # Compared by place, kept as written: its text stays in `delivery_key`, so a retry of a
    # delivery begun before places were compared this way finds its row (no second send).
    resolve = partial(secrets.usable, user=recipient.name, is_admin=recipient.is_admin)
    targets: list[Target] = []
    configured = [c for c in recipient.channels if c.wants(kind)]
    for target in [*(t for t in wanted if t.wants(kind)), *configured]:
        named = target.target.strip()
        if target.type == "inbox" and named == recipient.name:
            named = ""  # the user's own inbox however named: one delivery (key) of it
        elif not named and target.type != "inbox":  # the push config's address, else the profile's
            named = fallback_address(
                target.type, recipient.channels, recipient.email, recipient.phone
            )
        target = Target(type=target.type, target=named)
        if not any(target.same_destination(t, resolve) for t in targets):
            targets.append(target)
    quiet = False
    if recipient.quiet_hours is not None:
        local = datetime.now(ZoneInfo(recipient.timezone)).time()
        quiet = recipient.quiet_hours.covers(local, kind)
    return targets, quiet


def failure(channel: str, target: str, error: str) -> Delivery:
    """A failed delivery; its error is shown to users and kept in rows and events: never
    with a URL's query, a NUL of the receiver's words as U+FFFD (as its row holds them)."""
    return Delivery(
        channel=channel,
        target=target,
        status=DeliveryStatus.FAILED,
        error=receivers_text(redact(error)),
    )


def internal_error(channel: str, target: str, exc: Exception, where: str) -> Delivery:
    """A bug, which a retry would meet again: failed for good, logged with its traceback."""
    activity.logger.exception("delivery on %s failed %s", channel, where)
    return failure(channel, target, f"permanent: {INTERNAL_ERROR}{type(exc).__name__}: {exc}")


async def give_up(
    session: Any,
    request: NotifyRequest,
    key: str,
    channel: str,
    shown: str,
    row: Row | None,
    now: datetime | None = None,
) -> bool:
    """The delivery ``key`` (its ``row``, if any) is over: unless settled, failed for good.
    With ``now``, one a live lease holds then is left to its holder: False (its send may be
    under way; given up meanwhile, the message it sends would be said not sent)."""
    error = GIVEN_UP if row is None or row.status == "pending" else row.error or ""
    if row is not None and row.status == "pending" and now is not None and not row.takeable(now):
        return False
    handed = handed_ended(row.provider_id, request.cancelled) if row is not None else None
    if row is not None and row.status == "pending" and handed:
        # Its last try died (or was cancelled) handing the message over: the receiver may have it.
        error = handed
        if await DeliveryRepository(session).give_up(key, error, now):
            await record_failure(session, request, failure(channel, shown, error), key, True)
        return True
    if row is not None and row.status == "pending":
        # Else listed as in flight for ever; a transient failure, so the same notification
        # sent again later still takes it. Read before this write: a try that settled it
        # since (another worker's, on PostgreSQL), or took its expired lease, has the last
        # word, not this give-up.
        if not await DeliveryRepository(session).give_up(key, GIVEN_UP, now):
            return True
    elif row is not None and row.status == DeliveryStatus.DEFERRED:
        if not await DeliveryRepository(session).retries_ended(key):  # its last answer kept
            return True
    if error.startswith("transient:"):  # else sent, held or refused: settled
        await record_failure(session, request, failure(channel, shown, error), key, True)
    return True


async def give_up_unwanted(
    session: Any, request: NotifyRequest, row: Row, now: datetime, forced: bool = False
) -> bool:
    """``row``'s channel is no longer wanted: one failed for now or deferred ends saying so
    (and what of it went), not with its receiver's last answer as if that had stopped it; one
    left in flight is given up as any (its send may have gone), once no live lease holds it
    (False: left to its holder), or ``forced``. ``row`` was read before: a try that took it
    since sends it, and its outcome is the row's and the only one said."""
    if row.status == "pending":
        lease = None if forced else now
        return await give_up(session, request, row.key, row.channel, row.target, row, lease)
    if row.takeable(now):
        error = UNWANTED if not posts_sent(row.provider_id) else f"{UNWANTED_CAUSE}{what_went(row)}"
        await end_unsent(session, request, row, error, now)
    return True


async def end_unsent(
    session: Any, request: NotifyRequest, row: Row, error: str, now: datetime
) -> bool:
    """End ``row``'s delivery for good with ``error``, said once; False (nothing said) if a try
    took it, sent it or settled it since ``row`` was read: ended then, its user would hear "not
    sent" of a message its receiver gets."""
    if not await DeliveryRepository(session).end(row.key, error, now):
        return False
    await record_failure(session, request, failure(row.channel, row.target, error), row.key, True)
    return True


def what_went(row: Row) -> str:
    """How a delivery that is ended now stands, said after why it ends: its last try may have
    handed it over (in flight when it ended, or handing the message to the receiver), part of it
    may have been posted, or nothing of it went."""
    if row.status == "pending":
        how = "died handing it to the receiver" if row.provider_id == HANDING else "ended in flight"
        return f"; its last try {how}: it may have been delivered; not sent again"
    if posts := posts_sent(row.provider_id):
        return f"; {posts} of its posts were sent, the rest not"
    return "; not sent"


def posts_sent(provider_id: str | None) -> int:
    """The posts of a message in several an earlier try sent (a row's ``posts:N``)."""
    provider = provider_id or ""
    return int(provider[len(POSTS) :]) if provider.startswith(POSTS) else 0


async def record_failure(
    session: Any, request: NotifyRequest, delivery: Delivery, key: str, last_try: bool
) -> None:
    """A `delivery.failed` event the user sees: once while it is retried, once when it failed
    for good (refused, or a transient failure on the last try), so none says "retrying" after
    the retries are over."""
    transient = (delivery.error or "").startswith("transient:")
    retrying = transient and not last_try
    kind = "transient" if retrying else "gave-up" if transient else "permanent"
    await EventRepository(session).add(
        "delivery.failed",
        user=request.user,
        task=request.task,
        payload={
            "channel": delivery.channel,
            "target": delivery.target,
            "error": (delivery.error or "").split(": ", 1)[-1],
            "retrying": retrying,
            "title": request.message.title,
        },
        # Hashed: the delivery key may hold a raw target (and events keep their key forever).
        idempotency_key=(f"delivery.failed:{kind}:" + hashlib.sha256(key.encode()).hexdigest()),
    )
