"""The poll of a web monitor: one long-running activity that checks on a fixed-rate grid.

A check that changes nothing costs a fetch (a conditional GET, or a hash of the raw body)
and no workflow task. What must be told — a change, a keyword hit, a page that starts
failing or recovers — is stored as an event, numbered within the watch's life, in the same
transaction as the poll's position (``watch_polls``) and the page's snapshot, then notified
with the event's key: a retried or resumed poll reports each event once and never loses the
last seen state. The poll hands its events to the workflow (its result is in history) when a
page fails or recovers, when it holds ``MAX_EVENTS``, after a bounded window, or at once
when the workflow asks (pause, update, trigger, stop: ``end_poll``, a local activity that
reaches the poll in this process, or writes a request that the process running it reads
within ``END_POLL_READ`` seconds).

A poll whose worker process is killed is started again by the workflow when a live process
reports it (``upkeep``): every process that runs polls writes every ``LEASE_EVERY`` seconds
that it is alive and which polls it holds (ambient/storage/leases.py), and every
``SWEEP_EVERY`` seconds signals ``poll_lost`` to the workflows of polls whose process has
not written for its ``dead_after``. The poll's heartbeat timeout is only the backstop.

A workflow run that closes without ending its poll (terminated from the Web UI or the CLI,
timed out) cannot ask it to: every ``CLOSED_EVERY`` seconds each process running polls asks
the server which runs closed lately and ends its polls of those runs, so a terminated watch
stops fetching and notifying within about that long, not at its next heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.notify import MAX_SHOWN, NotifyActivities, Recipient, delivery_key
from activities.watches import page_text
from ambient.clients.extract import EXTRACTOR_VERSION
from ambient.clients.web import FetchError, WebFetcher
from ambient.domain.notify import (
    DeliveryStatus,
    Message,
    NotificationKind,
    NotifyRequest,
    Target,
    redact_target,
)
from ambient.domain.polling import (
    WEB_MONITOR_TYPE,
    EndPoll,
    PollEnd,
    PollEvent,
    PollLost,
    PollProgress,
    PollRequest,
    PollResult,
    page_message,
)
from ambient.domain.tasks import Failure, UrlState
from ambient.domain.watches import content_hash, diff_pages
from ambient.storage import Database
from ambient.storage.leases import (
    Lease,
    LeaseBook,
    dead_leases,
    drop_leases,
    end_lost,
    forget_processes,
)
from ambient.storage.models import Event, WatchPoll, utcnow
from ambient.storage.poll_ends import (
    EndRequest,
    EndRequestCursor,
    drop_end_requests,
    request_ends,
)
from ambient.storage.polls import InboxCopy, NewEvent, PageText, PollWrite, PollWriter
from ambient.storage.repositories import EventRepository

# The upkeep runs beside the worker, outside any activity; inside one, activity.logger.
log = logging.getLogger("ambient.polling")

# Events one result carries at most (a result is one history event; keep it small).
MAX_EVENTS = 20
# How long the polls of this process trust what they read of a user's push settings (one
# read per user, shared by all of that user's watches).
RECIPIENT_TTL = 60.0
# A delivery is tried this many times inside the poll before it counts as failed.
DELIVERY_ATTEMPTS = 4
# On hand-back, deliveries still running get this long before the poll returns without them
# (they finish in the background; their failures are counted by the watch's next poll).
HANDBACK_WAIT = {PollEnd.CONTROL: 1.0, PollEnd.SHUTDOWN: 1.0, PollEnd.CLOSED: 1.0}
DEFAULT_HANDBACK_WAIT = 30.0
# While polls run, each worker process reads the end requests for polls in other processes
# this often (one indexed query); requests are kept this long (the workflow cancels through
# Temporal after 10 s anyway).
END_POLL_READ = 0.5
END_POLL_KEEP = timedelta(minutes=5)
# A process that runs polls says it is alive (with the polls it started and ended since)
# this often, and looks for dead processes' polls this often; it tells at most SWEEP_BATCH
# workflows a sweep, SWEEP_SIGNALS at a time. A poll that started is written within
# START_FLUSH seconds (the starts of that second in one transaction), so a process killed
# soon after starting a poll leaves its lease behind.
LEASE_EVERY = 5.0
START_FLUSH = 1.0
SWEEP_EVERY = 10.0
SWEEP_BATCH = 500
SWEEP_SIGNALS = 32
# How often a process running polls asks which workflow runs closed lately, and how far
# back (the visibility store lags the close a little; clocks differ a little).
CLOSED_EVERY = 30.0
CLOSED_MARGIN = timedelta(minutes=2)
# The rows of processes silent this long that hold no lease are dropped, this often.
FORGET_AFTER = timedelta(hours=1)
FORGET_EVERY = 3600.0


def _client() -> Client | None:
    """The client of the worker running this activity (none in a test environment)."""
    try:
        return activity.client()
    except RuntimeError:
        return None


def _wake(nap: asyncio.Future[None]) -> None:
    if not nap.done():
        nap.set_result(None)


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class PagePoller:
    """The polls running in this worker process, and how the workflow reaches them."""

    def __init__(
        self,
        db: Database,
        fetcher: WebFetcher,
        notifier: NotifyActivities,
        *,
        dead_after: float = 30.0,
    ) -> None:
        self.db = db
        self.fetcher = fetcher
        self.notifier = notifier
        # The checks that found something are written together (one transaction a batch).
        self.writer = PollWriter(db)
        self._sessions: dict[tuple[str, str], PollSession] = {}
        # Deliveries that failed after their poll handed back, per (workflow id, life).
        self.late_failures: dict[tuple[str, str], list[Failure]] = {}
        self._reader: asyncio.Task[None] | None = None
        # The users' push settings, read at most every RECIPIENT_TTL seconds per user.
        self._recipients: dict[str, tuple[float, asyncio.Future[Recipient]]] = {}
        # Which polls this process holds, written every LEASE_EVERY seconds by upkeep().
        self.leases = LeaseBook(db, uuid.uuid4().hex, dead_after)
        self._upkeep: asyncio.Task[None] | None = None
        self.lost_told = 0  # polls of dead processes this one reported to their workflows
        self._forget_at = 0.0  # when to drop the rows of long-dead processes next
        self.closed_ended = 0  # polls ended because their workflow run had closed
        self._closed_since = utcnow() - CLOSED_MARGIN  # where the next look for closes starts

    @activity.defn
    async def poll_pages(self, request: PollRequest) -> PollResult:
        """Check the pages on the grid until there is something to hand back (see module)."""
        session = PollSession(self, request)
        key = (request.workflow_id, request.life)
        self._sessions[key] = session
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self.read_end_requests())
        lease = Lease(request.workflow_id, request.life, session.run_id, request.poll)
        self.leases.start(lease)
        if self._upkeep is None or self._upkeep.done():
            # Started with the worker (worker.py); in a worker built without it, while polls run.
            self._upkeep = asyncio.create_task(self.upkeep(_client(), forever=False))
        try:
            await session.resume()
            return await session.run()
        finally:
            self.leases.end(lease)
            if self._sessions.get(key) is session:
                del self._sessions[key]

    async def recipient(self, user: str) -> Recipient:
        """The user's push settings as read at most ``RECIPIENT_TTL`` seconds ago (one read
        for all of the user's polls; a failed read is not kept)."""
        now = time.monotonic()
        cached = self._recipients.get(user)
        if (
            cached is None
            or now - cached[0] > RECIPIENT_TTL
            or (cached[1].done() and (cached[1].cancelled() or cached[1].exception() is not None))
        ):
            cached = (now, asyncio.ensure_future(self.notifier.recipient(user)))
            self._recipients[user] = cached
        return await asyncio.shield(cached[1])

    @activity.defn
    async def end_poll(self, request: EndPoll) -> bool:
        """Ask the watch's poll to hand back now; False when it does not run in this process."""
        session = self._sessions.get((request.workflow_id, request.life))
        if session is not None:
            session.end(PollEnd.CONTROL)
            return True
        # Running in another worker process (or not at all): that process reads this.
        await request_ends(self.db, [EndRequest(request.workflow_id, request.life)])
        return False

    async def upkeep(self, client: Client | None, *, forever: bool = True) -> None:
        """Say this process is alive with its polls; report dead processes' polls. With
        ``forever`` it runs until cancelled and then leaves (a clean stop drops its leases)."""
        if forever:
            if self._upkeep is not None and not self._upkeep.done():
                self._upkeep.cancel()
            self._upkeep = asyncio.current_task()
        next_beat = next_sweep = 0.0
        next_closed = time.monotonic() + CLOSED_EVERY
        failing = False
        try:
            while forever or self._sessions or self.leases.started or self.leases.ended:
                # Every failure is logged and tried again at the next beat: only a stop ends
                # this. New polls are written within START_FLUSH, the beat every LEASE_EVERY.
                now = time.monotonic()
                if now >= next_beat or (self.leases.started and not failing):
                    next_beat = now + LEASE_EVERY
                    try:
                        await self.leases.flush()
                        failing = False
                    except Exception as exc:  # kept for the next flush
                        failing = True
                        log.warning("writing this process's poll leases failed: %s", exc)
                if client is not None and time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + SWEEP_EVERY
                    try:
                        await self.sweep(client)
                    except Exception as exc:
                        log.warning("looking for polls of dead worker processes failed: %s", exc)
                if client is not None and self._sessions and time.monotonic() >= next_closed:
                    next_closed = time.monotonic() + CLOSED_EVERY
                    try:
                        await self.end_closed(client)
                    except Exception as exc:
                        log.warning("looking for watches closed under their polls failed: %s", exc)
                await asyncio.sleep(START_FLUSH)
        finally:
            if forever:
                with contextlib.suppress(SQLAlchemyError):
                    await asyncio.shield(self.leases.leave())

    async def sweep(self, client: Client) -> int:
        """Tell the workflows of polls held by dead processes; returns how many were told."""
        if time.monotonic() >= self._forget_at:
            self._forget_at = time.monotonic() + FORGET_EVERY
            await forget_processes(self.db, FORGET_AFTER)
        lost = await dead_leases(self.db, self.leases.process, SWEEP_BATCH)
        if not lost:
            return 0
        await end_lost(self.db, lost)
        gate = asyncio.Semaphore(SWEEP_SIGNALS)

        async def tell(lease: Lease) -> bool:
            async with gate:
                try:
                    handle = client.get_workflow_handle(lease.task, run_id=lease.run_id)
                    await handle.signal(
                        "poll_lost",
                        PollLost(
                            life=lease.life,
                            run_id=lease.run_id,
                            poll=lease.poll,
                            process=lease.process,
                        ),
                    )
                except RPCError as exc:
                    if exc.status != RPCStatusCode.NOT_FOUND:  # the run has ended: done
                        log.warning("telling %s its poll is lost failed: %s", lease.task, exc)
                        return False
                return True

        told = await asyncio.gather(*(tell(lease) for lease in lost))
        done = [lease for lease, ok in zip(lost, told, strict=True) if ok]
        await drop_leases(self.db, done)
        self.lost_told += len(done)
        log.info("told %d workflows that their poll's worker process is dead", len(done))
        return len(done)

    async def end_closed(self, client: Client) -> int:
        """End this process's polls whose workflow run has closed (terminated, timed out:
        nobody will take their result); returns how many."""
        since = utcnow() - CLOSED_MARGIN
        closed: set[tuple[str, str]] = set()
        async for execution in client.list_workflows(
            closed_runs_query(self._closed_since), page_size=1000
        ):
            closed.add((execution.id, execution.run_id))
        self._closed_since = since
        ended = 0
        for (workflow_id, _), session in list(self._sessions.items()):
            if (workflow_id, session.run_id) in closed and session.ended is None:
                session.end(PollEnd.CLOSED)
                ended += 1
        if ended:
            self.closed_ended += ended
            log.info("ended %d polls whose workflow run had closed", ended)
        return ended

    async def read_end_requests(self) -> None:
        """While this process runs polls, end those another process's workflow asked to end."""
        cursor = EndRequestCursor(self.db)
        swept = 0.0
        while self._sessions:
            try:
                for request in await cursor.read():
                    session = self._sessions.get((request.task, request.life))
                    if session is not None and (
                        request.poll is None
                        or (session.request.poll, session.run_id) == (request.poll, request.run_id)
                    ):
                        session.end(PollEnd.CONTROL)
                if time.monotonic() - swept > END_POLL_KEEP.total_seconds():
                    swept = time.monotonic()
                    await drop_end_requests(self.db, utcnow() - END_POLL_KEEP)
            except SQLAlchemyError as exc:  # read again next time; the fallback is a cancel
                log.warning("reading poll end requests failed: %s", exc)
            await asyncio.sleep(END_POLL_READ)


