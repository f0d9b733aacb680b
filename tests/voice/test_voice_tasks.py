"""Voice tools on the dev server: greeting, tasks by spoken name, errors, cluster health."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment
from tencentcloud.common.credential import Credential

from ambient.briefing.config import BriefingConfig, plan_for
from ambient.briefing.service import BriefingService
from ambient.clients.tencent.client import TencentCloud
from ambient.deps import WorkerDeps
from ambient.domain.users import Language, Role, UserCreate
from ambient.settings import Settings
from ambient.speech import speakable
from ambient.status import pollers
from ambient.storage.briefings import BriefingRepository
from ambient.storage.repositories import EventRepository
from ambient.storage.users import UserRepository
from ambient.wiring import AppState
from api.app import create_app
from tests.briefing.harness import make_user, write_day_logs
from tests.conftest import running_worker, unique
from tests.standins.tencent_api import SECRET_ID, SECRET_KEY, TencentApi
from tests.support.record import save_history
from tests.support.servers import http_client, serve
from tests.support.tencent import standin_tencent
from tests.support.waits import eventually
from tests.voice.support import say, task_lists_counted, voice_client, worker_state
from tests.watches.site import Site, article

ZONES = ("UTC", "Asia/Shanghai", "America/New_York", "Asia/Tokyo", "Europe/Berlin")

# Greeted at the wall clock's hour: the word is the one of that hour (not the window's).
HELLOS = ("早上好", "下午好", "晚上好", "Good morning", "Good afternoon", "Good evening")


def _all_day_zh(zone: str, logs: Path) -> dict[str, Any]:
    """A Chinese briefing in zone, prepared at midnight and greeting all day, reading logs."""
    return {
        "timezone": zone,
        "prepare_at": "00:00",
        "window_start": "00:00",
        "window_end": "23:59",
        "language": "zh",
        "log_source": {"type": "file", "path": str(logs)},
    }


def _zone_away_from_midnight() -> str:
    now = datetime.now(UTC)
    return next(z for z in ZONES if 1 <= now.astimezone(ZoneInfo(z)).hour <= 22)


async def _user(deps: WorkerDeps, name: str, language: Language, role: Role = Role.MEMBER) -> None:
    async with deps.db.session() as session:
        await UserRepository(session).create(UserCreate(name=name, language=language, role=role))
        await session.commit()


async def test_a_task_said_by_its_name_as_written_is_read_without_the_task_list(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every task's row was read to find one by its name: 2 s with 2,000 tasks, past the budget.
    user = unique("vt")
    await make_user(deps.db, user)
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        for name in ("morning-standup", "evening_standup"):
            await state.tasks.create(user, "schedule", {"hour": 9, "message": name}, name=name)
        listed = task_lists_counted(monkeypatch)
        async with voice_client(state, user) as client:
            for said, label in (("morning standup", "morning"), ("Evening Standup", "evening")):
                status = await say(client, "task_status", name=said)
                assert status == f"{label} standup正在运行，还没有执行过。", status
            assert "已暂停" in await say(client, "pause_task", name="morning standup")
            assert listed == [0]
            # Said otherwise than as written, the list is read as before.
            assert "已暂停" in await say(client, "task_status", name="morningstandup")
            assert listed[0]


async def test_a_name_or_span_said_in_full_width_forms_is_read_as_written(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A recogniser or model writing "backup２" (a full-width digit) heard "no task called
    backup２"; "３ｈ" was no time span."""
    user = unique("vw")
    await make_user(deps.db, user)
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        for name in ("backup2", "db-backup"):
            await state.tasks.create(user, "schedule", {"hour": 9, "message": name}, name=name)
        async with voice_client(state, user) as client:
            half = await say(client, "task_status", name="backup2")
            assert "正在运行" in half, half
            assert await say(client, "task_status", name="ｂａｃｋｕｐ２") == half
            assert "已暂停" in await say(client, "pause_task", name="backup２")
            spans = [await say(client, "recent_errors", hours=span) for span in ("3h", "３ｈ")]
            assert spans[0] == spans[1], spans


