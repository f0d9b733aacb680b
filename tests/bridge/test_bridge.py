"""The xiaozhi endpoint bridge against the loopback broker (tests/standins/xiaozhi_broker.py):
real WebSocket connections, the real MCP server acting as the endpoint's user, one SQLite app
database shared by the runners as replicas share one."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import itertools
import json
import logging
import re
import socket
import sqlite3
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from websockets.exceptions import ConnectionClosedError
from websockets.http11 import USER_AGENT

from ambient import __version__
from ambient.bridge import endpoints as bridge_endpoints
from ambient.bridge.endpoints import EndpointCipher, EndpointCreate, EndpointPublic, Endpoints
from ambient.bridge.runner import BridgeRunner, BridgeTiming, backoff_delays, describe
from ambient.bridge.serving import (
    CUT_NOTE,
    FRAME_LIMIT_BYTES,
    RELEASED_NOTE,
    RESULT_LIMIT_BYTES,
    UNCHECKED_NOTE,
    WITHDRAWN_NOTE,
    serve_mcp,
)
from ambient.clients.guard import DestinationGuard
from ambient.domain.users import Language, UserCreate, UserSettings
from ambient.settings import Settings
from ambient.storage.models import XiaozhiEndpoint
from ambient.storage.users import UserRepository
from ambient.wiring import AppState, StateHolder, open_state
from bench.certs import certificate
from mcp_server.server import build_server
from tests.conftest import unique
from tests.standins.xiaozhi_broker import (
    HANG,
    HELD_WITHIN,
    RELAY_BAD_TOKEN,
    RELAY_NO_AGENT,
    RELAY_NOT_JSON,
    RELAY_REPLACED,
    REPLACED,
    running_broker,
)
from tests.support.servers import free_port

SECRET = "test-secret-key-for-endpoints"


@pytest.fixture
def bridge_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "fetch_allow_cidrs": ["127.0.0.1/32"],  # the broker stand-in listens on loopback
            "temporal_address": f"127.0.0.1:{free_port()}",
            "xiaozhi_bridge": False,
        }
    )


@pytest_asyncio.fixture
async def state(bridge_settings: Settings) -> AsyncIterator[AppState]:
    async with open_state(bridge_settings) as opened:
        yield opened


def service(state: AppState, session: Any) -> Endpoints:
    return Endpoints(
        session,
        EndpointCipher(state.settings.secret_key.get_secret_value()),
        DestinationGuard(state.settings.fetch_allow_cidrs),
    )


async def register(
    state: AppState,
    user: str,
    url: str,
    *,
    verbatim: bool = False,
    language: Language | None = None,
) -> int:
    async with state.db.session() as session:
        users = UserRepository(session)
        if await users.get(user) is None:
            await users.create(UserCreate(name=user, language=language))
            await session.commit()
        added = await service(state, session).add(
            None, EndpointCreate(user=user, url=url, verbatim=verbatim)
        )
    return added.id


async def listed(state: AppState) -> list[EndpointPublic]:
    async with state.db.session() as session:
        return await service(state, session).list(None)


def full_server_for(state: AppState) -> Callable[[str], MCPServer[Any]]:
    """The full MCP server acting as the endpoint's user (in-process, like the agent hub)."""

    def build(user: str) -> MCPServer[Any]:
        return build_server(state.settings, holder=StateHolder(replace(state, stdio_user=user)))

    return build


def runner_for(
    state: AppState, name: str, server_for: Callable[[str], MCPServer[Any]] | None = None
) -> BridgeRunner:
    return BridgeRunner(
        state.db,
        EndpointCipher(state.settings.secret_key.get_secret_value()),
        DestinationGuard(state.settings.fetch_allow_cidrs),
        server_for or full_server_for(state),
        timing=BridgeTiming(healthy_after=3600, settle_seconds=0.2),
        name=name,
    )


@asynccontextmanager
async def running(runner: BridgeRunner) -> AsyncIterator[BridgeRunner]:
    task = asyncio.create_task(runner.run())
    try:
        yield runner
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def within(seconds: float, waiting: Awaitable[Any]) -> Any:
    return await asyncio.wait_for(waiting, seconds)


async def test_registered_endpoint_is_connected_within_5s_and_serves_the_users_tools(
    state: AppState,
) -> None:
    token = unique("jwt")
    async with running_broker({token}, ping_every=0.2) as broker, running(runner_for(state, "r1")):
        user = unique("alice")
        await register(state, user, broker.url(token))
        connection = await broker.held(token, within=HELD_WITHIN)
        [row] = await listed(state)
        assert (row.user, row.state, row.last_error) == (user, "connected", None)
        # it says what dials, as every WebSocket client (mcp_pipe's included) does
        assert connection.user_agent == f"ambient-ops/{__version__} {USER_AGENT}"
        assert len(connection.tools) > 10 and {"whoami", "get_status"} <= {
            t["name"] for t in connection.tools
        }
        # the initialize with id 0 was answered with the protocol the broker asked for
        first = json.loads(connection.frames[0])
        assert first["id"] == 0 and first["result"]["protocolVersion"] == "2024-11-05"
        # a call with the broker's extra params, acting as the endpoint's user
        answer = await connection.call_tool("whoami", {})
        assert answer["result"]["isError"] is False
        assert json.loads(answer["result"]["content"][0]["text"])["name"] == user
        # pings (the broker's own period, and one more now) are answered {}
        await within(HANG, connection.pinged.wait())
        assert (await connection.request("ping"))["result"] == {}


async def test_relay_string_ids_pipelined_requests_and_second_initialize_round_trip_exactly(
    state: AppState,
) -> None:
    token = unique("relay")
    async with running_broker({token}, mode="relay") as broker, running(runner_for(state, "r1")):
        await register(state, unique("bob"), broker.url(token), verbatim=True)
        connection = await broker.held(token)
        assert [json.loads(f)["id"] for f in connection.frames[:2]] == [
            f"{connection._prefix}_n_1",
            f"{connection._prefix}_n_2",
        ]
        # pipelined: three requests sent before any answer is read; ids 0, a number and a string
        ids = [
            await connection.send_request(
                "initialize",
                {
                    "protocolVersion": "2024-11-05",
                    "capabilities": {},
                    "clientInfo": {"name": "x", "version": "1"},
                },
                ident=0,
            ),
            await connection.send_request("ping", ident=7),
            await connection.send_request(
                "tools/list", {"cursor": None, "_meta": {"agentId": 1}}, ident="abc_n_9"
            ),
        ]
        answers = [await connection.answer(ident) for ident in ids]
        assert [a["id"] for a in answers] == [0, 7, "abc_n_9"]
        assert answers[0]["result"]["protocolVersion"] == "2024-11-05"
        assert answers[2]["result"]["tools"]
        # verbatim: the text is the {"action":"RESPONSE"} the relay speaks as it is
        answer = await connection.call_tool("whoami", {})
        spoken = json.loads(answer["result"]["content"][0]["text"])
        assert spoken["action"] == "RESPONSE" and '"name"' in spoken["response"]
        # an error is spoken too: the relay would drop the text of an isError result
        failed = (await connection.call_tool("no_such_tool", {}))["result"]
        spoken = json.loads(failed["content"][0]["text"])
        assert "no_such_tool" in spoken["response"] and "isError" not in failed


async def test_a_relayed_device_session_is_answered_on_a_connection_dialed_again(
    state: AppState,
) -> None:
    """mcp-endpoint-server passes frames through: a device session (xiaozhi-server, one per
    wake) initializes once, on the tool connection of that moment. When ours is dialed again (the
    relay restarted the socket, an API restart, another replica took over), the session's next
    call comes on the new connection with no handshake; the SDK refused it ('Invalid request
    parameters'), which xiaozhi-server speaks as 'MCP接入点错误: …' until the device reconnects."""
    token = unique("relay")
    async with running_broker({token}, mode="relay") as broker, running(runner_for(state, "r1")):
        user = unique("eve")
        await register(state, user, broker.url(token))
        first = await broker.held(token)
        await first.socket.close(1012, "service restart")
        again = await broker.held(token, 2)
        answer = await within(HANG, again.call_tool("whoami", {}))
        assert answer["id"] == f"{first._prefix}_n_1" and "result" in answer, answer
        assert json.loads(answer["result"]["content"][0]["text"])["name"] == user
        assert len(again.frames) == 1  # the call's answer only: nothing the relay cannot route
        # a new device session's own handshake on the same connection is answered as before
        listed = await again.request("tools/list")
        assert {t["name"] for t in listed["result"]["tools"]} == {t["name"] for t in first.tools}


