"""Spoken references resolve the same way every time, and ask back when they do not fit one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ambient.remediation.views import RemediationSummary
from ambient.speech import speakable
from ambient.watches.configs import TaskKind, TaskState
from ambient.watches.listing import TaskSummary
from mcp_server import voice_fix_names
from mcp_server.voice_clock import clock_as_labelled
from mcp_server.voice_fix_names import cluster_names, clusters_alike, pick_remediation, run_about
from mcp_server.voice_numbers import hours_said
from mcp_server.voice_references import (
    APPROVE_VERBS,
    PAUSE_VERBS,
    REFUSE_VERBS,
    RESUME_VERBS,
    names_a_place,
    without_verb,
)
from mcp_server.voice_summaries import BRIEFING_NAMES
from mcp_server.voice_task_labels import task_label
from mcp_server.voice_task_names import pick_task
from tests.voice.support import assert_speakable

START = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def _run(n: int, workload: str, alert_type: str = "error_rate") -> RemediationSummary:
    return RemediationSummary(
        id=n,
        remediation_id=f"remediation/{n:040x}",
        run_key=f"remediation/{n:040x}@run",
        user="ops",
        service=f"cls-test01/prod/{workload}",
        alert_type=alert_type,
        mode="dry_run",
        state="waiting_approval",
        score=80,
        budget=4,
        attempts=0,
        resolved_rung=None,
        started_at=START + timedelta(minutes=n),
        finished_at=None,
    )


RUNS = [_run(1, "checkout"), _run(2, "checkout-api", "latency"), _run(3, "payments")]


def test_ordinals_in_chinese_english_and_digits_pick_by_waiting_order() -> None:
    for said, workload in [
        ("第一个", "checkout"),
        ("第 2 个", "checkout-api"),
        ("第三个", "payments"),
        ("the second one", "checkout-api"),
        ("3", "payments"),
        ("最后一个", "payments"),
        ("last", "payments"),
    ]:
        run, question = pick_remediation(RUNS, said)
        assert run is not None and run.service.endswith(f"/{workload}"), (said, question)


def test_a_number_said_as_the_english_question_says_it_picks_that_run() -> None:
    # The English question names a fix "number 2" and asks to "say which number": "number 2"
    # was answered "I found no “number 2”", and so were "2nd" and "#3".
    runs = [*RUNS, _run(4, "search")]
    for said, workload in [
        ("number 2", "checkout-api"),
        ("Number two", "checkout-api"),
        ("no. 3", "payments"),
        ("#1", "checkout"),
        ("2nd", "checkout-api"),
        ("the 3rd one", "payments"),
        ("the fourth one", "search"),
        ("number 4, the search one", "search"),
    ]:
        run, question = pick_remediation(runs, said, english=True)
        assert run is not None and run.service.endswith(f"/{workload}"), (said, question)
    run, question = pick_remediation(runs, "number 5", english=True)
    assert run is None and question == "Only 4 fixes waiting for your approval: say which number."


def test_a_workload_named_with_a_number_or_an_ordinal_is_picked_by_its_name() -> None:
    """ "approve payment gateway number 2" asked about the second fix waiting (gateway number 1),
    and "first responder" about the first: a whole name is the run it names, not a place."""
    runs = [
        _run(1, "pay-gateway-number-1"),
        _run(2, "first-responder"),
        _run(3, "pay-gateway-number-2"),
    ]
    for said, workload in [
        ("pay gateway number 2", "pay-gateway-number-2"),
        ("pay-gateway-number-1", "pay-gateway-number-1"),
        ("first responder", "first-responder"),
        ("批准first responder的修复", "first-responder"),
        ("number 2", "first-responder"),  # a place still, as the English question says it
        ("第二个", "first-responder"),
        ("第三个", "pay-gateway-number-2"),
        # Part of a name and a number is that name, not the second place.
        ("gateway number 2", "pay-gateway-number-2"),
        ("批准 gateway number 2", "pay-gateway-number-2"),
    ]:
        run, question = pick_remediation(runs, said, english=said.isascii())
        assert run is not None and run.service.endswith(f"/{workload}"), (said, question)


def test_an_ordinal_counted_from_the_end_picks_from_the_end() -> None:
    # "倒数第二个" was read as "第二个": the second of four, named back as the one to approve.
    runs = [*RUNS, _run(4, "search")]
    for said, workload in [
        ("倒数第二个", "payments"),
        ("倒数第一个", "search"),
        ("second to last", "payments"),
        ("the second last one", "payments"),
    ]:
        run, question = pick_remediation(runs, said)
        assert run is not None and run.service.endswith(f"/{workload}"), (said, question)
    run, question = pick_remediation(runs, "倒数第五个")
    assert run is None and "只有 4 个" in question


def test_a_name_that_fits_several_or_none_asks_back_and_picks_nothing() -> None:
    run, question = pick_remediation(RUNS, "checkout")
    assert run is None and "有 2 个符合" in question and "第一个" in question
    assert_speakable(question)
    run, question = pick_remediation(RUNS, "redis")
    assert run is None and "没找到" in question
    assert_speakable(question)
    run, question = pick_remediation(RUNS, "第五个")
    assert run is None and "只有 3 个" in question
    run, question = pick_remediation([], "第一个")
    assert run is None and "没有等你审批" in question


def test_a_unique_part_of_a_name_or_the_alert_type_is_enough() -> None:
    run, _ = pick_remediation(RUNS, "payments")
    assert run is not None and run.service.endswith("/payments")
    run, _ = pick_remediation(RUNS, "latency")
    assert run is not None and run.service.endswith("/checkout-api")


def _task(task_id: str, summary: str | None = None) -> TaskSummary:
    return TaskSummary(
        task_id=task_id, kind=TaskKind.SCHEDULE, state=TaskState.ACTIVE, summary=summary
    )


@pytest.mark.parametrize("said", ["backup二", "backup 二", "backup 二号", "Backup Two", "backup-2"])
def test_a_number_said_in_words_after_a_name_is_its_digits(said: str) -> None:
    """ASR writes "backup-2" said in Chinese as "backup 二": not found, and asked back
    "backup 1、backup 2、backup 3?", the user said it again and heard the same question."""
    tasks = [_task(f"web-monitor/ops/backup-{n}") for n in (1, 2, 12)]
    task, question, _ = pick_task(tasks, said)
    assert task is not None and task.task_id == "web-monitor/ops/backup-2", question
    for twelve in ("backup 十二", "backup 十二号"):  # whole, not "backup 10" and a 二
        task, _, _ = pick_task(tasks, twelve)
        assert task is not None and task.task_id == "web-monitor/ops/backup-12", twelve
    # A name that holds the numeral is found as it is ("一号机房"), a place as a place.
    rooms = [_task("web-monitor/ops/一号机房"), _task("web-monitor/ops/1号机房-备用")]
    task, _, _ = pick_task(rooms, "一号机房")
    assert task is not None and task.task_id == "web-monitor/ops/一号机房"
    task, _, _ = pick_task(tasks, "第二个")
    assert task is None


def test_tasks_are_named_as_spoken_and_hashed_names_by_their_summary() -> None:
    tasks = [
        _task("reminder/ops/standup"),
        _task("reminder/ops/standup-notes"),
        _task("web-monitor/ops/0123456789ab", summary="watch the shop home page"),
    ]
    task, _, _ = pick_task(tasks, "Standup")  # the exact name wins over the longer one
    assert task is not None and task.task_id == "reminder/ops/standup"
    task, _, _ = pick_task(tasks, "standup notes")
    assert task is not None and task.task_id == "reminder/ops/standup-notes"
    task, _, _ = pick_task(tasks, "shop home")
    assert task is not None and task.task_id.endswith("0123456789ab")
    task, question, _ = pick_task(tasks, "backup")
    assert task is None and "watch the shop home page" in question
    assert_speakable(question)


def test_the_briefing_is_found_by_the_names_people_call_it() -> None:
    """The greet tool and the wake's context call it "今日简报"; "今日简报", "早报" and the like
    were "没找到叫“今日简报”的任务", so pausing the briefing by voice took a second try."""
    briefing = _task(
        "daily-briefing/ann",
        summary="Daily briefing for ann: prepare 05:00, greeting window 06:00–10:00 "
        "(Asia/Shanghai)",
    )
    tasks = [briefing, _task("reminder/ann/news-brief"), _task("reminder/ann/standup")]
    everyday = ("早报任务", "我的早报", "那个早报", "晨报的任务", "the morning briefing")
    for said in (
        *BRIEFING_NAMES,
        *everyday,
        "每日简报",
        "daily briefing",
        "今日简报。",
        "Morning briefing",
        "my morning briefing",
        "today's briefing task",
    ):
        task, question, _ = pick_task(tasks, said)
        assert task is briefing, (said, question)
    task, _, _ = pick_task([_task("reminder/ann/morning-news")], "早报")
    assert task is None  # another task is not the briefing for being said so
    # A task of the user's own name is meant first: "暂停早报" paused the briefing, not the
    # news digest "早报推送"; "morning" asked which of the briefing and "morning-news".
    digest = _task("reminder/ann/早报推送")
    task, _, _ = pick_task([briefing, digest], "早报")
    assert task is digest
    news = _task("reminder/ann/morning-news")
    for said, meant in (("morning", news), ("今日简报", briefing), ("晨报", briefing)):
        task, question, _ = pick_task([briefing, news, digest], said)
        assert task is meant, (said, question)


def test_a_place_said_after_an_ask_back_is_one_of_the_tasks_it_named() -> None:
    """ "有 2 个任务符合：standup weekly、standup daily。" then "第二个" paused the second of all
    the user's tasks, one nobody had named. An answer that asks back gives the tasks it named,
    in its order; a place alone said next is one in that list (its caller keeps it); with none
    heard, it is asked which."""
    tasks = [
        _task("web-monitor/ann/reborn"),
        _task("reminder/ann/standup-daily"),
        _task("threshold-watch/ann/reborn"),
        _task("reminder/ann/standup-weekly"),
    ]
    task, question, named = pick_task(tasks, "standup")
    assert (
        task is None
        and question == "有 2 个任务符合：standup daily、standup weekly。请说完整的名字。"
    )
    assert named == ["reminder/ann/standup-daily", "reminder/ann/standup-weekly"]
    task, _, again = pick_task(tasks, "第二个", named=named)
    assert task is not None and task.task_id == "reminder/ann/standup-weekly"
    assert again == []  # a task picked names no list
    # No list heard (another user's, long ago, or of tasks gone since): the place is in no
    # list the user heard, and the question asks which, naming them (kept for the next place).
    for heard in ([], ["reminder/ann/gone", "reminder/ann/left"]):
        task, question, asked = pick_task(tasks, "第二个", named=heard)
        assert task is None and question.startswith("你说的是哪一个任务？你的任务有："), question
        assert asked == [t.task_id for t in tasks if t.task_id in asked] and len(asked) == 4
    assert pick_task(tasks[1:2], "第一个").task is tasks[1]  # the only task is the first
    # Only a place alone is looked up in the list: a caller reads it for these only.
    assert all(map(names_a_place, ["第二个", "the second one", "2", "暂停二", "最后一个"]))
    assert not any(map(names_a_place, ["second backup", "2号机房", "standup", "它"]))

    # Two of one name, a web monitor and a threshold watch: said, and asked for, by kind.
    task, question, named = pick_task(tasks, "reborn")
    assert task is None and "网页监控 reborn、阈值监控 reborn" in question, question
    assert named == ["web-monitor/ann/reborn", "threshold-watch/ann/reborn"]
    for said, kind in [("网页监控 reborn", "web-monitor"), ("threshold watch reborn", "threshold")]:
        task, _, _ = pick_task(tasks, said, named=named)
        assert task is not None and task.task_id.startswith(kind), said
    task, _, _ = pick_task(tasks, "第一个", named=named)
    assert task is not None and task.task_id == "web-monitor/ann/reborn"

    # One of the two deleted (still listed, as stopped): the live one is meant ("有 2 个任务
    # 符合" offered the deleted one beside it); the deleted one keeps its kind and its place.
    tasks[0] = tasks[0].model_copy(update={"state": TaskState.STOPPED})
    task, question, _ = pick_task(tasks, "reborn")
    assert task is not None and task.task_id == "threshold-watch/ann/reborn", question
    task, _, _ = pick_task(tasks, "第一个", named=named)
    assert task is not None and task.task_id == "web-monitor/ann/reborn"
    task, _, _ = pick_task(tasks, "网页监控 reborn", named=named)
    assert task is not None and task.task_id == "web-monitor/ann/reborn"
    # Nothing to name, nothing named.
    assert pick_task([], "第二个") == (None, "你还没有任何任务。", [])


def test_a_place_said_after_a_question_answers_it_before_any_name() -> None:
    """Asked "你说的是哪一个：提醒（每天 8点30分）还是提醒（每天 20点30分）？", the user said
    "第二个", a small model sent 2, and backup-2 was paused: a task the question never named,
    found by its name's number before the place. While a question's list is kept, a place
    alone, however said, is one in it; with none kept, "2" is backup-2's, as before."""
    reminders = [
        _task(f"reminder/ops/00112233aa0{n}", f"Reminder, daily at {at} UTC, for ops: {m}")
        for n, at, m in ((1, "08:30", "stretch"), (2, "20:30", "water"))
    ]
    backup = _task("reminder/ops/backup-2", "Reminder, daily at 09:00 UTC, for ops: backup")
    tasks = [*reminders, backup]
    task, question, named = pick_task(tasks, "the eight thirty reminder")
    assert task is None and question.endswith("还是提醒（每天 20点30分）？"), question
    assert named == [t.task_id for t in reminders]
    for said in ("2", "二", "two", "第二个", "the second", "second", "2.", "the second one"):
        for english in (False, True):
            assert pick_task(tasks, said, english, named=named).task is reminders[1], said
    assert pick_task(tasks, "1", named=named).task is reminders[0]
    task, question, _ = pick_task(tasks, "3", named=named)  # past the question's end
    assert task is None and question == (
        "按第几个只能选这 2 个：提醒（每天 8点30分）、提醒（每天 20点30分）。请说第几个或任务名。"
    )
    # A name said in full is the name's, question or not; "2" with none pending, too.
    assert pick_task(tasks, "backup 2", named=named).task is backup
    assert pick_task(tasks, "2").task is backup
    # A task named "2" itself: the place in the question, not it.
    two = _task("web-monitor/ops/2")
    assert pick_task([*tasks, two], "2", named=named).task is reminders[1]
    assert pick_task([*tasks, two], "2").task is two


