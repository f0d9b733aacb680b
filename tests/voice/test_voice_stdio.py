"""`ambient mcp --profile voice` over stdio, and the speakable form of its answers."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from mcp import Client, StdioServerParameters
from typer.testing import CliRunner

from ambient.settings import Settings
from ambient.speech import MAX_SPOKEN, speakable
from mcp_server.voice_sentences import NO_ACCOUNT, UNKNOWN_TOOL_READING
from tests.voice.support import UNREACHED, assert_speakable, fix_summary


def _tools_named(instructions: str | None) -> set[str]:
    """The tool names a server's instructions tell its model to call."""
    routes = [line for line in (instructions or "").splitlines() if line.startswith("- ")]
    return {name for line in routes for name in re.findall(r"(?:: |, )([a-z_]+)(?=[,;]|$)", line)}


async def test_the_voice_profile_is_served_over_stdio_as_the_given_user(tmp_path: Path) -> None:
    from ambient.cli import app as cli

    env = {k: v for k, v in os.environ.items() if not k.startswith("AMBIENT_")}
    env["AMBIENT_DATA_DIR"] = str(tmp_path)
    # No Temporal server: no task runs, and "no errors" is said with that (the default address
    # reached a `make run` on this machine, and its tasks were read).
    env["AMBIENT_TEMPORAL_ADDRESS"] = "127.0.0.1:1"
    made = await asyncio.to_thread(CliRunner().invoke, cli, ["user", "create", "mei"], env=env)
    assert made.exit_code == 0, made.output
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "ambient.cli", "mcp", "--user", "mei", "--profile", "voice"],
        env=env,
    )
    async with Client(params) as client:
        tools = [t.name for t in (await client.list_tools()).tools]
        result = await client.call_tool("recent_errors", {"hours": 6})
        told = _tools_named(client.instructions)
    assert told and told <= set(tools), told - set(tools)
    assert len(tools) <= 10 and "greet" in tools and "list_tasks" not in tools
    assert not result.is_error
    text = getattr(result.content[0], "text", "")
    assert text == f"最近 6 小时没有记录到错误{UNREACHED}"
    # Read-only is read-only in the voice profile too: it served approve, pause and resume.
    params.args.append("--read-only")
    async with Client(params) as client:
        listed = (await client.list_tools()).tools
        refused = await client.call_tool("approve_remediation", {})
        told = _tools_named(client.instructions)
    # Its instructions name only the tools it serves: they routed greetings, approvals and
    # pauses to tools the model was not given.
    assert told == {t.name for t in listed}, told
    assert listed and all(t.annotations and t.annotations.read_only_hint for t in listed)
    assert {t.name for t in listed} == {
        "what_needs_me",
        "task_status",
        "cluster_health",
        "recent_errors",
    }
    # The voice's answer to a tool it does not have (nothing approved), offering only reads.
    assert getattr(refused.content[0], "text", "") == UNKNOWN_TOOL_READING


def test_an_unknown_profile_is_refused_by_name() -> None:
    from ambient.cli import app as cli

    refused = CliRunner().invoke(cli, ["mcp", "--user", "mei", "--profile", "desktop"])
    assert refused.exit_code == 2 and "--profile" in refused.output
    # Options the voice profile would ignore are refused, not ignored.
    for extra in (["--area", "tasks"], ["--server", "bus"]):
        mixed = CliRunner().invoke(cli, ["mcp", "--user", "mei", "--profile", "voice", *extra])
        assert mixed.exit_code == 2 and "do not apply" in mixed.output, mixed.output
    # An unknown tool area is named like the others, not a traceback.
    unknown = CliRunner().invoke(cli, ["mcp", "--user", "mei", "--area", "bogus"])
    assert unknown.exit_code == 2 and "--area" in unknown.output, unknown.output
    assert "bogus" in unknown.output and "tasks" in unknown.output


