"""Who approved a remediation's step: the run applies an answer only where a door checked that
user and recorded it. An update sent in Temporal by hand (the Web UI's updates carry no
identity) names an approver it cannot prove: it is refused and audited, the step not run."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import yaml
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.remediation.runs import AbortInput, ApprovalInput
from ambient.remediation.service import RemediationService
from ambient.remediation.storage import UNVERIFIED
from ambient.remediation.views import RemediationError
from ambient.storage.audit import AuditRepository
from ambient.wiring import AppState
from tests.conftest import unique
from tests.remediation.doors import steering_doors
from tests.remediation.support import (
    add_user,
    alert,
    error_rate,
    new_token,
    only_its_hash_kept,
    remediation_settings,
    remediations_on_dev,
    tokens_sent,
)
from tests.remediation.test_abort_sender import DOORS, NOT_YOURS, VIA
from tests.standins.kube_api import KubeApi, kubeconfig
from tests.support.record import save_history
from tests.support.servers import serve
from tests.support.waits import eventually
from workflows.remediation import GradedRemediationWorkflow

CLUSTER = "cls-standin1"


@pytest_asyncio.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[KubeApi]:
    """A Kubernetes API stand-in for CLUSTER, the remediations' executor (execute mode)."""
    api = KubeApi()
    async with serve(api.app()) as base:
        path = tmp_path / "kubeconfig"
        path.write_text(yaml.safe_dump(kubeconfig({CLUSTER: base})))
        yield api


def _execute_from_rung_1(deps: WorkerDeps, tmp_path: Path) -> None:
    remediation_settings(
        deps,
        remediation_approval_from_rung=1,
        remediation_executor="kubernetes",
        kubeconfig=tmp_path / "kubeconfig",
    )


async def _state(remediations: RemediationService, user: str, rid: str, state: str) -> bool:
    return (await remediations.get(user, rid)).state == state


def _writes(api: KubeApi, workload: str) -> int:
    """Changes the stand-in stored for ``workload``'s Deployment (its rung 1, a restart)."""
    return len([c for c in api.writes("deployments") if c.path.endswith(f"/{workload}")])


async def test_an_approval_sent_in_temporal_in_anothers_name_is_refused_and_runs_nothing(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, cluster: KubeApi, tmp_path: Path
) -> None:
    # The Web UI's "Send an update" with {"approver": "<a permitted approver>", ...} was taken
    # as that approver's: the execute-mode restart ran against the cluster in their name.
    _execute_from_rung_1(deps, tmp_path)
    owner = unique("own")
    await add_user(deps, owner, permission="execute")
    cluster.add_deployment("prod", owner, "registry/app:v1", replicas=2)
    async with remediations_on_dev(dev_env, deps, healthy_from=1) as (url, _, remediations):
        subject = alert(url, workload=owner, cluster_id=CLUSTER, settle_seconds=0)
        rid = (await remediations.start(owner, subject, "execute")).remediation_id
        await eventually(lambda: _state(remediations, owner, rid, "waiting_approval"), "waits")
        handle = dev_env.client.get_workflow_handle_for(GradedRemediationWorkflow.run, rid)
        made_up = ApprovalInput(approver=owner, approver_permission="execute", approve=True)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(GradedRemediationWorkflow.approve, made_up)
        still = await remediations.get(owner, rid)
        # The refused answer leaves the rung waiting: a door's answer still decides it.
        await handle.signal(GradedRemediationWorkflow.abort, AbortInput(by=owner))
        status = await handle.result()
        await save_history(handle, "graded_remediation_approval_unverified")

    assert str(refused.value.cause) == (
        "approval sent in Temporal, not through ambient-ops: the sender is not verified (it gave "
        f"the name {owner!r})"
    )
    assert still.state == "waiting_approval" and still.approvals == []
    assert _writes(cluster, owner) == 0 and status.attempts == []
    async with deps.db.session() as session:
        rows = await AuditRepository(session).list(subject=status.run_key)
    assert [r.action for r in rows if r.action.startswith("approv")] == ["approval_unverified"]
    (unverified,) = [r for r in rows if r.action == "approval_unverified"]
    assert unverified.actor == UNVERIFIED
    assert unverified.detail["given_by"] == owner and unverified.detail["approve"] is True
    assert unverified.detail["sender"] == "not verified: sent in Temporal"


