"""Poll leases: which worker process runs each poll, and which processes are dead."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities import poll_upkeep
from activities.poll_upkeep import PollUpkeep
from ambient.storage import Database
from ambient.storage.models import utcnow
from ambient.storage.polls import WatchPollEnd, WatchPollLease, WorkerProcess
from ambient.watches.leases import (
    RELEASED,
    Lease,
    LeaseBook,
    dead_leases,
    drop_leases,
    end_lost,
    forget_processes,
    may_answer,
)
from ambient.watches.poll_ends import EndRequest, EndRequestCursor, end_requested


async def _leases(db: Database) -> list[tuple[str, str, int, str]]:
    """The leases held (a released one stays as its watch's last poll number, held by none)."""
    held = select(WatchPollLease).where(WatchPollLease.process != RELEASED)
    async with db.session() as session:
        rows = (await session.execute(held)).scalars().all()
    return sorted((row.task, row.run_id, row.poll, row.process) for row in rows)


async def _age(db: Database, process: str, seconds: float) -> None:
    """Make ``process`` have last said it was alive ``seconds`` ago."""
    async with db.write_session() as session:
        await session.execute(
            update(WorkerProcess)
            .where(WorkerProcess.id == process)
            .values(beat_at=utcnow() - timedelta(seconds=seconds))
        )
        await session.commit()


async def test_a_process_claims_its_leases_with_its_beat_and_drops_only_its_own(
    db: Database,
) -> None:
    a, b = LeaseBook(db, "a", 30.0), LeaseBook(db, "b", 30.0)
    first = Lease("w1", "life", "run", 1)
    short = Lease("w3", "life", "run", 1)
    for lease in (first, Lease("w2", "life", "run", 1), short):
        assert await a.claim(lease)
    a.ended.append(short)  # ended: released at the next flush
    await a.flush()
    assert await _leases(db) == [("w1", "run", 1, "a"), ("w2", "run", 1, "a")]
    # w1's next poll runs in process b (a handed it back); a's late end must not drop it.
    assert await b.claim(Lease("w1", "life", "run", 2))
    a.ended.append(first)
    await a.flush()
    assert await _leases(db) == [("w1", "run", 2, "b"), ("w2", "run", 1, "a")]
    await a.leave()  # a clean stop: its leases and its row go
    assert await _leases(db) == [("w1", "run", 2, "b")]
    async with db.session() as session:
        assert [p.id for p in (await session.execute(select(WorkerProcess))).scalars()] == ["b"]


async def test_a_failed_attempts_end_does_not_release_its_retrys_lease_in_the_same_process(
    db: Database,
) -> None:
    # Attempt 1 of a poll failed and its lease was queued to drop; Temporal's retry ran in
    # the same process and took the row again. The flush dropped the retry's lease: it
    # checked on with none a sweep could find, and another attempt could take it beside it.
    book = LeaseBook(db, "p", 30.0)
    first = Lease("w1", "life", "run", 1, task_token=b"attempt-1")
    assert await book.claim(first)
    book.ended.append(first)
    assert await book.claim(Lease("w1", "life", "run", 1, task_token=b"attempt-2"))
    await book.flush()
    assert await _leases(db) == [("w1", "run", 1, "p")]
    book.ended.append(Lease("w1", "life", "run", 1, task_token=b"attempt-2"))
    await book.flush()
    assert await _leases(db) == []


async def test_a_poll_after_one_that_ended_asks_nothing_to_end(db: Database) -> None:
    # Every poll's start after a hand-back wrote an end request for the poll that had ended
    # (a row each poll, read by every process's mailbox, under a lock of the table).
    book = LeaseBook(db, "p", 30.0)
    first = Lease("w1", "life", "run", 1)
    assert await book.claim(first)
    book.ended.append(first)
    await book.flush()
    assert await LeaseBook(db, "q", 30.0).claim(Lease("w1", "life", "run", 2))
    async with db.session() as session:
        assert (await session.execute(select(WatchPollEnd))).scalars().all() == []


async def test_leases_of_a_process_silent_longer_than_its_dead_after_are_found(
    db: Database,
) -> None:
    alive, dead, me = LeaseBook(db, "alive", 30.0), LeaseBook(db, "dead", 5.0), "me"
    assert await alive.claim(Lease("w1", "life", "run", 1))
    assert await dead.claim(Lease("w2", "life", "run", 3))
    assert await dead.claim(Lease("w3", "life", "run", 1))
    assert await dead_leases(db, me, 100) == []  # everyone spoke just now
    await _age(db, "dead", 6.0)  # past its own 5 s
    await _age(db, "alive", 20.0)  # not past its 30 s
    lost = await dead_leases(db, me, 100)
    assert sorted((e.task, e.poll, e.process) for e in lost) == [
        ("w2", 3, "dead"),
        ("w3", 1, "dead"),
    ]
    assert await dead_leases(db, "dead", 100) == []  # a process never reports itself
    # The lost polls are asked to end (only these polls: run and number), then dropped; the
    # dead process's row goes with its last lease.
    await end_lost(db, lost)
    async with db.session() as session:
        ends = (await session.execute(select(WatchPollEnd))).scalars().all()
    assert sorted((e.task, e.run_id, e.poll) for e in ends) == [
        ("w2", "run", 3),
        ("w3", "run", 1),
    ]
    await drop_leases(db, lost[:1])
    assert len(await dead_leases(db, me, 100)) == 1
    await drop_leases(db, lost[1:])
    assert await dead_leases(db, me, 100) == []
    async with db.session() as session:
        processes = (await session.execute(select(WorkerProcess))).scalars().all()
    assert [p.id for p in processes] == ["alive"]


async def test_a_dead_lease_carries_its_process_last_beat_and_may_answer_only_if_alive(
    db: Database,
) -> None:
    """What the workflow of a lost poll is told (the process's last beat: its grid goes on
    from there) and asks (whether the poll may still hand back, so it is worth a wait)."""
    dead, other = LeaseBook(db, "dead", 5.0), LeaseBook(db, "other", 30.0)
    began = utcnow() - timedelta(seconds=2)  # the poll's start, before its claim
    assert await dead.claim(Lease("w1", "life", "run", 2), started=began)
    assert await dead.claim(Lease("w2", "life", "run", 1))
    await _age(db, "dead", 6.0)
    async with db.session() as session:
        beat = (await session.get(WorkerProcess, "dead")).beat_at  # type: ignore[union-attr]
        rows = (await session.execute(select(WatchPollLease))).scalars().all()
        took = {row.task: row.started_at for row in rows}
    lost = sorted(await dead_leases(db, "me", 100), key=lambda e: e.task)
    assert took["w1"] == began
    assert [(e.task, e.silent_since, e.started_at) for e in lost] == [
        ("w1", beat, began),
        ("w2", beat, took["w2"]),
    ]
    # Still silent, nobody else runs the polls: they cannot answer.
    assert not await may_answer(db, lost[0])
    # Temporal ran w1's poll again in another process, which took the watch.
    assert await other.claim(Lease("w1", "life", "run", 2))
    assert await may_answer(db, lost[0])
    # A later poll of w1 there instead (the workflow moved on): the lost one still cannot.
    assert await other.claim(Lease("w1", "life", "run", 3))
    assert not await may_answer(db, lost[0])
    # The process was only slow: it said it is alive again.
    await dead.flush()
    assert await may_answer(db, lost[1])
    await drop_leases(db, lost)
    await _age(db, "dead", 6.0)
    assert not await may_answer(db, lost[1])  # released, and silent again


async def test_a_lease_whose_process_row_is_gone_counts_as_dead(db: Database) -> None:
    book = LeaseBook(db, "gone", 30.0)
    assert await book.claim(Lease("w1", "life", "run", 1))
    async with db.write_session() as session:
        await session.execute(update(WorkerProcess).values(id="renamed"))
        await session.commit()
    assert [e.task for e in await dead_leases(db, "me", 100)] == ["w1"]


async def test_long_silent_processes_that_hold_nothing_are_forgotten(db: Database) -> None:
    empty, holding, recent = (LeaseBook(db, name, 30.0) for name in ("empty", "holding", "recent"))
    assert await holding.claim(Lease("w1", "life", "run", 1))
    for book in (empty, holding, recent):
        await book.flush()
    await _age(db, "empty", 7200)
    await _age(db, "holding", 7200)
    await forget_processes(db, timedelta(hours=1))
    async with db.session() as session:
        left = sorted(p.id for p in (await session.execute(select(WorkerProcess))).scalars())
    assert left == ["holding", "recent"]  # its lease is still to be swept


async def test_one_sweep_tells_every_poll_of_a_dead_process_saying_it_is_alive_between_reads(
    db: Database, dev_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Batches of two: five lost polls take three, all in one sweep (one batch a sweep left
    # thousands of a killed worker's watches to wait sweep after sweep).
    monkeypatch.setattr(poll_upkeep, "SWEEP_BATCH", 2)
    dead = LeaseBook(db, "dead", 30.0)
    for task in (f"gone-{uuid.uuid4().hex}" for _ in range(5)):
        assert await dead.claim(Lease(task, "life", str(uuid.uuid4()), 1))
    await _age(db, "dead", 120)
    upkeep = PollUpkeep(db, {}, 30.0, "live")
    # Their workflows are gone (NOT_FOUND): told, as a run that ended needs nothing.
    assert await upkeep.sweep(dev_env.client) == 5
    assert await dead_leases(db, "live", 100) == [] and await _leases(db) == []
    async with db.session() as session:
        live = await session.get(WorkerProcess, "live")
    assert live is not None  # it said it was alive between the batches


async def test_a_sweep_starts_first_the_lost_polls_whose_checks_fall_due_first(
    db: Database, dev_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live process taking over thousands of polls is busy for a while: the polls whose
    slot passed while their process was dead go first, then by their next slot; a lease
    whose grid is not known (an older release's) first of all."""
    monkeypatch.setattr(poll_upkeep, "SWEEP_BATCH", 2)
    dead = LeaseBook(db, "dead", 10.0)
    began = utcnow() - timedelta(seconds=100)
    # Every 60 s from ``began`` + first: the dead process's beat (aged to 20 s ago, so 80 s
    # after ``began``) leaves the slots at 90 s (missed), 100 s, 110 s, 125 s next.
    grids = {"at-110": 50.0, "at-90": 30.0, "at-125": 5.0, "at-100": 40.0, "unknown": None}
    for task, first in grids.items():
        run = str(uuid.uuid4())  # no such run: told, as a run that ended needs nothing
        lease = Lease(task, "life", run, 1, first_check_in=first, interval_seconds=60.0)
        assert await dead.claim(lease, started=began)
    await _age(db, "dead", 20)
    upkeep = PollUpkeep(db, {}, 30.0, "live")
    batches: list[list[str]] = []
    tell = upkeep.tell

    async def recorded(client: Client, lost: list[Lease]) -> int:
        batches.append([lease.task for lease in lost])
        return await tell(client, lost)

    monkeypatch.setattr(upkeep, "tell", recorded)
    assert await upkeep.sweep(dev_env.client) == 5
    assert batches == [["unknown", "at-90"], ["at-100", "at-110"], ["at-125"]]


async def test_an_attempt_run_again_takes_over_the_dead_attempts_grid_and_last_beat(
    db: Database,
) -> None:
    """Temporal runs a dead process's poll again in a live one (a sweep failed the attempt):
    the new attempt learns where the dead one's grid started and when its process last beat,
    from the process's row before the sweep released the lease and from the lease after."""
    dead, live = LeaseBook(db, "dead", 5.0), LeaseBook(db, "live", 30.0)
    began = utcnow() - timedelta(seconds=40)
    assert await dead.claim(Lease("w1", "life", "run", 2, task_token=b"t1"), started=began)
    assert await dead.claim(Lease("w2", "life", "run", 1, task_token=b"t2"), started=began)
    await _age(db, "dead", 6.0)
    async with db.session() as session:
        beat = (await session.get(WorkerProcess, "dead")).beat_at  # type: ignore[union-attr]
    lost = sorted(await dead_leases(db, "live", 100), key=lambda e: e.task)
    assert [(e.task, e.task_token, e.silent_since) for e in lost] == [
        ("w1", b"t1", beat),
        ("w2", b"t2", beat),
    ]
    # Before the sweep releases it: the beat comes from the dead process's row.
    claim = await live.claim(Lease("w1", "life", "run", 2, task_token=b"t1-2"))
    assert claim is not None and claim.lost is not None
    assert (claim.lost.process, claim.lost.silent_since, claim.lost.started_at) == (
        "dead",
        beat,
        began,
    )
    # After: the released lease keeps it, though the process's row is gone.
    await drop_leases(db, [lost[1]])
    async with db.session() as session:
        assert await session.get(WorkerProcess, "dead") is None  # it holds nothing now
    grid = {"first_check_in": 2.0, "interval_seconds": 10.0}
    claim = await live.claim(Lease("w2", "life", "run", 1, task_token=b"t2-2", **grid))
    assert claim is not None and claim.lost is not None
    assert (claim.lost.silent_since, claim.lost.started_at) == (beat, began)
    # Its first check: on the dead attempt's grid (2 s after it began, then every 10 s), the
    # first slot after the beat (about 34 s after it began): 42 s after.
    assert claim.first_due() == began + timedelta(seconds=42)
    # The attempts keep the dead one's grid origin, and their own tokens for a next sweep.
    async with db.session() as session:
        rows = (await session.execute(select(WatchPollLease))).scalars().all()
    held = sorted((r.task, r.process, r.started_at, r.task_token, r.interval_seconds) for r in rows)
    assert held == [("w1", "live", began, b"t1-2", None), ("w2", "live", began, b"t2-2", 10.0)]
    # A poll that claims a watch nobody lost takes nothing over; a later poll neither.
    fresh = await live.claim(Lease("w3", "life", "run", 1))
    later = await live.claim(Lease("w1", "life", "run", 3))
    assert fresh is not None and fresh.lost is None and later is not None and later.lost is None


async def test_a_lost_attempt_with_a_token_is_asked_to_end_only_in_its_own_process(
    db: Database,
) -> None:
    """The sweep's end request for a poll that Temporal runs again names the dead process:
    the new attempt, in another process, is not ended by it (at its start or by the reader),
    nor one in that process when it was only slow (it ended Temporal's retry there at its
    start); a lost poll without a token is asked to end wherever it runs, as before."""
    retried = Lease("w1", "life", "run", 2, "dead", task_token=b"t1")
    signalled = Lease("w2", "life", "run", 1, "dead")
    cursor = EndRequestCursor(db)
    await cursor.read()
    await end_lost(db, [retried, signalled])
    assert await cursor.read() == [
        EndRequest("w1", "life", "run", 2, "dead"),
        EndRequest("w2", "life", "run", 1, None),
    ]
    async with db.session() as session:
        assert not await end_requested(session, EndRequest("w1", "life", "run", 2, "dead"))
        assert not await end_requested(session, EndRequest("w1", "life", "run", 2, "live"))
        assert await end_requested(session, EndRequest("w2", "life", "run", 1, "live"))
