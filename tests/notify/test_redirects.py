"""A push endpoint that redirects to an address the destination guard refuses (the cloud's
metadata service, a private host): nothing follows the redirect, on any channel a user aims."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from activities.notify import NotifyActivities
from ambient.deps import WorkerDeps
from ambient.domain.notify import DeliveryStatus, Message, NotifyRequest, Target
from tests.conftest import unique
from tests.notify.test_leases import _notify, _user
from tests.support.servers import serve


class Inside:
    """A host inside (127.0.0.2: not allow-listed, loopback to the guard) counting who comes."""

    def __init__(self) -> None:
        self.connections = 0
        self.url = ""

    async def came(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()


@pytest_asyncio.fixture
async def redirecting() -> AsyncIterator[tuple[Inside, str]]:
    """The inside host, and an allow-listed endpoint (127.0.0.1) whose /to/{status} answers
    that redirect to it, and /meta to the metadata address."""
    inside = Inside()
    server = await asyncio.start_server(inside.came, "127.0.0.2", 0)
    inside.url = f"http://127.0.0.2:{server.sockets[0].getsockname()[1]}/latest/meta-data"

    async def moved(request: Request) -> Response:
        where = request.path_params.get("status")
        location = inside.url if where else "http://169.254.169.254/latest/meta-data"
        return Response(status_code=int(where or 302), headers={"location": location})

    app = Starlette(
        routes=[
            Route("/to/{status:int}", moved, methods=["POST"]),
            Route("/meta", moved, methods=["POST"]),
        ]
    )
    async with serve(app) as base:
        yield inside, base
    server.close()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_to_an_inside_address_is_not_followed(
    deps: WorkerDeps, redirecting: tuple[Inside, str], status: int
) -> None:
    inside, base = redirecting
    await _user(deps.db, "alice")
    notify: NotifyActivities = _notify(deps, base)
    targets = [
        Target(type="webhook", target=f"{base}/to/{status}"),
        Target(type="apprise", target=base.replace("http://", "json://") + f"/to/{status}"),
        Target(type="webhook", target=f"{base}/meta"),
    ]
    request = NotifyRequest(
        user="alice",
        message=Message(title="Disk 91%", body="node-3"),
        targets=targets,
        idempotency_key=unique("redirect"),
    )
    result = await notify.send(request, heartbeat=False)
    assert [d.status for d in result.deliveries] == [DeliveryStatus.FAILED] * 3
    for delivery in result.deliveries:
        assert (delivery.error or "").startswith("permanent:"), delivery
        assert "redirects are not followed" in (delivery.error or ""), delivery
    assert inside.connections == 0
