"""An added MCP server that answers with a protocol error or a huge text: the chat still answers."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from mcp import Client
from mcp.server.lowlevel import Server
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, METHOD_NOT_FOUND
from openai import AsyncOpenAI
from pydantic import Field, create_model

from ambient.agent.chat import ChatAgent, ChatEvent
from ambient.agent.conversations import ConversationStore
from ambient.agent.errors import UnknownToolError
from ambient.agent.facade import (
    MAX_DESCRIPTION_CHARS,
    MAX_RESULT_CHARS,
    MAX_SCHEMA_CHARS,
    RELIST_AFTER,
    AgentFacade,
    Health,
)
from tests.agent.test_facade import READ
from tests.standins.llm_api import API_KEY, Answer, Content, LLMApi, ToolCalls
from tests.support.servers import serve


async def _turn(
    conversations: ConversationStore,
    llm: LLMApi,
    facade: AgentFacade,
    said: str,
    *answers: Answer,
) -> list[ChatEvent]:
    """One chat turn of a new conversation saying ``said`` over ``facade``, the model served by
    ``llm`` answering ``answers`` in turn: the turn's events."""
    async with serve(llm.app()) as base:
        model = AsyncOpenAI(api_key=API_KEY, base_url=f"{base}/v1", max_retries=0)
        agent = ChatAgent(model, "standin", facade, system="be brief")
        conversation = await conversations.open("dev", None)
        llm.script(*answers)
        return [e async for e in agent.turn(conversation, said)]


def refusing() -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer(name="refusing")

    async def lookup(key: str) -> str:
        """Look a key up."""
        raise MCPError(code=INVALID_PARAMS, message=f"no such key {key!r}")

    server.add_tool(lookup, annotations=READ)
    return server


def toolless() -> Server[Any]:
    async def no_tools(ctx: Any, params: Any) -> Any:
        raise MCPError(code=METHOD_NOT_FOUND, message="tools/list is not served here")

    return Server("toolless", on_list_tools=no_tools)


async def test_a_tool_answering_a_protocol_error_is_a_failed_result_and_the_chat_answers(
    conversations: ConversationStore,
) -> None:
    llm = LLMApi()
    facade = AgentFacade(timeout_seconds=10)
    facade.add_server("remote", lambda: Client(refusing(), cache=None), read_only_tools=["lookup"])
    facade.add_server("bare", lambda: Client(toolless(), cache=None))
    try:
        events = await _turn(
            conversations,
            llm,
            facade,
            "look up k1",
            ToolCalls([("remote__lookup", {"key": "k1"})]),
            Content("No such key."),
        )
        assert [e.type for e in events] == ["tool_call", "tool_result", "message", "done"]
        assert events[1].ok is False and "no such key 'k1'" in (events[1].text or "")
        # The model read the failure as the call's answer, and the conversation goes on.
        answer = llm.requests[1]["messages"][-1]
        assert answer["role"] == "tool" and "no such key 'k1'" in answer["content"]
        assert events[2].text == "No such key."
        stats = {s.tool: s for s in facade.stats()}
        assert stats["lookup"].calls == 1 and stats["lookup"].failures == 1
        # A server that refuses to list tools is left out and shown in error, like a dead one.
        assert [t.function for t in await facade.tools()] == ["remote__lookup"]
        assert facade.health()["bare"] is Health.ERROR
        assert "tools/list is not served here" in facade.problems()["bare"]
    finally:
        await facade.close()


def flooding() -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer(name="flooding")

    async def dump() -> str:
        """Dump everything."""
        return "row\n" * 250_000

    server.add_tool(dump, annotations=READ)
    return server


