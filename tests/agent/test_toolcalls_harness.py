"""The tool-call accuracy harness: its matching rules, its data set, and a run end to end."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from openai import AsyncOpenAI

from ambient.clients.llm import TOOL_CHOICE_TEMPERATURE
from bench.toolcalls import run as bench_run
from bench.toolcalls.run import BenchError, evaluate, load_cases, our_tools, server_builder
from bench.toolcalls.scoring import (
    Attempt,
    Call,
    Case,
    ExpectedCall,
    call_matches,
    calls_in_text,
    outcome,
    part_of,
    pass_hat_k,
    percentile,
    report,
    value_matches,
)
from tests.standins.llm_api import API_KEY, Answer, Content, LLMApi, ToolCalls
from tests.support.servers import serve


async def run_bench(
    llm: LLMApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str
) -> int:
    """The bench's command line against the stand-in model, its key taken from the
    environment as a user's would be; the table row goes to tmp_path/benchmarks.md. Awaited on
    the test's loop, which serves the stand-in: not run on a loop of its own in a thread."""
    monkeypatch.setenv("STANDIN_KEY", API_KEY)
    async with serve(llm.app()) as base:
        argv = [
            *("--base-url", f"{base}/v1", "--api-key-env", "STANDIN_KEY"),
            *("--benchmarks-md", str(tmp_path / "benchmarks.md"), *args),
        ]
        return await bench_run.amain(argv)


def write_cases(tmp_path: Path, rows: list[dict[str, Any]]) -> Path:
    dataset = tmp_path / "cases.jsonl"
    dataset.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), "utf-8")
    return dataset


async def bench_report(
    llm: LLMApi,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    rows: list[dict[str, Any]],
    *args: str,
) -> dict[str, Any]:
    """``run_bench`` over ``rows`` as the data set; the report it saved (the run must pass)."""
    out = tmp_path / "report.json"
    dataset = write_cases(tmp_path, rows)
    code = await run_bench(
        llm, tmp_path, monkeypatch, "--dataset", str(dataset), "--out", str(out), *args
    )
    assert code == 0
    report: dict[str, Any] = json.loads(out.read_text("utf-8"))
    return report


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


def test_pass_hat_k_is_the_chance_that_k_runs_all_succeed() -> None:
    # Three runs of two cases: one right every time, one right once.
    runs = [[True, True, True], [True, False, False]]
    assert pass_hat_k(runs, 1) == pytest.approx((1 + 1 / 3) / 2)
    assert pass_hat_k(runs, 3) == 0.5  # only the first case is right in all three
    assert pass_hat_k(runs, 2) == pytest.approx((1 + 0) / 2)
    assert pass_hat_k([], 1) == 0.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.0
    assert percentile([float(n) for n in range(1, 101)], 95) == 95.0


def test_wrong_tools_and_wrong_arguments_are_told_apart() -> None:
    case = Case(
        id="x",
        lang="en",
        utterance="pause hn",
        expected=[ExpectedCall(tool="pause_task", args={"task_id": "web-monitor/dev/hn"})],
    )
    right = Call(tool="pause_task", arguments={"task_id": "web-monitor/dev/hn"})
    assert outcome(case, [right], None) == "correct"
    assert outcome(case, [Call(tool="pause_task", arguments={"task_id": "x"})], None) == (
        "arguments"
    )
    assert outcome(case, [Call(tool="resume_task", arguments={})], None) == "tool_choice"
    assert outcome(case, [], None) == "tool_choice"
    assert outcome(case, [right], "APITimeoutError: timed out") == "error"
    # Two pauses asked, one made: a call missing, not a wrong argument.
    both = Case(
        id="z",
        lang="zh",
        utterance="暂停 hn 和站会提醒",
        expected=[
            ExpectedCall(tool="pause_task", args={"task_id": "web-monitor/dev/hn"}),
            ExpectedCall(tool="pause_task", args={"task_id": "reminder/dev/standup"}),
        ],
    )
    assert outcome(both, [right], None) == "tool_choice"
    wrong_second = Call(tool="pause_task", arguments={"task_id": "reminder/dev/hn"})
    assert outcome(both, [right, wrong_second], None) == "arguments"
    # An empty `expected`: no product tool should be called (thanks, jokes, weather).
    chat = Case(id="y", lang="zh", utterance="谢谢", expected=[])
    assert outcome(chat, [], None) == "correct"
    assert outcome(chat, [Call(tool="list_tasks", arguments={})], None) == "tool_choice"


