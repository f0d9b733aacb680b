"""A notification whose database does not answer for a while (a restart, a failover) is sent
once it answers again, within its try: the tries' backoff (~30 s in all) was shorter than a
database's restart, and a threshold watch's recovery was given up for good with its receiver
up all along."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import notify as notify_module
from activities.notify import NotifyActivities
from ambient.deps import WorkerDeps
from ambient.domain.notify import DeliveryStatus, Target
from tests.conftest import unique
from tests.notify.test_leases import _notify, _request, _user
from tests.support.servers import serve


async def test_a_send_waits_for_its_database_and_sends_once_when_it_answers(
    deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    posts: list[str] = []

    async def hook(request: Request) -> Response:
        posts.append(request.headers["x-ambient-idempotency-key"])
        return Response("ok")

    recipient, refused = NotifyActivities.recipient, [3]

    async def away(self: NotifyActivities, name: str) -> Any:
        if refused[0]:  # the database's first three answers: none (it restarts)
            refused[0] -= 1
            raise OperationalError(None, None, ConnectionRefusedError(111, "Connect call failed"))
        return await recipient(self, name)

    monkeypatch.setattr(NotifyActivities, "recipient", away)
    monkeypatch.setattr(notify_module, "DATABASE_WAIT", timedelta(seconds=0.1))
    await _user(deps.db, "alice")
    async with serve(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as base:
        notify = _notify(deps, base)
        request = _request(unique("outage"), Target(type="webhook", target=f"{base}/hook"))
        env = ActivityEnvironment()
        env.info = replace(
            env.info,
            started_time=datetime.now(UTC),
            start_to_close_timeout=timedelta(minutes=2),
        )
        result = await env.run(notify.notify, request)
    assert refused == [0]
    assert [d.status for d in result.deliveries] == [DeliveryStatus.SENT]
    assert len(posts) == 1


async def test_a_database_away_past_the_tries_time_fails_the_try(
    deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Waited for only while the try has time: the next try (Temporal's) asks again.
    asked: list[str] = []

    async def away(self: NotifyActivities, name: str) -> Any:
        asked.append(name)
        raise OperationalError(None, None, ConnectionRefusedError(111, "Connect call failed"))

    monkeypatch.setattr(NotifyActivities, "recipient", away)
    monkeypatch.setattr(notify_module, "DATABASE_WAIT", timedelta(seconds=1))
    await _user(deps.db, "alice")
    notify = _notify(deps, "http://127.0.0.1:9")
    request = _request(unique("outage"), Target(type="webhook", target="http://127.0.0.1:9/h"))
    env = ActivityEnvironment()
    env.info = replace(
        env.info, started_time=datetime.now(UTC), start_to_close_timeout=timedelta(seconds=5)
    )
    with pytest.raises(ApplicationError, match="notify could not reach the database") as failed:
        await env.run(notify.notify, request)
    assert failed.value.type == "TransientNotifyError" and not failed.value.non_retryable
    # Asked again while its 5 s allowed a wait of 1 s and one more after it; then given up
    # to the next try.
    assert len(asked) >= 2, asked
