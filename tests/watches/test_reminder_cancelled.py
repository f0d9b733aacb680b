"""A reminder's run cancelled in Temporal (the Web UI's "Request Cancellation") while it
records its ``schedule.reminder`` (real dev server, as the other cancels in
test_watch_cancelled.py)."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.registry import build_activities
from ambient import temporal
from ambient.deps import WorkerDeps
from ambient.watches.reminders import ReminderConfig, ReminderRun
from tests.conftest import running_worker, unique
from tests.support.record import save_history
from tests.support.servers import HANG
from tests.support.waits import eventually
from tests.watches.test_watch_cancelled import _canceled, _kinds, _record_held, _settled
from tests.watches.test_workflows import USER, loopback_deps  # noqa: F401  (fixture)
from workflows.registry import ALL_WORKFLOWS
from workflows.reminder import ReminderWorkflow


async def test_a_reminder_cancelled_while_its_event_is_recorded_still_sends_it(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The run is cancelled while its ``schedule.reminder`` record is held (its write not made
    yet). The run ended Canceled with nothing sent, and the cut record, written after, listed
    a reminder nobody got. The record and the sends are one: the record is made again (its
    key: once), the reminder sent, then the run ends Canceled."""
    taken, release, written = _record_held(monkeypatch, "schedule.reminder")
    task = unique("reminder")
    run = ReminderRun(
        user=USER, task=task, config=ReminderConfig.model_validate({"message": "standup"})
    )
    try:
        async with running_worker(dev_env.client, loopback_deps) as worker:
            handle = await dev_env.client.start_workflow(
                ReminderWorkflow.run, run, id=f"{task}/run", task_queue=worker.task_queue
            )
            await asyncio.wait_for(taken.wait(), HANG)  # the record under way
            await handle.cancel()
            await _canceled(handle)
            await save_history(handle, "reminder_cancelled_while_recording")
            release.set()
            await asyncio.wait_for(written.wait(), HANG)  # the cut try's write made too
    finally:
        release.set()
    assert await _kinds(loopback_deps, task) == ["schedule.reminder"]  # once
    assert await _settled(loopback_deps, "schedule.reminder", task) == [("inbox", "sent")]


async def test_a_reminder_cancelled_as_its_record_completes_still_sends_it(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The record completes and the cancel comes before the run hears of it: both reach the
    run in one workflow task, where the SDK raises the cancel, not the activity's error (the
    write was made). That run too ended Canceled at once, its reminder listed and not sent."""
    taken, release, written = _record_held(monkeypatch, "schedule.reminder")
    task, queue = unique("reminder"), unique("tq")
    run = ReminderRun(
        user=USER, task=task, config=ReminderConfig.model_validate({"message": "standup"})
    )

    def runs() -> Worker:  # the workflows alone: stopped, the run hears of nothing
        return Worker(
            dev_env.client,
            task_queue=queue,
            workflows=ALL_WORKFLOWS,
            workflow_runner=temporal.workflow_runner(),
            build_id=temporal.BUILD_ID,
        )

    activities = Worker(
        dev_env.client,
        task_queue=queue,
        activities=build_activities(loopback_deps),
        build_id=temporal.BUILD_ID,
    )
    try:
        async with activities:
            async with runs():
                handle = await dev_env.client.start_workflow(
                    ReminderWorkflow.run, run, id=f"{task}/run", task_queue=queue
                )
                await asyncio.wait_for(taken.wait(), HANG)  # the record under way
            release.set()
            await asyncio.wait_for(written.wait(), HANG)
            await eventually(lambda: _recorded(handle))  # its completion in the history
            await handle.cancel()
            async with runs():
                await _canceled(handle)
    finally:
        release.set()
    assert await _kinds(loopback_deps, task) == ["schedule.reminder"]
    assert await _settled(loopback_deps, "schedule.reminder", task) == [("inbox", "sent")]


async def _recorded(handle: WorkflowHandle[object, object]) -> bool:
    history = await handle.fetch_history()
    done = EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
    return any(event.event_type == done for event in history.events)
