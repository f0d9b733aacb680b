"""A notify try cancelled under its send: by its caller (a watch's run cancelled in Temporal,
whose `deliver` does not wait for the cancel and gives nothing up) its rows are given up as it
ends; by a worker shutting down or a timeout, they are left to the retry Temporal makes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from temporalio.activity import ActivityCancellationDetails
from temporalio.testing import ActivityEnvironment

from activities.deliveries import GIVEN_UP
from activities.notify import NotifyActivities
from ambient.clients.notify.registry import build_channels
from ambient.deps import WorkerDeps
from ambient.domain.notify import Message, NotifyRequest, Target
from ambient.domain.users import UserCreate
from ambient.storage.repositories import DeliveryRepository, EventRepository
from ambient.storage.users import UserRepository
from tests.conftest import unique
from tests.notify.standins import WEBHOOK_SECRET
from tests.support.servers import HANG, serve


class HeldHook:
    """A webhook that takes the POST and answers only once released."""

    def __init__(self) -> None:
        self.waiting, self.released = asyncio.Event(), asyncio.Event()

    async def hook(self, request: Request) -> Response:
        self.waiting.set()
        await self.released.wait()
        return Response("ok")


@pytest_asyncio.fixture
async def held() -> AsyncIterator[tuple[HeldHook, str]]:
    hook = HeldHook()
    async with serve(Starlette(routes=[Route("/hook", hook.hook, methods=["POST"])])) as base:
        try:
            yield hook, base
        finally:
            hook.released.set()


async def cut_send(
    deps: WorkerDeps, held: tuple[HeldHook, str], details: ActivityCancellationDetails
) -> tuple[NotifyRequest, str]:
    """A watch's notify to a webhook that holds the POST, cancelled (``details``) under the
    send: the request and the webhook row's key."""
    hook, base = held
    user = unique("cut")
    async with deps.db.session() as session:
        await UserRepository(session).create(UserCreate(name=user))
        await session.commit()
    settings = deps.settings.model_copy(
        update={
            "webhook_signing_secret": SecretStr(WEBHOOK_SECRET),
            "fetch_allow_cidrs": ["127.0.0.1/32"],
        }
    )
    notify = NotifyActivities(deps.db, build_channels(settings, deps.db, deps.http))
    request = NotifyRequest(
        user=user,
        message=Message(title="Breach: disk", body="91%"),
        targets=[Target(type="webhook", target=f"{base}/hook")],
        idempotency_key=unique("threshold-watch/key"),
        task=f"threshold-watch/{user}/disk",
    )
    env = ActivityEnvironment()
    send = asyncio.create_task(env.run(notify.notify, request))
    await asyncio.wait_for(hook.waiting.wait(), HANG)
    env.cancel(details)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(send, HANG)
    async with deps.db.session() as session:
        (row,) = [
            r
            for r in await DeliveryRepository(session).under(user, request.idempotency_key)
            if r.channel == "webhook"
        ]
    return request, row.key


async def test_a_send_its_caller_cancelled_is_given_up_not_left_in_flight_for_good(
    deps: WorkerDeps, held: tuple[HeldHook, str]
) -> None:
    """A threshold watch cancelled in Temporal while its breach's webhook held the POST: the
    notify try let its row's lease go and ended, and nothing gave the row up (the watch's
    `deliver` does not wait for the cancel): `pending` for good, listed as in flight."""
    request, key = await cut_send(deps, held, ActivityCancellationDetails(cancel_requested=True))
    async with deps.db.session() as session:
        row = await DeliveryRepository(session).get(key)
        events = await EventRepository(session).list(user=request.user, limit=10)
    assert row is not None
    assert (row.status, row.error) == ("failed", GIVEN_UP)
    (told,) = [e for e in events if e.kind == "delivery.failed"]
    assert told.payload["retrying"] is False and told.payload["channel"] == "webhook"


@pytest.mark.parametrize(
    "details",
    [
        ActivityCancellationDetails(worker_shutdown=True),
        # A try past its timeout, cut by the worker's own timer (Temporal's core says "not
        # found" and "timed out"), or told "not found" by the server that timed it out.
        ActivityCancellationDetails(not_found=True, timed_out=True),
        ActivityCancellationDetails(not_found=True),
    ],
    ids=["worker shutting down", "timed out", "not found"],
)
async def test_a_send_cut_by_a_worker_shutting_down_or_a_timeout_is_left_to_the_retry(
    deps: WorkerDeps, held: tuple[HeldHook, str], details: ActivityCancellationDetails
) -> None:
    """A worker shutting down, or a try timed out, cancels its sends, and Temporal tries the
    activity again: the row is left in flight with its lease let go, for that try to take over
    at once (given up, the retry found it failed for good and the alert was never sent)."""
    _, key = await cut_send(deps, held, details)
    async with deps.db.session() as session:
        row = await DeliveryRepository(session).get(key)
    assert row is not None and row.status == "pending"
    assert row.takeable(datetime.now(UTC))