async def test_the_owners_approval_through_every_door_runs_the_step_once(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, cluster: KubeApi, tmp_path: Path
) -> None:
    _execute_from_rung_1(deps, tmp_path)
    owner, stranger = unique("own"), unique("stranger")
    await add_user(deps, owner, permission="execute")
    await add_user(deps, stranger, permission="execute")
    tokens = {name: await new_token(deps, name) for name in (owner, stranger)}
    workloads = {door: f"{owner}-{door}" for door in DOORS}
    for workload in workloads.values():
        cluster.add_deployment("prod", workload, "registry/app:v1", replicas=2)
    async with (
        remediations_on_dev(dev_env, deps) as (_, settings, remediations),
        contextlib.AsyncExitStack() as sites,
    ):
        rids = {}
        for door, workload in workloads.items():
            # Each run its own metric: unhealthy when read again after the approval, healthy
            # at the verify after the change.
            _, url = await sites.enter_async_context(error_rate(healthy_from=2))
            subject = alert(url, workload=workload, cluster_id=CLUSTER, settle_seconds=0)
            rids[door] = (await remediations.start(owner, subject, "execute")).remediation_id
        for rid in rids.values():
            await eventually(
                lambda rid=rid: _state(remediations, owner, rid, "waiting_approval"), "waits"
            )
        state = AppState(
            settings=settings, db=deps.db, temporal=dev_env.client, channels=deps.channels
        )
        doors = steering_doors("approve", state, settings, tokens, stranger)
        for door, rid in rids.items():
            # A user who may not steer the run is refused at every door, the run left waiting.
            refused = await doors[door](stranger, rid)
            assert NOT_YOURS[door].format(rid=rid) in refused, (door, refused)
            assert await _state(remediations, owner, rid, "waiting_approval"), door
            assert _writes(cluster, workloads[door]) == 0, door
            assert await doors[door](owner, rid) == "", door
        for rid in rids.values():
            await eventually(
                lambda rid=rid: _state(remediations, owner, rid, "resolved"), f"{rid} ends"
            )
        views = {door: await remediations.get(owner, rid) for door, rid in rids.items()}
        sent = {door: await tokens_sent(dev_env.client, rid) for door, rid in rids.items()}

    for door, view in views.items():
        assert _writes(cluster, workloads[door]) == 1, door
        assert [(a.approver, a.reason) for a in view.approvals] == [(owner, f"via {door}")]
        async with deps.db.session() as session:
            rows = await AuditRepository(session).list(subject=view.run_key)
        steps = [(r.action, r.actor) for r in rows if r.action.startswith("approv")]
        assert steps == [("approve", owner), ("approval", owner)], (door, steps)
        assert [r.detail.get("via") for r in rows if r.action == "approve"] == [VIA[door]], door
        # The door's answer carried a one-time token; its record holds only the token's hash.
        (token,) = sent[door]
        await only_its_hash_kept(deps, rows, "approve", token)


