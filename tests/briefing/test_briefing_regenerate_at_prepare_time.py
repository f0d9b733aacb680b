"""A regenerate taken in the same workflow task as the preparation time's timer (the worker
away meanwhile): the runs the released code recorded so replay (time-skipping test server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, UpdateWorkflowExecutionLifecycleStage
from temporalio.api.update.v1 import UpdateRef, WaitPolicy
from temporalio.api.workflowservice.v1 import PollWorkflowExecutionUpdateRequest
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from ambient import no_answer
from ambient.briefing.config import BriefingConfig, DayPlan
from ambient.briefing.service import BriefingService
from ambient.deps import WorkerDeps
from tests.briefing.harness import Stack, make_user
from tests.conftest import unique
from tests.support.record import save_history
from tests.support.servers import HANG
from tests.support.waits import eventually
from worker import build_worker
from workflows.daily_briefing import DailyBriefingWorkflow


async def test_a_regenerate_taken_with_the_preparation_time_replays_as_recorded(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Quinn regenerates her briefing while the worker is away, and her preparation time
    passes meanwhile: the worker back takes both in one workflow task. The regenerate runs its
    preparation in a task of its own: the run's window timer is started before the
    regenerate's answer (the order of stop-answers-first; a run recorded before that patch,
    in the other order, no longer replays). History daily_briefing_regenerated_at_prepare_time."""
    await make_user(deps.db, "quinn")
    # No sticky queue: the worker that comes back takes the run's next task.
    deps.settings = deps.settings.model_copy(
        update={"max_cached_workflows": 0, "temporal_task_queue": unique("tq")}
    )
    service = BriefingService(ts_env.client, deps.settings, deps.db, tencent=deps.tencent)
    config = BriefingConfig(timezone="Asia/Shanghai", language="en")
    handle = ts_env.client.get_workflow_handle("daily-briefing/quinn")
    async with working(ts_env, deps) as worker:
        day = await Stack(env=ts_env, service=service, worker=worker).plan(config)
        await service.create("quinn", config)
        await eventually(lambda: _planned(service), "the day planned")
    await ts_env.sleep(day.prepare_at + timedelta(seconds=1) - await ts_env.get_current_time())
    # To the run itself: the service reads the run's status first, which needs the worker.
    update = DailyBriefingWorkflow.regenerate
    regenerate = asyncio.create_task(handle.execute_update(update, id="quinn-regenerate"))
    await eventually(lambda: _admitted(ts_env, "quinn-regenerate"), "the regenerate admitted")
    async with working(ts_env, deps):
        prepared = await asyncio.wait_for(regenerate, HANG)
        assert prepared.date == day.date
        await eventually(lambda: _answered(handle), "the regenerate's answer recorded")
    await save_history(handle, "daily_briefing_regenerated_at_prepare_time")


@asynccontextmanager
async def working(env: WorkflowEnvironment, deps: WorkerDeps) -> AsyncIterator[Worker]:
    """The production worker on the task queue of ``deps``, whose runs outlive it."""
    async with build_worker(
        env.client, deps, task_queue=deps.settings.temporal_task_queue
    ) as worker:
        yield worker


async def _planned(service: BriefingService) -> DayPlan | None:
    return (await service.status("quinn")).day


async def _admitted(env: WorkflowEnvironment, update_id: str) -> bool:
    """Whether the server holds the update (waiting for a worker to take it)."""
    request = PollWorkflowExecutionUpdateRequest(
        namespace=env.client.namespace,
        update_ref=UpdateRef(
            workflow_execution=WorkflowExecution(workflow_id="daily-briefing/quinn"),
            update_id=update_id,
        ),
        wait_policy=WaitPolicy(
            lifecycle_stage=UpdateWorkflowExecutionLifecycleStage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED
        ),
    )
    try:
        await env.client.workflow_service.poll_workflow_execution_update(request)
    except RPCError as exc:
        if no_answer.not_found(exc):  # not yet
            return False
        raise
    return True


async def _answered(handle: WorkflowHandle) -> bool:  # type: ignore[type-arg]
    """The timer fired and the regenerate was taken in the same workflow task, and it ended."""
    kinds = [e.event_type async for e in handle.fetch_history_events()]
    fired = kinds.index(EventType.EVENT_TYPE_TIMER_FIRED)
    taken = kinds.index(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)
    between = kinds[fired:taken].count(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
    assert between == 1, [EventType.Name(k) for k in kinds]
    return EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED in kinds