def test_calls_written_in_the_text_are_read_only_by_the_lenient_parser() -> None:
    text = 'Sure.\n```json\n{"name": "pause_task", "arguments": {"task_id": "hn"}}\n```'
    assert calls_in_text(text) == [Call(tool="pause_task", arguments={"task_id": "hn"})]
    tagged = '<tool_call>\n{"name": "get_status", "arguments": "{}"}\n</tool_call>'
    assert calls_in_text(tagged) == [Call(tool="get_status", arguments={})]
    assert calls_in_text("no call here") == [] and calls_in_text(None) == []
    # The tag Qwen's template lists the tools in, which the 1.5B model imitates in its text.
    imitated = '<tools>\n{"name": "what_needs_me", "arguments": {"speaker": "小智"}}\n</tools>'
    assert calls_in_text(imitated) == [Call(tool="what_needs_me", arguments={"speaker": "小智"})]
    case = Case(id="x", lang="en", utterance="pause hn", expected=[ExpectedCall(tool="pause_task")])
    result = report("m", [(case, [Attempt(calls=[], text_calls=calls_in_text(text))])])
    # The headline reads tool_calls only: a call in the text is not one a client would run.
    assert (result.pass1, result.lenient_pass1) == (0.0, 1.0)
    assert result.errors == {"tool_choice": 1, "arguments": 0, "error": 0}


async def test_runner_scores_a_model_exactly_over_k_runs() -> None:
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
        Case(id="e", lang="en", utterance="thanks!", expected=[]),
    ]
    asked: dict[str, int] = {}

    def respond(body: dict[str, Any]) -> Answer:
        utterance = body["messages"][-1]["content"]
        asked[utterance] = asked.get(utterance, 0) + 1
        if utterance == "pause hn":
            return ToolCalls([("pause_task", {"task_id": "web-monitor/dev/hn"})])
        if utterance == "系统状态怎么样":
            # Right on the first run only: pass^1 2/3, pass^3 0.
            if asked[utterance] == 1:
                return ToolCalls([("get_status", {})])
            return ToolCalls([("list_tasks", {})])
        if utterance == "pause btc and show hn":
            # Only one of the two calls, then the right tools with a wrong argument.
            if asked[utterance] == 1:
                return ToolCalls([("pause_task", {"task_id": "threshold-watch/dev/btc"})])
            return ToolCalls(
                [
                    ("pause_task", {"task_id": "threshold-watch/dev/btc"}),
                    ("get_task", {"task_id": "web-monitor/dev/btc"}),
                ]
            )
        if utterance == "随便聊聊":
            return Content("hello")
        return Content("You are welcome.")

    llm = LLMApi(responder=respond)
    async with serve(llm.app()) as base:
        client = AsyncOpenAI(api_key=API_KEY, base_url=f"{base}/v1", max_retries=0)
        result = await evaluate(client, "standin", cases, concurrency=2, runs=3)
    assert (result.cases, result.runs) == (5, 3)
    assert result.pass1 == pytest.approx((3 + 1 + 0 + 0 + 3) / 15)
    assert result.pass_k == pytest.approx(2 / 5)
    # b: two wrong tools; c: one missing call, then two wrong arguments; d: three no-calls.
    assert result.errors == {"tool_choice": 6, "arguments": 2, "error": 0}
    assert result.per_tool["pause_task"].model_dump() == {"cases": 2, "pass1": 1.0, "pass_k": 1.0}
    assert result.per_tool["get_task"].pass1 == 0.0
    assert result.per_tool["(no tool)"].pass_k == 1.0
    assert result.per_lang["zh"].pass1 == pytest.approx(1 / 6)
    assert sorted({f["id"] for f in result.failures}) == ["b", "c", "d"]
    assert len(llm.requests) == 15 and set(asked.values()) == {3}
    # The model was offered our real tools with their schemas.
    offered = {t["function"]["name"] for t in llm.requests[0]["tools"]}
    assert {"create_web_monitor", "pause_task", "get_status"} <= offered


def test_a_profile_missing_from_the_checkout_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(bench_run.PROFILES, "voice", "mcp_server.no_such_module:build")
    with pytest.raises(BenchError, match="profile 'voice' needs mcp_server"):
        server_builder("voice")
    with pytest.raises(BenchError, match="unknown profile"):
        server_builder("loud")


async def test_command_runs_a_pinned_tool_list_k_times_and_records_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [
        {"id": "1", "lang": "en", "utterance": "pause hn", "expected": [{"tool": "pause_task"}]},
        {"id": "2", "lang": "zh", "utterance": "谢谢", "expected": []},
        # Not answerable with the pinned tools: left out of the run.
        {"id": "3", "lang": "en", "utterance": "status?", "expected": [{"tool": "get_status"}]},
    ]

    def respond(body: dict[str, Any]) -> Answer:
        if body["messages"][-1]["content"] == "pause hn":
            return ToolCalls([("pause_task", {"task_id": "web-monitor/dev/hn"})])
        return Content("不客气")

    llm = LLMApi(responder=respond)
    saved = await bench_report(
        llm, tmp_path, monkeypatch, rows, "--model", "standin", "--profile", "pinned", "--runs", "2"
    )
    md = tmp_path / "benchmarks.md"
    assert (saved["cases"], saved["runs"], saved["pass1"], saved["pass_k"]) == (2, 2, 1.0, 1.0)
    assert saved["tools"] == sorted(bench_run.PINNED)
    assert {t["function"]["name"] for t in llm.requests[0]["tools"]} == set(bench_run.PINNED)
    line = md.read_text("utf-8").strip()
    assert line.startswith("| ") and "--profile pinned" in line and "| 100.0% | 100.0% |" in line


