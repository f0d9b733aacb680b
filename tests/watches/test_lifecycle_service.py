"""TaskService on the dev server: baseline at creation, one life per creation, updates by
request id, schedules updated in place, paged lists with summaries."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from starlette.requests import Request
from starlette.responses import Response
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.testing import WorkflowEnvironment

from ambient import temporal
from ambient.briefing.models import MAX_REQUEST_ID
from ambient.briefing.service import BriefingService
from ambient.clients.notify.registry import build_channels
from ambient.deps import WorkerDeps
from ambient.domain.users import UserSettings
from ambient.storage.repositories import EventRepository, SnapshotRepository
from ambient.storage.users import UserRepository, not_registered
from ambient.watches import schedules
from ambient.watches.configs import TaskState
from ambient.watches.controls import RUNS_AFTER_THE_CURRENT, RUNS_NOW
from ambient.watches.deadline import CHECK_STARTED
from ambient.watches.inputs import (
    InvalidTaskError,
    TaskError,
    TaskNotFoundError,
    TaskStateError,
)
from ambient.watches.listing import TaskPage, TaskSummary
from ambient.watches.models import TaskRef, TaskStatus
from ambient.watches.reminders import ReminderConfig, ReminderRun
from ambient.watches.service import TaskService
from tests.conftest import unique
from tests.support.record import save_history
from tests.support.servers import HANG, serve
from tests.support.users import register
from tests.support.waits import eventually, until_equal
from tests.support.web_ui import current_details
from tests.watches.site import Site, article
from tests.watches.test_controls_in_flight import signals
from tests.watches.test_lifecycle import GatedSite, gated  # noqa: F401  (fixture)
from tests.watches.test_workflows import (  # noqa: F401  (fixture)
    USER,
    inbox_titles,
    kinds,
    loopback_deps,
)
from worker import build_worker
from workflows.reminder import ReminderWorkflow


@pytest_asyncio.fixture
async def service(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
) -> AsyncIterator[TaskService]:
    queue = queue_of_its_own(loopback_deps)
    async with build_worker(dev_env.client, loopback_deps, task_queue=queue):
        yield tasks_of(dev_env.client, loopback_deps)


def queue_of_its_own(deps: WorkerDeps) -> str:
    """A task queue for this test's worker alone, set in ``deps``' settings."""
    queue = unique("tq")
    deps.settings = deps.settings.model_copy(update={"temporal_task_queue": queue})
    return queue


def tasks_of(client: Client, deps: WorkerDeps) -> TaskService:
    """The task service the tests drive, on ``deps``' settings and database."""
    return TaskService(
        client,
        deps.settings,
        deps.db,
        briefings=BriefingService(client, deps.settings, deps.db),
        # A create's wait for its first check: the product's 25 s went by on a loaded host,
        # and the baseline the tests check came back empty.
        baseline_wait=HANG,
    )


def monitor(base: str, *paths: str, minutes: int = 60) -> dict[str, Any]:
    return {"urls": [f"{base}{p}" for p in paths], "check_interval_minutes": minutes}


