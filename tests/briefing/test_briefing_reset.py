"""A briefing reset from the Temporal Web UI after it spoke: the day stays spoken."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from ambient.briefing.config import BriefingConfig
from ambient.briefing.greeting_answers import GreetOutcome
from ambient.briefing.service import BriefingService
from ambient.deps import WorkerDeps
from tests.briefing.harness import make_user
from tests.briefing.test_briefing_task_door import zone_at_midday
from tests.conftest import running_worker, unique
from tests.support.record import save_history
from tests.support.waits import eventually


async def reset_to_first_task(client: Client, workflow_id: str) -> str:
    """What the Web UI's Reset does, to the run's first completed workflow task; the new run."""
    handle = client.get_workflow_handle(workflow_id)
    history = await handle.fetch_history()
    first = next(
        e.event_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    )
    run_id = (await handle.describe()).run_id
    answer = await client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace=client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
            reason="operator reset",
            workflow_task_finish_event_id=first,
            request_id=unique("reset"),
        )
    )
    return answer.run_id


async def test_a_briefing_reset_after_it_spoke_does_not_speak_again(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Reset from the Web UI to its first workflow task after it spoke, the run applied the
    greeting again past its answer_by: refused as too late, the day was unspoken, and the
    next greeting spoke the briefing a second time (and an ungreeted day would be pushed)."""
    user = unique("reset")
    await make_user(deps.db, user)
    # A window open now, for an hour (the day is planned in its own zone), in a zone where it
    # is midday: in Shanghai after 23:58 the window ended at 23:59, under the test.
    zone = zone_at_midday()
    now = datetime.now(ZoneInfo(zone))
    start, end = now - timedelta(minutes=1), now + timedelta(hours=1)
    config = BriefingConfig(
        timezone=zone,
        language="en",
        prepare_at=start.strftime("%H:%M"),
        window_start=start.strftime("%H:%M"),
        window_end=end.strftime("%H:%M"),
    )
    async with running_worker(dev_env.client, deps) as worker:
        settings = deps.settings.model_copy(update={"temporal_task_queue": worker.task_queue})
        service = BriefingService(dev_env.client, settings, deps.db, tencent=deps.tencent)
        await service.create(user, config)

        async def prepared() -> bool:
            return (await service.status(user)).prepared is not None

        await eventually(prepared, "the briefing prepared")
        spoken = await service.greet(user, via="voice", request_id="first", audio=False, within=7)
        # An operator resets later than the greeting's caller listened (hours, in practice):
        # the greeting the reset applies again is past its answer_by.
        await asyncio.sleep(6)
        await reset_to_first_task(dev_env.client, f"daily-briefing/{user}")

        async def planned() -> bool:
            status = await service.status(user)
            return status.day is not None and status.prepared is not None

        await eventually(planned, "the reset run planned its day again")
        again = await service.greet(user, via="voice", request_id="again", audio=False)
        status = await service.status(user)
        await save_history(
            dev_env.client.get_workflow_handle(f"daily-briefing/{user}"), "daily_briefing_reset"
        )
    assert spoken.outcome is GreetOutcome.SPOKEN, spoken.text
    assert again.outcome is GreetOutcome.ALREADY_GIVEN, again.text
    # The day stays the one spoken at first (stored then), and it is not pushed at its end.
    assert status.given_at == spoken.given_at, status