async def test_cases_for_runs_the_pinned_subset_with_the_whole_tool_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [
        {"id": "1", "lang": "en", "utterance": "pause hn", "expected": [{"tool": "pause_task"}]},
        {"id": "2", "lang": "en", "utterance": "status?", "expected": [{"tool": "get_status"}]},
    ]
    llm = LLMApi(responder=lambda body: ToolCalls([("pause_task", {"task_id": "x"})]))
    saved = await bench_report(
        llm, tmp_path, monkeypatch, rows, "--runs", "1", "--cases-for", "pinned"
    )
    assert (saved["cases"], saved["pass1"]) == (1, 1.0)
    assert len(llm.requests) == 1 and len(llm.requests[0]["tools"]) == len(saved["tools"]) > 10


async def test_find_profile_serves_lookups_with_the_products_find_tools_and_loads_what_it_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [
        # Odd numbers: the held-back half of a set without a split field.
        {"id": "1", "lang": "zh", "utterance": "把 checkout-api 重启一下",
         "expected": [{"tool": "restart_workload"}]},
        {"id": "3", "lang": "en", "utterance": "pause hn", "expected": [{"tool": "pause_task"}]},
        {"id": "5", "lang": "en", "utterance": "find a tool", "expected": [{"tool": "find_tools"}]},
        {"id": "7", "lang": "en", "utterance": "thanks", "expected": []},
        {"id": "2", "lang": "en", "utterance": "tune half", "expected": []},
    ]  # fmt: skip

    def respond(body: dict[str, Any]) -> Answer:
        offered = [t["function"]["name"] for t in body["tools"]]
        last = body["messages"][-1]
        asked = next(m["content"] for m in body["messages"] if m["role"] == "user")
        if last["role"] == "tool":
            # The product's answer to the lookup is in; the tools it named are loaded.
            if "restart_workload" in offered:
                return ToolCalls([("restart_workload", {"name": "checkout-api"})])
            return Content(f"nothing to call for {asked}")
        if last["content"] == "pause hn":
            return ToolCalls([("pause_task", {"task_id": "web-monitor/dev/hn"})])
        if last["content"] == "thanks":
            # A lookup that finds nothing to do, then words: still no product call.
            if len(offered) == 11:
                return ToolCalls([("find_tools", {"query": "tell me a joke"})])
        if "restart_workload" not in offered and "重启" in last["content"]:
            return ToolCalls([("find_tools", {"query": last["content"]})])
        return Content("不客气")

    llm = LLMApi(responder=respond)
    saved = await bench_report(
        llm,
        tmp_path,
        monkeypatch,
        rows,
        *("--model", "standin", "--profile", "find"),
        *("--split", "heldout"),
    )
    # The case asking for find_tools itself and the tune half are left out. Failing, it shows
    # each failed run (its error, its lookups) and what the stand-in was asked, in order.
    asked = [r["messages"][-1].get("content") or r["messages"][-1]["role"] for r in llm.requests]
    assert (saved["cases"], saved["pass1"]) == (3, 1.0), (saved["failures"], asked)
    assert saved["tools"] == sorted([*bench_run.PINNED, "find_tools"])
    assert saved["profile"].startswith("find: pinned + find_tools over ")
    first, second = llm.requests[0], llm.requests[1]
    assert [t["function"]["name"] for t in first["tools"]] == [
        t["function"]["name"] for t in second["tools"][:11]
    ]
    assert "Only some of your tools are loaded" in first["messages"][0]["content"]
    assert first["messages"][-1]["content"] == "把 checkout-api 重启一下"
    lookup, answer = second["messages"][-2], second["messages"][-1]
    assert lookup["tool_calls"][0]["function"]["name"] == "find_tools"
    assert answer["role"] == "tool" and answer["tool_call_id"] == lookup["tool_calls"][0]["id"]
    found = [t["name"] for t in json.loads(answer["content"])["tools"]]
    assert "restart_workload" in found
    assert [t["function"]["name"] for t in second["tools"][11:]] == [
        name for name in found if name not in [*bench_run.PINNED, "find_tools"]
    ]
    # "thanks": one lookup (nothing found), then words; the lookup is not a product call.
    thanks = [r for r in llm.requests if r["messages"][2]["content"] == "thanks"]
    assert len(thanks) == 2 and len(thanks[1]["tools"]) == 11
    assert "find a tool" not in {r["messages"][-1]["content"] for r in llm.requests}


