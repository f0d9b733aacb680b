"""A rung that needs approval on a paused Deployment: its owner was asked to approve a restart,
scale out or rollback that would not roll out, and only once approved did the rung read the
workload and skip it as paused. The workload is read before anyone is asked."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.remediation.ladder import RUNG_ACTIONS, Rung
from ambient.storage.audit import AuditRepository
from ambient.storage.repositories import InboxRepository
from tests.remediation.support import alert
from tests.remediation.test_cluster import CLUSTER, cluster
from tests.remediation.test_slow_cluster_after_wait import _waiting_at_rung_one
from tests.remediation.test_workflow import USER
from tests.standins.kube_api import KubeApi
from tests.support.record import save_history
from tests.support.waits import eventually

__all__ = ["cluster"]  # the fixture, used by name

PAUSED = "deployment prod/checkout is paused: "
WOULD_NOT = "would not roll out until someone resumes it (kubectl rollout resume)"


@pytest.mark.devserver
async def test_a_rung_on_a_paused_deployment_is_skipped_without_asking_for_approval(
    dev_env: WorkflowEnvironment,
    deps: WorkerDeps,
    tmp_path: Path,
    cluster: tuple[KubeApi, Path],
) -> None:
    """Approvals from rung 1. Not paused, rung 1 asks; someone pauses the Deployment while it
    waits, and the approved restart is skipped as paused (its plan reads it again). Rungs 2
    and 3 were pushed "Approval needed" for that paused Deployment; now they are skipped as
    paused without asking, and the ladder goes on to rung 4, which asks."""
    api, _ = cluster

    async def approvals_asked() -> list[str]:
        async with deps.db.session() as session:
            inbox = await InboxRepository(session).list(USER)
        return [m.title for m in inbox if m.title.startswith("Approval needed")]

    service = alert("http://unused", cluster_id=CLUSTER).service
    async with _waiting_at_rung_one(dev_env, deps, tmp_path, api.app()) as run:
        asked_first = await eventually(approvals_asked, "rung 1's approval pushed")
        api.deployments[("prod", "checkout")]["spec"]["paused"] = True
        await run.service.approve(USER, run.rid, True, "go", via="api")

        async def waiting_past_rung_one() -> Rung | None:
            seen = await run.service.get(USER, run.rid)
            rung = seen.waiting.rung if seen.waiting else None
            waits = seen.state == "waiting_approval" and rung is not Rung.RESTART
            return rung if waits else None

        waiting = await eventually(waiting_past_rung_one, "a later rung waits for approval")
        status = await run.service.get(USER, run.rid)
        asked = await approvals_asked()
        async with deps.db.session() as session:
            skipped = await AuditRepository(session).list(subject=status.run_key, action="skipped")
        await save_history(run.handle, "remediation_paused_skipped_before_approval")

    assert asked_first == [f"Approval needed: {RUNG_ACTIONS[Rung.RESTART]} of {service}"]
    assert waiting is Rung.ISOLATE, [(a.rung, a.skipped_reason) for a in status.attempts]
    assert sorted(asked) == [  # in any order: the inbox lists the newest first
        f"Approval needed: {RUNG_ACTIONS[Rung.ISOLATE]} of {service}",
        f"Approval needed: {RUNG_ACTIONS[Rung.RESTART]} of {service}",
    ]
    assert [(a.rung, a.applied, a.skipped_reason) for a in status.attempts] == [
        (Rung.RESTART, False, f"{PAUSED}a restart {WOULD_NOT}"),
        (
            Rung.SCALE_OUT,
            False,
            f"{PAUSED}someone holds its rollout, and the ladder does not scale it while it is "
            "held (kubectl rollout resume)",
        ),
        (Rung.ROLLBACK, False, f"{PAUSED}a rollback {WOULD_NOT}"),
    ]
    # Rungs 2 and 3 skipped before their approval, audited as a skip is.
    reasons = {r.detail["key"]: r.detail["reason"] for r in skipped}
    assert reasons == {
        f"{status.run_key}#{int(a.rung)}/skipped": a.skipped_reason for a in status.attempts[1:]
    }
    assert api.writes() == []
