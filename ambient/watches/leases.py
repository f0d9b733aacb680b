"""Which worker process runs each watch's poll, and which processes are alive.

A poll is a long-running activity; when its worker process is killed, Temporal notices only
at the poll's heartbeat timeout, which is kept long because every heartbeat costs the server
a write. Instead each worker process that runs polls writes, every few seconds in one
transaction, that it is alive (``worker_processes``) and which polls it started or ended
since (``watch_poll_leases``). Any live process finds the leases of a process whose word is
older than that process's ``dead_after`` and tells their workflows (activities/polling.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, or_, select, tuple_, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from ambient.storage.db import Database, dialect_insert, table_of
from ambient.storage.models import utcnow
from ambient.storage.polls import WatchPollLease, WorkerProcess
from ambient.watches.poll_ends import EndRequest, add_end_requests, request_ends
from ambient.watches.poll_store import upsert
from ambient.watches.polling import slot_after_beat

LEASES = table_of(WatchPollLease)
# The process of a lease whose poll ended: nobody's, but its poll number still counts.
RELEASED = ""
PROCESSES = table_of(WorkerProcess)
# A process that holds no lease (the rows of dead ones are dropped then).
IDLE = ~exists().where(WatchPollLease.process == WorkerProcess.id)


@dataclass(frozen=True)
class Lease:
    task: str  # the workflow id
    life: str
    run_id: str
    poll: int
    process: str = ""
    # A dead process's lease (``dead_leases``): that process's last beat (None: its row is
    # gone) and when the poll took the watch, both by that process's clock.
    silent_since: datetime | None = field(default=None, compare=False)
    started_at: datetime | None = field(default=None, compare=False)
    # The attempt's Temporal task token (``claim`` writes it): a sweep fails the dead attempt
    # by it and the server runs the poll again elsewhere. None: the sweep signals the workflow.
    task_token: bytes | None = field(default=None, compare=False, repr=False)
    # The poll's grid: its first check this long after ``started_at``, then every interval.
    # None: written by a release before it.
    first_check_in: float | None = field(default=None, compare=False)
    interval_seconds: float | None = field(default=None, compare=False)

    def due(self) -> datetime | None:
        """A dead attempt's first slot after its process's last beat: the slots before were
        checked by that process, this one maybe not (None: its grid or beat is not known)."""
        beat, started, every = self.silent_since, self.started_at, self.interval_seconds
        if beat is None or started is None or self.first_check_in is None or not every:
            return None
        first = started + timedelta(seconds=self.first_check_in)
        return slot_after_beat(first, timedelta(seconds=every), beat)


@dataclass(frozen=True)
class Claim:
    """A poll holds its watch; ``lost``: the dead process's attempt of it that it took over
    (with that attempt's grid and last beat, so the checks go on on that grid)."""

    lost: Lease | None = None

    def first_due(self) -> datetime | None:
        """The first check of an attempt that took a dead one over (None: it took none)."""
        return self.lost.due() if self.lost is not None else None


class LeaseBook:
    """This process's side: its beat, its polls' leases, those to drop at the next flush."""

    def __init__(self, db: Database, process: str, dead_after: float) -> None:
        self.db = db
        self.process = process
        self.dead_after = dead_after
        self.ended: list[Lease] = []  # the leases of polls that ended, dropped at the next flush

    async def flush(self) -> None:
        """Say this process is alive and drop the leases ended since (kept on failure)."""
        now = utcnow()
        ended = list(self.ended)
        async with self.db.writing(bulk=True) as session:
            conn = await session.connection()
            await self._beat(conn, now)
            if ended:
                await conn.execute(_drop(ended, self.process))
        del self.ended[: len(ended)]

    async def release(self, lease: Lease) -> bool:
        """Release ``lease`` now (a failed attempt's); False if the database refused (it is
        then the next flush's)."""
        try:
            async with self.db.writing() as session:
                await session.execute(_drop([lease], self.process))
        except SQLAlchemyError:
            return False
        return True

    async def _beat(self, conn: AsyncConnection, now: datetime) -> None:
        """Write this process's beat on ``conn``."""
        beat = {"id": self.process, "started_at": now, "beat_at": now}
        await conn.execute(
            upsert(conn.dialect.name, PROCESSES, ("id",), ("beat_at", "dead_after")),
            [{**beat, "dead_after": self.dead_after}],
        )

    async def claim(self, lease: Lease, started: datetime | None = None) -> Claim | None:
        """Take the watch for this poll before it fetches; None when another live poll holds
        it (docs/polling.md, invariant 2). One transaction, the lease row locked, with this
        process's beat: a run's later poll wins (an earlier live one is asked to end), a
        retried poll only over a dead process's attempt (keeping its grid's origin), a new
        run over the old. ``started``: the grid's origin (now if not given)."""
        now = utcnow()
        started = started or now
        # The row is the lease (the table's columns are its fields), held by this process.
        mine = asdict(replace(lease, process=self.process, started_at=started, silent_since=None))
        taken: Lease | None = None
        async with self.db.write_session() as session:
            conn = await session.connection()
            await self._beat(conn, now)
            insert = dialect_insert(conn.dialect.name, LEASES)
            created = await conn.execute(insert.on_conflict_do_nothing().values(**mine))
            if created.rowcount != 1:
                locked = select(LEASES).where(_of_watch(lease)).with_for_update()
                held = (await conn.execute(locked)).one()
                holder = Lease(held.task, held.life, held.run_id, held.poll, held.process)
                same_poll = (holder.run_id, holder.poll) == (lease.run_id, lease.poll)
                retried = same_poll and holder.process != self.process
                # The same poll started again (Temporal's retry) takes it only from a dead
                # process; its row, read once, also holds that process's last beat.
                row = await _process(conn, holder.process) if retried else None
                may_take = not _alive(row, now) if retried else _may_take(holder, lease)
                if not may_take:
                    await session.rollback()
                    return None
                if retried:
                    # The dead attempt's last beat is on the lease once a sweep released it,
                    # on its process's row before.
                    beat = held.silent_since or (row.beat_at if row is not None else None)
                    if beat is not None:
                        # The same poll's grid: this request's first check and interval.
                        taken = replace(
                            holder,
                            silent_since=beat,
                            started_at=held.started_at,
                            first_check_in=lease.first_check_in,
                            interval_seconds=lease.interval_seconds,
                        )
                        mine["started_at"] = held.started_at
                if holder.process not in (self.process, RELEASED) and not same_poll:
                    # An earlier poll still running elsewhere (of this run, or of a run reset
                    # or ended): it stops at its next mailbox read (it would otherwise fetch
                    # beside this one until then). One released has ended: every poll's
                    # start asked it again, under PostgreSQL's lock of the table.
                    await add_end_requests(session, [_end_request(holder)])
                # The same row as the insert's (its key unchanged).
                await conn.execute(update(LEASES).where(_of_watch(lease)).values(**mine))
            await session.commit()
        return Claim(taken)

    async def leave(self) -> None:
        """A clean stop: drop this process's leases and its row."""
        async with self.db.writing(bulk=True) as session:
            await session.execute(
                update(LEASES).where(LEASES.c.process == self.process).values(process=RELEASED)
            )
            await session.execute(delete(WorkerProcess).where(WorkerProcess.id == self.process))
        self.ended.clear()


async def dead_leases(db: Database, alive_self: str, limit: int) -> list[Lease]:
    """Leases of processes not alive (never this one), with their last beat and start."""
    now = utcnow()
    async with db.session() as session:
        rows = (await session.scalars(select(WorkerProcess))).all()
        alive = [row.id for row in rows if _alive(row, now)]
        beats = {row.id: row.beat_at for row in rows}
        found = await session.execute(
            select(LEASES)
            .where(LEASES.c.process.not_in([RELEASED, alive_self, *alive]))
            .order_by(LEASES.c.started_at)
            .limit(limit)
        )
        # A lease is its row (the table's columns are its fields) and its process's last beat.
        return [Lease(**{**row._mapping, "silent_since": beats.get(row.process)}) for row in found]


async def may_answer(db: Database, lost: Lease) -> bool:
    """Whether the poll of a lease a sweep found dead may still hand back: its process has
    said it is alive since (it was only slow), or an attempt of the same poll in another
    process holds the watch now (Temporal ran the poll again). Otherwise nobody runs it."""
    now = utcnow()
    async with db.session() as session:
        row = await session.get(WorkerProcess, lost.process)
        if _alive(row, now):
            return True
        held = (await session.execute(select(LEASES).where(_of_watch(lost)))).one_or_none()
    return (
        held is not None
        and (held.run_id, held.poll) == (lost.run_id, lost.poll)
        and held.process not in (RELEASED, lost.process)
    )


async def end_lost(db: Database, lost: list[Lease]) -> None:
    """Ask the lost polls (not their successors) to end, in case their process is alive."""
    await request_ends(db, [_end_request(e) for e in lost])


async def drop_leases(db: Database, leases: list[Lease]) -> None:
    """Drop these leases (only as they are: a successor's lease stays) and the rows of dead
    processes that hold none any more. A released row keeps its process's last beat, for the
    attempt Temporal runs again in another process (``claim``)."""
    async with db.writing(bulk=True) as session:
        for beat in {e.silent_since for e in leases}:
            await session.execute(
                _drop([e for e in leases if e.silent_since == beat]).values(silent_since=beat)
            )
        if leases:
            dead = [e.process for e in leases]
            await session.execute(delete(WorkerProcess).where(WorkerProcess.id.in_(dead), IDLE))


async def _process(conn: Any, process: str) -> Any:
    """The row of ``process`` (None: it is gone, or the lease was released)."""
    return (await conn.execute(select(PROCESSES).where(PROCESSES.c.id == process))).one_or_none()


def _alive(row: Any, now: datetime) -> bool:
    """Whether a process (its row; None: gone) has said it is alive within its dead_after."""
    return row is not None and row.beat_at >= now - timedelta(seconds=row.dead_after)


def _may_take(holder: Lease, new: Lease) -> bool:
    """Whether poll ``new`` may take the watch from ``holder``, not its own attempt."""
    if holder.run_id != new.run_id:
        return True  # a run before this one (closed: nobody takes its polls' results)
    # The workflow moved on: the later poll fetches; this process's own attempt again: it.
    return holder.poll <= new.poll


def _of_watch(lease: Lease) -> Any:
    """Which lease row is the watch's: the table's key, task and life."""
    return (LEASES.c.task == lease.task) & (LEASES.c.life == lease.life)


def _end_request(lease: Lease) -> EndRequest:
    """Asks the lease's poll to end; with a task token (failed by a sweep, run again
    elsewhere) only its attempt in that process."""
    process = lease.process if lease.task_token is not None else None
    return EndRequest(lease.task, lease.life, lease.run_id, lease.poll, process)


def _drop(leases: list[Lease], process: str | None = None) -> Any:
    """Release these leases (held by ``process``, else each by its own; by its attempt's task
    token when it has one): the row stays with no process, so the watch's last poll number
    still fences a late start of an earlier poll (``claim``). A failed attempt's end released
    the lease its retry had just taken in the same process: the retry checked on unleased."""
    columns = (LEASES.c.task, LEASES.c.life, LEASES.c.run_id, LEASES.c.poll, LEASES.c.process)
    keys = [(e.task, e.life, e.run_id, e.poll, process or e.process) for e in leases]
    untokened = [key for key, e in zip(keys, leases, strict=True) if e.task_token is None]
    tokened = [(*key, e.task_token) for key, e in zip(keys, leases, strict=True) if e.task_token]
    which = or_(tuple_(*columns).in_(untokened), tuple_(*columns, LEASES.c.task_token).in_(tokened))
    return update(LEASES).where(which).values(process=RELEASED)


async def forget_processes(db: Database, after: timedelta) -> None:
    """Drop the rows of processes silent for ``after`` holding no lease (no sweep finds them)."""
    async with db.writing(bulk=True) as session:
        await session.execute(
            delete(WorkerProcess).where(WorkerProcess.beat_at < utcnow() - after, IDLE)
        )