def test_command_without_a_key_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_run.main(["--api-key-env", "AMBIENT_NO_SUCH_KEY_SET"]) == 2
    assert "set AMBIENT_NO_SUCH_KEY_SET" in capsys.readouterr().err


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


async def test_split_runs_only_that_half_of_the_data_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [
        {"id": "1", "lang": "en", "split": "tune", "utterance": "hi", "expected": []},
        {"id": "2", "lang": "zh", "split": "heldout", "utterance": "谢谢", "expected": []},
        {"id": "3", "lang": "en", "split": "heldout", "utterance": "thanks", "expected": []},
    ]
    llm = LLMApi(responder=lambda body: Content("不客气"))
    saved = await bench_report(
        llm, tmp_path, monkeypatch, rows, "--profile", "voice", "--split", "heldout"
    )
    assert saved["cases"] == 2
    asked = sorted(r["messages"][-1]["content"] for r in llm.requests)
    assert asked == ["thanks", "谢谢"]


def _heldout_rows(count: int) -> list[dict[str, Any]]:
    """``count`` held-back no-tool cases, ids "0", "1", …, utterances "u0", "u1", …"""
    return [
        {"id": str(n), "lang": "en", "split": "heldout", "utterance": f"u{n}", "expected": []}
        for n in range(count)
    ]


async def test_every_runs_a_fixed_sample_of_the_split_in_file_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = _heldout_rows(7)
    llm = LLMApi(responder=lambda body: Content("ok"))
    saved = await bench_report(
        llm, tmp_path, monkeypatch, rows, "--profile", "voice", "--split", "heldout", "--every", "3"
    )
    assert saved["cases"] == 3
    assert [r["messages"][-1]["content"] for r in llm.requests] == ["u0", "u3", "u6"]


async def test_the_xiaozhi_environment_counts_its_own_tools_as_no_product_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [
        {"id": "1", "lang": "zh", "utterance": "明天杭州天气怎么样", "expected": []},
        {
            "id": "2",
            "lang": "en",
            "utterance": "is my cluster healthy",
            "expected": [{"tool": "cluster_health"}],
        },
    ]
    llm = LLMApi(responder=lambda body: ToolCalls([("get_weather", {"lang": "zh_CN"})]))
    bare = await bench_report(llm, tmp_path, monkeypatch, rows, "--profile", "voice")
    assert bare["pass1"] == 0.0  # without 小智's tools, get_weather is no tool at all
    offered = {t["function"]["name"] for t in llm.requests[-1]["tools"]}
    assert "get_weather" not in offered
    saved = await bench_report(
        llm, tmp_path, monkeypatch, rows, "--profile", "voice", "--environment", "xiaozhi"
    )
    assert saved["pass1"] == 0.5  # the weather turn is right, the cluster turn is not
    offered = {t["function"]["name"] for t in llm.requests[-1]["tools"]}
    assert {"get_weather", "play_music", "handle_exit_intent", "cluster_health"} <= offered
    assert "xiaozhi's own" in saved["profile"]
    # The voice profile reads an unwanted call by what it would do, with 小智's tools or not.
    llm = LLMApi(responder=lambda body: ToolCalls([("pause_task", {"name": "它"})]))
    asked = await bench_report(
        llm, tmp_path, monkeypatch, rows, "--profile", "voice", "--environment", "xiaozhi"
    )
    assert asked["unwanted"] == {"asked back": 1}


async def test_voice_follow_up_set_is_all_follow_ups_of_every_kind() -> None:
    """bench/toolcalls/voice_followups.jsonl: follow-ups only, written blind after heldout7
    showed the follow-ups answered in words to be made-up results."""
    cases = load_cases(bench_run.VOICE_DATASET.with_name("voice_followups.jsonl"))
    tools = {t["function"]["name"] for t in await our_tools("voice")}
    assert len(cases) == 48 and all(c.history for c in cases)
    assert len({c.id for c in cases}) == len(cases)
    assert Counter(c.lang for c in cases) == {"en": 24, "zh": 24}
    assert Counter(part_of(c) for c in cases) == {"multi-turn": 40, "ask-back": 8}
    called = Counter(e.tool for c in cases for e in c.expected)
    assert set(called) == tools - {"greet"} and min(called.values()) >= 2
    assert sum(not c.expected for c in cases) == 18


