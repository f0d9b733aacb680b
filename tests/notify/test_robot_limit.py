"""A group robot's rate limit kept by every worker together: its window in the app database."""

from __future__ import annotations

import asyncio
import hashlib
from functools import partial
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.util import await_only

from ambient.clients.notify.base import SEND_CLOCK, SendClock
from ambient.clients.notify.dingtalk import DingTalkChannel
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


def hashed(key: str) -> str:
    """The robot's row: the sha256 of its key (a credential, never stored)."""
    return hashlib.sha256(key.encode()).hexdigest()


async def lock_waited(db: Database) -> bool:
    """Whether a statement on ``db``'s PostgreSQL server waits for a lock (a row another holds)."""
    async with db.session() as session:
        waits = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        return bool(await session.scalar(text(waits)))


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
        row = await session.get(RobotWindow, hashed(WECOM_KEY))
    assert row is not None and len(row.slots) == 20


async def test_a_robot_held_off_after_its_limit_is_not_posted_to_by_any_worker_until_then(
    two_workers: tuple[Database, Database],
    endpoints: tuple[PushEndpoints, str],
    http: httpx.AsyncClient,
) -> None:
    """Past its limit (other senders share the robot) DingTalk holds a robot off ten minutes,
    answering 130101 to every message. The window did not know: each other delivery to it,
    from either worker, posted once more to be refused. The refusal fills the shared window
    until the robot takes messages again: the next send is deferred to then, unposted."""
    state, base = endpoints
    state.failures["dingtalk"] = ["errcode:130101"]
    one, two = (
        DingTalkChannel(http, SECRETS, base, timeout=10, limiter=SharedRateLimiter(db))
        for db in two_workers
    )
    with pytest.raises(DeferredNotifyError, match="130101") as refused:
        await one.send("alice", REPORT, "secret:ding", idempotency_key="k")
    assert refused.value.retry_after == 600
    for channel in (two, one):
        with pytest.raises(DeferredNotifyError, match="over 20/min") as held:
            await channel.send("alice", REPORT, "secret:ding", idempotency_key="k")
        assert held.value.retry_after is not None and 590 < held.value.retry_after <= 600
    assert state.throttled == [] and state.received == []


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
            row = await session.get(RobotWindow, hashed("robot"))
            return row is not None and list(row.slots) == [1000.0]

    await eventually(given_back, "the cut-off slot given back")
    now[0] += 61  # the first send's minute is over: the robot has a free slot at once
    await asyncio.wait_for(one.acquire("robot"), timeout=10)
    now[0] += 61
    await two.acquire("another robot")
    async with two_workers[0].session() as session:
        kept = {r.robot: r.slots for r in (await session.execute(select(RobotWindow))).scalars()}
    assert hashed("robot") not in kept and kept[hashed("another robot")] == [now[0]]


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
            held = select(RobotWindow).where(RobotWindow.robot == hashed(quiet))
            assert (await taking.scalar(held.with_for_update())) is not None
            await asyncio.wait_for(sender.acquire(robot), timeout=10)
        now[0] += 1
        await sender.acquire(robot)  # a later take removes the quiet robot's row
        async with one.session() as session:
            robots = set((await session.scalars(select(RobotWindow.robot))).all())
    assert hashed(robot) in robots and hashed(quiet) not in robots


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
            row = await session.get(RobotWindow, hashed(quiet))
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
                postgresql.insert(RobotWindow).values(robot=hashed(robot), slots=[], until=0.0)
            )
            await taking.flush()
            waiting = asyncio.create_task(sender.acquire(robot))

            await eventually(partial(lock_waited, two), "the send waiting for the robot's row")
            now[0] += 5  # the other take ends five seconds on
        await asyncio.wait_for(waiting, timeout=10)  # posted at 1005
        now[0] = 1064  # 59 seconds after that post: the robot's minute is not over
        with pytest.raises(DeferredNotifyError, match="over 1/min"):
            await sender.acquire(robot)
