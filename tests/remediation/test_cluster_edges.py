"""The ladder against workloads and API answers at the edges: a Deployment scaled to 0, a
namespace that does not exist, a workload deleted under the run."""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.remediation.ladder import Rung
from ambient.remediation.runs import RemediationStatus
from ambient.remediation.storage import ActionLedger
from tests.conftest import running_worker
from tests.remediation.support import add_user, alert, error_rate, remediation_settings
from tests.remediation.test_cluster import CLUSTER, cluster
from tests.remediation.test_workflow import USER, audit_actions, start
from tests.standins.kube_api import ApiCall, KubeApi

__all__ = ["cluster"]  # the fixture, used by name


async def _run(
    env: WorkflowEnvironment,
    deps: WorkerDeps,
    path: Path,
    healthy_from: int | None,
    verified: bool = True,
    **fields: object,
) -> RemediationStatus:
    """One alert remediated in execute mode on the stand-in, no approval asked; without a
    ``verify`` block unless ``verified``."""
    remediation_settings(
        deps,
        remediation_approval_from_rung=0,
        remediation_executor="kubernetes",
        kubeconfig=path,
        remediation_rate_limit_per_hour=10,
    )
    await add_user(deps, USER, permission="execute")
    async with (
        error_rate(healthy_from=healthy_from) as (_, url),
        running_worker(env.client, deps) as worker,
    ):
        subject = alert(url, cluster_id=CLUSTER, **fields)
        if not verified:
            subject = subject.model_copy(update={"verify": None})
        handle = await start(env, worker.task_queue, subject, mode="execute")
        return await handle.result()


async def test_a_restart_of_a_deployment_scaled_to_zero_is_not_called_resolved(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cluster: tuple[KubeApi, Path]
) -> None:
    """No pod runs: a rollout of zero replicas is complete, and nothing serves. Without a
    verify block the run must not say a restart resolved the alert."""
    api, path = cluster
    api.failing_images = set()
    api.deployments[("prod", "checkout")]["spec"]["replicas"] = 0
    api._reconcile("prod", "checkout")
    status = await _run(ts_env, deps, path, healthy_from=None, verified=False)

    restart, scale_out = status.attempts[:2]
    assert (restart.rung, restart.applied, restart.resolved) == (Rung.RESTART, True, False)
    assert "prod/checkout is scaled to 0 replicas: no pod serves" in (restart.verification or "")
    # The scale out is what brought pods up (from 0 to 2), and the run says so.
    assert (scale_out.rung, scale_out.applied) == (Rung.SCALE_OUT, True), scale_out
    assert status.outcome == "resolved at rung 2 (scale_out)", status.outcome
    assert api.deployments[("prod", "checkout")]["spec"]["replicas"] == 2


async def test_an_alert_that_clears_on_a_deployment_scaled_to_zero_is_not_resolved(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cluster: tuple[KubeApi, Path]
) -> None:
    """An error rate falls when no pod serves: as behind an isolation, it is no fix."""
    api, path = cluster
    api.failing_images = set()
    api.deployments[("prod", "checkout")]["spec"]["replicas"] = 0
    api._reconcile("prod", "checkout")
    status = await _run(ts_env, deps, path, healthy_from=1)

    assert status.attempts[0].resolved is False, status.attempts[0].verification
    assert status.attempts[0].verification == (
        "metric 0.01 is healthy (below 0.05); rollout not available: "
        "deployment prod/checkout is scaled to 0 replicas: no pod serves"
    )


async def test_an_alert_on_a_namespace_that_does_not_exist_hands_over_naming_it(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cluster: tuple[KubeApi, Path]
) -> None:
    api, path = cluster
    status = await _run(ts_env, deps, path, healthy_from=None, namespace="nowhere")

    assert status.state == "handed_over", status.outcome
    assert status.outcome.startswith(
        "rung 1 (restart) was not applied: its checkpoint could not be read ("
    ), status.outcome
    assert "deployment nowhere/checkout not found" in status.outcome, status.outcome
    assert api.writes() == []
    async with deps.db.session() as session:
        assert await ActionLedger(session).reserved(f"{status.run_key}#1") is None


async def test_a_deployment_deleted_after_its_restart_hands_over_naming_it(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cluster: tuple[KubeApi, Path]
) -> None:
    api, path = cluster

    def delete(call: ApiCall) -> None:
        if call.kind == "deployments" and call.method == "PATCH":
            # Once the patch is answered: someone deletes the Deployment during the settle.
            asyncio.get_running_loop().call_soon(api.deployments.pop, ("prod", "checkout"))

    api.on_write = delete
    status = await _run(ts_env, deps, path, healthy_from=None)

    assert status.state == "handed_over", status.outcome
    assert [(a.rung, a.applied) for a in status.attempts] == [(Rung.RESTART, True)]
    assert "not found" in status.outcome, status.outcome
    assert len(api.writes()) == 1
    assert (await audit_actions(deps, status.run_key))[-2:] == ["hand_over", "finished"]