async def test_voice_confirm_set_answers_the_named_back_question_in_every_way() -> None:
    """bench/toolcalls/voice_confirm.jsonl: the user's turn after a voice decision was named
    back with two or more waiting (docs/xiaozhi.md), written blind from the question's form."""
    cases = load_cases(bench_run.VOICE_DATASET.with_name("voice_confirm.jsonl"))
    assert len(cases) == 40 and len({c.id for c in cases}) == 40
    assert Counter(c.lang for c in cases) == {"en": 20, "zh": 20}
    for case in cases:
        asked = case.history[-2]
        assert asked.tool in {"approve_remediation", "refuse_remediation"}, case.id
        # The question as the product asks it in the speaker's language (mcp_server.voice).
        again = "again to confirm" if case.lang == "en" else "确认就再说一次"
        assert again in (asked.result or ""), case.id
    assert sum(not c.expected for c in cases) == 6
    called = Counter(e.tool for c in cases for e in c.expected)
    assert set(called) == {"approve_remediation", "refuse_remediation"}


_CJK = re.compile(r"[\u3400-\u9fff]")
_VOICE_SETS = ("voice.jsonl", "voice_followups.jsonl", "voice_confirm.jsonl")


def _said_without_a_name(value: str) -> bool:
    """A reference the voice tools read in either language: "它", "第二", "确认"."""
    from mcp_server.voice_references import names_nothing
    from mcp_server.voice_replies import reply_said

    return (
        names_nothing(value)
        or reply_said(value, approve=True).names_no_fix  # yes words and verbs alone
        or bool(re.fullmatch(r"第[一二三四五六七八九十]", value))
    )


def test_an_english_speaker_hears_english_and_is_expected_to_name_things_in_english() -> None:
    """The voice tools answer a user who chose English in English (mcp_server.voice_answer):
    an English case's earlier results and assistant turns are the product's English words,
    and its expected names are the English ones the tool finds, not a translation of them
    ("比特币" names no task called btc)."""
    chinese = []
    for name in _VOICE_SETS:
        for case in load_cases(bench_run.VOICE_DATASET.with_name(name)):
            if case.lang != "en":
                continue
            chinese += [
                (case.id, said)
                for turn in case.history
                for said in (turn.result, turn.assistant)
                if said and _CJK.search(said)
            ]
            chinese += [
                (case.id, value)
                for call in case.expected
                for value in _strings(call.args)
                if _CJK.search(value) and not _said_without_a_name(value)
            ]
    assert chinese == []


async def test_voice_data_set_covers_every_voice_tool_in_both_languages_and_both_halves() -> None:
    cases = load_cases(bench_run.VOICE_DATASET)
    tools = {t["function"]["name"] for t in await our_tools("voice")}
    assert len(cases) >= 200
    assert len({c.id for c in cases}) == len(cases)
    # heldout2 was written after heldout had been looked at while tuning; heldout3 after
    # heldout2 had been looked at once; heldout4 after heldout3 had been, before round 6's
    # tuning; heldout5 after heldout4 had been run twice, before round 7's tuning; heldout6
    # after heldout5 had been read in round 8, heldout7 after heldout6 had been read (the
    # follow-ups of both all call a tool), heldout8 after every earlier split had been read.
    splits = (
        *("tune", "heldout", "heldout2", "heldout3", "heldout4", "heldout5", "heldout6"),
        *("heldout7", "heldout8"),
    )
    for split in splits:
        half = [c for c in cases if c.split == split]
        for lang in ("en", "zh"):
            said = [c for c in half if c.lang == lang]
            called = {e.tool for c in said for e in c.expected}
            assert called == tools, f"{split}/{lang} misses {sorted(tools - called)}"
            # Turns that need no tool: thanks, jokes, weather, and requests too vague to act on.
            assert sum(not c.expected for c in said) >= 3
        # A multi-turn part in each half: follow-ups that need an earlier result, some
        # calling a tool with what that result named, some asking back or just talking.
        follow_ups = [c for c in half if c.history]
        assert len(follow_ups) >= (
            12 if split.startswith("heldout") and split[-1].isdigit() else 15
        )
        assert {c.lang for c in follow_ups} == {"en", "zh"}
        assert any(c.expected for c in follow_ups)
        assert split in ("heldout6", "heldout7") or any(not c.expected for c in follow_ups)
    assert {c.split for c in cases} == set(splits)
    assert sum(c.split == "heldout2" for c in cases) >= 60
    # What is tuned on asks back too: requests that name nothing, in both languages.
    tune_asks = Counter(c.lang for c in cases if c.split == "tune" and part_of(c) == "ask-back")
    assert min(tune_asks["en"], tune_asks["zh"]) >= 6
    for split in ("heldout3", "heldout4", "heldout5", "heldout6", "heldout7"):
        fresh = [c for c in cases if c.split == split]
        assert len(fresh) >= 70
        for lang in ("en", "zh"):
            # Every voice tool twice said alone per language, as in heldout2.
            alone = Counter(
                e.tool for c in fresh if c.lang == lang and not c.history for e in c.expected
            )
            assert set(alone) == tools and min(alone.values()) >= 2
        assert sum(part_of(c) == "no-tool" for c in fresh) >= 14
        assert sum(part_of(c) == "ask-back" for c in fresh) >= (6 if split == "heldout3" else 8)
        assert sum(bool(c.history) for c in fresh) >= (13 if split >= "heldout6" else 14)


