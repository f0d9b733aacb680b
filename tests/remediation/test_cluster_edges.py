"""The ladder against workloads and API answers at the edges: a Deployment scaled to 0, a
namespace that does not exist, a workload deleted under the run."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from ambient.clients.kube import KubeClients
from ambient.deps import WorkerDeps
from ambient.domain.users import Language
from ambient.remediation.changes import RESTARTED_AT
from ambient.remediation.dry_run import DryRunExecutor
from ambient.remediation.ladder import (
    ISOLATION_LABEL,
    Checkpoint,
    Rung,
    StepRequest,
    WorkloadRef,
)
from ambient.remediation.runs import AbortInput, RemediationStatus
from ambient.remediation.storage import ActionLedger
from ambient.storage.audit import AuditRepository
from ambient.storage.repositories import InboxRepository
from tests.conftest import running_worker
from tests.remediation.support import (
    add_user,
    alert,
    error_rate,
    remediation_settings,
    signal_taken,
    state_reaches,
)
from tests.remediation.test_cluster import CLUSTER, V1, V2, _kubeconfig, cluster, images
from tests.remediation.test_workflow import USER, audit_actions, start
from tests.standins.kube_api import ApiCall, KubeApi
from tests.support.record import save_history
from tests.support.servers import HANG, serve
from workflows.remediation import GradedRemediationWorkflow

__all__ = ["cluster"]  # the fixture, used by name


async def _run(
    env: WorkflowEnvironment,
    deps: WorkerDeps,
    path: Path,
    healthy_from: int | None,
    verified: bool = True,
    record: str | None = None,
    language: Language | None = None,
    **fields: object,
) -> RemediationStatus:
    """One alert remediated in execute mode on the stand-in, no approval asked (for USER, who
    reads ``language``); without a ``verify`` block unless ``verified`` (its history kept as
    ``record`` when recording)."""
    remediation_settings(
        deps,
        remediation_approval_from_rung=0,
        remediation_executor="kubernetes",
        kubeconfig=path,
        remediation_rate_limit_per_hour=10,
    )
    await add_user(deps, USER, permission="execute", language=language)
    async with (
        error_rate(healthy_from=healthy_from) as (_, url),
        running_worker(env.client, deps) as worker,
    ):
        subject = alert(url, cluster_id=CLUSTER, **fields)
        if not verified:
            subject = subject.model_copy(update={"verify": None})
        handle = await start(env, worker.task_queue, subject, mode="execute")
        status = await handle.result()
        if record is not None:
            await save_history(handle, record)
        return status


def _stopped_once_restarted(api: KubeApi) -> None:
    """Someone scales checkout to 0 once the run's restart is stored (before its answer)."""

    def stop(call: ApiCall) -> None:
        deployment = api.deployments[("prod", "checkout")]
        if call.kind == "deployments" and deployment["spec"]["replicas"]:
            deployment["spec"]["replicas"] = 0
            api._reconcile("prod", "checkout")

    api.on_write = stop


async def test_a_deployment_someone_stopped_is_not_restarted_and_goes_to_a_person(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cluster: tuple[KubeApi, Path]
) -> None:
    """Rung 1 restarted a Deployment at 0 replicas: a new template for no pod, an audit that
    says a restart was sent. It is skipped as the scale out is (nothing written, its slot given
    back) and the run hands over at once."""
    api, path = cluster
    api.deployments[("prod", "checkout")]["spec"]["replicas"] = 0
    api._reconcile("prod", "checkout")
    template = api.deployments[("prod", "checkout")]["spec"]["template"]
    status = await _run(ts_env, deps, path, healthy_from=None)

    (restart,) = status.attempts
    assert (restart.rung, restart.applied) == (Rung.RESTART, False), restart
    stopped = (
        "deployment prod/checkout is scaled to 0 replicas: someone stopped it, and a restart "
        "would start no pod of it (scale it up by hand if it should run)"
    )
    assert restart.skipped_reason == stopped, restart
    reason = (
        f"rung 1 (restart) was skipped: {stopped}; no rung above it is tried: a workload "
        "scaled to 0 on purpose is not failing, and rolling it back or isolating it would undo "
        "that decision"
    )
    assert (status.state, status.outcome) == ("handed_over", reason)
    assert api.writes() == []
    assert api.deployments[("prod", "checkout")]["spec"]["template"] == template
    assert (await audit_actions(deps, status.run_key))[-2:] == ["hand_over", "finished"]
    async with deps.db.session() as session:
        assert await ActionLedger(session).reserved(f"{status.run_key}#1") is None