def test_markdown_ids_and_urls_are_taken_out_and_long_text_ends_at_a_sentence() -> None:
    raw = (
        "## 今日简报\n**remediation/abc123def456** on cls-9x8y7z6w: see "
        "https://example.test/share/tok. " + "今天有三个服务出现错误，都已自动处理。" * 30
    )
    spoken = speakable(raw)
    assert_speakable(spoken)
    assert len(spoken) <= MAX_SPOKEN and spoken.endswith("。")
    assert spoken.startswith("今日简报")
    # An id said in quotes leaves no empty quotes; quoted words stay.
    assert speakable("no task 'web-monitor/a/shop': gone") == "no task: gone"
    assert speakable("他说 “暂停” 'it'") == "他说 “暂停” 'it'"


def test_emoji_links_list_marks_and_bare_web_addresses_are_not_read_aloud() -> None:
    """A model-written briefing (greet speaks its first sentences) or a name can hold what a TTS
    reads out as symbols: emoji were kept ("✅ 一切正常 🔥" read as "check mark … fire"), a
    Markdown link left its "(" behind, list dashes stayed between the items and a bare
    www. address was spoken letter by letter."""
    assert speakable("✅ 一切正常 🔥🔥 checkout 出错了 ⚠️。👍🏻") == "一切正常 checkout 出错了。"
    assert speakable("详情见 [看板](https://x.test/b) 。") == "详情见 看板。"
    assert speakable("- 第一条\n- 第二条\n* 第三条") == "第一条 第二条 第三条"
    assert speakable("www.example.test 挂了。") == "挂了。"
    # what a TTS reads well stays: units, arrows of numbers, a minus
    assert speakable("温度 38℃，-5 度。") == "温度 38℃，-5 度。"
    for said in ("✅ 一切正常 🔥", "[看板](https://x.test/b)", "- a\n- b", "见 www.x.test"):
        assert_speakable(speakable(said))


def test_clock_play_and_info_emoji_and_shape_bullets_are_not_read_aloud() -> None:
    """Emoji outside the pictograph blocks were kept: a reminder's "⏰ 站会" was spoken as
    "alarm clock 站会", "▶️" as "play button", "ℹ️" as "information", "●" as "black circle"."""
    assert speakable("⏰ 站会提醒 ⏳ 还有 5 分钟。") == "站会提醒 还有 5 分钟。"
    assert speakable("▶️ Deploy started ⌛ ⌚ ⏱ ⏲ ℹ️ ‼️ done.") == "Deploy started done."
    assert speakable("● checkout 正常 ■ payments ▲ 上升。") == "checkout 正常 payments 上升。"
    # what a TTS reads well stays: units, arrows, degrees
    assert speakable("温度 38℃，CPU 60% → 90%，风向 30°。") == "温度 38℃，CPU 60% → 90%，风向 30°。"


def test_marks_nobody_hears_are_not_sent_to_the_tts() -> None:
    """A task named with a right-to-left override (or a zero-width space, a BOM) was said
    back with it: "没找到叫“\u202e 名字”的任务"."""
    assert speakable("没找到叫“\u202e💥 名字\u200b”的任务。") == "没找到叫“ 名字”的任务。"
    assert speakable("\ufeffa\u2066b\u2069\u200ec\u200f") == "abc"


def test_a_numbered_list_is_not_cut_at_its_numbers() -> None:
    """The three-sentence cut counted each "1." of a numbered list as a sentence: a briefing
    written "要点：1. …；2. …；3. …。" was spoken "早上好！昨天的要点：1. checkout 有 12 个错误；2."
    and stopped on the number."""
    said = (
        "早上好！昨天的要点：1. checkout 有 12 个错误；2. payments 告警未恢复；"
        "3. 自动修复了 2 个问题。"
    )
    assert speakable(said) == said
    listed = "Good morning! Yesterday: 1. checkout errors rose; 2. payments alarm open. Bye. More."
    assert (
        speakable(listed)
        == "Good morning! Yesterday: 1. checkout errors rose; 2. payments alarm open. Bye."
    )
    lines = (
        "早上好！\n1. checkout 有 12 个错误\n2. payments 告警未恢复\n3. 自动修复了 2 个问题。再见。"
    )
    assert speakable(lines) == (
        "早上好！ 1. checkout 有 12 个错误 2. payments 告警未恢复 3. 自动修复了 2 个问题。再见。"
    )


