"""One poll fetches a watch at a time: a poll's start takes the watch in the database
(docs/polling.md, invariant 2), on SQLite and on a real PostgreSQL."""

# ruff: noqa: F811 - the fixtures `any_db` and `postgres_url` are imported by name (`pg` is in conftest)

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route
from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities
from activities.poll_session import PollSession
from activities.polling import PagePoller
from ambient.clients.notify.base import ChannelRegistry
from ambient.clients.web import WebFetcher
from ambient.storage import Database
from ambient.storage.polls import WatchPollEnd, WatchPollLease
from ambient.watches.configs import WebMonitorConfig
from ambient.watches.leases import RELEASED, Lease, LeaseBook
from ambient.watches.polling import PollEnd, PollRequest
from tests.foundation.test_postgres import postgres_url  # noqa: F401  (fixture)
from tests.support.servers import serve
from tests.support.waits import eventually
from tests.watches.site import article
from tests.watches.test_poll_ends import any_db  # noqa: F401  (fixture)
from tests.watches.test_poll_leases import _age


@pytest.fixture
def task() -> str:
    """A watch of its own (the PostgreSQL database is shared by the session's tests)."""
    return f"web-monitor/alice/{uuid.uuid4().hex[:12]}"


@pytest_asyncio.fixture
async def counted() -> AsyncIterator[tuple[list[str], str]]:
    """A page that counts its fetches."""
    fetches: list[str] = []

    async def news(request: Request) -> HTMLResponse:
        fetches.append(request.url.path)
        return HTMLResponse(article("Calm."))

    async with serve(Starlette(routes=[Route("/news", news)])) as base:
        yield fetches, base


def _request(task: str, base: str, poll: int) -> PollRequest:
    config = WebMonitorConfig.model_validate(
        {"urls": [f"{base}/news"], "check_interval_minutes": 1}
    )
    return PollRequest(
        user="alice",
        task=task,
        workflow_id=task,
        life="life-1",
        config=config,
        targets=[],
        urls={},
        seq=0,
        interval_seconds=60.0,
        window_seconds=600.0,
        first_only=True,
        poll=poll,
    )


async def _holder(db: Database, task: str) -> tuple[int, str]:
    async with db.session() as session:
        row = await session.scalar(select(WatchPollLease).where(WatchPollLease.task == task))
    assert row is not None
    return row.poll, row.process


async def test_two_attempts_of_one_poll_started_together_in_two_live_processes_fetch_once(
    any_db: Database, task: str, counted: tuple[list[str], str]
) -> None:
    # Temporal's retry of a poll starting while the workflow's next poll (or the attempt it
    # believed dead) starts too: both ask the page only if both may hold the watch.
    fetches, base = counted
    notifier = NotifyActivities(any_db, ChannelRegistry())
    here, elsewhere = (
        PagePoller(any_db, WebFetcher(allow_cidrs=["127.0.0.1/32"]), notifier) for _ in "ab"
    )
    results = await asyncio.gather(
        ActivityEnvironment().run(here.poll_pages, _request(task, base, 3)),
        ActivityEnvironment().run(elsewhere.poll_pages, _request(task, base, 3)),
    )
    assert fetches == ["/news"]
    assert sorted(result.checks for result in results) == [0, 1]


async def test_an_earlier_poll_started_late_gives_way_even_after_the_later_one_ended(
    any_db: Database, task: str, counted: tuple[list[str], str]
) -> None:
    fetches, base = counted
    notifier = NotifyActivities(any_db, ChannelRegistry())
    here, elsewhere = (
        PagePoller(any_db, WebFetcher(allow_cidrs=["127.0.0.1/32"]), notifier) for _ in "ab"
    )
    later = await ActivityEnvironment().run(here.poll_pages, _request(task, base, 5))
    assert later.checks == 1
    await here.leases.flush()  # poll 5 handed back: its lease is released
    assert await _holder(any_db, task) == (5, RELEASED)
    # Poll 4's retry arrives after the workflow moved on (its heartbeat timeout is long).
    late = await ActivityEnvironment().run(elsewhere.poll_pages, _request(task, base, 4))
    assert late.checks == 0 and late.events == []
    assert fetches == ["/news"]


