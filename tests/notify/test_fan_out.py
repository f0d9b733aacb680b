"""One alert to ten channels, one of them dead: the nine get it at once and once, the dead one
is retried alone and gets it once when it is back."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from temporalio.exceptions import ApplicationError

from ambient.deps import WorkerDeps
from ambient.domain.notify import DeliveryStatus, Message, NotifyRequest, Target
from tests.conftest import unique
from tests.notify.test_leases import _notify, _user
from tests.support.servers import HANG, serve


async def test_an_alert_to_ten_channels_with_one_dead_reaches_each_once(deps: WorkerDeps) -> None:
    received: list[int] = []
    dead = asyncio.Event()
    dead.set()
    over = asyncio.Event()  # the test is over: a hung answer ends

    async def hook(request: Request) -> Response:
        number = request.path_params["n"]
        if number == 7 and dead.is_set():
            # Hung: no answer until the send's deadline cuts it off (and none taken after).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(over.wait(), HANG)
            return Response("too late", status_code=504)
        received.append(number)
        return Response("ok")

    await _user(deps.db, "alice")
    app = Starlette(routes=[Route("/hook/{n:int}", hook, methods=["POST"])])
    async with serve(app) as base:
        # The dead one's hang is cut at this; each live one must answer within it, which a
        # loaded machine's loopback post can take seconds to (then posted again: counted twice).
        notify = _notify(deps, base, notify_target_timeout=6.0)
        targets = [Target(type="webhook", target=f"{base}/hook/{n}") for n in range(10)]
        request = NotifyRequest(
            user="alice",
            message=Message(title="Disk 91%", body="node-3"),
            targets=targets,
            idempotency_key=unique("ten"),
        )
        with pytest.raises(ApplicationError, match="no answer within 6s") as raised:
            await notify.send(request, heartbeat=False)
        assert not raised.value.non_retryable
        assert sorted(received) == [n for n in range(10) if n != 7]
        # A retry while it is still dead: the nine are not sent again.
        with pytest.raises(ApplicationError):
            await notify.send(request, heartbeat=False)
        dead.clear()
        result = await notify.send(request, heartbeat=False)
        over.set()
    statuses = [d.status for d in result.deliveries]
    assert statuses.count(DeliveryStatus.DUPLICATE) == 9
    assert statuses.count(DeliveryStatus.SENT) == 1
    assert sorted(received) == list(range(10))