def test_a_sentence_ending_in_a_number_is_a_sentence_not_a_list_item() -> None:
    """Any one- or two-digit number before a full stop was taken for a list item's: "CPU on
    web-1 rose to 42." or "Peak CPU: 93." ended no sentence, and the three-sentence cut ran
    on into a fourth."""
    said = "CPU on web-1 rose to 42. Errors went up to 17. Memory fell to 30. Disk is fine."
    assert speakable(said) == "CPU on web-1 rose to 42. Errors went up to 17. Memory fell to 30."
    marked = "Peak CPU: 93. Errors: 17. Memory: 30. Disk is fine."
    assert speakable(marked) == "Peak CPU: 93. Errors: 17. Memory: 30."
    listed = "Two things. 1. checkout errors rose. 2. payments alarm open. Bye."
    assert speakable(listed) == "Two things. 1. checkout errors rose. 2. payments alarm open."
    # A 1 after a colon, a number after an earlier n-1 or a version's last digit ends a
    # sentence too: only a run 1, 2, … of numbers each opening its segment numbers a list.
    for said, kept in (
        ("Firing alarms: 1. Pending fixes: 0. CPU is fine. Disk is fine.", 48),
        ("告警数：1. 待审批：0. CPU正常. 磁盘正常.", 20),
        ("Errors rose to 12. Warnings to 13. CPU is fine. Disk is fine.", 47),
        ("Replicas scaled to 3. Nodes went to 4. CPU is fine. Disk is fine.", 51),
        ("Upgraded to 1.9. Pods at 10. CPU is fine. Disk is fine.", 41),
        ("Checks: 1. Alerts: 2. Disk: 3. Memory: 4.", 30),
    ):
        assert speakable(said) == said[:kept], said
    # A one-item list's "1." is never where the cut lands: it stopped there, the item unsaid
    # ("…要点：1."), and one opening a line counts as no sentence end ("再见。" was cut).
    for said, kept in (
        ("早上好！昨天有一个问题。要点：1. checkout 有 12 个错误。再见。", 36),
        ("Good morning. One thing. Yesterday: 1. checkout errors rose. Bye.", 60),
    ):
        assert speakable(said) == said[:kept], said
    lines = "早上好！要点：\n1. checkout 有 12 个错误。\n再见。"
    assert speakable(lines) == lines.replace("\n", " ")


def test_fractions_abbreviations_and_long_numbers_are_said_not_taken_out_as_ids() -> None:
    """The id rules took out what a listener needs: "3/5" and "I/O" as a path id, an 8-digit
    number (an order or alarm id, a count) as a hex id: "3/5 个副本就绪" was said "个副本就绪"."""
    assert speakable("3/5 个副本就绪。") == "3/5 个副本就绪。"
    assert speakable("Ready: 3/5.") == "Ready: 3/5."
    assert speakable("I/O 等待过高，TCP/IP 正常。") == "I/O 等待过高，TCP/IP 正常。"
    assert speakable("订单 20261126 告警，共 12345678 次请求。") == (
        "订单 20261126 告警，共 12345678 次请求。"
    )
    # ids still go: a task, a remediation, a service path, a bare hex id
    said = "重启 web-monitor/mei/shop 和 remediation/0123456789abcdef 和 cls-ab12/default/api。"
    assert speakable(said) == "重启 和 和。"
    assert speakable("编号 3f9a2b1c7d 好。") == "编号 好。"
    # a word and a number is a name someone chose (a task, a Deployment), said as written
    assert speakable("编号 deadbeef12 好，cafe2024 也好。") == "编号 deadbeef12 好，cafe2024 也好。"
    for text in ("3/5 个副本就绪。", "I/O 等待过高。", "订单 20261126 告警。"):
        assert_speakable(speakable(text))


