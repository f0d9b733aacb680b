"""What the Temporal Web UI shows an operator of a task, on the dev server: a reminder's runs
and its schedule's memo, a watch's runs after a continue-as-new."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from temporalio.client import ScheduleActionExecutionStartWorkflow, ScheduleHandle
from temporalio.testing import WorkflowEnvironment

from ambient import temporal
from ambient.clients.notify.registry import build_channels
from ambient.deps import WorkerDeps
from ambient.watches.models import TaskStatus, ThresholdWatchInput
from ambient.watches.service import TaskService
from ambient.watches.summaries import watch_summary
from tests.conftest import running_worker, unique
from tests.support.waits import eventually
from tests.support.web_ui import current_details, steps
from tests.watches.site import article
from tests.watches.test_lifecycle import GatedSite, gated  # noqa: F401  (fixture)
from tests.watches.test_lifecycle_service import monitor, service  # noqa: F401  (fixture)
from tests.watches.test_workflows import USER, loopback_deps, threshold  # noqa: F401  (fixture)
from workflows.threshold_watch import ThresholdWatchWorkflow


async def run_summary(tasks: TaskService, handle: ScheduleHandle, runs: int) -> str | None:
    """The Web UI's Summary of the schedule's ``runs``-th run, once it has started."""

    async def started() -> ScheduleActionExecutionStartWorkflow | None:
        actions = (await handle.describe()).info.recent_actions
        if len(actions) < runs:
            return None
        action = actions[runs - 1].action
        return action if isinstance(action, ScheduleActionExecutionStartWorkflow) else None

    run = await eventually(started, f"the schedule's run {runs}")
    described = await tasks.client.get_workflow_handle(
        run.workflow_id, run_id=run.first_execution_run_id
    ).describe()
    return await described.static_summary()


async def schedule_view(tasks: TaskService, handle: ScheduleHandle) -> dict[str, Any]:
    """The schedule's note, memo and its action's Summary, as the Web UI shows them."""
    described = await handle.describe()
    action = described.schedule.action
    summary = getattr(action, "static_summary", None)
    return {
        "note": described.schedule.state.note,
        "memo": await described.memo(),
        "action summary": (await tasks.client.data_converter.decode([summary]))[0]
        if summary is not None
        else None,
    }


async def test_a_reminders_runs_show_its_summary_and_an_update_rewrites_its_memo(
    service: TaskService,  # noqa: F811
) -> None:
    """A run like reminder/alice/standup/run-… had no Summary, and after update_task the
    schedule's memo still said the create's line while its note said the new one: its runs
    say the note, and its memo keeps no copy of it."""
    reminder = {"type": "daily", "hour": 8, "message": "stand-up", "timezone": "UTC"}
    ref = await service.create(USER, "schedule", reminder, unique("standup"))
    handle = service.client.get_schedule_handle(ref.task_id)
    said = f"Reminder, daily at 08:00 UTC, for {USER}: stand-up"
    created = await schedule_view(service, handle)
    created_at = created["memo"]["created_at"]
    assert created == {
        "note": said,
        # No copy of the note: Temporal refuses a memo update of a schedule, and the copy
        # kept saying the create's line.
        "memo": {"created_at": created_at},
        "action summary": said,
    }
    await service.trigger(USER, ref.task_id)
    assert await run_summary(service, handle, 1) == said

    await service.update(USER, ref.task_id, reminder | {"hour": 9, "message": "retro"})
    now_said = f"Reminder, daily at 09:00 UTC, for {USER}: retro"
    assert await schedule_view(service, handle) == {
        "note": now_said,
        "memo": {"created_at": created_at},
        "action summary": now_said,
    }
    await service.trigger(USER, ref.task_id)
    assert await run_summary(service, handle, 2) == now_said
    await service.delete(USER, ref.task_id)


async def test_a_watch_continued_as_new_says_its_summary_in_its_current_details(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """The docs said a watch's Summary is its first run's for good; a run continued as new
    (every day or two) has none: Temporal does not carry it over, and the SDK's
    continue-as-new cannot give one. Its Current Details say the summary as it is now."""
    state, base = gated
    state.values = [50]
    task = unique("threshold-watch/alice/ui")
    config = threshold(base)
    said = watch_summary(config, USER)
    async with running_worker(dev_env.client, loopback_deps) as worker:
        handle = await dev_env.client.start_workflow(
            ThresholdWatchWorkflow.run,
            ThresholdWatchInput(
                user=USER, task=task, config=config, continue_as_new_after_checks=2
            ),
            id=task,
            task_queue=worker.task_queue,
            static_summary=said,
            memo=temporal.task_memo(said, datetime.now(UTC)),
        )
        first = (await handle.describe()).run_id
        await handle.execute_update("baseline", result_type=TaskStatus)
        assert await current_details(handle) == said == "Threshold watch http_json: above 100"
        raised = threshold(base, threshold=150)
        await handle.execute_update("update_config", raised.model_dump(mode="json"))
        now_said = watch_summary(raised, USER)
        assert await current_details(handle) == now_said
        await handle.execute_update("checked_now")  # the run's second check: it continues

        async def continued() -> str | None:
            run = (await handle.describe()).run_id
            return run if run != first else None

        await eventually(continued, "the watch continued as new")
        described = await handle.describe()
        shown = {
            "summary": await described.static_summary(),
            "details": await current_details(handle),
            "memo": (await described.memo())["summary"],
        }
        await handle.signal("stop")
        await handle.result()
    assert shown == {"summary": None, "details": now_said, "memo": now_said}
    started = await dev_env.client.get_workflow_handle(task, run_id=first).describe()
    assert await started.static_summary() == said


async def test_each_step_of_a_threshold_watch_says_in_the_web_ui_what_it_does(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """Its history listed read_metric, record_event, notify and a TIMER_STARTED 0:01:00
    with nothing to say which metric, which event, to whom, or what the timer waits for."""
    state, base = gated
    state.values = [50, 150]
    deps = loopback_deps
    # The registry's guards read the settings they were built with: allow the loopback site.
    deps.channels = build_channels(deps.settings, deps.db, deps.http)
    task = unique("threshold-watch/alice/steps")
    config = threshold(base, targets=[{"type": "webhook", "target": f"{base}/hook"}])
    async with running_worker(dev_env.client, deps) as worker:
        handle = await dev_env.client.start_workflow(
            ThresholdWatchWorkflow.run,
            ThresholdWatchInput(user=USER, task=task, config=config),
            id=task,
            task_queue=worker.task_queue,
        )
        await handle.execute_update("baseline", result_type=TaskStatus)
        breached = await handle.execute_update("checked_now", result_type=TaskStatus)
        assert breached.detail["breaching"]

        async def told() -> list[str] | None:
            listed = await steps(handle, dev_env.client.data_converter)
            return listed if len(listed) >= 6 else None

        # The breach recorded and notified, then the next check's timer.
        listed = await eventually(told, "the breach told and the next check's timer")
        await handle.signal("stop")
        await handle.result()
    read = f"read $.data.amount of {base}/value"
    assert listed == [
        f"local activity: {read}",
        "timer: next check, 1 min",
        f"local activity: {read}",
        "activity: record watch.breach",
        f"activity: notify {USER}: watch.breach",
        "timer: next check, 1 min",
    ]
    ended = await steps(handle, dev_env.client.data_converter)
    assert ended[len(listed) :] == ["activity: record watch.stopped"]


async def test_a_web_monitors_polls_and_waits_say_in_the_web_ui_what_they_do(
    service: TaskService,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """poll_pages was listed with nothing to say which poll, of what, for how long."""
    state, base = gated
    state.pages["/a"] = article("A page.")
    ref = await service.create(USER, "web_monitor", monitor(base, "/a"), unique("polls"))
    handle = service.client.get_workflow_handle(ref.task_id)

    async def waiting() -> list[str] | None:
        listed = await steps(handle, service.client.data_converter)
        return listed if any(step.startswith("timer: next poll") for step in listed) else None

    listed = await eventually(waiting, "the baseline's poll, then the next poll's wait")
    await service.delete(USER, ref.task_id)
    await handle.result()
    # The create's baseline update waits for the first check (a timer, if it came first).
    baseline = "timer: baseline: the first check, 30 s"
    assert [step for step in listed if step == baseline] in ([], [baseline])
    first, wait = [step for step in listed if step != baseline]
    assert first == "activity: poll 1: check 1 page(s) once"
    # 60 min on, less half a poll's window of an hour, plus a spread of up to a minute.
    assert wait in ("timer: next poll, 30 min", "timer: next poll, 31 min"), wait
