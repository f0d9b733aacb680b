"""A greeting after a window nobody greeted in: it said only when the next briefing is given,
as if today's were still to come; now it says where today's is (sent to the channels at its
hour, or on its page), at every door. Before today's window nothing is added."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from ambient.briefing.config import BriefingConfig
from ambient.briefing.greeting_answers import GreetOutcome
from ambient.briefing.service import BriefingService
from ambient.clients.notify.registry import build_channels
from ambient.deps import WorkerDeps
from ambient.domain.users import Language, UserCreate
from ambient.storage.users import UserRepository
from tests.briefing.harness import briefing_stack, write_day_logs
from tests.briefing.test_briefing_surfaces import _call
from tests.notify.standins import DING_SECRET, DING_TOKEN, WECOM_KEY, PushEndpoints
from tests.support.mcp_as import mcp_as
from tests.support.servers import serve
from tests.support.waits import eventually
from tests.voice.support import say, voice_client, worker_state

# The push's channels: a WeCom robot and a DingTalk robot that take it; "dead": one whose key
# the robot refuses for good (errcode 93000, no retries).
TAKES = [
    {"type": "wecom", "target": WECOM_KEY},
    {"type": "dingtalk", "target": f"{DING_TOKEN}#{DING_SECRET}"},
]
DEAD = {"type": "wecom", "target": "not-the-robots-key"}


@pytest.mark.parametrize(
    ("push", "channels", "language", "said"),
    [
        (True, TAKES, Language.EN, "Hello! Today's briefing was sent to your channels at 10:00;"),
        (True, TAKES, Language.ZH, "你好！今天的简报已在10点发到你的消息渠道，简报页面上也有。"),
        (
            True,
            [DEAD, *TAKES[1:]],
            Language.EN,
            "Hello! Today's briefing was sent to your DingTalk at 10:00; it is also on the",
        ),
        (True, [DEAD, *TAKES[1:]], Language.ZH, "你好！今天的简报已在10点发到你的钉钉，简报页面"),
        # No push channel, or none that took it: the inbox alone has it.
        (
            True,
            [],
            Language.EN,
            "Hello! Today's briefing is in your inbox and on the briefing page.",
        ),
        (True, [DEAD], Language.EN, "Hello! Today's briefing is in your inbox and on the briefing"),
        (True, [DEAD], Language.ZH, "你好！今天的简报在你的收件箱和简报页面上。"),
        (
            False,
            [],
            Language.EN,
            "Hello! Today's briefing is on the briefing page. The next daily briefing is given at "
            "the first greeting tomorrow",
        ),
    ],
    ids=["all-en", "all-zh", "some-en", "some-zh", "none-en", "failed-en", "failed-zh", "off"],
)
async def test_a_greeting_after_an_unheard_window_says_where_todays_briefing_is(
    ts_env: WorkflowEnvironment,
    deps: WorkerDeps,
    tmp_path: Path,
    push: bool,
    channels: list[dict[str, str]],
    language: Language,
    said: str,
) -> None:
    """It said "sent to your channels" when no push channel took it (none set up, or each
    failed) and only the inbox had it; now it names where it went."""
    bots = PushEndpoints()
    async with serve(bots.app()) as base:
        deps.settings = deps.settings.model_copy(
            update={"wecom_base_url": base, "dingtalk_base_url": base}
        )
        deps.channels = build_channels(deps.settings, deps.db, deps.http)
        async with deps.db.session() as session:
            repo = UserRepository(session)
            user, _ = await repo.create(UserCreate(name="alice", language=language))
            await repo.set_push_config(user, {"channels": channels})
            await session.commit()
        async with briefing_stack(ts_env, deps) as stack:
            day = await stack.plan(BriefingConfig(timezone="Asia/Shanghai"))
            logs = write_day_logs(tmp_path / "app.log", day)
            config = {
                "log_source": {"type": "file", "path": str(logs)},
                "timezone": "Asia/Shanghai",
                "push_if_not_greeted": push,
            }
            await stack.service.create("alice", config)
            await stack.skip_to(day.prepare_at + timedelta(minutes=30))  # before the window
            early = await stack.service.greet("alice", via="voice", request_id="early")
            await stack.skip_to(day.window_end + timedelta(minutes=30))

            async def done() -> bool:
                row = await stack.service.get_briefing("alice", day.date)
                return row.prepared_at is not None and (row.pushed_at is not None or not push)

            await eventually(done, "today's briefing prepared (and pushed)")
            # Every door says the one sentence: the API's (POST /voice/greeting greets so),
            # the MCP tool's and the voice profile's.
            api = await stack.service.greet("alice", via="voice", request_id="late-api")
            state = worker_state(ts_env.client, deps, stack.worker.task_queue)
            async with mcp_as(state, "alice") as tools, voice_client(state, "alice") as voice:
                by_tool = await _call(tools, "greet")
                spoken = await say(voice, "greet")
    assert early.outcome is GreetOutcome.OUTSIDE_WINDOW
    assert "Today's" not in early.text and "今天的简报" not in early.text, early.text
    assert api.outcome is GreetOutcome.OUTSIDE_WINDOW
    assert by_tool["outcome"] == GreetOutcome.OUTSIDE_WINDOW.value
    for text in (api.text, by_tool["text"], spoken):
        assert text.startswith(said), text
    taken = [c["type"] for c in channels if c is not DEAD] if push else []
    assert sorted(name for name, _ in bots.received) == sorted(taken)


async def test_the_push_hour_is_said_in_the_briefings_zone_on_a_day_before_its_clocks_change(
    deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """America/Santiago turns its clocks back at midnight after 2026-04-04: today's push at
    09:00 was said "at 8:00", read by tomorrow's plan's offset."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from ambient.storage.models import Briefing, Delivery

    config = BriefingConfig(timezone="America/Santiago")
    zone = ZoneInfo(config.timezone)
    pushed = datetime(2026, 4, 4, 9, 0, tzinfo=zone).astimezone(UTC)
    async with deps.db.session() as session:
        await UserRepository(session).create(UserCreate(name="rae", language=Language.EN))
        session.add(Briefing(user="rae", date="2026-04-04", prepared_at=pushed, pushed_at=pushed))
        # Its one push channel took it (the push's row, as `deliver` writes it).
        key = "daily-briefing/rae/2026-04-04/push:webhook:https://hook.example/x"
        hook = {"channel": "webhook", "target": "https://hook.example/x", "status": "sent"}
        session.add(Delivery(key=key, user="rae", **hook))
        await session.commit()
    service = _on_the_afternoon_of_2026_04_04(deps, monkeypatch, config)
    said = await service._with_todays("rae", "Hello! The daily briefing is given …", False)
    assert said.startswith("Hello! Today's briefing was sent to your channels at 9:00;"), said


