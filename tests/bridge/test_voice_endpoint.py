"""The voice profile through an endpoint connection, as a speaker meets it: what the broker
carries of tools/list, calls of two speakers at once, a connection the broker closes under a
call, a call answered within the speaker's wait."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from dataclasses import replace
from typing import Any

import pytest
from mcp.server.mcpserver import MCPServer

from ambient.bridge.runner import BridgeTiming
from ambient.bridge.serving import RESULT_LIMIT_BYTES
from ambient.wiring import AppState, StateHolder
from mcp_server.voice import build_voice_server
from tests.bridge.test_bridge import (  # noqa: F401  (fixtures)
    bridge_settings,
    full_server_for,
    register,
    runner_for,
    running,
    state,
    within,
)
from tests.conftest import unique
from tests.standins.xiaozhi_broker import HANG, running_broker
from tests.voice.support import assert_speakable


def voice_for(app: AppState) -> Any:
    """The voice profile acting as the endpoint's user, as the API's bridge serves it."""

    def build(user: str) -> MCPServer[Any]:
        return build_voice_server(app.settings, holder=StateHolder(replace(app, stdio_user=user)))

    return build


def waiting_server(release: asyncio.Event, started: asyncio.Event) -> Any:
    def build(_: str) -> MCPServer[Any]:
        server: MCPServer[Any] = MCPServer(name="waiting")

        @server.tool()
        async def slow() -> str:
            """A call that ends when the test lets it."""
            started.set()
            await release.wait()
            return "slow"

        @server.tool()
        async def fast() -> str:
            """A call that ends at once."""
            return "fast"

        return server

    return build


async def test_the_voice_tools_listed_fit_what_the_broker_carries_and_a_model_chooses_among(
    state: AppState,  # noqa: F811
) -> None:
    """A tools/list over 8 KB, or dozens of tools, fails on the broker (users report it): the
    endpoint serves the voice profile, at most ten tools, short Chinese-first descriptions."""
    token = unique("jwt")
    async with (
        running_broker({token}) as broker,
        running(runner_for(state, "r1", voice_for(state))),
    ):
        await register(state, unique("vera"), broker.url(token))
        connection = await broker.held(token)
        listed = await connection.request("tools/list", {"_meta": {"agentId": 42}})
    frame = next(f for f in connection.frames if json.loads(f).get("id") == listed["id"])
    tools = listed["result"]["tools"]
    assert 0 < len(tools) <= 10 and len(frame.encode()) <= RESULT_LIMIT_BYTES, len(frame)
    for tool in tools:
        description = tool["description"]
        assert "\u4e00" <= description[0] <= "\u9fff" and len(description) <= 120, tool["name"]


async def test_two_speakers_calling_at_once_are_each_answered_without_waiting_for_the_other(
    state: AppState,  # noqa: F811
) -> None:
    """One agent's devices share one endpoint connection: a call that takes its time must not
    hold back another's answer past the speaker's wait."""
    release, started = asyncio.Event(), asyncio.Event()
    token = unique("jwt")
    async with (
        running_broker({token}) as broker,
        running(runner_for(state, "r1", waiting_server(release, started))),
    ):
        await register(state, unique("wen"), broker.url(token))
        connection = await broker.held(token)
        slow = await connection.send_request("tools/call", {"name": "slow", "arguments": {}})
        await within(HANG, started.wait())
        fast = await connection.call_tool("fast", {})
        assert fast["result"]["content"][0]["text"] == "fast"
        release.set()
        answer = await within(HANG, connection.answer(slow))
        assert answer["result"]["content"][0]["text"] == "slow"


async def test_a_broker_closing_the_connection_under_a_call_is_dialed_again_and_answers_the_next(
    state: AppState,  # noqa: F811
) -> None:
    release, started = asyncio.Event(), asyncio.Event()
    token = unique("jwt")
    async with (
        running_broker({token}) as broker,
        running(runner_for(state, "r1", waiting_server(release, started))) as runner,
    ):
        await register(state, unique("xia"), broker.url(token))
        first = await broker.held(token)
        await first.send_request("tools/call", {"name": "slow", "arguments": {}})
        await within(HANG, started.wait())
        await first.socket.close(1012, "service restart")
        again = await broker.held(token, 2)
        answer = await again.call_tool("fast", {})
        assert answer["result"]["content"][0]["text"] == "fast"
        assert len(runner.held) == 1


async def test_a_voice_call_is_answered_in_words_within_the_speakers_wait_with_temporal_away(
    state: AppState,  # noqa: F811
) -> None:
    """Temporal on a port nothing answers (bridge_settings): each voice tool says so in one to
    three sentences, within xiaozhi.me's 10 s (the stand-in gives up past it)."""
    token = unique("jwt")
    async with (
        running_broker({token}) as broker,
        running(runner_for(state, "r1", voice_for(state))),
    ):
        await register(state, unique("yan"), broker.url(token))
        connection = await broker.held(token)
        for tool, arguments in [
            ("what_needs_me", {}),
            ("task_status", {"name": "backup"}),
            ("approve_remediation", {"which": "checkout"}),
        ]:
            began = time.monotonic()
            answer = await connection.call_tool(tool, arguments)
            assert time.monotonic() - began < 10, tool
            result = answer["result"]
            assert "isError" not in result or result["isError"] is False, (tool, result)
            assert_speakable(result["content"][0]["text"])


