"""What the Temporal Web UI shows of a remediation's steps, on the dev server: each activity,
local activity and timer of its history says what it does or waits for."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.remediation.runs import AbortInput
from tests.conftest import unique
from tests.remediation.support import (
    add_user,
    alert,
    remediation_settings,
    remediations_on_dev,
    waiting_dry_run,
)
from tests.support.waits import eventually
from tests.support.web_ui import steps
from workflows.remediation import GradedRemediationWorkflow


async def test_a_remediation_waiting_for_approval_says_what_it_waits_for(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """The approval wait was a TIMER_STARTED 0:30:00 with no label; open_remediation,
    notify, the discussion's post and the audit none either."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    owner = unique("own")
    await add_user(deps, owner)
    async with remediations_on_dev(dev_env, deps) as (url, _, remediations):
        rid = await waiting_dry_run(remediations, owner, url)
        handle = dev_env.client.get_workflow_handle_for(GradedRemediationWorkflow.run, rid)

        async def timed() -> list[str] | None:
            listed = await steps(handle, dev_env.client.data_converter)
            return listed if any(step.startswith("timer:") for step in listed) else None

        waiting = await eventually(timed, "the approval's timer started")
        await handle.signal(GradedRemediationWorkflow.abort, AbortInput(by=owner, reason="x"))
        await handle.result()
    ended = await steps(handle, dev_env.client.data_converter)
    fix = f"cls-test0001/prod/{owner}"
    assert waiting == [
        f"local activity: open the remediation of {fix}: score, plan, first checks",
        f"local activity: plan rung 1 (restart) of {fix} before asking",
        f"activity: notify {owner}: Approval needed: rollout restart (new pods, same release) "
        f"of {fix}",
        "local activity: post to the discussion: plan",
        "local activity: post to the discussion: approval",
        f"timer: approval of rung 1 (restart) of {fix}, 30 min",
    ]
    assert ended[len(waiting) :] == [
        "local activity: audit: aborted",
        "local activity: audit: finished",
        "local activity: post to the discussion: outcome",
        "local activity: record the run: aborted",
    ]


async def test_a_remediation_that_resolves_says_its_change_its_settling_and_its_verification(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """apply_remediation_step, the settle timer and the verification's reads were unlabelled."""
    remediation_settings(deps)
    owner = unique("own")
    await add_user(deps, owner)
    async with remediations_on_dev(dev_env, deps, healthy_from=0) as (url, _, remediations):
        started = await remediations.start(
            owner, alert(url, workload=owner, settle_seconds=1), mode="dry_run"
        )
        handle = dev_env.client.get_workflow_handle_for(
            GradedRemediationWorkflow.run, started.remediation_id
        )
        status = await handle.result()
    fix = f"cls-test0001/prod/{owner}"
    assert status.state == "resolved"
    assert await steps(handle, dev_env.client.data_converter) == [
        f"local activity: open the remediation of {fix}: score, plan, first checks",
        f"local activity: apply rung 1 (restart) to {fix} (dry_run): its first try",
        "local activity: post to the discussion: plan",
        "local activity: post to the discussion: step",
        f"timer: settle after rung 1 (restart) of {fix}, 1 s",
        f"local activity: read the verify metric of {fix}",
        f"local activity: verify rung 1 (restart) of {fix}",
        "local activity: audit: finished",
        "local activity: post to the discussion: outcome",
        "local activity: record the run: resolved",
        f"activity: notify {owner}: Alert cleared: {fix}",
    ]
