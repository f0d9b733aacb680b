"""Check now right after a resume answers with the check it asked for, whatever the resume's
poll was doing: that poll, ended by the ask before its check, was counted as the check asked
for and then voided, and the answer waited a check longer, or CHECK_NOW_WAIT (30 s) in full,
past the service's wait (25 s): "started; its result will show ..." and no result."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from temporalio.client import WorkflowExecutionStatus, WorkflowHandle

from ambient.watches.configs import TaskState
from ambient.watches.service import TaskService
from tests.conftest import unique
from tests.support.record import save_history
from tests.support.waits import eventually
from tests.watches.site import article
from tests.watches.test_lifecycle import GatedSite, gated  # noqa: F401  (fixture)
from tests.watches.test_lifecycle_service import monitor, service  # noqa: F401  (fixture)
from tests.watches.test_workflows import USER, loopback_deps  # noqa: F401  (fixture)


def as_shipped(tests: TaskService) -> TaskService:
    """The service with the product's wait for a check (25 s), not the tests' longer one."""
    return TaskService(tests.client, tests.settings, tests.db, briefings=tests.briefings)


async def test_check_now_while_the_resumes_poll_reads_the_page_answers_the_check_it_asked(
    service: TaskService,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    site, base = gated
    page = f"{base}/a"
    site.pages["/a"] = article("All quiet.")
    tasks = as_shipped(service)
    ref = await tasks.create(USER, "web_monitor", monitor(base, "/a"), unique("resumed"))
    assert ref.baseline is not None
    assert (await tasks.pause(USER, ref.task_id)).state is TaskState.PAUSED
    site.pages["/a"] = article("All quiet.", "Outage in the east.")
    site.page_gate.clear()
    site.page_waiting.clear()
    assert (await tasks.resume(USER, ref.task_id)).state is TaskState.ACTIVE
    await site.page_waiting.wait()  # the resume's poll is reading the page
    site.page_waiting.clear()
    asked = asyncio.create_task(tasks.trigger(USER, ref.task_id))
    await site.page_waiting.wait()  # the ask ended that poll; the next one reads the page
    site.page_gate.set()
    answer = await asked
    assert answer.note is None
    assert answer.checked == {"urls": {page: {"outcome": "changed", "error": None}}}
    assert answer.state is TaskState.ACTIVE
    status = await tasks.get(USER, ref.task_id)
    assert status.checks == 2  # the baseline and the check asked for
    # The resume's poll voided by the ask, the next one's check answered, for the replay.
    await save_history(
        service.client.get_workflow_handle(ref.task_id), "web_monitor_check_now_after_resume"
    )
    await tasks.delete(USER, ref.task_id)


async def test_check_now_right_after_resume_answers_a_check_made(
    service: TaskService,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """No gate: the ask meets the resume's poll wherever it is (starting, reading, ended)."""
    site, base = gated
    page = f"{base}/a"
    site.pages["/a"] = article("All quiet.")
    tasks = as_shipped(service)
    ref = await tasks.create(USER, "web_monitor", monitor(base, "/a"), unique("resumed"))
    await tasks.pause(USER, ref.task_id)
    site.pages["/a"] = article("Something else.")
    await tasks.resume(USER, ref.task_id)
    before = await tasks.get(USER, ref.task_id)
    asked_at = datetime.now(UTC)
    answer = await tasks.trigger(USER, ref.task_id)
    assert answer.note is None
    assert answer.checked is not None and answer.checked["urls"][page]["error"] is None
    status = await tasks.get(USER, ref.task_id)
    # The check the answer shows began after the ask: not the resume's, made before it.
    assert status.checks > before.checks
    checked_at = datetime.fromisoformat(status.detail["urls"][page]["last_checked_at"])
    assert checked_at > asked_at
    await tasks.delete(USER, ref.task_id)


