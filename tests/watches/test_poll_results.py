"""What a poll hands back for pages that change at every check: a window's worth of events
in one result that history can hold."""

# ruff: noqa: F811 - the fixture `loopback_deps` is imported and used by name

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from sqlalchemy import event
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities
from activities.poll_session import MAX_RESULT_BYTES
from activities.polling import PagePoller
from ambient.clients.notify.registry import build_channels
from ambient.clients.web import WebFetcher
from ambient.deps import WorkerDeps
from ambient.storage.repositories import EventRepository
from ambient.watches.configs import WebMonitorConfig
from ambient.watches.page_changes import MAX_SHOWN_LINE
from ambient.watches.polling import EndPoll, PollEnd, PollRequest, PollResult
from tests.support.servers import serve
from tests.watches.site import article
from tests.watches.test_workflows import USER, loopback_deps  # noqa: F401  (fixture)

TASK = f"web-monitor/{USER}/every-check"


class NewsEveryFetch:
    """A page with a new headline at every fetch; ``pad`` characters make it one long line."""

    def __init__(self) -> None:
        self.fetches = 0
        self.pad = 0

    async def page(self, request: Request) -> Response:
        self.fetches += 1
        headline = f"Update {self.fetches}: operations news " + "x" * self.pad
        return Response(article("Steady paragraph about the service.", headline))


@pytest_asyncio.fixture
async def news() -> AsyncIterator[tuple[NewsEveryFetch, str]]:
    state = NewsEveryFetch()
    async with serve(Starlette(routes=[Route("/news", state.page)])) as base:
        yield state, base


def poller(deps: WorkerDeps) -> PagePoller:
    notifier = NotifyActivities(deps.db, build_channels(deps.settings, deps.db, deps.http))
    made = PagePoller(deps.db, WebFetcher(allow_cidrs=["127.0.0.1/32"]), notifier)
    made.writer.linger = 0.0  # each check is written at once: many checks in a short test
    return made


def request(base: str, before: PollResult | None) -> PollRequest:
    config = WebMonitorConfig.model_validate(
        {"urls": [f"{base}/news"], "check_interval_minutes": 1, "keywords": ["operations"]}
    )
    return PollRequest(
        user=USER,
        task=TASK,
        workflow_id=TASK,
        life="life-1",
        config=config,
        targets=[],
        urls=before.urls if before else {},
        seq=before.seq if before else 0,
        interval_seconds=0.02,
        window_seconds=3600.0,
        first_only=before is None,
    )


async def stored_hits(deps: WorkerDeps, at_least: int) -> None:
    for _ in range(1200):  # a bound, not a timing claim
        async with deps.db.session() as session:
            rows = await EventRepository(session).list(task=TASK, limit=1000)
        if sum(row.kind == "watch.hit" for row in rows) >= at_least:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {at_least} hits were stored")


async def test_a_page_that_changes_at_every_check_keeps_its_poll_past_twenty_changes(
    loopback_deps: WorkerDeps, news: tuple[NewsEveryFetch, str]
) -> None:
    _, base = news
    polls = poller(loopback_deps)
    baseline = await ActivityEnvironment().run(polls.poll_pages, request(base, None))
    running = asyncio.create_task(
        ActivityEnvironment().run(polls.poll_pages, request(base, baseline))
    )
    await stored_hits(loopback_deps, 25)
    await polls.end_poll(EndPoll(workflow_id=TASK, life="life-1"))
    result = await running
    # Asked to hand back, not full: a changing page hands back once a window like the others.
    assert result.ended is PollEnd.CONTROL
    assert len(result.events) >= 25
    assert all(event.kind == "watch.hit" for event in result.events)


async def test_a_poll_ended_as_its_write_commits_hands_back_the_events_that_write_stored(
    loopback_deps: WorkerDeps, news: tuple[NewsEveryFetch, str]
) -> None:
    # The end request cancelled the check in flight; landing after its write committed and
    # before the check took the write's events, it left them out of the result (the database
    # held one hit more than the poll handed back, and that hit's messages waited).
    _, base = news
    polls = poller(loopback_deps)
    baseline = await ActivityEnvironment().run(polls.poll_pages, request(base, None))
    before = await hits(loopback_deps)
    running = asyncio.create_task(
        ActivityEnvironment().run(polls.poll_pages, request(base, baseline))
    )
    await stored_hits(loopback_deps, before + 3)
    ending: list[asyncio.Task[None]] = []

    def end_as_it_commits(_: Any) -> None:  # runs before the committed write returns
        if not ending:
            ending.append(
                asyncio.ensure_future(polls.end_poll(EndPoll(workflow_id=TASK, life="life-1")))
            )

    engine = loopback_deps.db.engine.sync_engine
    event.listen(engine, "commit", end_as_it_commits)
    try:
        result = await running
    finally:
        event.remove(engine, "commit", end_as_it_commits)
    await asyncio.gather(*ending)
    assert result.ended is PollEnd.CONTROL
    assert [e.seq for e in result.events] == list(range(1, len(result.events) + 1))
    assert len(result.events) == await hits(loopback_deps) - before


async def hits(deps: WorkerDeps) -> int:
    async with deps.db.session() as session:
        rows = await EventRepository(session).list(task=TASK, limit=1000)
    return sum(row.kind == "watch.hit" for row in rows)


async def test_a_page_of_huge_lines_hands_back_a_result_history_can_hold(
    loopback_deps: WorkerDeps, news: tuple[NewsEveryFetch, str]
) -> None:
    state, base = news
    state.pad = 100_000  # each headline is a 100 KB line
    polls = poller(loopback_deps)
    baseline = await ActivityEnvironment().run(polls.poll_pages, request(base, None))
    result = await ActivityEnvironment().run(polls.poll_pages, request(base, baseline))
    assert result.ended is PollEnd.FULL
    assert len(result.model_dump_json()) < 2 * MAX_RESULT_BYTES  # Temporal warns at 512 KB
    payloads: list[Any] = [event.payload for event in result.events]
    shown = [line for p in payloads for line in p["excerpt"].split("\n")]
    shown += [line for p in payloads for lines in p["hits"].values() for line in lines]
    assert shown and all(len(line) <= MAX_SHOWN_LINE for line in shown)
    # The hit is still found on the whole line and shown from its start.
    assert all(p["hits"]["operations"][0].startswith("Update ") for p in payloads)
