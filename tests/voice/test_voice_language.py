"""The voice answers in the speaking user's language: English to a user who chose en."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from temporalio.testing import WorkflowEnvironment

from ambient import temporal
from ambient.briefing.service import BriefingService
from ambient.deps import WorkerDeps
from ambient.domain.users import Language, UserCreate
from ambient.remediation.runs import RemediationStatus
from ambient.storage.repositories import EventRepository
from ambient.storage.users import UserRepository
from ambient.wiring import AppState
from ambient.xiaozhi_context import voice_facts
from tests.conftest import running_worker, unique
from tests.remediation.support import add_user, remediation_settings
from tests.standins.tencent_api import TencentApi
from tests.support.servers import free_port, serve
from tests.support.tencent import standin_tencent
from tests.support.waits import ask, eventually
from tests.voice.support import say, voice_client, worker_state
from tests.voice.test_voice_briefing_context import ZONES
from tests.voice.test_voice_remediation import OWNER, waiting

_CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")


async def _user(deps: WorkerDeps, name: str, language: Language) -> None:
    async with deps.db.session() as session:
        await UserRepository(session).create(UserCreate(name=name, language=language))
        await session.commit()


async def _prepared(service: BriefingService, user: str) -> bool:
    return (await service.status(user)).prepared is not None


async def _paused(service: BriefingService, user: str) -> bool:
    return (await service.status(user)).paused


async def _tasks_errors_and_refusals(state: AppState, user: str) -> dict[str, str]:
    """What the voice says to ``user`` for each tool and refusal that needs no remediation."""
    async with voice_client(state, user) as client:
        return {
            "status": await say(client, "task_status", name="morning standup"),
            "several": await say(client, "pause_task", name="standup"),
            "missing": await say(client, "task_status", name="backup"),
            "which": await say(client, "task_status", name="it"),
            "paused": await say(client, "pause_task", name="morning standup"),
            "resumed": await say(client, "resume_task", name="morning standup"),
            "stranger": await say(client, "pause_task", name="morning standup", speaker="nobody"),
            "needs": await say(client, "what_needs_me"),
            "nothing waits": await say(client, "approve_remediation", which="the first one"),
            "errors": await say(client, "recent_errors"),
            "an hour": await say(client, "recent_errors", hours=1),
            "clusters": await say(client, "cluster_health"),
            "no such tool": await say(client, "delete_task"),
            "misheard": await say(client, "recent_errors", hours="abc"),
            "misheard name": await say(client, "task_status"),
        }


async def test_an_english_user_hears_every_tool_and_refusal_in_english_and_chinese_ones_chinese(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # Only the greeting followed the user's language: everything else was said in Chinese.
    english, chinese = unique("ven"), unique("vzh")
    await _user(deps, english, Language.EN)
    await _user(deps, chinese, Language.ZH)
    async with deps.db.session() as session:
        events = EventRepository(session)
        for user in (english, chinese):
            for kind in ("watch.failing", "watch.poll_failed"):
                await events.add(kind, user=user, task=f"web-monitor/{user}/shop-home")
            await events.add("watch.failing", user=user, task=f"web-monitor/{user}/0123456789ab")
        await session.commit()
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        for user in (english, chinese):
            for name in ("morning-standup", "evening-standup"):
                await state.tasks.create(user, "schedule", {"hour": 9, "message": name}, name=name)
        said = await _tasks_errors_and_refusals(state, english)
        zh = await _tasks_errors_and_refusals(state, chinese)

    assert said["status"] == "morning standup is running and has not run yet.", said
    assert said["several"].startswith("2 tasks fit: "), said
    assert "Please say the full name." in said["several"]
    assert said["missing"].startswith("I found no task called “backup”. Your tasks are: "), said
    assert said["which"].startswith("Which task do you mean? Your tasks are: "), said
    assert said["paused"] == "OK, morning standup is paused."
    assert said["resumed"] == "OK, morning standup is running again."
    assert said["stranger"] == (
        "Hello! I don't know your voice yet, so I can't tell you anyone's operations news."
        " If you have an account here, set your voiceprint and allow this speaker in your own"
        " settings."
    )
    # Both watches failed and never recovered: not "all is well".
    assert said["needs"] == (
        "No fixes wait for your approval, but 2 watches keep failing their checks:"
        " shop home, a web monitor."
    )
    assert said["nothing waits"] == "No fixes are waiting for your approval."
    assert said["errors"] == (
        "3 errors in the last 24 hours, mostly: shop home 2 times, a web monitor 1 time."
    )
    assert said["an hour"].startswith("3 errors in the last hour, mostly: "), said
    assert said["clusters"] == "No Tencent Cloud account is set up, so I can't see any clusters."
    assert said["no such tool"] == (
        "I can't do that yet. Ask me about a task's status, what needs you, recent errors,"
        " or to pause or resume a task."
    )
    assert said["misheard"] == (
        "I didn't catch the time span, from one hour to a week, like two days. Please say it again."
    )
    assert said["misheard name"] == "I didn't catch the task name. Please say it again."
    assert not {k: v for k, v in said.items() if _CJK.search(v)}

    # A Chinese user hears the same calls as before, in Chinese.
    assert zh["paused"] == "好的，morning standup已暂停。"
    assert zh["needs"] == "没有等你审批的修复，但有 2 个监控一直检查失败：shop home、网页监控。"
    assert zh["errors"] == "最近 24 小时有 3 个错误，主要是：shop home 2 次、网页监控 1 次。"
    assert zh["misheard name"] == "没听清任务名，请再说一次。"
    assert all(_CJK.search(v) for v in zh.values()), zh


async def test_an_english_user_hears_the_fixes_waiting_and_the_services_refusals_in_english(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, OWNER)
    async with deps.db.session() as session:
        row = await UserRepository(session).get(OWNER)
        assert row is not None
        row.language = Language.EN
        await session.commit()
    async with waiting(ts_env, deps, "checkout", "payments") as (state, handles):
        async with deps.db.session() as session:
            row = await UserRepository(session).get(OWNER)
        assert row is not None
        facts = await voice_facts(deps.db, row, state.remediations, budget=5)
        assert facts.hint == "Fixes waiting for approval: 2. Call what_needs_me."
        async with voice_client(state, OWNER) as client:
            needs = await say(client, "what_needs_me")
            which = await say(client, "approve_remediation", which="it")
            beyond = await say(client, "approve_remediation", which="the third one")
            unknown = await say(client, "approve_remediation", which="billing")
            asked = await say(client, "approve_remediation", which="checkout")
            approved = await say(client, "approve_remediation", which="yes")
            async with deps.db.session() as session:
                row = await UserRepository(session).get(OWNER)
                assert row is not None
                row.rollback_permission = "none"
                await session.commit()
            refused = await say(client, "refuse_remediation", which="payments", reason="later")
        status = await ask(handles["checkout"], "status", result_type=RemediationStatus)
        assert [a.approver for a in status.approvals] == [OWNER]
    answers = [needs, which, beyond, unknown, asked, approved, refused]
    assert not [a for a in answers if _CJK.search(a)], answers
    assert needs.startswith("2 fixes waiting for your approval: first, "), needs
    assert "checkout" in needs and "payments" in needs
    assert which.startswith("Which one do you mean? Waiting for you: "), which
    assert beyond == "Only 2 fixes waiting for your approval: say which number."
    assert unknown.startswith("I found no “billing”. Waiting for you: "), unknown
    assert asked.startswith(
        "2 fixes wait for your approval. Approve number 1, step 1 (restart, a dry run) of the "
        "fix for "
    ), asked
    assert asked.endswith(" on checkout? Say approve again to confirm."), asked
    assert approved.startswith("OK, approved step 1 (restart, a dry run) of the fix for ")
    assert "checkout" in approved, approved
    assert refused == "I couldn't do that. You don't have that permission: ask an admin."


async def test_a_temporal_that_is_down_is_said_in_english_to_an_english_user(
    deps: WorkerDeps,
) -> None:
    user = unique("vd")
    await _user(deps, user, Language.EN)
    settings = deps.settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    client = await temporal.connect(settings, lazy=True)
    state = AppState(settings=settings, db=deps.db, temporal=client, channels=deps.channels)
    async with voice_client(state, user) as voice:
        answer = await say(voice, "task_status", name="anything")
    assert answer == (
        "I can't reach the Temporal service, so I can't read or change tasks now."
        " Please check that it is running."
    )


async def test_the_wake_context_hint_is_in_the_users_language(deps: WorkerDeps) -> None:
    # /xiaozhi/context told the voice model in Chinese what to do, whatever the user's language.
    english, chinese = unique("cen"), unique("czh")
    await _user(deps, english, Language.EN)
    await _user(deps, chinese, Language.ZH)
    hints = {}
    for name in (english, chinese):
        async with deps.db.session() as session:
            row = await UserRepository(session).get(name)
        assert row is not None
        hints[name] = (await voice_facts(deps.db, row)).hint
    assert hints == {
        english: "When the user asks about operations, answer with the voice tools.",
        chinese: "用户询问运维情况时，使用语音工具回答。",
    }


async def test_an_english_user_hears_cluster_health_in_english(
    deps: WorkerDeps, dev_env: WorkflowEnvironment
) -> None:
    user = unique("vc")
    await _user(deps, user, Language.EN)
    api = TencentApi(
        clusters=[
            {"ClusterId": "cls-aaaa1111", "ClusterName": "prod", "ClusterStatus": "Running"},
            {"ClusterId": "cls-bbbb2222", "ClusterName": "staging", "ClusterStatus": "Abnormal"},
        ]
    )
    state = AppState(
        settings=deps.settings, db=deps.db, temporal=dev_env.client, channels=deps.channels
    )
    async with serve(api.app()) as base:
        state.tencent = standin_tencent(base)
        async with voice_client(state, user) as client:
            health = await say(client, "cluster_health")
    assert health == "Unhealthy clusters, 1 of 2: staging (abnormal)."


async def test_a_user_who_chose_no_language_hears_the_servers_default_language(
    deps: WorkerDeps,
) -> None:
    # AMBIENT_DEFAULT_LANGUAGE=en: the briefing's own answers followed it, the voice's did not.
    user = unique("vn")
    async with deps.db.session() as session:
        await UserRepository(session).create(UserCreate(name=user))
        await session.commit()
    settings = deps.settings.model_copy(
        update={"temporal_address": f"127.0.0.1:{free_port()}", "default_language": Language.EN}
    )
    client = await temporal.connect(settings, lazy=True)
    state = AppState(settings=settings, db=deps.db, temporal=client, channels=deps.channels)
    async with voice_client(state, user) as voice:
        answer = await say(voice, "task_status", name="anything")
    assert answer.startswith("I can't reach the Temporal service"), answer
    async with deps.db.session() as session:
        row = await UserRepository(session).get(user)
    assert row is not None
    facts = await voice_facts(deps.db, row, default_language=Language.EN)
    assert not _CJK.search(facts.hint), facts.hint


async def test_the_greetings_own_words_are_in_the_speakers_language_not_the_briefings(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Every voice answer but the greeting followed the speaker's language: an English user whose
    briefing was set up in Chinese heard "你好！今天的简报已经在 … 播报过了", a Chinese
    user with an English briefing "Hello! The daily briefing is given at …" (and "… paused")."""
    now = datetime.now(UTC)
    zone = next(z for z in ZONES if 1 <= now.astimezone(ZoneInfo(z)).hour <= 21)
    later = f"{now.astimezone(ZoneInfo(zone)).hour + 2:02d}:00"
    english, chinese = unique("gen"), unique("gzh")
    await _user(deps, english, Language.EN)
    await _user(deps, chinese, Language.ZH)
    day = {"prepare_at": "00:00", "window_end": "23:59", "timezone": zone}
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        service = state.briefings
        await service.create(english, {**day, "window_start": "00:00", "language": "zh"})
        await service.create(chinese, {**day, "window_start": later, "language": "en"})
        try:
            async with voice_client(state, english) as client:
                await eventually(
                    lambda: _prepared(service, english), f"{english}'s briefing prepared"
                )
                await say(client, "greet")  # the briefing itself: written in its own language
                again = await say(client, "greet")
            async with voice_client(state, chinese) as client:
                outside = await say(client, "greet")
                await service.pause(chinese)
                await eventually(lambda: _paused(service, chinese), "paused")
                paused = await say(client, "greet")
        finally:
            await service.delete(english)
            await service.delete(chinese)

    assert re.fullmatch(
        r"Hello! I gave today's briefing at (1?\d|2[0-3]):\d\d; I won't repeat it\.", again
    )
    assert not _CJK.search(again), again
    hour, minute = (int(part) for part in later.split(":"))
    start = f"{hour}点" + (f"{minute}分" if minute else "")  # the window said in words
    assert outside == f"你好！每日简报在{start}到23点59分之间的第一次问候时播报。", outside
    assert paused == "你好！每日简报已暂停，恢复后才会播报。", paused


