"""What a poll tells: its events numbered, stored with the page's state (the group commit of
ambient/watches/poll_store.py), then notified under their keys (``{task}/{life}/poll/{n}``),
so a retried or resumed poll reports each once. Those handed back before their deliveries
settled are the result's ``undelivered``: the next poll sends them again (docs/polling.md, 1).
A delivery that fails for good is counted and recorded as a ``watch.delivery_failed`` event;
one whose receiver asked to be tried later is handed to a deliver-later run (settled here).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.deliveries import MAX_SHOWN, delivery_key, targets_for
from ambient.domain.notify import (
    Message,
    NotificationKind,
    NotifyRequest,
    Target,
    redact_target,
)
from ambient.storage.models import Event
from ambient.storage.polls import WatchPoll
from ambient.storage.repositories import EventRepository
from ambient.watches.models import Failure
from ambient.watches.poll_store import InboxCopy, NewEvent, PageText, PollWrite
from ambient.watches.polling import PollEvent, PollRequest, page_message
from ambient.words import in_reader_words

if TYPE_CHECKING:
    from activities.deliveries import Recipient
    from activities.notify import NotifyActivities
    from ambient.clients.web import WebFetcher
    from ambient.storage import Database
    from ambient.watches.leases import LeaseBook
    from ambient.watches.poll_store import PollWriter

# A delivery is tried at least this many times inside the poll, and until a delivery lease
# has passed, before it counts as failed.
DELIVERY_ATTEMPTS = 4
# A try after a lease ends waits this much past it (the holder's lease ended by then).
LEASE_SLACK = 0.5

Found = Callable[[str | None], list[tuple[str, dict[str, Any]]]]


@dataclass(frozen=True, slots=True)
class Told:
    """An event the poll reported, held until its hand-back with its payload as compressed JSON:
    a payload as objects (dict, lists, strings) in a ``PollEvent`` cost ≈ 2.9 KB an event, as
    JSON text ≈ 1.1 KB, compressed ≈ 0.5 KB (a diff excerpt and its hits repeat each other's
    lines), and a page changing at every check holds up to ``MAX_EVENTS`` of them a poll
    (docs/benchmarks.md, "Worker memory", round 4). Payloads are JSON by construction (the
    events table stores them as JSON), so the text reads back as the same payload. Its key is
    not held: it is the poll's ``event_key(seq)`` (≈ 0.1 KB an event, a quarter of what one
    held cost; docs/benchmarks.md, 2026-12-07)."""

    seq: int
    kind: str
    at: datetime
    payload: bytes  # zlib, level 1: ≈ 10 µs an event, nearly level 6's size

    def event(self, key: str) -> PollEvent:
        """The event as handed back, under ``key`` (its poll's ``event_key(seq)``)."""
        payload = json.loads(zlib.decompress(self.payload))
        return PollEvent(seq=self.seq, kind=self.kind, key=key, at=self.at, payload=payload)


class PollHost(Protocol):
    """What a poll attempt uses of its process's poller (activities/polling.py)."""

    db: Database
    fetcher: WebFetcher
    notifier: NotifyActivities
    writer: PollWriter
    leases: LeaseBook

    async def recipient(self, user: str) -> Recipient: ...


class PollReports:
    """The events of one poll attempt: their numbers, storage, notifications and failures."""

    def __init__(self, poller: PollHost, request: PollRequest) -> None:
        self.poller = poller
        self.request = request
        self.key = (request.workflow_id, request.life)
        self.seq = request.seq  # the poll's last stored event
        self.events: list[Told] = []  # in order; ``told(...)`` makes them events again
        self.payload_bytes = 0  # the events' payloads as JSON: the result's size, nearly
        self.delivery_failures = 0
        self.event_failures = 0
        self.last_failure: Failure | None = None
        self.turn = asyncio.Lock()  # one event is numbered and stored at a time
        self.storing = 0  # checks storing or waiting for the turn
        self.sends: set[asyncio.Task[None]] = set()
        # Events whose deliveries have not settled (sent, or failed and told): the result's
        # ``undelivered``. The last result's start here, sent again when the poll resumes.
        self.unsettled: set[int] = set(request.redeliver)
        self.handed_back = False  # the result is built: late failures go to the next poll
        # The life's late failures (watch_polls), which the result tells the workflow.
        self.late_failures = request.late_failures_seen
        # plan()'s answer and the settings it was made from (read again every RECIPIENT_TTL).
        self._plan: tuple[Recipient, tuple[str | None, list[Target]]] | None = None

    async def store(
        self,
        urls: dict[str, Any],
        found: Found,
        now: datetime,
        *,
        page: PageText | None,
        what: str,
    ) -> bool:
        """Store (holding ``turn``) the events ``found`` returns with ``urls`` and the poll's
        mark in one transaction, then notify them; False (counted) when the write failed."""
        request = self.request
        try:
            inbox, others = await self.plan()
            write = PollWrite(
                poll=request.workflow_id,
                life=request.life,
                user=request.user,
                task=request.task,
                seq=self.seq,
                urls={u: s.model_dump(mode="json") for u, s in urls.items()},
                events=lambda old: self.numbered(found(old), inbox=inbox),
                page=page,
            )
            # Other checks wait for the turn: no linger for more polls' checks to join.
            stored = await self.poller.writer.write(write, hurry=self.storing > 1)
        except SQLAlchemyError as exc:
            activity.logger.warning("poll of %s: %s failed: %s", request.workflow_id, what, exc)
            self.event_failures += 1
            self.last_failure = Failure(what=what, error=str(exc)[:500], at=datetime.now(UTC))
            return False
        # The transaction committed: the poll now stands where the database says.
        if stored:
            self.seq = stored[-1].seq
        for new in stored:
            event = PollEvent(seq=new.seq, kind=new.kind, key=new.key, at=now, payload=new.payload)
            self.take(event)
            self.notify(event, others if inbox else request.targets)
        return True

    def numbered(
        self, found: list[tuple[str, dict[str, Any]]], *, inbox: str | None
    ) -> list[NewEvent]:
        """The events numbered after the poll's last, keyed, with inbox copies said in
        ``inbox`` (the user's language; None: no copies)."""
        events = []
        shown = redact_target("inbox", "")[:MAX_SHOWN]
        for seq, (kind, payload) in enumerate(found, start=self.seq + 1):
            key = self.event_key(seq)
            message = self.message(kind, payload) if inbox else None
            # Stored here, not sent: said in their language, as `send` says what it sends.
            said = in_reader_words(message, inbox).said_in(inbox) if message and inbox else None
            copy = InboxCopy(said, delivery_key(key, "inbox", ""), shown) if said else None
            events.append(NewEvent(seq=seq, kind=kind, key=key, payload=payload, inbox=copy))
        return events

    def message(self, kind: str, payload: dict[str, Any]) -> Message | None:
        return page_message(kind, payload, keywords=bool(self.request.config.keywords))

    async def plan(self) -> tuple[str | None, list[Target]]:
        """Where this watch's messages go now: (the user's inbox, written with the event, as
        the language its copy is said in, None when none is written; the other targets, sent
        after the commit)."""
        request = self.request
        recipient = await self.poller.recipient(request.user)
        if self._plan is not None and self._plan[0] is recipient:
            return self._plan[1]  # the same settings as the last check's: the same plan
        secrets = self.poller.notifier.secrets
        targets, _ = targets_for(NotificationKind.WATCH, request.targets, recipient, secrets)
        own = [t for t in targets if t.type == "inbox" and t.target in ("", request.user)]
        others = [t for t in targets if t not in own]
        inbox = recipient.language if recipient.exists and own else None
        self._plan = (recipient, (inbox, others))
        return self._plan[1]

    def take(self, event: PollEvent) -> None:
        """An event the result hands back (stored by this attempt or a dead one)."""
        payload = json.dumps(event.payload, default=str)
        packed = zlib.compress(payload.encode(), 1)
        # Its key is its number's: stored under it, or read back by it (``resume``).
        self.events.append(Told(event.seq, sys.intern(event.kind), event.at, packed))
        self.payload_bytes += len(payload)

    def told(self, told: Told) -> PollEvent:
        """An event held, as its result hands it back."""
        return told.event(self.event_key(told.seq))

    def event_key(self, seq: int) -> str:
        """The key of this poll's event ``seq`` (its idempotency key in the events table)."""
        return f"{self.request.task}/{self.request.life}/poll/{seq}"

    # --- notifications ----------------------------------------------------------------------

    def notify(self, event: PollEvent, targets: list[Target], *, again: bool = False) -> None:
        """Send the event's message to ``targets``, those not written with it (once per key);
        ``again``: an event an earlier poll handed back before its deliveries settled."""
        message = self.message(event.kind, event.payload) if targets else None
        if message is None:
            self.unsettled.discard(event.seq)
            return
        self.unsettled.add(event.seq)
        send = NotifyRequest(
            user=self.request.user,
            message=message,
            targets=targets,
            idempotency_key=event.key,
            task=self.request.task,
        )
        task = asyncio.create_task(self.deliver(event, send, again=again))
        self.sends.add(task)
        task.add_done_callback(self.sends.discard)

    async def deliver(self, event: PollEvent, send: NotifyRequest, *, again: bool = False) -> None:
        """Deliver once per key, retrying what is transient; a failure is counted and told.
        Tries go on until a delivery lease has passed: a send in flight elsewhere (a process
        that died in it, or still sends) answers "in flight" until its lease ends."""
        lease = self.poller.notifier.lease.total_seconds()
        first = time.monotonic()
        for attempt in itertools.count():
            last = attempt >= DELIVERY_ATTEMPTS - 1 and time.monotonic() - first >= lease
            try:
                result = await self.poller.notifier.send(send, heartbeat=False, last_try=last)
            except ApplicationError as exc:
                errors = [str(line) for line in exc.details] or [str(exc)]  # each failed target
                if exc.non_retryable or last:
                    break
                # Backing off, but never past the lease's end: a send held elsewhere is taken
                # over right after it (a lease after the first try outlasts any holder's).
                left = first + lease - time.monotonic()
                backoff = self.poller.notifier.retry_seconds * 2 ** min(attempt, 4)
                await asyncio.sleep(min(backoff, left + LEASE_SLACK) if left > 0 else backoff)
            else:
                # Those a receiver asked to try later are a deliver-later run's now: settled.
                errors = result.failure_lines()
                break
        if errors:
            await self.failed(event, send, errors, again=again)
        self.unsettled.discard(event.seq)

    async def failed(
        self, event: PollEvent, send: NotifyRequest, errors: list[str], *, again: bool
    ) -> None:
        """Count and tell a delivery that failed for good: once an event, whichever poll or
        process saw it (``again``: an earlier poll's process may have told it already)."""
        failure = Failure(
            what=f"delivery of {event.kind}", error="; ".join(errors)[:500], at=datetime.now(UTC)
        )
        told = f"{event.key}/delivery-failed"
        late = self.handed_back
        if not late and not again:
            self.delivery_failures += 1
            self.last_failure = failure
        try:
            async with self.poller.db.writing() as session:
                seen = select(Event.id).where(Event.idempotency_key == told)
                if await session.scalar(seen) is not None:
                    return  # told already (an earlier try, poll or process)
                await EventRepository(session).add(
                    "watch.delivery_failed",
                    user=self.request.user,
                    task=self.request.task,
                    payload={
                        "event": event.kind,
                        "title": send.message.title,
                        "errors": errors[:10],
                    },
                    idempotency_key=told,
                )
                # Decided now for one sent again: the poll may have handed back meanwhile.
                late = late or (again and self.handed_back)
                if again and not late:
                    self.delivery_failures += 1
                    self.last_failure = failure
                elif late:
                    # The result is gone: kept with the poll's mark (which exists: the event
                    # was stored with it), the watch's next poll reports it wherever it runs.
                    await session.execute(
                        update(WatchPoll)
                        .where(WatchPoll.task == self.key[0], WatchPoll.life == self.key[1])
                        .values(
                            late_failures=WatchPoll.late_failures + 1,
                            late_failure=failure.model_dump(mode="json"),
                        )
                    )
        except SQLAlchemyError as exc:  # the database is down: the failure is only logged
            activity.logger.warning("poll of %s: %s: %s", self.key[0], failure.what, exc)

    async def settle_deliveries(
        self, wait: float, heartbeat: Callable[[], None], beat_every: float
    ) -> None:
        """Give deliveries in flight ``wait`` seconds to finish (heartbeating meanwhile)."""
        deadline = time.monotonic() + wait
        with contextlib.suppress(asyncio.CancelledError):
            while self.sends and (left := deadline - time.monotonic()) > 0:
                await asyncio.wait(set(self.sends), timeout=min(left, beat_every))
                heartbeat()
        self.handed_back = True