async def test_voice_profile_is_asked_with_the_voice_servers_published_prompt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mcp_server.voice_prompt import INSTRUCTIONS

    dataset = write_cases(tmp_path, [{"id": "1", "lang": "en", "utterance": "hi", "expected": []}])
    llm = LLMApi(responder=lambda body: Content("hello"))
    for profile in ("voice", "pinned"):
        assert (
            await run_bench(
                llm, tmp_path, monkeypatch, "--profile", profile, "--dataset", str(dataset)
            )
            == 0
        )
    voice, chat = (r["messages"][0]["content"] for r in llm.requests)
    # Nothing but the published prompt is the voice model's system text; the chat agent's
    # cases keep the session context it would know from earlier tool results.
    assert [m["role"] for m in llm.requests[0]["messages"]] == ["system", "user"]
    assert llm.requests[1]["messages"][1] == {"role": "system", "content": bench_run.CONTEXT}
    # 小智's model is given the role prompt the voice server publishes, not our chat agent's.
    assert voice == INSTRUCTIONS
    # The product's tool-choice temperature, and an answer cut before it can hold the slot.
    assert {(r["temperature"], r["max_tokens"]) for r in llm.requests} == {
        (TOOL_CHOICE_TEMPERATURE, bench_run.ANSWER_TOKENS)
    }
    assert chat.startswith("You are 小智, the ambient operations assistant")


def test_each_case_reports_under_its_part_and_an_ask_back_is_told_apart_from_small_talk() -> None:
    said = {"id": "1", "lang": "zh", "expected": []}
    call = [ExpectedCall(tool="pause_task")]
    earlier = [{"user": "hn 怎么样？"}]
    assert part_of(Case(**said, utterance="谢谢")) == "no-tool"
    assert part_of(Case(**said, utterance="暂停它。", part="ask-back")) == "ask-back"
    assert part_of(Case(**{**said, "expected": call}, utterance="暂停 hn。")) == "single-turn"
    assert part_of(Case(**{**said, "expected": call}, utterance="暂停它。", history=earlier)) == (
        "multi-turn"
    )
    rows = [(Case(**said, utterance="暂停它。", part="ask-back"), [Attempt(calls=[])])]
    assert set(report("m", rows).per_part) == {"ask-back"}


def test_a_spoken_reference_said_several_ways_matches_any_of_them() -> None:
    said = {"any_of": [{"contains": "btc"}, {"contains": "比特币"}, {"contains": "bitcoin"}]}
    assert value_matches(said, "比特币监控") and value_matches(said, "the BTC watch")
    assert not value_matches(said, "hn") and not value_matches(said, None)


def test_an_earlier_turn_is_one_kind_and_a_tool_turn_carries_its_result() -> None:
    from pydantic import ValidationError

    from bench.toolcalls.scoring import Turn

    assert Turn(tool="task_status", arguments={"name": "btc"}, result="btc 正在运行。").tool
    with pytest.raises(ValidationError, match="needs the result"):
        Turn(tool="task_status")
    with pytest.raises(ValidationError, match="one of"):
        Turn(user="hi", assistant="hello")


async def test_a_follow_up_is_asked_after_its_earlier_turns_as_a_client_sends_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    history = [
        {"user": "比特币监控怎么样了？"},
        {"tool": "task_status", "arguments": {"name": "比特币"}, "result": "btc 正在运行。"},
        {"assistant": "btc 正在运行。"},
    ]
    rows = [
        {
            "id": "m1",
            "lang": "zh",
            "history": history,
            "utterance": "暂停它。",
            "expected": [{"tool": "pause_task", "args": {"name": {"contains": "btc"}}}],
        },
        {"id": "s1", "lang": "zh", "utterance": "谢谢", "expected": []},
    ]

    def respond(body: dict[str, Any]) -> Answer:
        # The model can only name the task if it was shown the earlier tool result.
        results = [m["content"] for m in body["messages"] if m["role"] == "tool"]
        if body["messages"][-1]["content"] == "暂停它。" and results == ["btc 正在运行。"]:
            return ToolCalls([("pause_task", {"name": "btc"})])
        return Content("不客气")

    llm = LLMApi(responder=respond)
    saved = await bench_report(llm, tmp_path, monkeypatch, rows, "--profile", "voice")
    assert (saved["cases"], saved["pass1"]) == (2, 1.0)
    assert set(saved["per_part"]) == {"multi-turn", "no-tool"}
    follow_up = next(r for r in llm.requests if r["messages"][-1]["content"] == "暂停它。")
    roles = [m["role"] for m in follow_up["messages"]]
    # The voice model gets its role prompt and the conversation, no bench-made context.
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user"]
    call = follow_up["messages"][2]["tool_calls"][0]
    assert call["function"] == {"name": "task_status", "arguments": '{"name": "比特币"}'}
    assert follow_up["messages"][3]["tool_call_id"] == call["id"]


