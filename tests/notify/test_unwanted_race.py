"""A delivery ended as no longer wanted while a try sends it: sent once, and said as sent.

A give-up reads the rows, then ends each one a try may take (failed for now, deferred). A try of
another worker that took one in between (PostgreSQL lets it commit there) sends it to a slow
receiver: the end found the row taken and changed nothing, yet the user was told "not sent"
of a message the receiver got."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.deliver_later import end_for_deleted_task
from activities.deliveries import (
    POSTS,
    UNWANTED,
    UNWANTED_CAUSE,
    delivery_key,
    give_up_unwanted,
)
from activities.notify import NotifyActivities
from ambient.clients.notify.registry import build_channels
from ambient.deps import WorkerDeps
from ambient.domain.notify import DeliveryStatus, Target
from ambient.storage.repositories import DeliveryRepository, EventRepository
from tests.conftest import unique
from tests.notify.test_delivery import _request, _settings, _user
from tests.support.deliveries import left_in_flight
from tests.support.servers import serve
from tests.support.waits import eventually


@dataclass
class SlowReceiver:
    """A webhook that holds each post until ``answer`` is set."""

    answer: asyncio.Event = field(default_factory=asyncio.Event)
    posts: list[bytes] = field(default_factory=list)

    async def hook(self, request: Request) -> Response:
        self.posts.append(await request.body())
        await self.answer.wait()
        return Response("ok")


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[tuple[SlowReceiver, str]]:
    state = SlowReceiver()
    async with serve(Starlette(routes=[Route("/slow", state.hook, methods=["POST"])])) as base:
        yield state, base


async def _failed_for_now(deps: WorkerDeps, key: str, target: str, provider: str | None) -> None:
    """An earlier try's transient failure of the delivery ``key`` (a 503)."""
    now = datetime.now(UTC)
    async with deps.db.writing() as session:
        deliveries = DeliveryRepository(session)
        row, _ = await deliveries.acquire(
            key, user="alice", channel="webhook", target=target, now=now, lease_until=now
        )
        await deliveries.finish(
            key, row.attempts, status="failed", error="transient: HTTP 503", provider_id=provider
        )


async def _said(deps: WorkerDeps) -> list[str]:
    async with deps.db.session() as session:
        events = await EventRepository(session).list(user="alice", kind="delivery.failed")
    return [str(event.payload["error"]) for event in events]


async def test_an_unwanted_delivery_a_try_took_meanwhile_is_sent_once_and_not_said_unsent(
    deps: WorkerDeps, receiver: tuple[SlowReceiver, str]
) -> None:
    slow, base = receiver
    await _user(deps.db, "alice")
    deps.settings = _settings(deps.settings, base)
    notify = NotifyActivities(deps.db, build_channels(deps.settings, deps.db, deps.http))
    url = f"{base}/slow"
    request = _request(unique("unwanted-race"), Target(type="webhook", target=url))
    key = delivery_key(request.idempotency_key, "webhook", url)
    await _failed_for_now(deps, key, url, None)
    async with deps.db.session() as session:  # the give-up's read
        stale = await DeliveryRepository(session).get(key)
    assert stale is not None and stale.status == "failed"
    # A try (the channel still wanted where it runs) takes the row and posts, slowly.
    sending = asyncio.ensure_future(ActivityEnvironment().run(notify.notify, request))

    async def posted() -> bool:
        return len(slow.posts) == 1

    await eventually(posted, "the try's post")
    async with deps.db.writing() as session:  # the give-up's write, the post in flight
        await give_up_unwanted(session, request, stale, datetime.now(UTC))
    slow.answer.set()
    result = await sending
    assert [d.status for d in result.deliveries] == [DeliveryStatus.SENT]
    async with deps.db.session() as session:
        row = await DeliveryRepository(session).get(key)
    assert row is not None and (row.status, row.error) == ("sent", None)
    assert len(slow.posts) == 1
    assert await _said(deps) == []  # nothing says "not sent" of it
    # A give-up after the send finds it settled: still nothing said, nothing sent again.
    async with deps.db.writing() as session:
        await give_up_unwanted(session, request, stale, datetime.now(UTC))
    assert await _said(deps) == [] and len(slow.posts) == 1


async def test_an_unwanted_delivery_partly_posted_ends_saying_what_went(
    deps: WorkerDeps,
) -> None:
    """A message in several posts whose try failed after two: "not sent" said of it, though two
    of its posts had reached the receiver."""
    await _user(deps.db, "alice")
    request = _request(unique("unwanted-parts"), Target(type="inbox"))
    key = delivery_key(request.idempotency_key, "wecom", "ops-bot")
    await _failed_for_now(deps, key, "ops-bot", f"{POSTS}2")
    async with deps.db.writing() as session:
        row = await DeliveryRepository(session).get(key)
        assert row is not None
        await give_up_unwanted(session, request, row, datetime.now(UTC))
    said = f"{UNWANTED_CAUSE}; 2 of its posts were sent, the rest not"
    assert await _said(deps) == [said.removeprefix("permanent: ")]
    assert said != UNWANTED


@pytest.mark.parametrize(
    ("handing", "how"), [(False, "ended in flight"), (True, "died handing it to the receiver")]
)
async def test_a_deleted_tasks_delivery_left_in_flight_is_not_said_unsent(
    deps: WorkerDeps, handing: bool, how: str
) -> None:
    """A watch deleted while its message waited for a deliver-later try: a row whose last try
    died in flight was ended "its task was deleted; not sent", though the receiver may have it."""
    await _user(deps.db, "alice")
    task = unique("web-monitor/alice/news")
    request = _request(unique(f"{task}/change"), Target(type="webhook", target="secret:hook"))
    request = request.model_copy(update={"task": task})
    key = delivery_key(request.idempotency_key, "webhook", "secret:hook")
    await left_in_flight(deps.db, key, "alice", "webhook", "secret:hook")
    async with deps.db.writing() as session:
        deliveries = DeliveryRepository(session)
        await deliveries.hold(key, 1, datetime.now(UTC) - timedelta(seconds=1))  # its lease over
        if handing:
            await deliveries.posted(key, 1, "handing")
    with pytest.raises(ApplicationError) as ended:
        await end_for_deleted_task(deps.db, request)
    said = (
        f"permanent: its task {task} was deleted; its last try {how}: it may have been "
        "delivered; not sent again"
    )
    assert ended.value.details == (f"webhook: {said}",)
    assert await _said(deps) == [said.removeprefix("permanent: ")]
    async with deps.db.session() as session:
        row = await DeliveryRepository(session).get(key)
    assert row is not None and (row.status, row.error) == ("failed", said)
