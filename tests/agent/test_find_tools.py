"""find_tools: the ranker over a tool list, the MCP tool over the server's own list, its recall."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from ambient.domain.tool_search import QUESTION_READS, ToolDoc, ToolIndex, query_terms, tokens
from ambient.domain.tool_words import TOOL_WORDS
from ambient.settings import Settings
from bench.find_tools import batch_of, load, recall, split
from mcp_server.server import build_server

TOOLS = [
    ToolDoc(
        "pause_task",
        "Pause a task: no scheduled checks until it is resumed (one asked for still runs).",
    ),
    ToolDoc("resume_task", "Resume a paused task (a watch checks at once)."),
    ToolDoc("get_status", "Report whether Temporal is reachable and the database answers."),
    ToolDoc(
        "list_node_pools",
        "Sizes of a TKE cluster's groups of machines.",
        {"properties": {"cluster_id": {"description": "The TKE cluster, e.g. cls-7kq2m0ab"}}},
    ),
    ToolDoc(
        "search_logs",
        "Search a CLS topic in a time window, newest first.",
        {"properties": {"query": {"description": "Lucene query over the log lines"}}},
    ),
]


def _names(index: ToolIndex, request: str, limit: int = 5) -> list[str]:
    return [hit.tool.name for hit in index.search(request, limit)]


def _scores(index: ToolIndex, request: str) -> dict[str, float]:
    return {hit.tool.name: hit.score for hit in index.search(request)}


_ZH_TASKS = ToolIndex([ToolDoc("list_tasks", "列出任务"), ToolDoc("pause_task", "暂停任务")])


def test_tokens_are_words_split_on_underscores_and_case_and_characters_and_bigrams_of_chinese() -> (
    None
):
    assert tokens("list_node_pools CreateClusterNodePool") == [
        "list", "node", "pool", "creat", "cluster", "node", "pool"
    ]  # fmt: skip
    assert tokens("把监控暂停") == ["把", "监", "控", "暂", "停", "把监", "监控", "控暂", "暂停"]
    assert tokens("Pause the watches, e.g. BTC") == ["paus", "watch", "btc"]


def test_an_english_word_meets_its_other_forms_final_e_included() -> None:
    assert tokens("approve approved approves approving") == ["approv"] * 4
    assert tokens("pause paused") == tokens("pauses pausing")
    assert tokens("replies reply") == ["reply", "reply"]


def test_porters_rules_keep_a_final_e_that_is_not_silent() -> None:
    # "state" must not meet "stats" (get_status vs get_stats), "close" must meet "closed".
    assert tokens("state stated") == ["state", "state"] and tokens("stats") == ["stat"]
    assert tokens("close closed closes") == ["close"] * 3


def test_quoted_values_and_ids_in_a_request_are_not_words_about_the_tool() -> None:
    messages = ToolDoc("search_messages", "Messages containing the keyword in discussions.")
    logs = ToolDoc("search_logs", "Search logs: timeouts and errors.")
    pools = ToolDoc(
        "list_node_pools",
        "Node pools of a cluster.",
        {"properties": {"cluster_id": {"description": "e.g. cls-7kq2m0ab"}}},
    )
    workloads = ToolDoc("list_workloads", "Deployments with replicas.")
    index = ToolIndex([messages, logs, pools, workloads])

    assert _names(index, 'search the discussions for "timeouts"', 1) == ["search_messages"]
    assert tokens("cls-7kq2m0ab remediation/3f9a1c2b7d4e k8s 502") == [
        "cls", "remediation", "k8s", "502"
    ]  # fmt: skip
    assert _names(index, "list the workloads of cls-7kq2m0ab", 1) == ["list_workloads"]
    # A request that is nothing but a quote still means its words.
    assert _names(index, '"timeouts"', 1) == ["search_logs"]


def test_an_id_reads_as_the_kind_of_thing_it_names_not_as_its_words() -> None:
    pause = ToolDoc(
        "pause_task",
        "Pause a task: no scheduled checks until it is resumed (one asked for still runs).",
    )
    metric = ToolDoc("get_metric", "Datapoints of a Cloud Monitor metric: disk usage, CPU.")
    watch = ToolDoc("create_threshold_watch", "Watch a metric and alert on a threshold.")
    read = ToolDoc("read_discussion", "All messages of one discussion.")
    post = ToolDoc("send_message", "Post a message so people see what was said.")
    index = ToolIndex([pause, metric, watch, read, post])

    # The words of "threshold-watch/dev/disk-usage" are the task's name, not the request's.
    assert _names(index, "pause threshold-watch/dev/disk-usage for now", 1) == ["pause_task"]
    # A discussion id says a discussion is meant: its tools come up (none did before).
    assert "read_discussion" in _names(index, "what did people say in disc_20261203093000_k7p2?")


def test_a_tools_own_everyday_words_find_it_when_its_description_does_not_say_them() -> None:
    inbox = ToolDoc("read_inbox", "Your inbox (the notifications stored for you).")
    push = ToolDoc("get_push_config", "Your push channels and quiet hours.")
    index = ToolIndex([inbox, push])

    # 站内 is in neither description; TOOL_WORDS gives read_inbox 站内信/站内通知.
    assert _names(index, "我的站内通知里都有啥", 1) == ["read_inbox"]
    [hit] = index.search("where do my notifications go?", 1)
    assert hit.tool.name == "get_push_config"


def test_every_tool_words_entry_names_a_tool_of_the_full_server(settings: Settings) -> None:
    import asyncio

    names = {t.name for t in asyncio.run(build_server(settings).list_tools())}
    assert set(TOOL_WORDS) <= names


def test_a_chinese_request_finds_its_tool_through_the_word_map() -> None:
    index = ToolIndex(TOOLS)
    assert _names(index, "把比特币的监控暂停一下")[0] == "pause_task"
    assert _names(index, "恢复那个任务")[0] == "resume_task"
    assert _names(index, "最近的报错日志")[0] == "search_logs"
    assert query_terms("暂停")["paus"] == "暂停→pause"


def test_an_english_request_finds_its_tool_and_says_which_words_matched() -> None:
    index = ToolIndex(TOOLS)
    [hit] = index.search("Is Temporal reachable?", 1)
    assert hit.tool.name == "get_status"
    assert hit.why == ["temporal", "reachable"]
    assert _names(index, "resume my paused watch", 1) == ["resume_task"]


def test_a_tool_name_split_on_underscores_is_searchable_when_its_description_is_not() -> None:
    # "node pool" is in list_node_pools' name only; its description says "groups of machines".
    assert _names(ToolIndex(TOOLS), "which node pools?", 1) == ["list_node_pools"]


def test_a_request_of_two_clauses_gets_each_clauses_tool_in_the_top() -> None:
    names = _names(ToolIndex(TOOLS), "暂停比特币监控，然后搜一下日志里的 timeout", 2)
    assert set(names) == {"pause_task", "search_logs"}


def test_a_stopword_typed_without_its_apostrophe_is_still_a_stopword() -> None:
    assert tokens("whats hows thats") == []
    assert tokens("what's the watch") == ["watch"]


def test_a_misspelt_word_finds_the_tool_its_spelling_is_one_edit_from() -> None:
    index = ToolIndex(
        [
            ToolDoc("read_inbox", "Your stored notifications, newest first."),
            ToolDoc("get_status", "Whether the workers and the database answer."),
        ]
    )
    # A letter dropped, one added, two swapped: each still meets "notification".
    for request in ("any notifcations?", "any notificaitons?", "any notificationns?"):
        [hit] = index.search(request, 1)
        assert hit.tool.name == "read_inbox"
        assert hit.why == [f"{request[4:-1]}~notification"]
    # A short word is not corrected ("base" is no typo of "database"), nor a known one.
    assert index.search("base", 1) == []


def test_a_shortened_word_finds_the_tool_words_it_begins() -> None:
    index = ToolIndex(
        [
            ToolDoc("regenerate_briefing", "Prepare today's briefing again."),
            ToolDoc("get_briefing", "Today's briefing with its report."),
        ]
    )
    assert _names(index, "regen today's brief", 1) == ["regenerate_briefing"]


def test_a_number_is_a_value_not_a_misspelt_word() -> None:
    # 90000 is one edit from the schema's example 90001, and says nothing about the tool.
    watch = ToolDoc("create_threshold_watch", "Watch a price.", {"properties": {"above": {
        "description": "e.g. 90001"}}})  # fmt: skip
    assert ToolIndex([watch]).search("90000") == []


def test_a_single_chinese_character_finds_a_tool_whose_words_use_it() -> None:
    # "读给我听": no bigram of it (读给, 给我, 我听) is a word of either tool; 读 is.
    index = ToolIndex([ToolDoc("x_read", "读取站内信"), ToolDoc("x_send", "发送站内信")])
    assert _names(index, "读给我听", 1) == ["x_read"]


def test_a_reading_tool_brings_its_sibling_that_reads_the_same_thing_right_after_it() -> None:
    tools = [
        ToolDoc("list_gadgets", "The gadgets you watch, with their alerts."),
        ToolDoc("get_gadget", "One by its id: state and last reading."),
        ToolDoc("send_alert", "Send a watch alert now."),
        ToolDoc("create_report", "Report daily."),
    ]
    # On words alone send_alert (watch, alert) outscores get_gadget (gadget only); the list
    # brings the get, which a client's model tells apart from it, right after itself.
    assert _names(ToolIndex(tools), "gadget alert watch") == [
        "list_gadgets", "get_gadget", "send_alert"
    ]  # fmt: skip


def test_a_context_clause_keeps_its_tool_in_the_top_but_not_ahead_of_the_whole_requests_best() -> (
    None
):
    # "checkout logs" alone is search_logs; the request as a whole is pause_task's.
    names = _names(ToolIndex(TOOLS), "checkout logs, pause the task until it is resumed", 2)
    assert names == ["pause_task", "search_logs"]


def test_a_single_quoted_value_is_left_out_but_an_apostrophe_is_not_a_quote() -> None:
    index = ToolIndex(
        [
            ToolDoc("reply_message", "Reply in an open discussion."),
            ToolDoc("search_logs", "Search logs: timeouts and errors."),
        ]
    )
    # 'timeouts' is what to post, not a word about which tool.
    [hit] = index.search("reply in the discussion with 'timeouts again'", 1)
    assert hit.tool.name == "reply_message" and "timeouts" not in hit.why
    assert "errors" in index.search("don't show today's errors", 1)[0].why


def test_the_value_after_a_colon_counts_less_than_the_words_that_ask_for_a_tool() -> None:
    index = ToolIndex(
        [
            ToolDoc("reply_message", "Reply in an open discussion."),
            ToolDoc("get_remediation", "A remediation: state, plan, attempts, the fix."),
            ToolDoc("get_stats", "Totals over your discussions: messages per participant."),
        ]
    )
    # 修复 (the value) alone would put get_remediation first; the reply is what is asked for.
    assert _names(index, "回复他：修复已经完成，修复报告在这里", 1) == ["reply_message"]
    # ...but it still counts: here the words after the colon say what is wanted.
    assert _names(index, "discussion totals: messages per participant?", 1) == ["get_stats"]
    # Not a colon of a time, a URL, or pasted YAML.
    assert ToolIndex._asked("remind me at 10:30") == ("remind me at 10:30", "")
    assert ToolIndex._asked("watch https://a.example") == ("watch https://a.example", "")
    assert ToolIndex._asked("apply:\nkind: Service") == ("apply:\nkind: Service", "")


def test_a_word_of_a_tools_name_outweighs_the_same_word_in_other_tools_arguments() -> None:
    notify = {"properties": {"notify": {"description": "inbox, email or wecom"}}}
    index = ToolIndex(
        [
            ToolDoc("read_inbox", "Notifications stored for you."),
            *(ToolDoc(f"create_watch_{n}", "Check a page on a schedule.", notify) for n in "abcd"),
        ]
    )
    # "check" is in every watch and "inbox" in their arguments; inbox names one tool only.
    assert _names(index, "Check my inbox.", 1) == ["read_inbox"]


def test_everyday_words_grouped_by_meaning_find_the_tool_of_that_meaning() -> None:
    index = ToolIndex(
        [
            ToolDoc("restart_workload", "Rolling-restart a Deployment."),
            ToolDoc("get_metric", "Datapoints of a Cloud Monitor metric."),
            ToolDoc("set_push_config", "Replace your push channels (and quiet hours)."),
            ToolDoc("list_events", "What happened, newest first."),
        ]
    )
    assert _names(index, "cycle the pods of checkout-api", 1) == ["restart_workload"]
    assert _names(index, "checkout-api 的 qps 多少", 1) == ["get_metric"]
    assert _names(index, "晚上十一点以后别推给我", 1) == ["set_push_config"]
    assert _names(index, "昨晚到现在有什么动静", 1) == ["list_events"]
    assert query_terms("pods")["workload"] == "pod→workload"
    # One English word matches by its stem, so a synonym must not stem to another word:
    # "paged" (an alarm went off) would read every "page" as an alarm.
    assert not any("→" in why for why in query_terms("monitor my news page").values())


def test_spoken_chinese_is_read_as_its_written_form() -> None:
    index = ToolIndex([ToolDoc("get_task", "看看任务怎么样了"), ToolDoc("x_other", "别的")])
    # 瞅瞅 → 看看, 咋 → 怎么: neither spoken form shares a character with any tool.
    assert _names(index, "瞅瞅") == ["get_task"]
    assert _names(index, "咋") == ["get_task"]


def test_a_word_the_word_map_knows_is_not_read_as_a_misspelt_tool_word() -> None:
    index = ToolIndex(
        [
            ToolDoc("scale_workload", "Scale a Deployment to a replica count."),
            ToolDoc("regenerate_briefing", "Prepare today's briefing again."),
        ]
    )
    # "stale" is one edit from "scale", but the map reads it (an outdated briefing).
    assert _names(index, "it is stale") == ["regenerate_briefing"]


def test_a_phrasal_verb_is_read_with_what_it_acts_on_in_between() -> None:
    index = ToolIndex(TOOLS)
    # The map has "shut up" (pause); people say "shut it up", "shut the watch up".
    assert query_terms("shut it up for now")["paus"].startswith("shut up→")
    assert _names(index, "shut it up for now", 1) == ["pause_task"]
    assert "paus" in query_terms("shut the watch up")
    # At most two words between, and never across a comma: these say nothing of pausing.
    assert "paus" not in query_terms("shut the door of the server room up")
    assert "paus" not in query_terms("shut the door, the alarm is up")


def test_a_question_prefers_the_tools_that_read_and_a_polite_command_is_no_question() -> None:
    index = ToolIndex(
        [
            ToolDoc("whoami", "Who you are: your role and rollback permission."),
            ToolDoc("grant_permission", "Give a user a role or a rollback permission."),
        ]
    )
    scores = functools.partial(_scores, index)
    said = scores("rollback permission for me")
    for question in ("do I have rollback permission", "rollback permission for me?"):
        asked = scores(question)
        assert asked["whoami"] == pytest.approx(said["whoami"] * QUESTION_READS)
        assert asked["grant_permission"] == pytest.approx(said["grant_permission"])
    assert scores("can you sort out rollback permission for me?") == scores(
        "can you sort out rollback permission for me"
    )
    assert _names(_ZH_TASKS, "有没有暂停的任务", 1) == ["list_tasks"]


def test_a_command_to_show_reads_as_a_question_does_however_politely_put() -> None:
    watches = [ToolDoc("list_tasks", "List your watches and their state.")]
    watches.append(ToolDoc("create_threshold_watch", "Create a threshold watch on a metric."))
    scores = functools.partial(_scores, ToolIndex(watches))
    said = scores("my threshold watches")
    for command in ("show me all my threshold watches", "can you list my threshold watches"):
        shown = scores(command)
        assert shown["list_tasks"] > said["list_tasks"] * (QUESTION_READS - 0.01)
        assert shown["create_threshold_watch"] == pytest.approx(said["create_threshold_watch"])
    # "看看" alone is no command to show: "先 dry run 看看" previews a write.
    for command in ("暂停的任务给我看看", "暂停的任务列个表"):
        assert _names(_ZH_TASKS, command, 1) == ["list_tasks"]
    assert _names(_ZH_TASKS, "暂停任务，先 dry run 看看", 1) == ["pause_task"]


def test_an_arguments_enum_values_are_words_of_its_tool() -> None:
    state = {"anyOf": [{"enum": ["active", "paused"], "type": "string"}, {"type": "null"}]}
    tools = [
        ToolDoc("list_tasks", "List your tasks.", {"properties": {"state": state}}),
        ToolDoc("resume_task", "Resume a task."),
        ToolDoc("delete_task", "Delete a task."),
    ]
    hits = ToolIndex(tools).search("which tasks are paused")
    assert hits[0].tool.name == "list_tasks" and "paused" in hits[0].why
    # Without the enum the word is nobody's.
    plain = [ToolDoc("list_tasks", "List your tasks.", {"properties": {"state": {}}}), *tools[1:]]
    assert all("paused" not in hit.why for hit in ToolIndex(plain).search("which tasks paused"))


def test_a_request_that_shares_no_word_with_any_tool_finds_nothing() -> None:
    assert ToolIndex(TOOLS).search("tell me a joke about penguins") == []


async def test_find_tools_over_mcp_ranks_the_servers_own_tools_and_schemas_only_if_asked(
    settings: Settings,
) -> None:
    server = build_server(settings, stdio_user="dev")

    async def count_sheep(flock: str) -> str:
        """Count the sheep of a flock (added after the server was built)."""
        return flock

    server.add_tool(count_sheep)
    async with Client(server, raise_exceptions=True) as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
        tool = listed["find_tools"]
        plain = await client.call_tool("find_tools", {"query": "把比特币的监控暂停一下"})
        schemas = await client.call_tool(
            "find_tools",
            {"query": "which node pools does cls-1 have?", "limit": 2, "with_schemas": True},
        )
        sheep = await client.call_tool("find_tools", {"query": "how many sheep?", "limit": 1})
        refused = await client.call_tool("find_tools", {"query": "pause", "limit": 21})

    assert tool.annotations is not None and tool.annotations.read_only_hint is True
    arguments = tool.input_schema["properties"]
    assert set(arguments) == {"query", "limit", "with_schemas"}
    assert all(argument.get("description") for argument in arguments.values())
    assert plain.is_error is False and plain.structured_content is not None
    found: list[dict[str, Any]] = plain.structured_content["tools"]
    assert len(found) == 5 and found[0]["name"] == "pause_task"
    assert (
        found[0]["description"]
        == "Pause a task: no scheduled checks until it is resumed (one asked for still runs)."
    )
    assert "暂停→pause" in found[0]["why"] and found[0]["input_schema"] is None
    assert "find_tools" not in {f["name"] for f in found}
    assert schemas.structured_content is not None
    first = schemas.structured_content["tools"][0]
    assert first["name"] == "list_node_pools"
    assert first["input_schema"] == listed["list_node_pools"].input_schema
    assert sheep.structured_content == {
        "tools": [
            {
                "name": "count_sheep",
                "description": "Count the sheep of a flock (added after the server was built).",
                "why": ["sheep"],
                "input_schema": None,
            }
        ]
    }
    assert refused.is_error is True and "limit" in refused.content[0].text  # type: ignore[union-attr]


def _case(number: int, lang: str, utterance: str, *tools: str) -> dict[str, Any]:
    return {
        "id": f"{number:03d}",
        "lang": lang,
        "utterance": utterance,
        "expected": [{"tool": t, "args": {}} for t in tools],
    }


def test_recall_counts_a_case_found_only_when_all_its_tools_are_in_the_top_k(
    tmp_path: Path,
) -> None:
    dataset = tmp_path / "cases.jsonl"
    cases = [
        _case(1, "en", "pause it", "pause_task"),
        _case(2, "zh", "暂停并恢复", "pause_task", "resume_task"),
        _case(3, "zh", "恢复", "resume_task"),
        _case(4, "en", "thanks!"),  # no tool expected: nothing to find, not counted
    ]
    dataset.write_text("\n".join(json.dumps(c, ensure_ascii=False) for c in cases) + "\n")
    ranking = {
        "pause it": ["pause_task"],
        "暂停并恢复": ["pause_task", "get_status", "x", "y", "z", "resume_task"],
        "恢复": ["get_status", "x", "resume_task"],
    }
    loaded = load(dataset)

    result = recall(loaded, lambda request: ranking[request])

    assert [c.id for c in loaded] == ["001", "002", "003"]
    assert [c.id for c in split(loaded, "odd")] == ["001", "003"]
    assert [c.id for c in split(loaded, "even")] == ["002"]
    assert (
        result["cases"] == 3 and result["ms_per_query"]["max"] >= result["ms_per_query"]["median"]
    )
    assert result["recall"] == {"@1": 1 / 3, "@3": 2 / 3, "@5": 2 / 3}
    assert result["by_language"]["zh"] == {"@1": 0.0, "@3": 0.5, "@5": 0.5}
    assert [m["id"] for m in result["misses"]] == ["002"]
    assert result["misses"][0]["ranked"] == ["pause_task", "get_status", "x", "y", "z"]


def test_recall_reports_each_batch_and_a_case_split_field_overrides_its_numbers_parity(
    tmp_path: Path,
) -> None:
    dataset = tmp_path / "cases.jsonl"
    rows = [
        _case(1, "en", "pause it", "pause_task"),
        {**_case(2, "zh", "恢复", "resume_task"), "id": "h002", "split": "heldout"},
        {**_case(3, "en", "resume", "resume_task"), "id": "h003", "split": "tune"},
    ]
    dataset.write_text("\n".join(json.dumps(c, ensure_ascii=False) for c in rows) + "\n")
    loaded = load(dataset)

    result = recall(split(loaded, "odd"), lambda request: ["resume_task"])

    assert [c.id for c in split(loaded, "odd")] == ["001", "h002"]
    assert [c.id for c in split(loaded, "even")] == ["h003"]
    assert [batch_of(c) for c in loaded] == ["base", "h", "h"]
    assert result["by_batch"] == {
        "base": {"cases": 1, "@1": 0.0, "@3": 0.0, "@5": 0.0},
        "h": {"cases": 1, "@1": 1.0, "@3": 1.0, "@5": 1.0},
    }