def test_an_id_written_with_dashes_is_taken_out_whole_and_a_pod_is_said_by_its_workload() -> None:
    """The hex rule took out only the dash-free runs of an id: a UUID left "-7d4e-4a1b-9c0d-"
    to be read out sign by sign, and a pod "checkout-api--x2k4p" (its ReplicaSet hash gone,
    its random suffix said letter by letter)."""
    assert speakable("请求 3f9a1c2b-7d4e-4a1b-9c0d-1234567890ab 失败。") == "请求 失败。"
    assert speakable("Run 123E4567-E89B-12D3-A456-426614174000 failed.") == "Run failed."
    assert speakable("pod checkout-api-7d9f8b6c5d-x2k4p 重启了 3 次。") == (
        "pod checkout-api 重启了 3 次。"
    )
    assert speakable("Pod payments-worker-5c8d7b9f64-q7zxv was OOM killed.") == (
        "Pod payments-worker was OOM killed."
    )
    # names that only look like one stay
    assert speakable("order-service-backlog-worker 正常，redis-0 正常。") == (
        "order-service-backlog-worker 正常，redis-0 正常。"
    )


def test_an_id_written_against_chinese_words_goes_and_the_words_stay() -> None:
    """Chinese is written without spaces, and the id rules read Chinese as part of a word: a
    path id took the clause it sat in ("最多的错误来自checkout/api服务，共 12 次" was said
    "，共 12 次"), while a cloud, hex or UUID id was read out sign by sign, and a pod's hash
    went without its suffix ("checkout-api--x2k4p")."""
    assert (
        speakable("最多的错误来自checkout/api服务，共 12 次。") == "最多的错误来自服务，共 12 次。"
    )
    assert speakable("实例ins-abc12345的CPU超过90%。") == "实例的CPU超过90%。"
    assert speakable("请求deadbeef1234失败，订单3f9a1c2b-7d4e-4a1b-9c0d-1234567890ab重试。") == (
        "请求失败，订单重试。"
    )
    assert speakable("pod checkout-api-7d9f8b6c5d-x2k4p重启了。") == "pod checkout-api重启了。"
    # the key an id was written under goes with it, not the words before it
    assert speakable("请求失败trace_id=ab12cd34ef56，已重试。") == "请求失败，已重试。"
    assert speakable("I/O等待过高，TCP/IP正常。") == "I/O等待过高，TCP/IP正常。"


def test_the_key_of_an_id_taken_out_goes_with_it() -> None:
    """An id written key=value lost its value and kept its key: "trace_id=abcdef0123456789"
    was spoken "trace id equals"."""
    said = (
        "请求失败 trace_id=abcdef0123456789，重试 request-id=3f9a1c2b-7d4e-4a1b-9c0d-1234567890ab。"
    )
    assert speakable(said) == "请求失败，重试。"
    english = speakable("Failed with trace_id=abcdef0123456789 at 05:00.", english=True)
    assert english == "Failed with at 5:00."  # the clock in words too
    # a key whose value is said stays
    assert speakable("重试 retries=3 次。") == "重试 retries=3 次。"


def test_the_equals_sign_of_a_chinese_key_goes_with_its_id() -> None:
    """The key rule read ASCII words only: "实例=ins-abc12345，CPU 超过 90%。" was spoken
    "实例=，CPU 超过 90%。", read "实例等于"."""
    assert speakable("实例=ins-abc12345，CPU 超过 90%。") == "实例，CPU 超过 90%。"
    assert speakable("节点 实例=ins-abc12345 重启了") == "节点 实例 重启了"
    assert speakable("请求ID=ab12cd34ef56，已重试") == "请求，已重试"
    assert speakable("阈值 x = 5") == "阈值 x = 5"  # an equation is said


def test_an_id_with_an_accented_letter_goes_whole_not_cut_at_the_letter() -> None:
    """The id rules read ASCII words, and cut a word at its first other letter: "Fehler in
    München/abc" was spoken "Fehler in Mü", "Größe=ab12cd34ef56" "Grö"."""
    assert speakable("Fehler in München/abc, erneut.") == "Fehler in, erneut."
    assert speakable("错误来自München/abc服务。") == "错误来自服务。"
    assert speakable("open /home/jörg/app.log: no such file") == "open: no such file"
    assert speakable("Fehler Größe=ab12cd34ef56 erneut.") == "Fehler erneut."


def test_a_rate_and_a_protocol_version_are_said_not_taken_out_as_ids() -> None:
    """A unit per second and HTTP/1.1 were taken out as paths: "写入速率 120 KB/s" was spoken
    "写入速率 120", "HTTP/1.1 500" "500"."""
    for said in ["写入速率 120 KB/s。", "throughput 30 MB/s, 5 req/s, 1.5GB/s", "HTTP/1.1 500"]:
        assert speakable(said) == said
    assert speakable("GET /api/orders HTTP/2 503") == "GET HTTP/2 503"


