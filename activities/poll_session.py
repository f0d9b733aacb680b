"""One attempt of one poll: resume where the last stopped, check on the grid, hand back.

The loop checks every URL on the watch's fixed-rate grid (check *k* is due at the first
check + *k* intervals; a late check does not delay the next), heartbeats its progress and
hands back when there is something the history must show (``why_hand_back``). A page's check
is `activities.poll_checks`; what it found is stored and notified by the poll's reports
(activities/poll_reports.py).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity

from activities.poll_checks import PageChecks
from activities.poll_reports import PollHost, PollReports
from ambient.storage.models import Event
from ambient.storage.polls import WatchPoll
from ambient.watches.models import Failure, UrlState
from ambient.watches.poll_ends import EndRequest, end_requested
from ambient.watches.poll_store import wake
from ambient.watches.polling import PollEnd, PollEvent, PollProgress, PollRequest, PollResult

# Events one result carries at most: as many as a window has checks (the workflow's
# POLL_CHECKS), so a page that changes at every check hands back once a window like the others
# (a hand-back costs a workflow task and a few history events; at 20 events a changing page
# paid it three times a window).
MAX_EVENTS = 60
# A result is one history event: the poll hands back before its events' payloads pass this
# (Temporal refuses a result over 2 MB and warns from 512 KB; a diff's lines are capped, see
# ambient/watches/page_changes.py, so one event stays far below it).
MAX_RESULT_BYTES = 256 * 1024
# On hand-back, deliveries still running get this long before the poll returns without them
# (they finish in the background, and the next poll sends them again in case this process
# ends them: the result's ``undelivered``; their failures are counted by the next poll); a
# poll asked to hand back now (a control, its worker's shutdown, its run closed) one second,
# and so does a poll of one check (a baseline, a check now, a resume or an update's check):
# someone waits for its answer, which a slow channel would hold 30 s (a deliver-only poll,
# which ends as one too, has waited for its sends already).
HANDBACK_WAIT = 30.0
HANDBACK_NOW = (PollEnd.CONTROL, PollEnd.SHUTDOWN, PollEnd.CLOSED, PollEnd.FIRST)


class PollSession(PageChecks):
    """One attempt of one poll."""

    def __init__(self, poller: PollHost, request: PollRequest) -> None:
        self.poller = poller
        self.request = request
        self.reports = PollReports(poller, request)
        self.run_id = activity.info().workflow_run_id or ""
        # The request is this attempt's own decoded copy, read nowhere else: its page states
        # are taken as they are (a copy per poll cost ~1 KB a watch for as long as it runs).
        self.urls = request.urls
        # Overdue (negative): checked at once, and the grid goes on from that slot. The start
        # is the grid's origin, written with the lease (a lost poll's successor goes on from it).
        self.started = time.time()
        # Temporal's clock at this start: the grid's instants are on it (the workflow's), and
        # this process's clock only counts time from here.
        self.clock = activity.info().started_time
        self.first_check_in = request.first_check_in
        if request.first_check_at is not None:
            self.first_check_in = (request.first_check_at - self.clock).total_seconds()
        self.next_due = self.started + self.first_check_in
        self.checks = 0
        self.ended: PollEnd | None = None
        self.nap: asyncio.Future[None] | None = None  # the wait for the next check, if any
        self.checking: asyncio.Future[Any] | None = None  # the check in flight, if any
        interval = request.interval_seconds
        timeout = activity.info().heartbeat_timeout
        # Heartbeats between checks too, well inside the timeout (the SDK throttles them).
        self.beat_every = timeout.total_seconds() / 3 if timeout else max(interval, 60.0)
        # The server takes the first heartbeat at once and throttles the next ones: the first
        # carries the first check, not an empty start.
        self.last_beat = time.monotonic()
        self.beat_seq = -1  # the event number the last heartbeat carried
        # Each page's reading rules (its selector and ignore patterns), fixed for the poll.
        self.readings = {str(u): request.config.reading(str(u)) for u in request.config.urls}

    def asked_by(self, request: EndRequest) -> bool:
        """Whether an end request is for this poll (no number: any; a process: only there)."""
        if request.process is not None and request.process != self.poller.leases.process:
            return False
        mine = (self.request.poll, self.run_id)
        return request.poll is None or (request.poll, request.run_id) == mine

    def end(self, why: PollEnd) -> None:
        if self.ended is None:
            self.ended = why
        if self.nap is not None:
            wake(self.nap)
        if self.checking is not None:
            self.checking.cancel()  # stored events are safe: one transaction each

    # --- resuming -------------------------------------------------------------------------

    async def resume(self, taken_over_at: datetime | None = None) -> None:
        """Take over from an earlier attempt: stored events, heartbeats, a dead one's slot;
        and send again the events the last poll handed back before their deliveries settled:
        its process may have ended them (a restart, a kill). A send still running there
        holds its row's lease; these tries wait it out (duplicates are told apart by key)."""
        request, reports = self.request, self.reports
        async with self.poller.db.session() as session:
            mark = await session.get(WatchPoll, (request.workflow_id, request.life))
            if mark is not None and mark.seq > reports.seq:
                # Events stored by an attempt that never handed them back: they are this
                # poll's, and their deliveries may not have run.
                stored = await self.stored(session, range(reports.seq + 1, mark.seq + 1))
                for seq in sorted(stored):
                    reports.take(stored[seq])
                reports.seq = mark.seq
            if mark is not None and mark.seq == reports.seq:
                # Its page states, where checked later than the request's: a page's failed
                # checks are kept there (heartbeats go far apart, and die with the process).
                marked = {url: UrlState.model_validate(s) for url, s in mark.urls.items()}
                # A page the request has no state of is this poll's only if one of its
                # attempts checked it (a page just added): else it was taken out of the watch
                # since, and put back it is a new page, not compared with its old text.
                since = activity.info().scheduled_time
                marked = {
                    url: s for url, s in marked.items() if url in self.urls or _checked(s) >= since
                }
                self.urls = _fresher(self.urls, marked)
            here = self.poller.leases.process
            asked = EndRequest(request.workflow_id, request.life, self.run_id, request.poll, here)
            if await end_requested(session, asked):
                # Asked before this process's mailbox was reading: the poll ends at once.
                self.end(PollEnd.CONTROL)
            if mark is not None and mark.late_failures > reports.late_failures:
                # Deliveries that failed after an earlier poll handed back: this result
                # reports them (the workflow keeps the count it has seen).
                reports.delivery_failures += mark.late_failures - reports.late_failures
                reports.late_failures = mark.late_failures
                if mark.late_failure is not None:
                    reports.last_failure = Failure.model_validate(mark.late_failure)
            held = await self.stored(session, request.redeliver) if request.redeliver else {}
        details = activity.info().heartbeat_details
        if details:
            try:
                progress = PollProgress.model_validate(details[0])
            except ValueError:
                progress = None
            if progress is not None and progress.seq == reports.seq:
                # Same events, fresher page states (validators, counts) and grid position.
                self.urls, self.checks = _fresher(self.urls, progress.urls), progress.checks
                self.next_due = progress.next_due.timestamp()
        if taken_over_at is not None:
            # The dead attempt checked on its grid until its process's last beat (a heartbeat
            # the server took may be minutes older): the first check is its slot after that.
            self.next_due = taken_over_at.timestamp()
        for told in reports.events:
            # The inbox message was stored with the event if it went there; the rest again
            # (their delivery rows keep them single).
            reports.notify(reports.told(told), request.targets)
        for seq in sorted(set(request.redeliver)):
            event = held.get(seq)
            if event is None:
                reports.unsettled.discard(seq)  # not stored (nothing to send)
                continue
            reports.notify(event, request.targets, again=True)

    async def stored(self, session: AsyncSession, seqs: Iterable[int]) -> dict[int, PollEvent]:
        """The events of this poll's numbers ``seqs`` that are stored, by number."""
        keys = {self.reports.event_key(seq): seq for seq in seqs}
        rows = await session.scalars(select(Event).where(Event.idempotency_key.in_(keys)))
        return {
            keys[key]: PollEvent(
                seq=keys[key], kind=row.kind, key=key, at=row.created_at, payload=row.payload
            )
            for row in rows
            if (key := row.idempotency_key) in keys
        }

    # --- the loop ---------------------------------------------------------------------------

    async def run(self) -> PollResult:
        deadline = time.time() + self.request.window_seconds
        try:
            if self.request.deliver_only:
                await self.wait_sends(deadline)
                self.ended = self.ended or PollEnd.FIRST
            while self.ended is None:
                wait = self.next_due - time.time()
                if wait > 0:
                    await self.sleep(min(wait, self.beat_every))
                    if time.monotonic() - self.last_beat >= self.beat_every:
                        self.heartbeat()  # alive while waiting
                    continue
                started = time.time()
                asked = await self.check_all()
                if asked is None:
                    break  # a control came during the check
                if asked:  # not every page's server asked for a pause: a check was made
                    self.checks += 1
                self.advance_grid(started)
                if (
                    (asked and self.checks == 1)
                    or self.reports.seq != self.beat_seq
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
        linger = 1.0 if (self.ended or PollEnd.CONTROL) in HANDBACK_NOW else HANDBACK_WAIT
        await self.reports.settle_deliveries(linger, self.heartbeat, self.beat_every)
        return self.result()

    async def wait_sends(self, deadline: float) -> None:
        """Wait until the sends settle, the window ends or a control ends the poll."""
        while self.ended is None and self.reports.sends:
            left = deadline - time.time()
            if left <= 0:
                return
            await self.sleep(min(left, self.beat_every), self.reports.sends)
            self.heartbeat()

    async def sleep(self, seconds: float, sends: Iterable[asyncio.Task[None]] = ()) -> None:
        """Wait ``seconds``, until end() or until one of ``sends`` is done (a timer and a
        future: cheaper than a timeout)."""
        if self.ended is not None:
            return
        loop = asyncio.get_running_loop()
        self.nap = nap = loop.create_future()
        timer = loop.call_later(seconds, wake, nap)
        for send in sends:
            send.add_done_callback(lambda _: wake(nap))
        try:
            await nap
        finally:
            timer.cancel()
            self.nap = None

    def why_hand_back(self, deadline: float) -> PollEnd | None:
        if self.request.first_only:
            return PollEnd.FIRST
        events = self.reports.events
        if any(e.kind in ("watch.failing", "watch.recovered") for e in events):
            return PollEnd.FAILURE
        if len(events) >= MAX_EVENTS or self.reports.payload_bytes >= MAX_RESULT_BYTES:
            return PollEnd.FULL
        if self.next_due > deadline:
            # Hand back between checks, so the next poll starts before the next check is due.
            return PollEnd.WINDOW
        return None

    def advance_grid(self, started: float) -> None:
        """The grid's next slot after now and half an interval after ``started`` (a late check
        is not followed at once by the next)."""
        interval = self.request.interval_seconds
        self.next_due += interval
        late = max(time.time(), started + interval / 2) - self.next_due
        if late > 0:
            self.next_due += math.ceil(late / interval) * interval

    async def check_all(self) -> bool | None:
        """Check every URL: whether any page was asked (one whose server asked for a pause is
        not); None if a control ended the poll meanwhile (the check stops)."""
        checks = [self.check(str(url)) for url in self.request.config.urls]
        work = checks[0] if len(checks) == 1 else asyncio.gather(*checks)
        self.checking = checking = asyncio.ensure_future(work)
        try:
            asked = await checking
        except asyncio.CancelledError:
            this = asyncio.current_task()
            if self.ended is not None and not (this is not None and this.cancelling()):
                return None  # end() stopped it; an unfinished check just did not happen
            raise  # the poll itself is cancelled
        finally:
            self.checking = None
        return any(asked) if isinstance(asked, list) else bool(asked)

    def heartbeat(self) -> None:
        self.last_beat = time.monotonic()
        self.beat_seq = self.reports.seq
        kinds = [event.kind for event in self.reports.events]
        progress = PollProgress(
            seq=self.reports.seq,
            urls=self.urls,
            next_due=datetime.fromtimestamp(self.next_due, UTC),
            checks=self.checks,
            changes=kinds.count("watch.change") + kinds.count("watch.hit"),
            hits=kinds.count("watch.hit"),
        )
        activity.heartbeat(progress.model_dump(mode="json"))

    def result(self) -> PollResult:
        reports = self.reports
        return PollResult(
            ended=self.ended or PollEnd.CONTROL,
            checks=self.checks,
            seq=reports.seq,
            urls=self.urls,
            next_check_in=max(0.0, self.next_due - time.time()),
            next_due=self.clock + timedelta(seconds=self.next_due - self.started),
            events=[reports.told(told) for told in reports.events],
            delivery_failures=reports.delivery_failures,
            event_failures=reports.event_failures,
            last_failure=reports.last_failure,
            late_failures=reports.late_failures,
            undelivered=sorted(reports.unsettled),
        )


def _fresher(kept: dict[str, UrlState], other: dict[str, UrlState]) -> dict[str, UrlState]:
    """Each page's state of the two that was checked last (``other``'s when as recent)."""
    merged = dict(kept)
    for url, state in other.items():
        mine = merged.get(url)
        if mine is None or _checked(state) >= _checked(mine):
            merged[url] = state
    return merged


def _checked(state: UrlState) -> datetime:
    return state.last_checked_at or datetime.min.replace(tzinfo=UTC)