async def test_malformed_frames_get_a_json_rpc_error_and_the_connection_stays_up(
    state: AppState,
) -> None:
    token = unique("jwt")
    async with running_broker({token}) as broker, running(runner_for(state, "r1")):
        await register(state, unique("carol"), broker.url(token))
        connection = await broker.held(token)
        seen = len(connection.frames)
        await connection.send_raw("{not json\n")
        await connection.send_raw('{"jsonrpc": "2.0", "id": 5, "method": 12}')
        # 10 KB nested past Python's recursion limit: json.loads raised RecursionError, which
        # ended the connection (every call on it unanswered) and the endpoint was re-dialed.
        await connection.send_raw("[" * 5000 + "]" * 5000)
        # A lone surrogate escaped in an id, a method or a tool's name: the answer saying it
        # back could not be sent as UTF-8, which ended the connection (and every call on it).
        for said in ('"id": "a\\ud800", "method": "ping"', '"id": 6, "method": "x\\udc00"'):
            await connection.send_raw(f'{{"jsonrpc": "2.0", {said}}}')
        call = '"method": "tools/call", "params": {"name": "t\\ud800", "arguments": {}}'
        await connection.send_raw(f'{{"jsonrpc": "2.0", "id": 7, {call}}}')
        # No id, but no notification either (JSON-RPC 2.0's own example): answered, id null.
        await connection.send_raw('{"jsonrpc": "2.0", "method": 1, "params": "bar"}')
        assert (await connection.request("ping"))["result"] == {}
        errors = [json.loads(f) for f in connection.frames[seen:] if "error" in f]
        assert [(e["id"], e["error"]["code"]) for e in errors] == [
            (None, -32700),
            (5, -32600),
            (None, -32700),
            (None, -32600),
            (6, -32600),
            (7, -32600),
            (None, -32600),
        ]
        await connection.notify("notifications/cancelled")  # a notification: no answer
        # Nor one it cannot read (JSON-RPC never answers a notification): its params no
        # object, a lone surrogate in its method. It was answered -32602 under id null.
        await connection.send_raw('{"jsonrpc": "2.0", "method": "notifications/x", "params": [1]}')
        await connection.send_raw('{"jsonrpc": "2.0", "method": "notifications/\\ud800"}')
        assert (await connection.request("ping", {}))["result"] == {}
        assert len(connection.frames) == seen + 9
        assert broker.current(token) is connection


async def test_a_broker_writing_nulls_or_a_byte_order_mark_is_answered_not_refused(
    state: AppState,
) -> None:
    """A broker that writes every field, nulls included (a Java or Go serializer), or starts
    a frame with a byte order mark: the SDK refused the whole call ("Invalid request
    parameters", -32602) for a ``_meta`` it could not read, and the frame as not JSON."""
    token = unique("jwt")
    async with running_broker({token}) as broker, running(runner_for(state, "r1")):
        user = unique("dora")
        await register(state, user, broker.url(token))
        connection = await broker.held(token)
        for meta in (None, {"agentId": 42, "progressToken": None}, "agent-42"):
            params = {"name": "whoami", "arguments": {}, "clientId": "c", "_meta": meta}
            answer = await connection.request("tools/call", params)
            assert json.loads(answer["result"]["content"][0]["text"])["name"] == user, answer
        listed = await connection.request("tools/list", {"cursor": None, "_meta": None})
        assert listed["result"]["tools"], listed
        await connection.send_raw('\ufeff{"jsonrpc": "2.0", "id": 99, "method": "ping"}', ident=99)
        assert (await connection.answer(99))["result"] == {}


async def test_a_runner_stopped_as_its_connection_fails_stops(
    state: AppState, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped (or the endpoint removed) in the moment its connection failed, the runner never
    stopped: on Python 3.11 the stop's cancellation and the one the serve's task group sends
    itself for the failure arrive as one, which the task group takes for its own and swallows,
    ending with the failure (traced with anyio 4.16). The hold re-dialed and the stop waited on
    it for good. The serve here ends so, every time: its cancellation swallowed, a failure
    raised."""

    serving = asyncio.Event()

    async def serve_swallowing_its_cancellation(*_: Any, **__: Any) -> None:
        serving.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise ConnectionClosedError(None, None) from None

    monkeypatch.setattr("ambient.bridge.runner.serve_mcp", serve_swallowing_its_cancellation)
    token = unique("jwt")
    async with running_broker({token}) as broker:
        runner = runner_for(state, "r1")
        task = asyncio.create_task(runner.run())
        try:
            await register(state, unique("sue"), broker.url(token))
            await asyncio.wait_for(serving.wait(), HANG)
        finally:
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=HANG)
        assert done == {task}, "the runner's stop never ended"
        assert runner.counts["dials"] == 1


async def test_a_result_holding_a_lone_surrogate_is_answered_escaped(state: AppState) -> None:
    """A tool's text may say back what a caller sent (a name with a lone surrogate escaped in
    its arguments): measuring the result for the size limit failed to encode it, and the bridge
    closed the connection (1011), every call on it unanswered. It is answered, escaped as JSON
    carries it."""

    def echo_server(_: str) -> MCPServer[Any]:
        server: MCPServer[Any] = MCPServer(name="echo")

        @server.tool()
        def echo(said: str) -> str:
            """Say it back."""
            return f"you said {said}"

        return server

    token = unique("jwt")
    async with running_broker({token}) as broker, running(runner_for(state, "r1", echo_server)):
        await register(state, unique("sue"), broker.url(token))
        connection = await broker.held(token)
        answer = await within(HANG, connection.call_tool("echo", {"said": "a\ud800b"}))
        assert answer["result"]["content"][0]["text"] == "you said a\ud800b", answer
        assert broker.current(token) is connection


async def test_results_over_8192_bytes_are_cut_to_a_sentence_saying_so(state: AppState) -> None:
    def big_server(_: str) -> MCPServer[Any]:
        server: MCPServer[Any] = MCPServer(name="big")

        @server.tool()
        def report() -> str:
            """A long report."""
            return "集群一切正常。" * 3000

        return server

    token = unique("jwt")
    async with running_broker({token}) as broker, running(runner_for(state, "r1", big_server)):
        await register(state, unique("dan"), broker.url(token))
        connection = await broker.held(token)
        answer = await connection.call_tool("report", {})  # BrokerGaveUp were it dropped
        result = answer["result"]
        # The whole response frame, its envelope and id included, as xiaozhi.me counts it.
        assert len(connection.frames[-1].encode()) <= RESULT_LIMIT_BYTES
        text = result["content"][0]["text"]
        # Read aloud after a Chinese answer: no English half for the TTS.
        assert text.startswith("集群一切正常。") and text.endswith("结果太长，只说到这里。")
        assert "answer" not in text and "structuredContent" not in result


async def test_an_error_result_over_8192_bytes_is_cut_within_the_limit_too(
    state: AppState,
) -> None:
    """The cut measured the text without the result's isError: 17 bytes over, dropped."""

    def failing_server(_: str) -> MCPServer[Any]:
        server: MCPServer[Any] = MCPServer(name="failing")

        @server.tool()
        def report() -> str:
            """A report that fails at length."""
            raise ToolError("集群连接失败。" * 3000)

        return server

    token = unique("jwt")
    async with running_broker({token}) as broker, running(runner_for(state, "r1", failing_server)):
        await register(state, unique("dana"), broker.url(token))
        connection = await broker.held(token)
        result = (await connection.call_tool("report", {}))["result"]  # BrokerGaveUp if dropped
        assert len(connection.frames[-1].encode()) <= RESULT_LIMIT_BYTES
        assert result["isError"] is True
        assert result["content"][0]["text"].endswith("结果太长，只说到这里。")


