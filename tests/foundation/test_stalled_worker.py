"""A read whose query a worker starved of CPU fails: said as the silent worker, not raised raw.

A worker that cannot run a query's workflow code within the SDK's 2 s fails the query with
"[TMPRL1101] Potential deadlock detected" (seen in CI on a loaded machine: a remediation's status
read raised it out of the service). The stand-ins here hold their query handler past those 2 s,
as a starved worker does, under the real workflows' type names and ids: one run for each read
(a run whose query failed so is evicted: a later query of it waits for the worker instead).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from datetime import timedelta
from functools import partial

import pytest
from pydantic import SecretStr
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from ambient import no_answer, temporal
from ambient.briefing.errors import BriefingError
from ambient.briefing.greeting_answers import GreetOutcome
from ambient.codec import new_key
from ambient.deps import WorkerDeps
from ambient.remediation.views import RemediationError
from ambient.watches.configs import PREFIXES, TaskKind, task_id_for
from ambient.watches.inputs import WorkerSilentError
from tests.briefing.harness import make_user
from tests.conftest import unique
from tests.support.waits import eventually
from tests.voice.support import worker_state
from workflows.web_monitor import WEB_MONITOR_TYPE

# Past the SDK's deadlock detector (2 s), as an activation on a worker starved of CPU.
STALL = 2.5


def stalled() -> None:
    time.sleep(STALL)


class Stalled:
    """The stand-ins' queries: each holds the worker past the detector (the SDK asks each
    workflow class for its own run method)."""

    @workflow.query
    def status(self) -> None:
        stalled()

    @workflow.query
    def already_given(self, request_id: str) -> None:
        stalled()


@workflow.defn(name=WEB_MONITOR_TYPE, sandboxed=False)
class StalledWatch(Stalled):
    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


@workflow.defn(name="DailyBriefingWorkflow", sandboxed=False)
class StalledBriefing(Stalled):
    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


@workflow.defn(name="GradedRemediationWorkflow", sandboxed=False)
class StalledRemediation(Stalled):
    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


async def start(client: Client, run: type, run_id: str, queue: str, user: str) -> None:
    await client.start_workflow(
        run,  # type: ignore[arg-type]
        id=run_id,
        task_queue=queue,
        search_attributes=temporal.search_attributes("test", user),
        execution_timeout=timedelta(minutes=2),
    )


async def first_task_done(client: Client, run_id: str) -> bool:
    """Whether the run's first workflow task is done: a query sent before it rides on that
    task instead of going to the worker on its own (and is not failed as this test needs)."""
    history = await client.get_workflow_handle(run_id).fetch_history()
    return any(e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED for e in history.events)


@pytest.mark.skipif(bool(os.environ.get("TEMPORAL_DEBUG")), reason="no deadlock detector")
@pytest.mark.usefixtures("sdk_deadlock_detector")
@pytest.mark.parametrize("payloads", ["plain", "encrypted"])
@pytest.mark.usefixtures("product_query_budget")  # each read asks again until its budget ends
async def test_a_query_a_stalled_worker_fails_is_the_silent_worker_at_every_read(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, payloads: str
) -> None:
    client, queue = dev_env.client, unique("tq")
    if payloads == "encrypted":
        # Failures encrypted too ("Encoded failure"): the detector's message must stay readable.
        config = client.config()
        key = SecretStr(new_key())
        config["data_converter"] = temporal.data_converter(
            deps.settings.model_copy(update={"payload_key": key})
        )
        client = Client(**config)
    user, greeter = unique("stalled"), unique("stalled-greeter")
    for someone in (user, greeter):
        await make_user(deps.db, someone)
    state = worker_state(client, deps, queue)
    watches = [f"{PREFIXES[TaskKind.WEB_MONITOR]}/{user}/{uuid.uuid4().hex}" for _ in range(2)]
    remediation = f"remediation/{uuid.uuid4().hex}"
    runs: dict[str, tuple[type, str]] = {run_id: (StalledWatch, user) for run_id in watches}
    runs[task_id_for(user)] = (StalledBriefing, user)
    runs[task_id_for(greeter)] = (StalledBriefing, greeter)
    runs[remediation] = (StalledRemediation, user)
    stand_ins = [StalledWatch, StalledBriefing, StalledRemediation]
    # The stand-ins are dropped at eviction, not torn down: the SDK evicts a run whose query it
    # failed while that query still holds the thread, and then never finishes a safe eviction
    # (the worker's shutdown would wait for it for good).
    stalling = Worker(
        client, task_queue=queue, workflows=stand_ins, disable_safe_workflow_eviction=True
    )
    async with stalling:
        try:
            for run_id, (run, owner) in runs.items():
                await start(client, run, run_id, queue, owner)
            for run_id in runs:
                await eventually(partial(first_task_done, client, run_id), "the run started")
            # The worker's own refusal, as the client receives it (the premise of this test).
            with pytest.raises(WorkflowQueryFailedError, match=r"\[TMPRL1101\]"):
                await client.get_workflow_handle(watches[0]).query("status")
            # Said as a silent worker (every door's words for it), and as the busy one it is.
            busy = re.escape(no_answer.silent_worker(busy=True))
            with pytest.raises(WorkerSilentError, match=busy):
                await state.tasks.get(user, watches[1])
            with pytest.raises(BriefingError, match=busy):
                await state.briefings.status(user)
            # A greeting is a spoken answer, not an error: not ready in time.
            greeted = await state.briefings.greet(greeter, request_id="stalled worker")
            assert greeted.outcome is GreetOutcome.PREPARING, greeted
            # No row stored for the run: nothing to show, and the silent worker said.
            with pytest.raises(RemediationError, match=busy):
                await state.remediations.get(user, remediation)
        finally:
            for run_id in runs:
                await client.get_workflow_handle(run_id).terminate("the test is over")


STALLS: dict[str, int] = {}


@workflow.defn(sandboxed=False)
class StalledOnce:
    """A run whose first query the worker runs past the detector (a moment of load), the
    next at once."""

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.query
    def status(self) -> str:
        run = workflow.info().workflow_id
        STALLS[run] = STALLS.get(run, 0) + 1
        if STALLS[run] == 1:
            stalled()
        return "answered"


@pytest.mark.skipif(bool(os.environ.get("TEMPORAL_DEBUG")), reason="no deadlock detector")
@pytest.mark.usefixtures("sdk_deadlock_detector")
async def test_a_query_a_worker_refused_in_a_moment_of_load_is_asked_again_and_answered(
    dev_env: WorkflowEnvironment,
) -> None:
    """Every read said the worker was busy when the detector refused its query once, though
    the worker answered the next one at once (a starved host's moment: CI's reads failed so).
    The read asks again while its budget leaves room."""
    client, queue = dev_env.client, unique("tq")
    run_id = unique("stalled-once")
    worker = Worker(
        client, task_queue=queue, workflows=[StalledOnce], disable_safe_workflow_eviction=True
    )
    async with worker:
        handle = await client.start_workflow(StalledOnce.run, id=run_id, task_queue=queue)
        try:
            await eventually(partial(first_task_done, client, run_id), "the run started")
            answer = await no_answer.queried(
                lambda left: handle.query(StalledOnce.status, rpc_timeout=left),
                no_answer.QUERY_TIMEOUT,
            )
            assert answer == "answered" and STALLS[run_id] == 2
        finally:
            await handle.terminate("the test is over")


async def test_a_busy_refusal_then_a_try_whose_deadline_comes_back_late_is_said_busy() -> None:
    """CI's loaded host: the worker refused a read as too busy, and the next try's RPC deadline
    came back after the read's budget (a starved loop). The read ends at its budget all the
    same, as the busy worker's refusal, not as a silent worker (nor never)."""
    tries = 0

    async def ask(left: timedelta) -> str:
        nonlocal tries
        tries += 1
        if tries == 1:
            raise WorkflowQueryFailedError(f"{no_answer.STALLED} Potential deadlock detected")
        await asyncio.Event().wait()  # no answer, and no deadline heard in time
        return "never"

    async with asyncio.timeout(10):
        with pytest.raises(WorkflowQueryFailedError, match=re.escape(no_answer.STALLED)):
            await no_answer.queried(ask, timedelta(seconds=3))
    assert tries == 2


async def test_a_read_no_try_of_which_is_answered_ends_at_its_budget_as_out_of_time() -> None:
    """No refusal heard and no answer: the budget's end is a TimeoutError (the callers' "no
    worker answered"), at the budget, whatever the RPC's own deadline does."""

    async def ask(left: timedelta) -> str:
        await asyncio.Event().wait()
        return "never"

    async with asyncio.timeout(10):
        with pytest.raises(TimeoutError):
            await no_answer.queried(ask, timedelta(seconds=1))
