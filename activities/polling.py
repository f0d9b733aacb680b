"""The poll of a web monitor: one long-running activity that checks on a fixed-rate grid
and hands back only what the history must show (docs/watches.md, "Polling").

- this module: the activities (``poll_pages``, ``end_poll``, ``lost_poll_alive``) and what
  the polls of a process share (the users' push settings, the group commit);
- activities/poll_session.py: one attempt of one poll (resume, the grid, hand back);
- activities/poll_checks.py: a page's check and what it does with the answer;
- activities/poll_reports.py: its events stored, notified, and failures counted;
- activities/poll_upkeep.py: leases, sweeps for dead processes and closed runs, mailbox.

docs/polling.md states the invariants these parts keep together.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

from temporalio import activity
from temporalio.client import Client

from activities.deliveries import Recipient
from activities.notify import NotifyActivities
from activities.poll_session import PollSession
from activities.poll_upkeep import PollUpkeep
from ambient.clients.web import WebFetcher
from ambient.storage import Database
from ambient.watches.leases import Lease, may_answer
from ambient.watches.poll_ends import EndRequest, request_ends
from ambient.watches.poll_store import PollWriter
from ambient.watches.polling import EndPoll, LostPollCheck, PollEnd, PollRequest, PollResult

# How long the polls of this process trust what they read of a user's push settings (one
# read per user, shared by all of that user's watches).
RECIPIENT_TTL = 60.0


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
        self.sessions: dict[tuple[str, str], PollSession] = {}
        # Every attempt running here (two of one watch may overlap, one in ``sessions``) and
        # the one task that ends them all when the worker shuts down: a task of each poll's
        # own, with its frame and waiter, cost ≈ 0.6 KB a watch for as long as the poll ran
        # (docs/benchmarks.md, "Worker memory").
        self.running: set[PollSession] = set()
        self._shutdown: asyncio.Task[None] | None = None
        # The users' push settings, read at most every RECIPIENT_TTL seconds per user.
        self._recipients: dict[str, tuple[float, asyncio.Future[Recipient]]] = {}
        # The leases, sweeps and mailbox of these polls; the worker runs ``upkeep`` beside it.
        self.keeper = PollUpkeep(db, self.sessions, dead_after, uuid.uuid4().hex)
        self.leases = self.keeper.leases
        self.upkeep = self.keeper.run

    @activity.defn
    async def poll_pages(self, request: PollRequest) -> PollResult:
        """Check the pages on the grid until there is something to hand back (see module)."""
        session = PollSession(self, request)
        key = (request.workflow_id, request.life)
        lease = Lease(
            request.workflow_id,
            request.life,
            session.run_id,
            request.poll,
            task_token=activity.info().task_token,
            first_check_in=session.first_check_in,
            interval_seconds=request.interval_seconds,
        )
        claim = await self.leases.claim(lease, started=datetime.fromtimestamp(session.started, UTC))
        if claim is None:
            # Another live poll of this watch holds it (a later one, or this poll's attempt
            # still alive elsewhere): hand back without fetching (docs/polling.md, 2).
            activity.logger.info("poll %s of %s gives way to the poll holding it", lease.poll, key)
            return session.result()
        earlier = self.sessions.get(key)
        if earlier is not None:
            # An earlier poll of this run, here, or one of a run before it (reset or
            # terminated: one run of a workflow is open at a time): it stops now.
            earlier.end(PollEnd.CONTROL if earlier.run_id == session.run_id else PollEnd.CLOSED)
        self.sessions[key] = session
        self.running.add(session)
        # At the worker's shutdown every running poll hands back (one task for all).
        if self._shutdown is None:
            # Made in the first poll's context: the worker's shutdown event is the same for all.
            self._shutdown = asyncio.create_task(self._on_shutdown())
        elif self._shutdown.done():
            session.end(PollEnd.SHUTDOWN)  # started while the worker shuts down
        try:
            client: Client | None = activity.client()  # the client of this activity's worker
        except RuntimeError:  # none in a test environment
            client = None
        self.keeper.ensure_running(client)
        released = False
        try:
            # Requests committed from now on are read by the mailbox; resume() looks for
            # one committed before.
            await self.keeper.mailbox_open.wait()
            await session.resume(claim.first_due())
            return await session.run()
        except Exception:
            # A failed attempt's lease goes now, not at the next flush: Temporal's retry in
            # another process within those seconds gave way to it, handing back empty (a
            # check asked for was never made).
            released = await self.leases.release(lease)
            raise
        finally:
            self.running.discard(session)
            if not released:
                self.leases.ended.append(lease)
            if self.sessions.get(key) is session:
                del self.sessions[key]

    async def _on_shutdown(self) -> None:
        await activity.wait_for_worker_shutdown()
        for session in list(self.running):
            session.end(PollEnd.SHUTDOWN)

    async def recipient(self, user: str) -> Recipient:
        """The user's push settings read within ``RECIPIENT_TTL`` (shared; a failure not kept)."""
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
        asked = EndRequest(request.workflow_id, request.life, request.run_id, request.poll)
        session = self.sessions.get((request.workflow_id, request.life))
        if session is not None and session.asked_by(asked):
            session.end(PollEnd.CONTROL)
            return True
        # Running in another worker process (or not started yet): that process reads this.
        await request_ends(self.db, [asked])
        return False

    @activity.defn
    async def lost_poll_alive(self, check: LostPollCheck) -> bool:
        """Whether a poll reported lost may still hand back (then the workflow waits for it)."""
        lost = check.lost
        lease = Lease(check.workflow_id, lost.life, lost.run_id, lost.poll, lost.process)
        return await may_answer(self.db, lease)
