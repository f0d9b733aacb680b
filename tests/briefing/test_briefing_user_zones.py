"""The morning briefing's day as users away from UTC meet it: the day read, the bounds given to
CLS and the alarm histories, the greeting's local time, and a long pause's history."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from activities import briefing as briefing_activities
from ambient.briefing.config import BriefingConfig, plan_day
from ambient.briefing.greeting_answers import GreetOutcome
from ambient.briefing.logreport_markdown import render_markdown
from ambient.deps import WorkerDeps
from tests.briefing.harness import briefing_stack, make_user, next_clock_change
from tests.support.record import save_history
from tests.support.servers import serve
from tests.support.tencent import standin_tencent
from tests.support.waits import eventually


async def test_a_kathmandu_morning_reads_its_own_yesterday_from_cls_and_the_alarm_histories(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Asia/Kathmandu is UTC+05:45: yesterday is 00:00 to 00:00 there (18:15 UTC the day
    before), SearchLog and DescribeAlertRecordHistory get its bounds in ms, Monitor's alarm
    history in s; a log at its first millisecond counts, one at the next midnight does not;
    a greeting at 06:20 there is said as 06:20."""
    from tests.standins.tencent_api import TencentApi

    config = BriefingConfig(
        timezone="Asia/Kathmandu",
        language="en",
        log_source={"type": "cls", "topic_id": "topic-1"},  # type: ignore[arg-type]
    )
    api = TencentApi()
    rendered: list[str] = []

    def render(report: Any, tz: Any) -> str:
        rendered.append(render_markdown(report, tz=tz))
        return rendered[-1]

    monkeypatch.setattr(briefing_activities, "render_markdown", render)
    await make_user(deps.db, "kiran")
    async with serve(api.app()) as base:
        deps.tencent = standin_tencent(base)
        async with briefing_stack(ts_env, deps) as stack:
            day = await stack.plan(config)
            assert day.logs_from.astimezone(UTC).minute == 15  # 00:00 at +05:45
            first, end = int(day.logs_from.timestamp() * 1000), int(day.logs_to.timestamp() * 1000)
            api.logs = [
                {"time": first, "json": {"level": "ERROR", "message": "disk full on node-1"}},
                {"time": end - 1, "json": {"level": "ERROR", "message": "disk full on node-2"}},
                {"time": end, "json": {"level": "ERROR", "message": "today's error"}},
                {"time": first - 1, "json": {"level": "ERROR", "message": "the day before"}},
            ]
            await stack.service.create("kiran", config)
            await stack.skip_to(day.window_start + timedelta(minutes=20))
            spoken = await stack.service.greet("kiran", request_id="morning")
            view = await stack.service.get_briefing("kiran", day.date)
    assert spoken.outcome is GreetOutcome.SPOKEN and spoken.given_at_local == "06:20", spoken
    assert view.content.log_lines == 2 and view.content.errors == 2, view.content
    # Its hours begin at a quarter past UTC's: the first error in its 00h (what the model
    # reads), not in UTC's hour from 18:00 (23:45 there, said "23h").
    hours = rendered[0].split("lines/errors/warnings\n")[1].split()
    assert hours[:2] == ["00h", "1/1/0"], rendered[0]
    # The morning's searches (at create, its filter was tried on one log of the last hour).
    searches = [p for s, a, p in api.calls if a == "SearchLog" and p["Limit"] > 1]
    assert searches and {(p["From"], p["To"]) for p in searches} == {(first, end)}
    # The alarm APIs are asked a moment wider (their ends excluded or unsaid), the day kept.
    records = [p for s, a, p in api.calls if a == "DescribeAlertRecordHistory"]
    assert (first - 1, end + 1) in {(p["From"], p["To"]) for p in records}, records
    monitor = [p for s, a, p in api.calls if a == "DescribeAlarmHistories"]
    bounds = {(p["StartTime"], p["EndTime"]) for p in monitor}
    assert (first // 1000 - 1, end // 1000) in bounds, bounds


async def test_a_los_angeles_day_that_falls_back_reads_its_twenty_five_hours(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """America/Los_Angeles falls back at 02:00 (on 2027-11-07, the next change when this was
    written): the briefing of the day after reads the change's 25 hours (07:00 UTC to 08:00
    UTC the next day), its lines written without an offset in local time; 23:59 local on the
    day of the change (07:59 UTC the next day) counts, 00:00 the next day does not; the
    greeting at 06:00 PST is said as 06:00."""
    await make_user(deps.db, "lars")
    now = await ts_env.get_current_time()
    change = next_clock_change("America/Los_Angeles", now, forward=False)
    before, after = change - timedelta(days=1), change + timedelta(days=1)
    lines = [
        (f"{before}T23:59:59", "the day before"),
        (f"{change}T00:00:00", "db timeout at first"),
        (f"{change}T01:30:00", "db timeout in the first 01:30"),
        (f"{change}T12:00:00", "db timeout at noon"),
        (f"{change}T23:59:00", "db timeout late"),
        (f"{after}T00:00:00", "today's error"),
    ]
    path = tmp_path / "app.log"
    path.write_text(
        "".join(json.dumps({"time": t, "level": "ERROR", "message": m}) + "\n" for t, m in lines)
    )
    config = BriefingConfig(
        timezone="America/Los_Angeles",
        language="en",
        log_source={"type": "file", "path": str(path)},  # type: ignore[arg-type]
    )
    async with briefing_stack(ts_env, deps) as stack:
        # noon PST on the day of the change
        await stack.skip_to(datetime.combine(change, time(20), UTC))
        day = plan_day(await stack.now(), config)
        assert day.date == str(after)
        assert day.logs_to - day.logs_from == timedelta(hours=25)
        assert day.window_start == datetime.combine(after, time(14), UTC)
        # Last written that day (the test server's clock is a year ahead of the file's).
        os.utime(path, (day.logs_to.timestamp(),) * 2)
        await stack.service.create("lars", config)
        await stack.skip_to(day.window_start)
        spoken = await stack.service.greet("lars", request_id="morning", via="voice")
        view = await stack.service.get_briefing("lars", day.date)
    assert spoken.outcome is GreetOutcome.SPOKEN and spoken.given_at_local == "06:00", spoken
    assert view.content.log_lines == 4 and view.content.errors == 4, view.content


async def test_a_briefing_paused_for_weeks_and_greeted_each_morning_keeps_its_history_small(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Turned off for a month, with its speaker greeting it every morning: each greeting is
    answered "paused" and the run's history does not grow with the weeks (a run waits paused
    for a day at most, then goes on as new with what it carried), so a pause of any length
    stays far from Temporal's history limits."""
    await make_user(deps.db, "pavel")
    async with briefing_stack(ts_env, deps) as stack:
        config = BriefingConfig(timezone="Asia/Shanghai", language="en")
        day = await stack.plan(config)
        await stack.service.create("pavel", config)
        await eventually(lambda: _planned(stack.service, "pavel"), "day planned")
        await stack.service.pause("pavel")
        handle = ts_env.client.get_workflow_handle("daily-briefing/pavel")
        renewed = ""  # a run that started paused, recorded once it has gone on as new
        for n in range(30):
            await stack.skip_to(day.window_start + timedelta(days=n, minutes=30))
            paused = await stack.service.greet("pavel", request_id=f"morning-{n}")
            assert paused.outcome is GreetOutcome.PAUSED, (n, paused)
            if n == 1:
                renewed = (await handle.describe()).run_id
        await save_history(
            ts_env.client.get_workflow_handle(handle.id, run_id=renewed),
            "daily_briefing_paused_renewed",
        )
        events = [e async for e in handle.fetch_history_events()]
        status = await stack.service.status("pavel")
        await stack.service.resume("pavel")
        await stack.skip_to(day.window_start + timedelta(days=31, minutes=30))
        spoken = await stack.service.greet("pavel", request_id="back")
    assert status.paused
    accepted = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    updates = [e for e in events if e.event_type == accepted]
    assert len(updates) <= 2, f"{len(events)} events, {len(updates)} greetings in one run"
    assert spoken.outcome is GreetOutcome.SPOKEN, spoken
    assert spoken.date == (day.logs_to + timedelta(days=31, hours=8)).date().isoformat()


async def _planned(service, user):  # type: ignore[no-untyped-def]
    status = await service.status(user)
    return status if status.day is not None else None


async def test_a_move_east_past_the_window_still_pushes_the_morning_nobody_greeted(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Prepared in Shanghai, nobody greets; at 09:05 there the user moves the briefing to
    Asia/Tokyo, where it is 10:05 and the window is over. That morning's briefing, which nobody
    heard, is still pushed (the run it replaced would have pushed it at 10:00 Shanghai), not
    lost between the two zones."""
    from ambient.storage.repositories import InboxRepository

    await make_user(deps.db, "tomo")
    async with briefing_stack(ts_env, deps) as stack:
        config = BriefingConfig(timezone="Asia/Shanghai", language="en")
        day = await stack.plan(config)
        await stack.service.create("tomo", config)
        await stack.skip_to(day.window_start + timedelta(hours=3, minutes=5))  # 09:05 Shanghai
        prepared = await stack.service.status("tomo")
        assert prepared.prepared is not None and prepared.given_at is None
        moved = config.model_copy(update={"timezone": "Asia/Tokyo"})
        await stack.service.create("tomo", moved)
        status = await eventually(lambda: _planned(stack.service, "tomo"), "day planned")
        assert status.day is not None and status.day.date > day.date  # Tokyo's next morning
        await stack.skip_to(day.window_end + timedelta(minutes=5))
        view = await eventually(
            lambda: _pushed(stack.service, "tomo", day.date), "the morning pushed"
        )
        await save_history(
            ts_env.client.get_workflow_handle("daily-briefing/tomo"),
            "daily_briefing_unheard_pushed",
        )
        async with deps.db.session() as session:
            inbox = await InboxRepository(session).list("tomo")
    assert view.given_at is None and view.status == "pushed"
    assert len(inbox) == 1 and day.date in inbox[0].title, inbox


async def _pushed(service, user, date):  # type: ignore[no-untyped-def]
    view = await service.get_briefing(user, date)
    return view if view.pushed_at is not None else None
