"""What keeps the polls of a worker process honest, beside the polls themselves: its leases
(ambient/watches/leases.py), sweeps for dead processes' polls and for closed runs, and the
mailbox of end requests (ambient/watches/poll_ends.py). docs/polling.md states the invariants.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from ambient import no_answer
from ambient.storage import Database
from ambient.storage.models import utcnow
from ambient.watches.leases import (
    Lease,
    LeaseBook,
    dead_leases,
    drop_leases,
    end_lost,
    forget_processes,
)
from ambient.watches.poll_ends import EndRequestCursor, drop_end_requests
from ambient.watches.polling import WEB_MONITOR_TYPE, PollEnd, PollLost

if TYPE_CHECKING:
    from activities.poll_session import PollSession


# The upkeep runs beside the worker, outside any activity; inside one, activity.logger.
log = logging.getLogger("ambient.polling")

# While polls run, each worker process reads the end requests for polls in other processes
# this often (one indexed query); requests are kept this long (the workflow cancels through
# Temporal after 10 s anyway).
END_POLL_READ = 0.5
END_POLL_KEEP = timedelta(minutes=5)
# A process that runs polls says it is alive (dropping the leases of polls ended since) this
# often, and looks for dead processes' polls this often; a sweep reads up to SWEEP_READ of
# them and starts them again in the order their next checks fall due, SWEEP_BATCH at a time
# and SWEEP_SIGNALS at once, saying it is alive between batches (a sweep of thousands takes
# longer than LEASE_EVERY). Its upkeep wakes every TICK seconds.
LEASE_EVERY = 5.0
TICK = 1.0
SWEEP_EVERY = 5.0
SWEEP_READ = 25_000
SWEEP_BATCH = 500
SWEEP_SIGNALS = 32
# How often a process running polls asks which workflow runs closed lately, and how far
# back (the visibility store lags the close a little; clocks differ a little).
CLOSED_EVERY = 30.0
CLOSED_MARGIN = timedelta(minutes=2)
# Why a sweep failed a dead process's attempt (an operator sees it as the poll's last failure).
DEAD_PROCESS = "its worker process stopped saying it is alive; the poll runs again elsewhere"
# The rows of processes silent this long that hold no lease are dropped, this often.
FORGET_AFTER = timedelta(hours=1)
FORGET_EVERY = 3600.0


class PollUpkeep:
    """The leases, sweeps and mailbox of one worker process's polls (``sessions``)."""

    def __init__(
        self,
        db: Database,
        sessions: Mapping[tuple[str, str], PollSession],
        dead_after: float,
        process: str,
    ) -> None:
        self.db = db
        self.sessions = sessions  # the poller's own dict: the polls running now
        self.leases = LeaseBook(db, process, dead_after)
        self._task: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        # Set once the running reader knows where it reads from (see poll_pages).
        self.mailbox_open = asyncio.Event()
        self._forget_at = 0.0  # when to drop the rows of long-dead processes next
        self._next_beat = 0.0  # when to say this process is alive next
        self._closed_since = utcnow() - CLOSED_MARGIN  # where the next look for closes starts

    def ensure_running(self, client: Client | None) -> None:
        """A poll started: read the mailbox, and keep the leases if the worker does not."""
        if self._reader is None or self._reader.done():
            self.mailbox_open.clear()
            self._reader = asyncio.create_task(self.read_end_requests())
        if self._task is None or self._task.done():
            # Started with the worker (worker.py); in a worker built without it, while polls run.
            self._task = asyncio.create_task(self.run(client, forever=False))

    async def run(self, client: Client | None, *, forever: bool = True) -> None:
        """Beat and sweep; with ``forever`` until cancelled, then leave (dropping its leases)."""
        if forever:
            if self._task is not None and not self._task.done():
                self._task.cancel()
            self._task = asyncio.current_task()
        next_sweep = 0.0
        next_closed = time.monotonic() + CLOSED_EVERY
        try:
            while forever or self.sessions or self.leases.ended:
                # Every failure is logged and tried again at the next beat: only a stop ends
                # this.
                await self.beat()
                if client is not None and time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + SWEEP_EVERY
                    await _logged(self.sweep(client), "looking for polls of dead worker processes")
                if client is not None and self.sessions and time.monotonic() >= next_closed:
                    next_closed = time.monotonic() + CLOSED_EVERY
                    await _logged(
                        self.end_closed(client), "looking for watches closed under their polls"
                    )
                await asyncio.sleep(TICK)
        finally:
            if forever:
                with contextlib.suppress(SQLAlchemyError):
                    await asyncio.shield(self.leases.leave())

    async def beat(self) -> None:
        """Say this process is alive with its polls, when it is time to."""
        if time.monotonic() < self._next_beat:
            return
        self._next_beat = time.monotonic() + LEASE_EVERY
        # Those ended since are kept for the next flush.
        await _logged(self.leases.flush(), "writing this process's poll leases")

    async def sweep(self, client: Client) -> int:
        """Start again dead processes' polls, soonest due first (taking over thousands takes a
        while); how many were handled. A batch that handled none stops it till the next."""
        if time.monotonic() >= self._forget_at:
            self._forget_at = time.monotonic() + FORGET_EVERY
            await forget_processes(self.db, FORGET_AFTER)
        lost = sorted(await dead_leases(self.db, self.leases.process, SWEEP_READ), key=urgency)
        told = 0
        for start in range(0, len(lost), SWEEP_BATCH):
            if start:
                await self.beat()
            done = await self.tell(client, lost[start : start + SWEEP_BATCH])
            told += done
            if done == 0:
                break
        return told

    async def tell(self, client: Client, lost: list[Lease]) -> int:
        """Start these lost polls again; how many were handled. An attempt is failed by its task
        token (Temporal retries it in a live process, which takes over its grid and events: no
        workflow task); a lease without one (an older release) has its workflow told."""
        await end_lost(self.db, lost)
        gate = asyncio.Semaphore(SWEEP_SIGNALS)

        async def one(lease: Lease) -> bool:
            async with gate:
                try:
                    if lease.task_token is not None:
                        attempt = client.get_async_activity_handle(task_token=lease.task_token)
                        await attempt.fail(ApplicationError(DEAD_PROCESS, type="PollLost"))
                    else:
                        handle = client.get_workflow_handle(lease.task, run_id=lease.run_id)
                        lost = PollLost.model_validate(lease, from_attributes=True)
                        await handle.signal("poll_lost", lost)
                except RPCError as exc:
                    # NOT_FOUND: the run has ended, or the attempt did (it handed back, or
                    # Temporal already runs it again): nothing to do.
                    if not no_answer.not_found(exc):
                        log.warning("telling %s its poll is lost failed: %s", lease.task, exc)
                        return False
                return True

        told = await asyncio.gather(*(one(lease) for lease in lost))
        done = [lease for lease, ok in zip(lost, told, strict=True) if ok]
        await drop_leases(self.db, done)
        log.info("started again %d polls whose worker process is dead", len(done))
        return len(done)

    async def end_closed(self, client: Client) -> None:
        """End this process's polls whose run has closed (nobody will take their result)."""
        since = utcnow() - CLOSED_MARGIN
        query = closed_runs_query(self._closed_since)
        closed = {(e.id, e.run_id) async for e in client.list_workflows(query, page_size=1000)}
        self._closed_since = since
        ended = 0
        for (workflow_id, _), session in list(self.sessions.items()):
            if (workflow_id, session.run_id) in closed and session.ended is None:
                session.end(PollEnd.CLOSED)
                ended += 1
        if ended:
            log.info("ended %d polls whose workflow run had closed", ended)

    async def read_end_requests(self) -> None:
        """While this process runs polls, end those another process's workflow asked to end."""
        cursor = EndRequestCursor(self.db)
        swept = 0.0
        failing = 0  # reads failed in a row: the first said, the streak's end counted
        while self.sessions:
            try:
                for request in await cursor.read():
                    session = self.sessions.get((request.task, request.life))
                    if session is not None and session.asked_by(request):
                        session.end(PollEnd.CONTROL)
                if time.monotonic() - swept > END_POLL_KEEP.total_seconds():
                    swept = time.monotonic()
                    await drop_end_requests(self.db, utcnow() - END_POLL_KEEP)
                if failing:
                    log.warning("reading poll end requests works again after %d failed", failing)
                    failing = 0
            except Exception as exc:  # read again next time; the fallback is a cancel
                # A refused connection too (an OSError): the reader ended, and with it the
                # process's reading of pauses and stops, until a new poll started one. Said
                # once a streak: every half second, a minute's database restart was 120 lines.
                failing += 1
                log.log(
                    logging.WARNING if failing == 1 else logging.DEBUG,
                    "reading poll end requests failed: %s",
                    exc,
                )
            if cursor.last is not None:  # else a request before its first read went unread
                self.mailbox_open.set()
            await asyncio.sleep(END_POLL_READ)


async def _logged(work: Awaitable[object], what: str) -> None:
    """``work``, its failure logged: tried again at the next turn (only a stop ends the upkeep)."""
    try:
        await work
    except Exception as exc:
        log.warning("%s failed: %s", what, exc)


def urgency(lease: Lease) -> tuple[bool, datetime]:
    """A sweep's order: polls of unknown grid first, then by their slot after the last beat."""
    due = lease.due()
    return (due is not None, due or datetime.min.replace(tzinfo=UTC))


def closed_runs_query(since: datetime) -> str:
    """The visibility query for web monitors' runs closed since ``since`` (only their type:
    every other run closing would be paged through every ``CLOSED_EVERY`` seconds)."""
    stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return (
        f"WorkflowType = '{WEB_MONITOR_TYPE}' "
        f"AND ExecutionStatus != 'Running' AND CloseTime >= '{stamp}'"
    )
