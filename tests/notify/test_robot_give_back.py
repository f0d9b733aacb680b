"""A robot send cut off inside its shared take (a delivery's deadline, a worker's stop) gives
its slot back, and a worker's stop drains the give-backs still going, bounded."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any, Literal

import httpx
import pytest
from sqlalchemy import event, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session
from sqlalchemy.util import await_only

from ambient.clients.notify import robots
from ambient.clients.notify.base import ChannelRegistry
from ambient.clients.notify.errors import DeferredNotifyError
from ambient.clients.notify.robots import SharedRateLimiter
from ambient.clients.notify.wecom import WeComChannel
from ambient.storage import Database
from ambient.storage.models import RobotWindow
from tests.conftest import unique
from tests.foundation.test_postgres import postgres_url  # noqa: F401  (fixture)
from tests.notify.test_channels import SECRETS
from tests.notify.test_robot_limit import hashed, lock_waited
from tests.support.waits import eventually


async def _now(value: bool) -> bool:
    """``value``, as ``eventually`` asks it (an answer already known)."""
    return value


async def _given_back(db: Database, robot: str, slots: list[float]) -> None:
    """The robot's window is ``slots`` once a cut send's give-back has landed: the send waits
    for it GIVE_BACK_WAIT at most, and on a loaded host it lands after (it runs on)."""

    async def back() -> bool:
        return await _slots(db, robot) == slots

    await eventually(back, f"the window back to {slots}")


async def _slots(db: Database, robot: str) -> list[float] | None:
    """The robot's window as every worker reads it (None: it has no row)."""
    async with db.session() as session:
        row = await session.get(RobotWindow, hashed(robot))
    return None if row is None else list(row.slots)


class _Turn(asyncio.Lock):
    """A SQLite Database's write turn that says when a writer queues for it."""

    def __init__(self) -> None:
        super().__init__()
        self.queued = asyncio.Event()

    async def acquire(self) -> Literal[True]:
        if self.locked():
            self.queued.set()
        return await super().acquire()


@contextlib.contextmanager
def _held_after_commit(
    db: Database, landed: asyncio.Event, go_on: asyncio.Event, then: Exception | None = None
) -> Iterator[None]:
    """``db``'s commits land, then wait for ``go_on`` (``landed`` set): a cut there is a cut
    after the take's write, before the take returns. ``then``: raised after, a commit that
    landed and failed (PostgreSQL's connection dropped after its commit)."""

    def wait(session: Session) -> None:
        if session.get_bind() is db.engine.sync_engine:
            landed.set()
            await_only(go_on.wait())
            if then is not None:
                raise then

    event.listen(Session, "after_commit", wait)
    try:
        yield
    finally:
        event.remove(Session, "after_commit", wait)


async def test_a_send_cut_off_after_its_take_has_landed_gives_its_slot_and_only_its_back(
    two_workers: tuple[Database, Database],
) -> None:
    """A send cut off inside its take, its slot's write committed but the take not returned
    (a delivery's deadline, a worker's graceful stop, on a loaded host): nobody gave the slot
    back, and the robot lost a message's room for the rest of its minute. Given back now, once:
    another send's slot of the same instant stays."""
    robot, now = unique("robot"), [1000.0]
    one, two = (
        SharedRateLimiter(db, per_minute=2, max_wait=0, clock=lambda: now[0]) for db in two_workers
    )
    await one.acquire(robot)  # the other worker's slot, at the same instant
    landed, go_on = asyncio.Event(), asyncio.Event()
    with _held_after_commit(two_workers[1], landed, go_on):
        send = asyncio.create_task(two.acquire(robot))
        await landed.wait()
        send.cancel()
        go_on.set()  # the take would have returned now: the cut came first
        with pytest.raises(asyncio.CancelledError):
            await send
    await _given_back(two_workers[0], robot, [1000.0])
    await one.acquire(robot)  # the room it had
    with pytest.raises(DeferredNotifyError, match="over 2/min"):
        await one.acquire(robot)


