"""A day whose window's push a channel did not take, sent again on request later in the day
(DingTalk refused the 10:00 push; at 14:00 the user asked for it and DingTalk took it): the
day's reading merged both pushes, so a greeting said "已在10点发到你的钉钉" / "sent to your
channels at 10:00" and the briefings page "Sent to your channels at 10:00". Now the channels
that took the day's first push (the one its pushed_at times) are said at its hour, and those
that took it only later are said as later."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from ambient.briefing.config import BriefingConfig
from ambient.briefing.greeting_answers import GreetOutcome
from ambient.briefing.pushed import day_pushed
from ambient.deps import WorkerDeps
from ambient.domain.users import Language, UserCreate
from ambient.storage.models import Delivery
from ambient.storage.users import UserRepository
from tests.briefing.harness import briefing_stack, write_day_logs
from tests.briefing.test_briefing_after_window import TAKES
from tests.briefing.test_briefing_pushed_said import _alice, _robots_at
from tests.briefing.test_briefing_surfaces import _call
from tests.notify.standins import PushEndpoints
from tests.support.mcp_as import mcp_as
from tests.support.pages import signed_in
from tests.support.servers import serve
from tests.support.waits import eventually
from tests.voice.support import say, voice_client, worker_state

DING = TAKES[1]
# What each door says, by case: WeCom and DingTalk set up, or DingTalk alone; DingTalk refused
# the window's push (errcode 310000, for good: no retries) and took the send at 14:00.
CASES = {
    "some": (
        TAKES,
        {
            "took": ["wecom", "dingtalk"],
            "all_took": True,
            "first_took": ["wecom"],
            "first_all_took": False,
            "later_took": ["dingtalk"],
        },
        {
            Language.EN: "Hello! Today's briefing was sent to your WeCom at 10:00 and later to "
            "your DingTalk; it is also on the briefing page.",
            Language.ZH: "你好！今天的简报已在10点发到你的企业微信，后来也发到了你的钉钉，"
            "简报页面上也有。",
        },
        {
            Language.EN: "Sent to your WeCom at 10:00; later to your DingTalk",
            Language.ZH: "已于 10:00 发到你的企业微信，后来也发到了你的钉钉",
        },
    ),
    "none": (
        [DING],
        {
            "took": ["dingtalk"],
            "all_took": True,
            "first_took": [],
            "first_all_took": False,
            "later_took": ["dingtalk"],
        },
        {
            Language.EN: "Hello! Today's briefing was put in your inbox at 10:00 and later sent "
            "to your DingTalk; it is also on the briefing page.",
            Language.ZH: "你好！今天的简报10点放进了你的收件箱，后来发到了你的钉钉，"
            "简报页面上也有。",
        },
        {
            Language.EN: "Put in your inbox at 10:00; later sent to your DingTalk",
            Language.ZH: "已于 10:00 放入你的收件箱，后来发到了你的钉钉",
        },
    ),
}


@pytest.mark.parametrize("language", [Language.EN, Language.ZH])
@pytest.mark.parametrize("case", list(CASES))
async def test_a_channel_that_took_only_a_later_send_is_not_said_to_have_taken_the_push(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path, case: str, language: Language
) -> None:
    """Said at every door that says where the day went: the greeting (the API's, the MCP
    tool's and the voice profile's), the briefings page, and the views' ``pushed_to``."""
    channels, pushed_to, greeted, line = CASES[case]
    bots = PushEndpoints()
    bots.failures["dingtalk"] = ["errcode:310000"]  # the window's push only
    async with serve(bots.app()) as base:
        _robots_at(deps, base)
        token = await _alice(deps, channels, language)
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

            await eventually(pushed, "today's briefing pushed at its window's end")
            await stack.skip_to(day.window_end + timedelta(hours=4))  # 14:00
            sent = await stack.service.send("alice", day.date, request_id="at-two")
            took = sorted(d.channel for d in sent.deliveries if d.status == "sent")
            assert took == sorted(["inbox", *(c["type"] for c in channels)]), sent
            api = await stack.service.greet("alice", via="voice", request_id="late-api")
            state = worker_state(ts_env.client, deps, stack.worker.task_queue)
            async with mcp_as(state, "alice") as tools, voice_client(state, "alice") as voice:
                by_tool = await _call(tools, "greet")
                spoken = await say(voice, "greet")
                view = await _call(tools, "get_briefing", date=day.date)
                listed = (await _call(tools, "list_briefings"))["briefings"][0]
            settings = state.settings.model_copy(
                update={"temporal_address": ts_env.client.service_client.config.target_host}
            )
            bearer = {"authorization": f"Bearer {token}"}
            async with signed_in(settings, token) as http:
                by_api = (await http.get(f"/briefings/{day.date}", headers=bearer)).json()
                page = (await http.get(f"/app/briefings?date={day.date}")).text
    assert api.outcome is GreetOutcome.OUTSIDE_WINDOW
    for text in (api.text, by_tool["text"], spoken):
        assert text.startswith(greeted[language]), text
    for shown in (view, listed, by_api):
        assert shown["pushed_to"] == pushed_to, shown
    said = re.search(r'id="pushed">([^<]*)</p>', page)
    assert said is not None and said.group(1) == line[language], page


async def test_a_send_before_the_windows_push_is_the_push_its_time_is_said_of(
    deps: WorkerDeps,
) -> None:
    """Sent on request at 09:30 (DingTalk down then), pushed again at the window's end (DingTalk
    took it): pushed_at is 09:30, the send's, so WeCom alone is said at that hour."""
    task, date = "daily-briefing/rae", "2026-04-04"
    rows = [  # in the order they were written: the send's, then the window's push's
        (f"{task}/20260401T080000000000/{date}/send/ask", "inbox", "me", "sent"),
        (f"{task}/20260401T080000000000/{date}/send/ask", "wecom", "k", "sent"),
        (f"{task}/20260401T080000000000/{date}/send/ask", "dingtalk", "t", "failed"),
        (f"{task}/{date}/push", "inbox", "me", "sent"),
        (f"{task}/{date}/push", "wecom", "k", "sent"),
        (f"{task}/{date}/push", "dingtalk", "t", "sent"),
    ]
    async with deps.db.session() as session:
        await UserRepository(session).create(UserCreate(name="rae", language=Language.EN))
        for key, channel, target, status in rows:
            session.add(
                Delivery(
                    key=f"{key}:{channel}:{target}",
                    user="rae",
                    channel=channel,
                    target=target,
                    status=status,
                )
            )
            await session.flush()  # one id after another, as written
        await session.commit()
    pushed = await day_pushed(deps.db, "rae", date)
    assert pushed.model_dump() == {
        "took": ("wecom", "dingtalk"),
        "all_took": True,
        "first_took": ("wecom",),
        "first_all_took": False,
        "later_took": ("dingtalk",),
    }
