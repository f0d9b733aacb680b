"""A rung that needs approval whose own plan would skip or stop it: its owner was asked to
approve a scale out of a Deployment an HPA scales, or one already at its count, or a restart of
a Deployment at 0 replicas, and only once approved did the change's plan read the workload and
skip it (or hand over). The rung's plan is run, sending nothing, before anyone is asked."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.remediation.ladder import RUNG_ACTIONS, Mode, Rung
from ambient.remediation.runs import FINAL_STATES, RemediationStatus
from ambient.remediation.views import RemediationView
from ambient.storage.audit import AuditRepository
from ambient.storage.repositories import InboxRepository
from tests.remediation.support import alert, remediation_settings
from tests.remediation.test_cluster import CLUSTER, V1
from tests.remediation.test_slow_cluster_after_wait import _Waiting, asking_from_rung_one
from tests.remediation.test_workflow import USER
from tests.standins.kube_api import KubeApi
from tests.support.record import save_history
from tests.support.waits import eventually

SERVICE = alert("http://unused", cluster_id=CLUSTER).service
CHECKOUT = "deployment prod/checkout"


async def approvals_asked(deps: WorkerDeps) -> list[str]:
    """The approval requests pushed to USER, in any order (the inbox lists the newest first)."""
    async with deps.db.session() as session:
        inbox = await InboxRepository(session).list(USER)
    return sorted(m.title for m in inbox if m.title.startswith("Approval needed"))


def asked_for(*rungs: Rung) -> list[str]:
    return sorted(f"Approval needed: {RUNG_ACTIONS[r]} of {SERVICE}" for r in rungs)


async def waiting_past(run: _Waiting, rung: Rung) -> Rung | None:
    """The rung the run waits on for approval, once past ``rung``."""
    seen = await run.service.get(USER, run.rid)
    waiting = seen.waiting.rung if seen.waiting else None
    return waiting if seen.state == "waiting_approval" and waiting is not rung else None


def checkout(replicas: int = 2) -> KubeApi:
    api = KubeApi()
    api.add_deployment("prod", "checkout", V1, replicas=replicas)
    return api


@pytest.mark.devserver
@pytest.mark.parametrize(
    ("why", "mode"),
    [("autoscaled", "execute"), ("at-count", "execute"), ("autoscaled", "dry_run")],
)
async def test_a_scale_out_its_plan_would_skip_is_skipped_without_asking_for_approval(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path, why: str, mode: Mode
) -> None:
    """Approvals from rung 1. Rung 1's restart would change the Deployment: it asks, and is
    made once approved. Rung 2's scale out of a Deployment an HPA scales (or already at the
    blast-radius limit's count) was pushed "Approval needed", then skipped by its plan once
    approved; now it is skipped as its plan says before anyone is asked, and the ladder goes
    on (rung 3 has nothing to roll back to) to rung 4, which asks."""
    api = checkout()
    if why == "autoscaled":
        api.add_autoscaler("prod", "checkout", "checkout", minimum=1, maximum=10)
        reason = (
            f"{CHECKOUT} is scaled by HorizontalPodAutoscaler checkout (1-10 replicas): its "
            "controller would undo a count set on the Deployment; raise the autoscaler's bounds "
            "instead"
        )
        found = f"{CHECKOUT} runs 2 replicas under HorizontalPodAutoscaler checkout (1-10 replicas)"
    else:
        remediation_settings(deps, remediation_max_replicas=2)
        reason = "already at 2 replicas"
        found = f"{CHECKOUT} already runs 2 replicas"
    async with asking_from_rung_one(dev_env, deps, tmp_path, api.app(), mode) as run:
        first = await eventually(lambda: approvals_asked(deps), "rung 1's approval pushed")
        await run.service.approve(USER, run.rid, True, "go", via="api")
        waiting = await eventually(lambda: waiting_past(run, Rung.RESTART), "a later rung waits")
        status = await run.service.get(USER, run.rid)
        asked = await approvals_asked(deps)
        async with deps.db.session() as session:
            skipped = await AuditRepository(session).list(subject=status.run_key, action="skipped")
            requested = await AuditRepository(session).list(subject=status.run_key)
        if why == "autoscaled" and mode == "execute":
            await save_history(run.handle, "remediation_plan_skipped_before_approval")

    assert waiting is Rung.ISOLATE, [(a.rung, a.skipped_reason) for a in status.attempts]
    assert first == asked_for(Rung.RESTART)
    assert asked == asked_for(Rung.RESTART, Rung.ISOLATE)
    assert [(a.rung, a.applied, a.skipped_reason) for a in status.attempts] == [
        (Rung.RESTART, mode == "execute", None),
        (Rung.SCALE_OUT, False, reason),
        (Rung.ROLLBACK, False, status.attempts[2].skipped_reason),
    ]
    # What its plan found, shown as a skip after an approval shows it (the page, MCP, voice).
    assert (status.attempts[1].detail, status.attempts[1].at is not None) == (found, True)
    key = f"{status.run_key}#{int(Rung.SCALE_OUT)}"
    assert {r.detail["key"]: r.detail["reason"] for r in skipped}[f"{key}/skipped"] == reason
    # Nothing of rung 2 was asked for, approved or sent: its plan was run before asking.
    keys = [r.detail.get("key", "") for r in requested]
    assert sorted(k for k in keys if k.startswith(key)) == [
        f"{key}/checkpoint/before-asking",
        f"{key}/permission",
        f"{key}/skipped",
    ]
    restarted = [("deployments", "PATCH")] if mode == "execute" else []
    assert [(c.kind, c.method) for c in api.writes()] == restarted


STOPPED = (
    f"{CHECKOUT} is scaled to 0 replicas: someone stopped it, and a restart would start no pod "
    "of it (scale it up by hand if it should run)"
)


@pytest.mark.devserver
async def test_a_restart_of_a_deployment_at_zero_replicas_hands_over_without_asking(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """Approvals from rung 1, the Deployment scaled to 0 by someone: its restart's plan stops
    the ladder (a person takes it). Its owner was first asked to approve that restart."""
    api = checkout(replicas=0)
    async with asking_from_rung_one(dev_env, deps, tmp_path, api.app()) as run:

        async def ended_or_asking() -> RemediationView | None:
            seen = await run.service.get(USER, run.rid)
            done = seen.state in (*FINAL_STATES, "waiting_approval")
            return seen if done else None

        status = await eventually(ended_or_asking, "the run ends or asks")
        asked = await approvals_asked(deps)

    assert asked == []
    assert status.state == "handed_over", status.outcome
    assert [(a.rung, a.applied, a.skipped_reason, a.detail) for a in status.attempts] == [
        (Rung.RESTART, False, STOPPED, f"{CHECKOUT} runs no pod")
    ]
    assert f"was skipped: {STOPPED}; no rung above it is tried" in status.outcome
    assert api.writes() == []


@pytest.mark.devserver
async def test_a_deployment_stopped_while_its_restart_waits_is_stopped_by_the_change_after_approval(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """The restart's plan would change the Deployment when asked: it asks. Someone scales the
    Deployment to 0 while it waits; the approved change plans again and hands over."""
    api = checkout()
    async with asking_from_rung_one(dev_env, deps, tmp_path, api.app()) as run:
        await eventually(lambda: run.waits_on(Rung.RESTART), "rung 1 waits for approval")
        api.deployments[("prod", "checkout")]["spec"]["replicas"] = 0
        await run.service.approve(USER, run.rid, True, "go", via="api")
        status = RemediationStatus.model_validate(await run.handle.result())
        asked = await approvals_asked(deps)

    assert asked == asked_for(Rung.RESTART)
    assert status.state == "handed_over", status.outcome
    # Said as the one skipped before asking is (its plan's words: the same plan).
    assert [(a.rung, a.applied, a.skipped_reason, a.detail) for a in status.attempts] == [
        (Rung.RESTART, False, STOPPED, f"{CHECKOUT} runs no pod")
    ]
    assert api.writes() == []