async def test_a_send_whose_take_does_not_end_waits_for_its_give_back_only_so_long(
    two_workers: tuple[Database, Database],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A send cut off while its take commits waits for its give-back at most GIVE_BACK_WAIT: a
    database that does not answer never holds it up. The give-back goes on, and gives the slot
    back once the commit ends (it was given up on after GIVE_BACK_WAIT: the slot lost)."""
    monkeypatch.setattr(robots, "GIVE_BACK_WAIT", 0.1)
    limiter, robot = SharedRateLimiter(two_workers[1], clock=lambda: 1000.0), unique("robot")
    landed, go_on = asyncio.Event(), asyncio.Event()
    with _held_after_commit(two_workers[1], landed, go_on):
        send = asyncio.create_task(limiter.acquire(robot))
        await landed.wait()
        send.cancel()
        # Not a bare wait: a send held by its give-back would hang with the commit held.
        await eventually(lambda: _now(send.done()), "the cut send ended, GIVE_BACK_WAIT on")
        with pytest.raises(asyncio.CancelledError):
            await send
        assert await _slots(two_workers[0], robot) == [1000.0]
        go_on.set()  # the commit ends, well past GIVE_BACK_WAIT

        async def ended() -> bool:
            said = "a slot not given back" in caplog.text
            return said or await _slots(two_workers[0], robot) == []

        await eventually(ended, "the slot given back, or said not")
    assert await _slots(two_workers[0], robot) == [] and "not given back" not in caplog.text


async def test_a_send_cut_off_while_waiting_gives_its_slot_back_however_long_its_turn_takes(
    two_workers: tuple[Database, Database],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A send cut off while it waits for its slot (its deadline, a worker's stop) gives the slot
    back. Its give-back, bounded by GIVE_BACK_WAIT, was abandoned when it did not get the write
    turn (SQLite) or the robot's row (PostgreSQL) by then, as under load: the slot lost for the
    robot's minute. The send waits for it that long; the give-back goes on to its end."""
    monkeypatch.setattr(robots, "GIVE_BACK_WAIT", 0.1)
    robot, db = unique("robot"), two_workers[1]
    limiter = SharedRateLimiter(db, per_minute=1, max_wait=120, clock=lambda: 1000.0)
    await limiter.acquire(robot)
    send = asyncio.create_task(limiter.acquire(robot))  # its slot at 1060: it waits for it

    async def taken() -> bool:
        return await _slots(two_workers[0], robot) == [1060.0]

    await eventually(taken, "the waiting send's slot")
    async with db.writing() as holding:  # another send's take holds the turn and the row
        if not db.sqlite:
            row = select(RobotWindow).where(RobotWindow.robot == hashed(robot))
            await holding.execute(row.with_for_update())
        send.cancel()
        await eventually(lambda: _now(send.done()), "the cut send ended, GIVE_BACK_WAIT on")
    with pytest.raises(asyncio.CancelledError):
        await send

    async def ended() -> bool:
        said = "a slot not given back" in caplog.text
        return said or await _slots(two_workers[0], robot) == [1000.0]

    await eventually(ended, "the slot given back, or said not")
    assert await _slots(two_workers[0], robot) == [1000.0] and "not given back" not in caplog.text


async def test_a_worker_stopping_cuts_off_a_give_back_the_database_holds_up_and_says_so(
    two_workers: tuple[Database, Database],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A worker's stop waits for a give-back at most GIVE_BACK_WAIT: one the database holds up
    past that (another take holds the turn or the row) is cut off, said, and leaves nothing
    pending; its slot stays taken until its minute ends."""
    monkeypatch.setattr(robots, "GIVE_BACK_WAIT", 0.1)
    robot, db = unique("robot"), two_workers[1]
    limiter = SharedRateLimiter(db, per_minute=1, max_wait=120, clock=lambda: 1000.0)
    await limiter.acquire(robot)
    before = asyncio.all_tasks()
    send = asyncio.create_task(limiter.acquire(robot))  # its slot at 1060: it waits for it

    async def taken() -> bool:
        return await _slots(two_workers[0], robot) == [1060.0]

    await eventually(taken, "the waiting send's slot")
    async with db.writing() as holding:  # another send's take holds the turn and the row
        if not db.sqlite:
            row = select(RobotWindow).where(RobotWindow.robot == hashed(robot))
            await holding.execute(row.with_for_update())
        send.cancel()
        await eventually(lambda: _now(send.done()), "the cut send ended, GIVE_BACK_WAIT on")
        # The worker stops, the turn still held (a stop that waited for it would never end).
        stopping = asyncio.create_task(limiter.aclose())
        await eventually(lambda: _now(stopping.done()), "the stop, GIVE_BACK_WAIT on")
        await stopping
        assert asyncio.all_tasks() - before == set()
    assert "a slot not given back by the stop" in caplog.text
    assert await _slots(two_workers[0], robot) == [1060.0]


async def test_a_worker_stopping_with_a_give_back_in_flight_lets_it_end(
    two_workers: tuple[Database, Database], http: httpx.AsyncClient
) -> None:
    """A worker stops while a cut send's slot goes back (the send cut again, ended): its stop
    (the channels' aclose) waits for the give-back, bounded. It left it pending, to be
    destroyed with the loop ("Task was destroyed but it is pending"): the slot lost."""
    robot, db = unique("robot"), two_workers[1]
    limiter = SharedRateLimiter(db, per_minute=1, max_wait=0, clock=lambda: 1000.0)
    channels = ChannelRegistry([WeComChannel(http, SECRETS, "http://127.0.0.1:9", limiter=limiter)])
    before = asyncio.all_tasks()
    landed, go_on, giving, answered = (asyncio.Event() for _ in range(4))

    @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
    def giving_back(*args: Any) -> None:  # the give-back's first statement, once the take landed
        if landed.is_set() and not giving.is_set() and "INSERT INTO robot_windows" in args[2]:
            giving.set()
            await_only(answered.wait())

    with _held_after_commit(db, landed, go_on):
        send = asyncio.create_task(limiter.acquire(robot))
        await landed.wait()
        send.cancel()
        go_on.set()
        await eventually(lambda: _now(giving.is_set() or send.done()), "the give-back")
        assert giving.is_set()
        send.cancel()  # the worker's stop cuts it again
        with pytest.raises(asyncio.CancelledError):
            await send
        asyncio.get_running_loop().call_soon(answered.set)  # the database answers meanwhile
        await channels.aclose()
        # Asked first: the read below would give a give-back left running the time to end.
        assert asyncio.all_tasks() - before == set()  # nothing pending for the loop to destroy
    assert await _slots(two_workers[0], robot) == []


async def test_a_send_cut_off_while_its_take_waits_its_turn_takes_no_slot_and_says_nothing(
    two_workers: tuple[Database, Database],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A send cut off while its take waits for the write turn (SQLite) or the robot's row
    (PostgreSQL), as a burst's sends queue there: it ends at once and writes nothing. Its take
    ran on shielded after the cut and wrote its slot, then needed a second write turn to give
    it back (under load it missed: the robot's room lost); meanwhile the send held up its
    worker's stop, and said "a slot not given back" of a take that never had the turn."""
    robot, db = unique("robot"), two_workers[1]
    one, two = (
        SharedRateLimiter(worker, per_minute=1, max_wait=0, clock=lambda: 1000.0)
        for worker in two_workers
    )
    turn = _Turn()
    monkeypatch.setattr(db, "_write_turn", turn)  # SQLite's, this worker's writers queue on it
    async with db.writing() as holding:  # another send's take holds the turn and the row
        if not db.sqlite:
            made = postgresql.insert(RobotWindow).values(robot=hashed(robot), slots=[], until=0.0)
            await holding.execute(made)
        send = asyncio.create_task(two.acquire(robot))

        async def queued() -> bool:
            return turn.queued.is_set() if db.sqlite else await lock_waited(db)

        await eventually(queued, "the send waiting for its turn")
        send.cancel()
        with pytest.raises(asyncio.CancelledError):
            await send  # the turn still held
    await one.acquire(robot)  # the robot's one slot of the minute: the cut send took none
    assert await _slots(two_workers[0], robot) == [1000.0]
    assert "not given back" not in caplog.text


async def test_a_send_cut_off_in_a_full_minute_gives_back_its_slot_not_another_sends_of_then(
    two_workers: tuple[Database, Database],
) -> None:
    """The robot's minute full ([1000, 1000]), two sends at 1010 each take the slot 1060, each
    pushing a 1000 out. One cut off after its take's commit gives back one 1060 and its 1000:
    the other send's 1060 stays, as if the cut one had never asked."""
    robot, now = unique("robot"), [1000.0]
    one, two = (
        SharedRateLimiter(db, per_minute=2, max_wait=120, clock=lambda: now[0])
        for db in two_workers
    )
    await one.acquire(robot)
    await one.acquire(robot)
    now[0] = 1010.0
    waiting = asyncio.create_task(one.acquire(robot))  # its slot at 1060: it waits for it

    async def taken() -> bool:
        return await _slots(two_workers[0], robot) == [1000.0, 1060.0]

    await eventually(taken, "the waiting send's slot")
    landed, go_on = asyncio.Event(), asyncio.Event()
    with _held_after_commit(two_workers[1], landed, go_on):
        send = asyncio.create_task(two.acquire(robot))
        await landed.wait()
        assert await _slots(two_workers[0], robot) == [1060.0, 1060.0]
        send.cancel()
        go_on.set()
        with pytest.raises(asyncio.CancelledError):
            await send
    await _given_back(two_workers[0], robot, [1000.0, 1060.0])
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await _given_back(two_workers[0], robot, [1000.0, 1000.0])


@pytest.mark.parametrize("refused", [False, True], ids=["given-back", "refused"])
async def test_a_send_cut_off_again_while_giving_its_slot_back_leaves_the_give_back_to_end(
    two_workers: tuple[Database, Database], caplog: pytest.LogCaptureFixture, refused: bool
) -> None:
    """A send cut off after its take's commit is cut again while it gives the slot back (a
    worker's stop after a delivery's deadline): the send ends at once, its give-back runs on
    and the slot goes back; one the database refuses is said (it was not: the failure went to
    the shielded task, which nobody read once the send had ended)."""
    robot, db = unique("robot"), two_workers[1]
    limiter = SharedRateLimiter(db, per_minute=1, max_wait=0, clock=lambda: 1000.0)
    landed, go_on, giving, answered = (asyncio.Event() for _ in range(4))

    @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
    def giving_back(*args: Any) -> None:  # the give-back's first statement, once the take landed
        if landed.is_set() and not giving.is_set() and "INSERT INTO robot_windows" in args[2]:
            giving.set()
            await_only(answered.wait())
            if refused:
                raise ConnectionError("the database went away")

    with _held_after_commit(db, landed, go_on):
        send = asyncio.create_task(limiter.acquire(robot))
        await landed.wait()
        send.cancel()
        go_on.set()
        # Not a bare wait: a send that gives nothing back (main's) ends instead.
        await eventually(lambda: _now(giving.is_set() or send.done()), "the give-back")
        assert giving.is_set()
        send.cancel()
        with pytest.raises(asyncio.CancelledError):
            await send
        answered.set()

        async def ended() -> bool:
            said = "robot limiter: a slot not given back" in caplog.text
            return said == refused and await _slots(two_workers[0], robot) == (
                [1000.0] if refused else []
            )

        await eventually(ended, "the slot given back, or said not")


async def test_a_send_cut_off_inside_a_take_that_finds_no_room_gives_nothing_back(
    two_workers: tuple[Database, Database], caplog: pytest.LogCaptureFixture
) -> None:
    """A take cut off runs to its end: one that finds the robot's minute full takes no slot,
    so none is given back (the other send's stays) and nothing is said."""
    robot, now = unique("robot"), [1000.0]
    one, two = (
        SharedRateLimiter(db, per_minute=1, max_wait=0, clock=lambda: now[0]) for db in two_workers
    )
    await one.acquire(robot)
    reached, go_on = asyncio.Event(), asyncio.Event()

    @event.listens_for(two_workers[1].engine.sync_engine, "after_cursor_execute")
    def reading(*args: Any) -> None:  # the take holds the robot's row, its room not yet seen
        if not reached.is_set() and args[2].lstrip().startswith("INSERT INTO robot_windows"):
            reached.set()
            await_only(go_on.wait())

    send = asyncio.create_task(two.acquire(robot))
    await reached.wait()
    send.cancel()
    go_on.set()
    with pytest.raises(asyncio.CancelledError):
        await send
    async with two_workers[0].session() as session:
        row = await session.get(RobotWindow, hashed(robot))
    assert row is not None and list(row.slots) == [1000.0]
    assert "not given back" not in caplog.text


async def test_a_worker_stopping_while_a_cut_sends_commit_is_held_ends_it_and_says_so(
    two_workers: tuple[Database, Database],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A worker stops while a cut send's take still commits (the database holds it): the stop
    cut off the give-back waiting for the commit, the commit ran on, held by nothing, past the
    stop and the database's close (the loop's end cancelled it then). It ends with the stop
    now, said: the slot may be left taken."""
    monkeypatch.setattr(robots, "GIVE_BACK_WAIT", 0.1)
    limiter, robot = SharedRateLimiter(two_workers[1], clock=lambda: 1000.0), unique("robot")
    before = asyncio.all_tasks()
    landed, go_on = asyncio.Event(), asyncio.Event()
    try:
        with _held_after_commit(two_workers[1], landed, go_on):
            send = asyncio.create_task(limiter.acquire(robot))
            await landed.wait()
            send.cancel()
            await eventually(lambda: _now(send.done()), "the cut send ended, GIVE_BACK_WAIT on")
            stopping = asyncio.create_task(limiter.aclose())  # the commit still held
            await eventually(lambda: _now(stopping.done()), "the stop, GIVE_BACK_WAIT on")
            await stopping
            assert asyncio.all_tasks() - before == set()  # nothing left running
    finally:
        go_on.set()  # a commit left running (the defect) ends before the database closes
    assert "may be left taken until its minute ends" in caplog.text


async def test_a_cut_sends_commit_that_fails_after_landing_says_its_slot_may_be_left_taken(
    two_workers: tuple[Database, Database], caplog: pytest.LogCaptureFixture
) -> None:
    """On PostgreSQL a commit can land and still fail (the connection dropped after it): a
    send cut while its take commits gave nothing back and said nothing, its slot taken
    unseen. Nothing is given back (it may not have landed); it is said."""
    limiter, robot = SharedRateLimiter(two_workers[1], clock=lambda: 1000.0), unique("robot")
    landed, go_on = asyncio.Event(), asyncio.Event()
    dropped = ConnectionError("the connection dropped after the commit")
    with _held_after_commit(two_workers[1], landed, go_on, then=dropped):
        send = asyncio.create_task(limiter.acquire(robot))
        await landed.wait()
        send.cancel()
        go_on.set()
        with pytest.raises(asyncio.CancelledError):
            await send

        async def said() -> bool:
            return "may be left taken until its minute ends" in caplog.text

        await eventually(said, "the failed commit said")
    assert await _slots(two_workers[0], robot) == [1000.0]
