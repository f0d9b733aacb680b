"""A day's briefing counts as pushed once its inbox copy is stored, whichever push channel took
it; the voice's task status said "已推送" / "has been sent" of a day no channel took (none set
up, or each failed), and the API's and MCP's views said only "pushed". Now each says which
channels took it, or that the inbox alone has it (the greeting's reading, `day_pushed`)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from temporalio.testing import WorkflowEnvironment

from ambient.briefing.config import BriefingConfig, plan_for
from ambient.briefing.service import BriefingService
from ambient.clients.notify.registry import build_channels
from ambient.deps import WorkerDeps
from ambient.domain.users import Language, UserCreate
from ambient.storage.users import UserRepository
from tests.briefing.harness import briefing_stack, write_day_logs
from tests.briefing.test_briefing_after_window import DEAD, TAKES
from tests.briefing.test_briefing_surfaces import _all_day, _call, _zone_away_from_midnight
from tests.conftest import running_worker, unique
from tests.notify.standins import PushEndpoints
from tests.support.mcp_as import mcp_as
from tests.support.pages import signed_in
from tests.support.servers import serve
from tests.support.waits import eventually
from tests.voice.support import say, voice_client, worker_state


def _one_push(took: list[str], all_took: bool) -> dict[str, object]:
    """``pushed_to`` of a day pushed once: its first push is all there is."""
    first = {"first_took": took, "first_all_took": all_took, "later_took": []}
    return {"took": took, "all_took": all_took, **first}


ALL = _one_push(["wecom", "dingtalk"], True)
SOME = _one_push(["dingtalk"], False)
NONE = _one_push([], False)
CASES = {"all": (TAKES, ALL), "some": ([DEAD, *TAKES[1:]], SOME), "none": ([], NONE)}
CASES["failed"] = ([DEAD], NONE)


@pytest.mark.parametrize("case", list(CASES))
async def test_a_day_pushed_at_its_windows_end_says_which_push_channels_took_it(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path, case: str
) -> None:
    """Its API and MCP views said only "pushed" (its inbox copy stored); each names the
    channels that took it, none when only the inbox has it."""
    channels, pushed_to = CASES[case]
    async with serve(PushEndpoints().app()) as base:
        _robots_at(deps, base)
        token = await _alice(deps, channels, Language.EN)
        async with briefing_stack(ts_env, deps) as stack:
            day = await stack.plan(BriefingConfig(timezone="Asia/Shanghai"))
            logs = write_day_logs(tmp_path / "app.log", day)
            config = {
                "log_source": {"type": "file", "path": str(logs)},
                "timezone": "Asia/Shanghai",
            }
            await stack.service.create("alice", config)
            await stack.skip_to(day.window_end + timedelta(minutes=30))  # nobody greeted

            async def pushed() -> bool:
                return (await stack.service.get_briefing("alice", day.date)).pushed_at is not None

            await eventually(pushed, "today's briefing pushed")
            state = worker_state(ts_env.client, deps, stack.worker.task_queue)
            async with mcp_as(state, "alice") as tools:
                view = await _call(tools, "get_briefing", date=day.date)
                listed = (await _call(tools, "list_briefings"))["briefings"][0]
            settings = state.settings.model_copy(
                update={"temporal_address": ts_env.client.service_client.config.target_host}
            )
            bearer = {"authorization": f"Bearer {token}"}
            async with signed_in(settings, token) as http:
                by_api = (await http.get(f"/briefings/{day.date}", headers=bearer)).json()
    # The day still reads "pushed" (its inbox copy stored), with which channels took it.
    for shown in (view, listed, by_api):
        assert (shown["status"], shown["pushed_at"] is not None) == ("pushed", True), shown
        assert shown["pushed_to"] == pushed_to, shown


@pytest.mark.parametrize(
    ("case", "language", "said"),
    [
        ("all", Language.ZH, "已推送到你的消息渠道。"),
        ("all", Language.EN, "has been sent to your channels."),
        ("some", Language.EN, "has been sent to your DingTalk."),
        ("none", Language.ZH, "没有推送渠道收到，在你的收件箱里。"),
        ("none", Language.EN, "is in your inbox: no push channel took it."),
        ("failed", Language.ZH, "没有推送渠道收到，在你的收件箱里。"),
    ],
    ids=["all-zh", "all-en", "some-en", "none-zh", "none-en", "failed-zh"],
)
async def test_the_voices_task_status_says_a_pushed_briefing_sent_only_where_it_was_taken(
    dev_env: WorkflowEnvironment,
    deps: WorkerDeps,
    tmp_path: Path,
    case: str,
    language: Language,
    said: str,
) -> None:
    """The voice said "最新一期…已推送" / "has been sent" of a day no push channel took (none set
    up, or each failed), and the task's and briefing's status said only when it was pushed.
    Pushed here by a send on request, which the reading counts as the window's push (the voice
    finds the task by the dev server's visibility; the day's status is read while it runs)."""
    channels, pushed_to = CASES[case]
    user = unique("said")
    zone = _zone_away_from_midnight()
    today = datetime.now(ZoneInfo(zone)).date()
    logs = write_day_logs(tmp_path / "app.log", plan_for(today, BriefingConfig(timezone=zone)))
    async with serve(PushEndpoints().app()) as base:
        _robots_at(deps, base)
        token = await _alice(deps, channels, language, user)
        async with running_worker(dev_env.client, deps) as worker:
            state = worker_state(dev_env.client, deps, worker.task_queue)
            briefings = BriefingService(dev_env.client, state.settings, deps.db)
            await briefings.create(
                user, _all_day(zone, log_source={"type": "file", "path": str(logs)})
            )

            async def prepared() -> bool:
                return bool(await briefings.list_briefings(user))

            await eventually(prepared, "today's briefing prepared")
            async with mcp_as(state, user) as tools, voice_client(state, user) as voice:
                await _call(tools, "send_briefing")
                spoken = await say(voice, "task_status", name="每日简报")
                task = await _call(tools, "get_task", task_id=f"daily-briefing/{user}")
            settings = state.settings.model_copy(
                update={"temporal_address": dev_env.client.service_client.config.target_host}
            )
            bearer = {"authorization": f"Bearer {token}"}
            async with signed_in(settings, token) as http:
                status = (await http.get("/briefings/daily", headers=bearer)).json()
    when = date.fromisoformat((await briefings.list_briefings(user))[0].date)
    if language is Language.ZH:
        assert spoken.endswith(f"最新一期是 {when.month} 月 {when.day} 日的，{said}"), spoken
    else:
        assert spoken.endswith(f"the latest, of {when.day} {when:%B}, {said}"), spoken
    # The task's and the briefing's status: pushed (its inbox copy), and which channels took it.
    for detail in (task["detail"], status):
        assert detail["pushed_at"] is not None and detail["pushed_to"] == pushed_to, detail


def _robots_at(deps: WorkerDeps, base: str) -> None:
    """The worker's WeCom and DingTalk robots: the stand-ins at ``base``."""
    deps.settings = deps.settings.model_copy(
        update={"wecom_base_url": base, "dingtalk_base_url": base}
    )
    deps.channels = build_channels(deps.settings, deps.db, deps.http)


async def _alice(
    deps: WorkerDeps, channels: list[dict[str, str]], language: Language, name: str = "alice"
) -> str:
    """The user (``name``) with ``channels`` as their push channels; their API token."""
    async with deps.db.session() as session:
        repo = UserRepository(session)
        user, token = await repo.create(UserCreate(name=name, language=language))
        await repo.set_push_config(user, {"channels": channels})
        await session.commit()
    return token