async def test_each_attempt_is_appended_to_the_progress_file_as_it_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [
        {"id": "1", "lang": "en", "utterance": "pause hn", "expected": [{"tool": "pause_task"}]},
        {"id": "2", "lang": "zh", "utterance": "谢谢", "expected": []},
    ]
    dataset = write_cases(tmp_path, rows)
    llm = LLMApi(responder=lambda body: ToolCalls([("pause_task", {"task_id": "hn"})]))
    progress = tmp_path / "progress.jsonl"
    assert (
        await run_bench(
            llm,
            tmp_path,
            monkeypatch,
            *("--runs", "2", "--profile", "pinned", "--dataset", str(dataset)),
            *("--progress", str(progress)),
        )
        == 0
    )
    lines = [json.loads(line) for line in progress.read_text("utf-8").splitlines()]
    assert sorted((line["id"], line["run"]) for line in lines) == [
        ("1", 1),
        ("1", 2),
        ("2", 1),
        ("2", 2),
    ]
    assert lines[0]["calls"] == [{"tool": "pause_task", "arguments": {"task_id": "hn"}}]


async def test_a_resumed_run_keeps_the_recorded_attempts_and_asks_only_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [
        {
            "id": str(n),
            "lang": "en",
            "utterance": f"pause {n}",
            "expected": [{"tool": "pause_task"}],
        }
        for n in range(3)
    ]
    llm = LLMApi(responder=lambda body: ToolCalls([("pause_task", {"task_id": "hn"})]))
    progress = tmp_path / "progress.jsonl"
    # A run killed while writing its third line: two attempts kept, the cut line asked again.
    kept = {"calls": [{"tool": "get_status", "arguments": {}}], "seconds": 7.0}
    progress.write_text(
        "".join(json.dumps({"id": n, "run": 1, **kept}) + "\n" for n in ("0", "1"))
        + '{"id": "2", "run": 1, "cal',
        "utf-8",
    )
    saved = await bench_report(
        llm,
        tmp_path,
        monkeypatch,
        rows,
        *("--profile", "pinned", "--progress", str(progress), "--resume"),
    )
    assert [r["messages"][-1]["content"] for r in llm.requests] == ["pause 2"]
    # The kept attempts are scored as recorded (a wrong tool), the new one as answered.
    assert saved["cases"] == 3 and saved["pass1"] == pytest.approx(1 / 3)
    lines = progress.read_text("utf-8").splitlines()
    assert json.loads(lines[-1])["id"] == "2" and len(lines) == 4


async def test_ids_from_runs_the_sample_an_earlier_run_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = _heldout_rows(5)
    earlier = tmp_path / "earlier.jsonl"
    earlier.write_text("".join(json.dumps({"id": n, "run": 1}) + "\n" for n in ("1", "4")))
    llm = LLMApi(responder=lambda body: Content("ok"))
    saved = await bench_report(
        llm, tmp_path, monkeypatch, rows, "--profile", "voice", "--ids-from", str(earlier)
    )
    assert saved["cases"] == 2
    assert [r["messages"][-1]["content"] for r in llm.requests] == ["u1", "u4"]