async def test_replaced_and_closed_connections_are_dialed_again(state: AppState) -> None:
    token = unique("jwt")
    async with running_broker({token}) as broker, running(runner_for(state, "r1")) as runner:
        await register(state, unique("erin"), broker.url(token))
        first = await broker.held(token)
        # someone else dials the same token: the broker closes ours as replaced ...
        from websockets.asyncio.client import connect

        async with connect(broker.url(token), proxy=None) as intruder:
            await first.closed.wait()
            assert first.close_reason == f"{REPLACED[0]} {REPLACED[1]}"
            # ... and we dial again, replacing theirs in turn
            await broker.held(token, 3)
            await intruder.wait_closed()
        # the broker closes ours (a restart): dialed again
        third = broker.connections[token][2]
        await third.socket.close(1012, "service restart")
        await broker.held(token, 4)
        assert runner.counts["failures"] == 2 and runner.counts["connected"] == 3
        [row] = await listed(state)
        assert row.state == "connected"


async def test_a_refused_token_shows_retrying_with_the_brokers_reason(state: AppState) -> None:
    async with running_broker({"the-right-one"}) as broker, running(runner_for(state, "r1")):
        await register(state, unique("fay"), broker.url("a-wrong-token"))
        await within(HANG, broker.wait_refused("a-wrong-token", 2))
        [row] = await listed(state)
        assert row.state == "retrying"
        assert row.last_error == "refused by the broker: HTTP 401 invalid token: expired or unknown"


async def test_a_refused_endpoint_nobody_retries_any_more_says_so_and_keeps_the_reason(
    state: AppState,
) -> None:
    """The API stopped while a token was refused: the list still said "retrying" with the
    broker's 401, as if the bridge kept dialing, and never asked whether the API runs."""
    async with running_broker({"the-right-one"}) as broker:
        await register(state, unique("fern"), broker.url("a-wrong-token"))
        runner = runner_for(state, "r1")
        await runner.scan()
        await within(HANG, broker.wait_refused("a-wrong-token", 1))
        await within(HANG, failure_shown(state, "refused by the broker"))
        await runner.stop()  # the lease is given back: nothing dials it now
        [row] = await listed(state)
        assert row.state == "retrying" and row.last_error is not None
        assert "no bridge holds it" in row.last_error
        assert "refused by the broker: HTTP 401" in row.last_error


async def failure_shown(state: AppState, reason: str = "") -> EndpointPublic:
    """The endpoint's row once the hold task has written a failure (its reason starting so)."""
    while True:  # the condition: the row says retrying, with a reason
        [row] = await listed(state)
        error = row.last_error or ""
        if row.state == "retrying" and error != "not dialed yet" and error.startswith(reason):
            return row
        await asyncio.sleep(0.05)


async def test_a_relay_replacing_ours_shows_retrying_with_its_close_and_reason(
    state: AppState,
) -> None:
    """mcp-endpoint-server closes a replaced tool connection with 1000 '新连接替换' (a normal
    close): the owner reads that as the reason, and the bridge backs off like any failure."""
    token = unique("relay")
    async with running_broker({token}, mode="relay") as broker:
        runner = runner_for(state, "r1")
        runner.timing = BridgeTiming(first_delay=3600, healthy_after=3600)
        async with running(runner):
            await register(state, unique("gus"), broker.url(token))
            first = await broker.held(token)
            from websockets.asyncio.client import connect

            async with connect(broker.url(token), proxy=None):
                await first.closed.wait()
                assert first.close_reason == f"{RELAY_REPLACED[0]} {RELAY_REPLACED[1]}"

                row = await within(HANG, failure_shown(state))
        assert row.last_error == "closed by the broker: 1000 新连接替换"
        assert runner.counts["failures"] == 1 and runner.counts["dials"] == 1


@pytest.mark.parametrize(
    "refusal", [RELAY_BAD_TOKEN, RELAY_NO_AGENT, RELAY_NOT_JSON], ids=["key", "agent", "json"]
)
async def test_a_relay_closing_a_bad_token_with_1008_shows_retrying_since_it_first_failed(
    state: AppState, refusal: tuple[int, str]
) -> None:
    """mcp-endpoint-server accepts the WebSocket of a bad token and closes it with 1008 before
    reading anything: the endpoint was shown connected at every re-dial, its since restarted each
    time. It is never connected, its since stays, the reason is the broker's, and the re-dials
    back off (1 s doubling) as for a refusal."""
    async with running_broker({"the-right-one"}, mode="relay") as broker:
        broker.relay_refusals["a-wrong-token"] = refusal
        runner = runner_for(state, "r1")
        async with running(runner):
            await register(state, unique("hal"), broker.url("a-wrong-token"))
            [registered] = await listed(state)
            await within(HANG, broker.wait_refused("a-wrong-token", 3))
            row = await within(HANG, failure_shown(state))
        assert (row.state, row.since) == ("retrying", registered.since)
        assert row.last_error == f"closed by the broker: {refusal[0]} {refusal[1]}"
        assert runner.counts["connected"] == 0 and runner.counts["dials"] >= 3
        first_gap, second_gap = (b - a for a, b in itertools.pairwise(broker.refused_at))
        assert first_gap >= 0.5 and second_gap >= 1.0  # full jitter on 1 s, then on 2 s


async def test_an_endpoint_the_relay_refuses_after_it_was_connected_keeps_when_it_failed(
    state: AppState,
) -> None:
    """The agent of a connected endpoint is deleted (its token no longer decrypts): the relay's
    1008 at every re-dial must not restart since, which says how long it has been failing."""
    token = unique("relay")
    async with running_broker({token}, mode="relay") as broker:
        async with running(runner_for(state, "r1")):
            await register(state, unique("ida"), broker.url(token))
            first = await broker.held(token)
            broker.tokens.discard(token)
            await first.socket.close(1012, "service restart")
            failed = await within(HANG, failure_shown(state))
            await within(HANG, broker.wait_refused(token, 2))
            refused = await within(HANG, failure_shown(state, "closed by the broker: 1008 "))
        assert failed.last_error == "closed by the broker: 1012 service restart"
        assert refused.since == failed.since
        assert refused.last_error == "closed by the broker: 1008 token解密失败"


async def test_an_os_error_after_connecting_is_said_as_a_lost_connection_not_cannot_connect(
    state: AppState,
) -> None:
    """Any OSError read "cannot connect to the broker: …", one raised once the session was up
    too: the owner went looking for a wrong URL or a broker down that had been reached."""
    token = unique("jwt")

    def resetting(user: str) -> MCPServer[Any]:
        raise ConnectionResetError(104, "Connection reset by peer")

    async with running_broker({token}) as broker:
        async with running(runner_for(state, "r1", resetting)):
            await register(state, unique("kai"), broker.url(token))
            row = await within(HANG, failure_shown(state))
    lost = "connected, then the connection was lost: [Errno 104] Connection reset by peer"
    assert row.last_error == lost


async def test_the_database_failing_before_the_dial_is_said_not_the_broker_unreachable(
    state: AppState, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The endpoint's row (the product's database) was read inside the dial's try: an OSError
    there read "cannot connect to the broker: …", and the owner went looking at the broker."""
    token = unique("jwt")
    async with running_broker({token}) as broker:
        await register(state, unique("ida"), broker.url(token))

        async def unreachable(self: UserRepository, name: str) -> None:
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")

        monkeypatch.setattr(UserRepository, "get", unreachable)
        async with running(runner_for(state, "r1")):
            row = await within(HANG, failure_shown(state))
        assert broker.connections.get(token, []) == []  # no broker was asked
    assert row.last_error == (
        "cannot read the endpoint from the product's database: "
        "[Errno 111] Connect call failed ('127.0.0.1', 5432)"
    )


async def test_two_runners_on_one_database_hold_the_endpoint_once(state: AppState) -> None:
    token = unique("jwt")
    async with running_broker({token}) as broker:
        await register(state, unique("gus"), broker.url(token))
        one, two = runner_for(state, "replica-1"), runner_for(state, "replica-2")
        for _ in range(3):
            await one.scan()
            await two.scan()
        assert list(one.held) != [] and two.held == {}
        await broker.held(token)
        for _ in range(3):
            await two.scan()
        assert len(broker.connections[token]) == 1
        # the holder stops cleanly and gives the lease back: the other takes over
        await one.stop()
        await two.scan()
        await broker.held(token, 2)
        assert list(two.held) == [row.id for row in await listed(state)]
        await two.stop()


async def lease_runs_out(state: AppState, endpoint: int) -> None:
    """The endpoint's lease as its holder left it when it stopped renewing long ago."""
    async with state.db.write_session() as session:
        row = await session.get(XiaozhiEndpoint, endpoint)
        assert row is not None and row.lease_until is not None
        row.lease_until = row.lease_until.replace(year=2000)
        await session.commit()


