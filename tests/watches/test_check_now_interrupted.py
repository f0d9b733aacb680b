"""A check asked for (check now, or a watch's first check) that a control ends on its way (a
pause while the page is being read) is made all the same, and check now answers what it
found: it answered the outcome of the check before, and the check asked for was never made."""

from __future__ import annotations

import asyncio

from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.storage.repositories import EventRepository
from ambient.watches.configs import TaskState
from ambient.watches.service import TaskService
from tests.conftest import unique
from tests.support.record import save_history
from tests.watches.site import article
from tests.watches.test_lifecycle import GatedSite, gated  # noqa: F401  (fixture)
from tests.watches.test_lifecycle_service import (  # noqa: F401  (fixture)
    monitor,
    queue_of_its_own,
    service,
    tasks_of,
)
from tests.watches.test_workflows import USER, loopback_deps  # noqa: F401  (fixture)
from worker import build_worker


async def test_a_pause_while_check_now_reads_the_page_still_makes_and_answers_the_check(
    service: TaskService,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    state, base = gated
    page = f"{base}/a"
    state.pages["/a"] = article("All quiet.")
    ref = await service.create(USER, "web_monitor", monitor(base, "/a"), unique("held"))
    state.pages["/a"] = article("All quiet.", "Outage in the east.")
    state.page_gate.clear()
    state.page_waiting.clear()
    asked = asyncio.create_task(service.trigger(USER, ref.task_id))
    await state.page_waiting.wait()  # the check now is reading the page
    paused = await service.pause(USER, ref.task_id)
    assert paused.state is TaskState.PAUSED
    state.page_gate.set()
    answer = await asked
    # What the check found, not the baseline's outcome the status held before it.
    assert answer.checked == {"urls": {page: {"outcome": "changed", "error": None}}}
    assert answer.state is TaskState.PAUSED
    status = await service.get(USER, ref.task_id)
    assert status.state is TaskState.PAUSED and status.checks == 2
    async with service.db.session() as session:
        events = await EventRepository(session).list(user=USER, task=ref.task_id)
    assert [e.kind for e in events if e.kind == "watch.change"] == ["watch.change"]
    await save_history(
        service.client.get_workflow_handle(ref.task_id), "web_monitor_check_now_interrupted"
    )
    await service.delete(USER, ref.task_id)


async def test_a_pause_while_the_first_check_reads_the_page_still_takes_the_baseline(
    service: TaskService,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    # The create's first check was abandoned: the create waited out its baseline_wait for a
    # baseline that no check would take until a resume, and answered none.
    state, base = gated
    page, name = f"{base}/a", unique("first")
    state.pages["/a"] = article("All quiet.")
    state.page_gate.clear()
    state.page_waiting.clear()
    created = asyncio.create_task(service.create(USER, "web_monitor", monitor(base, "/a"), name))
    await state.page_waiting.wait()  # the first check is reading the page
    task_id = f"web-monitor/{USER}/{name}"
    assert (await service.pause(USER, task_id)).state is TaskState.PAUSED
    state.page_gate.set()
    ref = await created
    assert ref.baseline == {"urls": {page: {"outcome": "baseline", "error": None}}}
    status = await service.get(USER, task_id)
    assert status.state is TaskState.PAUSED and status.checks == 1
    await save_history(
        service.client.get_workflow_handle(task_id), "web_monitor_first_check_interrupted"
    )
    await service.delete(USER, task_id)


async def test_check_now_cut_by_a_worker_shutdown_is_made_by_the_next_worker_and_answered(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    # A deploy's graceful shutdown ended the poll while check now read the page: the poll
    # handed back no check, the workflow counted it as the check asked for, and check now
    # answered the outcome of the check before (the baseline), the change unsaid until the
    # next interval.
    state, base = gated
    deps = loopback_deps
    queue = queue_of_its_own(deps)
    tasks = tasks_of(dev_env.client, deps)
    page = f"{base}/a"
    state.pages["/a"] = article("All quiet.")
    first = build_worker(dev_env.client, deps, task_queue=queue)
    running = asyncio.create_task(first.run())
    ref = await tasks.create(USER, "web_monitor", monitor(base, "/a"), unique("deploy"))
    state.pages["/a"] = article("All quiet.", "Outage in the east.")
    state.page_gate.clear()
    state.page_waiting.clear()
    asked = asyncio.create_task(tasks.trigger(USER, ref.task_id))
    await state.page_waiting.wait()  # the check now is reading the page
    await first.shutdown()  # the deploy stops the worker
    await running
    state.page_gate.set()
    async with build_worker(dev_env.client, deps, task_queue=queue):  # the new release's
        answer = await asked
        assert answer.checked == {"urls": {page: {"outcome": "changed", "error": None}}}
        await save_history(
            tasks.client.get_workflow_handle(ref.task_id),
            "web_monitor_check_now_cut_by_shutdown",
        )
        await tasks.delete(USER, ref.task_id)
