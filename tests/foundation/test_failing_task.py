"""A read of a run whose worker keeps failing its workflow task: said as that, not raw.

A run whose code fails on its worker (code that cannot replay it after a deploy, a bug) has its
workflow task tried again and again; from the third attempt the server refuses its queries and
updates at once, "Unable to query workflow due to Workflow Task in failed state." Every door
said that message as it came (the page "unavailable right now", the voice a generic refusal,
a remediation read no recorded view). The stand-ins here fail their task once signalled, under
the real workflows' type names and ids.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import WorkflowTaskFailedCause
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    PollWorkflowTaskQueueRequest,
    RespondWorkflowTaskFailedRequest,
)
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from ambient import no_answer, temporal
from ambient.briefing.errors import BriefingError
from ambient.controls_in_flight import DELIVERED_FAILING
from ambient.deps import WorkerDeps
from ambient.remediation.views import RemediationError
from ambient.storage.repositories import SnapshotRepository
from ambient.watches.configs import PREFIXES, TaskKind, TaskState, task_id_for
from ambient.watches.inputs import WorkerSilentError
from mcp_server.voice_sentences import WORKER_FAILING_EN
from tests.briefing.harness import make_user
from tests.conftest import unique
from tests.support.waits import eventually
from tests.voice.support import say, voice_client, worker_state
from workflows.web_monitor import WEB_MONITOR_TYPE


class Failing:
    """Fails its workflow task once told to, as code that cannot go on does (not a workflow
    failure: the task is tried again, and fails again)."""

    def __init__(self) -> None:
        self.broken = False

    async def _run(self) -> None:
        await workflow.wait_condition(lambda: self.broken)
        raise RuntimeError("code that cannot go on")

    @workflow.signal
    def breaks(self) -> None:
        self.broken = True

    @workflow.query
    def status(self) -> None:
        return None


@workflow.defn(name=WEB_MONITOR_TYPE, sandboxed=False)
class FailingWatch(Failing):
    @workflow.run
    async def run(self) -> None:
        await self._run()


@workflow.defn(name="DailyBriefingWorkflow", sandboxed=False)
class FailingBriefing(Failing):
    @workflow.run
    async def run(self) -> None:
        await self._run()


@workflow.defn(name="GradedRemediationWorkflow", sandboxed=False)
class FailingRemediation(Failing):
    @workflow.run
    async def run(self) -> None:
        await self._run()


async def refused_by_the_server(handle: WorkflowHandle[object, object]) -> bool:
    """Whether the server itself refuses the run's query as a task failing (attempt 3 on)."""
    try:
        await handle.query(Failing.status, rpc_timeout=timedelta(seconds=1))
    except RPCError as exc:
        return no_answer.task_failing(exc)
    return False