async def test_an_expired_lease_is_taken_over_by_another_replica(state: AppState) -> None:
    token = unique("jwt")
    async with running_broker({token}) as broker:
        endpoint = await register(state, unique("hal"), broker.url(token))
        one, two = runner_for(state, "replica-1"), runner_for(state, "replica-2")
        await one.scan()
        await broker.held(token)
        await lease_runs_out(state, endpoint)  # replica-1 died
        await two.scan()
        # Replica 1's connection may live on (a paused container): replica 2's first replaces
        # it and is closed again at once, its second is the endpoint's (``_opened``).
        await broker.held(token, 3)
        assert two.counts["dials"] == 2
        assert broker.registered[token] is broker.connections[token][2]
        await one.scan()  # the old holder sees the lease gone and closes its connection
        assert one.held == {} and broker.connections[token][0].closed.is_set()
        await two.stop()


async def test_a_replica_taking_over_says_so_until_its_connection_is_up(state: AppState) -> None:
    """Replica 1 died: its row said "connected" (its last write) through replica 2's settle,
    ~25 s more than the lease, while devices heard no tool; now it says replica 2 takes over."""
    token = unique("jwt")
    async with running_broker({token}) as broker:
        endpoint = await register(state, unique("hal"), broker.url(token))
        one, two = runner_for(state, "replica-1"), runner_for(state, "replica-2")
        two.timing = replace(two.timing, settle_seconds=HANG)
        await one.scan()
        await broker.held(token)
        for task in one.held.values():  # replica 1 dies (its lease stays until it runs out)
            task.cancel()
        await lease_runs_out(state, endpoint)
        await two.scan()
        # Replica 2's first dial, closed again at once (it waits for the broker to let go).
        await asyncio.wait_for(broker.wait_connected(token, 2), HANG)
        [row] = await listed(state)
        assert row.state == "retrying" and row.last_error == (
            f"taking over from a bridge that stopped: connecting in about {round(HANG)} s, once "
            "the broker has let its connection go"
        ), row
        await two.stop()


async def test_a_connection_dropped_without_a_close_is_dialed_again_as_replacing_it(
    state: AppState,
) -> None:
    """No close frame from the broker (a network cut, a keepalive that gave up): the broker may
    still hold it, so the next dial is closed again at once and the one after serves."""
    token = unique("jwt")
    async with running_broker({token}, mode="relay") as broker:
        await register(state, unique("jo"), broker.url(token))
        runner = runner_for(state, "r1")
        runner.timing = replace(runner.timing, first_delay=0.05, max_delay=0.05)
        async with running(runner):
            first = await broker.held(token)
            first.socket.transport.abort()
            await broker.held(token, 3)
            assert runner.counts["dials"] == 3
            assert (await broker.device_call(token, "get_status", {}))["result"]
            # Closed by the broker (a close frame): it knows, and one dial follows.
            await broker.connections[token][2].socket.close(1012, "service restart")
            await broker.held(token, 4)
            assert runner.counts["dials"] == 4


async def test_a_replica_taking_over_from_a_live_connection_is_not_forgotten_by_the_relay(
    state: AppState,
) -> None:
    """mcp-endpoint-server closes the connection a new one replaces, and that one's handler,
    ending, unregisters the token's connection — the new one by then. Replica 2 took over from
    a replica 1 that stood still with its connection open: the relay forgot replica 2's
    connection, which stayed open and "connected", and every device heard "工具端未连接"."""
    token = unique("jwt")
    async with running_broker({token}, mode="relay") as broker:
        endpoint = await register(state, unique("ivy"), broker.url(token))
        one, two = runner_for(state, "replica-1"), runner_for(state, "replica-2")
        await one.scan()
        await broker.held(token)
        await lease_runs_out(state, endpoint)  # replica-1 stood still
        await two.scan()
        await broker.held(token, 3)
        answer = await broker.device_call(token, "get_status", {})
        assert "result" in answer, answer
        assert [row.state for row in await listed(state)] == ["connected"]
        await one.scan()
        await two.stop()


async def turns(runner: BridgeRunner, failures: int) -> None:
    """Once the runner's hold loops have gone round ``failures`` times."""
    while True:  # the condition: its count of failures
        if runner.counts["failures"] >= failures:
            return
        await asyncio.sleep(0.05)


async def test_a_replica_whose_lease_was_taken_over_does_not_dial_again(state: AppState) -> None:
    """Replica 1 stood still past its lease (a paused container) and replica 2 took over: the
    broker closed replica 1's connection as replaced, and replica 1 dialed again at its next
    backoff, without the lease, replacing replica 2's, until its own scan caught up."""
    token = unique("jwt")
    async with running_broker({token}) as broker:
        endpoint = await register(state, unique("ian"), broker.url(token))
        one = runner_for(state, "replica-1")
        one.timing = replace(one.timing, first_delay=0.05, max_delay=0.05)
        two = runner_for(state, "replica-2")
        await one.scan()
        await broker.held(token)
        await lease_runs_out(state, endpoint)  # replica-1 stood still
        await two.scan()
        await broker.held(token, 3)  # replica 2's second (``_opened``)
        # Replica 1 sees its connection replaced; its re-dials (every 50 ms) come to nothing.
        await within(HANG, broker.connections[token][0].closed.wait())
        await within(HANG, turns(one, 3))
        assert len(broker.connections[token]) == 3 and one.counts["dials"] == 1
        await one.scan()  # and its scan lets the endpoint go
        assert one.held == {}
        await two.stop()


async def test_an_endpoint_nobody_holds_any_more_is_not_listed_as_connected(
    state: AppState,
) -> None:
    """The API stopped (cleanly, or died and its lease ran out) and no replica took over: the
    list, the page and the API said "connected" with no error for good, with nothing dialed."""
    token = unique("jwt")
    async with running_broker({token}) as broker:
        await register(state, unique("joy"), broker.url(token))
        one = runner_for(state, "replica-1")
        await one.scan()
        connection = await broker.held(token)
        await one.scan()
        [row] = await listed(state)
        assert (row.state, row.last_error) == ("connected", None)
        await one.stop()  # a clean stop: the lease is given back
        await within(HANG, connection.closed.wait())
        [row] = await listed(state)
        assert row.state == "retrying" and row.last_error is not None
        assert "no bridge holds it" in row.last_error
        two = runner_for(state, "replica-2")
        await two.scan()
        await broker.held(token, 2)
        await two.scan()
        [row] = await listed(state)
        assert (row.state, row.last_error) == ("connected", None)
        async with state.db.write_session() as session:  # replica-2 died: its lease ran out
            held = await session.get(XiaozhiEndpoint, row.id)
            assert held is not None and held.lease_until is not None
            held.lease_until = ran_out = held.lease_until.replace(year=2000)
            await session.commit()
        [row] = await listed(state)
        assert (row.state, row.since) == ("retrying", ran_out)
        assert row.last_error is not None and "no bridge holds it" in row.last_error
        await two.stop()


async def test_removed_endpoint_is_closed(state: AppState) -> None:
    token = unique("jwt")
    async with running_broker({token}) as broker, running(runner_for(state, "r1")) as runner:
        endpoint = await register(state, unique("ivy"), broker.url(token))
        connection = await broker.held(token)
        async with state.db.session() as session:
            await service(state, session).remove(None, endpoint)
        await within(HANG, connection.closed.wait())
        assert runner.held == {} and await listed(state) == []


