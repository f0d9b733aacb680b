"""A remediation start retried with its request_id: answered from the run it started (its mode
and message, not the retry's), after that run ended too, and what already held: two starts at
once with one id, a stranger's reuse of the owner's id, an id sent after a start without one."""

from __future__ import annotations

import asyncio

from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.remediation.dry_run import DryRunExecutor
from ambient.remediation.ladder import Mode
from ambient.remediation.views import RemediationView
from tests.conftest import unique
from tests.remediation.support import add_user, alert, remediation_settings, remediations_on_dev
from tests.support.waits import eventually


async def test_a_retry_asking_another_mode_is_answered_with_the_runs_mode(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A retry asking execute of a dry_run run was answered "created, mode execute" (and the
    other way round): the answer is the first start's, kept with the run."""
    owner = unique("own")
    deps.executors = {"dry_run": DryRunExecutor(), "kubernetes": DryRunExecutor()}
    remediation_settings(deps, remediation_approval_from_rung=1, remediation_executor="kubernetes")
    await add_user(deps, owner, permission="execute")
    async with remediations_on_dev(dev_env, deps) as (url, _, remediations):
        runs: list[tuple[Mode, Mode, str]] = [
            ("dry_run", "execute", owner),
            ("execute", "dry_run", f"{owner}-x"),
        ]
        for first, then, workload in runs:
            sent = alert(url, workload=workload)
            started = await remediations.start(owner, sent, first, request_id="m1")
            again = await remediations.start(owner, sent, then, request_id="m1")

            async def decided(rid: str = started.remediation_id) -> RemediationView | None:
                # The start answers once the run is started; its mode is decided at its
                # opening (the permission), read a moment later on a loaded machine.
                view = await remediations.get(owner, rid)
                return view if view.mode is not None else None

            view = await eventually(decided, "the run's mode decided")
            await remediations.abort(owner, started.remediation_id, reason="test over", via="api")
            assert started.mode == first and started.created
            assert again == started, (first, then)
            assert (view.mode, view.mode_asked) == (first, first)


async def test_a_retry_after_its_run_ended_starts_no_second_run(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """The run its id started had ended: the retry (its answer lost) started a second run of
    the remediation (201 again, a new run)."""
    owner = unique("own")
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, owner)
    async with remediations_on_dev(dev_env, deps) as (url, _, remediations):
        sent = alert(url, workload=owner)
        started = await remediations.start(owner, sent, request_id="e1")
        handle = dev_env.client.get_workflow_handle(started.remediation_id)
        first_run = (await handle.describe()).run_id
        await remediations.abort(owner, started.remediation_id, reason="test over", via="api")
        await handle.result()
        again = await remediations.start(owner, sent, request_id="e1")
        latest = await handle.describe()
    assert again == started
    assert (latest.run_id, latest.status) == (first_run, WorkflowExecutionStatus.COMPLETED)


async def test_what_held_already_two_starts_at_once_a_strangers_id_and_an_id_after_none(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    owner, stranger = unique("own"), unique("mal")
    remediation_settings(deps, remediation_approval_from_rung=1)
    for name in (owner, stranger):
        await add_user(deps, name)
    async with remediations_on_dev(dev_env, deps) as (url, _, remediations):
        sent = alert(url, workload=owner)
        both = await asyncio.gather(
            remediations.start(owner, sent, request_id="c1"),
            remediations.start(owner, sent, request_id="c1"),
        )
        rid = both[0].remediation_id
        theirs = await remediations.start(stranger, sent, request_id="c1")
        view = await remediations.get(owner, rid)
        await remediations.abort(owner, rid, reason="test over", via="api")
        other = alert(url, workload=f"{owner}-n")
        plain = await remediations.start(owner, other)
        retried = await remediations.start(owner, other, request_id="n1")
        await remediations.abort(owner, plain.remediation_id, reason="test over", via="api")
    assert both[0] == both[1] and both[0].created and not both[0].deduplicated
    assert theirs.deduplicated and not theirs.created and theirs.remediation_id == rid
    assert [a.actor for a in view.audit if a.action == "deduplicated"] == [stranger]
    assert plain.created and retried.deduplicated and not retried.created