async def test_a_run_whose_worker_keeps_failing_its_task_is_said_so_at_every_read(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each read waits out the query's budget: 1 s, not the product's 5.
    monkeypatch.setattr(no_answer, "QUERY_TIMEOUT", timedelta(seconds=1))
    client: Client = dev_env.client
    queue, user = unique("tq"), unique("failing")
    await make_user(deps.db, user)
    state = worker_state(client, deps, queue)
    watch = f"{PREFIXES[TaskKind.WEB_MONITOR]}/{user}/{uuid.uuid4().hex}"
    remediation = f"remediation/{uuid.uuid4().hex}"
    runs = {
        watch: FailingWatch,
        task_id_for(user): FailingBriefing,
        remediation: FailingRemediation,
    }
    async with Worker(
        client, task_queue=queue, workflows=[FailingWatch, FailingBriefing, FailingRemediation]
    ):
        handles = {}
        try:
            for run_id, run in runs.items():
                handles[run_id] = await client.start_workflow(
                    run.run,  # type: ignore[attr-defined]
                    id=run_id,
                    task_queue=queue,
                    search_attributes=temporal.search_attributes("test", user),
                    execution_timeout=timedelta(minutes=2),
                    # Each failed attempt held past 1 s, not 10: the third attempt comes soon.
                    task_timeout=timedelta(seconds=1),
                )
                await handles[run_id].signal(Failing.breaks)
            for handle in handles.values():
                await eventually(
                    lambda h=handle: refused_by_the_server(h), "the server refuses its reads"
                )
            # Said as the worker failing the run's task, with the words every door matches on
            # for a worker that did not answer.
            failing = re.escape(no_answer.failing_worker())
            assert failing.startswith(re.escape(no_answer.SILENT_WORKER))
            with pytest.raises(WorkerSilentError, match=failing):
                await state.tasks.get(user, watch)
            with pytest.raises(BriefingError, match=failing):
                await state.briefings.status(user)
            # No row stored for the run: nothing to show, and why said.
            with pytest.raises(RemediationError, match=failing):
                await state.remediations.get(user, remediation)
            # A greeting is refused as that too, not "greet again in a moment" (it won't help).
            with pytest.raises(BriefingError, match=failing):
                await state.briefings.greet(user, request_id="failing worker")
            # The voice says the worker keeps failing (not "check that it is running").
            async with voice_client(state, user) as voice:
                assert await say(voice, "greet") == WORKER_FAILING_EN  # the tests' default: en
            # A delete is delivered, not done: it was answered "stopped" while the run went on,
            # and every later control was refused as of a stopped task.
            purged: list[str] = []

            async def purge(_: object, task: str) -> None:
                purged.append(task)

            monkeypatch.setattr(SnapshotRepository, "purge_rounds", purge)
            deleted = await state.tasks.delete(user, watch, purge=True)
            assert (deleted.state, deleted.note) == (TaskState.ACTIVE, DELIVERED_FAILING)
            assert purged == [watch]  # purged as asked, as a delete that stops at once is
        finally:
            for handle in handles.values():
                await handle.terminate("the test is over")


@pytest.mark.devserver
async def test_a_read_that_runs_out_of_time_during_a_later_attempt_is_the_failing_worker(
    dev_env: WorkflowEnvironment,
) -> None:
    """Between attempts the server refuses a failing run's reads at once; while an attempt is
    under way it hands them to the worker, and they ran out of time: said "no worker
    answered", a silent worker, though the worker keeps failing the run (a CI flake of the
    test above, and what a user read at that moment). A worker that fails nothing but holds
    each attempt until it times out (frozen) is silent, as its run's history says."""
    client = dev_env.client
    queue, workflow_id = f"held-{uuid.uuid4().hex[:8]}", unique("held-attempts")
    await client.start_workflow(
        "AnyWorkflow", id=workflow_id, task_queue=queue, task_timeout=timedelta(seconds=1)
    )
    poll = PollWorkflowTaskQueueRequest(
        namespace=client.namespace, task_queue=TaskQueue(name=queue), identity="fails its tasks"
    )
    # A worker that fails each attempt, and holds the third.
    for attempt in range(1, no_answer.FAILING_ATTEMPT + 1):
        taken = await client.workflow_service.poll_workflow_task_queue(poll)
        assert taken.attempt == attempt
        if attempt < no_answer.FAILING_ATTEMPT:
            failed = RespondWorkflowTaskFailedRequest(
                namespace=client.namespace,
                task_token=taken.task_token,
                cause=WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE,
                identity="fails its tasks",
            )
            await client.workflow_service.respond_workflow_task_failed(failed)
    # The third attempt is under way: a read of the run runs out of time now.
    why, down = await no_answer.out_of_time(client, workflow_id)
    assert (why, down) == (no_answer.failing_worker(), None)
    await client.get_workflow_handle(workflow_id).terminate()
    # A worker that takes each attempt and answers nothing (frozen, starved: each times out
    # after 1 s) logged no failure: silent, not "failing, read its logs".
    frozen = unique("frozen-attempts")
    await client.start_workflow(
        "AnyWorkflow", id=frozen, task_queue=queue, task_timeout=timedelta(seconds=1)
    )
    for attempt in range(1, no_answer.FAILING_ATTEMPT + 1):
        taken = await client.workflow_service.poll_workflow_task_queue(poll)
        assert (taken.workflow_execution.workflow_id, taken.attempt) == (frozen, attempt)
    assert (await no_answer.out_of_time(client, frozen))[0] == no_answer.silent_worker()
    await client.get_workflow_handle(frozen).terminate()
    # Without the run named, or for one whose task is on its first attempt: a silent worker.
    assert (await no_answer.out_of_time(client))[0] == no_answer.silent_worker()
    other = unique("first-attempt")
    await client.start_workflow("AnyWorkflow", id=other, task_queue=queue)
    assert (await no_answer.out_of_time(client, other))[0] == no_answer.silent_worker()
    await client.get_workflow_handle(other).terminate()