async def test_a_runner_stopped_while_it_closes_a_removed_endpoint_stops(
    state: AppState, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scan closing a removed endpoint waits for its hold to end (its notes, the close),
    and swallowed any cancellation that came meanwhile, the runner's stop's too: the runner
    scanned on and the API's shutdown waited for it for good."""
    serving, closing = asyncio.Event(), asyncio.Event()

    async def serve_slow_to_close(*_: Any, **__: Any) -> None:
        serving.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            closing.set()
            await asyncio.shield(asyncio.sleep(1))  # the notes and the close take a moment
            raise

    monkeypatch.setattr("ambient.bridge.runner.serve_mcp", serve_slow_to_close)
    token = unique("jwt")
    async with running_broker({token}) as broker:
        task = asyncio.create_task(runner_for(state, "r1").run())
        try:
            endpoint = await register(state, unique("ivo"), broker.url(token))
            await asyncio.wait_for(serving.wait(), HANG)
            async with state.db.session() as session:
                await service(state, session).remove(None, endpoint)
            await asyncio.wait_for(closing.wait(), HANG)  # the scan's drop waits for the close
        finally:
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=HANG)
        assert done == {task}, "the runner's stop never ended"


async def test_an_endpoint_added_after_a_removed_one_is_dialed_and_the_old_one_closed(
    state: AppState,
) -> None:
    """Removed and added between two scans (the docs' "remove the old endpoint, add the new
    one"): the new endpoint is dialed, under an id of its own (a removed one's id is never
    given again, SQLite included), and the old connection closed."""
    old_token, new_token = unique("jwt"), unique("jwt")
    async with running_broker({old_token, new_token}) as broker:
        runner = runner_for(state, "r1")
        old = await register(state, unique("ann"), broker.url(old_token))
        await runner.scan()
        first = await broker.held(old_token)
        async with state.db.session() as session:
            await service(state, session).remove(None, old)
        user = unique("bob")
        new = await register(state, user, broker.url(new_token))
        assert new != old
        await runner.scan()
        await within(HANG, first.closed.wait())
        connection = await broker.held(new_token)
        answer = await connection.call_tool("whoami", {})
        assert json.loads(answer["result"]["content"][0]["text"])["name"] == user
        await runner.scan()
        [row] = await listed(state)
        assert (row.user, row.state, row.last_error) == (user, "connected", None)
        await runner.stop()


async def test_the_token_is_in_no_log_line_no_list_and_not_in_clear_in_the_database(
    state: AppState, caplog: pytest.LogCaptureFixture
) -> None:
    token = unique("secret-jwt-value")
    caplog.set_level(logging.DEBUG)
    async with running_broker({token}) as broker, running(runner_for(state, "r1")):
        await register(state, unique("jo"), broker.url(token))
        connection = await broker.held(token)
        await connection.socket.close(1011, f"boom {token}")  # even a reason quoting it
        await broker.held(token, 2)
        [row] = await listed(state)
        assert row.url == f"ws://127.0.0.1:{broker.port}/mcp/?token=***"
        assert token not in row.model_dump_json()
        async with state.db.session() as session:
            stored = await session.get(XiaozhiEndpoint, row.id)
            assert stored is not None and token not in stored.url_sealed + stored.url_masked
        for record in caplog.records:
            assert token not in record.getMessage()
        assert any("boom ***" in r.getMessage() for r in caplog.records)


async def _first_failure_shown(state: AppState) -> EndpointPublic:
    while True:  # the condition: the hold task has written its first failure
        [row] = await listed(state)
        if row.last_error != "not dialed yet":
            return row
        await asyncio.sleep(0.05)


async def test_a_destination_the_guard_refuses_is_never_dialed_and_shows_why(
    state: AppState,
) -> None:
    token = unique("jwt")
    async with running_broker({token}) as broker:
        await register(state, unique("kim"), broker.url(token))  # allowed when registered ...
        runner = runner_for(state, "r1")
        runner.guard = DestinationGuard([])  # ... but this process's guard allows no loopback
        await runner.scan()

        row = await within(HANG, _first_failure_shown(state))
        await runner.stop()
    assert row.state == "retrying" and "127.0.0.1 is a loopback address" in (row.last_error or "")
    assert broker.connections == {} and runner.counts["dials"] == 1


def test_redials_back_off_with_jitter_from_1s_doubling_to_10_minutes() -> None:
    delays = list(itertools.islice(backoff_delays(BridgeTiming()), 14))
    ceilings = [min(2.0**n, 600.0) for n in range(14)]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert ceilings[-1] == 600.0 and len(set(delays)) == len(delays)  # jittered, not in step


async def test_an_id_a_call_was_refused_under_answers_a_later_request_as_itself(
    state: AppState,
) -> None:
    """A tools/call answered with a JSON-RPC error left its id among the open calls: the relay
    counts its ids from 1 again, so the next ping or tools/list with that id was answered as a
    tool result (a ping got content, tools/list lost its tools)."""
    token = unique("relay")
    async with running_broker({token}, mode="relay") as broker, running(runner_for(state, "r1")):
        await register(state, unique("dan"), broker.url(token))
        connection = await broker.held(token)
        for method in ("ping", "tools/list"):
            ident = f"{connection._prefix}_n_{method}"
            await connection.send_request("tools/call", {"arguments": {}}, ident=ident)
            refused = await connection.answer(ident)
            assert refused["error"]["code"] == -32602, refused
            await connection.send_request(method, ident=ident)
            again = await connection.answer(ident)
            assert "content" not in again["result"], again
        assert again["result"]["tools"]


@pytest.mark.parametrize(
    "ident", [True, 1.5, None, {"n": 1}, [1]], ids=["bool", "fraction", "null", "object", "array"]
)
async def test_a_request_whose_id_is_no_string_or_integer_is_refused_not_dropped(
    state: AppState, ident: Any
) -> None:
    """JSON-RPC ids are strings or integers (MCP: never null). A tools/call whose id was true,
    1.5, null, an object or an array was read as a notification: nothing answered, the broker
    waited out its call timeout, and the tool's reply could never be routed back. It is refused
    at once as an invalid request (id null, as JSON-RPC answers an unreadable id), the tool not
    run, and the connection stays up."""
    ran: list[str] = []

    def counting_server(_: str) -> MCPServer[Any]:
        server: MCPServer[Any] = MCPServer(name="counting")

        @server.tool()
        def pause() -> str:
            """Pause something."""
            ran.append("pause")
            return "paused"

        return server

    token = unique("jwt")
    async with (
        running_broker({token}) as broker,
        running(runner_for(state, "r1", counting_server)),
    ):
        await register(state, unique("lou"), broker.url(token))
        connection = await broker.held(token)
        seen = len(connection.frames)
        call = {"name": "pause", "arguments": {}}
        message = {"jsonrpc": "2.0", "id": ident, "method": "tools/call", "params": call}
        await connection.send_raw(json.dumps(message) + "\n")
        assert (await connection.request("ping"))["result"] == {}  # answered after the call
        [refused, _] = [json.loads(f) for f in connection.frames[seen:]]
        assert refused["id"] is None and refused["error"]["code"] == -32600, refused
        assert "id" in refused["error"]["message"]
        assert ran == [] and broker.current(token) is connection


async def test_a_huge_frame_is_refused_by_itself_and_a_call_in_flight_is_still_answered(
    state: AppState,
) -> None:
    """One frame past websockets' 1 MiB default closed the whole connection (1009), so a call
    still running on it (an approval, say) was never answered, and the endpoint re-dialed. A
    message too large for any request of the voice tools is refused with a JSON-RPC error under
    its own id; the other call is answered and the connection stays up."""

    def slow_server(_: str) -> MCPServer[Any]:
        server: MCPServer[Any] = MCPServer(name="slow")
        release = asyncio.Event()

        @server.tool()
        async def slow() -> str:
            """A call that takes a moment."""
            await release.wait()
            return "done"

        @server.tool()
        def finish() -> str:
            """Let the slow call end."""
            release.set()
            return "ok"

        return server

    token = unique("jwt")
    async with (
        running_broker({token}) as broker,
        running(runner_for(state, "r1", slow_server)) as runner,
    ):
        await register(state, unique("max"), broker.url(token))
        connection = await broker.held(token)
        running_call = await connection.send_request(
            "tools/call", {"name": "slow", "arguments": {}}
        )
        huge = {"name": "finish", "arguments": {"x": "啊" * 1_000_000}}
        # Sent aside: over a connection the bridge closed, this send would never return.
        sending = asyncio.create_task(connection.send_request("tools/call", huge, ident=99))
        await asyncio.sleep(0)  # the request is registered before its frame is written
        refused = await within(HANG, connection.answer(99))
        await sending
        assert refused["error"]["code"] == -32600 and "too large" in refused["error"]["message"]
        await connection.call_tool("finish", {})
        answer = await within(HANG, connection.answer(running_call))
        assert answer["result"]["content"][0]["text"] == "done"
        assert broker.current(token) is connection and runner.counts["failures"] == 0