def test_a_rate_of_a_counted_word_is_said_not_taken_out_as_an_id() -> None:
    """The rate rule knew only units of one to three letters: "写入 5000 rows/s" was spoken
    "写入 5000", "ingest 2k events/s" "ingest 2k", "带宽 10 Mbit/s" "带宽 10"."""
    for said in [
        "写入 5000 rows/s。",
        "throughput 800 msgs/s, ingest 2k events/s",
        "带宽 10 Mbit/s，峰值 1.5k requests/min。",
        "重试 30 retries/h，告警 12 alerts/day，120 frames/sec",
    ]:
        assert speakable(said) == said
    # a path or id after a number still goes
    assert speakable("部署 3 team/app 失败。") == "部署 3 失败。"
    assert speakable("拉取 2 images/sync 失败。") == "拉取 2 失败。"


def test_a_number_per_second_is_said_not_taken_out_as_an_id() -> None:
    """A bare number per unit of time was taken out as a path: "QPS 800/s" was spoken "QPS",
    "错误率 5/min" "错误率", "rate 10/sec" "rate"."""
    for said in ["QPS 800/s。", "错误率 5/min，峰值 1.5/s", "rate 10/sec, 3/h"]:
        assert speakable(said) == said
    # a fraction or a date is said as before, and an id of digits and letters still goes
    assert speakable("完成 3/5，截止 11/26。") == "完成 3/5，截止 11/26。"
    assert speakable("部署 7/shop 失败。") == "部署 失败。"


def test_a_rate_counted_in_wan_is_said_not_taken_out_as_an_id() -> None:
    """A count written with 万 or 亿 lost its counted word: "峰值 3.2 万 rows/s" was spoken
    "峰值 3.2 万", "写入 2亿 events/day" "写入 2亿"."""
    for said in ["峰值 3.2 万 rows/s。", "写入 2亿 events/day，1千 msgs/s"]:
        assert speakable(said) == said
    assert speakable("共 3 万 team/app 失败。") == "共 3 万 失败。"


def test_the_key_of_a_quoted_id_goes_with_it() -> None:
    """A log line's key="value" kept its key once the id was out: the line below was spoken
    "failed trace id=, retried", read "trace id equals"."""
    said = 'failed trace_id="deadbeef12345678", retried'
    assert speakable(said) == "failed, retried"
    assert speakable("实例='ins-abc12345' 重启了。") == "实例 重启了。"


def test_an_image_or_address_goes_with_its_tag_or_port() -> None:
    """An image's tag stayed once its path was out: "镜像 registry.example.com/team/app:v2
    拉取失败" was spoken "镜像:v2 拉取失败"."""
    assert speakable("镜像 registry.example.com/team/app:v2 拉取失败。") == "镜像 拉取失败。"
    assert speakable('Failed to pull image "team/app:1.25".') == "Failed to pull image."
    assert speakable("open /var/log/app.log: no such file") == "open: no such file"


def test_a_log_templates_variable_part_is_said_in_the_answers_language() -> None:
    """The greeting speaks the top log template, whose variable parts are <*>: an English
    user heard "The most frequent error was timeout after 某值 ms, 12 times." """
    template = "The most frequent error was timeout after <*> ms on <*>, 12 times."
    assert speakable(template, english=True) == (
        "The most frequent error was timeout after some ms on something, 12 times."
    )
    # An English line in a Chinese answer keeps English words ("after 某值 ms" was heard).
    assert speakable("最多的错误是：timeout after <*> ms，共 12 次。") == (
        "最多的错误是：timeout after some ms，共 12 次。"
    )


