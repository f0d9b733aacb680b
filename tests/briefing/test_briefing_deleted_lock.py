"""A deleted briefing whose scheduled preparation waited for a regenerate's (time-skipping
test server, the preparation activity held)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from ambient.briefing.config import BriefingConfig
from ambient.deps import WorkerDeps
from tests.briefing.harness import briefing_stack, held_preparations, make_user
from tests.support.record import save_history
from tests.support.servers import HANG
from tests.support.waits import eventually
from workflows.daily_briefing import DailyBriefingWorkflow
from workflows.daily_briefing_prepare_push import BRIEFING_DELETED


async def test_a_scheduled_preparation_waiting_for_a_cancelled_regenerate_starts_none(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pia regenerates early (the model slow), her preparation time comes while it still runs
    (the scheduled preparation waits for it), and she deletes the briefing: the regenerate is
    answered as deleted and its preparation cancelled, and the scheduled one that waited must
    not start then, keeping the deleted run as long again."""
    await make_user(deps.db, "pia")
    reasons, held = held_preparations(monkeypatch)
    async with briefing_stack(ts_env, deps) as stack:
        config = BriefingConfig(timezone="Asia/Shanghai", language="en")
        day, _ = await stack.created("pia", config)
        handle = ts_env.client.get_workflow_handle("daily-briefing/pia")
        await eventually(lambda: _planned(stack, "pia"), "the day planned")
        # Moments before it: the server's clock is not skipped while an activity runs.
        await stack.skip_to(day.prepare_at - timedelta(seconds=2))
        regenerate = asyncio.create_task(handle.execute_update(DailyBriefingWorkflow.regenerate))
        try:
            await eventually(lambda: _true(reasons == ["regenerate"]), "the regenerate prepares")
            await eventually(lambda: _fired(handle), "the preparation time taken up")
            await stack.service.delete("pia")
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await asyncio.wait_for(regenerate, HANG)
            assert await asyncio.wait_for(handle.result(), HANG) == "stopped"
            await save_history(handle, "daily_briefing_deleted_while_regenerating_early")
        finally:
            held.set()
    assert getattr(refused.value.cause, "type", None) == BRIEFING_DELETED
    assert reasons == ["regenerate"]


async def _planned(stack, user):  # type: ignore[no-untyped-def]
    return (await stack.service.status(user)).day


async def _true(value: bool) -> bool:
    return value


async def _fired(handle):  # type: ignore[no-untyped-def]
    """The prepare_at timer fired and a workflow task after it completed."""
    kinds = [e.event_type async for e in handle.fetch_history_events()]
    if EventType.EVENT_TYPE_TIMER_FIRED not in kinds:
        return False
    after = kinds[kinds.index(EventType.EVENT_TYPE_TIMER_FIRED) :]
    return EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED in after