def test_the_tools_own_verb_a_model_copied_before_the_name_is_left_out() -> None:
    """A small model copies the verb with the name: resume_task(name="恢复第二个") was
    "没找到叫“恢复第二个”的任务…". The tool's own verbs (and the fillers after them) are left
    out; another tool's are not ("恢复第二个" said to pause_task pauses nothing), nor a task's
    name that starts with one."""
    oak_pine, oak_elm = _task("reminder/ops/oak-pine"), _task("reminder/ops/oak-elm")
    price = _task("threshold-watch/ops/price-watch")
    pause_reminder = _task("reminder/ops/pause-reminder")
    tasks = [oak_pine, oak_elm, price, pause_reminder]
    named = [oak_pine.task_id, oak_elm.task_id]
    for said, verbs, meant in [
        ("恢复第二个", RESUME_VERBS, oak_elm),
        ("继续第一个", RESUME_VERBS, oak_pine),
        ("resume the second one", RESUME_VERBS, oak_elm),
        ("unpause oak elm", RESUME_VERBS, oak_elm),
        ("暂停第二个", PAUSE_VERBS, oak_elm),
        ("pause the second", PAUSE_VERBS, oak_elm),
        ("停一下price watch", PAUSE_VERBS, price),
        ("暂停那个price watch", PAUSE_VERBS, price),
        ("pause the price watch", PAUSE_VERBS, price),
        ("pause reminder", PAUSE_VERBS, pause_reminder),  # its name
    ]:
        picked = pick_task(tasks, said, named=named, verbs=verbs)
        assert picked.task is meant, (said, picked.question)
    for said, verbs in [("恢复第二个", PAUSE_VERBS), ("pause that one", PAUSE_VERBS)]:
        task, question, _ = pick_task(tasks, said, named=named, verbs=verbs)
        assert task is None and question, said
    task, question, _ = pick_task(tasks, "暂停", verbs=PAUSE_VERBS)
    assert task is None and question.startswith("你说的是哪一个任务？"), question
    assert without_verb("同意那个修复", APPROVE_VERBS) == "那个修复"
    assert without_verb("拒绝第一个", REFUSE_VERBS) == "第一个"
    assert without_verb("拒绝第一个", APPROVE_VERBS) == "拒绝第一个"


def test_the_other_tools_verb_before_a_place_or_a_name_picks_nothing_and_says_so() -> None:
    """pause_task(name="恢复2"), the user's "resume 2" sent to the wrong tool, paused the second
    task of the list the voice had asked with (a place after any tool's verb was a place), and
    with no list "恢复2" paused backup-2 and "resume oak elm" oak-elm (the verb left out as a
    word that only says what it is). The other tool's verb picks nothing and says what was
    heard; the tool's own still picks, and a task's name or summary holding the other's verb
    ("继续集成", `pause-reminder`) is still found by it."""
    oak_pine, oak_elm = _task("reminder/ops/oak-pine"), _task("reminder/ops/oak-elm")
    backup = _task("reminder/ops/backup-2")
    ci = _task("web-monitor/ops/继续集成")
    checks = _task("reminder/ops/0123456789ab", summary="每天 9点：继续集成检查")
    pause_reminder = _task("reminder/ops/pause-reminder")
    tasks = [oak_pine, oak_elm, backup, ci, checks, pause_reminder]
    named = [oak_pine.task_id, oak_elm.task_id]
    resume_heard = "我听到的是恢复，不是暂停，所以没有改动。"
    for said in ("恢复2", "恢复第二个", "继续 2", "resume the second", "continue 2", "恢复"):
        for listed in (named, []):
            picked = pick_task(tasks, said, named=listed, verbs=PAUSE_VERBS)
            assert picked == (None, resume_heard, []), (said, listed, picked)
    for said in ("resume oak elm", "恢复backup 2", "继续oak pine"):
        assert pick_task(tasks, said, verbs=PAUSE_VERBS) == (None, resume_heard, []), said
    english = pick_task(tasks, "暂停2", english=True, named=named, verbs=RESUME_VERBS)
    assert english == (None, "I heard pause, not resume, so nothing was changed.", []), english
    for said, verbs, meant in [
        ("暂停2", PAUSE_VERBS, oak_elm),
        ("恢复2", RESUME_VERBS, oak_elm),
        ("继续集成", PAUSE_VERBS, ci),
        ("暂停继续集成", PAUSE_VERBS, ci),
        ("继续集成检查", PAUSE_VERBS, checks),
        ("pause reminder", RESUME_VERBS, pause_reminder),
    ]:
        picked = pick_task(tasks, said, named=named, verbs=verbs)
        assert picked.task is meant, (said, picked.question)
    # With no list asked, a number after the tool's own verb is a name's, as before.
    assert pick_task(tasks, "暂停2", verbs=PAUSE_VERBS).task is backup
    assert pick_task(tasks, "继续集成", verbs=PAUSE_VERBS).task is ci


