"""The Temporal Web UI's summary of a started remediation names the mode it runs in."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from tests.conftest import unique
from tests.remediation.support import add_user, alert, remediation_settings, remediations_on_dev


async def test_the_summary_of_an_execute_asked_by_a_dry_run_user_says_dry_run(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Its summary said the mode asked for: "… for alice, execute" over a run in dry_run (the
    owner's rollback_permission), which the operator reading the Web UI took for a live one."""
    owner = unique("sum")
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, owner, permission="dry_run")
    async with remediations_on_dev(dev_env, deps) as (url, _, remediations):
        sent = alert(url, workload=owner)
        started = await remediations.start(owner, sent, mode="execute")
        handle = dev_env.client.get_workflow_handle(started.remediation_id)
        summary = await (await handle.describe()).static_summary()
        await handle.terminate("test over")
    assert started.mode == "dry_run"
    assert summary == f"Remediation of {sent.service} (error_rate) for {owner}, dry_run"
