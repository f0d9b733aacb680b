"""A group robot's rate limit kept by every worker together: its window in the app database."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Iterator
from functools import partial
from typing import Any, Literal

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import event, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session
from sqlalchemy.util import await_only

from ambient.clients.notify import robots
from ambient.clients.notify.base import SEND_CLOCK, ChannelRegistry, SendClock
from ambient.clients.notify.errors import DeferredNotifyError, TransientNotifyError
from ambient.clients.notify.robots import SharedRateLimiter
from ambient.clients.notify.wecom import WeComChannel
from ambient.storage import Database
from ambient.storage.migrate import upgrade_async
from ambient.storage.models import RobotWindow
from tests.conftest import unique
from tests.foundation.test_postgres import postgres_url  # noqa: F401  (fixture)
from tests.notify.standins import WECOM_KEY, PushEndpoints
from tests.notify.test_channels import REPORT, SECRETS
from tests.support.waits import eventually


async def _not_held(_seconds: float) -> None:
    """A send's lease with no row behind it (a deadline of none: never renewed)."""


def _hashed(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def _now(value: bool) -> bool:
    """``value``, as ``eventually`` asks it (an answer already known)."""
    return value


async def _slots(db: Database, robot: str) -> list[float] | None:
    """The robot's window as every worker reads it (None: it has no row)."""
    async with db.session() as session:
        row = await session.get(RobotWindow, _hashed(robot))
    return None if row is None else list(row.slots)


async def _lock_waited(db: Database) -> bool:
    """Whether a statement on ``db``'s PostgreSQL server waits for a lock (a row another holds)."""
    async with db.session() as session:
        waits = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        return bool(await session.scalar(text(waits)))


class _Turn(asyncio.Lock):
    """A SQLite Database's write turn that says when a writer queues for it."""

    def __init__(self) -> None:
        super().__init__()
        self.queued = asyncio.Event()

    async def acquire(self) -> Literal[True]:
        if self.locked():
            self.queued.set()
        return await super().acquire()


@pytest_asyncio.fixture
async def two_workers(database_url: str) -> AsyncIterator[tuple[Database, Database]]:
    """What two worker processes hold: a Database each, on one app database."""
    await upgrade_async(database_url)
    one, two = Database(database_url), Database(database_url)
    try:
        yield one, two
    finally:
        await one.close()
        await two.close()


async def test_two_workers_sending_to_one_robot_keep_its_limit_together(
    two_workers: tuple[Database, Database],
    endpoints: tuple[PushEndpoints, str],
    http: httpx.AsyncClient,
) -> None:
    """WeCom and DingTalk allow a robot 20 messages a minute (DingTalk then holds it off for
    ten minutes). Each worker kept its own window: two sent it 40 a minute, the 21st and on
    answered 45009 by the robot. Now the 21st waits for the robot's next slot, whichever
    worker sends it (here: none free at once, so it is deferred), and nothing trips the limit."""
    state, base = endpoints
    channels = [
        WeComChannel(http, SECRETS, base, timeout=10, limiter=SharedRateLimiter(db, max_wait=0))
        for db in two_workers
    ]
    await asyncio.gather(
        *(channels[i % 2].send("alice", REPORT, WECOM_KEY, idempotency_key="k") for i in range(20))
    )
    for channel in channels:
        with pytest.raises(TransientNotifyError, match="over 20/min"):
            await channel.send("alice", REPORT, WECOM_KEY, idempotency_key="k")
    assert len(state.received) == 20 and state.throttled == []
    # The robot's key is a credential: its window is kept under its hash.
    async with two_workers[0].session() as session:
        row = await session.get(RobotWindow, _hashed(WECOM_KEY))
    assert row is not None and len(row.slots) == 20


async def test_a_shared_slot_cut_off_while_waiting_goes_back_and_quiet_robots_are_forgotten(
    two_workers: tuple[Database, Database],
) -> None:
    """A send waiting for the robot's next slot is cut off: the slot goes back to the window
    the other worker reads (not silencing the robot for another minute); a robot quiet for a
    minute leaves no row behind."""
    now = [1000.0]
    one, two = (
        SharedRateLimiter(db, per_minute=1, max_wait=120, clock=lambda: now[0])
        for db in two_workers
    )
    await one.acquire("robot")
    clock = SendClock(asyncio.timeout(None), hold=_not_held)

    async def cut_off_send() -> None:
        SEND_CLOCK.set(clock)  # this task's context alone
        await two.acquire("robot")  # its slot is a minute away

    async def waiting_its_turn() -> bool:
        # Cut off inside its take (on a loaded host, past the fixed 0.3 s sleep this replaced),
        # a slot whose write had landed was never given back: cut off once it waits its turn.
        return clock.waited > 0 or waiting.done()

    waiting = asyncio.create_task(cut_off_send())
    await eventually(waiting_its_turn, "the second send waiting for its slot")
    assert not waiting.done()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting

    async def given_back() -> bool:
        # Its return is shielded and runs on after the cut send ends (at load, past the next
        # take, which then found the slot still taken): the other worker reads it back.
        async with two_workers[0].session() as session:
            row = await session.get(RobotWindow, _hashed("robot"))
            return row is not None and list(row.slots) == [1000.0]

    await eventually(given_back, "the cut-off slot given back")
    now[0] += 61  # the first send's minute is over: the robot has a free slot at once
    await asyncio.wait_for(one.acquire("robot"), timeout=10)
    now[0] += 61
    await two.acquire("another robot")
    async with two_workers[0].session() as session:
        kept = {r.robot: r.slots for r in (await session.execute(select(RobotWindow))).scalars()}
    assert _hashed("robot") not in kept and kept[_hashed("another robot")] == [now[0]]


async def test_a_take_on_postgresql_does_not_wait_for_another_robots_take_in_progress(
    postgres_url: str,  # noqa: F811  (the fixture)
) -> None:
    """Each take removes the rows of robots quiet for a minute. It waited for the row lock of
    a quiet robot another worker was taking a slot of, while that take's own clean-up waited
    for this take's robot: two quiet robots sent to at once (an alert to a WeCom and a
    DingTalk group) were a deadlock, and one send failed for good ("permanent: DBAPIError:
    deadlock detected"). A robot being taken is left to a later clean-up."""
    await upgrade_async(postgres_url)
    quiet, robot = unique("quiet-robot"), unique("robot")
    now = [1000.0]
    async with Database(postgres_url) as one, Database(postgres_url) as two:
        sender = SharedRateLimiter(one, clock=lambda: now[0])
        await sender.acquire(quiet)
        now[0] += 61
        async with two.writing() as taking:  # another worker's take holds the quiet robot
            held = select(RobotWindow).where(RobotWindow.robot == _hashed(quiet))
            assert (await taking.scalar(held.with_for_update())) is not None
            await asyncio.wait_for(sender.acquire(robot), timeout=10)
        now[0] += 1
        await sender.acquire(robot)  # a later take removes the quiet robot's row
        async with one.session() as session:
            robots = set((await session.scalars(select(RobotWindow.robot))).all())
    assert _hashed(robot) in robots and _hashed(quiet) not in robots


async def test_a_take_on_postgresql_keeps_a_quiet_robots_row_another_worker_removes_meanwhile(
    postgres_url: str,  # noqa: F811  (the fixture)
) -> None:
    """A take made the robot's row if it had none, then locked it: in between, another
    worker's take (of another robot) could remove it as a quiet robot's, and the send failed
    for good ("permanent: internal error: NoResultFound"). The row is made or locked in one
    statement: the other worker's clean-up leaves it to this take."""
    await upgrade_async(postgres_url)
    quiet, other = unique("quiet-robot"), unique("robot")
    now = [1000.0]
    async with Database(postgres_url) as one, Database(postgres_url) as two:
        sender, elsewhere = (SharedRateLimiter(db, clock=lambda: now[0]) for db in (one, two))
        await sender.acquire(quiet)
        now[0] += 61
        cleaned: list[str] = []

        @event.listens_for(one.engine.sync_engine, "after_cursor_execute")
        def meanwhile(*args: Any) -> None:  # once the take's first statement has run
            if not cleaned and args[2].lstrip().startswith("INSERT INTO robot_windows"):
                cleaned.append(args[2])
                await_only(elsewhere.acquire(other))

        await sender.acquire(quiet)
        async with one.session() as session:
            row = await session.get(RobotWindow, _hashed(quiet))
    assert cleaned and row is not None and row.slots == [now[0]]


async def test_a_slot_taken_after_waiting_for_the_robots_row_is_kept_at_the_time_it_is_taken(
    postgres_url: str,  # noqa: F811  (the fixture)
) -> None:
    """On PostgreSQL sends to one robot take turns on its row (a burst of an alert storm
    queues there). The window kept the time a send asked, before that wait: its slot stood
    earlier than its post, so a later send, which waited less, went out less than a minute
    after it: the robot's 21st message within a minute (WeCom 45009; DingTalk holds the robot
    off for ten minutes). The time is read once the row is held."""
    await upgrade_async(postgres_url)
    robot = unique("robot")
    now = [1000.0]
    async with Database(postgres_url) as one, Database(postgres_url) as two:
        sender = SharedRateLimiter(one, per_minute=1, max_wait=0, clock=lambda: now[0])
        await sender.acquire(unique("another robot"))  # the table and the pools in use
        async with two.writing() as taking:  # another worker's take holds the robot's row
            await taking.execute(
                postgresql.insert(RobotWindow).values(robot=_hashed(robot), slots=[], until=0.0)
            )
            await taking.flush()
            waiting = asyncio.create_task(sender.acquire(robot))

            await eventually(partial(_lock_waited, two), "the send waiting for the robot's row")
            now[0] += 5  # the other take ends five seconds on
        await asyncio.wait_for(waiting, timeout=10)  # posted at 1005
        now[0] = 1064  # 59 seconds after that post: the robot's minute is not over
        with pytest.raises(DeferredNotifyError, match="over 1/min"):
            await sender.acquire(robot)


@contextlib.contextmanager
def _held_after_commit(db: Database, landed: asyncio.Event, go_on: asyncio.Event) -> Iterator[None]:
    """``db``'s commits land, then wait for ``go_on`` (``landed`` set): a cut there is a cut
    after the take's write, before the take returns."""

    def wait(session: Session) -> None:
        if session.get_bind() is db.engine.sync_engine:
            landed.set()
            await_only(go_on.wait())

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
    async with two_workers[0].session() as session:
        row = await session.get(RobotWindow, _hashed(robot))
    assert row is not None and list(row.slots) == [1000.0]
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
        with pytest.raises(asyncio.CancelledError):
            await send  # not held by its give-back
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
            row = select(RobotWindow).where(RobotWindow.robot == _hashed(robot))
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
            row = select(RobotWindow).where(RobotWindow.robot == _hashed(robot))
            await holding.execute(row.with_for_update())
        send.cancel()
        await eventually(lambda: _now(send.done()), "the cut send ended, GIVE_BACK_WAIT on")
        await limiter.aclose()  # the worker stops, the turn still held
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
            made = postgresql.insert(RobotWindow).values(robot=_hashed(robot), slots=[], until=0.0)
            await holding.execute(made)
        send = asyncio.create_task(two.acquire(robot))

        async def queued() -> bool:
            return turn.queued.is_set() if db.sqlite else await _lock_waited(db)

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
    assert await _slots(two_workers[0], robot) == [1000.0, 1060.0]
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await _slots(two_workers[0], robot) == [1000.0, 1000.0]


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
        row = await session.get(RobotWindow, _hashed(robot))
    assert row is not None and list(row.slots) == [1000.0]
    assert "not given back" not in caplog.text