def test_a_reference_that_names_nothing_asks_back_and_picks_nothing() -> None:
    # What a small model passes for "把它停了" or "批准。": a pronoun or a placeholder copied
    # from the argument's description — never a target, whatever the list holds.
    tasks = [_task("threshold-watch/ops/btc", summary="bitcoin price"), _task("web-monitor/ops/hn")]
    for said in [
        "它",
        "那个。",
        "它吧",
        "it",
        "That one",
        "任务名",
        "your_task_name",
        "监控",
        "unknown",
    ]:
        task, question, _ = pick_task(tasks, said)
        assert task is None and "哪一个任务" in question and "btc" in question, said
        assert_speakable(question)
    for said in ["这个", "that", "服务名", "修复"]:
        run, question = pick_remediation(RUNS, said)
        assert run is None and "哪一个" in question and "payments" in question, said
        assert_speakable(question)


def test_a_short_part_inside_a_word_is_no_reference_but_a_whole_short_name_is() -> None:
    tasks = [_task("threshold-watch/ops/btc", summary="bitcoin price"), _task("web-monitor/ops/hn")]
    task, question, _ = pick_task(tasks, "it")  # inside "bitcoin": would pause the wrong watch
    assert task is None and question
    task, _, _ = pick_task(tasks, "hn")
    assert task is not None and task.task_id.endswith("/hn")
    task, _, _ = pick_task(tasks, "bitcoin")
    assert task is not None and task.task_id.endswith("/btc")
    task, _, _ = pick_task([*tasks, _task("web-monitor/ops/monitor")], "Monitor")
    assert task is not None and task.task_id.endswith("/monitor")  # its exact name
    run, question = pick_remediation(RUNS, "pa")  # inside "payments"
    assert run is None and "没找到" in question


def test_a_speaker_a_model_guessed_names_nobody_but_a_real_name_does() -> None:
    from ambient.speakers import names_no_speaker
    from mcp_server.voice_prompt import SPEAKER_DESCRIPTION

    for guessed in ["", "unknown", "小智", "小智小智", "XiaoZhi", "声纹认出的人名"]:
        assert names_no_speaker(guessed, "小智", SPEAKER_DESCRIPTION), guessed
    for name in ["陌生人", "vp-guest", "alice"]:
        assert not names_no_speaker(name, "小智", SPEAKER_DESCRIPTION), name
    assert not names_no_speaker("xiaozhi", "阿福", SPEAKER_DESCRIPTION)  # another assistant


def test_spoken_spans_are_read_as_hours_in_both_languages() -> None:
    for said, hours in [
        (48, 48),
        ("12", 12),
        ("两天", 48),
        ("最近俩小时", 2),
        ("这一周", 168),
        ("一个星期", 168),
        ("十二小时", 12),
        ("二十四小时", 24),
        ("半天", 12),
        ("past three days", 72),
        ("the last couple of days", 48),
        ("a week", 168),
        ("last 2 hours", 2),
        ("since yesterday", 48),
        ("昨天到现在", 48),
        ("今天", 24),
        ("两个礼拜", 168),  # more than a week is a week: the events kept are read that far
        ("三个多小时", 3),
        ("一个多星期", 168),
    ]:
        assert hours_said(said) == hours, said
    # Words that say no span, and "day" inside another word, are no span.
    for said in ["最近", "hello", "", None, "birthday party", "十几个小时"]:
        assert hours_said(said) is None, said


def test_a_task_without_a_name_is_said_by_its_summary_in_chinese() -> None:
    """Such a task's summary is the service's English ("Web monitor of 1 URL(s) every 5 min
    for alice"): read aloud as it was, a Chinese answer switched to English mid-sentence."""
    tasks = [
        _task("web-monitor/ops/0123456789ab", "Web monitor of 2 URL(s) every 5 min for ops"),
        _task("threshold-watch/ops/ba9876543210", "Threshold watch cpu_usage: above 80"),
        _task("reminder/ops/00112233aabb", "Reminder, daily at 08:30 Asia/Shanghai, for ops"),
    ]
    assert [task_label(t) for t in tasks] == [
        "网页监控（2 个网址，每 5 分钟）",
        "阈值监控 CPU 使用率",
        "提醒（每天 8点30分）",
    ]
    task, _, _ = pick_task(tasks, "网页监控")
    assert task is tasks[0]
    task, question, _ = pick_task(tasks, "backup")
    assert task is None and "Web monitor" not in question and "网页监控（2 个网址" in question
    assert_speakable(question)


def test_a_task_without_a_name_is_said_by_its_summary_in_english_as_speech() -> None:
    """To an English speaker such a task was said by the raw summary: "Web monitor of 2 URL(s)
    every 5 min for ops" (read "U R L s", and the listener's own name) and "Reminder, daily at
    08:30 Asia/Shanghai, for ops" ("Asia slash Shanghai")."""
    tasks = [
        _task("web-monitor/ops/0123456789ab", "Web monitor of 2 URL(s) every 5 min for ops"),
        _task("web-monitor/ops/0123456789ac", "Web monitor of 1 URL(s) every 1 min for ops"),
        _task("threshold-watch/ops/ba9876543210", "Threshold watch cpu_usage: above 80"),
        _task("reminder/ops/00112233aabb", "Reminder, daily at 08:30 Asia/Shanghai, for ops"),
        _task(
            "reminder/ops/00112233aabc", "News digest of 3 page(s), weekly at 08:00 UTC, for ops"
        ),
        _task("reminder/ops/00112233aabd", "Reminder, cron 0 9 * * 1-5 UTC, for ops"),
    ]
    assert [task_label(t, english=True) for t in tasks] == [
        "web monitor of 2 pages every 5 minutes",
        "web monitor of 1 page every 1 minute",
        "threshold watch cpu usage",
        "reminder daily at 8:30",
        "news digest of 3 pages weekly at 8:00",
        "reminder on a schedule",
    ]
    task, _, _ = pick_task(tasks, "web monitor", english=True)
    assert task is None  # two fit: asked back by their spoken labels
    task, question, _ = pick_task(tasks, "backup", english=True)
    assert task is None and "URL(s)" not in question and "for ops" not in question
    assert_speakable(question)


def test_a_name_that_fits_a_waiting_fix_past_the_tenth_asks_back_with_its_number() -> None:
    # The 11th of twelve waiting fixes had no ordinal word: the speaker heard an IndexError.
    runs = [_run(n, f"web-{n}") for n in range(1, 10)] + [_run(n, "redis") for n in (10, 11, 12)]
    run, question = pick_remediation(runs, "redis")
    assert run is None and "有 3 个符合" in question
    assert "第十个" in question and "第11个" in question and "第12个" in question
    assert_speakable(question)
    # The answer the question invites picks the fix it names, in every way it can be said.
    for said in ("第11个", "11", "第十一个", "number 11", "11th"):
        run, question = pick_remediation(runs, said, english=said.isascii())
        assert run is runs[10], (said, question)
    for said in ("第0个", "0", "第十三个"):
        run, question = pick_remediation(runs, said)
        assert run is None and "只有 12 个" in question, (said, question)


def test_a_question_back_naming_some_of_many_tasks_says_how_many_there_are() -> None:
    """With nine tasks, "没找到叫“backup”的任务。你的任务有：a、b、c、d。" sounded like four."""
    tasks = [_task(f"reminder/ops/{name}") for name in "abcdefghi"]
    _, question, _ = pick_task(tasks, "backup")
    assert question == "没找到叫“backup”的任务。你有 9 个任务，比如：a、b、c、d。", question
    _, question, _ = pick_task(tasks, "it", english=True)
    assert question == "Which task do you mean? You have 9 tasks, like: a; b; c; d.", question
    _, question, _ = pick_task(tasks[:4], "backup")  # all of them named: no count
    assert question == "没找到叫“backup”的任务。你的任务有：a、b、c、d。", question