async def test_a_tie_of_more_than_three_tasks_is_said_as_a_tie_of_them_all(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # Four tied at the top were said as the first three ("最多的是 alpha、bravo、charlie，各 2
    # 次"), and in English "2 times each from the most: alpha, bravo, charlie".
    english, chinese = unique("ven"), unique("vzh")
    await _user(deps, english, Language.EN)
    await _user(deps, chinese, Language.ZH)
    async with deps.db.session() as session:
        events = EventRepository(session)
        for user in (english, chinese):
            for name, times in (("alpha", 2), ("bravo", 2), ("charlie", 2), ("delta", 2)):
                for _ in range(times):
                    await events.add("watch.failing", user=user, task=f"web-monitor/{user}/{name}")
            await events.add("watch.failing", user=user, task=f"web-monitor/{user}/echo")
        await session.commit()
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        async with voice_client(state, english) as client:
            said = await say(client, "recent_errors")
        async with voice_client(state, chinese) as client:
            zh = await say(client, "recent_errors")
    assert said == (
        "9 errors in the last 24 hours: the most from alpha, bravo, charlie and 1 more task,"
        " 2 times each."
    ), said
    assert zh == "最近 24 小时有 9 个错误，最多的是 alpha、bravo、charlie 等 4 个任务，各 2 次。", (
        zh
    )


async def test_a_tie_with_tasks_said_alike_says_their_sum_not_each(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # Two unnamed web monitors (2 errors each, said "网页监控（2 个）") tied with backup's 4 were
    # said "backup、网页监控（2 个），各 4 次": each monitor said to have failed 4 times.
    english, chinese = unique("gen"), unique("gzh")
    await _user(deps, english, Language.EN)
    await _user(deps, chinese, Language.ZH)
    async with deps.db.session() as session:
        events = EventRepository(session)
        for user in (english, chinese):
            for task in ("0123456789ab", "ba9876543210", "0123456789ab", "ba9876543210"):
                await events.add("watch.failing", user=user, task=f"web-monitor/{user}/{task}")
            for _ in range(4):
                await events.add("watch.failing", user=user, task=f"web-monitor/{user}/backup")
            await events.add("watch.failing", user=user, task=f"web-monitor/{user}/echo")
        await session.commit()
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        async with voice_client(state, english) as client:
            said = await say(client, "recent_errors")
        async with voice_client(state, chinese) as client:
            zh = await say(client, "recent_errors")
    assert said == (
        "9 errors in the last 24 hours: the most from 2 web monitors, 4 times in all,"
        " backup 4 times."
    ), said
    assert zh == "最近 24 小时有 9 个错误，最多的是 backup 4 次、网页监控（2 个）共 4 次。", zh


async def test_most_errors_from_tasks_said_alike_are_said_as_their_sum(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # Two unnamed web monitors (3 errors each) over backup's 2 were said "主要是：网页监控（2
    # 个） 6 次", "mostly: a web monitor (2) 6 times": as if one had failed 6 times.
    english, chinese = unique("men"), unique("mzh")
    await _user(deps, english, Language.EN)
    await _user(deps, chinese, Language.ZH)
    async with deps.db.session() as session:
        events = EventRepository(session)
        for user in (english, chinese):
            for task in ("0123456789ab", "ba9876543210") * 3 + ("backup",) * 2:
                await events.add("watch.failing", user=user, task=f"web-monitor/{user}/{task}")
        await session.commit()
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        async with voice_client(state, english) as client:
            said = await say(client, "recent_errors")
        async with voice_client(state, chinese) as client:
            zh = await say(client, "recent_errors")
    assert said == (
        "8 errors in the last 24 hours, mostly: 2 web monitors, 6 times in all, backup 2 times."
    ), said
    assert zh == "最近 24 小时有 8 个错误，主要是：网页监控（2 个）共 6 次、backup 2 次。", zh


async def test_errors_all_from_tasks_said_alike_say_how_many_tasks_in_english(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # Two unnamed web monitors alone were said "all from a web monitor (2)" (as if one).
    english = unique("men")
    await _user(deps, english, Language.EN)
    async with deps.db.session() as session:
        events = EventRepository(session)
        for task in ("0123456789ab", "ba9876543210") * 3:
            await events.add("watch.failing", user=english, task=f"web-monitor/{english}/{task}")
        await session.commit()
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        async with voice_client(state, english) as client:
            said = await say(client, "recent_errors")
    assert said == "6 errors in the last 24 hours, all from 2 web monitors.", said


@pytest.mark.parametrize("in_english", [False, True])
def test_a_tie_of_more_than_three_with_a_group_says_the_rest_in_all(in_english: bool) -> None:
    from mcp_server.voice_answer import english
    from mcp_server.voice_errors import _tie_of_groups

    tied = ["alpha", "bravo", "charlie", "delta", "网页监控"]
    told = english.set(in_english)
    try:
        said = _tie_of_groups(tied, {"网页监控": 2, **{t: 1 for t in tied[:4]}}, 2)
        group = "a web monitor" if in_english else "网页监控"
        tied_one_more = [group, "alpha", "bravo", "charlie"]
        one_more = _tie_of_groups(tied_one_more, {group: 2, **{t: 1 for t in tied[:3]}}, 2)
    finally:
        english.reset(told)
    if in_english:
        assert (
            said == "alpha 2 times, bravo 2 times, charlie 2 times, and 3 more tasks 4 times in all"
        )
        # One task left is said with its own count: "each" is for two or more.
        assert one_more == (
            "2 web monitors, 2 times in all, alpha 2 times, bravo 2 times, and 1 more task 2 times"
        )
    else:
        assert said == "alpha 2 次、bravo 2 次、charlie 2 次，还有 3 个任务共 4 次"
        assert one_more == "网页监控（2 个）共 2 次、alpha 2 次、bravo 2 次，还有 1 个任务 2 次"
