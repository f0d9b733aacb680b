"""A read of a run whose worker fails its workflow task: said as that, not "is the worker running?".

A run whose code fails on its worker (code that cannot replay it after a deploy, a bug) has its
workflow task tried again; the worker holds the retried task until its timeout, so a query of
the run is not answered. Every read said "no worker answered within 5 s; is the worker
running?" while the worker ran. The stand-ins here fail their task once signalled, under the
real workflows' type names and ids.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from temporalio import workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from ambient import temporal
from ambient.briefing.errors import BriefingError
from ambient.briefing.models import task_id_for
from ambient.deps import WorkerDeps
from ambient.remediation.views import RemediationError
from ambient.watches.configs import TaskKind
from ambient.watches.inputs import WorkerSilentError
from ambient.watches.reads import PREFIXES
from tests.briefing.harness import make_user
from tests.conftest import unique
from tests.support.waits import eventually
from tests.voice.support import worker_state
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


async def retried(handle: WorkflowHandle[object, object]) -> bool:
    return temporal.retried_task(await handle.describe()) is not None


async def test_a_run_whose_worker_fails_its_task_is_said_so_at_every_read(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each read waits out the query's budget: 1 s, not the product's 5.
    monkeypatch.setattr(temporal, "QUERY_TIMEOUT", timedelta(seconds=1))
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
                )
                await handles[run_id].signal(Failing.breaks)
            for handle in handles.values():
                await eventually(lambda h=handle: retried(h), "the run's task is tried again")
            # Said as the worker failing the run's step, with the words every door matches on
            # for a worker that did not answer.
            failing = r"no worker answered: the worker failed this run's last step and is "
            failing += r"trying it again \(attempt \d+\); the worker's log says why"
            with pytest.raises(WorkerSilentError, match=failing):
                await state.tasks.get(user, watch)
            with pytest.raises(BriefingError, match=failing):
                await state.briefings.status(user)
            # No row stored for the run: nothing to show, and why said.
            with pytest.raises(RemediationError, match=failing):
                await state.remediations.get(user, remediation)
            assert re.match(failing, temporal.failing_worker(2))
        finally:
            for handle in handles.values():
                await handle.terminate("the test is over")