def test_an_english_task_label_is_one_phrase_without_a_comma() -> None:
    """ "Your tasks are: reminder, daily at 09:00; nightly report" read "reminder" as an item of
    its own: a label said from a summary held a comma, and a comma is where a listener (and
    xiaozhi-server's sentence split) hears one item end. Any summary, the service's shapes and
    others alike, is said as one phrase."""
    tasks = [
        _task("web-monitor/ops/0123456789ab", "Web monitor of 2 URL(s) every 5 min for ops"),
        _task("reminder/ops/00112233aabb", "Reminder, daily at 09:00 Asia/Shanghai, for ops"),
        _task(
            "reminder/ops/00112233aabc", "News digest of 3 page(s), weekly at 08:00 UTC, for ops"
        ),
        _task("reminder/ops/00112233aabd", "News digest of 2 page(s), cron 0 9 * * * UTC, for ops"),
        _task("reminder/ops/00112233aabe", "Reminder, cron 0 9 * * 1-5 UTC, for ops"),
        _task("reminder/ops/00112233aabf", "Stand-up call, Mondays, room 4"),
    ]
    labels = [task_label(t, english=True) for t in tasks]
    assert labels == [
        "web monitor of 2 pages every 5 minutes",
        "reminder daily at 9:00",
        "news digest of 3 pages weekly at 8:00",
        "news digest of 2 pages on a schedule",
        "reminder on a schedule",
        "Stand-up call Mondays room 4",
    ], labels
    # A summary someone wrote, with sentences and a list of its own, in either language.
    wrote = [_task("reminder/ops/00112233aac0", "Call mom. Then dad, 1,000 times!")]
    wrote.append(_task("reminder/ops/00112233aac1", "周会、站会。别迟到！"))
    assert [task_label(t, english=True) for t in wrote] == [
        "Call mom Then dad 1,000 times",
        "周会 站会 别迟到",
    ]
    assert [task_label(t) for t in wrote] == ["Call mom. Then dad, 1,000 times", "周会 站会 别迟到"]
    _, question, _ = pick_task(tasks, "billing", english=True)
    listed = question.split(": ", 1)[1]
    assert "," not in listed and listed.count(";") == 3, question
    assert_speakable(question)


def test_an_english_list_is_heard_as_its_items_when_an_item_holds_a_comma() -> None:
    """ "Your tasks are: reminder, daily at 09:00, nightly report, db backup" sounded like four
    tasks: a task said by its summary holds a comma, and the items were joined by commas too;
    so were the fixes that fit a name ("number 1, error rate on checkout, number 2, …")."""
    tasks = [
        _task("reminder/ops/00112233aabb", "Reminder, daily at 09:00 Asia/Shanghai, for ops"),
        _task("reminder/ops/nightly-report"),
        _task("reminder/ops/db-backup"),
        _task("reminder/ops/00112233aabc", "Reminder, weekly at 08:00 UTC, for ops"),
    ]
    _, question, _ = pick_task(tasks, "billing", english=True)
    assert question == (
        "I found no task called “billing”. Your tasks are: reminder daily at 9:00;"
        " nightly report; db backup; reminder weekly at 8:00."
    ), question
    _, question, _ = pick_task(tasks, "reminder", english=True)
    assert question == (
        "2 tasks fit: reminder daily at 9:00; reminder weekly at 8:00. Please say the full name."
    ), question
    _, question = pick_remediation(RUNS, "checkout", english=True)
    assert question == (
        "2 fit: number 1, error rate on checkout; number 2, latency on checkout api."
        " Say which number."
    ), question
    # Chinese lists are joined by "、", which no label holds.
    _, question, _ = pick_task(tasks, "billing")
    assert question == (
        "没找到叫“billing”的任务。你的任务有：提醒（每天 9点）、nightly report、db backup、"
        "提醒（每周 8点）。"
    ), question


def test_a_question_back_naming_some_of_many_waiting_fixes_says_how_many_wait() -> None:
    """With five fixes waiting, "没找到“billing”。等你审批的有：a、b、c。" sounded like three."""
    runs = [*RUNS, _run(4, "search"), _run(5, "orders")]
    _, question = pick_remediation(runs, "billing")
    assert question == (
        "没找到“billing”。等你审批的有 5 个，比如：checkout 的错误率、"
        "checkout api 的延迟、payments 的错误率。请说服务名或第几个。"
    ), question
    _, question = pick_remediation(runs, "it", english=True)
    assert question.startswith("Which one do you mean? 5 wait for you, like: error rate on"), (
        question
    )
    _, question = pick_remediation(RUNS, "billing")  # all of them named: no count
    assert question.startswith("没找到“billing”。等你审批的有：checkout 的错误率、"), question


def test_a_question_back_counts_and_offers_only_tasks_not_deleted() -> None:
    """Four live tasks and five deleted today (listed as stopped while Temporal keeps their
    runs): "你有 9 个任务，比如：…" counted the deleted ones and could name them. A deleted
    task is still found by its own name."""
    live = [_task(f"reminder/ops/{name}") for name in "abcd"]
    gone = [
        _task(f"reminder/ops/old{n}").model_copy(update={"state": TaskState.STOPPED})
        for n in range(5)
    ]
    _, question, _ = pick_task([*gone, *live], "backup")
    assert question == "没找到叫“backup”的任务。你的任务有：a、b、c、d。", question
    found, _, _ = pick_task([*gone, *live], "old3")
    assert found is not None and found.task_id == "reminder/ops/old3"
    _, none, _ = pick_task(gone, "backup", english=True)
    assert none == "You have no tasks yet.", none
    # A part of a name picks the live task it fits, not a deleted one it fits too.
    orders = [_task("reminder/ops/orders-page"), *gone[:1]]
    orders.append(_task("reminder/ops/orders-api").model_copy(update={"state": TaskState.STOPPED}))
    picked, asked, _ = pick_task(orders, "orders")
    assert picked is not None and picked.task_id == "reminder/ops/orders-page", asked


def test_a_span_with_a_half_after_its_count_or_unit_keeps_the_whole_count() -> None:
    """ "最近一个半小时" was read as the half alone (1 hour), "两个半小时" too, and "一天半"
    as one day: the errors of the span asked about were not the ones counted."""
    for said, hours in [("一个半小时", 2), ("两个半小时", 3), ("一天半", 36), ("两天半", 60)]:
        assert hours_said(said) == hours, said
    assert hours_said("半小时") == 1 and hours_said("半天") == 12


def test_a_span_said_in_minutes_or_months_is_read_not_refused_as_unheard() -> None:
    """ "最近十分钟有报错吗" and "这个月的错误" were answered "没听清时间范围…": heard, but in a
    unit the reader did not know. Minutes are an hour at least, months a week at most."""
    for said, hours in [("十分钟", 1), ("最近90分钟", 2), ("last 30 minutes", 1)]:
        assert hours_said(said) == hours, said
    for said in ["这个月", "最近一个月", "past 2 months"]:
        assert hours_said(said) == 168, said


def test_a_span_said_in_years_or_quarters_is_read_as_the_week() -> None:
    """ "最近一年", "今年", "a year" and "一个季度" were no span (their unit not known) and were
    asked again each time; "今年" is this year, not today, and a quarter of an hour is still
    minutes, not three months."""
    for said in ["一年", "半年", "今年", "最近一年", "去年以来", "一个季度", "这个季度"]:
        assert hours_said(said) == 168, said
    for said in ["a year", "past year", "this year", "2 years", "last quarter", "a quarter"]:
        assert hours_said(said) == 168, said
    for said, hours in [("今天", 24), ("今晚", 24), ("今早", 24), ("today", 24)]:
        assert hours_said(said) == hours, said
    assert hours_said("a quarter of an hour") == 1 and hours_said("一刻钟") == 1
    assert hours_said("yearly") is None  # "year" inside another word is no span


def test_a_list_of_tasks_or_fixes_cut_short_says_there_are_more() -> None:
    """ "有 6 个任务符合：A、B、C、D。" and "有 4 个符合：第一个…、第二个…、第三个…。" named four
    and three as if they were all that fit: past those named, the list says it goes on."""
    tasks = [_task(f"reminder/ops/backup-{n}") for n in range(1, 7)]
    _, question, listed = pick_task(tasks, "backup")
    assert question == (
        "有 6 个任务符合：backup 1、backup 2、backup 3、backup 4 等。请说完整的名字。"
    ), question
    assert len(listed) == 4
    _, question, _ = pick_task(tasks, "backup", english=True)
    assert question == (
        "6 tasks fit: backup 1; backup 2; backup 3; backup 4; and more. Please say the full name."
    ), question
    _, question, _ = pick_task(tasks[:4], "backup")  # all four named: no more
    assert question.endswith("backup 4。请说完整的名字。"), question
    alerts = ["error_rate", "latency", "cpu_usage", "memory_usage"]
    runs = [_run(n, "redis", alert) for n, alert in enumerate(alerts, 1)]
    _, question = pick_remediation(runs, "redis")
    assert question == (
        "有 4 个符合：第一个redis 的错误率、第二个redis 的延迟、第三个redis 的 CPU 使用率 等。"
        "请说第几个。"
    ), question
    _, question = pick_remediation(runs, "redis", english=True)
    assert question == (
        "4 fit: number 1, error rate on redis; number 2, latency on redis;"
        " number 3, cpu usage on redis; and more. Say which number."
    ), question
    _, question = pick_remediation(runs[:3], "redis")  # all three named: no more
    assert question.endswith("第三个redis 的 CPU 使用率。请说第几个。"), question
    assert_speakable(question)


