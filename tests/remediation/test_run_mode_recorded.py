"""A run that changed the cluster for real was recorded (its row: list_remediations, the web
list, the stats) as a dry run once its owner's permission was lowered before a later rung:
a reviewer read that nothing was touched."""

from __future__ import annotations

from typing import Any

from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.remediation.alerts import remediation_id
from ambient.remediation.dry_run import DryRunExecutor
from ambient.remediation.ladder import Rung, StepRequest, StepResult
from ambient.remediation.runs import ApprovalInput, RemediationInput
from ambient.remediation.storage import RemediationRepository
from ambient.storage.users import UserRepository
from tests.conftest import running_worker, unique
from tests.remediation.support import (
    add_user,
    alert,
    as_door,
    error_rate,
    remediation_settings,
    state_reaches,
)
from workflows.remediation import GradedRemediationWorkflow
from workflows.remediation_records import search_attributes


class Executed(DryRunExecutor):
    """The kubernetes executor's stand-in: says each change was made, and keeps them."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[StepRequest] = []

    async def apply(self, step: StepRequest) -> StepResult:
        self.steps.append(step)
        return StepResult(applied=True, detail=f"rung {int(step.rung)} made for real")


async def test_a_run_that_executed_a_change_is_not_recorded_as_a_dry_run(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    cluster = Executed()
    deps.executors = {"dry_run": DryRunExecutor(), "kubernetes": cluster}
    remediation_settings(deps, remediation_approval_from_rung=2, remediation_executor="kubernetes")
    await add_user(deps, "ops", permission="execute")
    await add_user(deps, "lead", permission="execute")
    async with (
        error_rate(healthy_from=None) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        # Budget 2 (offline score 30-49): restart, then scale out with approval.
        fields: dict[str, Any] = {"namespace": "default", "value": 0.01, "metric": "disk"}
        subject = alert(url, labels={"tier": "low"}, **fields)
        handle = await ts_env.client.start_workflow(
            GradedRemediationWorkflow.run,
            RemediationInput(alert=subject, user="ops", mode="execute"),
            id=f"{remediation_id(subject)}-{unique('t')}",
            task_queue=worker.task_queue,
            search_attributes=search_attributes("ops", subject.cluster_id),
        )
        waiting = await state_reaches(ts_env, handle, ("waiting_approval",))
        assert waiting.waiting is not None and waiting.waiting.rung == Rung.SCALE_OUT
        # The owner's permission is lowered while rung 2 waits (an admin's decision).
        async with deps.db.session() as session:
            user = await UserRepository(session).get("ops")
            assert user is not None
            user.rollback_permission = "dry_run"
            await session.commit()
        answer = ApprovalInput(approver="lead", approver_permission="execute", approve=True)
        await handle.execute_update(
            GradedRemediationWorkflow.approve, await as_door(deps, handle, answer)
        )
        status = await handle.result()
        async with deps.db.session() as session:
            row = await RemediationRepository(session).get(status.run_key)

    first = status.attempts[0]
    assert (first.rung, first.mode, first.applied) == (Rung.RESTART, "execute", True)
    assert [s.rung for s in cluster.steps] == [Rung.RESTART]  # rung 1 changed the cluster
    # Rung 2 ran as a dry run (the status says the mode it steers by now) ...
    assert status.attempts[-1].mode == "dry_run" and status.mode == "dry_run"
    # ... and the run's row says what it was: a run that changed the cluster.
    assert row is not None and row.mode == "execute", row.mode