def test_a_path_in_a_log_template_goes_whole_not_leaving_its_slash_or_half_a_value() -> None:
    """The top error of a web service names its request path: "GET /api/orders/<*> returned
    500" was spoken "GET / value returned 500" (the path taken out as an id from its first
    word, its slash left, and "some value" cut in two), "open /var/log/app.log: no such file"
    "open /: no such file"."""
    said = "The most frequent error was GET /api/orders/<*> returned 500, 12 times."
    assert (
        speakable(said, english=True) == "The most frequent error was GET returned 500, 12 times."
    )
    assert speakable("最多的错误是：open /var/log/app.log: no such file，共 3 次。") == (
        "最多的错误是：open: no such file，共 3 次。"
    )
    assert (
        speakable("3/5 个副本就绪，I/O 正常，/healthz 超时。")
        == "3/5 个副本就绪，I/O 正常，/healthz 超时。"
    )


async def test_a_session_user_nobody_has_is_said_as_such_not_as_an_unknown_voice(
    tmp_path: Path,
) -> None:
    """xiaozhi-server's settings file names the user (`--user`): one misspelt, or removed since,
    answered every question with "我还不认识你的声音…请让主人在设置里登记你的声纹", sending the
    owner to register voiceprints when the configuration names nobody."""
    from ambient.cli import app as cli

    env = {k: v for k, v in os.environ.items() if not k.startswith("AMBIENT_")}
    env["AMBIENT_DATA_DIR"] = str(tmp_path)
    made = await asyncio.to_thread(CliRunner().invoke, cli, ["user", "create", "mei"], env=env)
    assert made.exit_code == 0, made.output
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "ambient.cli", "mcp", "--user", "meii", "--profile", "voice"],
        env=env,
    )
    async with Client(params) as client:
        result = await client.call_tool("recent_errors", {})
    text = getattr(result.content[0], "text", "")
    assert_speakable(text)
    assert text == NO_ACCOUNT and "声纹" not in text


def test_a_time_span_is_said_in_words_as_the_greeting_window_is() -> None:
    """A burst spoken in the briefing kept "09:00–09:05": a TTS reads the en dash oddly or
    skips it. It is said as the greeting window is ("9点到9点5分", "9:00 to 9:05")."""
    from ambient.briefing.greeting_answers import GreetOutcome, greeting_text
    from ambient.speech import cleaned

    burst = "短时突增（错误）db timeout：09:00–09:05，60 行"
    assert cleaned(burst) == "短时突增（错误）db timeout：9点到9点5分，60 行"
    english = "burst [ERROR] db timeout: 09:00–09:05, 60 lines"
    assert cleaned(english, english=True) == "burst ERROR db timeout: 9:00 to 9:05, 60 lines"
    window = greeting_text(GreetOutcome.OUTSIDE_WINDOW, "zh", window="06:00–10:30")
    assert "在6点到10点30分之间" in window, window


def test_the_time_a_briefing_was_given_is_said_in_words() -> None:
    """ "Already given" said the clock as written ("在 08:05 播报过了")."""
    from ambient.briefing.greeting_answers import GreetOutcome, greeting_text

    zh = greeting_text(GreetOutcome.ALREADY_GIVEN, "zh", hhmm="08:05")
    assert zh == "你好！今天的简报已经在8点5分播报过了，不再重复。", zh
    en = greeting_text(GreetOutcome.ALREADY_GIVEN, "en", hhmm="08:05")
    assert en == "Hello! I gave today's briefing at 8:05; I won't repeat it.", en


def test_a_comparison_in_an_alarms_name_is_said_not_dropped() -> None:
    """An open alarm "checkout CPU > 90%" was spoken "checkout CPU 90%": the sign was taken
    out as Markdown, and with it what the alarm is about."""
    from ambient.speech import cleaned

    assert cleaned("包括 checkout CPU > 90%。") == "包括 checkout CPU 超过 90%。"
    assert cleaned("包括 latency<=200ms。") == "包括 latency 不超过 200ms。"
    assert cleaned("open: checkout CPU >90%.", english=True) == "open: checkout CPU above 90%."
    assert cleaned("> quoted", english=True) == "quoted"


def test_an_arrow_is_said_as_to_in_the_answers_language() -> None:
    """ "a -> b" lost its '>' as Markdown and was spoken "a - b": a scale from 2 to 4 pods
    sounded like a subtraction."""
    from ambient.speech import cleaned

    assert cleaned("checkout 副本 2 -> 4。") == "checkout 副本 2到4。"
    assert cleaned("replicas 2 -> 4, v1-->v2.", english=True) == "replicas 2 to 4, v1 to v2."