def test_a_task_said_with_what_kind_of_thing_it_is_is_found_by_its_name() -> None:
    """ "暂停 backup 任务" came as name="backup任务" and was answered "没找到叫“backup任务”的
    任务", as were "the backup task", "比特币的监控" and "那个晨会提醒"."""
    tasks = [_task(f"reminder/u/{name}") for name in ("比特币监控", "backup", "晨会提醒")]
    for said, name in [
        ("backup任务", "backup"),
        ("the backup task", "backup"),
        ("比特币的监控", "比特币监控"),
        ("比特币监控任务", "比特币监控"),
        ("那个晨会提醒", "晨会提醒"),
    ]:
        task, question, _ = pick_task(tasks, said)
        assert task is not None and task.task_id.endswith(name), (said, question)


def test_a_fix_said_back_as_the_voice_named_it_is_found() -> None:
    """what_needs_me names a fix "payments 的 error rate": said back so ("批准 payments 的 error
    rate"), or as "checkout的修复", "checkout服务", "the checkout fix", it was "没找到"."""
    runs = [_run(1, "checkout"), _run(2, "payments")]
    for said, workload in [
        ("payments 的 error rate", "payments"),
        ("error rate on payments", "payments"),
        ("checkout的修复", "checkout"),
        ("checkout 服务的回滚", "checkout"),
        ("the checkout fix", "checkout"),
        ("那个checkout", "checkout"),
    ]:
        run, question = pick_remediation(runs, said)
        assert run is not None and run.service.endswith(workload), (said, question)


def test_a_fix_is_said_by_its_metric_in_the_listeners_words_and_found_by_them() -> None:
    """An alert's metric as its source names it ("error_rate", Cloud Monitor's "CPUUsage",
    TKE's "K8sWorkloadPodRestartTotal") was said as written: English inside a Chinese answer, and
    a TKE name read out letter by letter in either language; what a listener said back in
    Chinese ("checkout 的重启次数") found nothing."""
    runs = [
        _run(1, "checkout", "K8sWorkloadPodRestartTotal"),
        _run(2, "payments", "CPUUsage"),
        _run(3, "search", "bitcoin_price"),
    ]
    assert [run_about(r) for r in runs] == [
        "checkout 的重启次数",
        "payments 的 CPU 使用率",
        "search 的 bitcoin price",  # no common metric: as written
    ]
    assert [run_about(r, english=True) for r in runs] == [
        "restarts on checkout",
        "cpu usage on payments",
        "bitcoin price on search",
    ]
    for said, workload in [
        ("checkout 的重启次数", "checkout"),
        ("CPU 使用率那个", "payments"),
        ("payments 的 CPUUsage", "payments"),
        ("restarts", "checkout"),
    ]:
        run, question = pick_remediation(runs, said)
        assert run is not None and run.service.endswith(workload), (said, question)


def test_a_task_is_found_by_its_place_in_the_list_the_voice_said() -> None:
    """ "没找到…你的任务有：backup、晨会提醒。" and the user said "第二个": answered
    "没找到叫“第二个”的任务" again, though the fixes are picked so."""
    tasks = [_task("reminder/u/backup"), _task("reminder/u/晨会提醒")]
    said_list = [t.task_id for t in tasks]  # the list the voice said
    for said, name in [("第二个", "晨会提醒"), ("第一个", "backup"), ("最后一个", "晨会提醒")]:
        task, question, _ = pick_task(tasks, said, named=said_list)
        assert task is not None and task.task_id.endswith(name), (said, question)
    assert pick_task(tasks, "第三个", named=said_list)[0] is None
    assert (
        pick_task(tasks, "second backup", named=said_list)[0] is None
    )  # a name with a place word in it
    assert pick_task(tasks, "the second one", named=said_list)[0] is tasks[1]
    assert pick_task(tasks, "倒数第一个", named=said_list)[0] is tasks[1]


def test_a_place_past_the_tasks_says_how_many_there_are_as_for_fixes() -> None:
    """ "第五个" with three tasks was answered "没找到叫“第五个”的任务。你的任务有：…", as if a
    task were called so, where a fix's place past the list says "只有 3 个…，请说第几个。"."""
    tasks = [_task(f"reminder/u/{name}") for name in ("backup", "晨会提醒", "hn")]
    said_list = [t.task_id for t in tasks]  # the list the voice said
    for said in ("第五个", "5", "五号", "倒数第四个", "第0个"):
        task, question, _ = pick_task(tasks, said, named=said_list)
        assert task is None and question == "只有 3 个任务，请说第几个。", (said, question)
    for said in ("the fifth one", "number 4", "five"):
        task, question, _ = pick_task(tasks, said, english=True, named=said_list)
        assert task is None and question == "Only 3 tasks: say which number.", (said, question)
    assert (
        pick_task(tasks[:1], "second", english=True, named=said_list[:1])[1]
        == "Only 1 task: say which number."
    )
    # A place counts in the list the last answer named, else among the first four: where that
    # list is not all of them, "只有 4 个任务" would be untrue. The list is named, and kept.
    nine = [_task(f"reminder/u/{name}") for name in "abcdefghi"]
    task, question, named = pick_task(nine, "第五个", named=[t.task_id for t in nine[:4]])
    assert task is None and question == "按第几个只能选这 4 个：a、b、c、d。请说第几个或任务名。"
    assert named == [t.task_id for t in nine[:4]]
    asked = ["reminder/u/f", "reminder/u/g"]
    task, question, named = pick_task(nine, "the third one", english=True, named=asked)
    assert task is None and named == asked
    assert question == "By number I can pick only these 2: f; g. Say which number or the name."
    assert pick_task(nine, "第二个", named=asked)[0] is nine[6]


def test_a_place_said_as_a_number_with_hao_picks_that_fix_or_task() -> None:
    """ "批准二号" (number two, as Chinese says a place in a list): the model passed "二号" and
    the listener heard "没找到“二号”" with the list again, though "number two" is read."""
    for said, workload in [("二号", "checkout-api"), ("3号", "payments"), ("一号的", "checkout")]:
        run, question = pick_remediation(RUNS, said)
        assert run is not None and run.service.endswith(f"/{workload}"), (said, question)
    assert pick_remediation(RUNS, "五号")[1] == "只有 3 个修复在等你审批，请说第几个。"
    tasks = [_task("reminder/u/backup"), _task("reminder/u/晨会提醒")]
    said_list = [t.task_id for t in tasks]  # the list the voice said
    assert pick_task(tasks, "二号", named=said_list)[0] is tasks[1]
    assert pick_task(tasks, "2号机房", named=said_list)[0] is None  # a name with a number in it


def test_a_span_said_as_recently_alone_is_the_default_day_not_asked_again() -> None:
    """ "最近有什么报错吗" copied as hours="最近" (the span "as said", docs/benchmarks.md) was
    answered "没听清时间范围，请再说一次。": the listener named no span, so saying it again
    met the same answer. It is the span asked when none is said: 24 hours."""
    from pydantic import TypeAdapter, ValidationError

    from mcp_server.voice_prompt import Span

    span = TypeAdapter(Span)
    for said in ["最近", "最近。", "近期", "recently", "Lately"]:
        assert span.validate_python(said) == 24, said
    for said in ["hello", "十几个小时"]:  # words that are no span are still asked again
        try:
            span.validate_python(said)
        except ValidationError:
            continue
        raise AssertionError(said)


def test_a_reference_said_with_the_tools_verb_in_front_is_found_by_its_name() -> None:
    """A small model copies the words it was asked ("恢复任务", docs/benchmarks.md): "批准
    payments" as which="批准payments" was answered "没找到“批准payments”", as were "approve
    payments" and "暂停 backup" for a task."""
    for said in ["批准payments", "approve payments", "拒绝 payments 的修复", "refuse the payments"]:
        run, asked = pick_remediation(RUNS, said)
        assert run is RUNS[2], (said, asked)
    tasks = [_task(f"reminder/u/{name}") for name in ("backup", "晨会提醒")]
    for said, name in [
        ("暂停backup", "backup"),
        ("pause the backup task", "backup"),
        ("恢复晨会提醒", "晨会提醒"),
    ]:
        task, asked, _ = pick_task(tasks, said)
        assert task is not None and task.task_id == f"reminder/u/{name}", (said, asked)


def test_a_reference_said_as_that_one_after_its_name_is_found_by_its_name() -> None:
    """ "批准 checkout 那个" (a user's words in bench/toolcalls) copied as which="payments 那个"
    was answered "没找到“payments 那个”", as were "the payments one" and "hn 那个" for a task."""
    for said in ["payments 那个", "the payments one", "payments这个"]:
        run, asked = pick_remediation(RUNS, said)
        assert run is RUNS[2], (said, asked)
    tasks = [_task(f"reminder/u/{name}") for name in ("hn", "backup")]
    for said, name in [("hn 那个", "hn"), ("the backup one", "backup")]:
        task, asked, _ = pick_task(tasks, said)
        assert task is not None and task.task_id == f"reminder/u/{name}", (said, asked)