async def test_a_deployment_its_autoscaler_holds_at_zero_is_handed_over_naming_it(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cluster: tuple[KubeApi, Path]
) -> None:
    """A restart of a Deployment an autoscaler holds at 0 (KEDA, an HPA scaling to zero)
    said "someone stopped it … scale it up by hand", which the autoscaler would undo; the
    scale out already named it. Still handed over (nothing to remediate), the autoscaler named,
    and its hand-over no longer says "a workload someone stopped" of it."""
    api, path = cluster
    api.add_autoscaler("prod", "checkout-hpa", "checkout", minimum=0, maximum=10)
    api.deployments[("prod", "checkout")]["spec"]["replicas"] = 0
    api._reconcile("prod", "checkout")
    record = "remediation_autoscaler_at_zero"
    status = await _run(ts_env, deps, path, healthy_from=None, record=record)

    (restart,) = status.attempts
    assert (restart.rung, restart.applied) == (Rung.RESTART, False), restart
    held = (
        "deployment prod/checkout is scaled to 0 replicas by HorizontalPodAutoscaler "
        "checkout-hpa (0-10 replicas) (or what drives it, such as KEDA), and a restart would "
        "start no pod of it (change the autoscaler's bounds or triggers if it should run)"
    )
    assert restart.skipped_reason == held, restart
    assert status.outcome == (
        f"rung 1 (restart) was skipped: {held}; no rung above it is tried: a workload scaled to "
        "0 on purpose is not failing, and rolling it back or isolating it would undo that decision"
    )
    assert status.state == "handed_over" and api.writes() == []
    async with deps.db.session() as session:
        (handed,) = await AuditRepository(session).list(
            subject=status.run_key, action="hand_over", limit=10
        )
    assert "someone" not in handed.detail["body"], handed.detail["body"]


@pytest.mark.parametrize(
    ("scaled_object", "held_by"),
    [
        (None, None),
        (
            "checkout",
            "HorizontalPodAutoscaler keda-hpa-checkout of ScaledObject checkout (1-10 replicas)",
        ),
    ],
)
async def test_a_plain_autoscaler_does_not_hold_a_deployment_at_zero_keda_s_does(
    ts_env: WorkflowEnvironment,
    deps: WorkerDeps,
    cluster: tuple[KubeApi, Path],
    scaled_object: str | None,
    held_by: str | None,
) -> None:
    """An HPA of minReplicas 1 stops scaling a Deployment at 0 (ScalingActive False,
    ScalingDisabled): a person stopped it, yet the hand-over named the HPA as holding it there
    and said to change its bounds. KEDA's HPA (owned by its ScaledObject) does hold it at 0."""
    api, path = cluster
    hpa = "keda-hpa-checkout" if scaled_object else "checkout-hpa"
    api.add_autoscaler("prod", hpa, "checkout", minimum=1, maximum=10, scaled_object=scaled_object)
    api.deployments[("prod", "checkout")]["spec"]["replicas"] = 0
    api._reconcile("prod", "checkout")
    status = await _run(ts_env, deps, path, healthy_from=None)

    (restart,) = status.attempts
    if held_by is None:
        assert restart.skipped_reason == (
            "deployment prod/checkout is scaled to 0 replicas: someone stopped it, and a "
            "restart would start no pod of it (scale it up by hand if it should run)"
        ), restart
    else:
        assert restart.skipped_reason == (
            f"deployment prod/checkout is scaled to 0 replicas by {held_by} (or what drives it, "
            "such as KEDA), and a restart would start no pod of it (change the autoscaler's "
            "bounds or triggers if it should run)"
        ), restart
    assert status.state == "handed_over" and api.writes() == []
    target = WorkloadRef(cluster_id=CLUSTER, namespace="prod", name="checkout")
    clients = KubeClients(path, None)
    try:
        seen = await DryRunExecutor(clients).checkpoint(target)
    finally:
        await clients.aclose()
    assert seen.autoscaler == held_by, seen


