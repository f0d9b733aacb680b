"""The full MCP endpoint behind a load balancer: any API replica answers any request of a
client's, as it does on ``/mcp/voice``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.domain.users import UserCreate
from ambient.storage.users import UserRepository
from api.app import create_app
from tests.conftest import running_worker, unique
from tests.support.api_replicas import api_env, api_replica
from tests.support.servers import HANG, serve
from tests.support.waits import eventually


class RoundRobin(httpx2.AsyncHTTPTransport):
    """A load balancer without affinity: each request to the next replica's port in turn."""

    def __init__(self, ports: list[int]) -> None:
        super().__init__()
        self.ports = ports
        self.served: Counter[int] = Counter()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        port = self.ports[sum(self.served.values()) % len(self.ports)]
        self.served[port] += 1
        request.url = request.url.copy_with(port=port)
        return await super().handle_async_request(request)


def _text(result: Any) -> str:
    assert not result.is_error, result.content
    return str(getattr(result.content[0], "text", ""))


async def _use(url: str, token: str, balancer: RoundRobin, mode: str, name: str) -> None:
    """One MCP client through ``balancer``: it lists the tools, asks who it is, creates a
    reminder and finds it listed. ``mode`` "legacy" is the initialize handshake every client
    but the newest speaks (a session id on each request after it), "auto" the current one."""
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(transport=balancer, timeout=HANG, headers=headers) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as client,
    ):
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert {"whoami", "create_reminder", "list_tasks"} <= tools
        assert name in _text(await client.call_tool("whoami", {}))
        reminder = f"standup-{mode}"
        made = await client.call_tool(
            "create_reminder", {"config": {"hour": 9, "message": "stand-up"}, "name": reminder}
        )
        assert reminder in _text(made)

        async def listed() -> bool:
            return reminder in _text(await client.call_tool("list_tasks", {}))

        await eventually(listed, "the reminder listed through either replica")


async def test_an_mcp_client_behind_a_load_balancer_is_answered_by_either_replica(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """Two API replicas on one app database, each in a process of its own (an ``ambient api``
    process, and this test's: one API start less of the suite's CPU, the same two memories);
    every request of one MCP client goes to the other replica than the last, in both protocol
    eras. The full ``/mcp`` kept the handshake's sessions in the process that opened them: the
    request after ``initialize`` reached the other replica and was answered 404 "Session not
    found", so a client of the handshake era (all but the newest) never listed a tool."""
    name = unique("lb")
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name))
        await session.commit()
    async with running_worker(dev_env.client, deps) as worker:
        env = api_env(deps.settings.resolved_database_url, dev_env, worker.task_queue, tmp_path)
        settings = deps.settings.model_copy(
            update={
                "temporal_address": env["AMBIENT_TEMPORAL_ADDRESS"],
                "temporal_task_queue": worker.task_queue,
            }
        )
        async with (
            serve(create_app(settings)) as one,
            api_replica(env, tmp_path / "api-2.log") as two,
        ):
            for mode in ("legacy", "auto"):
                balancer = RoundRobin([httpx2.URL(one).port or 0, httpx2.URL(two).port or 0])
                await _use(f"{one}/mcp", token, balancer, mode, name)
                # Both replicas answered the one client, neither more than one request apart.
                counts = list(balancer.served.values())
                assert len(counts) == 2 and min(counts) >= 2, (mode, counts)
                assert max(counts) - min(counts) <= 1, (mode, counts)