async def test_create_returns_the_baseline_and_reports_a_wrong_url_at_once(
    service: TaskService,
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    state, base = gated
    state.pages["/ok"] = article("All quiet.")
    name = unique("base")
    ref = await service.create(USER, "web_monitor", monitor(base, "/ok", "/nope"), name)
    assert ref.created and ref.baseline is not None
    urls = ref.baseline["urls"]
    assert urls[f"{base}/ok"] == {"outcome": "baseline", "error": None}
    assert urls[f"{base}/nope"]["outcome"] == "error" and "404" in urls[f"{base}/nope"]["error"]
    await service.delete(USER, ref.task_id)


async def test_threshold_watch_baseline_reports_a_source_that_answers_html(
    service: TaskService,
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    state, base = gated
    state.html, state.values = True, [50]
    config = {
        "source": {"type": "http_json", "url": f"{base}/value", "json_path": "$.data.amount"},
        "threshold": 100,
        "check_interval_minutes": 5,
    }
    ref = await service.create(USER, "threshold_watch", config, unique("html"))
    assert ref.created and ref.baseline is not None
    assert ref.baseline["value"] is None
    assert ref.baseline["error"] == (
        "the source answered text/html, not JSON: <html><body>Maintenance</body></html>"
    )
    await service.delete(USER, ref.task_id)


async def test_create_again_same_config_is_idempotent_other_config_is_refused(
    service: TaskService,
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    state, base = gated
    state.pages["/a"] = article("A page.")
    name = unique("same")
    first = await service.create(USER, "web_monitor", monitor(base, "/a"), name)
    again = await service.create(USER, "web_monitor", monitor(base, "/a"), name)
    assert first.created and not again.created and again.task_id == first.task_id
    with pytest.raises(InvalidTaskError, match=r"update_task .* delete_task"):
        await service.create(USER, "web_monitor", monitor(base, "/a", minutes=30), name)
    status = await service.get(USER, first.task_id)
    assert status.config["check_interval_minutes"] == 60
    await service.delete(USER, first.task_id)


async def test_the_same_threshold_watch_created_twice_returns_the_first(
    service: TaskService,
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    state, base = gated
    state.values = [50]
    value = {"type": "http_json", "url": f"{base}/value", "json_path": "$.data.amount"}
    # The threshold shorthand, as the tools' own example writes it; named and derived names.
    config = {"source": value, "threshold": 100, "check_interval_minutes": 5}
    for name in (unique("twice"), None):
        first = await service.create(USER, "threshold_watch", config, name)
        again = await service.create(USER, "threshold_watch", config, name)
        assert first.created and (again.task_id, again.created) == (first.task_id, False)
        assert again.state == "active"
        if name is not None:
            with pytest.raises(InvalidTaskError, match=r"another config; call update_task"):
                await service.create(USER, "threshold_watch", config | {"threshold": 120}, name)
        await service.delete(USER, first.task_id)


class HeldPages(GatedSite):
    """The test site with its pages held by the gate too."""

    async def page(self, request: Request) -> Response:
        self.waiting.set()
        await self.gate.wait()
        return await super().page(request)


async def test_concurrent_identical_creates_all_answer_the_first_checks_baseline(
    service: TaskService,
) -> None:
    site = HeldPages()
    site.pages["/a"] = article("A page.")
    site.gate.clear()
    async with serve(site.app()) as base:
        name, config = unique("together"), monitor(base, "/a")
        creates = [
            asyncio.create_task(service.create(USER, "web_monitor", config, name)) for _ in range(3)
        ]
        try:
            await asyncio.wait_for(site.waiting.wait(), 30)  # the first check is fetching
            await asyncio.wait(creates, timeout=2)
        finally:
            site.gate.set()
        refs = await asyncio.gather(*creates)
    assert sorted(r.created for r in refs) == [False, False, True]
    assert {r.task_id for r in refs} == {f"web-monitor/{USER}/{name}"}
    # Not an empty baseline ("no URL checked") for the creates that found the task starting.
    for ref in refs:
        assert ref.baseline == {"urls": {f"{base}/a": {"outcome": "baseline", "error": None}}}
    await service.delete(USER, refs[0].task_id)


async def test_a_pause_landing_during_the_first_check_is_the_state_the_create_answers(
    service: TaskService,
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """A web monitor paused (another door) while its first check fetched its page: the create
    answered ``active``, though the task it answered about was paused by then."""
    state, base = gated
    state.pages["/a"] = article("A page.")
    state.page_gate.clear()
    name = unique("pausedfirst")
    create = asyncio.create_task(service.create(USER, "web_monitor", monitor(base, "/a"), name))
    task_id = f"web-monitor/{USER}/{name}"
    try:
        await asyncio.wait_for(state.page_waiting.wait(), HANG)  # the first check is fetching
        assert (await service.pause(USER, task_id)).state == "paused"
    finally:
        state.page_gate.set()
    ref = await asyncio.wait_for(create, HANG)
    assert ref.created and ref.baseline is not None
    assert ref.state == "paused"
    assert (await service.get(USER, ref.task_id)).state == "paused"
    await service.delete(USER, ref.task_id)


async def test_task_created_again_after_stop_lists_once_with_the_same_state_as_show(
    service: TaskService,
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    state, base = gated
    state.pages["/a"] = article("A page.")
    name = unique("twice")
    first = await service.create(USER, "web_monitor", monitor(base, "/a"), name)
    await service.delete(USER, first.task_id)
    await service.client.get_workflow_handle(first.task_id).result()

    async def states() -> list[str]:
        return [t.state for t in await service.list(USER) if t.task_id == first.task_id]

    # get describes the run (read-your-writes); the list is a visibility query, eventually
    # consistent: the run's close, then the new life's start, reach it a moment later.
    await until_equal(states, ["stopped"], "the ended life listed once, stopped")
    assert (await service.get(USER, first.task_id)).state == "stopped"

    second = await service.create(USER, "web_monitor", monitor(base, "/a"), name)
    assert second.created and second.baseline is not None
    assert (await service.get(USER, first.task_id)).state == "active"
    await until_equal(states, ["active"], "the new life listed once, active")
    (listed,) = [t for t in await service.list(USER) if t.task_id == first.task_id]
    assert listed.summary == f"Web monitor of 1 URL(s) every 60 min for {USER}"
    await service.delete(USER, second.task_id)


async def listed_summary(service: TaskService, task_id: str, says: str) -> str:
    """The task's summary as list_tasks shows it, once it says ``says`` (a visibility query:
    eventually consistent)."""

    async def summary() -> str | None:
        rows = [t for t in await service.list(USER) if t.task_id == task_id]
        return rows[0].summary if rows and rows[0].summary and says in rows[0].summary else None

    return await eventually(summary, f"a summary saying {says!r}")


async def test_a_threshold_watchs_summary_says_the_lines_an_update_gave(
    service: TaskService,
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """list_tasks, the dashboard and the voice's task names said "above 100" after the line
    was raised to 150: the summary was written once, at the start."""
    state, base = gated
    state.values = [50]
    config = {
        "source": {"type": "http_json", "url": f"{base}/value", "json_path": "$.data.amount"},
        "threshold": 100,
        "check_interval_minutes": 5,
    }
    ref = await service.create(USER, "threshold_watch", config, unique("sum"))
    said = await listed_summary(service, ref.task_id, "100")
    assert said == "Threshold watch http_json: above 100"
    status = await service.update(USER, ref.task_id, {**config, "threshold": 150})
    assert status.config["conditions"] == [{"op": "above", "value": 150.0}]
    said = await listed_summary(service, ref.task_id, "150")
    assert said == "Threshold watch http_json: above 150"
    await service.delete(USER, ref.task_id)
    handle = service.client.get_workflow_handle(ref.task_id)
    await handle.result()
    await save_history(handle, "threshold_watch_update_rewrites_summary")


async def test_a_web_monitors_summary_says_the_interval_an_update_gave(
    service: TaskService,
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    state, base = gated
    state.pages["/a"] = article("A page.")
    ref = await service.create(USER, "web_monitor", monitor(base, "/a"), unique("every"))
    await listed_summary(service, ref.task_id, "every 60 min")
    handle = service.client.get_workflow_handle(ref.task_id)
    assert (await current_details(handle)).endswith("every 60 min for " + USER)
    await service.update(USER, ref.task_id, monitor(base, "/a", minutes=30))
    said = await listed_summary(service, ref.task_id, "every 30 min")
    assert said == f"Web monitor of 1 URL(s) every 30 min for {USER}"
    # The Web UI's too (its Summary is the start's): it said "every 60 min" on.
    assert await current_details(handle) == said
    await service.delete(USER, ref.task_id)
    await handle.result()
    await save_history(handle, "web_monitor_update_rewrites_summary")


async def test_create_right_after_delete_starts_a_new_life(
    service: TaskService,
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    state, base = gated
    state.pages["/a"] = article("A page.")
    name = unique("quick")
    first = await service.create(USER, "web_monitor", monitor(base, "/a"), name)
    old_life = (await service.get(USER, first.task_id)).detail["life"]
    await service.delete(USER, first.task_id)
    second = await service.create(USER, "web_monitor", monitor(base, "/a"), name)
    status = await service.get(USER, second.task_id)
    assert second.created and status.state == "active"
    assert status.detail["life"] != old_life
    await service.delete(USER, second.task_id)


async def test_updates_follow_request_ids_so_a_to_b_to_a_ends_at_a(
    service: TaskService,
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    state, base = gated
    state.pages["/a"] = article("A page.")
    ref = await service.create(USER, "web_monitor", monitor(base, "/a"), unique("upd"))
    a, b = monitor(base, "/a", minutes=60), monitor(base, "/a", minutes=30)
    await service.update(USER, ref.task_id, b)
    back = await service.update(USER, ref.task_id, a)
    assert back.config["check_interval_minutes"] == 60
    # A retried request (same id) is applied once, even after a later change.
    await service.update(USER, ref.task_id, b, request_id="req-1")
    await service.update(USER, ref.task_id, a, request_id="req-2")
    retried = await service.update(USER, ref.task_id, b, request_id="req-1")
    assert retried.config["check_interval_minutes"] == 60
    await service.delete(USER, ref.task_id)


async def test_schedule_update_is_validated_first_and_applied_in_place(
    service: TaskService,
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    _, base = gated
    reminder = {"type": "daily", "hour": 7, "message": "stand-up", "timezone": "UTC"}
    ref = await service.create(USER, "schedule", reminder, unique("sched"))
    handle = service.client.get_schedule_handle(ref.task_id)
    created_at = (await handle.describe()).info.created_at
    with pytest.raises(InvalidTaskError, match="message"):
        await service.update(USER, ref.task_id, reminder | {"message": ""})
    kept = await service.get(USER, ref.task_id)
    assert kept.kind == "schedule" and kept.config["message"] == "stand-up"
    # A request id out of bounds is refused for a schedule as for a watch (it was dropped),
    # at the briefing's bound (update took 200 characters, greet and send 128).
    for bad in ("", "r" * (MAX_REQUEST_ID + 1)):
        with pytest.raises(InvalidTaskError, match="request_id"):
            await service.update(USER, ref.task_id, reminder | {"hour": 9}, request_id=bad)
    assert (await service.get(USER, ref.task_id)).config["hour"] == 7

    digest = {"action": "news_digest", "news_urls": [f"{base}/front"], "hour": 8}
    changed = await service.update(USER, ref.task_id, digest)
    assert changed.kind == "news_digest" and changed.config["news_urls"] == [f"{base}/front"]
    assert (await handle.describe()).info.created_at == created_at

    # The list is a visibility query, eventually consistent: the schedule's new search
    # attributes and note reach it after the update has answered.
    async def digest_listed() -> list[TaskSummary] | None:
        listed = [t for t in await service.list(USER) if t.task_id == ref.task_id]
        digest = [t.kind for t in listed] == ["news_digest"]
        return listed if digest and (listed[0].summary or "").startswith("News digest") else None

    await eventually(digest_listed, "the schedule listed as a news digest, with its summary")
    await service.delete(USER, ref.task_id)


async def test_a_reminder_without_a_time_zone_runs_in_the_users_own(
    service: TaskService,
) -> None:
    async with service.db.session() as session:
        users = UserRepository(session)
        user = await users.get(USER)
        assert user is not None
        await users.update(user, UserSettings(timezone="Europe/Berlin"))
        await session.commit()
    reminder = {"type": "daily", "hour": 8, "message": "stand-up"}
    ref = await service.create(USER, "schedule", reminder, unique("sched"))
    description = await service.client.get_schedule_handle(ref.task_id).describe()
    assert description.schedule.spec.time_zone_name == "Europe/Berlin"
    berlin = ZoneInfo("Europe/Berlin")
    runs = [t.astimezone(berlin) for t in description.info.next_action_times]
    assert runs and {(t.hour, t.minute) for t in runs} == {(8, 0)}
    assert (await service.get(USER, ref.task_id)).config["timezone"] == "Europe/Berlin"
    # A zone given is the zone used.
    given = await service.create(USER, "schedule", reminder | {"timezone": "UTC"}, unique("s"))
    assert (await service.get(USER, given.task_id)).config["timezone"] == "UTC"
    await service.delete(USER, ref.task_id)
    await service.delete(USER, given.task_id)


def _day_soon_not_a_monday(now: datetime) -> int:
    """The day of the month (at most 28: every month has it) of the first date two days or
    more after ``now`` that is no Monday."""
    day = now.date() + timedelta(days=2)
    while day.weekday() == 0 or day.day > 28:
        day += timedelta(days=1)
    return day.day


async def test_a_cron_naming_days_of_month_and_of_week_runs_on_either_as_cron_does(
    service: TaskService,
) -> None:
    # Cron runs "0 9 1 * 1" on the 1st and on Mondays; a schedule's one cron needs both, so it
    # ran only on a Monday the 1st (and "0 9 31 2 1", on Mondays in February, never). The day
    # of the month is one whose next date is no Monday: the ten next runs Temporal lists hold
    # it (from 2027-01-01 to the 24th the ten of "0 9 1 * 1" were all Mondays, February's and
    # March's 1sts among them).
    payday = _day_soon_not_a_monday(datetime.now(UTC))
    for cron, weekday, day in ((f"0 9 {payday} * 1", 0, payday), ("0 9 31 2 1", 0, 31)):
        config = {"cron": cron, "timezone": "UTC", "message": "payday"}
        ref = await service.create(USER, "schedule", config, unique("sched"))
        runs = (await service.client.get_schedule_handle(ref.task_id).describe()).info
        times = runs.next_action_times
        assert times and all((t.hour, t.minute) == (9, 0) for t in times), (cron, times)
        assert all(t.weekday() == weekday or t.day == day for t in times), (cron, times)
        assert any(t.weekday() == weekday and t.day != day for t in times), (cron, times)
        if day == payday:
            assert any(t.day == day and t.weekday() != weekday for t in times), times
        assert (await service.get(USER, ref.task_id)).config["cron"] == cron
        await service.delete(USER, ref.task_id)


async def test_a_weekday_step_from_a_start_ends_at_saturday_as_cron_does(
    service: TaskService,
) -> None:
    # "1/2" is Monday, Wednesday, Friday in cron; a schedule's step went on to 7, Sunday too.
    for cron in ("0 9 * * 1/2", "0 9 * * mon/2,sat"):
        config = {"cron": cron, "timezone": "UTC", "message": "gym"}
        ref = await service.create(USER, "schedule", config, unique("sched"))
        times = (await service.client.get_schedule_handle(ref.task_id).describe()).info
        assert {t.weekday() for t in times.next_action_times} == {0, 2, 4} | (
            {5} if "sat" in cron else set()
        ), (cron, times.next_action_times)
        await service.delete(USER, ref.task_id)


async def test_a_weekday_step_from_sunday_written_7_runs_as_cron_does(
    service: TaskService,
) -> None:
    # Accepted, "7/2" was rewritten "7-6/2" and the create failed with a raw RPC error
    # ("DayOfWeek End is before Start"); cron's 7 is Sunday, so "7/2" is "0/2".
    for cron, days in (("0 9 * * 7/2", {6, 1, 3, 5}), ("0 9 * * 7/1", set(range(7)))):
        config = {"cron": cron, "timezone": "UTC", "message": "gym"}
        ref = await service.create(USER, "schedule", config, unique("sched"))
        times = (await service.client.get_schedule_handle(ref.task_id).describe()).info
        assert {t.weekday() for t in times.next_action_times} == days, (cron, times)
        await service.delete(USER, ref.task_id)


# Stored before crons naming both day fields ran on either: one cron, run only on a Monday the 1st.
PAYDAY = {"cron": "0 9 1 * 1", "timezone": "UTC", "message": "payday"}


async def created_with_the_old_spec(
    service: TaskService, monkeypatch: pytest.MonkeyPatch, name: str, *, paused: bool = False
) -> Any:
    with monkeypatch.context() as old:
        old.setattr(schedules, "schedule_crons", lambda cron: [cron])
        ref = await service.create(USER, "schedule", PAYDAY, name)
        if paused:
            await service.pause(USER, ref.task_id)
    return ref


def pause_between_look_and_write(
    monkeypatch: pytest.MonkeyPatch, pause: Callable[[], Awaitable[Any]]
) -> None:
    """``pause`` runs once, after a repeated create's look and before its write."""
    looked = schedules.TaskSchedules._schedule_status
    paused: list[bool] = []

    async def look_then_pause(
        self: TaskService, user: str, task_id: str, description: Any = None
    ) -> Any:
        status = await looked(self, user, task_id, description)
        if description is not None and not paused:
            paused.append(True)
            await pause()
        return status

    monkeypatch.setattr(schedules.TaskSchedules, "_schedule_status", look_then_pause)


async def test_a_reminder_stored_with_an_older_spec_takes_the_new_one_when_created_again(
    service: TaskService, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Created again, it answered created=False and kept the old spec.
    name = unique("sched")
    ref = await created_with_the_old_spec(service, monkeypatch, name)
    handle = service.client.get_schedule_handle(ref.task_id)
    assert all(t.weekday() == 0 for t in (await handle.describe()).info.next_action_times)
    again = await service.create(USER, "schedule", PAYDAY, name)
    assert (again.task_id, again.created) == (ref.task_id, False)
    times = (await handle.describe()).info.next_action_times
    assert any(t.day != 1 for t in times), times  # every Monday: the old spec, 1sts only
    assert any(t.weekday() == 0 and t.day != 1 for t in times), times
    await service.delete(USER, ref.task_id)


async def test_a_pause_landing_while_a_repeated_create_rewrites_is_kept_and_answered(
    service: TaskService, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A pause between the create's look and its write made the server drop the write (stale
    # conflict token); the config check after it passed anyway (the same config), so the old
    # spec stayed and the answer said "active" while the schedule was paused.
    name = unique("sched")
    ref = await created_with_the_old_spec(service, monkeypatch, name)
    handle = service.client.get_schedule_handle(ref.task_id)
    pause_between_look_and_write(monkeypatch, lambda: handle.pause(note="paused by someone"))
    again = await service.create(USER, "schedule", PAYDAY, name)
    described = await handle.describe()
    assert (again.created, again.state) == (False, TaskState.PAUSED)
    assert described.schedule.state.paused
    times = described.info.next_action_times
    assert any(t.day != 1 for t in times), times  # every Monday: the old spec, 1sts only
    await service.delete(USER, ref.task_id)


async def test_a_paused_and_resumed_reminder_lists_with_its_summary(service: TaskService) -> None:
    # A pause or resume wrote "paused by alice" / "resumed by alice" as the schedule's note,
    # which is the summary list_tasks shows: the reminder's own summary was gone for good.
    config = {"cron": "0 9 * * *", "timezone": "UTC", "message": "stretch"}
    ref = await service.create(USER, "schedule", config, unique("sched"))
    summary = f"Reminder, cron 0 9 * * * UTC, for {USER}: stretch"
    for control, state in ((service.pause, "paused"), (service.resume, "active")):
        assert (await control(USER, ref.task_id)).state == state

        async def listed(state: str = state) -> TaskSummary | None:
            # The list is a visibility query: the task, and the control, show there a moment
            # later.
            task = {task.task_id: task for task in await service.list(USER)}.get(ref.task_id)
            return task if task is not None and task.state == state else None

        assert (await eventually(listed, f"listed {state}")).summary == summary
    await service.delete(USER, ref.task_id)


async def test_a_pause_of_a_paused_reminder_while_it_is_created_again_keeps_the_rewrite(
    service: TaskService, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A pause of a paused schedule wrote it again (note and all) and moved its conflict token:
    # landing between a repeated create's look and its write, the dropped write looked landed.
    name = unique("sched")
    ref = await created_with_the_old_spec(service, monkeypatch, name, paused=True)
    handle = service.client.get_schedule_handle(ref.task_id)
    pause_between_look_and_write(monkeypatch, lambda: service.pause(USER, ref.task_id))
    again = await service.create(USER, "schedule", PAYDAY, name)
    assert (again.created, again.state) == (False, TaskState.PAUSED)
    times = (await handle.describe()).info.next_action_times
    assert any(t.day != 1 for t in times), times  # every Monday: the old spec, 1sts only
    await service.delete(USER, ref.task_id)


async def a_daily_reminder(service: TaskService) -> tuple[str, Any, Any]:
    """A new user's reminder every day at 9: the user, its ref and its schedule's handle."""
    user = unique("attr")
    await register(service.db, user)
    config = {"cron": "0 9 * * *", "timezone": "UTC", "message": "stretch"}
    ref = await service.create(user, "schedule", config, unique("sched"))
    return user, ref, service.client.get_schedule_handle(ref.task_id)


async def test_a_paused_reminder_is_found_as_paused_by_its_state_attribute(
    service: TaskService,
) -> None:
    # A pause or resume left AmbientState as the create wrote it ("active"): the Web UI and an
    # operator's `AmbientState = "paused"` showed a paused reminder as active, or missed it.
    user, ref, handle = await a_daily_reminder(service)
    for control, state in ((service.pause, "paused"), (service.resume, "active")):
        assert (await control(user, ref.task_id)).state == state
        described = await handle.describe()
        assert described.typed_search_attributes.get(temporal.STATE) == state
        query = f'AmbientUser = "{user}" AND AmbientState = "{state}"'

        async def listed(query: str = query) -> list[str] | None:  # eventually consistent
            return [s.id async for s in await service.client.list_schedules(query)] or None

        assert await eventually(listed, query) == [ref.task_id]
    await service.delete(user, ref.task_id)


async def test_a_reminder_paused_before_its_state_was_written_is_marked_paused_when_paused_again(
    service: TaskService,
) -> None:
    # Paused by an older release (a schedule patch: AmbientState stayed "active"), a pause again
    # answered "paused" and wrote nothing, since the schedule was paused already.
    user, ref, handle = await a_daily_reminder(service)
    await handle.pause(note="paused by an older release")
    assert (await handle.describe()).typed_search_attributes.get(temporal.STATE) == "active"
    assert (await service.pause(user, ref.task_id)).state == "paused"
    assert (await handle.describe()).typed_search_attributes.get(temporal.STATE) == "paused"
    await service.delete(user, ref.task_id)


async def test_a_pause_and_resume_landing_while_a_repeated_create_rewrites_keep_the_rewrite(
    service: TaskService, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both moved the conflict token and left note, pause state and config as the create's write
    # wanted: its dropped write looked landed and the schedule kept the old spec.
    name = unique("sched")
    ref = await created_with_the_old_spec(service, monkeypatch, name)
    handle = service.client.get_schedule_handle(ref.task_id)

    async def pause_and_resume() -> None:
        await service.pause(USER, ref.task_id)
        await service.resume(USER, ref.task_id)

    pause_between_look_and_write(monkeypatch, pause_and_resume)
    again = await service.create(USER, "schedule", PAYDAY, name)
    described = await handle.describe()
    assert (again.created, again.state) == (False, TaskState.ACTIVE)
    assert not described.schedule.state.paused
    assert described.typed_search_attributes.get(temporal.STATE) == "active"
    times = described.info.next_action_times
    assert any(t.day != 1 for t in times), times  # every Monday: the old spec, 1sts only
    await service.delete(USER, ref.task_id)


async def test_list_pages_through_every_task_once(
    service: TaskService,
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    state, base = gated
    state.pages["/a"] = article("A page.")
    user_tasks = []
    for index in range(3):
        config = monitor(base, "/a", minutes=60 + index)
        user_tasks.append((await service.create(USER, "web_monitor", config, unique("p"))).task_id)
    reminder = {"type": "daily", "hour": 7, "message": "paged", "timezone": "UTC"}
    user_tasks.append((await service.create(USER, "schedule", reminder, unique("p"))).task_id)

    async def all_listed() -> bool:  # the list is a visibility query, eventually consistent
        return set(user_tasks) <= {t.task_id for t in await service.list(USER)}

    await eventually(all_listed, "the four tasks listed")
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        page = await service.list(USER, page_size=2, page_token=token)
        seen.extend(t.task_id for t in page)
        pages += 1
        token = page.next_page_token
        if token is None:
            break
    assert pages >= 3
    assert len(seen) == len(set(seen)) and set(user_tasks) <= set(seen)
    with pytest.raises(InvalidTaskError, match="page_token"):
        await service.list(USER, page_size=2, page_token="not-a-token")
    # The previous release's cursor (its phase and Temporal's token) is refused the same way.
    older = base64.urlsafe_b64encode(json.dumps({"p": "watches", "t": None}).encode()).decode()
    with pytest.raises(InvalidTaskError, match="omit it to start again"):
        await service.list(USER, page_size=2, page_token=older)
    # A token of one list's walk given with other filters: one at the schedules answered an
    # empty last page for web monitors; one of web monitors skipped the rest under no kind.
    first = await service.list(USER, page_size=2)
    monitors = await service.list(USER, page_size=1, kind="web_monitor")
    for other, asked in ((first, {"kind": "web_monitor"}), (monitors, {"state": "active"})):
        with pytest.raises(InvalidTaskError, match="another kind or state"):
            await service.list(USER, page_size=2, page_token=other.next_page_token, **asked)
    for task_id in user_tasks:
        await service.delete(USER, task_id)


async def test_listing_the_tasks_of_a_user_nobody_registered_says_so(
    service: TaskService,
) -> None:
    """`ambient task list` on a deployment without its default user (dev) said nothing was
    there; a registered user with no task still gets an empty list."""
    nobody, somebody = unique("nobody"), unique("somebody")
    await register(service.db, somebody)
    for page_size, kind in ((None, None), (2, None), (2, "web_monitor"), (2, "schedule")):
        with pytest.raises(InvalidTaskError) as refused:
            await service.list(nobody, kind=kind, page_size=page_size)
        assert str(refused.value) == not_registered(nobody)
        assert await service.list(somebody, kind=kind, page_size=page_size) == []


async def test_every_created_task_id_works_with_list_get_pause_update_resume_trigger_delete(
    service: TaskService,
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    state, base = gated
    state.pages["/a"] = article("A page.")
    state.values = [50]
    # The briefing is one per user: a user of its own keeps this test apart from the others.
    user = unique("owner")
    await register(service.db, user)
    value = {"type": "http_json", "url": f"{base}/value", "json_path": "$.data.amount"}
    configs: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
        "web_monitor": (monitor(base, "/a"), monitor(base, "/a", minutes=90)),
        "threshold_watch": (
            {"source": value, "threshold": 100},
            {"source": value, "threshold": 120},
        ),
        "schedule": (
            {"message": "站会", "cron": "30 9 * * 1-5"},
            {"message": "站会", "cron": "45 9 * * 1-5"},
        ),
        "daily_briefing": ({"timezone": "Asia/Shanghai"}, {"timezone": "Europe/Berlin"}),
    }
    ids = {}
    for kind, (config, _) in configs.items():
        if kind == "daily_briefing":
            continue
        ref = await service.create(user, kind, config, unique("all"))
        assert ref.created and ref.kind == kind
        ids[kind] = ref.task_id
    # The briefing's own create (create_daily_briefing, POST /briefings) gives the id.
    briefings = BriefingService(service.client, service.settings, service.db)
    ids["daily_briefing"] = (await briefings.create(user, configs["daily_briefing"][0])).task_id
    assert ids["daily_briefing"] == f"daily-briefing/{user}"
    # Visibility is eventually consistent: wait until every task is listed.
    listed = await _listed(service, user, lambda tasks: set(ids.values()) <= set(tasks))
    assert listed[ids["daily_briefing"]].kind == "daily_briefing"
    assert listed[ids["daily_briefing"]].summary is not None
    for kind, task_id in ids.items():
        status = await service.get(user, task_id)
        assert (status.kind, status.state) == (kind, "active"), task_id
        assert (await service.pause(user, task_id)).state == "paused"
        # A new config is not a resume: the task stays paused.
        changed = await service.update(user, task_id, configs[kind][1])
        assert changed.state == "paused", task_id
        await _listed(service, user, lambda tasks: tasks[task_id].state == "paused")  # noqa: B023
        assert (await service.resume(user, task_id)).state == "active"
        await service.trigger(user, task_id)
        assert (await service.delete(user, task_id)).state == "stopped"
    # Another user cannot reach them.
    with pytest.raises(TaskNotFoundError):
        await service.get(USER, ids["daily_briefing"])


async def _listed(
    service: TaskService, user: str, holds: Callable[[dict[str, TaskSummary]], bool]
) -> dict[str, TaskSummary]:
    """The user's tasks by id once ``holds`` is true of them (the list is a visibility query,
    eventually consistent)."""

    async def listed() -> dict[str, TaskSummary] | None:
        tasks = {t.task_id: t for t in await service.list(user)}
        return tasks if holds(tasks) else None

    return await eventually(listed, "list_tasks showed it")


async def walk(service: TaskService, user: str, size: int, **filters: Any) -> list[list[str]]:
    """Every page of ``user``'s list, as task ids."""
    pages: list[list[str]] = []
    token: str | None = None
    while True:
        page = await service.list(user, page_size=size, page_token=token, **filters)
        pages.append([t.task_id for t in page])
        token = page.next_page_token
        if token is None:
            return pages


async def test_paging_walks_every_task_exactly_once_when_a_task_is_created_between_pages(
    service: TaskService,
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    state, base = gated
    state.pages["/a"] = article("A page.")
    user = unique("walker")
    await register(service.db, user)
    before = [
        (await service.create(user, "web_monitor", monitor(base, "/a", minutes=60 + i))).task_id
        for i in range(4)
    ]
    reminder = {"type": "daily", "hour": 7, "message": "walk", "timezone": "UTC"}
    before.append((await service.create(user, "schedule", reminder)).task_id)
    await eventually_listed(service, user, before)

    first = await service.list(user, page_size=2)
    late = (await service.create(user, "web_monitor", monitor(base, "/a", minutes=99))).task_id
    seen = [t.task_id for t in first]
    token = first.next_page_token
    while token is not None:
        page = await service.list(user, page_size=2, page_token=token)
        seen += [t.task_id for t in page]
        token = page.next_page_token
    assert len(seen) == len(set(seen))  # nothing twice, the late task included or not
    assert set(before) <= set(seen)
    for task_id in [*before, late]:
        await service.delete(user, task_id)


async def rest_of(
    service: TaskService, user: str, first: TaskPage, **filters: Any
) -> list[TaskSummary]:
    """``first`` and every page after it (of the list ``filters`` ask for)."""
    seen, token = list(first), first.next_page_token
    while token is not None:
        page = await service.list(user, page_size=len(first), page_token=token, **filters)
        seen += page
        token = page.next_page_token
    return seen


async def in_visibility(service: TaskService, task_id: str, status: str) -> None:
    """Wait until visibility (what a list reads) shows ``task_id``'s newest run in ``status``."""

    async def shown() -> bool:
        runs = [r async for r in service.client.list_workflows(f'WorkflowId = "{task_id}"')]
        newest = max(runs, key=lambda run: run.start_time)
        return newest.status is WorkflowExecutionStatus[status]

    await eventually(shown, f"{task_id} {status} in visibility")


async def test_a_task_deleted_between_pages_is_listed_once(
    service: TaskService,
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    # Listed active on the first page, then deleted: its ended run sorted behind the cursor
    # and the last page listed it again, stopped.
    state, base = gated
    state.pages["/a"] = article("A page.")
    user = unique("deleter")
    await register(service.db, user)
    ids = [
        (await service.create(user, "web_monitor", monitor(base, "/a", minutes=60 + i))).task_id
        for i in range(4)
    ]
    await eventually_listed(service, user, ids)
    first = await service.list(user, page_size=2)
    gone = first[0].task_id
    await service.delete(user, gone)
    await service.client.get_workflow_handle(gone).result()
    await in_visibility(service, gone, "COMPLETED")
    seen = await rest_of(service, user, first)
    assert sorted(t.task_id for t in seen) == sorted(ids)
    for task_id in ids:
        await service.delete(user, task_id)


async def test_tasks_deleted_ahead_of_the_cursor_are_listed_once_a_page_at_a_time(
    service: TaskService,
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    # Ended since the first page, they are listed at their place among those still running,
    # and a page holds no more than its size of them.
    state, base = gated
    state.pages["/a"] = article("A page.")
    user = unique("ahead")
    await register(service.db, user)
    ids = [
        (await service.create(user, "web_monitor", monitor(base, "/a", minutes=60 + i))).task_id
        for i in range(4)
    ]
    await eventually_listed(service, user, ids)
    first = await service.list(user, page_size=1)
    ahead = [task_id for task_id in ids if task_id != first[0].task_id][1:]
    for task_id in ahead:
        await service.delete(user, task_id)
        await service.client.get_workflow_handle(task_id).result()
        await in_visibility(service, task_id, "COMPLETED")
    seen, token = [first], first.next_page_token
    while token is not None:
        page = await service.list(user, page_size=1, page_token=token)
        seen.append(page)
        token = page.next_page_token
    assert all(len(page) <= 1 for page in seen)
    listed = {t.task_id: t.state for page in seen for t in page}
    assert sorted(t.task_id for page in seen for t in page) == sorted(ids)
    assert [listed[task_id] for task_id in ahead] == ["stopped", "stopped"]
    for task_id in ids:
        await service.delete(user, task_id)


async def test_a_task_deleted_and_created_again_between_pages_is_listed_once_as_it_is_now(
    service: TaskService,
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    # One not yet listed, deleted and created again: its new run sorted ahead of the cursor
    # and its ended run was an earlier life, so no page listed it. One already listed, the
    # same: listed once, on the first page.
    state, base = gated
    state.pages["/a"] = article("A page.")
    user = unique("again")
    await register(service.db, user)
    names = [unique("n") for _ in range(4)]
    ids = [
        (await service.create(user, "web_monitor", monitor(base, "/a", minutes=60 + i), n)).task_id
        for i, n in enumerate(names)
    ]
    await eventually_listed(service, user, ids)
    first = await service.list(user, page_size=2)
    listed = first[0].task_id
    later = next(task_id for task_id in ids if task_id not in {t.task_id for t in first})
    for task_id in (listed, later):
        await service.delete(user, task_id)
        await service.client.get_workflow_handle(task_id).result()
        await in_visibility(service, task_id, "COMPLETED")
        index = ids.index(task_id)
        config = monitor(base, "/a", minutes=60 + index)
        again = await service.create(user, "web_monitor", config, names[index])
        assert again.created and again.task_id == task_id
        await in_visibility(service, task_id, "RUNNING")
    seen = await rest_of(service, user, first)
    assert sorted(t.task_id for t in seen) == sorted(ids)
    assert [t.state for t in seen if t.task_id == later] == ["active"]
    for task_id in ids:
        await service.delete(user, task_id)


async def test_a_state_filter_is_part_of_the_query_so_a_paused_task_is_on_the_first_page(
    service: TaskService,
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    state, base = gated
    state.pages["/a"] = article("A page.")
    user = unique("pauser")
    await register(service.db, user)
    ids = [
        (await service.create(user, "web_monitor", monitor(base, "/a", minutes=60 + i))).task_id
        for i in range(3)
    ]
    await service.pause(user, ids[0])  # the oldest: the last of an unfiltered walk
    await eventually_listed(service, user, ids)

    async def paused_first() -> bool:
        page = await service.list(user, page_size=1, state="paused")
        return [t.task_id for t in page] == [ids[0]]

    await eventually(paused_first, "the paused task alone under state=paused")  # visibility
    active = [t for page in await walk(service, user, 1, state="active") for t in page]
    assert sorted(active) == sorted(ids[1:])
    assert await walk(service, user, 1, state="stopped") == [[]]
    for task_id in ids:
        await service.delete(user, task_id)


async def _continuing(service: TaskService, user: str, config: dict[str, Any], **run: float) -> str:
    """A web monitor of ``user`` that continues as new after each check (``run``: more fields
    of its input), started as a create starts it; its task id."""
    from ambient.watches.configs import TaskKind, WebMonitorConfig
    from ambient.watches.models import WebMonitorInput

    task_id = f"web-monitor/{user}/{unique('continues')}"
    watch = WebMonitorInput(
        user=user,
        task=task_id,
        config=WebMonitorConfig.model_validate(config),
        continue_as_new_after_checks=1,
        **run,  # type: ignore[arg-type]
    )
    await service._start(TaskKind.WEB_MONITOR, watch, "a watch that continues after a check")
    return task_id


async def test_a_state_filtered_walk_lists_a_watch_that_continued_as_new_between_pages(
    service: TaskService,
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    # A watch continues as new every few hundred events (about every 40 hours): under
    # state=active its run running at the first page had ended by the next page, its new
    # run started after it, and no page of the walk listed the watch.
    state, base = gated
    state.pages["/a"] = article("A page.")
    user = unique("continuer")
    await register(service.db, user)
    task_id = await _continuing(service, user, monitor(base, "/a", minutes=60))
    handle = service.client.get_workflow_handle(task_id)
    await in_visibility(service, task_id, "RUNNING")
    ids = [
        (await service.create(user, "web_monitor", monitor(base, "/a", minutes=61 + i))).task_id
        for i in range(2)
    ]
    await eventually_listed(service, user, [task_id, *ids])
    first = await service.list(user, page_size=1, state="active")
    assert [t.task_id for t in first] == [ids[-1]]  # the newest; the watch further down
    before = (await handle.describe()).run_id
    await service.trigger(user, task_id)  # its check: the run continues as new after it

    async def continued() -> bool:
        return (await handle.describe()).run_id != before

    await eventually(continued, "the watch's next run")
    await in_visibility(service, task_id, "RUNNING")
    seen = [t.task_id for t in await rest_of(service, user, first, state="active")]
    assert sorted(seen) == sorted([task_id, *ids])
    for each in [task_id, *ids]:
        await service.delete(user, each)


async def test_a_filtered_list_of_schedules_answers_full_pages_not_empty_ones(
    service: TaskService,
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    # Schedules were listed by user and filtered after each page: `kind=news_digest` or
    # `state=paused` answered short or empty pages that still carried a cursor, and a client
    # that stops at an empty page said there was nothing.
    _, base = gated
    user = unique("filter")
    await register(service.db, user)
    digest = {"action": "news_digest", "news_urls": [f"{base}/front"], "hour": 8}
    reminder = {"type": "daily", "hour": 7, "message": "filtered", "timezone": "UTC"}
    # The oldest are listed last: the two the filters keep are behind four that they drop.
    paused = (await service.create(user, "schedule", reminder | {"hour": 6})).task_id
    news = (await service.create(user, "schedule", digest)).task_id
    others = [
        (await service.create(user, "schedule", reminder | {"minute": m})).task_id for m in range(4)
    ]
    await service.pause(user, paused)
    await _listed(
        service,
        user,
        lambda tasks: {news, *others} <= set(tasks) and tasks[paused].state == "paused",
    )
    assert await walk(service, user, 2, kind="news_digest") == [[news]]
    assert await walk(service, user, 2, state="paused") == [[paused]]
    assert await walk(service, user, 2, kind="news_digest", state="paused") == [[]]
    active = await walk(service, user, 2, kind="schedule", state="active")
    assert [len(page) for page in active[:-1]] == [2, 2]  # full pages until the last
    assert sorted(t for page in active for t in page) == sorted([news, *others])
    for task_id in [paused, news, *others]:
        await service.delete(user, task_id)


async def eventually_listed(service: TaskService, user: str, ids: list[str]) -> None:
    """Visibility is eventually consistent: wait until the list shows ``ids``."""

    async def listed() -> bool:
        return sorted(t.task_id for t in await service.list(user)) == sorted(ids)

    await eventually(listed, f"{ids} listed")


@dataclass
class Held:
    """A threshold watch whose first breach alert is held at its webhook: deleted, it winds
    down until the gate opens."""

    service: TaskService
    task_id: str
    config: dict[str, Any]
    site: GatedSite

    async def ended(self) -> None:
        self.site.hook_gate.set()
        await self.service.client.get_workflow_handle(self.task_id).result()


@pytest_asyncio.fixture
async def held(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> AsyncIterator[Held]:
    state, base = gated
    state.values = [150]
    state.hook_gate.clear()
    value = {"type": "http_json", "url": f"{base}/value", "json_path": "$.data.amount"}
    config = {
        "source": value,
        "threshold": 100,
        "targets": [{"type": "webhook", "target": f"{base}/hook"}],
    }
    deps, queue = loopback_deps, unique("tq")
    deps.settings = deps.settings.model_copy(update={"temporal_task_queue": queue})
    deps.channels = build_channels(deps.settings, deps.db, deps.http)
    service = TaskService(
        dev_env.client,
        deps.settings,
        deps.db,
        briefings=BriefingService(dev_env.client, deps.settings, deps.db),
        baseline_wait=0.5,
    )
    async with build_worker(dev_env.client, deps, task_queue=queue):
        ref = await service.create(USER, "threshold_watch", config, unique("winding"))
        try:
            await asyncio.wait_for(state.hook_waiting.wait(), 30)
            yield Held(service, ref.task_id, config, state)
        finally:
            state.hook_gate.set()  # the worker stops only once its delivery has ended


async def test_a_deleted_watch_still_winding_down_refuses_pause_resume_trigger_and_update(
    held: Held,
) -> None:
    service, task_id, config = held.service, held.task_id, held.config
    assert (await service.delete(USER, task_id)).state == "stopped"
    assert (await service.get(USER, task_id)).state == "stopped"
    for poke in (service.pause, service.resume, service.trigger):
        with pytest.raises(InvalidTaskError, match="is stopped; create it again"):
            await poke(USER, task_id)
    with pytest.raises(InvalidTaskError, match="is stopped; create it again"):
        await service.update(USER, task_id, config | {"threshold": 120})
    # The workflow refuses it too (a delete between the service's look and the update), and
    # a check now's update (taken, it woke a web monitor's end: tests/watches/test_polling.py).
    handle = service.client.get_workflow_handle(task_id)
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update("update_config", config | {"threshold": 120}, result_type=dict)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update("checked_now", result_type=TaskStatus)
    assert str(refused.value.cause).endswith("the task is stopped; create it again to restart it")
    # Deleted again (a door's retry) as its alert is still sent: the same end.
    assert (await service.delete(USER, task_id)).state == "stopped"
    status = await service.get(USER, task_id)
    assert status.state == "stopped"
    assert status.config["conditions"] == [{"op": "above", "value": 100}]
    await held.ended()
    async with service.db.session() as session:
        events = await EventRepository(session).list(task=task_id, limit=100)
    assert sorted(e.kind for e in events) == ["watch.breach", "watch.stopped"]


async def test_a_check_now_a_stopping_watch_refuses_is_answered_stopped_without_a_signal(
    held: Held, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delete lands after the trigger's look (the run still active then): the run refuses the
    check now update as stopped. A check_now signal sent after it was wasted (the run ignores
    it), and once the run ended it was told "no task" instead of "stopped"."""
    service, task_id = held.service, held.task_id
    looked = service._live

    async def deleted_after_the_look(task: str) -> tuple[TaskState, Any]:
        before = await looked(task)
        await service.delete(USER, task)
        assert (await service.get(USER, task)).state == "stopped"  # the run took the stop
        return before

    monkeypatch.setattr(service, "_live", deleted_after_the_look)
    with pytest.raises(TaskStateError, match="is stopped; create it again to restart it"):
        await service.trigger(USER, task_id)
    assert await signals(service.client.get_workflow_handle(task_id), "check_now") == 0
    await held.ended()


async def test_a_deleted_watch_still_winding_down_is_listed_as_stopped_as_get_says(
    held: Held,
) -> None:
    """Deleted while its breach alert was still being sent, the watch was listed 'active' (and
    under state=active, not under state=stopped) until its run ended, while get_task said
    'stopped'."""
    service, task_id = held.service, held.task_id
    await service.delete(USER, task_id)
    assert (await service.get(USER, task_id)).state == "stopped"

    async def listed() -> dict[str | None, set[str]]:
        return {
            state: {t.task_id for t in await service.list(USER, state=state)} & {task_id}
            for state in (None, "active", "paused", "stopped")
        }

    want: dict[str | None, set[str]] = {None: {task_id}, "stopped": {task_id}}
    want |= {"active": set(), "paused": set()}

    await until_equal(listed, want, "the lists as wanted")  # visibility is eventually consistent
    (summary,) = [t for t in await service.list(USER) if t.task_id == task_id]
    assert summary.state == "stopped"
    handle = service.client.get_workflow_handle(task_id)
    assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING  # still ending
    await held.ended()
    await save_history(handle, "threshold_watch_stopped_while_delivering")


async def test_create_again_while_the_deleted_life_winds_down_is_refused_until_it_has_ended(
    held: Held,
) -> None:
    service, task_id, config = held.service, held.task_id, held.config
    name = task_id.rsplit("/", 1)[1]
    await service.delete(USER, task_id)
    for again in (config, config | {"threshold": 120}):
        with pytest.raises(InvalidTaskError, match="still stopping") as refused:
            await service.create(USER, "threshold_watch", again, name)
        assert "update_task" not in str(refused.value)
    await held.ended()
    ref = await service.create(USER, "threshold_watch", config | {"threshold": 120}, name)
    assert ref.created and ref.state == "active"
    status = await service.get(USER, task_id)
    assert status.state == "active"
    assert status.config["conditions"] == [{"op": "above", "value": 120}]
    await service.delete(USER, task_id)


async def test_a_create_again_while_the_deleted_life_winds_down_waits_one_baseline_wait(
    held: Held,
) -> None:
    """A create under the name of a task deleted a moment ago waited ``baseline_wait`` for the
    old life's end, then ``baseline_wait`` again for the new life's first check: up to 50 s in
    the product, past the 30 s a self-hosted xiaozhi-server waits for a tool call. The create
    has one wait: the old life's end takes its part of it. The old life ends most of the wait
    in, and the new life's read answers after the one wait's end but before a second would end:
    a create with one wait answers without a baseline (a loaded host only makes it later)."""
    # 8 s: the old life has half the wait to end once its alert is answered (at load 20 its
    # end took past 0.8 s of a 4 s wait, and the create answered "still stopping").
    wait, name = 8.0, held.task_id.rsplit("/", 1)[1]
    held_service = held.service
    service = TaskService(
        held_service.client,
        held_service.settings,
        held_service.db,
        briefings=held_service.briefings,
        baseline_wait=wait,
    )
    await service.delete(USER, held.task_id)
    held.site.gate.clear()  # the new life's first check holds at its read
    loop = asyncio.get_running_loop()
    loop.call_later(wait * 0.5, held.site.hook_gate.set)  # the old life's alert answered then
    loop.call_later(wait * 1.3, held.site.gate.set)  # the new life's read answers then
    ref = await service.create(USER, "threshold_watch", held.config, name)
    held.site.gate.set()
    await service.delete(USER, held.task_id)
    assert ref.baseline is None and ref.state == "active"


@pytest.mark.usefixtures("product_local_read_limit")
async def test_a_watch_whose_metric_read_hangs_still_answers_and_takes_its_controls(
    service: TaskService,
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """A threshold watch whose metric source was slow to answer (a slow endpoint, a 5 s DNS
    retry): during the read trigger_task, pause_task and get_task said "no worker answered
    within 5 s; is the worker running?" (the read held the workflow task, and every query
    waited for it), though the worker was alive and the trigger was delivered."""
    state, base = gated
    state.values = [50]
    value = {"type": "http_json", "url": f"{base}/value", "json_path": "$.data.amount"}
    config = {"source": value, "threshold": 100}
    ref = await service.create(USER, "threshold_watch", config, unique("slow"))
    assert ref.baseline == {"value": 50, "error": None}
    state.gate.clear()
    state.waiting.clear()
    # Check now waits for the check it asked (up to the service's wait): its read is held.
    trigger = asyncio.create_task(service.trigger(USER, ref.task_id))
    try:
        await asyncio.wait_for(state.waiting.wait(), HANG)  # the read is held at the source
        # Asked again if a loaded host's worker is slow once; the hold itself never ends here.
        held = await eventually(lambda: service.get(USER, ref.task_id), "the held watch's status")
        assert held.state == "active"
        assert (await service.pause(USER, ref.task_id)).state == "paused"
        paused = await eventually(lambda: service.get(USER, ref.task_id), "the paused status")
        assert paused.state == "paused"
        assert (await service.resume(USER, ref.task_id)).state == "active"
    finally:
        state.gate.set()
    # Its answer: the value read once the source answered (or, a loaded host past the
    # service's wait, that the check started).
    told = await asyncio.wait_for(trigger, HANG)
    assert told.state == "active"
    assert told.note == CHECK_STARTED or (told.checked or {}).get("value") == 50, told

    async def checked() -> TaskStatus | None:
        status = await service.get(USER, ref.task_id)
        return status if status.checks >= 3 else None

    # The held read ends, then the resume's check.
    status = await eventually(checked, "three checks")
    assert status.detail["last_value"] == 50
    assert status.detail["last_error"] is None and status.state == "active"
    await service.delete(USER, ref.task_id)
    handle = service.client.get_workflow_handle(ref.task_id)
    await handle.result()
    await save_history(handle, "threshold_watch_slow_read")


async def test_a_page_taken_out_of_a_web_monitor_leaves_its_status(
    service: TaskService,
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    state, base = gated
    state.pages["/ok"] = article("All quiet.")
    ref = await service.create(USER, "web_monitor", monitor(base, "/ok", "/nope"), unique("out"))
    assert ref.baseline is not None and ref.baseline["urls"][f"{base}/nope"]["outcome"] == "error"
    for paused in (False, True):
        if paused:
            await service.update(USER, ref.task_id, monitor(base, "/ok", "/nope"))
            await service.pause(USER, ref.task_id)
        before = (await service.get(USER, ref.task_id)).checks
        status = await service.update(USER, ref.task_id, monitor(base, "/ok"))
        # At once too: the poll that began before the update (its heartbeat still shows the
        # page) is not what the status says the watch watches.
        assert list(status.detail["urls"]) == [f"{base}/ok"], status.detail["urls"]
        if not paused:

            async def checked(before: int = before) -> TaskStatus | None:
                now = await service.get(USER, ref.task_id)  # a running watch checks it at once
                return now if now.checks > before else None

            status = await eventually(checked, "a check of the new config")
        assert list(status.detail["urls"]) == [f"{base}/ok"], status.detail["urls"]
        assert status.detail["last_error"] is None
    await service.delete(USER, ref.task_id)


async def test_a_reminder_created_again_and_run_now_in_the_same_second_runs(
    service: TaskService,
) -> None:
    """run now, delete, create again with a new message, run now, within one second: the
    new reminder's run was never started (its run had the deleted one's workflow id, the
    name and the second) and nothing was sent, while trigger_task answered as if it ran."""
    name = unique("again")
    reminder = {"message": "walk", "hour": 8, "timezone": "UTC"}
    # Early in a second, so both runs are asked for within it (run ids carry the second).
    await asyncio.sleep(1.02 - time.time() % 1)
    first = await service.create(USER, "schedule", reminder, name)
    await service.trigger(USER, first.task_id)
    await service.delete(USER, first.task_id)
    again = await service.create(USER, "schedule", reminder | {"message": "run"}, name)
    await service.trigger(USER, again.task_id)

    async def sent() -> list[str]:
        async with service.db.session() as session:
            events = await EventRepository(session).list(task=first.task_id, limit=10)
        return sorted(str(e.payload["body"]) for e in events if e.kind == "schedule.reminder")

    # The schedule starts its runs a moment after the trigger.
    await until_equal(sent, ["run", "walk"], "both reminders sent")
    await service.delete(USER, again.task_id)


async def test_a_run_now_while_a_digest_runs_runs_after_it_and_says_so(
    service: TaskService,
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """A second run now while the first still read a slow news page answered 'active' as
    the first did, and never ran: the schedule skipped it (its overlap policy)."""
    state, base = gated
    state.pages["/front"] = article("Old story about rivers.")
    digest = {"action": "news_digest", "news_urls": [f"{base}/front"], "hour": 8}
    ref = await service.create(USER, "schedule", digest, unique("digest"))
    handle = service.client.get_schedule_handle(ref.task_id)
    state.page_waiting.clear()
    state.page_gate.clear()  # a slow news page: the first run now is still reading it
    first = await service.trigger(USER, ref.task_id)
    await asyncio.wait_for(state.page_waiting.wait(), 30)
    second = await service.trigger(USER, ref.task_id)  # "send it to me now" again
    state.page_gate.set()
    # The first runs now, and says so (its note was null: nothing said it was sent).
    assert first.note == RUNS_NOW, first
    assert second.note == RUNS_AFTER_THE_CURRENT, second

    async def runs() -> int | None:
        info = (await handle.describe()).info
        done = info.num_actions >= 2 and not info.running_actions
        return info.num_actions if done else None

    assert await eventually(runs, "two runs for two asks") == 2
    assert (await handle.describe()).info.num_actions_skipped_overlap == 0
    await service.delete(USER, ref.task_id)


async def test_a_news_digest_steered_and_deleted_is_answered_as_a_news_digest(
    service: TaskService,
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """pause_task, resume_task, trigger_task and delete_task of a news digest answered kind
    'schedule' while create_task, get_task and list_tasks said 'news_digest'."""
    _state, base = gated
    digest = {"action": "news_digest", "news_urls": [f"{base}/front"], "hour": 8}
    ref = await service.create(USER, "schedule", digest, unique("digest"))
    assert ref.kind == "news_digest"
    for steer in (service.pause, service.resume, service.trigger, service.delete):
        assert (await steer(USER, ref.task_id)).kind == "news_digest", steer.__name__


async def test_a_pause_during_a_schedule_update_is_kept(service: TaskService) -> None:
    """pause_task while an update_task of the same reminder was being written: the pause
    answered 'paused', and the update then wrote the pause state it had read before it, so
    the reminder ran on (2 of 25 tries here)."""
    reminder = {"message": "walk", "hour": 8, "timezone": "UTC"}
    ref = await service.create(USER, "schedule", reminder, unique("race"))

    async def pause_after(delay: float) -> str:
        await asyncio.sleep(delay)  # lands at a different point of the update's look and write
        return (await service.pause(USER, ref.task_id)).state

    for i in range(25):
        await service.resume(USER, ref.task_id)
        updated, paused = await asyncio.gather(
            service.update(USER, ref.task_id, reminder | {"hour": 9 + i % 2}),
            pause_after(i * 0.004),
        )
        assert updated.config["hour"] == 9 + i % 2, i
        status = await service.get(USER, ref.task_id)
        assert (paused, status.state, status.config["hour"]) == ("paused", "paused", 9 + i % 2), i
    await service.delete(USER, ref.task_id)


async def test_a_pause_or_resume_overtaken_at_every_try_says_to_pause_or_resume_again(
    service: TaskService, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Overtaken at each of its tries, a pause or resume said "call update_task again": a call
    # the user (pause_task, the API, the CLI, the page's button) never made.
    user, ref, handle = await a_daily_reminder(service)
    looked = schedules.TaskSchedules._schedule_status

    async def look_then_change(
        self: TaskService, user: str, task_id: str, description: Any = None
    ) -> Any:
        status = await looked(self, user, task_id, description)
        if description is not None:  # someone pauses or unpauses it after every look
            await (handle.unpause() if description.schedule.state.paused else handle.pause())
        return status

    steps = ((service.pause, service.resume, "pause"), (service.resume, service.pause, "resume"))
    for control, opposite, verb in steps:
        await opposite(user, ref.task_id)  # so this control has something to change
        with monkeypatch.context() as overtaken:
            overtaken.setattr(schedules.TaskSchedules, "_schedule_status", look_then_change)
            with pytest.raises(TaskError) as refused:
                await control(user, ref.task_id)
        assert str(refused.value) == (
            f"schedule {ref.task_id!r} was changed by other requests during each try of this "
            f"{verb}; {verb} it again"
        )
    await service.delete(user, ref.task_id)


async def test_a_news_digest_created_again_after_delete_starts_with_a_first_look(
    service: TaskService,
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    state, base = gated
    state.pages["/front"] = article("Old story about rivers.")
    digest = {"action": "news_digest", "news_urls": [f"{base}/front"], "hour": 8}
    name = unique("digest")

    async def scheduled_run(task_id: str, day: str) -> str:
        """One run as the schedule starts it (its own workflow id, the task's config)."""
        config = (await service.get(USER, task_id)).config
        return await service.client.execute_workflow(
            ReminderWorkflow.run,
            ReminderRun(user=USER, task=task_id, config=ReminderConfig.model_validate(config)),
            id=f"{task_id}/run-{day}",
            task_queue=service.settings.temporal_task_queue,
        )

    first = await service.create(USER, "schedule", digest, name)
    said = await scheduled_run(first.task_id, "1")
    # Its next run, whenever its schedule makes it: not "from tomorrow" to a weekly one.
    assert "first look taken; news appear from its next run" in said, said
    await service.delete(USER, first.task_id)
    state.pages["/front"] = article("Old story about rivers.", "New bridge opens.")
    # A new life of the same name: its first run looks first, it does not report the news of
    # a page the deleted digest saw.
    again = await service.create(USER, "schedule", digest, name)
    assert again.task_id == first.task_id and again.created
    body = await scheduled_run(again.task_id, "2")
    assert "first look taken" in body and "New bridge opens." not in body, body
    await service.delete(USER, again.task_id)


async def test_a_digest_created_again_while_the_deleted_ones_run_reads_still_looks_first(
    service: TaskService,
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """The deleted digest's run, still reading a slow page, stored it after the new life's
    create had dropped the kept pages: the new life's first run said "nothing new", never
    "first look taken"."""
    state, base = gated
    state.pages["/front"] = article("Old story about rivers.")
    digest = {"action": "news_digest", "news_urls": [f"{base}/front"], "hour": 8}
    name = unique("digest")

    async def scheduled_run(task_id: str, day: str) -> Awaitable[str]:
        """One run as the schedule starts it: the run its action holds, its own workflow id."""
        described = await service.client.get_schedule_handle(task_id).describe()
        run = await service._stored_run(described)
        assert run is not None
        return service.client.execute_workflow(
            ReminderWorkflow.run,
            run,
            id=f"{task_id}/run-{day}",
            task_queue=service.settings.temporal_task_queue,
        )

    first = await service.create(USER, "schedule", digest, name)
    assert "first look taken" in await (await scheduled_run(first.task_id, "1"))
    # The old life's next run is reading the page (a slow news site) ...
    state.pages["/front"] = article("Old story about rivers.", "New bridge opens.")
    state.page_waiting.clear()
    state.page_gate.clear()
    old_run = asyncio.ensure_future(await scheduled_run(first.task_id, "2"))
    await asyncio.wait_for(state.page_waiting.wait(), 30)
    # ... when the digest is deleted and created again under its name (a delete lets a run
    # under way deliver).
    await service.delete(USER, first.task_id)
    again = await service.create(USER, "schedule", digest, name)
    assert again.task_id == first.task_id and again.created
    state.page_gate.set()
    assert "New bridge opens." in await old_run
    body = await (await scheduled_run(again.task_id, "3"))
    assert "first look taken" in body, body
    # An update keeps the life, and so the pages its runs compare with.
    await service.update(USER, again.task_id, digest | {"hour": 9})
    state.pages["/front"] = article("Old story about rivers.", "Second bridge opens.")
    body = await (await scheduled_run(again.task_id, "4"))
    assert "- Second bridge opens." in body and "New bridge" not in body, body
    await service.delete(USER, again.task_id)


async def test_an_update_that_a_delete_overtakes_is_refused_as_stopped_not_as_a_bad_config(
    service: TaskService,
    gated: tuple[GatedSite, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """update_task and delete_task at once: the delete landed between the service's look at
    the task and its update, and the workflow's refusal came back as a wrong config (a 422 on
    'config' over the API) instead of the task being stopped (409), as it is a moment later."""
    state, base = gated
    state.pages["/a"] = article("A page.")
    ref = await service.create(USER, "web_monitor", monitor(base, "/a"), unique("race"))
    looked = service._answering

    async def look_then_deleted(user: str, task_id: str) -> None:
        await looked(user, task_id)
        await service.delete(user, task_id)  # the other request's delete, in between

    monkeypatch.setattr(service, "_answering", look_then_deleted)
    with pytest.raises(TaskStateError, match="is stopped; create it again"):
        await service.update(USER, ref.task_id, monitor(base, "/a", minutes=30))
    assert (await service.get(USER, ref.task_id)).config["check_interval_minutes"] == 60


async def test_a_listed_watch_shows_when_it_was_created_not_when_its_run_continued(
    service: TaskService,
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """A watch continues as new every few hundred history events (about every 40 hours):
    list_tasks (and GET /tasks, `ambient task list`) showed its current run's start as its
    ``started_at``, so a watch created weeks ago read as started yesterday."""
    state, base = gated
    state.pages["/news"] = article("All quiet.")
    before = datetime.now(UTC)
    config = monitor(base, "/news", minutes=1)
    task_id = await _continuing(
        service, USER, config, check_interval_seconds=0.5, poll_window_seconds=1.0
    )
    handle = service.client.get_workflow_handle(task_id)
    first = await handle.describe()

    async def continued() -> WorkflowExecutionDescription | None:
        now = await handle.describe()
        return now if now.run_id != first.run_id else None

    now = await eventually(continued, "the next run")
    assert now.start_time > first.start_time
    tasks = await _listed(
        service, USER, lambda tasks: task_id in tasks and tasks[task_id].started_at is not None
    )
    # Written by the create, a moment before the server started the first run.
    created = tasks[task_id].started_at
    assert created is not None and before <= created <= first.start_time
    await service.delete(USER, task_id)


async def test_a_listed_reminder_shows_when_it_was_created(service: TaskService) -> None:
    """A reminder or digest (a Schedule) was listed with no ``started_at`` (`ambient task list`
    printed an empty column), so list_tasks' "sort by started_at for the newest task" never
    found a reminder just made."""
    before = datetime.now(UTC)
    reminder = {"type": "daily", "hour": 7, "message": "when", "timezone": "UTC"}
    ref = await service.create(USER, "schedule", reminder, unique("made"))
    tasks = await _listed(service, USER, lambda tasks: ref.task_id in tasks)
    created = tasks[ref.task_id].started_at
    assert created is not None and before <= created <= datetime.now(UTC)
    await service.delete(USER, ref.task_id)


async def test_a_watch_created_again_after_its_run_was_terminated_is_not_failing_its_old_page(
    service: TaskService,
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """A watch whose page failed was terminated (the Web UI) and created again under its name
    with the page back: the old life's watch.failing, told by no watch.stopped, stayed in "what
    needs me" (the voice, the context provider) for the new life, which never tells it
    recovered (its first check is a baseline)."""
    state, base = gated
    name = unique("again")
    config = {**monitor(base, "/gone"), "failure_threshold": 1}
    ref = await service.create(USER, "web_monitor", config, name)
    async with service.db.session() as session:
        failing = await EventRepository(session).failing_pages(user=USER, task=ref.task_id)
    assert failing == [(ref.task_id, f"{base}/gone")]
    handle = service.client.get_workflow_handle(ref.task_id)
    await handle.terminate("from the Web UI")
    state.pages["/gone"] = article("Back again.")
    again = await service.create(USER, "web_monitor", config, name)
    assert again.created and again.baseline == {
        "urls": {f"{base}/gone": {"outcome": "baseline", "error": None}}
    }
    async with service.db.session() as session:
        assert await EventRepository(session).failing_pages(user=USER, task=ref.task_id) == []
    await service.delete(USER, ref.task_id)


async def test_an_update_adding_a_wrong_url_reports_it_as_a_create_does(
    service: TaskService,
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """A create waits for the first check and reports a wrong URL at once; an update that
    added one answered before the new page was checked, without it: the user learnt of the
    404 only by asking get_task later."""
    state, base = gated
    state.pages["/ok"] = article("All quiet.")
    ref = await service.create(USER, "web_monitor", monitor(base, "/ok"), unique("upd"))
    status = await service.update(USER, ref.task_id, monitor(base, "/ok", "/typo"))
    urls: Any = status.detail["urls"]
    assert urls[f"{base}/typo"]["last_outcome"] == "error"
    assert "404" in urls[f"{base}/typo"]["last_error"]
    assert urls[f"{base}/ok"]["last_outcome"] in ("baseline", "not_modified", "unchanged")
    await service.pause(USER, ref.task_id)
    paused = await service.update(USER, ref.task_id, monitor(base, "/ok", "/later"))
    # Paused: no check (it comes at the resume), and the update does not wait for one.
    assert f"{base}/later" not in paused.detail["urls"]  # type: ignore[operator]
    await service.delete(USER, ref.task_id)
    handle = service.client.get_workflow_handle(ref.task_id)
    await handle.result()
    await save_history(handle, "web_monitor_pages_checked")


async def test_a_page_taken_out_and_put_back_is_a_new_baseline_not_compared_with_its_old_text(
    service: TaskService,
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """A page's state was kept in the watch's poll record after the page was taken out of the
    watch, and taken back by the next poll when it was put back: its first check compared
    the page with its text from before, a change told (a stale diff) where a page added is a
    baseline, and one failing when taken out came back failing, never said failing again."""
    state, base = gated
    state.pages["/ok"] = article("All quiet.")
    state.pages["/back"] = article("Version one.")
    ref = await service.create(USER, "web_monitor", monitor(base, "/ok", "/back"), unique("back"))
    await service.update(USER, ref.task_id, monitor(base, "/ok"))
    state.pages["/back"] = article("Version two: an outage.")
    put_back = datetime.now(UTC)
    await service.update(USER, ref.task_id, monitor(base, "/ok", "/back"))

    async def checked() -> dict[str, Any] | None:
        urls: Any = (await service.get(USER, ref.task_id)).detail["urls"]
        page = urls.get(f"{base}/back") or {}
        at = page.get("last_checked_at")
        return page if at and datetime.fromisoformat(at) >= put_back else None

    page = await eventually(checked, "the page put back checked")
    assert page["last_outcome"] == "baseline", page
    await service.delete(USER, ref.task_id)
    async with service.db.session() as session:
        events = await EventRepository(session).list(task=ref.task_id, limit=50)
    assert [e.kind for e in events if e.kind in ("watch.change", "watch.hit")] == []


async def test_an_update_changing_a_selector_answers_the_page_as_the_new_one_reads_it(
    service: TaskService,
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """An update answers each page as its new config reads it: one whose selector it changed
    to one that matches nothing was answered with its last outcome by the old selector."""
    state, base = gated
    state.pages["/ok"] = article("All quiet.")
    config = monitor(base, "/ok") | {"selectors": {f"{base}/ok": "article"}}
    ref = await service.create(USER, "web_monitor", config, unique("sel"))
    # The update's check of the page is held until the update waits for it.
    state.page_gate.clear()
    state.page_waiting.clear()
    config["selectors"] = {f"{base}/ok": "#price"}
    handle = service.client.get_workflow_handle(ref.task_id)
    taken = await pages_checked_taken(handle)

    async def asked() -> bool:
        return await pages_checked_taken(handle) > taken

    update = asyncio.ensure_future(service.update(USER, ref.task_id, config))
    await asyncio.wait_for(state.page_waiting.wait(), 20)
    await eventually(asked, "the update's pages_checked taken by the run")
    state.page_gate.set()
    status = await update
    seen: Any = status.detail["urls"][f"{base}/ok"]  # type: ignore[index]
    assert (seen["last_outcome"], seen["last_error"]) == (
        "error",
        "cannot read the page's text: the selector '#price' matches nothing on the page",
    )
    await service.delete(USER, ref.task_id)
    await handle.result()
    await save_history(handle, "web_monitor_pages_checked_reading")


async def pages_checked_taken(handle: WorkflowHandle[Any, Any]) -> int:
    """How many pages_checked updates the run took."""
    history = await handle.fetch_history()
    return sum(
        e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
        == "pages_checked"
        for e in history.events
    )


async def test_a_listed_briefing_keeps_when_it_was_created_across_a_new_config(
    service: TaskService,
) -> None:
    """A briefing's new config replaces its run (and a day's end continues it as new): the
    list showed the newest run's start as its started_at, as if created just now."""
    user = unique("since")
    await register(service.db, user)
    briefings = BriefingService(service.client, service.settings, service.db)
    before = datetime.now(UTC)
    task_id = (await briefings.create(user, {"timezone": "Asia/Shanghai"})).task_id
    handle = service.client.get_workflow_handle(task_id)
    first = await handle.describe()
    await service.update(user, task_id, {"timezone": "Europe/Berlin"})
    second = await handle.describe()
    assert second.run_id != first.run_id and second.start_time > first.start_time
    listed = await _listed(
        service,
        user,
        lambda tasks: (
            task_id in tasks
            and tasks[task_id].summary is not None
            and "Europe/Berlin" in (tasks[task_id].summary or "")
        ),
    )
    created = listed[task_id].started_at
    assert created is not None and before <= created <= first.start_time
    await service.delete(user, task_id)


async def task_failures(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The workflow-task failures in the run's history."""
    return [
        e.workflow_task_failed_event_attributes.failure.message
        async for e in handle.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]


async def test_a_poll_lost_sent_by_hand_with_inputs_that_do_not_fit_leaves_a_watch_working(
    service: TaskService,
) -> None:
    """The Temporal Web UI lists every signal a watch defines, poll_lost among them: sent
    with its input box left empty (no input), or with two, it failed the watch's workflow task
    on every attempt, for good. Now such a signal is dropped and the watch goes on."""
    async with serve(Site().app()) as base:
        ref = await service.create(USER, "web_monitor", monitor(base, "/"), unique("hand"))
        handle = service.client.get_workflow_handle(ref.task_id)
        await handle.signal("poll_lost")
        lost = {"poll": 1, "process": "p-1", "reason": "by hand"}
        await handle.signal("poll_lost", args=[lost, lost])
        # The watch still takes its controls: the pause asked through ambient-ops lands.
        await service.pause(USER, ref.task_id)

        async def paused() -> bool:
            return (await service.get(USER, ref.task_id)).state is TaskState.PAUSED

        await eventually(paused, "the watch is paused")
        failures = await task_failures(handle)
        await service.delete(USER, ref.task_id)
    assert failures == []


async def reset_to_first_workflow_task(client: Client, workflow_id: str) -> str:
    """`temporal workflow reset --type FirstWorkflowTask` of the running run: the new run's id."""
    handle = client.get_workflow_handle(workflow_id)
    completed = [
        e.event_id
        async for e in handle.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    ]
    run_id = (await handle.describe()).run_id
    answer = await client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace=client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
            reason="upgrade",
            workflow_task_finish_event_id=completed[0],
            request_id=str(uuid.uuid4()),
        )
    )
    return answer.run_id


Said = Callable[[], Awaitable[list[str]]]


async def _breaching(
    service: TaskService, served: tuple[GatedSite, str], deps: WorkerDeps, name: str
) -> tuple[GatedSite, TaskRef, Said, Said]:
    """A threshold watch over its line from its second check on, that check asked for: the
    site, the task, its breach and recovery events (and the checks that found one told), and
    the titles of its messages in the inbox as they arrived."""
    site, base = served
    site.values = [50, 150]  # the baseline, then over the line from the next check on
    config = {
        "source": {"type": "http_json", "url": f"{base}/value", "json_path": "$.data.amount"},
        "threshold": 100,
        "check_interval_minutes": 60,
    }
    ref = await service.create(USER, "threshold_watch", config, unique(name))
    await service.trigger(USER, ref.task_id)  # the breach, told once

    async def told() -> list[str]:
        alerts = ("watch.breach", "watch.recovery", "watch.already_told")
        return [k for k in await kinds(deps, ref.task_id) if k in alerts]

    async def titles() -> list[str]:
        inbox = await inbox_titles(deps)
        return [t.partition(":")[0] for t in inbox if ref.task_id in t]

    return site, ref, told, titles


async def test_a_threshold_watch_reset_as_the_upgrade_guide_says_does_not_tell_its_breach_again(
    service: TaskService,
    gated: tuple[GatedSite, str],  # noqa: F811
    loopback_deps: WorkerDeps,  # noqa: F811
) -> None:
    """docs/deploy.md: after a deploy, a watch may be reset to its first workflow task. The
    reset run's rule starts again, so its first check of a metric still over the line was a
    new breach: told again (a second event, a second push). Now it is told once; a recovery
    after is told as ever."""
    site, ref, told, titles = await _breaching(service, gated, loopback_deps, "reset")
    await until_equal(told, ["watch.breach"], "the breach is told")
    await until_equal(titles, ["Breach"], "the breach is pushed")
    # docs/deploy.md: after deploying, reset a watch to its first workflow task.
    await reset_to_first_workflow_task(service.client, ref.task_id)
    # The reset run's baseline: the metric still over the line, a breach already told.
    await eventually(lambda: told_after(told, 1), "the reset run's first check told")
    assert await told() == ["watch.breach", "watch.already_told"]
    # Its end and a new breach after it are told as ever.
    site.values.append(50)
    await service.trigger(USER, ref.task_id)
    await eventually(lambda: told_after(told, 2), "the recovery")
    await until_equal(titles, ["Breach", "Recovered"], "the recovery is pushed")
    site.values.append(150)
    await service.trigger(USER, ref.task_id)
    await eventually(lambda: told_after(told, 3), "the next breach")
    await until_equal(titles, ["Breach", "Recovered", "Breach"], "the next breach is pushed")
    await service.delete(USER, ref.task_id)
    assert await told() == [
        "watch.breach",
        "watch.already_told",
        "watch.recovery",
        "watch.breach",
    ]


async def test_a_threshold_watch_reset_after_its_recovery_tells_a_breach_at_a_check_number_used(
    service: TaskService,
    gated: tuple[GatedSite, str],  # noqa: F811
    loopback_deps: WorkerDeps,  # noqa: F811
) -> None:
    """Its alerts were keyed by the check's number, which a reset run counts again: a breach
    at its first check, after the replaced run's breach (check 1) and recovery (check 2), was
    taken for that run's check-1 breach (its key's event) and told to nobody."""
    site, base = gated
    site.values = [150, 50, 150]  # a breach, its recovery, and over the line after the reset
    config = {
        "source": {"type": "http_json", "url": f"{base}/value", "json_path": "$.data.amount"},
        "threshold": 100,
        "check_interval_minutes": 60,
    }
    ref = await service.create(USER, "threshold_watch", config, unique("reset-again"))

    async def told() -> list[str]:
        alerts = ("watch.breach", "watch.recovery", "watch.already_told")
        return [k for k in await kinds(loopback_deps, ref.task_id) if k in alerts]

    async def titles() -> list[str]:
        inbox = await inbox_titles(loopback_deps)
        return [t.partition(":")[0] for t in inbox if ref.task_id in t]

    await until_equal(told, ["watch.breach"], "the breach is told")
    await service.trigger(USER, ref.task_id)
    await until_equal(titles, ["Breach", "Recovered"], "the recovery is pushed")
    await reset_to_first_workflow_task(service.client, ref.task_id)
    await until_equal(titles, ["Breach", "Recovered", "Breach"], "the new breach is pushed")
    await service.delete(USER, ref.task_id)
    assert await told() == ["watch.breach", "watch.recovery", "watch.breach"]
    # The reset run, its checks' keys marked with it.
    handle = service.client.get_workflow_handle(ref.task_id)
    await save_history(handle, "threshold_watch_reset_after_recovery")


async def test_a_threshold_watch_whose_recovery_record_failed_tells_the_next_breach(
    service: TaskService,
    gated: tuple[GatedSite, str],  # noqa: F811
    loopback_deps: WorkerDeps,  # noqa: F811
) -> None:
    """The recovery was told, but its event's record failed for good (the database refusing
    it): the next breach found the last record a breach and was recorded "already told",
    pushed to nobody and not remediated, after a "Recovered" for the breach before."""
    assert loopback_deps.db.sqlite, "the refusal is a SQLite trigger"
    site, ref, told, titles = await _breaching(service, gated, loopback_deps, "unrecorded")
    await until_equal(titles, ["Breach"], "the breach is pushed")
    refuse = (
        "CREATE TRIGGER refuse_recovery BEFORE INSERT ON events "
        "WHEN NEW.kind = 'watch.recovery' BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )
    async with loopback_deps.db.writing() as session:
        await session.execute(text(refuse))
    try:
        site.values.append(50)
        await service.trigger(USER, ref.task_id)
        await until_equal(titles, ["Breach", "Recovered"], "the recovery is pushed")
    finally:
        async with loopback_deps.db.writing() as session:
            await session.execute(text("DROP TRIGGER refuse_recovery"))
    site.values.append(150)
    await service.trigger(USER, ref.task_id)
    await until_equal(titles, ["Breach", "Recovered", "Breach"], "the next breach is pushed")
    await service.delete(USER, ref.task_id)
    assert await told() == ["watch.breach", "watch.breach"]


async def told_after(told: Callable[[], Awaitable[list[str]]], count: int) -> bool:
    """Whether more than ``count`` alerts were told."""
    return len(await told()) > count


async def test_a_reminder_whose_old_pages_cannot_be_dropped_is_created_and_said_so(
    service: TaskService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The drop of a deleted life's pages failed (a database that refused the write) after the
    schedule was made: every door said the create failed while the reminder ran on. Deleting
    it then would undo another request's create of the same reminder: it is made, and said so
    (the leftovers are other lives', never read by the new one)."""

    async def refused(*_: object) -> None:
        raise OperationalError("DELETE", {}, Exception("attempt to write a readonly database"))

    monkeypatch.setattr(SnapshotRepository, "purge_rounds", refused)
    reminder = {"type": "daily", "hour": 7, "message": "when", "timezone": "UTC"}
    ref = await service.create(USER, "schedule", reminder, unique("ro"))
    assert ref.created
    described = await service.client.get_schedule_handle(ref.task_id).describe()
    assert described.id == ref.task_id
    await service.delete(USER, ref.task_id)
