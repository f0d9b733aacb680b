"""A worker gone between a webhook's post and its row's record: the try that takes the row over
once its lease ends posts it again with the same idempotency key, so a receiver that drops
repeated keys shows it once; the row then says sent."""

from __future__ import annotations

import asyncio

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ambient.deps import WorkerDeps
from ambient.domain.notify import DeliveryStatus, Message, NotifyRequest, Target
from ambient.storage.repositories import DeliveryRepository
from tests.conftest import unique
from tests.notify.test_leases import _notify, _rows, _user
from tests.support.servers import serve
from tests.support.waits import eventually


async def test_a_webhook_posted_by_a_worker_gone_before_its_record_is_posted_again_with_its_key(
    deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys: list[str] = []

    async def hook(request: Request) -> Response:
        keys.append(request.headers["x-ambient-idempotency-key"])
        return Response("ok")

    await _user(deps.db, "alice")
    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    async with serve(app) as base:
        notify = _notify(deps, base, notify_target_timeout=1.0)
        key = unique("gone")
        request = NotifyRequest(
            user="alice",
            message=Message(title="Disk 91%", body="node-3"),
            targets=[Target(type="webhook", target=f"{base}/hook")],
            idempotency_key=key,
        )
        finish = DeliveryRepository.finish
        never = asyncio.Event()

        async def dying(*args: object, **kwargs: object) -> None:
            await never.wait()  # the process is gone: nothing after the post runs

        monkeypatch.setattr(DeliveryRepository, "finish", dying)
        first = asyncio.create_task(notify.send(request, heartbeat=False))

        async def posted() -> bool:
            return len(keys) == 1

        await eventually(posted, "the first post")
        first.cancel()  # what a kill -9 leaves: the row pending, its lease running
        monkeypatch.setattr(DeliveryRepository, "finish", finish)
        row = (await _rows(deps.db, key))["webhook"]
        assert row.status == "pending"

        async def taken_over() -> list[DeliveryStatus] | None:
            result = await notify.send(request, heartbeat=False)
            statuses = [d.status for d in result.deliveries]
            return statuses if statuses == [DeliveryStatus.SENT] else None

        # In flight until its lease (the timeout and 5 s) ends; then taken over and posted.
        async def retried() -> list[DeliveryStatus] | None:
            try:
                return await taken_over()
            except Exception:
                return None

        assert await eventually(retried, "the row taken over", bound=30)
    # Posted again with the first post's key; a post slower than the 1 s timeout on a loaded
    # machine is a failed try the receiver saw, and is posted again with that key too.
    assert len(keys) >= 2 and set(keys) == {keys[0]} and keys[0].startswith(key)
    assert (await _rows(deps.db, key))["webhook"].status == "sent"