def test_a_span_said_as_a_range_of_two_numbers_is_the_longer() -> None:
    """ "最近两三天有报错吗" copied as hours="两三天" was answered "没听清时间范围…": a range
    as people say it ("两三天", "三四个小时", "七八个小时") is the whole span asked about."""
    for said, hours in [("两三天", 72), ("三四个小时", 4), ("最近七八个小时", 8), ("一两天", 48)]:
        assert hours_said(said) == hours, said
    assert hours_said("十几个小时") is None  # a number not read is still no guess


def test_a_span_with_its_unit_abbreviated_is_read() -> None:
    """A span written short ("6h", "2d") was answered "没听清时间范围…" though "24h" was read."""
    for said, hours in [("6h", 6), ("last 12h", 12), ("48 h", 48), ("2d", 48), ("24h", 24)]:
        assert hours_said(said) == hours, said
    assert hours_said("hello") is None and hours_said("I'd say") is None


def test_a_short_name_said_alone_is_found_when_it_is_a_word_of_the_name() -> None:
    """ "暂停 hn" for the task hn_daily_pv (said back "hn daily pv") and "批准 db" for the
    workload db were answered "没找到": a Latin part shorter than three letters was never a
    match, so "it" would not pick "bitcoin". A whole word of the name is one."""
    runs = [*RUNS, _run(4, "db")]
    run, asked = pick_remediation(runs, "db")
    assert run is runs[3], asked
    tasks = [_task(f"reminder/u/{name}") for name in ("hn_daily_pv", "bitcoin", "gold-price")]
    task, asked, _ = pick_task(tasks, "hn")
    assert task is tasks[0], asked
    assert pick_task(tasks, "co")[0] is None  # a part of a word still is not


def test_a_number_said_alone_as_the_question_back_asks_picks_that_place() -> None:
    """ "Say the service or which number." and the user said "two": which="two" was answered
    "I found no “two”" with the list again, though "2" and "number two" pick the second; so
    were "二" after "请说第几个" and "approve 2" (the tool's verb copied in front)."""
    for said, run in [("two", RUNS[1]), ("Three.", RUNS[2]), ("approve two", RUNS[1])]:
        assert pick_remediation(RUNS, said, english=True)[0] is run, said
    for said, run in [("二", RUNS[1]), ("批准三", RUNS[2]), ("approve 2", RUNS[1])]:
        assert pick_remediation(RUNS, said)[0] is run, said
    assert pick_remediation(RUNS, "five", english=True)[1].startswith("Only 3 fixes")
    tasks = [_task(f"reminder/u/{name}") for name in ("backup", "晨会提醒")]
    said_list = [t.task_id for t in tasks]  # the list the voice said
    assert pick_task(tasks, "two", english=True, named=said_list)[0] is tasks[1]
    assert pick_task(tasks, "暂停二", named=said_list)[0] is tasks[1]


def test_one_said_alone_picks_the_first_place_and_that_one_names_nothing() -> None:
    """ "one" alone answering "say which number" was taken for a pronoun: "Which one do you
    mean?" and the list again, though "two" picks the second."""
    for said in ["one", "One."]:
        assert pick_remediation(RUNS, said, english=True)[0] is RUNS[0], said
    for said in ["that one", "This one"]:
        run, question = pick_remediation(RUNS, said, english=True)
        assert run is None and question.startswith("Which one do you mean?"), said
    tasks = [_task(f"reminder/u/{name}") for name in ("backup", "晨会提醒")]
    said_list = [t.task_id for t in tasks]  # the list the voice said
    assert pick_task(tasks, "one", english=True, named=said_list)[0] is tasks[0]


def test_a_number_word_inside_a_tasks_name_is_no_reference_to_it() -> None:
    """ "two" named the task whose name has it inside a word: "pause two" paused
    network-status, not the second task; "ten" named attention-list."""
    tasks = [_task(f"web-monitor/u/{name}") for name in ("network-status", "backup", "attention")]
    said_list = [t.task_id for t in tasks]  # the list the voice said
    assert pick_task(tasks, "two", english=True, named=said_list)[0] is tasks[1]
    assert pick_task(tasks, "ten", english=True, named=said_list)[0] is None
    assert pick_task(tasks, "network", english=True, named=said_list)[0] is tasks[0]
    assert pick_task([_task("web-monitor/u/two-factor")], "two")[0] is not None  # a word of it


def test_a_span_counted_past_the_numbers_read_is_read_whole_not_as_its_last_word() -> None:
    """ "最近一百小时" was read as one hour ("最近 1 小时没有错误。"), "the last twenty-four
    hours" as four and "thirty six hours" as six: the count's first words were not read as a
    number, so the span began at the last one, or at the unit alone. They are read whole (past a
    week, a week), and "前天以来" reaches back to the day before yesterday, not one day."""
    for said, hours in [
        ("一百小时", 100),
        ("最近一百二十个小时", 120),
        ("两百个小时", 168),
        ("一千小时", 168),
        ("三十六小时", 36),
        ("the last twenty-four hours", 24),
        ("twenty four hours", 24),
        ("thirty six hours", 36),
        ("fifteen hours", 15),
        ("a hundred hours", 100),
        ("one hundred and twenty hours", 120),
        ("前天以来", 72),
        ("since the day before yesterday", 72),
    ]:
        assert hours_said(said) == hours, said
    # As before: what is read is read alike, a number not read is no guess.
    for said, hours in [("twelve hours", 12), ("a few hours", 3), ("a couple of days", 48)]:
        assert hours_said(said) == hours, said
    assert hours_said("十几个小时") is None


def test_a_span_said_as_a_number_in_words_alone_is_hours_as_digits_alone_are() -> None:
    """hours="12" was twelve hours, but hours="十二" (the same number as 小智 writes it) and
    "twelve" were answered "没听清时间范围…，请再说一次。", again each time it was said."""
    from pydantic import TypeAdapter, ValidationError

    from mcp_server.voice_prompt import Span

    span = TypeAdapter(Span)
    for said, hours in [("十二", 12), ("二十四", 24), ("三", 3), ("twelve", 12), ("48", 48)]:
        assert span.validate_python(said) == hours, said
    for said in ["两百", "500"]:  # past a week, as a number of hours in digits is: a week
        assert span.validate_python(said) == 168, said
    try:
        span.validate_python("零")  # no span, as 0 in digits is none
    except ValidationError:
        return
    raise AssertionError("零")


def test_a_span_said_as_a_part_of_today_or_just_now_is_read_not_asked_again() -> None:
    """ "上午有报错吗" copied as hours="上午" was answered "没听清时间范围…，请再说一次。",
    and so were "今早", "今晚", "this morning", "tonight", "刚才" and "just now", each again
    when said again ("今天上午" was read: by its "今天"). A part of today is today's span, a
    moment ago the last hour; "an hour and a half" is two hours, not one, and "三个钟" (hours,
    as many say it) three."""
    for said, hours in [
        ("上午", 24),
        ("下午", 24),
        ("早上", 24),
        ("今早", 24),
        ("今晚", 24),
        ("凌晨", 24),
        ("this morning", 24),
        ("this afternoon", 24),
        ("tonight", 24),
        ("刚才", 1),
        ("刚刚", 1),
        ("just now", 1),
        ("an hour and a half", 2),
        ("one and a half hours", 2),
        ("三个钟", 3),
        ("一个钟", 1),
    ]:
        assert hours_said(said) == hours, said
    # A clock time is no span of hours: asked again, as before.
    assert hours_said("8点钟") is None
    assert hours_said("last night") == 24 and hours_said("昨晚") == 48


def test_fixes_said_alike_are_named_by_what_differs_and_found_by_those_names() -> None:
    """Two fixes on workloads of one name (in two namespaces) were said alike: "checkout 的
    CPU 使用率" for "cpu_usage" and "cpu_util" both, "checkout 的错误率" for the same metric in
    prod and staging; "checkout 的 CPU" (a plain "cpu") also fitted "checkout 的 CPU 使用率"."""

    def _in(namespace: str, run: RemediationSummary) -> RemediationSummary:
        return run.model_copy(update={"service": f"cls-test01/{namespace}/checkout"})

    runs = [
        _in("prod", _run(1, "checkout", "cpu_usage")),
        _in("staging", _run(2, "checkout", "cpu_util")),
        _in("dev", _run(3, "checkout", "cpu_usage")),
        _in("test", _run(4, "checkout", "cpu")),
    ]
    assert [run_about(r, among=runs) for r in runs] == [
        "checkout（prod）的 cpu usage",
        "checkout 的 cpu util",
        "checkout（dev）的 cpu usage",
        "checkout 的 CPU",
    ]
    assert [run_about(r, True, runs) for r in runs] == [
        "cpu usage on checkout in prod",
        "cpu util on checkout",
        "cpu usage on checkout in dev",
        "cpu on checkout",
    ]
    for english in (False, True):
        for run in runs:
            said = run_about(run, english, runs)
            assert pick_remediation(runs, said, english)[0] is run, said
    # Said back as heard: without the brackets, or the namespace first (found nothing).
    for heard in ("checkout prod 的 cpu usage", "prod 的 checkout 的 CPU 使用率"):
        assert pick_remediation(runs, heard)[0] is runs[0], heard
    # Said as each is said alone, it fits several: the question back names them apart.
    run, question = pick_remediation(runs, "checkout 的 CPU 使用率")
    assert run is None and "checkout（prod）的 cpu usage" in question, question