def closed_runs_query(since: datetime) -> str:
    """The visibility query for the web monitors' runs closed since ``since``: only their
    workflow type (the namespace's reminders, briefings, remediations, ... close too, and
    would be paged through every ``CLOSED_EVERY`` seconds by every process running polls)."""
    stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return (
        f"WorkflowType = '{WEB_MONITOR_TYPE}' "
        f"AND ExecutionStatus != 'Running' AND CloseTime >= '{stamp}'"
    )


class PollSession:
    """One attempt of one poll."""

    def __init__(self, poller: PagePoller, request: PollRequest) -> None:
        self.poller = poller
        self.request = request
        self.key = (request.workflow_id, request.life)
        self.run_id = activity.info().workflow_run_id or ""
        self.urls = {url: state.model_copy() for url, state in request.urls.items()}
        self.seq = request.seq
        self.next_due = time.time() + max(0.0, request.first_check_in)
        self.events: list[PollEvent] = []
        self.checks = 0
        self.delivery_failures = 0
        self.event_failures = 0
        self.last_failure: Failure | None = None
        self.ended: PollEnd | None = None
        self.nap: asyncio.Future[None] | None = None  # the wait for the next check, if any
        self.checking: asyncio.Future[None] | None = None  # the check in flight, if any
        self.turn = asyncio.Lock()  # one event is numbered and stored at a time
        self.sends: set[asyncio.Task[None]] = set()
        self.handed_back = False  # the result is built: late failures go to the next poll
        # Messages stored with their events (the inbox), by event key: not sent again.
        self.in_inbox: set[str] = set()
        interval = request.interval_seconds
        timeout = activity.info().heartbeat_timeout
        # Heartbeats between checks too, well inside the timeout (the SDK throttles them).
        self.beat_every = timeout.total_seconds() / 3 if timeout else max(interval, 60.0)
        # The server takes the first heartbeat at once and throttles the next ones: the first
        # carries the first check, not an empty start.
        self.last_beat = time.monotonic()
        self.beat_seq = -1  # the event number the last heartbeat carried

    def end(self, why: PollEnd) -> None:
        if self.ended is None:
            self.ended = why
        if self.nap is not None and not self.nap.done():
            self.nap.set_result(None)
        if self.checking is not None:
            self.checking.cancel()  # stored events are safe: one transaction each

    # --- resuming -------------------------------------------------------------------------

    async def resume(self) -> None:
        """Take over where an earlier attempt stopped: stored events first, then heartbeats."""
        request = self.request
        async with self.poller.db.session() as session:
            mark = await session.get(WatchPoll, (request.workflow_id, request.life))
            if mark is not None and mark.seq > self.seq:
                # Events stored by an attempt that never handed them back: they are this
                # poll's, and their deliveries may not have run.
                keys = [self.event_key(seq) for seq in range(self.seq + 1, mark.seq + 1)]
                rows = (
                    await session.execute(select(Event).where(Event.idempotency_key.in_(keys)))
                ).scalars()
                by_key = {row.idempotency_key: row for row in rows}
                for seq, key in enumerate(keys, start=self.seq + 1):
                    row = by_key.get(key)
                    if row is not None:
                        at = row.created_at.replace(tzinfo=row.created_at.tzinfo or UTC)
                        self.events.append(
                            PollEvent(seq=seq, kind=row.kind, key=key, at=at, payload=row.payload)
                        )
                self.urls = {url: UrlState.model_validate(s) for url, s in mark.urls.items()}
                self.seq = mark.seq
        details = activity.info().heartbeat_details
        if details:
            try:
                progress = PollProgress.model_validate(details[0])
            except ValueError:
                progress = None
            if progress is not None and progress.seq == self.seq:
                # Same events, fresher page states (validators, counts) and grid position.
                self.urls, self.checks = progress.urls, progress.checks
                self.next_due = progress.next_due.timestamp()
        for event in self.events:
            # The inbox message was stored with the event if it went there; the rest again
            # (their delivery rows keep them single).
            self.notify(event, self.request.targets, inbox_done=False)

    # --- the loop ---------------------------------------------------------------------------

    async def run(self) -> PollResult:
        request = self.request
        deadline = time.time() + request.window_seconds
        shutdown = asyncio.create_task(self._on_shutdown())
        try:
            while self.ended is None:
                wait = self.next_due - time.time()
                if wait > 0:
                    await self.sleep(min(wait, self.beat_every))
                    if time.monotonic() - self.last_beat >= self.beat_every:
                        self.heartbeat()  # alive while waiting
                    continue
                if not await self.check_all():
                    break  # a control came during the check
                self.checks += 1
                self.advance_grid()
                if (
                    self.checks == 1
                    or self.seq != self.beat_seq
                    or time.monotonic() - self.last_beat >= self.beat_every
                ):
                    # The server takes a heartbeat every 0.8 x its timeout at most: building
                    # one per check would only be dropped. The first check and every new
                    # event go at once (the SDK sends them when the server takes them).
                    self.heartbeat()
                self.ended = self.ended or self.why_hand_back(deadline)
        except asyncio.CancelledError:
            # Cancelled by the workflow or the server: hand back what was done.
            self.ended = self.ended or PollEnd.CONTROL
        finally:
            shutdown.cancel()
        await self.settle_deliveries(HANDBACK_WAIT.get(self.ended or PollEnd.CONTROL))
        return self.result()

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` or until end() (a timer and a future: cheaper than a timeout)."""
        if self.ended is not None:
            return
        loop = asyncio.get_running_loop()
        self.nap = nap = loop.create_future()
        timer = loop.call_later(seconds, _wake, nap)
        try:
            await nap
        finally:
            timer.cancel()
            self.nap = None

    async def _on_shutdown(self) -> None:
        await activity.wait_for_worker_shutdown()
        self.end(PollEnd.SHUTDOWN)

    def why_hand_back(self, deadline: float) -> PollEnd | None:
        if self.request.first_only:
            return PollEnd.FIRST
        if any(e.kind in ("watch.failing", "watch.recovered") for e in self.events):
            return PollEnd.FAILURE
        if len(self.events) >= MAX_EVENTS:
            return PollEnd.FULL
        if self.next_due > deadline:
            # Hand back between checks, so the next poll starts before the next check is due.
            return PollEnd.WINDOW
        return None

    def advance_grid(self) -> None:
        """The next slot of the fixed-rate grid after now (slots missed are skipped)."""
        interval = self.request.interval_seconds
        self.next_due += interval
        late = time.time() - self.next_due
        if late > 0:
            self.next_due += math.ceil(late / interval) * interval

    async def check_all(self) -> bool:
        """Check every URL; False if a control ended the poll meanwhile (the check stops)."""
        urls = self.request.config.urls
        work = self.check(str(urls[0])) if len(urls) == 1 else self.check_each()
        self.checking = checking = asyncio.ensure_future(work)
        try:
            await checking
        except asyncio.CancelledError:
            this = asyncio.current_task()
            if self.ended is not None and not (this is not None and this.cancelling()):
                return False  # end() stopped it; an unfinished check just did not happen
            raise  # the poll itself is cancelled
        finally:
            self.checking = None
        return True

    async def check_each(self) -> None:
        await asyncio.gather(*(self.check(str(url)) for url in self.request.config.urls))

    def heartbeat(self) -> None:
        self.last_beat = time.monotonic()
        self.beat_seq = self.seq
        kinds = [event.kind for event in self.events]
        progress = PollProgress(
            seq=self.seq,
            urls=self.urls,
            next_due=_at(self.next_due),
            checks=self.checks,
            changes=kinds.count("watch.change") + kinds.count("watch.hit"),
            hits=kinds.count("watch.hit"),
        )
        activity.heartbeat(progress.model_dump(mode="json"))

    # --- one URL ----------------------------------------------------------------------------

    async def check(self, url: str) -> None:
        request = self.request
        seen = self.urls.get(url) or self.urls.setdefault(url, UrlState())
        known = seen.hash is not None
        now = datetime.now(UTC)
        try:
            fetched = await self.poller.fetcher.fetch(
                url,
                etag=seen.etag if known else None,
                last_modified=seen.last_modified if known else None,
            )
        except FetchError as exc:
            await self.failed(url, str(exc), now)
            return
        if fetched.not_modified:
            await self.answered(url, "not_modified", now)
            return
        raw_hash = hashlib.sha256(fetched.body).hexdigest()
        fresh = {"etag": fetched.etag, "last_modified": fetched.last_modified, "raw_hash": raw_hash}
        if known and raw_hash == seen.raw_hash and seen.extractor == EXTRACTOR_VERSION:
            # The same bytes as last time: the same text, without extracting it again.
            seen.etag, seen.last_modified = fetched.etag, fetched.last_modified
            await self.answered(url, "unchanged", now)
            return
        html = fetched.body.decode(errors="replace")
        config = request.config
        try:
            lines = await asyncio.to_thread(
                page_text, html, config.selector_for(url), config.ignore_patterns
            )
        except Exception as exc:  # the page (or its selector) cannot be read: a failed check
            await self.failed(url, f"cannot read the page's text: {exc}", now)
            return
        new_hash = content_hash(lines)
        if new_hash == seen.hash:
            seen.etag, seen.last_modified = fetched.etag, fetched.last_modified
            seen.raw_hash, seen.extractor = raw_hash, EXTRACTOR_VERSION
            await self.answered(url, "unchanged", now)
            return
        await self.changed(url, lines, new_hash, fresh, now)

    async def changed(
        self, url: str, lines: list[str], new_hash: str, fresh: dict[str, Any], now: datetime
    ) -> None:
        """Store the new text; a change (not a first sight or a rule change) is an event."""
        request = self.request
        seen = self.urls[url]
        # A hash made by other extraction rules is not comparable: take the text as a new
        # baseline instead of reporting the rules' difference as a change of the page.
        comparable = seen.hash is not None and seen.extractor in (EXTRACTOR_VERSION, None)
        after = seen.model_copy(
            update={
                **fresh,
                "hash": new_hash,
                "extractor": EXTRACTOR_VERSION,
                "last_checked_at": now,
                "last_outcome": "changed" if comparable else "baseline",
            }
        )
        if seen.failing or seen.failures:
            after.failures, after.failing, after.last_error = 0, False, None
        if comparable:
            after.last_change_at = now
        page = PageText(url, seen.hash if comparable else None, new_hash, "\n".join(lines))

        def found(old: str | None) -> list[tuple[str, dict[str, Any]]]:
            stored: list[tuple[str, dict[str, Any]]] = []
            if seen.failing:
                stored.append(("watch.recovered", {"url": url, "after_failures": seen.failures}))
            if comparable:
                diff = diff_pages(old.split("\n") if old else [], lines, request.config.keywords)
                payload = {"url": url, "excerpt": diff.excerpt, "hits": diff.hits}
                stored.append(("watch.hit" if diff.hits else "watch.change", payload))
            return stored

        # Not stored (a database error): the state stays, so the next check sees it again.
        await self.tell(url, after, found, now, page=page, what=f"storing the change of {url}")

    async def failed(self, url: str, error: str, now: datetime) -> None:
        seen = self.urls[url]
        after = seen.model_copy(
            update={
                "failures": seen.failures + 1,
                "last_error": error[:500],
                "last_outcome": "error",
                "last_checked_at": now,
            }
        )
        if after.failures < self.request.config.failure_threshold or seen.failing:
            self.urls[url] = after
            return
        after.failing = True
        payload = {"url": url, "error": error[:500], "failures": after.failures}
        await self.tell_one(url, after, "watch.failing", payload, now)

    async def answered(self, url: str, outcome: str, now: datetime) -> None:
        seen = self.urls[url]
        if not seen.failing:  # the usual check: the page answered as before
            seen.failures, seen.last_error = 0, None
            seen.last_outcome, seen.last_checked_at = outcome, now
            return
        after = seen.model_copy(
            update={
                "failures": 0,
                "failing": False,
                "last_error": None,
                "last_outcome": outcome,
                "last_checked_at": now,
            }
        )
        payload = {"url": url, "after_failures": seen.failures}
        await self.tell_one(url, after, "watch.recovered", payload, now)

    async def tell_one(
        self, url: str, after: UrlState, kind: str, payload: dict[str, Any], now: datetime
    ) -> None:
        """Store and notify one event that needs no old text (failing, recovered)."""
        what = f"storing {kind} of {url}"
        await self.tell(url, after, lambda _: [(kind, payload)], now, what=what)

    async def tell(
        self,
        url: str,
        after: UrlState,
        found: Callable[[str | None], list[tuple[str, dict[str, Any]]]],
        now: datetime,
        *,
        page: PageText | None = None,
        what: str,
    ) -> None:
        """Store the events ``found`` returns (given the page's old text), with the page's
        text and the poll's new mark, in one transaction (shared with other polls' checks);
        then notify them. A failed write is counted; the state stays as it was."""
        request = self.request
        async with self.turn:
            try:
                inbox, others = await self.plan()
                write = PollWrite(
                    poll=request.workflow_id,
                    life=request.life,
                    user=request.user,
                    task=request.task,
                    seq=self.seq,
                    urls={
                        u: s.model_dump(mode="json") for u, s in {**self.urls, url: after}.items()
                    },
                    events=lambda old: self.numbered(found(old), inbox=inbox),
                    page=page,
                )
                stored = await self.poller.writer.write(write)
            except SQLAlchemyError as exc:
                self.note_event_failure(what, exc)
                return
            events = [
                PollEvent(seq=e.seq, kind=e.kind, key=e.key, at=now, payload=e.payload)
                for e in stored
            ]
            self.adopt(url, after, events, (inbox, others))

    def numbered(self, found: list[tuple[str, dict[str, Any]]], *, inbox: bool) -> list[NewEvent]:
        """The events with their numbers and keys (and inbox copies when the inbox is a
        target), after the poll's last."""
        events = []
        for seq, (kind, payload) in enumerate(found, start=self.seq + 1):
            key = self.event_key(seq)
            message = self.message(kind, payload) if inbox else None
            copy = None
            if message is not None:
                copy = InboxCopy(
                    message=message,
                    delivery_key=delivery_key(key, "inbox", ""),
                    shown_target=redact_target("inbox", "")[:MAX_SHOWN],
                )
            events.append(NewEvent(seq=seq, kind=kind, key=key, payload=payload, inbox=copy))
        return events

    def message(self, kind: str, payload: dict[str, Any]) -> Message | None:
        message = page_message(kind, payload, keywords=bool(self.request.config.keywords))
        return message.model_copy(update={"kind": NotificationKind.WATCH}) if message else None

    async def plan(self) -> tuple[bool, list[Target]]:
        """Where this watch's messages go now: (the user's inbox, the other targets).

        The inbox is written with the event; the others are sent after the commit. The
        user's push settings are read at most every ``RECIPIENT_TTL`` seconds.
        """
        request = self.request
        recipient = await self.poller.recipient(request.user)
        probe = NotifyRequest(
            user=request.user,
            message=Message(title="", body="", kind=NotificationKind.WATCH),
            targets=request.targets,
            idempotency_key="plan",
        )
        targets, _ = self.poller.notifier.targets_for(probe, recipient)
        own = [t for t in targets if t.type == "inbox" and t.target in ("", request.user)]
        others = [t for t in targets if t not in own]
        return recipient.exists and bool(own), others

    def adopt(
        self, url: str, after: UrlState, events: list[PollEvent], plan: tuple[bool, list[Target]]
    ) -> None:
        """The transaction committed: the poll now stands where the database says."""
        self.urls[url] = after
        if events:
            self.seq = events[-1].seq
        inbox, others = plan
        for event in events:
            self.events.append(event)
            self.notify(event, others, inbox_done=inbox)

    def event_key(self, seq: int) -> str:
        return f"{self.request.task}/{self.request.life}/poll/{seq}"

    def note_event_failure(self, what: str, error: BaseException) -> None:
        activity.logger.warning("poll of %s: %s failed: %s", self.request.workflow_id, what, error)
        self.event_failures += 1
        self.last_failure = Failure(what=what, error=str(error)[:500], at=datetime.now(UTC))

    # --- notifications ----------------------------------------------------------------------

    def notify(self, event: PollEvent, others: list[Target], *, inbox_done: bool) -> None:
        """Send the event's message to the targets not written with it (once per key)."""
        message = self.message(event.kind, event.payload)
        targets = others if inbox_done else self.request.targets
        if message is None or not targets:
            return
        send = NotifyRequest(
            user=self.request.user,
            message=message,
            targets=targets,
            idempotency_key=event.key,
            task=self.request.task,
        )
        task = asyncio.create_task(self.deliver(event, send))
        self.sends.add(task)
        task.add_done_callback(self.sends.discard)

    async def deliver(self, event: PollEvent, send: NotifyRequest) -> None:
        """Deliver once per key, retrying what is transient; a failure is counted and told."""
        errors: list[str] = []
        for attempt in range(DELIVERY_ATTEMPTS):
            try:
                result = await self.poller.notifier.send(send, heartbeat=False)
            except ApplicationError as exc:
                errors = [str(exc)]
                if exc.non_retryable or attempt == DELIVERY_ATTEMPTS - 1:
                    break
                await asyncio.sleep(2.0 * 2**attempt)
                continue
            errors = [
                f"{d.channel}: {d.error}"
                for d in result.deliveries
                if d.status is DeliveryStatus.FAILED
            ]
            break
        if not errors:
            return
        failure = Failure(
            what=f"delivery of {event.kind}", error="; ".join(errors)[:500], at=datetime.now(UTC)
        )
        self.record_delivery_failure(failure)
        with contextlib.suppress(SQLAlchemyError):
            async with self.poller.db.write_session() as session:
                await EventRepository(session).add(
                    "watch.delivery_failed",
                    user=self.request.user,
                    task=self.request.task,
                    payload={
                        "event": event.kind,
                        "title": send.message.title,
                        "errors": errors[:10],
                    },
                    idempotency_key=f"{event.key}/delivery-failed",
                )
                await session.commit()

    def record_delivery_failure(self, failure: Failure) -> None:
        if self.handed_back:
            # The result is gone: the watch's next poll counts it.
            self.poller.late_failures.setdefault(self.key, []).append(failure)
            return
        self.delivery_failures += 1
        self.last_failure = failure

    async def settle_deliveries(self, wait: float | None) -> None:
        """Give deliveries in flight a bounded time to finish (heartbeating meanwhile)."""
        deadline = time.monotonic() + (DEFAULT_HANDBACK_WAIT if wait is None else wait)
        with contextlib.suppress(asyncio.CancelledError):
            while self.sends and (left := deadline - time.monotonic()) > 0:
                await asyncio.wait(set(self.sends), timeout=min(left, self.beat_every))
                self.heartbeat()
        self.handed_back = True
        for failure in self.poller.late_failures.pop(self.key, []):
            self.delivery_failures += 1
            self.last_failure = failure

    def result(self) -> PollResult:
        return PollResult(
            ended=self.ended or PollEnd.CONTROL,
            checks=self.checks,
            seq=self.seq,
            urls=self.urls,
            next_check_in=max(0.0, self.next_due - time.time()),
            events=self.events,
            delivery_failures=self.delivery_failures,
            event_failures=self.event_failures,
            last_failure=self.last_failure,
        )
