"""The agent facade against real MCP servers: in-process and streamable HTTP on loopback."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import ToolAnnotations

from ambient.agent.errors import UnknownToolError
from ambient.agent.facade import AgentFacade, Health, ToolNames
from ambient.agent.hub import McpServerSpec, client_for
from ambient.clients.guard import DestinationGuard
from tests.support.servers import free_port, serve

READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True)
WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False)
# The toy server's tools marked READ, which a test names as the person's allow list.
TOY_READS = ("echo", "repeat", "slow", "boom")

# The stand-in servers listen on loopback, which the destination guard refuses unless allowed.
LOOPBACK = DestinationGuard(["127.0.0.0/8"])


def toy_server(calls: list[str] | None = None) -> MCPServer[Any]:
    seen = calls if calls is not None else []
    server: MCPServer[Any] = MCPServer(name="toy")

    async def echo(text: str) -> str:
        """Say the text back."""
        seen.append(text)
        return f"echo: {text}"

    async def repeat(text: str, times: int) -> str:
        """Say the text back, ``times`` over."""
        return text * times

    async def slow(seconds: float) -> str:
        """Answer after a while."""
        await asyncio.sleep(seconds)
        return "late"

    async def boom() -> str:
        """Always fails."""
        raise ToolError("boom: the thing is broken")

    async def drop_table(name: str) -> str:
        """Destroys a table."""
        return f"dropped {name}"

    server.add_tool(echo, annotations=READ)
    server.add_tool(repeat, annotations=READ)
    server.add_tool(slow, annotations=READ)
    server.add_tool(boom, annotations=READ)
    server.add_tool(drop_table, annotations=WRITE)
    return server


def test_function_names_round_trip_and_stay_valid_for_openai() -> None:
    names = ToolNames(own_server="ambient")
    pairs = [
        ("ambient", "create_web_monitor"),
        ("github", "create_issue"),
        ("my.server", "tool with spaces"),
        ("x" * 30, "y" * 60),
        ("x" * 30, "y" * 59 + "z"),
    ]
    made = [names.add(server, tool) for server, tool in pairs]
    assert made[0] == "create_web_monitor" and made[1] == "github__create_issue"
    assert len(set(made)) == len(made)
    for name, pair in zip(made, pairs, strict=True):
        assert len(name) <= 64 and all(c.isalnum() or c in "_-" for c in name)
        assert names.resolve(name) == pair
        assert names.add(*pair) == name  # stable
    assert names.resolve("nothing") is None


async def test_tool_listings_are_cached_until_the_ttl_passes() -> None:
    now = [1000.0]
    facade = AgentFacade(ttl_seconds=60, clock=lambda: now[0])
    server = toy_server()
    facade.add_server("toy", lambda: Client(server, cache=None))
    try:
        first = await facade.tools()
        assert {t.function for t in first} == {
            "toy__echo",
            "toy__repeat",
            "toy__slow",
            "toy__boom",
            "toy__drop_table",
        }
        drop = next(t for t in first if t.tool == "drop_table")
        assert drop.destructive and not drop.read_only
        now[0] += 59
        await facade.tools()
        assert facade.list_calls == 1
        now[0] += 2
        await facade.tools()
        assert facade.list_calls == 2
        await facade.tools(refresh=True)
        assert facade.list_calls == 3
        functions = await facade.openai_tools()
        echo = next(f for f in functions if f["function"]["name"] == "toy__echo")
        assert echo["function"]["parameters"]["properties"]["text"]["type"] == "string"
        assert echo["function"]["strict"] is False
    finally:
        await facade.close()


async def test_calls_time_out_fail_readably_count_metrics_and_set_health() -> None:
    facade = AgentFacade(timeout_seconds=30)
    seen: list[str] = []
    server = toy_server(seen)
    facade.add_server("toy", lambda: Client(server, cache=None))
    try:
        outcomes = [
            await facade.call("toy__echo", {"text": "a"}),
            await facade.call("toy__echo", {"text": "b"}),
        ]
        assert [o.text for o in outcomes] == ["echo: a", "echo: b"] and seen == ["a", "b"]
        assert facade.health()["toy"] is Health.ACTIVE
        broken = await facade.call("toy__boom", {})
        assert not broken.ok and "the thing is broken" in broken.text
        # 1 failure of 3 calls: 33 % errors → degraded.
        assert facade.health()["toy"] is Health.DEGRADED

        late = await facade.call("toy__slow", {"seconds": 5}, timeout_seconds=0.2)
        assert not late.ok and "timed out" in late.text
        # 2 failures of 4 calls: 50 % errors → error.
        assert facade.health()["toy"] is Health.ERROR

        with pytest.raises(UnknownToolError, match="no tool named 'toy__nothing'"):
            await facade.call("toy__nothing", {})
    finally:
        stats = {s.tool: s for s in facade.stats()}
        await facade.close()
    assert stats["echo"].calls == 2 and stats["echo"].success_rate == 1.0
    assert stats["boom"].failures == 1 and stats["slow"].failures == 1
    assert stats["echo"].mean_latency_ms is not None


async def test_an_answer_outside_the_tools_own_output_schema_is_a_failed_call() -> None:
    """An added server whose tool publishes an output schema and answers text only (an older
    server): the MCP client's check raised a RuntimeError that ended the chat turn with no
    answer to the model and no end event."""
    server: MCPServer[Any] = MCPServer(name="old")

    async def status() -> str:
        """The service's status."""
        return "all fine"

    server.add_tool(status, annotations=READ)
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    server._tool_manager.get_tool("status").fn_metadata.output_schema = schema  # type: ignore[union-attr]
    facade = AgentFacade(timeout_seconds=30)
    facade.add_server("old", lambda: Client(server, cache=None))
    try:
        outcome = await facade.call("old__status", {})
    finally:
        await facade.close()
    assert not outcome.ok and "outside its tool's own output schema" in outcome.text, outcome