async def test_retrieve_profile_offers_what_the_chat_agent_offers_and_splits_pass_by_recall(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ambient.agent.chat import ToolOffer

    rows = [
        {"id": "1", "lang": "zh", "utterance": "把 checkout-api 重启一下",
         "expected": [{"tool": "restart_workload"}]},
        # No word of it names the tool: the search cannot offer it, so the model cannot call it.
        {"id": "3", "lang": "en", "utterance": "zzz qqq", "expected": [{"tool": "pause_task"}]},
        {"id": "5", "lang": "en", "utterance": "thanks", "expected": []},
    ]  # fmt: skip

    def respond(body: dict[str, Any]) -> Answer:
        offered = [t["function"]["name"] for t in body.get("tools", [])]
        return ToolCalls([(offered[0], {})]) if "restart_workload" in offered else Content("ok")

    llm = LLMApi(responder=respond)
    saved = await bench_report(
        llm, tmp_path, monkeypatch, rows, *("--model", "standin", "--profile", "retrieve"),
        *("--top-k", "3"),
    )  # fmt: skip
    assert saved["profile"].startswith("retrieve: top 3 of ")
    every = await our_tools("full")
    for request in llm.requests:
        # Exactly the product's choice for that conversation, not a copy of its search.
        chosen = ToolOffer(3).tools(every, request["messages"])
        assert [t["function"]["name"] for t in request.get("tools", [])] == [
            t["function"]["name"] for t in chosen
        ]
    assert saved["per_offer"] == {
        "expected tool not offered": {"cases": 1, "pass1": 0.0, "pass_k": 0.0},
        "expected tool offered": {"cases": 1, "pass1": 1.0, "pass_k": 1.0},
    }
    assert (saved["cases"], saved["pass1"]) == (3, 2 / 3)


def test_an_unwanted_call_is_read_by_what_the_product_would_do_with_it() -> None:
    from bench.toolcalls.run import voice_reading

    ask = Case(id="a", lang="zh", utterance="把它停了。", expected=[], part="ask-back")
    thanks = Case(id="t", lang="en", utterance="Thanks.", expected=[])
    runs = [
        (ask, [Attempt(calls=[Call(tool="pause_task", arguments={"name": "它"})])]),
        (ask, [Attempt(calls=[Call(tool="pause_task", arguments={"name": "btc"})])]),
        (ask, [Attempt(calls=[])]),
        (thanks, [Attempt(calls=[Call(tool="greet", arguments={})])]),
        (thanks, [Attempt(calls=[Call(tool="cluster_health", arguments={})])]),
        (thanks, [Attempt(calls=[Call(tool="task_status", arguments={"name": "that one"})])]),
        (thanks, [Attempt(calls=[Call(tool="greet", arguments={"speaker": "晚安"})])]),
        (thanks, [Attempt(calls=[Call(tool="greet", arguments={"speaker": "小智"})])]),
    ]
    result = report("m", runs, reading=voice_reading())
    # greet is a write: it marks the day's briefing given; a guessed target pauses something.
    assert result.unwanted == {"asked back": 2, "changed": 4, "spoke": 1}
    assert result.guessed_speakers == 1  # "晚安" is looked up as a person; "小智" is nobody
    assert report("m", runs).unwanted == {} and report("m", runs).guessed_speakers is None


def _errors_case(utterance: str, hours: int) -> Case:
    """A request for the errors of the last ``hours``, said as ``utterance``."""
    expected = [ExpectedCall(tool="recent_errors", args={"hours": hours})]
    return Case(id=utterance, lang="zh", utterance=utterance, expected=expected)


def _errors_call(hours: object) -> Call:
    return Call(tool="recent_errors", arguments={"hours": hours})


def test_a_voice_call_is_scored_on_its_arguments_as_the_tool_reads_them() -> None:
    from bench.toolcalls.run import voice_reading

    week = _errors_case("这一周出过什么错？", 168)
    # The words the model copied, the hours, the wrong span, one the tool refuses (kept as
    # said), and the same words only written in the text (the lenient reading).
    runs = [
        (week, [Attempt(calls=[_errors_call(hours)])]) for hours in ("这一周", 168, "1", "soon")
    ]
    runs.append((week, [Attempt(calls=[], text_calls=[_errors_call("一周")])]))
    result = report("m", runs, reading=voice_reading())
    assert result.pass1 == 2 / 5 and result.lenient_pass1 == 3 / 5
    assert result.errors == {"tool_choice": 1, "arguments": 2, "error": 0}
    # The failures show what the model said, not the reading.
    assert [f["called"][0]["arguments"]["hours"] for f in result.failures[:2]] == ["1", "soon"]
    # Without the product's reading, only the number is right.
    assert report("m", runs).pass1 == 1 / 5


def test_a_request_answered_in_words_is_counted_and_its_words_kept() -> None:
    follow_up = _errors_case("那只看最近俩小时的呢", 2)
    thanks = Case(id="t", lang="zh", utterance="谢谢", expected=[])
    made_up = "最近 2 小时有 5 个错误，主要是：库存同步 4 次。"
    runs = [
        (follow_up, [Attempt(calls=[], said=made_up)]),
        (follow_up, [Attempt(calls=[], said="")]),  # silence is no answer in words
        (follow_up, [Attempt(calls=[_errors_call(2)])]),
        (thanks, [Attempt(calls=[], said="不客气！")]),  # words are right here
    ]
    result = report("m", runs)
    assert result.answered_in_words == 1
    assert [f["said"] for f in result.failures] == [made_up, ""]


# A thing's id in an expected argument: a task, remediation, discussion, cluster or node pool.
_AN_ID = re.compile(
    r"(?:web-monitor|threshold-watch|reminder|news-digest|daily-briefing|remediation)/\S+"
    r"|\bdisc_\w+|\bcls-\w+|\bnp-\w+"
)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def test_every_id_a_case_expects_is_one_the_model_was_given() -> None:
    """An id the request does not say must come from its earlier turns or the session context
    (what the chat agent would know), never from a tool's schema example: a case expecting it
    would measure copying, not understanding."""
    unknown = []
    for case in load_cases():
        given = " ".join([case.utterance, bench_run.CONTEXT, *map(str, case.history)])
        for call in case.expected:
            for value in _strings(call.args):
                unknown += [(case.id, i) for i in _AN_ID.findall(value) if i not in given]
    assert unknown == []