async def test_no_errors_said_where_nothing_watches_says_so(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """ "最近 24 小时没有错误" was the answer of a user with no task and no briefing: nothing had
    looked for an error. Said so then; a task deleted watches no more."""
    user = unique("vn")
    await make_user(deps.db, user)
    nothing = "最近 24 小时没有错误，不过你还没有任务或每日简报在看着。"
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        async with voice_client(state, user) as client:
            assert await say(client, "recent_errors") == nothing
            made = await state.tasks.create(
                user, "schedule", {"hour": 9, "message": "backup"}, name="backup"
            )
            assert await say(client, "recent_errors") == "最近 24 小时没有错误。"
            await state.tasks.delete(user, made.task_id)
            assert await say(client, "recent_errors") == nothing


async def test_a_name_of_a_deleted_task_and_a_live_one_is_the_live_one(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A web monitor deleted (listed as stopped while Temporal keeps its run) and a reminder of
    its name: "有 2 个任务符合：网页监控 reborn、提醒 reborn。请说完整的名字。" was asked back."""
    user = unique("vd")
    await make_user(deps.db, user)
    deps.settings = deps.settings.model_copy(update={"fetch_allow_cidrs": ["127.0.0.1/32"]})
    site = Site()
    async with serve(site.app()) as base, running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        config = {"urls": [f"{base}/news"]}
        watch = (await state.tasks.create(user, "web_monitor", config, name="reborn")).task_id
        await state.tasks.delete(user, watch)
        await dev_env.client.get_workflow_handle(watch).result()
        await state.tasks.create(user, "schedule", {"hour": 9, "message": "x"}, name="reborn")
        async with voice_client(state, user) as client:
            status = await say(client, "task_status", name="reborn")
        assert status == "reborn正在运行，还没有执行过。", status


async def test_tasks_are_found_paused_and_resumed_by_their_spoken_names(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    user = unique("vt")
    await make_user(deps.db, user)
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        for name in ("morning-standup", "evening-standup"):
            await state.tasks.create(user, "schedule", {"hour": 9, "message": name}, name=name)
        async with voice_client(state, user) as client:
            status = await say(client, "task_status", name="morning standup")
            # A reminder checks nothing: "已检查 0 次" was said of every kind of task.
            assert status == "morning standup正在运行，还没有执行过。", status
            both = await say(client, "pause_task", name="standup")
            assert "有 2 个任务符合" in both and "evening standup" in both
            missing = await say(client, "task_status", name="backup")
            assert "没找到" in missing and "morning standup" in missing

            paused = await say(client, "pause_task", name="Morning Standup")
            assert "已暂停" in paused
            assert "已暂停" in await say(client, "task_status", name="morning standup")
            assert "正在运行" in await say(client, "task_status", name="evening standup")
            resumed = await say(client, "resume_task", name="morning standup")
            assert "已恢复" in resumed
            assert "正在运行" in await say(client, "task_status", name="morning standup")
            # Someone else's voice cannot reach these tasks.
            stranger = await say(client, "pause_task", name="morning standup", speaker="nobody")
            assert "不认识" in stranger
            # What a model writes when it knows no voiceprint name is no speaker named.
            for placeholder in ("小智", "null", "user", " None "):
                answer = await say(
                    client, "task_status", name="morning standup", speaker=placeholder
                )
                assert answer.startswith("morning standup正在运行"), (placeholder, answer)
        description = await dev_env.client.get_schedule_handle(
            f"reminder/{user}/morning-standup"
        ).describe()
        assert not description.schedule.state.paused


@pytest.mark.usefixtures("product_query_budget")  # each call waits out a read no worker answers
async def test_a_pause_or_resume_its_worker_has_not_confirmed_is_said_as_sent_not_as_done(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """With the watch's worker silent (stopped, or busy past the status read's budget), the
    service hands the control over and says it is not confirmed yet; the voice said
    "好的，shop page已暂停。" all the same, and "已恢复运行" for a resume it knew no more of."""
    users = {Language.ZH: unique("vsent"), Language.EN: unique("vsente")}
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        for language, user in users.items():
            await _user(deps, user, language)
            config = {"urls": ["https://example.com/"]}
            await state.tasks.create(user, "web_monitor", config, name="shop-page")

    # No worker now: each control is delivered (the server holds it) and its status read is
    # not answered. The request keeps the product's whole budget (QUERY_TIMEOUT, 5 s), not the
    # tests' 15 s for a starved worker (none runs here): 3 s past the wait for a workflow task
    # the stopped worker left started (HELD_WAIT, 2 s) for the signal; a budget no longer than
    # that wait sent nothing. Each call waits it out: the two users' calls are side by side.
    async def pause_and_resume(user: str) -> list[str]:
        async with voice_client(state, user) as client:
            return [
                await say(client, tool, name="shop page") for tool in ("pause_task", "resume_task")
            ]

    heard = await asyncio.gather(*(pause_and_resume(user) for user in users.values()))
    said = dict(zip(users, heard, strict=True))
    assert said == {
        Language.ZH: [
            "已发出暂停shop page的指令，还没得到确认，稍后可以问我它的状态。",
            "已发出恢复shop page的指令，还没得到确认，稍后可以问我它的状态。",
        ],
        Language.EN: [
            "I asked shop page to pause, but it isn't confirmed yet; ask me about it later.",
            "I asked shop page to resume, but it isn't confirmed yet; ask me about it later.",
        ],
    }


async def test_a_real_speaker_whose_name_is_inside_the_argument_description_is_not_the_owner(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A speaker argument that is a piece of its own description names nobody (a model copied
    it), but the test ran before the users were asked: a colleague whose voiceprint name is
    "Nam" (inside "name") or "Rin" (inside "voiceprint"), who never allowed the owner's
    speaker, was answered as the owner, with the owner's errors, tasks and approvals."""
    from mcp_server.voice_sentences import UNKNOWN_SPEAKER

    owner = unique("vo")
    await make_user(deps.db, owner)
    voices = {unique("nam"): "Nam", unique("rin"): "Rin"}
    async with deps.db.session() as session:
        for name, voice in voices.items():
            await UserRepository(session).create(UserCreate(name=name, voiceprint_id=voice))
        await session.commit()
    await _a_failure(deps, owner)
    state = _state(deps, dev_env)
    async with voice_client(state, owner) as client:
        for voice in voices.values():
            assert await say(client, "recent_errors", speaker=voice) == UNKNOWN_SPEAKER, voice
        # a placeholder copied from the description still names the owner
        said = await say(client, "recent_errors", speaker="声纹认出的人名")
        assert said.startswith("最近 24 小时有 1 个错误"), said
        # So does "unknown" where the owner enrolled no voiceprint: a model's filler, not an
        # unmatched voice.
        said = await say(client, "recent_errors", speaker="unknown")
        assert said.startswith("最近 24 小时有 1 个错误"), said


async def _a_failure(deps: WorkerDeps, user: str) -> None:
    async with deps.db.session() as session:
        await EventRepository(session).add(
            "watch.failing", user=user, task=f"web-monitor/{user}/shop", payload={}
        )
        await session.commit()


async def test_a_task_is_found_by_voice_among_more_than_two_hundred(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    user = unique("vt")
    await make_user(deps.db, user)
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        # Two past the first 200 (one read, one paused): 30 more made the same point slower.
        names = [f"job-{i:03d}" for i in range(202)]
        for start in range(0, len(names), 20):
            await asyncio.gather(
                *(
                    state.tasks.create(user, "schedule", {"hour": 9, "message": n}, name=n)
                    for n in names[start : start + 20]
                )
            )
        # The list is Temporal's visibility, written after each create has returned, and it can
        # lag behind under load: which 2 are past the first 200 is read once all are listed.

        async def all_listed() -> bool:
            return len(await state.tasks.list(user)) == len(names)

        await eventually(all_listed, "every reminder in the list")
        first = {t.task_id.rsplit("/", 1)[-1] for t in await state.tasks.list(user, limit=200)}
        beyond = sorted(set(names) - first)
        assert len(beyond) == 2
        async with voice_client(state, user) as client:
            status = await say(client, "task_status", name=beyond[-1])
            assert status.startswith(f"{beyond[-1].replace('-', ' ')}正在运行"), status
            paused = await say(client, "pause_task", name=beyond[0])
            assert paused == f"好的，{beyond[0].replace('-', ' ')}已暂停。", paused
        described = await dev_env.client.get_schedule_handle(
            f"reminder/{user}/{beyond[0]}"
        ).describe()
        assert described.schedule.state.paused


async def test_greeting_gives_todays_briefing_once_and_short_answers_after(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """Once a day, and then "already given"; its headline said "0 个问题需要人工处理" of a day
    nobody's problem waited for, and a greeting after the briefing was deleted the same day
    heard it "already given" (the deleted run answered its query), not that none is set up."""
    user = unique("vg")
    await _user(deps, user, Language.ZH)
    zone = _zone_away_from_midnight()
    today = datetime.now(ZoneInfo(zone)).date()
    logs = write_day_logs(tmp_path / "app.log", plan_for(today, BriefingConfig(timezone=zone)))
    async with running_worker(dev_env.client, deps) as worker:
        settings = deps.settings.model_copy(update={"temporal_task_queue": worker.task_queue})
        state = AppState(
            settings=settings, db=deps.db, temporal=dev_env.client, channels=deps.channels
        )
        async with voice_client(state, user) as client:
            unset = await say(client, "greet")
            assert "还没有设置每日简报" in unset
            await BriefingService(dev_env.client, settings, deps.db).create(
                user,
                _all_day_zh(zone, logs),
            )
            first = await say(client, "greet")
            second = await say(client, "greet")
            # Its runs are counted when the day's window ends: "已执行 0 次" was said here.
            status = await say(client, "task_status", name="每日简报")
            await state.briefings.delete(user)
            await dev_env.client.get_workflow_handle(f"daily-briefing/{user}").result()
            deleted = await say(client, "greet")
        assert deleted == unset, deleted
        # The briefing, its log templates' <*> said as words.
        assert first.startswith(HELLOS) and "payment-service timeout after some" in first
        assert "个错误，没有问题需要人工处理" in first, first
        # No voice tool sends it: "可以让我发到你的邮箱" offered what 小智 then could not do.
        # The time it was given is said in words, as the greeting door says it ("在 08:05").
        assert re.fullmatch(r"你好！今天的简报已经在\d+点(\d+分)?播报过了，不再重复。", second), (
            second
        )
        assert status == f"每日简报正在运行，最新一期是 {today.month} 月 {today.day} 日的，已播报。"


async def test_the_devices_greeting_door_speaks_the_briefing_cleaned_as_the_voice_tools_do(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """POST /voice/greeting gave the device the briefing's spoken text as written: its top log
    template's <*> went to the TTS as symbols. It is cleaned as every voice answer is."""
    user = unique("vd")
    await _user(deps, user, Language.ZH)
    zone = _zone_away_from_midnight()
    today = datetime.now(ZoneInfo(zone)).date()
    logs = write_day_logs(tmp_path / "app.log", plan_for(today, BriefingConfig(timezone=zone)))
    async with running_worker(dev_env.client, deps) as worker:
        settings = deps.settings.model_copy(
            update={
                "temporal_task_queue": worker.task_queue,
                "temporal_address": dev_env.client.service_client.config.target_host,
                "voice_device_tokens": {"hall": SecretStr("device-secret-9")},
            }
        )
        await BriefingService(dev_env.client, settings, deps.db).create(
            user,
            _all_day_zh(zone, logs),
        )
        async with (
            serve(create_app(settings)) as base,
            http_client(base, timeout=30) as http,
        ):

            async def greeted() -> httpx.Response:
                return await http.post(
                    "/voice/greeting",
                    json={"user_id": user, "audio": False},
                    headers={"X-Device-Token": "device-secret-9"},
                )

            answer = await greeted()
            # A greeting a loaded host's worker did not answer in time ("still preparing"): the
            # user's next greeting is that one again, and it speaks what the first took up.
            for _ in range(5):
                if answer.status_code != 200 or answer.json()["outcome"] != "preparing":
                    break
                answer = await greeted()
            again = await greeted()
        assert answer.status_code == 200, answer.text
        # No door of the device sends email: "可以让我发到你的邮箱" offered what it could not do.
        assert again.json()["outcome"] == "already_given", again.text
        assert again.json()["text"].endswith("不再重复。"), again.text
        result = answer.json()
        assert result["outcome"] == "spoken", result
        assert "payment-service timeout after some" in result["text"], result["text"]
        for said in [result["text"], *result["segments"]]:
            assert "<*>" not in said and "<" not in said, said
        await dev_env.client.get_workflow_handle(f"daily-briefing/{user}").signal("stop")


@pytest.mark.usefixtures("product_voice_budget")  # the voice stops waiting
async def test_a_greeting_the_voice_stopped_waiting_for_does_not_spend_the_days_briefing(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """The voice listens 8 s, the workflow waited up to 20 s for a preparation: a briefing
    ready in between went to nobody, and the next greeting heard "already given today"."""
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    from ambient.clients.notify.registry import build_channels

    release = asyncio.Event()

    async def news(_request: object) -> HTMLResponse:
        await release.wait()
        return HTMLResponse("<html><body><article><p>Late news.</p></article></body></html>")

    user = unique("vw")
    await make_user(deps.db, user)
    deps.settings = deps.settings.model_copy(update={"fetch_allow_cidrs": ["127.0.0.1/32"]})
    deps.channels = build_channels(deps.settings, deps.db, deps.http)
    zone = _zone_away_from_midnight()
    async with (
        serve(Starlette(routes=[Route("/news", news)])) as site,
        running_worker(dev_env.client, deps) as worker,
    ):
        state = worker_state(dev_env.client, deps, worker.task_queue)
        # Inside the window at once: the preparation starts and waits on its news page.
        await state.briefings.create(
            user,
            {
                "timezone": zone,
                "prepare_at": "00:00",
                "window_start": "00:00",
                "window_end": "23:59",
                "language": "zh",
                "news_urls": [f"{site}/news"],
            },
        )
        async with voice_client(state, user) as client:
            try:
                late = await say(client, "greet")
            finally:
                release.set()  # ready once the voice has answered (and stopped listening)

            async def prepared() -> object | None:
                status = await state.briefings.status(user)
                return status if status.prepared is not None else None

            await eventually(prepared, "prepared")
            again = await say(client, "greet")
        handle = dev_env.client.get_workflow_handle(f"daily-briefing/{user}")
        await handle.signal("stop")
        await handle.result()
        await save_history(handle, "daily_briefing_greet_within")  # the update's wait_seconds
    # The workflow's own answer, inside the voice's budget; the briefing kept for the next.
    assert again.startswith(HELLOS), again
    assert late == "你好！今天的简报还在准备中，请稍后再叫我。", late


async def _not_set_up_heard(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, settings: Settings, role: Role = Role.MEMBER
) -> dict[Language, str]:
    """A new user's first "你好" (no briefing yet) in each language, with ``settings`` (the
    user's name, a person's, said as NAME)."""
    answers = {}
    for language in (Language.ZH, Language.EN):
        user = f"{role.value}{language.value}"
        await _user(deps, user, language, role)
        state = AppState(
            settings=settings, db=deps.db, temporal=dev_env.client, channels=deps.channels
        )
        async with voice_client(state, user) as client:
            answers[language] = (await say(client, "greet")).replace(user, "NAME")
    return answers


async def test_a_greeting_with_no_briefing_set_up_is_said_in_the_users_language_only(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # A new user's first "你好": no briefing yet. It was said in Chinese and then in English
    # ("(No daily briefing is set up: create one with create daily briefing.)") to everyone.
    with_model = deps.settings.model_copy(update={"openai_api_key": SecretStr("sk-test")})
    assert await _not_set_up_heard(dev_env, deps, with_model) == {
        # Not a tool name the voice model does not have ("create one with create daily
        # briefing"), nor "in a chat with me" (the voice has no tool that sets one up): where
        # a listener sets one up, the assistant on the web page.
        Language.ZH: "你好！还没有设置每日简报，可以在网页的任务与事件页请助手设置。",
        Language.EN: "Hello! No daily briefing is set up yet; "
        "ask the assistant on the Tasks and events web page to set one up.",
    }


async def test_a_greeting_with_no_briefing_and_no_model_names_who_can_set_one_up(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # With no language model configured it sent the listener to the web page's assistant,
    # which answers "No language model is configured, so I cannot chat".
    offline = deps.settings.model_copy(update={"openai_api_key": None, "local_llm": False})
    assert offline.llm_mode == "offline"
    assert await _not_set_up_heard(dev_env, deps, offline) == {
        Language.ZH: "你好！还没有设置每日简报。这里没有配置语言模型，网页助手设置不了，"
        "请让管理员帮你设置。",
        Language.EN: "Hello! No daily briefing is set up yet, and with no language model "
        "configured the web assistant cannot set one up: ask your administrator to.",
    }
    # The administrator (`ambient dev`'s user) was sent to ask the administrator: told where
    # they set it up themselves, in words (it was read a command, "ambient briefing create
    # --user NAME": no words a voice says, or a listener can act on).
    assert await _not_set_up_heard(dev_env, deps, offline, Role.ADMIN) == {
        Language.ZH: "你好！还没有设置每日简报，这里也没有配置语言模型。你是管理员，"
        "可以在服务器的命令行里为自己创建每日简报，命令行的帮助里有做法。",
        Language.EN: "Hello! No daily briefing is set up yet, and no language model is "
        "configured. As the administrator, you can create your daily briefing from the "
        "server's command line; its help shows how.",
    }


async def test_recent_errors_and_cluster_health_in_one_sentence(
    deps: WorkerDeps, dev_env: WorkflowEnvironment
) -> None:
    user = unique("ve")
    await make_user(deps.db, user)
    async with deps.db.session() as session:
        events = EventRepository(session)
        for kind in ("watch.failing", "watch.poll_failed", "watch.change"):
            await events.add(kind, user=user, task=f"web-monitor/{user}/shop-home")
        await events.add("watch.failing", user="someone-else", task="web-monitor/x/other")
        await session.commit()
    api = TencentApi(
        clusters=[
            {"ClusterId": "cls-aaaa1111", "ClusterName": "prod", "ClusterStatus": "Running"},
            {"ClusterId": "cls-bbbb2222", "ClusterName": "staging", "ClusterStatus": "Abnormal"},
        ]
    )
    state = _state(deps, dev_env)
    async with voice_client(state, user) as client:
        errors = await say(client, "recent_errors")
        assert errors == "最近 24 小时有 2 个错误，都来自 shop home。"
        unconfigured = await say(client, "cluster_health")
        assert "还没有配置腾讯云" in unconfigured
    async with serve(api.app()) as base:
        state.tencent = standin_tencent(base)
        async with voice_client(state, user) as client:
            health = await say(client, "cluster_health")
    assert health == "2 个集群里有 1 个不正常：staging（异常）。"
    # TKE's states of a cluster on its way somewhere are no failure: said as what they are.
    api.clusters += [
        {"ClusterId": "cls-cccc3333", "ClusterName": "dev", "ClusterStatus": "Idling"},
        {"ClusterId": "cls-dddd4444", "ClusterName": "qa", "ClusterStatus": "Upgrading"},
    ]
    async with serve(api.app()) as base:
        state.tencent = standin_tencent(base)
        async with voice_client(state, user) as client:
            mixed = await say(client, "cluster_health")
    calm = TencentApi(clusters=[c for c in api.clusters if c["ClusterStatus"] != "Abnormal"])
    async with serve(calm.app()) as base:
        state.tencent = standin_tencent(base)
        async with voice_client(state, user) as client:
            changing = await say(client, "cluster_health")
    assert mixed == (
        "4 个集群里有 1 个不正常：staging（异常）；2 个正在变化：dev（闲置中）、qa（升级中）。"
    )
    assert changing == "3 个集群都没有异常；2 个正在变化：dev（闲置中）、qa（升级中）。"
    alone = TencentApi(clusters=[c for c in calm.clusters if c["ClusterName"] == "dev"])
    async with serve(alone.app()) as base:
        state.tencent = standin_tencent(base)
        async with voice_client(state, user) as client:
            one = await say(client, "cluster_health")
    assert one == "唯一的集群正在变化：dev（闲置中）。", one


async def test_recent_errors_say_the_latest_briefings_log_errors_too(
    deps: WorkerDeps, dev_env: WorkflowEnvironment
) -> None:
    """Heard right after a briefing of 20 errors, "最近有什么报错？" was answered "最近 24
    小时没有错误。": only the tasks' failures were counted. A briefing prepared before the
    span is not said."""
    user = unique("vl")
    await make_user(deps.db, user)
    now = datetime.now(UTC)
    async with deps.db.session() as session:
        await BriefingRepository(session).save(
            user,
            now.date().isoformat(),
            content={"headline": "昨天有 20 个错误", "errors": 20},
            report_markdown="",
            generated_by="offline",
            prepared_at=now - timedelta(hours=2),
        )
        await session.commit()
    # A worker runs: with none, nothing is checked and "no errors" is not said. Asked once the
    # server has seen it poll (a loaded host's worker polls its queue a moment after it starts).
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        namespace = dev_env.client.namespace
        await eventually(lambda: pollers(dev_env.client, namespace, worker.task_queue))
        async with voice_client(state, user) as client:
            assert await say(client, "recent_errors") == (
                "最近 24 小时你的任务没有出错，但最新的简报里，日志有 20 个错误。"
            )
            assert await say(client, "recent_errors", hours=1) == "最近 1 小时没有错误。"
            async with deps.db.session() as session:
                await EventRepository(session).add(
                    "watch.failing", user=user, task=f"web-monitor/{user}/shop-home"
                )
                await session.commit()
            assert await say(client, "recent_errors") == (
                "最近 24 小时有 1 个错误，来自 shop home。最新的简报里，日志还有 20 个错误。"
            )


async def test_a_single_cluster_running_is_said_as_one_not_as_all(
    deps: WorkerDeps, dev_env: WorkflowEnvironment
) -> None:
    """A user with one TKE cluster heard "1 个集群都在正常运行。" ("all 1 clusters run")."""
    user = unique("vc")
    await make_user(deps.db, user)
    api = TencentApi(clusters=[PROD_RUNNING])
    state = _state(deps, dev_env)
    async with serve(api.app()) as base:
        state.tencent = standin_tencent(base)
        async with voice_client(state, user) as client:
            assert await say(client, "cluster_health") == "唯一的集群在正常运行。"


async def test_unhealthy_clusters_past_the_three_named_are_said_to_go_on(
    deps: WorkerDeps, dev_env: WorkflowEnvironment
) -> None:
    """With four of five clusters unhealthy the speaker said "5 个集群里有 4 个不正常：alpha、
    bravo、charlie。": three named as if they were all."""
    bad = [
        {"ClusterId": f"cls-bad{i}xxxx", "ClusterName": name, "ClusterStatus": "Abnormal"}
        for i, name in enumerate(("alpha", "bravo", "charlie", "delta"))
    ]
    said: dict[Language, str] = {}
    state = _state(deps, dev_env)
    async with serve(TencentApi(clusters=[PROD_RUNNING, *bad]).app()) as base:
        state.tencent = standin_tencent(base)
        for language in (Language.ZH, Language.EN):
            user = unique("vcl")
            await _user(deps, user, language)
            async with voice_client(state, user) as client:
                said[language] = await say(client, "cluster_health")
    assert said[Language.ZH] == (
        "5 个集群里有 4 个不正常：alpha（异常）、bravo（异常）、charlie（异常） 等。"
    ), said
    assert said[Language.EN] == (
        "Unhealthy clusters, 4 of 5: alpha (abnormal), bravo (abnormal), charlie (abnormal) and"
        " more."
    ), said


async def test_recent_errors_name_a_task_without_a_name_by_its_kind_in_words(
    deps: WorkerDeps, dev_env: WorkflowEnvironment
) -> None:
    # A task created without a name is named by a digest of its config (3fa85f6457b2): the
    # cleaning took that id out and left "主要是：2 次、1 次、shop home 1 次".
    user = unique("vh")
    await make_user(deps.db, user)
    async with deps.db.session() as session:
        events = EventRepository(session)
        for task in (
            f"web-monitor/{user}/3fa85f6457b2",
            f"web-monitor/{user}/3fa85f6457b2",
            f"threshold-watch/{user}/0123456789ab",
            f"web-monitor/{user}/shop-home",
        ):
            await events.add("watch.failing", user=user, task=task)
        await session.commit()
    state = _state(deps, dev_env)
    async with voice_client(state, user) as client:
        errors = await say(client, "recent_errors")
    said = "最近 24 小时有 4 个错误，主要是：网页监控 2 次、shop home 1 次、阈值监控 1 次。"
    assert errors == said


async def test_cluster_health_with_refused_keys_says_to_check_them_not_to_ask_later(
    deps: WorkerDeps, dev_env: WorkflowEnvironment
) -> None:
    user = unique("vk")
    await make_user(deps.db, user)
    api = TencentApi(clusters=[PROD_RUNNING])
    state = _state(deps, dev_env)
    async with serve(api.app()) as base:
        endpoint = base.removeprefix("http://")
        answers = []
        # A mistyped secret key, then keys whose CAM policy does not allow DescribeClusters.
        for key, failure in (("wrong-key", None), (SECRET_KEY, "UnauthorizedOperation")):
            if failure:
                api.failures["DescribeClusters"] = [failure]
            state.tencent = TencentCloud(
                Credential(SECRET_ID, key),
                region="ap-guangzhou",
                endpoint=endpoint,
                protocol="http",
                timeout=5,
            )
            async with voice_client(state, user) as client:
                answers.append(await say(client, "cluster_health"))
    # Asking later cannot help: the keys or their permission must change.
    expected = "腾讯云拒绝了配置的密钥，看不到集群。请检查 API 密钥和它的访问策略。"
    assert answers == [expected, expected]


async def test_recent_errors_counts_every_error_of_the_span_not_a_page_of_them(
    deps: WorkerDeps, dev_env: WorkflowEnvironment
) -> None:
    user = unique("vc")
    await make_user(deps.db, user)
    async with deps.db.session() as session:
        events = EventRepository(session)
        for _ in range(130):  # a watch failing every few minutes all day
            await events.add("watch.failing", user=user, task=f"web-monitor/{user}/shop-home")
        for kind in ("watch.poll_failed", "watch.breach"):
            for _ in range(3):
                await events.add(kind, user=user, task=f"threshold-watch/{user}/btc")
        await session.commit()
    state = _state(deps, dev_env)
    async with voice_client(state, user) as client:
        errors = await say(client, "recent_errors")
    assert errors == "最近 24 小时有 136 个错误，主要是：shop home 130 次、btc 6 次。"


async def test_cluster_health_refused_for_good_says_to_check_the_settings_not_to_ask_later(
    deps: WorkerDeps, dev_env: WorkflowEnvironment
) -> None:
    """A region written as people say it (AMBIENT_TENCENTCLOUD_REGION=guangzhou), or one the
    product does not serve: cluster_health said "暂时连不上腾讯云……请稍后再问", and asking later
    answered the same, every time. Only a passing failure is said as one."""
    user = unique("vr")
    await make_user(deps.db, user)
    api = TencentApi(clusters=[PROD_RUNNING])
    state = _state(deps, dev_env)
    async with serve(api.app()) as base:
        answers = []
        for region, failure in (
            ("guangzhou", None),
            ("ap-guangzhou", "UnsupportedRegion"),
            ("ap-guangzhou", "RequestLimitExceeded"),
            # Common error codes: 当前服务暂时不可用 — a passing failure, not a refusal.
            ("ap-guangzhou", "ServiceUnavailable"),
        ):
            if failure:
                # Rate limits are retried before the answer: every try is refused here.
                api.failures["DescribeClusters"] = [failure] * 4
            state.tencent = TencentCloud(
                Credential(SECRET_ID, SECRET_KEY),
                region=region,
                endpoint=base.removeprefix("http://"),
                protocol="http",
                timeout=5,
                backoff=0.01,
            )
            async with voice_client(state, user) as client:
                answers.append(await say(client, "cluster_health"))
    refused = "腾讯云拒绝了查询集群的请求，稍后再问也一样。请检查腾讯云的配置，比如地域。"
    passing = "暂时连不上腾讯云，看不到集群状况，请稍后再问。"
    assert answers == [refused, refused, passing, passing]


async def test_cluster_health_given_a_cluster_without_its_id_says_to_check_the_way_to_the_api(
    deps: WorkerDeps, dev_env: WorkflowEnvironment
) -> None:
    """A cluster listed without its ClusterId (a proxy's answer, not the API's) was said as
    "暂时连不上腾讯云……请稍后再问": asked later, the same answer came again."""
    user = unique("vi")
    await make_user(deps.db, user)
    api = TencentApi(clusters=[PROD_RUNNING])
    nameless = {"ClusterName": "prod", "ClusterStatus": "Running"}
    body = json.dumps({"Response": {"Clusters": [nameless], "TotalCount": 1}}).encode()
    api.raw["DescribeClusters"] = [(200, "application/json", body)]
    state = _state(deps, dev_env)
    async with serve(api.app()) as base:
        state.tencent = TencentCloud(
            Credential(SECRET_ID, SECRET_KEY),
            region="ap-guangzhou",
            endpoint=base.removeprefix("http://"),
            protocol="http",
            timeout=5,
            backoff=0.01,
        )
        async with voice_client(state, user) as client:
            said = await say(client, "cluster_health")
    assert said == (
        "腾讯云那边的回答不是它的接口该有的样子，看不到集群。请让运维检查到腾讯云的网络代理和接口地址设置。"
    ), said
    assert [c[1] for c in api.calls] == ["DescribeClusters"]


async def test_cluster_health_on_a_machine_whose_clock_is_off_says_to_set_the_clock(
    deps: WorkerDeps, dev_env: WorkflowEnvironment
) -> None:
    """A clock more than five minutes off Tencent Cloud's (a laptop or WSL after sleep): every
    request is refused as AuthFailure.SignatureExpire, and cluster_health said to check the API
    keys and their access policy, which were fine. Now it says to set the clock."""
    user = unique("vs")
    await make_user(deps.db, user)
    api = TencentApi(
        clusters=[{"ClusterId": "cls-aaaa1111", "ClusterName": "prod", "ClusterStatus": "Running"}],
        failures={"DescribeClusters": ["AuthFailure.SignatureExpire"]},
    )
    state = _state(deps, dev_env)
    async with serve(api.app()) as base:
        state.tencent = standin_tencent(base)
        async with voice_client(state, user) as client:
            said = await say(client, "cluster_health")
    assert said == "这台机器的时钟和腾讯云相差超过五分钟，请求都被拒绝了。请校准系统时间。"


async def test_cluster_health_with_expired_temporary_keys_says_to_renew_them(
    deps: WorkerDeps, dev_env: WorkflowEnvironment
) -> None:
    """Temporary keys (TENCENTCLOUD_TOKEN set) expired: the API no longer knows their SecretId
    (AuthFailure.SecretIdNotFound), or says their token is wrong or their signature expired.
    cluster_health said to check the API keys and their access policy, or the clock; now it
    says the temporary keys have expired and are to be renewed, the three together."""
    api = TencentApi(clusters=[PROD_RUNNING])
    state = _state(deps, dev_env)
    said: dict[Language, list[str]] = {Language.ZH: [], Language.EN: []}
    async with serve(api.app()) as base:
        for secret_id, failure in (
            ("AKIDsts-expired", None),
            (SECRET_ID, "AuthFailure.TokenFailure"),
            (SECRET_ID, "AuthFailure.SignatureExpire"),
        ):
            state.tencent = TencentCloud(
                Credential(secret_id, SECRET_KEY, "sts-token"),
                region="ap-guangzhou",
                endpoint=base.removeprefix("http://"),
                protocol="http",
                timeout=5,
            )
            for language in (Language.ZH, Language.EN):
                api.failures["DescribeClusters"] = [failure] if failure else []
                user = unique("vtk")
                await _user(deps, user, language)
                async with voice_client(state, user) as client:
                    said[language].append(await say(client, "cluster_health"))
    zh = (
        "腾讯云不接受配置的临时密钥，它可能已经过期，看不到集群。请让运维换上新的临时密钥，"
        "密钥 ID、密钥和令牌三项一起换。"
    )
    en = (
        "Tencent Cloud refused the configured temporary keys; they may have expired, so I can't"
        " see the clusters. Please ask an operator to set new temporary keys, the key ID, the key"
        " and the token together."
    )
    assert said == {Language.ZH: [zh] * 3, Language.EN: [en] * 3}, said


# One TKE cluster, running.
PROD_RUNNING = {"ClusterId": "cls-aaaa1111", "ClusterName": "prod", "ClusterStatus": "Running"}


def _state(deps: WorkerDeps, dev_env: WorkflowEnvironment) -> AppState:
    """The voice tools' state on the test's Temporal server (Tencent Cloud set by the test)."""
    return AppState(
        settings=deps.settings, db=deps.db, temporal=dev_env.client, channels=deps.channels
    )


async def test_the_daily_briefing_is_said_as_the_daily_briefing_not_as_the_users_name(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """A task the voice did not find was answered with the user's tasks, the daily briefing
    among them said as its id's last part: the user's own name ("你的任务有：alice、backup")."""
    user = f"alice{unique('').replace('-', '')[:6]}"
    await _user(deps, user, Language.ZH)
    zone = _zone_away_from_midnight()
    today = datetime.now(ZoneInfo(zone)).date()
    logs = write_day_logs(tmp_path / "app.log", plan_for(today, BriefingConfig(timezone=zone)))
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        await state.briefings.create(user, _all_day_zh(zone, logs))
        await state.tasks.create(user, "schedule", {"hour": 9, "message": "b"}, name="backup")
        async with voice_client(state, user) as client:
            missing = await say(client, "task_status", name="比特币")
            status = await say(client, "task_status", name="简报")
        await dev_env.client.get_workflow_handle(f"daily-briefing/{user}").signal("stop")
    assert missing == "没找到叫“比特币”的任务。你的任务有：每日简报、backup。", missing
    assert status.startswith("每日简报正在运行"), status


async def test_a_reminder_said_by_its_time_says_the_clock_in_words(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A reminder created without a name was said by its time as written ("提醒（每天 08:30）"),
    which a TTS may read as a ratio; the greeting's times are said in words ("8点30分")."""
    users = {Language.ZH: unique("vc"), Language.EN: unique("vc")}
    said = {}
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        for language, user in users.items():
            await _user(deps, user, language)
            config = {"hour": 8, "minute": 30, "message": "standup", "timezone": "Asia/Shanghai"}
            await state.tasks.create(user, "schedule", config)
            async with voice_client(state, user) as client:
                said[language] = await say(client, "task_status", name="第一个")
    assert said == {
        Language.ZH: "提醒（每天 8点30分）正在运行，还没有执行过。",
        Language.EN: "reminder daily at 8:30 is running and has not run yet.",
    }, said


async def test_a_task_named_with_a_hex_looking_word_is_said_by_its_name(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A reminder the user named "deadbeef" was answered "正在运行，已执行 0 次。" (its name cut
    out as a hex id), one named "deadbeefcafe" as an unnamed reminder: a word of
    hex letters alone is a name; an id (random hex) holds digits too."""
    user = unique("vt")
    await make_user(deps.db, user)
    names = ("deadbeef", "cafebabe", "deadbeefcafe", "added", "cafe")
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        for name in names:
            await state.tasks.create(user, "schedule", {"hour": 9, "message": name}, name=name)
        async with voice_client(state, user) as client:
            for name in names:
                said = name.replace("-", " ")
                status = await say(client, "task_status", name=said)
                assert status == f"{said}正在运行，还没有执行过。", status
            missing = await say(client, "task_status", name="backup")
            asked, _, listed = missing.partition("你有 5 个任务，比如：")
            assert asked == "没找到叫“backup”的任务。", missing
            assert len(set(listed.rstrip("。").split("、")) & set(names)) == 4, missing
            paused = await say(client, "pause_task", name="deadbeef")
            assert paused == "好的，deadbeef已暂停。", paused


def test_only_real_ids_are_taken_out_of_speech_not_words_of_hex_letters() -> None:
    assert speakable("OK, deadbeef is paused.") == "OK, deadbeef is paused."
    assert speakable("cafe added, facade and decade stay.") == "cafe added, facade and decade stay."
    assert speakable("请求 3f9a1c2b 失败，容器 a1b2c3d4e5f6 重启，订单 20261126 已发。") == (
        "请求 失败，容器 重启，订单 20261126 已发。"
    )


def _said_list(answer: str, english: bool) -> list[str]:
    """The labels an asking answer lists: "…有 2 个任务符合：A、B。…", "…2 tasks fit: A; B. …"."""
    listed = re.split(r"tasks fit: |个任务符合：", answer, maxsplit=1)[1]
    return listed.split(". " if english else "。")[0].split("; " if english else "、")


async def test_every_task_label_the_voice_lists_said_back_finds_its_task(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """The labels are said in the listener's words ("提醒（每天 8点30分）", "threshold watch
    restarts") but were compared as written: said back, "没找到…" / "I found no task called…".
    Two reminders at one time, or two web monitors of a page each, were said alike: the
    listener heard one item twice and could pick neither by saying it back."""
    site = Site(pages={"/shop": article("Open."), "/blog": article("New.")}, values=[1])
    async with serve(site.app()) as base:
        source = {"type": "http_json", "url": f"{base}/value", "json_path": "$.data.amount"}
        catalogue = dict.fromkeys(("K8sWorkloadPodRestartTotal", "cpu_usage"), source)
        deps.settings = deps.settings.model_copy(
            update={"fetch_allow_cidrs": ["127.0.0.1/32"], "metric_catalogue": catalogue}
        )
        async with running_worker(dev_env.client, deps) as worker:
            state = worker_state(dev_env.client, deps, worker.task_queue)
            for language in (Language.ZH, Language.EN):
                english = language is Language.EN
                await _user(deps, user := unique("vl"), language)
                for message in ("standup", "stretch"):
                    reminder = {"hour": 8, "minute": 30, "message": message, "timezone": "UTC"}
                    await state.tasks.create(user, "schedule", reminder)
                for page in ("shop", "blog"):
                    await state.tasks.create(user, "web_monitor", {"urls": [f"{base}/{page}"]})
                for metric in ("K8sWorkloadPodRestartTotal", "cpu_usage"):
                    await state.tasks.create(
                        user, "threshold_watch", {"metric": metric, "threshold": 3}
                    )
                async with voice_client(state, user) as client:
                    kinds = ("reminder", "web monitor", "threshold watch")
                    if not english:
                        kinds = ("提醒", "网页监控", "阈值监控")
                    labels = []
                    for kind in kinds:  # each kind's two, as the answer asking back lists them
                        labels += _said_list(await say(client, "task_status", name=kind), english)
                    # Six items, each said apart from the others.
                    assert len(set(labels)) == len(labels) == 6, labels
                    # Each label said back, and the metric alone, as a listener says it.
                    metric = "restarts" if english else "重启次数"
                    restarts = next(x for x in labels if x.endswith(metric))
                    found = []
                    for said, label in [*zip(labels, labels, strict=True), (metric, restarts)]:
                        status = await say(client, "task_status", name=said)
                        assert status.startswith(label), (said, status)
                        found.append(status)
                    # And a pause said with one of the two alike names pauses that one only.
                    paused = await say(client, "pause_task", name=labels[1])
                    assert paused == say_paused(labels[1], english), paused
                    other = await say(client, "task_status", name=labels[0])
                    assert other == found[0], other


def say_paused(label: str, english: bool) -> str:
    return f"OK, {label} is paused." if english else f"好的，{label}已暂停。"


async def test_a_zones_offset_or_a_score_said_back_is_not_turned_into_a_clock_time(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Every spoken answer said a lone HH:MM as a clock time: what the listener asked for came
    back "没找到叫“UTC+8点”的任务", "比分 12点30分", "ratio 1点10分"."""
    user = unique("vz")
    await _user(deps, user, Language.ZH)
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        config = {"hour": 8, "minute": 30, "message": "standup", "timezone": "UTC"}
        await state.tasks.create(user, "schedule", config)
        async with voice_client(state, user) as client:
            for said in ("UTC+08:00", "2026-11-30T08:30:00+08:00", "比分 12:30", "ratio 1:10"):
                answer = await say(client, "task_status", name=said)
                assert answer == f"没找到叫“{said}”的任务。你的任务有：提醒（每天 8点30分）。", (
                    answer
                )