async def test_a_failed_attempts_retry_in_another_process_takes_the_watch_at_once(
    any_db: Database, task: str, counted: tuple[list[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The failed attempt's lease waited for its process's next flush (up to 5 s): Temporal's
    # retry a second later in another process gave way to it and handed back empty, and the
    # check asked for (check now, an update's) was never made.
    fetches, base = counted
    notifier = NotifyActivities(any_db, ChannelRegistry())
    here, elsewhere = (
        PagePoller(any_db, WebFetcher(allow_cidrs=["127.0.0.1/32"]), notifier) for _ in "ab"
    )
    run, failing = PollSession.run, [RuntimeError("this attempt failed")]

    async def fails_once(self: PollSession) -> Any:
        if failing:
            raise failing.pop()
        return await run(self)

    monkeypatch.setattr(PollSession, "run", fails_once)
    with pytest.raises(RuntimeError):
        await ActivityEnvironment().run(here.poll_pages, _request(task, base, 3))
    retry = await ActivityEnvironment().run(elsewhere.poll_pages, _request(task, base, 3))
    assert retry.checks == 1 and fetches == ["/news"]


async def test_the_same_poll_is_taken_from_a_dead_process_only(any_db: Database, task: str) -> None:
    dead, live = LeaseBook(any_db, "dead", 30.0), LeaseBook(any_db, "live", 30.0)
    assert await dead.claim(Lease(task, "life-1", "run", 2))
    assert not await live.claim(Lease(task, "life-1", "run", 2))  # its holder is alive
    await _age(any_db, "dead", 31.0)  # silent past its dead_after: no kill needed
    assert await live.claim(Lease(task, "life-1", "run", 2))
    assert await _holder(any_db, task) == (2, "live")


async def test_a_later_poll_takes_the_watch_and_asks_the_earlier_holder_to_end(
    any_db: Database,
    task: str,
) -> None:
    a, b = LeaseBook(any_db, "a", 30.0), LeaseBook(any_db, "b", 30.0)
    assert await a.claim(Lease(task, "life-1", "run", 1))
    assert await b.claim(Lease(task, "life-1", "run", 2))
    assert not await a.claim(Lease(task, "life-1", "run", 1))  # a late start of poll 1
    assert await _holder(any_db, task) == (2, "b")
    async with any_db.session() as session:
        ends = (
            (await session.execute(select(WatchPollEnd).where(WatchPollEnd.task == task)))
            .scalars()
            .all()
        )
    assert [(e.task, e.run_id, e.poll) for e in ends] == [(task, "run", 1)]
    # A new run (continued as new) starts over from poll 1.
    assert await a.claim(Lease(task, "life-1", "run-2", 1))
    assert await _holder(any_db, task) == (1, "a")


def _of_run(run_id: str) -> ActivityEnvironment:
    """An activity environment whose poll belongs to the workflow run ``run_id``."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, workflow_run_id=run_id)
    return env


async def test_a_reset_runs_first_poll_ends_the_poll_of_the_run_before_it_in_the_same_process(
    any_db: Database, task: str, counted: tuple[list[str], str]
) -> None:
    # `temporal workflow reset`: the old run is terminated while its poll sleeps between
    # checks (its heartbeats reach the server up to 48 minutes apart), and the new run's
    # first poll starts in the same worker process with the same number. The old poll
    # fetched beside the new one until its heartbeat was refused.
    fetches, base = counted
    poller = PagePoller(
        any_db,
        WebFetcher(allow_cidrs=["127.0.0.1/32"]),
        NotifyActivities(any_db, ChannelRegistry()),
    )
    keeps_polling = _request(task, base, 1).model_copy(update={"first_only": False})
    old = asyncio.create_task(_of_run("run-old").run(poller.poll_pages, keeps_polling))

    async def checked() -> bool:
        return fetches == ["/news"]

    await eventually(checked, "the old run's poll checked")
    new = await _of_run("run-new").run(poller.poll_pages, _request(task, base, 1))
    assert new.checks == 1
    ended = await asyncio.wait_for(old, 30)
    assert ended.ended is PollEnd.CLOSED
    assert await _holder(any_db, task) == (1, poller.leases.process)


async def test_a_reset_runs_poll_elsewhere_asks_the_poll_of_the_run_before_it_to_end(
    any_db: Database, task: str
) -> None:
    # The same in two processes: the new run's poll 1 takes the watch from the old run's
    # poll 1 (same number, another run) and asks it to end.
    a, b = LeaseBook(any_db, "a", 30.0), LeaseBook(any_db, "b", 30.0)
    assert await a.claim(Lease(task, "life-1", "run-old", 1))
    assert await b.claim(Lease(task, "life-1", "run-new", 1))
    async with any_db.session() as session:
        asked = select(WatchPollEnd).where(WatchPollEnd.task == task)
        ends = (await session.execute(asked)).scalars().all()
    assert [(e.run_id, e.poll) for e in ends] == [("run-old", 1)]