async def test_a_close_the_bridge_sends_is_shown_as_its_own_not_the_brokers(
    state: AppState, caplog: pytest.LogCaptureFixture
) -> None:
    """A frame past the bridge's limit makes the bridge close with 1009 (message too big): the
    owner's page and the log said "closed by the broker: 1009", sending an operator to look for
    a fault on the broker's side. The close is said as the bridge's own, with its reason."""
    token = unique("big")
    caplog.set_level(logging.WARNING, logger="ambient.bridge.runner")
    async with running_broker({token}) as broker:
        runner = runner_for(state, "r1")
        runner.timing = BridgeTiming(first_delay=3600, healthy_after=3600)
        async with running(runner):
            await register(state, unique("ned"), broker.url(token))
            connection = await broker.held(token)
            await connection.send_raw(" " * (FRAME_LIMIT_BYTES + 1))
            await connection.closed.wait()
            row = await within(HANG, failure_shown(state))
    assert connection.close_reason is not None and connection.close_reason.startswith("1009 ")
    assert row.last_error is not None
    assert row.last_error.startswith("closed by this bridge: 1009 "), row.last_error
    assert "frame exceeds limit" in row.last_error and "broker" not in row.last_error
    [logged] = [r.getMessage() for r in caplog.records if "re-dialing" in r.getMessage()]
    assert "closed by this bridge: 1009 " in logged and "by the broker" not in logged


def _tls_for(tmp: Path, *addresses: str) -> tuple[Path, ssl.SSLContext]:
    """A CA file (for clients to trust) and a server context whose certificate names
    ``addresses``: what a 接入点 with a real certificate looks like to the runner."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)

    def certificate(subject: str, key: Any, issuer: x509.Name, signer: Any, *, ca: bool) -> Any:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            names = [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = certificate("test CA", ca_key, ca_name, ca_key, ca=True)
    leaf = certificate("broker", leaf_key, ca_name, ca_key, ca=False)
    pem = serialization.Encoding.PEM
    (tmp / "ca.pem").write_bytes(ca.public_bytes(pem))
    (tmp / "leaf.pem").write_bytes(leaf.public_bytes(pem))
    (tmp / "leaf.key").write_bytes(
        leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp / "leaf.pem", tmp / "leaf.key")
    return tmp / "ca.pem", server


@asynccontextmanager
async def _tls_answering(
    host: str,
    tls: ssl.SSLContext,
    answer: Callable[[], bytes],
    requests: list[bytes],
    port: int = 0,
) -> AsyncIterator[int]:
    """A bare HTTPS server on ``host`` that notes each request line and sends ``answer()``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ssl.SSLError):
            requests.append(await reader.readline())
            writer.write(answer())
            await writer.drain()
            writer.close()

    server = await asyncio.start_server(handle, host, port, ssl=tls)
    async with server:
        yield server.sockets[0].getsockname()[1]


class _Rebinding(DestinationGuard):
    """DNS that answers the guard's lookup of a name with 127.0.0.2 (allowed), while the
    system's resolver, asked again at connect time, answers 127.0.0.1 (refused here)."""

    def _refuse_literal(self, host: str) -> None:
        pass  # "localhost" stands for any name here: only its lookups decide

    async def resolve(self, host: str, port: int) -> list[str]:
        return ["127.0.0.2"]


