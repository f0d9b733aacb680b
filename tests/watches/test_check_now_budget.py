"""Check now answers within one budget: a watch whose worker is gone answered "delivered; not
confirmed yet" only after the check's wait (25 s) and then the status read's own wait for a
worker (5 s, asked again), about 40 s in the product, past the 30 s a self-hosted
xiaozhi-server waits for a tool call."""

from __future__ import annotations

import asyncio

from temporalio.testing import WorkflowEnvironment

from ambient.briefing.service import BriefingService
from ambient.deps import WorkerDeps
from ambient.watches.service import DELIVERED_UNCONFIRMED, TaskService
from tests.conftest import unique
from tests.watches.site import article
from tests.watches.test_lifecycle import GatedSite, gated  # noqa: F401  (fixture)
from tests.watches.test_lifecycle_service import monitor
from tests.watches.test_workflows import USER, loopback_deps  # noqa: F401  (fixture)
from worker import build_worker


async def test_check_now_of_a_watch_no_worker_takes_answers_at_the_end_of_its_one_wait(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """No worker takes the check within the wait; one comes back 3 s after it, before the
    status read's wait for a worker (5 s) would end: an answer within its one budget (the wait,
    then 0.5 s for the status) says what it knew then (delivered, not confirmed), not a status
    read once the worker came back."""
    state, base = gated
    state.pages["/a"] = article("All quiet.")
    wait, queue = 3.0, unique("tq")
    deps = loopback_deps
    deps.settings = deps.settings.model_copy(update={"temporal_task_queue": queue})
    briefings = BriefingService(dev_env.client, deps.settings, deps.db)
    service = TaskService(
        dev_env.client,
        deps.settings,
        deps.db,
        briefings=briefings,
        baseline_wait=wait,
        status_after_wait=0.5,
    )
    async with build_worker(dev_env.client, deps, task_queue=queue):
        ref = await service.create(USER, "web_monitor", monitor(base, "/a"), unique("gone"))
    assert ref.baseline is not None

    back = asyncio.Event()

    async def worker_back() -> None:
        await asyncio.sleep(wait + 3.0)  # the worker comes back after the budget
        async with build_worker(dev_env.client, deps, task_queue=queue):
            back.set()
            await done.wait()

    done = asyncio.Event()
    returning = asyncio.create_task(worker_back())
    try:
        told = await service.trigger(USER, ref.task_id)
        answered_before_the_worker = not back.is_set()
        await back.wait()
        await service.delete(USER, ref.task_id)
    finally:
        done.set()
        await returning

    assert (told.note, told.state) == (DELIVERED_UNCONFIRMED, "active")
    assert answered_before_the_worker