def test_tasks_said_alike_are_numbered_by_when_they_were_made_and_a_place_stays_a_place() -> None:
    """Two reminders at 8:30 were both "提醒（每天 8点30分）": each is said with its place among
    them by creation (whatever order the list comes in); "第二个" alone is still the second of
    the list the last answer named, not the task said "第二个提醒"."""
    summary = "Reminder, daily at 08:30 UTC, for ops"
    later, earlier = (
        _task(task_id, summary).model_copy(update={"started_at": START + timedelta(hours=h)})
        for task_id, h in (("reminder/ops/00112233aabb", 2), ("reminder/ops/00112233aabc", 1))
    )
    other = _task("reminder/ops/standup")
    tasks = [later, other, earlier]
    assert [task_label(t, among=tasks) for t in tasks] == [
        "第二个提醒（每天 8点30分）",
        "standup",
        "第一个提醒（每天 8点30分）",
    ]
    assert [task_label(t, True, tasks) for t in (later, earlier)] == [
        "the second reminder daily at 8:30",
        "the first reminder daily at 8:30",
    ]
    # Alone (or among tasks none of which is said alike), a task is said as before.
    assert task_label(later) == task_label(later, among=[later, other]) == "提醒（每天 8点30分）"
    for said, task in [("第二个提醒", later), ("the first reminder", earlier)]:
        assert pick_task(tasks, said).task is task, said
    named = [earlier.task_id, other.task_id, later.task_id]
    assert pick_task(tasks, "第二个", named=named).task is other
    # Said as each is said alone, both fit: asked back by the labels that tell them apart, in
    # their numbered order, so "第二个" said next is the task said "第二个提醒".
    task, question, asked = pick_task(tasks, "提醒（每天 8点30分）")
    assert task is None and "第一个提醒（每天 8点30分）、第二个提醒（每天 8点30分）" in question
    assert pick_task(tasks, "第二个", named=asked).task is later


def test_fixes_alike_but_for_their_cluster_are_named_by_the_cluster_as_its_user_calls_it() -> None:
    """checkout's error rate in prod on two clusters was "checkout（prod）的错误率" twice. A TKE
    cluster is said by its console name (an id is no name: unknown, the namespace is said as
    before), a kubeconfig context by its own; the namespace too where another differs by it."""

    def _on(cluster: str, namespace: str, n: int) -> RemediationSummary:
        return _run(n, "checkout").model_copy(update={"service": f"{cluster}/{namespace}/checkout"})

    runs = [
        _on("cls-aaaa1111", "prod", 1),
        _on("cls-bbbb2222", "prod", 2),
        _on("edge-eu", "prod", 3),
        _on("cls-aaaa1111", "staging", 4),
    ]
    token = cluster_names.set({"cls-aaaa1111": "广州生产集群", "cls-bbbb2222": "shanghai"})
    try:
        assert [run_about(r, among=runs) for r in runs] == [
            "checkout（广州生产集群 prod）的错误率",
            "checkout（shanghai 集群）的错误率",
            "checkout（edge eu 集群）的错误率",
            "checkout（staging）的错误率",
        ]
        assert run_about(runs[1], True, runs) == "error rate on checkout in the shanghai cluster"
        for english in (False, True):
            for run in runs:
                said = run_about(run, english, runs)
                assert pick_remediation(runs, said, english)[0] is run, said
        for heard in ("shanghai 的 checkout", "shanghai 集群的 checkout 的错误率"):
            assert pick_remediation(runs, heard)[0] is runs[1], heard
        # Two fit the cluster's name alone: asked back by the names that tell them apart.
        run, question = pick_remediation(runs, "广州生产集群的 checkout")
        assert question == (
            "有 2 个符合，都是checkout 的错误率的修复：第一个在广州生产集群 prod、第四个在staging。"
            "请说第几个。"
        ), question
        assert run is None
        assert clusters_alike(runs) == {"cls-aaaa1111", "cls-bbbb2222"}
    finally:
        cluster_names.reset(token)
    # A console name saying 集群 itself, not where it ends: 集群 is not said again after it.
    token = cluster_names.set({"cls-aaaa1111": "生产集群-广州", "cls-bbbb2222": "shanghai"})
    try:
        assert run_about(runs[0], among=runs[:2]) == "checkout（生产集群 广州）的错误率"
    finally:
        cluster_names.reset(token)
    # Names not read: told apart by place, and said as before.
    assert run_about(runs[1], among=runs[:2]) == "checkout（prod）的错误率"