def test_a_time_span_written_with_a_hyphen_or_spaces_is_said_in_words() -> None:
    """Only "09:00–09:05" (an en dash, no spaces) was put in words: "09:00-09:05" and
    "09:00 - 09:05", as logs and models write a span, were read as written."""
    from ambient.speech import cleaned

    for span in ("09:00-09:05", "09:00 - 09:05", "09:00 ~ 09:05", "09:00—09:05"):
        assert cleaned(f"突增 {span}。") == "突增 9点到9点5分。", span
        assert cleaned(f"burst {span}.", english=True) == "burst 9:00 to 9:05.", span


def test_a_clock_time_alone_is_said_in_words_and_a_timestamp_or_score_is_not_a_time() -> None:
    """Only a span's times were put in words: "提醒（每天 08:30）", "14:30之后再检查" and a
    time in a briefing's sentence were read as written, a ratio to a TTS."""
    from ambient.speech import cleaned

    assert cleaned("提醒（每天 08:30）、14:30之后") == "提醒（每天 8点30分）、14点30分之后"
    assert cleaned("reminder daily at 08:30.", english=True) == "reminder daily at 8:30."
    for kept in ("2026-11-30T08:30:00Z", "比分 3:2", "12:00:01", "24:00", "v1.08:30"):
        assert cleaned(kept) == kept, kept


def test_a_zones_offset_and_a_ratio_or_score_named_so_are_no_clock_times() -> None:
    """The clock rule said an offset and a ratio as times: "2026-11-30T08:30:00+8点",
    "UTC+8点", "ratio 1点10分", "比分 12点30分"."""
    from ambient.speech import cleaned

    for kept in (
        "2026-11-30T08:30:00+08:00",
        "UTC+08:00",
        "时区 GMT-05:00",
        "ratio 1:10",
        "score 12:30",
        "the score was 12:30",
        "比分 12:30",
        "比例为 1:10",
        "12:30 的比分",
        "odds 3:10",
    ):
        assert cleaned(kept) == kept, kept
        assert cleaned(kept, english=True) == kept, kept
    # A time in a sentence about something else, or next to a zone's name, is a time.
    for said, words in [
        ("每天 08:30 UTC", "每天 8点30分 UTC"),
        ("比 12:30 早", "比 12点30分 早"),
        ("08:30 开会，比例不变", "8点30分 开会，比例不变"),
        ("09:00-09:30", "9点到9点30分"),
    ]:
        assert cleaned(said) == words, said


def test_a_rate_word_without_a_number_and_a_rate_per_thing_are_said_whole() -> None:
    """ "throughput in rows/s rose" was spoken "throughput in rose" (a rate word needed a number
    before it) and "10 req/s/pod" was spoken "10" (the per-pod part made it a path)."""
    for said in ("throughput in rows/s rose.", "单位是 req/s。", "限流 10 req/s/pod。"):
        assert speakable(said) == said
    assert speakable("峰值 800/s/pod。") == "峰值 800/s/pod。"
    # ids and paths still go
    assert speakable("部署 3 team/app 失败。") == "部署 3 失败。"
    assert speakable("GET /api/orders HTTP/2 503") == "GET HTTP/2 503"


def test_a_read_only_voice_server_says_where_to_approve_not_approve_the_first_one() -> None:
    """Its what_needs_me said "可以说“批准第一个”" to a model without the approve tool."""
    from mcp_server.voice import build_voice_server
    from mcp_server.voice_answer import approvals_here
    from mcp_server.voice_needs import needs_answer

    fix = fix_summary(1, "checkout", user="mei")
    assert "批准第一个" in needs_answer([fix], [], False, [])
    kept = approvals_here.set(False)
    try:
        said = needs_answer([fix], [], False, [])
    finally:
        approvals_here.reset(kept)
    assert "批准第一个" not in said and "审批请在网页上做" in said, said
    # The read-only server is the one that says so: it has no approve tool.
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    served = build_voice_server(settings, read_only=True)._tool_manager
    assert served.get_tool("approve_remediation") is None