async def test_a_restart_of_a_deployment_scaled_to_zero_is_not_called_resolved(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cluster: tuple[KubeApi, Path]
) -> None:
    """No pod runs (someone scaled it to 0 as it was restarted): a rollout of zero replicas is
    complete, and nothing serves. Without a verify block the run must not say a restart
    resolved the alert; and its scale out did not bring up 2 pods of a workload someone had
    stopped."""
    api, path = cluster
    api.failing_images = set()
    _stopped_once_restarted(api)
    status = await _run(ts_env, deps, path, healthy_from=None, verified=False)

    restart, scale_out = status.attempts[:2]
    assert (restart.rung, restart.applied, restart.resolved) == (Rung.RESTART, True, False)
    assert "prod/checkout is scaled to 0 replicas: no pod serves" in (restart.verification or "")
    # Zero is someone's decision (the full rollback's own baseline): the scale out does not
    # start what someone stopped, as a HorizontalPodAutoscaler does not.
    assert (scale_out.rung, scale_out.applied) == (Rung.SCALE_OUT, False), scale_out
    assert scale_out.skipped_reason == (
        "deployment prod/checkout is scaled to 0 replicas: someone stopped it, and the scale "
        "out does not start it again (scale it up by hand if it should run)"
    ), scale_out
    assert status.state != "resolved", status.outcome
    assert api.deployments[("prod", "checkout")]["spec"]["replicas"] == 0
    assert not any(
        "replicas" in ((c.body or {}).get("spec") or {})
        for c in api.writes("deployments")
        if isinstance(c.body, dict)
    )
    async with deps.db.session() as session:
        assert await ActionLedger(session).reserved(f"{status.run_key}#2") is None


async def test_a_deployment_someone_stopped_goes_to_a_person_at_the_skipped_scale_out(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cluster: tuple[KubeApi, Path]
) -> None:
    """A workload at 0 replicas is not failing, it was stopped (here as it was restarted): the
    ladder climbed on past the skipped scale out as if it had been tried, rolled the stopped
    release back and cut its Service off. The run now stops there and hands over, saying why."""
    api, path = cluster
    _stopped_once_restarted(api)
    record = "remediation_stopped_workload"
    status = await _run(ts_env, deps, path, healthy_from=None, record=record)

    assert [(a.rung, a.applied) for a in status.attempts] == [
        (Rung.RESTART, True),
        (Rung.SCALE_OUT, False),
    ], status.attempts
    stopped = (
        "deployment prod/checkout is scaled to 0 replicas: someone stopped it, and the scale "
        "out does not start it again (scale it up by hand if it should run)"
    )
    reason = (
        f"rung 2 (scale_out) was skipped: {stopped}; no rung above it is tried: a workload "
        "scaled to 0 on purpose is not failing, and rolling it back or isolating it would undo "
        "that decision"
    )
    assert (status.state, status.outcome) == ("handed_over", reason)
    assert status.next_rung is None and status.waiting is None
    # The restart's write alone: no rollback of the stopped release, its Service untouched.
    assert [(c.kind, c.method) for c in api.writes()] == [("deployments", "PATCH")]
    assert images(api) == [V2]
    assert api.services[("prod", "checkout")]["spec"]["selector"] == {"app": "checkout"}
    actions = await audit_actions(deps, status.run_key)
    assert actions[-2:] == ["hand_over", "finished"], actions
    async with deps.db.session() as session:
        (handed,) = await AuditRepository(session).list(
            subject=status.run_key, action="hand_over", limit=10
        )
        (finished,) = await AuditRepository(session).list(
            subject=status.run_key, action="finished", limit=10
        )
        inbox = await InboxRepository(session).list(USER)
    assert handed.detail["reason"] == reason, handed.detail
    assert handed.detail["body"].startswith(
        f"Remediation `{status.remediation_id}` stopped: {reason}. "
    ), handed.detail["body"]
    assert "Tried: restart (not resolved), scale_out (not applied)." in handed.detail["body"]
    assert (finished.detail["state"], finished.detail["outcome"]) == ("handed_over", reason)
    assert [m.title for m in inbox if m.title.startswith("Needs a person")] == [
        f"Needs a person: {CLUSTER}/prod/checkout"
    ]


async def test_an_alert_that_clears_on_a_deployment_scaled_to_zero_is_not_resolved(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cluster: tuple[KubeApi, Path]
) -> None:
    """An error rate falls when no pod serves (someone scaled it to 0 as it was restarted): as
    behind an isolation, it is no fix."""
    api, path = cluster
    api.failing_images = set()
    _stopped_once_restarted(api)
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