async def test_http_server_restart_is_survived_by_reconnecting() -> None:
    port = free_port()
    spec = McpServerSpec(name="remote", transport="http", url=f"http://127.0.0.1:{port}/mcp")
    facade = AgentFacade(timeout_seconds=10)
    facade.add_server("remote", lambda: client_for(spec, timeout=10, guard=LOOPBACK))
    connection = facade._servers["remote"].connection
    try:
        async with serve(toy_server().streamable_http_app(), port=port):
            assert (await facade.call("remote__echo", {"text": "one"})).text == "echo: one"
        down = await facade.call("remote__echo", {"text": "two"})
        assert not down.ok and "unavailable" in down.text
        assert facade.health()["remote"] is Health.ERROR
        async with serve(toy_server().streamable_http_app(), port=port):
            back = await facade.call("remote__echo", {"text": "three"})
            assert back.ok and back.text == "echo: three"
        assert connection.connects >= 2
        # Reachable again; one failure of the three calls leaves it degraded, not in error.
        assert facade.health()["remote"] is Health.DEGRADED
    finally:
        await facade.close()


async def test_a_server_named_by_host_is_reached_through_its_same_origin_redirect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An intranet MCP server named by host, its network allow-listed, answers its URL with a
    trailing slash by Starlette's 307 to the URL without, built from the Host asked. Every
    call failed: the request had been rewritten to the checked address, so the redirect read
    as leaving the origin and was not followed."""
    host = "mcp.corp.example"
    real_getaddrinfo = socket.getaddrinfo

    def dns(node: Any, *args: Any, **kwargs: Any) -> Any:  # the DNS answer the test chooses
        name = node.decode() if isinstance(node, bytes) else node
        return real_getaddrinfo("127.0.0.1" if name == host else node, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", dns)
    port = free_port()
    spec = McpServerSpec(name="intranet", transport="http", url=f"http://{host}:{port}/mcp/")
    facade = AgentFacade(timeout_seconds=10)
    facade.add_server("intranet", lambda: client_for(spec, timeout=10, guard=LOOPBACK))
    named = TransportSecuritySettings(allowed_hosts=[f"{host}:{port}"])  # asked by its name
    try:
        async with serve(toy_server().streamable_http_app(transport_security=named), port=port):
            result = await facade.call("intranet__echo", {"text": "hi"})
    finally:
        await facade.close()
    assert result.ok and result.text == "echo: hi", result.text
