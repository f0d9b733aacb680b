"""A reminder as it is read back: a paused one lists no coming runs (Temporal keeps the times
it had, falling into the past), and a weekly one names its days, in lists and in the voice
("every Monday" and "every Friday" were one line: 提醒（每周 09:00）)."""

# ruff: noqa: F811 - the fixtures `service`, `loopback_deps` are used by name

from __future__ import annotations

from ambient.refusals import Refusal
from ambient.watches.configs import TaskState
from ambient.watches.reminders import ReminderConfig
from ambient.watches.schedules import _schedule_summary
from ambient.watches.service import TaskService
from ambient.watches.summaries import BRIEFING, SAYING, THRESHOLD_WATCH, summary_said
from mcp_server.voice_summaries import spoken_summary
from tests.conftest import unique
from tests.support.waits import eventually
from tests.watches.test_lifecycle_service import service  # noqa: F401  (fixture)
from tests.watches.test_workflows import USER, loopback_deps  # noqa: F401  (fixture)


async def test_a_paused_reminder_lists_no_coming_runs(service: TaskService) -> None:
    config = {"cron": "* * * * *", "timezone": "UTC", "message": "tick"}
    ref = await service.create(USER, "schedule", config, unique("sched"))
    try:
        active = await service.get(USER, ref.task_id)
        assert active.detail["next_runs"]
        await service.pause(USER, ref.task_id)
        paused = await service.get(USER, ref.task_id)
        assert paused.state is TaskState.PAUSED and paused.detail["next_runs"] == []
    finally:
        await service.delete(USER, ref.task_id)


async def test_two_weekly_reminders_on_other_days_are_listed_and_said_apart(
    service: TaskService,
) -> None:
    base = {"type": "weekly", "hour": 9, "timezone": "UTC", "message": "report"}
    mon = await service.create(USER, "schedule", base | {"days": ["fri", "mon"]}, None)
    fri = await service.create(USER, "schedule", base | {"days": ["fri"]}, None)
    try:

        async def both() -> dict[str, str | None] | None:
            listed = {t.task_id: t.summary for t in await service.list(USER)}
            ids = (mon.task_id, fri.task_id)
            return {i: listed[i] for i in ids} if all(listed.get(i) for i in ids) else None

        summaries = await eventually(both, "both weekly reminders listed")
    finally:
        await service.delete(USER, mon.task_id)
        await service.delete(USER, fri.task_id)
    assert summaries[mon.task_id] == f"Reminder, weekly on mon,fri at 09:00 UTC, for {USER}: report"
    assert summaries[fri.task_id] == f"Reminder, weekly on fri at 09:00 UTC, for {USER}: report"
    assert spoken_summary(summaries[mon.task_id]) == "提醒（每周一、五 09:00）"
    assert spoken_summary(summaries[fri.task_id], english=True) == "reminder weekly on Fri at 09:00"


def test_a_reminders_summary_says_its_message_unless_payloads_are_encrypted() -> None:
    # Temporal keeps a schedule's note in clear text: with AMBIENT_PAYLOAD_KEY set, a note that
    # said the message would show what the key keeps from the Web UI.
    config = ReminderConfig(hour=9, minute=30, message="站会开始了，\n带上电脑" + "。" * 60)
    said = _schedule_summary(config, "alice", said=True)
    assert said == "Reminder, daily at 09:30 Asia/Shanghai, for alice: 站会开始了， 带上电脑" + (
        "。" * 28 + "…"
    )
    assert summary_said(said) is not None
    assert _schedule_summary(config, "alice", said=False) == (
        "Reminder, daily at 09:30 Asia/Shanghai, for alice"
    )


def test_summaries_with_a_colon_of_their_own_are_read_as_theirs_not_as_a_reminders() -> None:
    # A reminder's summary with its message ("…: MESSAGE") was read first, and took every
    # summary holding ": " for one: a threshold watch's and a briefing's stayed English on
    # Chinese pages.
    for summary, msgid in (
        ("Threshold watch http_json: above 100", THRESHOLD_WATCH),
        ("Daily briefing for al: prepare 04:30, greeting window 07:00–09:00 (UTC)", BRIEFING),
    ):
        said = summary_said(summary)
        assert said is not None and said.msgid == msgid, (summary, said)
    said = summary_said("Reminder, daily at 09:30 UTC, for al: 站会: 带电脑")
    assert said is not None and said.msgid == SAYING
    assert said.values["message"] == "站会: 带电脑"
    assert summary_said("Threshold watch: not one of ours") is None
    # A cron's own words end at its message, which may read like a summary's end.
    said = summary_said("Reminder, cron 0 9 * * 1 UTC, for alice: buy flowers, for mom")
    assert said is not None and said.values["message"] == "buy flowers, for mom", said
    inner = said.values["summary"]
    assert isinstance(inner, Refusal) and inner.values["cron"] == "0 9 * * 1", inner.values