async def test_a_broker_dropping_every_connection_at_once_is_redialed_ever_more_slowly(
    state: AppState,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A broker restarting in a loop (each connection taken, then closed 1012 at once): the
    connections counted as up never lasted, so the re-dials back off as for a refusal, not a
    storm of dials at the first delay."""
    caplog.set_level(logging.WARNING, logger="ambient.bridge.runner")
    runner = replace(
        runner_for(state, "r1", full_server_for(state)),
        timing=BridgeTiming(first_delay=0.5, settle_seconds=0.2),
    )
    token = unique("jwt")
    held_at: list[float] = []
    async with running_broker({token}) as broker, running(runner):
        await register(state, unique("zhu"), broker.url(token))
        for count in range(1, 6):
            connection = await broker.held(token, count)
            held_at.append(time.monotonic())
            await connection.socket.close(1012, "service restart")
    # The delays the runner chose (a loaded machine stretches the dials between, not these).
    delays = [
        float(r.args[3])  # type: ignore[index,arg-type]
        for r in caplog.records
        if r.name == "ambient.bridge.runner" and "re-dialing" in r.msg
    ][:4]
    gaps = [b - a for a, b in itertools.pairwise(held_at)]
    # Full jitter on a doubling ceiling: two steps on, a delay is longer than the one before.
    assert delays[2] > delays[0] and delays[3] > delays[1], delays
    assert all(gap > delay - 0.01 for gap, delay in zip(gaps, delays, strict=True)), (gaps, delays)
    assert runner.counts["dials"] == 5


async def test_a_call_whose_arguments_are_no_object_is_answered_in_words_not_32602(
    state: AppState,  # noqa: F811
) -> None:
    """A broker passes on what the model wrote: arguments that were a string or a list got
    JSON-RPC -32602 with no words (a device says nothing useful). The voice says it did not
    catch that; the full server's tool error names the field and what it takes."""
    voice, full = unique("jwt"), unique("jwt")
    async with running_broker({voice, full}) as broker:
        async with running(runner_for(state, "r1", voice_for(state))):
            await register(state, unique("ada"), broker.url(voice))
            spoken = await broker.held(voice)
            for arguments in ("hours=2", ["2"], 2):
                answer = await spoken.call_tool("recent_errors", arguments)
                assert "error" not in answer and not answer["result"].get("isError"), answer
                said = answer["result"]["content"][0]["text"]
                assert_speakable(said)
                assert "没听清" in said, said
        async with running(runner_for(state, "r2", full_server_for(state))):
            await register(state, unique("bob"), broker.url(full))
            tools = await broker.held(full)
            answer = await tools.call_tool("list_events", ["limit", 5])
            assert "error" not in answer and answer["result"]["isError"] is True, answer
            said = answer["result"]["content"][0]["text"]
            assert said.startswith("Error executing tool list_events: invalid arguments — "), said
            assert "arguments: an object of named arguments (" in said and "not a list" in said


async def test_a_model_calling_the_speaker_its_owner_is_answered_as_the_owner(
    state: AppState,  # noqa: F811
) -> None:
    """xiaozhi.me has no voiceprints to pass on: a model whose role prompt calls the user 主人
    and filled `speaker` with it (the owner) heard "我还不认识你的声音…请让主人在设置里登记你的
    声纹" for every question, the morning briefing included."""
    token = unique("jwt")
    async with (
        running_broker({token}) as broker,
        running(runner_for(state, "r1", voice_for(state))),
    ):
        await register(state, unique("zhu"), broker.url(token))
        connection = await broker.held(token)
        unnamed = await connection.call_tool("recent_errors", {})
        expected = unnamed["result"]["content"][0]["text"]
        for owner in ("主人", "Owner"):
            answer = await connection.call_tool("recent_errors", {"speaker": owner})
            said = answer["result"]["content"][0]["text"]
            assert said == expected and "声纹" not in said, (owner, said)
