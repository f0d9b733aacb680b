"""Rung 3's rollback, when it needs approval, runs its change's own plan before anyone is asked:
one whose template already runs, or that has no release to go back to, is skipped as its change
would skip it, and its approval is never pushed. (Rungs 1 and 2 first: rung 1's restart asks and
is approved, rung 2's scale out is at the blast-radius limit's count, skipped without asking.)"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.remediation.changes import NOT_A_REVISION
from ambient.remediation.ladder import Mode, Rung
from ambient.remediation.views import RemediationView
from ambient.storage.audit import AuditRepository
from tests.remediation.support import remediation_settings
from tests.remediation.test_cluster import V1, V2
from tests.remediation.test_plan_before_approval import (
    CHECKOUT,
    approvals_asked,
    asked_for,
    checkout,
    waiting_past,
)
from tests.remediation.test_slow_cluster_after_wait import asking_from_rung_one
from tests.remediation.test_workflow import USER
from tests.standins.kube_api import ApiCall, KubeApi
from tests.support.waits import eventually

KEY = ("prod", "checkout")


def released(api: KubeApi, template: dict[str, object]) -> None:
    """The Deployment's template set to ``template``, rolled out (a person's kubectl)."""
    deployment = api.deployments[KEY]
    deployment["spec"]["template"] = copy.deepcopy(template)
    deployment["metadata"]["generation"] += 1
    api._reconcile(*KEY)


async def _skipped_to_rung_four(
    dev_env: WorkflowEnvironment,
    deps: WorkerDeps,
    tmp_path: Path,
    api: KubeApi,
    mode: Mode = "execute",
    before_approving: object = None,
) -> tuple[RemediationView, list[str], list[dict[str, object]]]:
    """Rung 1 approved, the run left waiting past it; its status, the approvals pushed and the
    audit rows of rung 3."""
    remediation_settings(deps, remediation_max_replicas=2)
    async with asking_from_rung_one(dev_env, deps, tmp_path, api.app(), mode) as run:
        await eventually(lambda: run.waits_on(Rung.RESTART), "rung 1 waits for approval")
        if callable(before_approving):
            before_approving()
        await run.service.approve(USER, run.rid, True, "go", via="api")
        await eventually(lambda: waiting_past(run, Rung.RESTART), "a later rung waits")

        async def two_asked() -> list[str] | None:
            asked = await approvals_asked(deps)  # pushed once the run waits
            return asked if len(asked) == 2 else None

        asked = await eventually(two_asked, "the later rung's approval pushed")
        status = await run.service.get(USER, run.rid)
        async with deps.db.session() as session:
            rows = await AuditRepository(session).list(subject=status.run_key)
    key = f"{status.run_key}#{int(Rung.ROLLBACK)}"
    return status, asked, [r.detail for r in rows if r.detail.get("key", "").startswith(key)]


@pytest.mark.devserver
async def test_a_rollback_whose_template_already_runs_is_skipped_without_asking(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """v2 runs over v1 when the run opens (rung 3 goes back to revision 1). Right after rung 1's
    restart, a person rolls the Deployment back to v1 by hand: rung 3's change would find that
    template running and skip; it was asked for first."""
    api = checkout()
    v1 = copy.deepcopy(api.deployments[KEY]["spec"]["template"])
    v2 = copy.deepcopy(v1)
    v2["spec"]["containers"][0]["image"] = V2
    released(api, v2)

    def rolled_back_by_hand(call: ApiCall) -> None:
        api.on_write = None
        released(api, v1)

    api.on_write = rolled_back_by_hand  # once the restart is stored
    status, asked, rows = await _skipped_to_rung_four(dev_env, deps, tmp_path, api)

    assert asked == asked_for(Rung.RESTART, Rung.ISOLATE)
    rollback = status.attempts[2]
    assert (rollback.rung, rollback.applied, rollback.skipped_reason, rollback.detail) == (
        Rung.ROLLBACK,
        False,
        "current template already matches revision 1",
        f"{CHECKOUT} already runs the template of revision 1",
    )
    assert [r["key"].rpartition("#3")[2] for r in rows] == [
        "/permission",
        "/checkpoint/before-asking",
        "/skipped",
    ]
    assert [c.kind for c in api.writes()] == ["deployments"]  # the restart alone
    assert api.deployments[KEY]["spec"]["template"]["spec"]["containers"][0]["image"] == V1


@pytest.mark.devserver
async def test_a_rollback_with_no_revision_recorded_is_skipped_without_asking(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """A dry run whose first checkpoint could not read the Deployment (RBAC refused it: read
    from the alert alone, no revision recorded) until the refusal was lifted while rung 1
    waited: rung 3's change would say the release is no revision to go back to and skip; it
    was asked for first."""
    api = checkout()
    api.forbidden = {"deployments"}
    status, asked, rows = await _skipped_to_rung_four(
        dev_env, deps, tmp_path, api, "dry_run", before_approving=api.forbidden.clear
    )

    assert asked == asked_for(Rung.RESTART, Rung.ISOLATE)
    rollback = status.attempts[2]
    assert (rollback.rung, rollback.applied, rollback.skipped_reason, rollback.detail) == (
        Rung.ROLLBACK,
        False,
        NOT_A_REVISION,
        f"{CHECKOUT}: no earlier revision was recorded at the first checkpoint",
    )
    assert [r["key"].rpartition("#3")[2] for r in rows] == [
        "/permission",
        "/checkpoint/before-asking",
        "/skipped",
    ]
    assert api.writes() == []