@pytest.mark.parametrize(
    ("chinese", "said"),
    [
        (True, "你好！下一次每日简报在明天6点到10点之间的第一次问候时播报。"),
        (
            False,
            "Hello! The next daily briefing is given at the first greeting tomorrow between 6:00 "
            "and 10:00.",
        ),
    ],
)
async def test_a_briefing_set_up_after_todays_window_says_the_next_is_tomorrow(
    deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch, chinese: bool, said: str
) -> None:
    """Set up in the afternoon, after its window, with no briefing today: "the daily briefing
    is given at the first greeting between 6:00 and 10:00", as if today's were still to come."""
    from ambient.briefing.greeting_answers import greeting_text

    config = BriefingConfig(timezone="Asia/Shanghai", window_start="06:00", window_end="10:00")
    service = _on_the_afternoon_of_2026_04_04(deps, monkeypatch, config)
    window = "06:00–10:00"
    text = greeting_text(GreetOutcome.OUTSIDE_WINDOW, "zh" if chinese else "en", window=window)
    assert await service._with_todays("rae", text, chinese) == said


def _on_the_afternoon_of_2026_04_04(
    deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch, config: BriefingConfig
) -> BriefingService:
    """The briefing service of a run planned for 2026-04-05 (``config``), its clock at 15:00
    of 2026-04-04 in the briefing's zone: after today's window."""
    from datetime import UTC, date, datetime
    from typing import Any
    from zoneinfo import ZoneInfo

    from ambient.briefing.config import plan_for
    from ambient.briefing.models import BriefingStatus

    service = BriefingService(None, deps.settings, deps.db)  # type: ignore[arg-type]
    tomorrow = plan_for(date(2026, 4, 5), config)
    status = BriefingStatus(user="rae", task_id="daily-briefing/rae", config=config, day=tomorrow)

    async def read_status(user: str, **_: Any) -> BriefingStatus:
        return status

    async def afternoon() -> datetime:
        return datetime(2026, 4, 4, 15, 0, tzinfo=ZoneInfo(config.timezone)).astimezone(UTC)

    monkeypatch.setattr(service, "read_status", read_status)
    monkeypatch.setattr(service, "clock", afternoon)
    return service
