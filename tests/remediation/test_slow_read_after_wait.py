"""A run whose alert's metric source turns slow after its approval: the read after the wait
(has the alert cleared meanwhile?) ran as a local activity, which held the run's workflow task
while the source answered. For up to 48 s the approval's answer waited, and every read of the
run said "no worker answered; is the worker running?" while the worker ran."""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.remediation.service import RemediationService
from tests.conftest import running_worker, unique
from tests.remediation.support import add_user, alert, remediation_settings
from tests.support.record import save_history
from tests.support.servers import HANG, serve
from tests.support.waits import eventually


class _Source:
    """An error-rate source that, once ``slow``, holds each read until ``release``."""

    def __init__(self) -> None:
        self.slow, self.reading, self.release = False, asyncio.Event(), asyncio.Event()

    async def metrics(self, request: Request) -> JSONResponse:
        if self.slow:
            self.reading.set()
            await self.release.wait()
        return JSONResponse({"error_rate": 0.5})


async def test_a_slow_read_after_an_approval_leaves_the_run_answering(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    owner = unique("own")
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, owner)
    source = _Source()
    routes = [Route("/metrics", source.metrics)]
    async with (
        serve(Starlette(routes=routes)) as base,
        running_worker(dev_env.client, deps) as worker,
    ):
        settings = deps.settings.model_copy(update={"temporal_task_queue": worker.task_queue})
        service = RemediationService(dev_env.client, settings, deps.db)
        sent = alert(f"{base}/metrics", workload=owner, settle_seconds=0)
        rid = (await service.start(owner, sent, mode="dry_run")).remediation_id
        handle = dev_env.client.get_workflow_handle(rid)
        try:

            async def waits() -> bool | None:
                return (await service.get(owner, rid)).state == "waiting_approval" or None

            await eventually(waits, "the run waits for its approval")
            source.slow = True
            decision = await service.approve(owner, rid, True, "go", via="api")
            assert decision.approve and decision.rung == 1
            await asyncio.wait_for(source.reading.wait(), HANG)  # the read after the wait
            seen = await service.get(owner, rid)  # while that read is held
            assert seen.unanswered == "", seen.unanswered

            async def read_off_the_task() -> bool | None:
                scheduled = [
                    e.activity_task_scheduled_event_attributes.activity_type.name
                    async for e in handle.fetch_history_events()
                    if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                ]
                return "read_metric" in scheduled or None

            # Its one try in the task (5 s at most) given up, the read goes on off the task.
            await eventually(read_off_the_task, "the read scheduled as an activity")
            source.slow = False
            source.release.set()
            await eventually(waits, "the run's next rung waits for its approval")
            await save_history(handle, "remediation_read_after_approval_as_an_activity")
        finally:
            source.release.set()
            await handle.terminate("test over")