async def test_a_huge_tool_answer_reaches_the_model_cut_and_saying_so(
    conversations: ConversationStore,
) -> None:
    llm = LLMApi()
    facade = AgentFacade(timeout_seconds=10)
    facade.add_server("remote", lambda: Client(flooding(), cache=None), read_only_tools=["dump"])
    try:
        events = await _turn(
            conversations,
            llm,
            facade,
            "dump it",
            ToolCalls([("remote__dump", {})]),
            Content("Lots of rows."),
        )
        assert [e.type for e in events] == ["tool_call", "tool_result", "message", "done"]
        answer = llm.requests[1]["messages"][-1]["content"]
        assert len(answer) < MAX_RESULT_CHARS + 200 and answer.startswith("row\nrow\n")
        assert "cut: 1,000,000 characters" in answer and answer == events[1].text
        assert events[1].ok is True
    finally:
        await facade.close()


async def test_a_server_too_slow_to_list_its_tools_does_not_hold_up_every_turn() -> None:
    now, asked = [1000.0], [0]

    async def never(ctx: Any, params: Any) -> Any:
        asked[0] += 1
        await asyncio.Event().wait()

    facade = AgentFacade(timeout_seconds=0.5, clock=lambda: now[0])
    facade.add_server("ours", lambda: Client(refusing(), cache=None))
    slow = Server("slow", on_list_tools=never)
    facade.add_server("slow", lambda: Client(slow, cache=None, read_timeout_seconds=0.5))
    try:
        assert [t.function for t in await facade.tools()] == ["ours__lookup"]
        assert asked[0] == 1 and facade.health()["slow"] is Health.ERROR
        # The next turns, within a minute, do not wait for it again: its tools are left out;
        # nor does a name the model made up (it relisted every server, the hung one too).
        now[0] += 30
        assert [t.function for t in await facade.tools()] == ["ours__lookup"]
        with pytest.raises(UnknownToolError):
            await facade.describe("slow__made_up")
        assert asked[0] == 1 and facade.health()["slow"] is Health.ERROR
        # Later it is asked again (it may be back); a refresh asks at once.
        now[0] += RELIST_AFTER
        await facade.tools()
        assert asked[0] == 2
        await facade.tools(refresh=True)
        assert asked[0] == 3
    finally:
        await facade.close()


# A schema of 300 arguments, each described at length: ~60,000 characters.
Huge = create_model(
    "Huge",
    **{f"field_{n}": (str | None, Field(default=None, description="x" * 150)) for n in range(300)},  # type: ignore[call-overload]
)


def bloated() -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer(name="bloated")

    async def lookup(key: str) -> str:
        return f"value of {key}"

    async def everything(query: Huge) -> str:  # type: ignore[valid-type]
        return "ok"

    async def echo(text: str) -> str:
        return f"echo: {text}"

    server.add_tool(lookup, description="Look a key up. " + "Really. " * 25_000, annotations=READ)
    server.add_tool(everything, description="Does everything.", annotations=READ)
    server.add_tool(echo, description="Say the text back.", annotations=READ)
    return server


async def test_a_server_with_huge_tool_descriptions_does_not_fill_the_models_prompt(
    conversations: ConversationStore,
) -> None:
    llm = LLMApi()
    facade = AgentFacade(timeout_seconds=10)
    facade.add_server("remote", lambda: Client(bloated(), cache=None), read_only_tools=["lookup"])
    try:
        nothing = Content("Nothing to do.")
        events = await _turn(conversations, llm, facade, "look up everything", nothing)
        assert [e.type for e in events] == ["message", "done"]
        offered = {t["function"]["name"]: t["function"] for t in llm.requests[0]["tools"]}
        # The 200,000-character description is cut, saying so; the tool is still offered.
        lookup = offered["remote__lookup"]["description"]
        assert len(lookup) <= MAX_DESCRIPTION_CHARS + 100 and lookup.startswith("Look a key up.")
        assert "cut" in lookup
        # A tool whose schema alone is past the limit is left out, and the server says why.
        assert "remote__everything" not in offered and "remote__echo" in offered
        assert len(json.dumps(llm.requests[0])) < 20_000
        problem = facade.problems()["remote"]
        assert "everything" in problem and f"{MAX_SCHEMA_CHARS:,}" in problem
        with pytest.raises(UnknownToolError):
            await facade.describe("remote__everything")
    finally:
        await facade.close()