async def test_an_alert_that_clears_behind_an_earlier_runs_isolation_is_not_resolved(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """An earlier run of the alert isolated the workload and handed it over; before anyone
    restored the Service, the alert came again (the nightly triage, a watch). The error rate
    is low because no traffic reaches the pods: the new run's restart is no fix."""
    api = KubeApi()
    api.add_deployment("prod", "checkout", V1, replicas=2)
    api.add_service("prod", "checkout", {"app": "checkout", ISOLATION_LABEL: "0f1e2d3c4b5a6978"})
    async with serve(api.app()) as base:
        path = _kubeconfig(tmp_path, base)
        # Recorded: the isolated-before-run hand-over replays (tests/histories).
        record = "remediation_isolated_before_run"
        status = await _run(ts_env, deps, path, healthy_from=1, record=record)
        selector = api.services[("prod", "checkout")]["spec"]["selector"]

    assert ISOLATION_LABEL in selector  # nothing restored it
    assert [(a.rung, a.applied, a.resolved) for a in status.attempts] == [
        (Rung.RESTART, True, True)
    ]
    assert status.state == "handed_over", status.outcome
    assert status.outcome == (
        "the alert cleared at rung 1 (restart) with the service isolated since before this run "
        f"(the selector of Service checkout carries {ISOLATION_LABEL}): no traffic reaches it, "
        "which is no fix; restore the selector first"
    ), status.outcome
    async with deps.db.session() as session:
        inbox = await InboxRepository(session).list(USER)
    assert not any(m.title.startswith("Remediated") for m in inbox)


@dataclass
class HeldWrites:
    """Holds the ``nth`` PATCH the API server receives until ``release`` (then the server
    answers it as it would have): a write under way, its answer not yet known."""

    nth: int
    # False: the write goes on at once (the abort finds the change between two tries).
    hold: bool = True
    seen: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def wrap(self, app: Any) -> Any:
        async def held(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["method"] == "PATCH":
                self.seen += 1
                if self.seen == self.nth:
                    self.arrived.set()
                    if self.hold:
                        await self.release.wait()
            await app(scope, receive, send)

        return held


async def _aborted_while_changing(
    env: WorkflowEnvironment,
    deps: WorkerDeps,
    tmp_path: Path,
    api: KubeApi,
    holding: HeldWrites,
    record: str | None = None,
) -> RemediationStatus:
    """A restart in execute mode on ``api``; aborted once ``holding`` holds its write, which
    is then answered (its history kept as ``record`` when recording)."""
    async with serve(holding.wrap(api.app())) as base:
        await _executing(deps, _kubeconfig(tmp_path, base), approval_from=0)
        async with (
            error_rate(healthy_from=None) as (_, url),
            running_worker(env.client, deps) as worker,
        ):
            subject = alert(url, cluster_id=CLUSTER, settle_seconds=0)
            handle = await start(env, worker.task_queue, subject, mode="execute")
            try:
                await asyncio.wait_for(holding.arrived.wait(), HANG)
                abort = AbortInput(by=USER, reason="stop")
                await handle.signal(GradedRemediationWorkflow.abort, abort)
                await signal_taken(handle)
            finally:
                holding.release.set()
            status = await asyncio.wait_for(handle.result(), HANG)
            if record is not None:
                await save_history(handle, record)
            return status


async def _executing(deps: WorkerDeps, kubeconfig: Path, *, approval_from: int) -> None:
    """USER may execute on the Kubernetes executor at ``kubeconfig``; approvals from the rung
    ``approval_from`` (0: none), ten changes an hour on the cluster."""
    remediation_settings(
        deps,
        remediation_approval_from_rung=approval_from,
        remediation_executor="kubernetes",
        kubeconfig=kubeconfig,
        remediation_rate_limit_per_hour=10,
    )
    await add_user(deps, USER, permission="execute")


def _checkout(tmp_path: Path) -> KubeApi:
    api = KubeApi()
    api.add_deployment("prod", "checkout", V1, replicas=2)
    return api


@pytest.mark.devserver
@pytest.mark.parametrize("hold", [True, False], ids=["write-under-way", "between-tries"])
async def test_an_abort_while_the_change_is_retried_on_a_busy_api_server_makes_no_change(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path, hold: bool
) -> None:
    """The API server answers 503 (restarting): the restart is tried again for minutes. The
    owner aborted meanwhile, and the retries still restarted the Deployment once it answered,
    the run then ending "aborted" with its restart made after the abort."""
    api = _checkout(tmp_path)
    api.unavailable_writes = 4
    # The third write: the opening's one try and the regular change's first were refused.
    # Recorded: the abort-during-change path replays (tests/histories).
    record = None if hold else "remediation_abort_during_change_retries"
    status = await _aborted_while_changing(
        dev_env, deps, tmp_path, api, HeldWrites(nth=3, hold=hold), record
    )

    assert status.state == "aborted", status.outcome
    assert api.writes() == [], [(c.method, c.status) for c in api.calls]
    assert [(a.rung, a.applied, a.skipped_reason) for a in status.attempts] == [
        (Rung.RESTART, False, "aborted before its change")
    ]
    async with deps.db.session() as session:
        assert await ActionLedger(session).reserved(f"{status.run_key}#1") is None


@pytest.mark.devserver
async def test_an_abort_while_a_write_is_under_way_reports_the_write_it_made(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """The write the abort found on the wire was stored: the run says it was made."""
    api = _checkout(tmp_path)
    api.unavailable_writes = 1  # the opening's one try; the regular change's first is held
    status = await _aborted_while_changing(dev_env, deps, tmp_path, api, HeldWrites(nth=2))

    assert status.state == "aborted", status.outcome
    assert len(api.writes()) == 1
    assert [(a.rung, a.applied) for a in status.attempts] == [(Rung.RESTART, True)]


@pytest.mark.devserver
async def test_an_abort_while_a_refused_write_is_under_way_makes_no_change_and_ends_aborted(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """The write on the wire is answered 503 after the abort: no retry after it, no hand-over."""
    api = _checkout(tmp_path)
    api.unavailable_writes = 4
    status = await _aborted_while_changing(dev_env, deps, tmp_path, api, HeldWrites(nth=2))

    assert status.state == "aborted", status.outcome
    assert api.writes() == [], [(c.method, c.status) for c in api.calls]
    assert [(a.rung, a.applied) for a in status.attempts] == [(Rung.RESTART, False)]


async def test_isolating_a_workload_leaves_a_service_it_shares_with_another_workload_alone(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """The Service web selects every pod labelled tier=web: checkout's and cart's. Rung 4 on
    checkout pointed it at no pod, and cart, which had no alert, lost its traffic too. Only
    checkout's pods are cut off now (the deny-all NetworkPolicy), and the step says why."""
    api = KubeApi()
    for name in ("checkout", "cart"):
        api.add_deployment("prod", name, V1, replicas=2)
        api.deployments[("prod", name)]["spec"]["template"]["metadata"]["labels"]["tier"] = "web"
        api._reconcile("prod", name)
    # One release each: the ReplicaSets of the templates before the label are gone.
    for key, rs in list(api.replicasets.items()):
        if "tier" not in rs["spec"]["template"]["metadata"]["labels"]:
            del api.replicasets[key]
    api.add_service("prod", "web", {"tier": "web"})
    async with serve(api.app()) as base:
        path = _kubeconfig(tmp_path, base)
        status = await _run(ts_env, deps, path, healthy_from=None)

    assert api.services[("prod", "web")]["spec"]["selector"] == {"tier": "web"}
    [(namespace, policy)] = list(api.networkpolicies)
    assert api.networkpolicies[(namespace, policy)]["spec"]["podSelector"] == {
        "matchLabels": {"app": "checkout", "tier": "web"}
    }
    isolate = next(a for a in status.attempts if a.rung is Rung.ISOLATE)
    assert isolate.applied and list(isolate.patch or {}) == [f"networkpolicy/prod/{policy}"]
    assert isolate.detail == (
        f"isolate: no Service selects only checkout; deny-all NetworkPolicy {policy}; "
        "Service web also selects the pods of deployment cart: left as it is"
    )


async def test_rung_three_rolls_back_past_a_restart_made_before_the_alert(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cluster: tuple[KubeApi, Path]
) -> None:
    """v2 is the bad release; someone ran `kubectl rollout restart` on it before the alert
    came (a new revision of the same release). Rung 3 "rolled back the release" to v2 again,
    the revision before the restart, and v1 was never tried."""
    api, path = cluster
    deployment = api.deployments[("prod", "checkout")]
    template = deployment["spec"]["template"]
    template["metadata"].setdefault("annotations", {})[RESTARTED_AT] = "2026-11-29T08:00:00Z"
    deployment["metadata"]["generation"] += 1
    api._reconcile("prod", "checkout")
    assert api.revisions("prod", "checkout") == {1: [V1], 2: [V2], 3: [V2]}
    status = await _run(ts_env, deps, path, healthy_from=3)

    rollback = next(a for a in status.attempts if a.rung is Rung.ROLLBACK)
    assert rollback.applied, rollback
    assert rollback.detail == f"roll back deployment prod/checkout to revision 1 ({V1})"
    assert [c["image"] for c in deployment_of(api)["spec"]["template"]["spec"]["containers"]] == [
        V1
    ]
    assert status.state == "resolved", status.outcome


def deployment_of(api: KubeApi) -> dict[str, Any]:
    return api.deployments[("prod", "checkout")]


async def test_a_rollback_with_nothing_to_roll_back_to_asks_nobody_to_approve_it(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """The first checkpoint found no earlier release: rung 3 will do nothing. Its owner was
    pushed "Approval needed: roll back the release", and approving it rolled back nothing
    (not answering it in time handed the run over for a step that had nothing to do)."""
    api = _checkout(tmp_path)
    async with serve(api.app()) as base:
        await _executing(deps, _kubeconfig(tmp_path, base), approval_from=3)
        async with (
            error_rate(healthy_from=None) as (_, url),
            running_worker(ts_env.client, deps) as worker,
        ):
            subject = alert(url, cluster_id=CLUSTER)
            handle = await start(ts_env, worker.task_queue, subject, mode="execute")
            waiting = await state_reaches(ts_env, handle, ("waiting_approval",))
            await handle.signal(GradedRemediationWorkflow.abort, AbortInput(by=USER, reason="x"))
            status = await handle.result()
            await save_history(handle, "remediation_no_rollback_no_approval")
        async with deps.db.session() as session:
            inbox = await InboxRepository(session).list(USER)

    assert waiting.waiting is not None and waiting.waiting.rung is Rung.ISOLATE
    rollback = next(a for a in waiting.attempts if a.rung is Rung.ROLLBACK)
    assert not rollback.applied
    assert "nothing to roll back to" in (rollback.skipped_reason or ""), rollback
    assert [m.title for m in inbox if m.title.startswith("Approval needed")] == [
        "Approval needed: isolate the service (Service selector matches no pod) of "
        f"{subject.service}"
    ]
    assert status.state == "aborted"


async def test_a_deployment_deleted_before_its_change_gives_its_rate_limit_slot_back(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """The checkpoint read checkout; someone deleted it before the restart's own read, which
    found it gone (404). Nothing was written, yet the step's slot stayed reserved: the cluster's
    hour counted a change nobody made, and its next alerts waited out a cooldown for it."""
    api = _checkout(tmp_path)
    item = "/apis/apps/v1/namespaces/prod/deployments/checkout"
    app = api.app()

    async def deleted_after_the_checkpoint(scope: Any, receive: Any, send: Any) -> None:
        await app(scope, receive, send)
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] == item:
            api.deployments.pop(("prod", "checkout"), None)

    async with serve(deleted_after_the_checkpoint) as base:
        status = await _run(ts_env, deps, _kubeconfig(tmp_path, base), healthy_from=None)

    assert status.state == "handed_over", status.outcome
    assert "deployment prod/checkout not found" in status.outcome, status.outcome
    assert api.writes() == [], [(c.method, c.path, c.status) for c in api.calls]
    async with deps.db.session() as session:
        assert await ActionLedger(session).reserved(f"{status.run_key}#1") is None


@pytest.mark.parametrize("plural", ["statefulsets", "daemonsets"])
async def test_isolating_a_workload_leaves_a_service_it_shares_with_a_stateful_set_alone(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path, plural: str
) -> None:
    """The Service web selects every pod labelled tier=web: checkout's, and those of a
    StatefulSet (or a DaemonSet) beside it. Only other Deployments were looked for, so rung 4
    pointed web at no pod and the StatefulSet, which had no alert, lost its traffic."""
    api = KubeApi()
    api.add_deployment("prod", "checkout", V1, replicas=2)
    api.deployments[("prod", "checkout")]["spec"]["template"]["metadata"]["labels"]["tier"] = "web"
    api._reconcile("prod", "checkout")
    for key, rs in list(api.replicasets.items()):
        if "tier" not in rs["spec"]["template"]["metadata"]["labels"]:
            del api.replicasets[key]
    api.add_workload(plural, "prod", "sessions", {"app": "sessions", "tier": "web"}, V1)
    api.add_service("prod", "web", {"tier": "web"})
    async with serve(api.app()) as base:
        status = await _run(ts_env, deps, _kubeconfig(tmp_path, base), healthy_from=None)

    assert api.services[("prod", "web")]["spec"]["selector"] == {"tier": "web"}
    [(_, policy)] = list(api.networkpolicies)
    isolate = next(a for a in status.attempts if a.rung is Rung.ISOLATE)
    kind = {"statefulsets": "statefulset", "daemonsets": "daemonset"}[plural]
    assert isolate.detail == (
        f"isolate: no Service selects only checkout; deny-all NetworkPolicy {policy}; "
        f"Service web also selects the pods of {kind} sessions: left as it is"
    ), isolate.detail


async def test_isolation_leaves_a_service_alone_when_stateful_sets_cannot_be_listed(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """RBAC granted before StatefulSets were looked at: whether the Service also serves one
    is unknown, so it is not pointed at no pod; the deny-all policy isolates checkout."""
    api = _checkout(tmp_path)
    api.add_service("prod", "checkout", {"app": "checkout"})
    api.forbidden = {"list statefulsets"}
    async with serve(api.app()) as base:
        status = await _run(ts_env, deps, _kubeconfig(tmp_path, base), healthy_from=None)

    assert api.services[("prod", "checkout")]["spec"]["selector"] == {"app": "checkout"}
    [(_, policy)] = list(api.networkpolicies)
    isolate = next(a for a in status.attempts if a.rung is Rung.ISOLATE)
    assert isolate.applied, isolate
    assert isolate.detail.startswith(
        f"isolate: no Service selects only checkout; deny-all NetworkPolicy {policy}; "
        "Service checkout also selects the pods of statefulsets perhaps (they could not be "
        "listed: "
    ), isolate.detail


async def test_an_alert_that_clears_behind_an_earlier_runs_deny_policy_is_not_resolved(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """No Service selected checkout, so an earlier run's rung 4 isolated it with a deny-all
    NetworkPolicy, and nobody deleted it. The alert came again; its error rate is low because
    no traffic reaches the pods. The checkpoint read Services only and called it resolved."""
    api = _checkout(tmp_path)
    name = "ambient-isolate-remediation-0123456789abcdef-0a1b2c3d4e"
    api.add_deny_policy("prod", name, "checkout", {ISOLATION_LABEL: "0f1e2d3c4b5a6978"})
    async with serve(api.app()) as base:
        status = await _run(ts_env, deps, _kubeconfig(tmp_path, base), healthy_from=1)

    assert [(a.rung, a.applied, a.resolved) for a in status.attempts] == [
        (Rung.RESTART, True, True)
    ]
    assert status.state == "handed_over", status.outcome
    assert status.outcome == (
        "the alert cleared at rung 1 (restart) with the service isolated since before this run "
        f"(the deny-all NetworkPolicy {name} in prod selects its pods): no traffic reaches it, "
        "which is no fix; delete the NetworkPolicy first"
    ), status.outcome
    assert ("prod", name) in api.networkpolicies


@pytest.mark.parametrize(
    ("rung", "fields"),
    [(Rung.RESTART, {"restarted_at": "2026-01-01T00:00:00Z"}), (Rung.SCALE_OUT, {"replicas": 2})],
    ids=["restart", "scale_out"],
)
async def test_a_dry_run_from_the_alert_alone_does_not_scale_what_ran_no_pod_at_its_checkpoint(
    rung: Rung, fields: dict[str, Any]
) -> None:
    """The cluster was read at the first checkpoint (0 replicas) and cannot be now: the dry
    run's patch from the alert alone said "scale from 0 to 2" (or restart it), which the
    cluster's own plan would not do."""
    target = WorkloadRef(cluster_id=CLUSTER, namespace="prod", name="checkout")
    seen = Checkpoint(target=target, revision=1, replicas=0, taken_at=datetime.now(UTC))
    step = StepRequest(
        remediation_id="remediation/r0@1",
        rung=rung,
        target=target,
        mode="dry_run",
        key=f"remediation/r0@1#{int(rung)}",
        checkpoint=seen,
        **fields,
    )
    result = await DryRunExecutor().apply(step)
    assert (result.applied, result.patch, result.stopped) == (False, None, True), result
    assert result.skipped_reason is not None
    assert result.skipped_reason.startswith("deployment prod/checkout is scaled to 0 replicas")


async def test_a_dry_run_from_the_alert_alone_names_the_autoscaler_its_checkpoint_saw(
    cluster: tuple[KubeApi, Path],
) -> None:
    """The cluster, read at the first checkpoint, held checkout at 0 by its autoscaler, and
    cannot be read now: the dry run said "someone stopped it … scale it up by hand", which the
    autoscaler would undo, where the cluster's own plan names the autoscaler."""
    api, path = cluster
    api.add_autoscaler("prod", "checkout-hpa", "checkout", minimum=0, maximum=10)
    api.deployments[("prod", "checkout")]["spec"]["replicas"] = 0
    api._reconcile("prod", "checkout")
    target = WorkloadRef(cluster_id=CLUSTER, namespace="prod", name="checkout")
    clients = KubeClients(path, None)
    try:
        seen = await DryRunExecutor(clients).checkpoint(target)
    finally:
        await clients.aclose()
    assert seen.autoscaler == "HorizontalPodAutoscaler checkout-hpa (0-10 replicas)", seen
    step = StepRequest(
        remediation_id="remediation/r0@1",
        rung=Rung.RESTART,
        target=target,
        mode="dry_run",
        key="remediation/r0@1#1",
        checkpoint=seen,
        restarted_at="2026-01-01T00:00:00Z",
    )
    result = await DryRunExecutor().apply(step)
    assert result.stopped, result
    assert result.skipped_reason == (
        "deployment prod/checkout is scaled to 0 replicas by HorizontalPodAutoscaler "
        "checkout-hpa (0-10 replicas) (or what drives it, such as KEDA), and a restart would "
        "start no pod of it (change the autoscaler's bounds or triggers if it should run)"
    ), result


async def test_the_deny_policy_selects_only_the_workloads_own_pods_not_all_its_selector_takes(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """checkout's selector is tier=web (its pods also carry app=checkout); a StatefulSet's
    pods are tier=web too, behind the same Service. The Service was rightly left alone, but the
    deny-all policy took checkout's selector as its podSelector and cut off the StatefulSet,
    which had no alert, as well."""
    api = KubeApi()
    api.add_deployment("prod", "checkout", V1, replicas=2)
    spec = api.deployments[("prod", "checkout")]["spec"]
    spec["selector"] = {"matchLabels": {"tier": "web"}}
    spec["template"]["metadata"]["labels"]["tier"] = "web"
    api._reconcile("prod", "checkout")
    for key, rs in list(api.replicasets.items()):
        if "tier" not in rs["spec"]["template"]["metadata"]["labels"]:
            del api.replicasets[key]
    api.add_workload("statefulsets", "prod", "sessions", {"app": "sessions", "tier": "web"}, V1)
    api.add_service("prod", "web", {"tier": "web"})
    async with serve(api.app()) as base:
        await _run(ts_env, deps, _kubeconfig(tmp_path, base), healthy_from=None)

    [policy] = api.networkpolicies.values()
    assert policy["spec"]["podSelector"] == {"matchLabels": {"app": "checkout", "tier": "web"}}


@pytest.mark.parametrize(
    ("minimum", "scaled_object", "held_by"),
    [
        (0, None, "HorizontalPodAutoscaler checkout-hpa (0-10 replicas)"),
        (
            1,
            "checkout",
            "HorizontalPodAutoscaler checkout-hpa of ScaledObject checkout (1-10 replicas)",
        ),
    ],
)
async def test_a_deployment_its_autoscaler_took_to_zero_goes_to_a_person_at_the_scale_out(
    ts_env: WorkflowEnvironment,
    deps: WorkerDeps,
    cluster: tuple[KubeApi, Path],
    minimum: int,
    scaled_object: str | None,
    held_by: str,
) -> None:
    """Scaled to 0 as it was restarted, under an HPA of minReplicas 0 or KEDA's: the scale out
    was skipped as "scaled by" the HPA but not as stopped, so the ladder climbed on, rolled the
    release back and cut its Service off, where the hand-over for a workload at 0 on purpose
    (and the same rung under a plain HPA) stops. It stops there too, naming the autoscaler."""
    api, path = cluster
    api.add_autoscaler("prod", "checkout-hpa", "checkout", minimum, 10, scaled_object=scaled_object)
    _stopped_once_restarted(api)
    status = await _run(ts_env, deps, path, healthy_from=None)

    assert [(a.rung, a.applied) for a in status.attempts] == [
        (Rung.RESTART, True),
        (Rung.SCALE_OUT, False),
    ], status.attempts
    held = (
        f"deployment prod/checkout is scaled to 0 replicas by {held_by} (or what drives it, "
        "such as KEDA), and the scale out does not start it again (change the autoscaler's "
        "bounds or triggers if it should run)"
    )
    assert status.attempts[1].skipped_reason == held, status.attempts[1]
    assert (status.state, status.outcome) == (
        "handed_over",
        f"rung 2 (scale_out) was skipped: {held}; no rung above it is tried: a workload scaled "
        "to 0 on purpose is not failing, and rolling it back or isolating it would undo that "
        "decision",
    )
    # The restart's write alone: no rollback, its Service untouched, still at 0.
    assert [(c.kind, c.method) for c in api.writes()] == [("deployments", "PATCH")]
    assert images(api) == [V2]
    assert api.services[("prod", "checkout")]["spec"]["selector"] == {"app": "checkout"}
    assert api.deployments[("prod", "checkout")]["spec"]["replicas"] == 0
