"""The tool-call accuracy harness: its matching rules, its data set, and a run end to end."""

from __future__ import annotations

from typing import Any

from openai import AsyncOpenAI

from bench.toolcalls.run import evaluate, load_cases, our_tools
from bench.toolcalls.scoring import Call, Case, ExpectedCall, call_matches, value_matches
from tests.standins.llm_api import API_KEY, Answer, Content, LLMApi, ToolCalls
from tests.support.servers import serve


def test_values_match_by_the_documented_rules() -> None:
    assert value_matches("https://TechCrunch.com/", "https://techcrunch.com")
    assert value_matches(30, 30.0) and value_matches(30, "30") and not value_matches(30, 31)
    assert value_matches(["AI"], ["ai", "startups"]) and not value_matches(["AI", "ML"], ["ai"])
    assert value_matches({"contains": "日志摘要"}, "把昨天的日志摘要发给我")
    assert value_matches({"present": True}, None)
    assert value_matches(True, True) and not value_matches(True, False)
    assert not value_matches("a", ["b"])
    expected = ExpectedCall(tool="pause_task", args={"task_id": "web-monitor/dev/hn"})
    assert call_matches(
        expected, Call(tool="pause_task", arguments={"task_id": "web-monitor/dev/hn"})
    )
    assert not call_matches(expected, Call(tool="pause_task", arguments={}))
    assert not call_matches(expected, Call(tool="resume_task", arguments={"task_id": "x"}))
    nested = ExpectedCall(tool="create_web_monitor", args={"config.urls": ["https://a.com"]})
    assert call_matches(
        nested,
        Call(tool="create_web_monitor", arguments={"config": {"urls": ["https://a.com/"]}}),
    )


async def test_runner_scores_a_model_exactly() -> None:
    cases = [
        Case(
            id="a",
            lang="en",
            utterance="pause hn",
            expected=[ExpectedCall(tool="pause_task", args={"task_id": "web-monitor/dev/hn"})],
        ),
        Case(
            id="b",
            lang="zh",
            utterance="系统状态怎么样",
            expected=[ExpectedCall(tool="get_status")],
        ),
        Case(
            id="c",
            lang="en",
            utterance="pause btc and show hn",
            expected=[
                ExpectedCall(tool="pause_task", args={"task_id": "threshold-watch/dev/btc"}),
                ExpectedCall(tool="get_task", args={"task_id": "web-monitor/dev/hn"}),
            ],
        ),
        Case(id="d", lang="zh", utterance="随便聊聊", expected=[ExpectedCall(tool="list_tasks")]),
    ]
    answers: dict[str, Answer] = {
        "pause hn": ToolCalls([("pause_task", {"task_id": "web-monitor/dev/hn"})]),
        "系统状态怎么样": ToolCalls([("get_status", {})]),
        # Only one of the two calls: the case is wrong, one of its tools right.
        "pause btc and show hn": ToolCalls(
            [("pause_task", {"task_id": "threshold-watch/dev/btc"})]
        ),
        "随便聊聊": Content("hello"),
    }

    def respond(body: dict[str, Any]) -> Answer:
        return answers[body["messages"][-1]["content"]]

    llm = LLMApi(responder=respond)
    async with serve(llm.app()) as base:
        client = AsyncOpenAI(api_key=API_KEY, base_url=f"{base}/v1", max_retries=0)
        result = await evaluate(client, "standin", cases, concurrency=2)
    assert (result.cases, result.correct, result.rate) == (4, 2, 0.5)
    assert result.per_tool["pause_task"] == {"cases": 2, "correct": 2, "rate": 1.0}
    assert result.per_tool["get_task"]["correct"] == 0
    assert result.per_lang["zh"] == {"cases": 2, "correct": 1, "rate": 0.5}
    assert sorted(f["id"] for f in result.failures) == ["c", "d"]
    # The model was offered our real tools with their schemas.
    offered = {t["function"]["name"] for t in llm.requests[0]["tools"]}
    assert {"create_web_monitor", "pause_task", "get_status"} <= offered


async def test_data_set_covers_every_tool_twice_in_both_languages() -> None:
    cases = load_cases()
    tools = {t["function"]["name"] for t in await our_tools()}
    assert len(cases) >= 80
    assert len({c.id for c in cases}) == len(cases)
    counts: dict[str, int] = {}
    for case in cases:
        for expected in case.expected:
            assert expected.tool in tools, f"{case.id}: no tool {expected.tool}"
            counts[expected.tool] = counts.get(expected.tool, 0) + 1
    missing = sorted(t for t in tools if counts.get(t, 0) < 2)
    assert missing == [], f"tools with fewer than two utterances: {missing}"
    langs = {c.lang for c in cases}
    assert langs == {"en", "zh"}
    assert sum(len(c.expected) > 1 for c in cases) >= 5  # multi-step requests