async def test_a_wss_endpoint_is_dialed_at_the_address_the_guard_checked_not_a_second_lookup(
    state: AppState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DNS rebinding over wss://: the 接入点's name passed the guard with an allowed address,
    # and the dial, looking the name up again, went wherever it named then (a TCP connect and
    # a TLS handshake at an internal address; its port's state told by the error shown). The
    # dial goes to the address checked, the name kept for TLS and the Host.
    cert, key = certificate("localhost", tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the runner trusts the test certificate
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    checked: list[bytes] = []
    rebound: list[bytes] = []
    missing = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    async with contextlib.AsyncExitStack() as servers:
        # One port on both addresses (a port free on 127.0.0.2 may be taken on 127.0.0.1).
        for _ in range(50):
            port = await servers.enter_async_context(
                _tls_answering("127.0.0.2", tls, lambda: missing, checked)
            )
            try:
                await servers.enter_async_context(
                    _tls_answering("127.0.0.1", tls, lambda: missing, rebound, port)
                )
                break
            except OSError:
                await servers.aclose()
        token = unique("jwt")
        await register(state, unique("reb"), f"wss://localhost:{port}/mcp/?token={token}")
        runner = runner_for(state, "r1")
        runner.guard = _Rebinding(["127.0.0.2/32"])
        await runner.scan()
        row = await within(HANG, _first_failure_shown(state))
        await runner.stop()
    assert "404" in (row.last_error or ""), row.last_error
    assert rebound == []
    assert [line.split(b" ")[1] for line in checked] == [f"/mcp/?token={token}".encode()]


async def test_a_wss_address_of_a_plain_broker_says_to_dial_ws(state: AppState) -> None:
    """A wss:// address of a broker that speaks no TLS (a self-hosted server's plain port) was
    shown as "cannot connect to the broker: ConnectionResetError": nothing said the scheme was
    the thing to change."""
    token = unique("jwt")
    async with running_broker({token}) as broker:
        url = broker.url(token).replace("ws://", "wss://", 1)
        error = await _first_failure_dialing(state, url)
    assert "starts ws://" in error, error


def test_a_certificate_refused_on_a_wss_address_is_not_told_to_dial_ws() -> None:
    """That broker speaks TLS: dialed ws://, its token would go unencrypted."""
    refused = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] self-signed")
    said = describe(refused, url="wss://broker.example/mcp/?token=x")
    assert "CERTIFICATE_VERIFY_FAILED" in said and "ws://" not in said, said


async def test_a_ws_address_of_a_tls_only_broker_says_to_dial_wss(
    state: AppState, tmp_path: Path
) -> None:
    """A ws:// address of a broker that speaks only TLS was shown as "InvalidMessage: did not
    receive a valid HTTP response"."""
    _, tls = _tls_for(tmp_path, "127.0.0.1")
    async with _tls_answering("127.0.0.1", tls, lambda: b"", []) as port:
        url = f"ws://127.0.0.1:{port}/mcp/?token={unique('jwt')}"
        error = await _first_failure_dialing(state, url)
    assert "starting wss://" in error, error


async def _first_failure_dialing(state: AppState, url: str) -> str:
    """The last error shown once a bridge has dialed ``url`` (registered now) and failed."""
    await register(state, unique("tls"), url)
    runner = runner_for(state, "r1")
    await runner.scan()
    row = await within(HANG, _first_failure_shown(state))
    await runner.stop()
    assert row.last_error is not None
    return row.last_error


async def test_a_wss_endpoint_redirecting_to_a_refused_address_is_not_followed(
    state: AppState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The 接入点 passes the guard (127.0.0.1 is allowed here) and answers the WebSocket
    # handshake with a redirect to 127.0.0.2, which the guard refuses. A wss:// dial keeps the
    # name for TLS, so the address is not pinned: the redirect must not be followed.
    ca_file, tls = _tls_for(tmp_path, "127.0.0.1", "127.0.0.2")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # the runner trusts the test CA
    inside: list[bytes] = []
    outside: list[bytes] = []
    token = unique("jwt")
    ok = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    async with _tls_answering("127.0.0.2", tls, lambda: ok, inside) as port:
        moved = (
            "HTTP/1.1 307 Temporary Redirect\r\n"
            f"Location: wss://127.0.0.2:{port}/inside/?token={token}\r\n"
            "Content-Length: 0\r\nConnection: close\r\n\r\n"
        ).encode()
        async with _tls_answering("127.0.0.1", tls, lambda: moved, outside) as public:
            await register(state, unique("lea"), f"wss://127.0.0.1:{public}/mcp/?token={token}")
            runner = runner_for(state, "r1")
            await runner.scan()

            row = await within(HANG, _first_failure_shown(state))
            await runner.stop()
    assert row.state == "retrying" and "307" in (row.last_error or ""), row.last_error
    assert [line.split(b" ")[1] for line in outside] == [f"/mcp/?token={token}".encode()]
    assert inside == []


async def test_a_registration_losing_to_one_removed_since_is_refused_saying_so_not_a_500(
    state: AppState,
) -> None:
    """Two registrations of one 接入点 at once (a double-submitted form): the second's insert
    meets the first's row, which is removed before the second looks again for whose it is. It
    re-raised the database's IntegrityError (HTTP 500, a traceback in the CLI)."""
    from sqlalchemy import event

    from ambient.bridge.endpoints import EndpointInputError

    user = unique("race")
    url = f"ws://127.0.0.1:{free_port()}/mcp/?token={unique('jwt')}"
    async with state.db.session() as session:
        await UserRepository(session).create(UserCreate(name=user))
        await session.commit()
    path = state.db.engine.url.database
    assert path is not None
    stage = {"inserted": False, "removed": False}

    def between(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        # Another request's connection, at the two moments of the race (SQLite: plain sqlite3).
        if statement.startswith("INSERT INTO xiaozhi_endpoints") and not stage["inserted"]:
            stage["inserted"] = True  # the first request stores the same 接入点 first
            with contextlib.closing(sqlite3.connect(path)) as other, other:
                other.execute(statement, parameters).fetchall()
        elif stage["inserted"] and not stage["removed"] and statement.startswith("SELECT"):
            stage["removed"] = True  # and it is removed before the second looks again
            with contextlib.closing(sqlite3.connect(path)) as other, other:
                other.execute("DELETE FROM xiaozhi_endpoints WHERE user = ?", (user,))

    event.listen(state.db.engine.sync_engine, "before_cursor_execute", between)
    try:
        async with state.db.session() as session:
            with pytest.raises(EndpointInputError) as refused:
                await service(state, session).add(None, EndpointCreate(user=user, url=url))
    finally:
        event.remove(state.db.engine.sync_engine, "before_cursor_execute", between)
    assert stage == {"inserted": True, "removed": True}
    assert refused.value.field == "url"
    assert "at the same moment" in str(refused.value) and "again" in str(refused.value)
    # Nothing stored: registering it again now takes it.
    assert await listed(state) == []
    assert await register(state, user, url) > 0


class _DeadFirst(DestinationGuard):
    """DNS answering the endpoint's name with a dead address first, then the broker's."""

    async def resolve(self, host: str, port: int) -> list[str]:
        return ["127.0.0.2", "127.0.0.1"]


async def test_a_ws_endpoint_whose_first_address_is_dead_is_dialed_at_the_next(
    state: AppState,
) -> None:
    """A ws:// dial was pinned to the first address the guard checked: a name whose first
    address is down and whose second is up was never connected (retrying for good)."""
    token = unique("jwt")
    guard = _DeadFirst(["127.0.0.0/8"])
    async with running_broker({token}) as broker:
        with socket.socket() as dead:  # bound, never listening: a dial here is refused
            dead.bind(("127.0.0.2", broker.port))
            user = unique("noa")
            async with state.db.session() as session:
                await UserRepository(session).create(UserCreate(name=user))
                await session.commit()
                cipher = EndpointCipher(state.settings.secret_key.get_secret_value())
                url = f"ws://broker.test:{broker.port}/mcp/?token={token}"
                await Endpoints(session, cipher, guard).add(
                    None, EndpointCreate(user=user, url=url)
                )
            runner = runner_for(state, "r1")
            runner.guard = guard
            async with running(runner):
                await broker.held(token)
                [row] = await listed(state)
    assert (row.state, row.last_error) == ("connected", None)
    assert runner.counts["failures"] == 0


async def test_a_server_error_in_front_of_the_broker_is_said_as_a_failure_not_a_refusal(
    state: AppState,
) -> None:
    """A proxy before the broker answering 502 (its broker down) was shown as "refused by the
    broker: HTTP 502", sending the owner to check a token nothing had refused."""
    bad_gateway = (
        b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 13\r\nConnection: close\r\n\r\nupstream down"
    )

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(bad_gateway)
            await writer.drain()
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        await register(state, unique("oli"), f"ws://127.0.0.1:{port}/mcp/?token={unique('jwt')}")
        runner = runner_for(state, "r1")
        await runner.scan()
        row = await within(HANG, _first_failure_shown(state))
        await runner.stop()
    assert row.state == "retrying"
    assert row.last_error == "the broker or a proxy before it failed: HTTP 502 upstream down"


async def test_a_call_in_flight_when_its_endpoint_is_removed_is_answered_not_dropped(
    state: AppState,
) -> None:
    """Removing an endpoint (or losing its lease) closed the connection under a running call:
    the broker heard nothing and the device stayed silent until the broker's timeout."""
    started = asyncio.Event()

    def slow_server(_: str) -> MCPServer[Any]:
        server: MCPServer[Any] = MCPServer(name="slow")

        @server.tool()
        async def slow() -> str:
            """A call that does not end by itself."""
            started.set()
            await asyncio.Event().wait()
            return "never"

        return server

    token = unique("jwt")
    async with (
        running_broker({token}) as broker,
        running(runner_for(state, "r1", slow_server)) as runner,
    ):
        endpoint = await register(state, unique("pia"), broker.url(token))
        connection = await broker.held(token)
        call = await connection.send_request("tools/call", {"name": "slow", "arguments": {}})
        await within(HANG, started.wait())
        async with state.db.session() as session:
            await service(state, session).remove(None, endpoint)
        answer = await within(HANG, connection.answer(call))
        await within(HANG, connection.closed.wait())
        assert runner.held == {}
    # Not an error result, whose text a relay drops: the note is what the device says.
    assert "isError" not in answer["result"]
    assert answer["result"]["content"] == [{"type": "text", "text": RELEASED_NOTE[0]}]
    assert connection.close_reason == "1001 endpoint released"


def whoami_server(ran: asyncio.Event) -> Callable[[str], MCPServer[Any]]:
    """A server for each user with one tool, whoami, that sets ``ran`` when it is run."""

    def server_for(user: str) -> MCPServer[Any]:
        server: MCPServer[Any] = MCPServer(name="counting")

        @server.tool()
        async def whoami() -> str:
            """Who the endpoint acts as."""
            ran.set()
            return user

        return server

    return server_for


async def test_a_call_arriving_after_its_endpoint_was_removed_is_not_run(
    state: AppState,
) -> None:
    """Removing an endpoint (its 接入点 token withdrawn from ambient-ops) closed its connection
    at the runner's next scan: a call the broker sent meanwhile was run with the user's rights
    and answered with their data (whoami: their name, role and permissions)."""
    ran = asyncio.Event()
    counting_server = whoami_server(ran)

    token = unique("jwt")
    async with (
        running_broker({token}) as broker,
        running(runner_for(state, "r1", counting_server)),
    ):
        endpoint = await register(state, unique("quinn"), broker.url(token))
        connection = await broker.held(token)
        async with state.db.session() as session:
            await service(state, session).remove(None, endpoint)
        answer = await within(HANG, connection.call_tool("whoami", {}))
        await within(HANG, connection.closed.wait())
    assert not ran.is_set()
    assert "isError" not in answer["result"]  # a relay drops an error's text: said as words
    assert answer["result"]["content"] == [{"type": "text", "text": WITHDRAWN_NOTE[0]}]


async def test_a_call_whose_endpoint_cannot_be_checked_in_time_is_not_run(
    state: AppState,
) -> None:
    """The check before a call let it run when the database did not answer in time (a storm's
    SQLite, a pool spent): a removed endpoint's call then ran with its user's rights."""
    ran = asyncio.Event()
    counting_server = whoami_server(ran)

    token = unique("jwt")
    async with (
        running_broker({token}) as broker,
        running(runner_for(state, "r1", counting_server)) as runner,
    ):
        await register(state, unique("rosa"), broker.url(token))
        connection = await broker.held(token)
        # No time at all for the check: the database "does not answer".
        runner.timing = dataclasses.replace(runner.timing, check_seconds=0)
        answer = await within(HANG, connection.call_tool("whoami", {}))
    assert not ran.is_set()
    assert answer["result"]["content"] == [{"type": "text", "text": UNCHECKED_NOTE[0]}]


async def test_the_bridges_own_notes_are_said_in_the_endpoints_users_language(
    state: AppState,
) -> None:
    """The notes the bridge says itself (a result cut, a call not run or cut off by a removal,
    an endpoint not checked in time) were Chinese to a user whose language is English, after
    an answer the voice gave in English."""
    started = asyncio.Event()

    def server_for(_: str) -> MCPServer[Any]:
        server: MCPServer[Any] = MCPServer(name="notes")

        @server.tool()
        def report() -> str:
            """A long report."""
            return "All clusters are fine. " * 1000

        @server.tool()
        async def slow() -> str:
            """A call that does not end by itself."""
            started.set()
            await asyncio.Event().wait()
            return "never"

        @server.tool()
        def hello() -> str:
            """A short answer."""
            return "hello"

        return server

    def said(answer: dict[str, Any]) -> str:
        text: str = answer["result"]["content"][0]["text"]
        return text

    token = unique("jwt")
    async with (
        running_broker({token}) as broker,
        running(runner_for(state, "r1", server_for)) as runner,
    ):
        user = unique("uma")
        endpoint = await register(state, user, broker.url(token), language=Language.EN)
        connection = await broker.held(token)
        cut = said(await within(HANG, connection.call_tool("report", {})))
        timing = runner.timing
        runner.timing = dataclasses.replace(timing, check_seconds=0)  # the database "silent"
        unchecked = said(await within(HANG, connection.call_tool("hello", {})))
        runner.timing = timing
        call = await connection.send_request("tools/call", {"name": "slow", "arguments": {}})
        await within(HANG, started.wait())
        async with state.db.session() as session:
            await service(state, session).remove(None, endpoint)
        withdrawn = said(await within(HANG, connection.call_tool("hello", {})))
        released = said(await within(HANG, connection.answer(call)))
    assert cut.startswith("All clusters are fine.") and cut.endswith(CUT_NOTE[1]), cut[-80:]
    assert (unchecked, withdrawn, released) == (
        UNCHECKED_NOTE[1],
        WITHDRAWN_NOTE[1],
        RELEASED_NOTE[1],
    )
    assert not any(re.search("[\u4e00-\u9fff]", note) for note in (cut, unchecked, withdrawn))


async def test_the_bridges_notes_follow_a_language_changed_while_connected(
    state: AppState,
) -> None:
    """The notes took the user's language at the dial: a user who switched to English heard
    the bridge's notes in Chinese until the next re-dial, days later."""

    def server_for(_: str) -> MCPServer[Any]:
        server: MCPServer[Any] = MCPServer(name="notes")

        @server.tool()
        def report() -> str:
            """A long report."""
            return "所有集群都正常。" * 2000

        return server

    token = unique("jwt")
    async with (
        running_broker({token}) as broker,
        running(runner_for(state, "r1", server_for)),
    ):
        user = unique("vic")
        await register(state, user, broker.url(token), language=Language.ZH)
        connection = await broker.held(token)
        before = await within(HANG, connection.call_tool("report", {}))
        async with state.db.session() as session:
            users = UserRepository(session)
            account = await users.get(user)
            assert account is not None
            await users.update(account, UserSettings(language=Language.EN))
            await session.commit()
        after = await within(HANG, connection.call_tool("report", {}))
    assert before["result"]["content"][0]["text"].endswith(CUT_NOTE[0])
    assert after["result"]["content"][0]["text"].endswith(CUT_NOTE[1])


class ClosingSocket:
    """A WebSocket already closing when the bridge lets it go: every send from then raises, as
    websockets' does (ConnectionClosed) once its close handshake has begun."""

    def __init__(self, frames: list[str]) -> None:
        self.frames = frames
        self.closing = False
        self.sent: list[dict[str, Any]] = []

    async def send(self, message: str) -> None:
        if self.closing:
            raise ConnectionClosedError(None, None)
        self.sent.append(json.loads(message))

    async def recv(self) -> str:
        if self.frames:
            return self.frames.pop(0)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_release_on_a_closing_socket_ends_cancelled_not_re_dialed() -> None:
    """Sending the "released" note on a socket already closing raised: serve_mcp ended in an
    error, not cancelled, so the runner's hold took it for a dropped connection and re-dialed the
    removed endpoint, and the scan or stop() waiting on it never returned."""
    started = asyncio.Event()
    server: MCPServer[Any] = MCPServer(name="slow")

    @server.tool()
    async def slow() -> str:
        """A call that does not end by itself."""
        started.set()
        await asyncio.Event().wait()
        return "never"

    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call"}
    socket = ClosingSocket([json.dumps({**call, "params": {"name": "slow", "arguments": {}}})])
    task = asyncio.create_task(serve_mcp(socket, server))
    await within(HANG, started.wait())
    socket.closing = True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await within(HANG, task)
    assert task.cancelled()
    assert [m for m in socket.sent if m.get("id") == 7] == []


async def test_a_voice_calls_budget_counts_from_its_arrival_its_endpoint_check_spent_in_it(
    state: AppState,
) -> None:
    """The check of the endpoint before a call (up to 1.5 s on a slow database) came on top
    of the voice call's 8 s: up to 9.5 s, and the Internet, before xiaozhi.me's 10 s wait.
    The budget is counted from the call's arrival now (only a slower machine lowers it)."""
    from mcp_server.voice_answer import CALL_BUDGET, call_budget

    def server_for(_: str) -> MCPServer[Any]:
        server: MCPServer[Any] = MCPServer(name="budget")

        @server.tool()
        async def budget() -> str:
            """The budget a voice call made now would have."""
            return f"{call_budget():.3f}"

        return server

    token = unique("jwt")
    slow_check = 1.0
    async with (
        running_broker({token}) as broker,
        running(runner_for(state, "r1", server_for)) as runner,
    ):
        await register(state, unique("bea"), broker.url(token))
        connection = await broker.held(token)
        checked = runner._refusal

        async def slow_refusal(endpoint_id: int) -> Any:
            await asyncio.sleep(slow_check)  # a database slow to say the endpoint is ours
            return await checked(endpoint_id)

        runner._refusal = slow_refusal  # type: ignore[method-assign]
        answer = await within(HANG, connection.call_tool("budget", {}))
    left = float(answer["result"]["content"][0]["text"])
    assert left <= CALL_BUDGET - slow_check, left


async def test_an_endpoint_whose_row_could_not_be_read_is_dialed_once_it_can_be(
    state: AppState,
) -> None:
    """The database down at a re-dial: the row's read failed, and that advanced the broker's
    doubling backoff (no broker asked), so a five-minute outage left the endpoint retrying
    for up to ten more minutes after the database was back."""
    token = unique("unread")
    async with running_broker({token}) as broker:
        runner = runner_for(state, "r1")
        # A broker's backoff of an hour: a re-dial after the outage at once shows it was not it.
        runner.timing = BridgeTiming(first_delay=3600, healthy_after=3600, unread_delay=0.1)
        read = runner._endpoint
        unread = 3

        async def endpoint(endpoint_id: int) -> tuple[str, str, bool, bool]:
            nonlocal unread
            if unread:  # the database down, as _endpoint says it
                unread -= 1
                raise LookupError(bridge_endpoints.UNREAD % {"reason": "connection refused"})
            return await read(endpoint_id)

        runner._endpoint = endpoint  # type: ignore[method-assign]
        async with running(runner):
            await register(state, unique("ida"), broker.url(token))
            await broker.held(token, within=HANG)
        assert unread == 0 and runner.counts["dials"] == 1 and runner.counts["failures"] == 3