async def test_a_doors_answer_the_run_refused_verifies_no_answer_sent_in_temporal_later(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, cluster: KubeApi, tmp_path: Path
) -> None:
    # A door records the answer before it sends it. The run refused this one (its rung had not
    # come yet) and the record stayed: once that rung waited, an update sent in Temporal with
    # the same user, rung and yes was taken as the door's, and the scale-out ran.
    _execute_from_rung_1(deps, tmp_path)
    owner = unique("own")
    await add_user(deps, owner, permission="execute")
    cluster.add_deployment("prod", owner, "registry/app:v1", replicas=2)
    async with remediations_on_dev(dev_env, deps) as (url, _, remediations):
        subject = alert(url, workload=owner, cluster_id=CLUSTER, settle_seconds=0)
        rid = (await remediations.start(owner, subject, "execute")).remediation_id
        await eventually(lambda: _state(remediations, owner, rid, "waiting_approval"), "waits")
        with pytest.raises(RemediationError) as early:
            await remediations.approve(owner, rid, True, "scale it", rung=2, via="api")
        await remediations.approve(owner, rid, True, "restart it", via="api")
        await eventually(lambda: _waits_on(remediations, owner, rid, 2), "rung 2 waits")
        changes = len(cluster.writes())
        handle = dev_env.client.get_workflow_handle_for(GradedRemediationWorkflow.run, rid)
        same = ApprovalInput(
            approver=owner, approver_permission="execute", approve=True, reason="scale it"
        )
        with pytest.raises(WorkflowUpdateFailedError) as in_temporal:
            await handle.execute_update(GradedRemediationWorkflow.approve, same)
        still = await remediations.get(owner, rid)
        await remediations.abort(owner, rid, "done looking", via="api")
        status = await handle.result()

    assert "rung 2 of" in str(early.value) and "has not come yet" in str(early.value)
    assert str(in_temporal.value.cause) == (
        "approval sent in Temporal, not through ambient-ops: the sender is not verified (it gave "
        f"the name {owner!r})"
    )
    assert still.state == "waiting_approval" and [a.rung for a in still.approvals] == [1]
    assert len(cluster.writes()) == changes and [a.rung for a in status.attempts] == [1]
    async with deps.db.session() as session:
        rows = await AuditRepository(session).list(subject=status.run_key)
    assert [
        (r.action, r.actor, r.detail["rung"]) for r in rows if r.action.startswith("approv")
    ] == [
        ("approve", owner, 2),
        ("approve", owner, 1),
        ("approval", owner, 1),
        ("approval_unverified", UNVERIFIED, 2),
    ]


async def _waits_on(remediations: RemediationService, user: str, rid: str, rung: int) -> bool:
    waiting = (await remediations.get(user, rid)).waiting
    return waiting is not None and waiting.what == "approval" and waiting.rung == rung


async def test_a_stranger_refused_at_the_door_cannot_approve_in_the_owners_name_in_temporal(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, cluster: KubeApi, tmp_path: Path
) -> None:
    _execute_from_rung_1(deps, tmp_path)
    owner, stranger = unique("own"), unique("stranger")
    await add_user(deps, owner, permission="execute")
    await add_user(deps, stranger, permission="execute")
    cluster.add_deployment("prod", owner, "registry/app:v1", replicas=2)
    async with remediations_on_dev(dev_env, deps, healthy_from=1) as (url, _, remediations):
        subject = alert(url, workload=owner, cluster_id=CLUSTER, settle_seconds=0)
        rid = (await remediations.start(owner, subject, "execute")).remediation_id
        await eventually(lambda: _state(remediations, owner, rid, "waiting_approval"), "waits")
        with pytest.raises(RemediationError) as at_door:
            await remediations.approve(stranger, rid, True, "mine now", via="api")
        # Refused at the door, the stranger sends the answer in Temporal in the owner's name.
        handle = dev_env.client.get_workflow_handle_for(GradedRemediationWorkflow.run, rid)
        posing = ApprovalInput(approver=owner, approver_permission="execute", approve=True)
        with pytest.raises(WorkflowUpdateFailedError) as in_temporal:
            await handle.execute_update(GradedRemediationWorkflow.approve, posing)
        still = await remediations.get(owner, rid)
        await remediations.abort(owner, rid, "done looking", via="api")
        status = await handle.result()

    assert f"no remediation {rid!r} among yours" in str(at_door.value)
    assert "the sender is not verified (it gave the name" in str(in_temporal.value.cause)
    assert still.state == "waiting_approval" and still.approvals == []
    assert _writes(cluster, owner) == 0 and status.attempts == []
    assert status.outcome == f"aborted by {owner}: done looking"
    async with deps.db.session() as session:
        rows = await AuditRepository(session).list(subject=status.run_key)
    assert [(r.action, r.actor) for r in rows if r.action.startswith("approv")] == [
        ("approval_unverified", UNVERIFIED)
    ]