async def test_check_now_of_a_paused_watch_answers_the_check_and_stays_paused(
    service: TaskService,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """No poll runs when it is asked (an order that already worked: a regression guard)."""
    site, base = gated
    page = f"{base}/a"
    site.pages["/a"] = article("All quiet.")
    tasks = as_shipped(service)
    ref = await tasks.create(USER, "web_monitor", monitor(base, "/a"), unique("paused"))
    await tasks.pause(USER, ref.task_id)
    site.pages["/a"] = article("All quiet.", "Outage in the east.")
    answer = await tasks.trigger(USER, ref.task_id)
    assert answer.note is None
    assert answer.checked == {"urls": {page: {"outcome": "changed", "error": None}}}
    assert answer.state is TaskState.PAUSED
    assert (await tasks.get(USER, ref.task_id)).checks == 2
    await tasks.delete(USER, ref.task_id)


async def test_a_resume_while_check_now_of_a_paused_watch_reads_the_page_answers_the_check(
    service: TaskService,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """The resume ends the asked poll before its check (an order that already worked)."""
    site, base = gated
    page = f"{base}/a"
    site.pages["/a"] = article("All quiet.")
    tasks = as_shipped(service)
    ref = await tasks.create(USER, "web_monitor", monitor(base, "/a"), unique("asked"))
    await tasks.pause(USER, ref.task_id)
    site.pages["/a"] = article("All quiet.", "Outage in the east.")
    site.page_gate.clear()
    site.page_waiting.clear()
    asked = asyncio.create_task(tasks.trigger(USER, ref.task_id))
    await site.page_waiting.wait()  # the asked poll is reading the page
    site.page_waiting.clear()
    assert (await tasks.resume(USER, ref.task_id)).state is TaskState.ACTIVE
    await site.page_waiting.wait()  # the resume ended it; the next one reads the page
    site.page_gate.set()
    answer = await asked
    assert answer.note is None
    assert answer.checked == {"urls": {page: {"outcome": "changed", "error": None}}}
    assert (await tasks.get(USER, ref.task_id)).checks == 2
    await tasks.delete(USER, ref.task_id)


async def test_check_now_during_a_runs_last_poll_answers_the_check_before_continuing_as_new(
    service: TaskService,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """Asked during a run's last poll: the run makes the check before it continues as new (it
    waited for check now, check now for a poll only the next run made: CHECK_NOW_WAIT)."""
    from ambient.watches.configs import TaskKind, WebMonitorConfig
    from ambient.watches.models import WebMonitorInput

    site, base = gated
    page = f"{base}/a"
    site.pages["/a"] = article("All quiet.")
    task_id = f"web-monitor/{USER}/{unique('last-pass')}"
    watch = WebMonitorInput(
        user=USER,
        task=task_id,
        config=WebMonitorConfig.model_validate(monitor(base, "/a", minutes=1)),
        check_interval_seconds=0.5,
        # A heartbeat timeout of the window's 5 s (1 s timed out an attempt held at the gate
        # on a loaded host: its retry overlapped it, and the asked check read a page the
        # timed-out attempt had stored the change of).
        poll_window_seconds=5.0,
        continue_as_new_after_events=1,  # every pass is a run's last
    )
    await service._start(TaskKind.WEB_MONITOR, watch, "a watch that continues every pass")
    handle = service.client.get_workflow_handle(task_id)
    first = run = (await handle.describe()).run_id
    site.page_gate.clear()
    site.page_waiting.clear()
    await site.page_waiting.wait()
    while (run := (await handle.describe()).run_id) == first:  # a later run's poll reads
        site.page_waiting.clear()
        site.page_gate.set()
        site.page_gate.clear()
        await site.page_waiting.wait()
    site.pages["/a"] = article("All quiet.", "Outage in the east.")
    site.page_waiting.clear()
    tasks = as_shipped(service)
    asked = asyncio.create_task(tasks.trigger(USER, task_id))
    await site.page_waiting.wait()  # the ask ended that poll; the asked one reads the page
    site.page_gate.set()
    answer = await asked
    assert answer.note is None
    assert answer.checked == {"urls": {page: {"outcome": "changed", "error": None}}}
    # The run asked, its check made before it continued as new, for the replay.
    asked_run = service.client.get_workflow_handle(task_id, run_id=run)
    ended = WorkflowExecutionStatus.CONTINUED_AS_NEW
    await eventually(lambda: _is(asked_run, ended), "the asked run continued as new")
    await save_history(
        asked_run,
        "web_monitor_check_now_before_continue",
    )
    await tasks.delete(USER, task_id)


async def test_threshold_check_now_during_a_runs_last_check_answers_the_check_it_asked(
    service: TaskService,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """Asked while a run's last check reads its source: the run checks again before it
    continues as new (it waited for check now, check now for the next run's check)."""
    from temporalio.api.enums.v1 import EventType

    from ambient.watches.configs import TaskKind
    from ambient.watches.models import ThresholdWatchInput
    from tests.watches.test_workflows import threshold

    site, base = gated
    site.values = [5.0, 150.0]
    site.gate.clear()
    task_id = f"threshold-watch/{USER}/{unique('last-check')}"
    watch = ThresholdWatchInput(
        user=USER, task=task_id, config=threshold(base), continue_as_new_after_checks=1
    )
    started = asyncio.create_task(service._start(TaskKind.THRESHOLD_WATCH, watch, "each check"))
    await site.waiting.wait()  # the first run's only check reads the source
    handle = service.client.get_workflow_handle(task_id)
    handle = service.client.get_workflow_handle(task_id, run_id=(await handle.describe()).run_id)
    asked = asyncio.create_task(as_shipped(service).trigger(USER, task_id))

    async def accepted() -> bool:
        kinds = [e.event_type async for e in handle.fetch_history_events()]
        return EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED in kinds

    await eventually(accepted, "check now taken during the check")
    site.gate.set()
    await started
    answer = await asked
    assert answer.note is None
    assert answer.checked is not None and answer.checked["value"] == 150.0
    ended = WorkflowExecutionStatus.CONTINUED_AS_NEW
    await eventually(lambda: _is(handle, ended), "the asked run continued as new")
    await save_history(handle, "threshold_watch_check_now_before_continue")  # that run's
    await service.delete(USER, task_id)


async def _is(handle: WorkflowHandle[object, object], status: WorkflowExecutionStatus) -> bool:
    return (await handle.describe()).status == status


async def test_a_second_check_now_during_the_held_poll_answers_both_checks(
    service: TaskService,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """A second check now while the poll a run's continue-as-new waited for reads the page:
    that poll, voided, is asked again and made before the run continues (held once only, the
    run waited for both answers, and they for a poll only the next run made: CHECK_NOW_WAIT)."""
    from ambient.watches.configs import TaskKind, WebMonitorConfig
    from ambient.watches.models import WebMonitorInput

    site, base = gated
    page = f"{base}/a"
    site.pages["/a"] = article("All quiet.")
    task_id = f"web-monitor/{USER}/{unique('held-twice')}"
    watch = WebMonitorInput(
        user=USER,
        task=task_id,
        config=WebMonitorConfig.model_validate(monitor(base, "/a", minutes=1)),
        check_interval_seconds=0.5,
        # A heartbeat timeout of the window's 5 s (1 s timed out an attempt held at the gate
        # on a loaded host: its retry overlapped it, and the asked check read a page the
        # timed-out attempt had stored the change of).
        poll_window_seconds=5.0,
        continue_as_new_after_events=1,  # every pass is a run's last
    )
    await service._start(TaskKind.WEB_MONITOR, watch, "a watch that continues every pass")
    handle = service.client.get_workflow_handle(task_id)
    first = (await handle.describe()).run_id
    site.page_gate.clear()
    site.page_waiting.clear()
    await site.page_waiting.wait()
    while (await handle.describe()).run_id == first:  # a later run's poll reads
        site.page_waiting.clear()
        site.page_gate.set()
        site.page_gate.clear()
        await site.page_waiting.wait()
    site.pages["/a"] = article("All quiet.", "Outage in the east.")
    site.page_waiting.clear()
    tasks = as_shipped(service)
    asked = asyncio.create_task(tasks.trigger(USER, task_id))
    await site.page_waiting.wait()  # the ask ended that poll; the held pass's poll reads
    site.page_waiting.clear()
    again = asyncio.create_task(tasks.trigger(USER, task_id))
    await site.page_waiting.wait()  # the second ask ended it; the one asked again reads
    site.page_gate.set()
    for answer in (await asked, await again):
        assert answer.note is None
        assert answer.checked == {"urls": {page: {"outcome": "changed", "error": None}}}
    await tasks.delete(USER, task_id)


async def test_threshold_a_second_check_now_during_the_held_check_answers_both_checks(
    service: TaskService,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """A second check now while the check a run's continue-as-new waited for reads the
    source: the run checks again before it continues (held once only, both answers waited
    CHECK_NOW_WAIT, the second with no result)."""
    from temporalio.api.enums.v1 import EventType

    from ambient.watches.configs import TaskKind
    from ambient.watches.models import ThresholdWatchInput
    from tests.watches.test_workflows import threshold

    site, base = gated
    site.values = [5.0, 150.0, 160.0]
    site.gate.clear()
    task_id = f"threshold-watch/{USER}/{unique('held-twice')}"
    watch = ThresholdWatchInput(
        user=USER, task=task_id, config=threshold(base), continue_as_new_after_checks=1
    )
    started = asyncio.create_task(service._start(TaskKind.THRESHOLD_WATCH, watch, "each check"))
    await site.waiting.wait()  # the first run's only check reads the source
    handle = service.client.get_workflow_handle(task_id)
    handle = service.client.get_workflow_handle(task_id, run_id=(await handle.describe()).run_id)
    # The tests' wait, not the product's 25 s: while the gate holds a read (a local activity),
    # an ask is taken only at the worker's task heartbeat (~8 s), and the first waits for two.
    tasks = service

    async def accepted(count: int) -> bool:
        names = [
            e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
            async for e in handle.fetch_history_events()
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
        ]
        return names.count("checked_now") >= count

    asked = asyncio.create_task(tasks.trigger(USER, task_id))
    await eventually(lambda: accepted(1), "check now taken during the check")
    site.waiting.clear()
    site.gate.set()
    site.gate.clear()
    # Not the create's answer first: its baseline answers between checks, and the held pass
    # checks at once, so it waits for the check the gate holds.
    await site.waiting.wait()  # the held pass's check reads the source
    again = asyncio.create_task(tasks.trigger(USER, task_id))
    await eventually(lambda: accepted(2), "the second check now taken during the held check")
    site.gate.set()
    await started
    first, second = await asked, await again
    for answer in (first, second):
        assert answer.note is None
        assert answer.checked is not None
    assert first.checked is not None and first.checked["value"] == 150.0
    assert second.checked is not None and second.checked["value"] == 160.0
    await service.delete(USER, task_id)