def test_naming_fixes_among_many_costs_in_proportion_to_how_many_there_are(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each fix was named by comparing it with every other (`run_about` among them all): a
    reference to one of n waiting fixes compared n² pairs. Counted, not timed: the looks at a
    fix's place (`_where`, once a fix a naming; n² when each fix is named among all anew) grow
    as n does. The metric said, the count before, is said once an alert type a naming: it
    stayed flat when naming was rebuilt for each fix, so the count could not fail."""
    said: list[str] = []
    where = voice_fix_names._where

    def counted(run: RemediationSummary) -> tuple[str, str, str]:
        said.append(run.run_key)
        return where(run)

    monkeypatch.setattr(voice_fix_names, "_where", counted)

    def compared(n: int) -> int:
        said.clear()
        runs = [
            _run(i, "checkout").model_copy(update={"service": f"cls-test01/ns{i}/checkout"})
            for i in range(n)
        ]
        run, _ = pick_remediation(runs, f"checkout（ns{n - 1}）的错误率")
        assert run is runs[-1]
        return len(said)

    forty = compared(40)
    assert forty >= 40, forty  # every fix looked at: the count sees the naming's work
    assert compared(80) <= 2 * forty + 10


def test_two_groups_said_alike_keep_each_in_its_numbered_order_and_each_label_picks_its_task() -> (
    None
):
    """Reminders at 8:00 and at 8:30, two of each: each group is together and in its numbered
    order in the lists said, and each label said back is the task it named. "第一个提醒（每天
    8点）", said as heard, was asked back ("有 2 个任务符合：…请说完整的名字"): it is a part of
    "第一个提醒（每天 8点30分）"; a label said whole now goes before one it is a part of."""
    eight, half = "Reminder, daily at 08:00 UTC, for ops", "Reminder, daily at 08:30 UTC, for ops"
    tasks = [
        _task(f"reminder/ops/00112233aa{n}", summary).model_copy(
            update={"started_at": START + timedelta(hours=h)}
        )
        for n, summary, h in (("b1", eight, 4), ("a1", half, 3), ("b0", eight, 2), ("a0", half, 1))
    ]
    first_eight, first_half = tasks[2], tasks[3]
    for english, listed in (
        (
            False,
            "第一个提醒（每天 8点）、第二个提醒（每天 8点）、"
            "第一个提醒（每天 8点30分）、第二个提醒（每天 8点30分）",
        ),
        (
            True,
            "the first reminder daily at 8:00; the second reminder daily at 8:00; the first"
            " reminder daily at 8:30; the second reminder daily at 8:30",
        ),
    ):
        _, question, named = pick_task(tasks, "reminder" if english else "提醒", english)
        assert listed in question, question
        assert named == [tasks[i].task_id for i in (2, 0, 3, 1)]
        for task in tasks:
            label = task_label(task, english, tasks)
            picked = pick_task(tasks, label, english)
            assert picked.task is task, (label, picked.question)
    # Said alone, each is said as before and found so.
    assert pick_task([first_eight, first_half], "提醒（每天 8点）").task is first_eight


@pytest.mark.parametrize("english", [True, False])
@pytest.mark.parametrize("said", ["nothing like it", "shop", "that one", "第二个"])
def test_a_question_back_names_only_the_tasks_it_says_whole(said: str, english: bool) -> None:
    """With long names, "You have 2000 tasks, like: a; b; c; d." was cut at its 300th
    character: the fourth name, the full stop and "Please say the full name." went unsaid,
    and "the fourth" said next picked a task the user never heard. As many names as fit are
    said whole, and those are the ones a place said next counts in."""
    tasks = [_task(f"reminder/ops/shop-{n:05d}-".ljust(76, "x")) for n in range(2000)]
    _, question, listed = pick_task(tasks, said, english=english)
    assert_speakable(question)
    assert 1 <= len(listed) <= 4
    for task_id in listed:
        assert task_label(_task(task_id), english) in question, (task_id, question)
    assert question.endswith((".", "。")), question


def test_fixes_of_one_long_name_are_asked_about_by_where_they_run_and_the_question_is_said() -> (
    None
):
    """Three fixes of a 58-character workload's long metric, in prod, staging and canary, were
    each named whole: the answer ran to the voice's cut (300 characters) before its question
    ("请说第几个。") and said what differs last in each."""
    workload, metric = (
        "alipay-callback-endpoint-health-check-guangzhou-production",
        "http_5xx_ratio",
    )
    runs = [_run(n, workload, metric) for n in range(1, 4)]
    for run, namespace in zip(runs, ("prod", "staging", "canary"), strict=True):
        run.service = f"cls-test01/{namespace}/{workload}"
    _, question = pick_remediation(runs, "alipay callback")
    assert question == (
        "有 3 个符合，都是alipay callback endpoint health check guangzhou production 的 http 5xx"
        " ratio 的修复：第一个在prod、第二个在staging、第三个在canary。请说第几个。"
    ), question
    assert_speakable(question)
    # Of other names, as many as fit, and the question after them.
    runs = [_run(n, f"{workload}-{n}", f"{metric}_{n}") for n in range(1, 4)]
    _, question = pick_remediation(runs, "alipay callback")
    assert question.endswith(" 等。请说第几个。") and len(question) < 200, question
    _, question = pick_remediation(runs, "alipay callback", english=True)
    assert question.endswith("; and more. Say which number.") and len(question) < 250, question


def test_a_name_heard_a_letter_off_is_answered_with_the_nearest_names_not_the_first_tasks() -> None:
    """ "oder api", "payment getaway", "user centre" were each answered "没找到…你有 8 个任务，
    比如：" with the same first four tasks, none of them the name plainly meant."""
    names = ["checkout", "a1", "b2", "c3", "order-api", "order-api2", "payment-gateway"]
    tasks = [_task(f"web-monitor/ops/{name}") for name in [*names, "user-center"]]
    _, question, listed = pick_task(tasks, "oder api")
    assert question == "没找到叫“oder api”的任务。你是说order api、order api2吗？", question
    assert listed == ["web-monitor/ops/order-api", "web-monitor/ops/order-api2"]  # 第二个 next
    _, question, _ = pick_task(tasks, "user centre")
    assert question == "没找到叫“user centre”的任务。你是说user center吗？", question
    _, question, _ = pick_task(tasks, "payment getaway", english=True)
    assert question == "I found no task called “payment getaway”. Did you mean payment gateway?"
    # Nothing near: the tasks there are, as before.
    _, question, _ = pick_task(tasks, "backup")
    assert question == "没找到叫“backup”的任务。你有 8 个任务，比如：checkout、a1、b2、c3。"


def test_a_reminder_is_found_by_its_time_as_people_say_it() -> None:
    """ "8点半的提醒", "八点三十分的提醒", "提醒（每天八点半）": ASR writes a time either way,
    and the labels say "8点30分"; each was "没找到", with five reminders at 8:30 to tell apart."""
    morning = _task("reminder/ops/00112233aabb", "Reminder, daily at 08:30 Asia/Shanghai, for ops")
    nine = _task("reminder/ops/00112233aabc", "Reminder, daily at 09:00 Asia/Shanghai, for ops")
    tasks = [morning, nine, _task("web-monitor/ops/checkout")]
    for said in ("8点半的提醒", "八点三十分的提醒", "提醒（每天八点半）", "八点半"):
        assert pick_task(tasks, said)[0] is morning, said
    assert pick_task(tasks, "九点的提醒")[0] is nine
    _, question, _ = pick_task(tasks, "十点半的提醒")  # none then: said back as it was said
    assert question.startswith("没找到叫“十点半的提醒”的任务。"), question


def test_a_time_said_with_its_part_of_the_day_or_on_the_hour_finds_its_reminder() -> None:
    """ "晚上十二点的提醒" paused the noon reminder beside a midnight one; "早上八点半",
    "上午九点", "中午十二点" and "九点整" found nothing."""
    times = {"00:00": "midnight", "12:00": "noon", "08:30": "morning", "09:00": "nine"}
    reminders = {
        key: _task(f"reminder/ops/00112233aa{n:02d}", f"Reminder, daily at {at} UTC, for ops")
        for n, (at, key) in enumerate(times.items())
    }
    tasks = [*reminders.values(), _task("reminder/ops/00112233aa99", "Reminder, daily at 13:00")]
    said = {
        "晚上十二点的提醒": "midnight",
        "半夜十二点的提醒": "midnight",
        "中午十二点的提醒": "noon",
        "早上八点半的提醒": "morning",
        "上午八点半的提醒": "morning",
        "早上8点半的提醒": "morning",
        "上午九点的提醒": "nine",
        "九点整的提醒": "nine",
    }
    assert {s: pick_task(tasks, s)[0] for s in said} == {s: reminders[k] for s, k in said.items()}
    assert clock_as_labelled("中午一点") == "13点"


def test_an_hour_said_finds_no_reminder_whose_time_merely_holds_its_digits() -> None:
    """ "暂停早上八点的提醒" paused the one at 18:00 ("8点" is in "18点"), "凌晨两点的提醒" the
    one at 12:00, "零点的提醒" the one at 20:00, and "八点的提醒" was one at 8:30: asked back
    now, naming the user's reminders; an hour said bare finds the evening's when it is the only
    one at that hour (not a name's "20点")."""
    at = {
        t: _task(f"reminder/ops/00112233ab{n:02d}", f"Reminder, daily at {t} UTC, for ops")
        for n, t in enumerate(("18:00", "12:00", "20:00", "08:30"))
    }
    for said in ("早上八点的提醒", "8点的提醒", "凌晨两点的提醒", "零点的提醒", "半夜十二点的提醒"):
        task, question, _ = pick_task([at["18:00"], at["12:00"], at["08:30"]], said)
        assert task is None and question.startswith(f"没找到叫“{said}”的任务"), (said, task)
    for said in ("晚上八点的提醒", "二十点的提醒"):
        assert pick_task([at["20:00"], at["08:30"]], said)[0] is at["20:00"], said
    for said in ("八点的提醒", "8点的提醒"):  # the only reminder at eight: the evening's
        assert pick_task([at["20:00"], at["08:30"]], said)[0] is at["20:00"], said
    monitor = TaskSummary(
        task_id="web-monitor/ops/20点大促", kind=TaskKind.WEB_MONITOR, state=TaskState.ACTIVE
    )
    assert pick_task([monitor, at["08:30"]], "八点")[0] is None
    assert pick_task([at["20:00"], at["08:30"]], "早上八点的提醒")[0] is None
    # A number said is no part of a longer one ("server1" paused server10-cpu, "db1" was one of
    # db1-cpu and db12-cpu), but a separator parts a name's numbers ("log-2026" of log-2026-12).
    servers = [_task(f"web-monitor/ops/{n}") for n in ("server10-cpu", "server2-cpu")]
    assert pick_task(servers, "server1")[0] is None
    dbs = [_task(f"web-monitor/ops/{n}") for n in ("db1-cpu", "db12-cpu")]
    assert pick_task(dbs, "db1")[0] is dbs[0]
    fixes = [_run(1, "api1"), _run(2, "api12")]
    assert pick_remediation(fixes, "api1")[0] is fixes[0]
    assert pick_remediation([_run(1, "order10"), _run(2, "pay")], "order1")[0] is None
    # Words that end in 点 are no hours, and a number's separators still part it from the next.
    named = [_task(f"web-monitor/ops/{n}") for n in ("节点1健康", "站点2监控", "log-2026-12")]
    for said, name in (("节点", "节点1健康"), ("站点", "站点2监控"), ("log-2026", "log-2026-12")):
        assert (
            pick_task(named, said)[0]
            is named[[t.task_id for t in named].index(f"web-monitor/ops/{name}")]
        ), said
    # Said whole, a time still finds its own: 8:30's by "八点半", 12:00's by "十二点".
    assert pick_task(list(at.values()), "八点半的提醒")[0] is at["08:30"]
    assert pick_task(list(at.values()), "十二点的提醒")[0] is at["12:00"]


def test_a_time_said_is_read_as_a_label_says_it_and_no_idiom_is_a_time() -> None:
    said = {
        "下午三点的提醒": "15点的提醒",
        "晚上九点四十五": "21点45分",
        "八点五分": "8点5分",
        "八点三十": "8点30分",
        "十二点零五分": "12点5分",
        "三点一线": "3点一线",  # 一 without 分 is no minute
    }
    assert {s: clock_as_labelled(s) for s in said} == said
    # A name said with "task" and a letter off: the nearest still offered.
    tasks = [_task(f"web-monitor/ops/{name}") for name in ("checkout", "a1", "order-api")]
    _, question, _ = pick_task(tasks, "the oder api task", english=True)
    assert question == "I found no task called “the oder api task”. Did you mean order api?"


def test_a_task_asked_for_by_its_web_address_or_id_is_answered_in_whole_sentences() -> None:
    """A name the voice cannot say was quoted anyway: "没找到叫“https://example.com/”的任务"
    was heard "没找到叫“" (the address took the rest), and an id "没找到叫的任务"."""
    tasks = [_task("web-monitor/alice/redir")]
    for said in ("https://example.com/", "web-monitor/alice/nothing"):
        _, question, _ = pick_task(tasks, said)
        assert speakable(question) == "没找到这个任务。你的任务有：redir。", question
        _, question, _ = pick_task(tasks, said, english=True)
        assert speakable(question, english=True) == "I found no such task. Your tasks are: redir."
