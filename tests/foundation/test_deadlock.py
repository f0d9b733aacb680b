"""Test workers give an activation longer than the SDK's 2 s (tests/support/deadlock.py).

The detector interrupts a workflow thread by raising into it at whatever line it is on; on a
starved host an interruption between the workflow loop taking a ready callback and running it
lost the callback, and the run's eviction, and with it the worker's shutdown, waited for good.
"""

from __future__ import annotations

import time

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.conftest import unique

# Past the SDK's 2 s, as an ordinary activation is at times on a starved test host.
SLOW_ACTIVATION = 2.5
SLOWED: set[str] = set()


@workflow.defn(sandboxed=False)
class SlowActivation:
    """A run whose signal is handled in one activation longer than the SDK's detector allows."""

    def __init__(self) -> None:
        self.handled = False

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.handled)
        return "handled"

    @workflow.signal
    def slow(self) -> None:
        run = workflow.info().workflow_id
        if run not in SLOWED:  # once: a moment of load, not a workflow that always blocks
            SLOWED.add(run)
            end = time.monotonic() + SLOW_ACTIVATION
            while time.monotonic() < end:  # busy: a thread that got the CPU late
                pass
        self.handled = True


async def _run_with_a_slow_activation(env: WorkflowEnvironment) -> tuple[str, list[EventType]]:
    queue = unique("tq")
    worker = Worker(
        env.client,
        task_queue=queue,
        workflows=[SlowActivation],
        # A detector's interruption can leave the run's eviction waiting for good: not here.
        disable_safe_workflow_eviction=True,
    )
    async with worker:
        handle = await env.client.start_workflow(
            SlowActivation.run, id=unique("slow-activation"), task_queue=queue
        )
        await handle.signal(SlowActivation.slow)
        result = await handle.result()
        events = [e.event_type async for e in handle.fetch_history_events()]
    return result, events


async def test_a_test_workers_activation_past_the_sdks_two_seconds_is_not_interrupted(
    dev_env: WorkflowEnvironment,
) -> None:
    result, events = await _run_with_a_slow_activation(dev_env)
    assert result == "handled"
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in events


@pytest.mark.usefixtures("sdk_deadlock_detector")
async def test_with_the_sdks_detector_the_same_activation_is_cut_short_and_tried_again(
    dev_env: WorkflowEnvironment,
) -> None:
    """The opt-out gives the SDK's own detector (the product's worker's): its task fails
    ("Potential deadlock detected") and a later try, quick once nothing stalls it, completes."""
    result, events = await _run_with_a_slow_activation(dev_env)
    assert result == "handled"
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED in events
