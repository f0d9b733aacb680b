"""The whole ladder against the Kubernetes API stand-in, executors wired by name."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from lightkube.resources.apps_v1 import Deployment
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from temporalio.api.common.v1 import WorkflowExecution as ProtoExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from ambient.clients.kube import client_from_kubeconfig
from ambient.deps import WorkerDeps
from ambient.domain.users import Language
from ambient.remediation.ladder import ISOLATION_LABEL, Rung
from ambient.remediation.runs import ApprovalInput, RemediationStatus
from ambient.remediation.service import RemediationService
from ambient.remediation.storage import ActionLedger
from ambient.storage.audit import AuditRepository
from ambient.storage.briefings import BroadcastRepository
from ambient.storage.repositories import InboxRepository
from tests.conftest import running_worker
from tests.remediation.support import (
    add_user,
    alert,
    as_door,
    closed_today_and_tomorrow,
    error_rate,
    remediation_settings,
    state_reaches,
)
from tests.remediation.test_workflow import USER, audit_actions, start
from tests.standins.kube_api import KubeApi, kubeconfig
from tests.support.record import save_history
from tests.support.servers import serve
from tests.support.waits import until_equal
from workflows.remediation import GradedRemediationWorkflow

V1, V2, V3 = "registry/checkout:v1", "registry/checkout:v2", "registry/checkout:v3"
CLUSTER = "cls-standin1"


def _kubeconfig(tmp_path: Path, server: str) -> Path:
    """A kubeconfig in tmp_path naming CLUSTER at ``server``."""
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig({CLUSTER: server})))
    return path


@pytest_asyncio.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[tuple[KubeApi, Path]]:
    """checkout at v1, then a bad release v2 whose pods never become ready."""
    api = KubeApi()
    api.add_configmap("prod", "checkout-env", {"MODE": "fast"})
    api.add_deployment("prod", "checkout", V1, replicas=2, configmaps=["checkout-env"])
    api.add_service("prod", "checkout", {"app": "checkout"})
    api.failing_images = {V2}
    async with serve(api.app()) as base:
        path = _kubeconfig(tmp_path, base)
        client = client_from_kubeconfig(path=path, context=CLUSTER)
        patch = {
            "spec": {"template": {"spec": {"containers": [{"name": "checkout", "image": V2}]}}}
        }
        await client.patch(Deployment, "checkout", patch, namespace="prod")
        await client.close()
        api.calls.clear()
        yield api, path


def images(api: KubeApi) -> list[str]:
    deployment = api.deployments[("prod", "checkout")]
    return [c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]]


async def _execute(
    env: WorkflowEnvironment,
    deps: WorkerDeps,
    kubeconfig_path: Path,
    healthy_from: int | None,
    history: str | None = None,
    language: Language | None = None,
) -> RemediationStatus:
    """One alert remediated in execute mode against the stand-in, no approval asked (for USER,
    who reads ``language``)."""
    remediation_settings(
        deps,
        remediation_approval_from_rung=0,
        remediation_executor="kubernetes",
        kubeconfig=kubeconfig_path,
    )
    await add_user(deps, USER, permission="execute", language=language)
    async with (
        error_rate(healthy_from=healthy_from) as (_, url),
        running_worker(env.client, deps) as worker,
    ):
        handle = await start(env, worker.task_queue, alert(url, cluster_id=CLUSTER), mode="execute")
        status = await handle.result()
        if history is not None:
            await save_history(handle, history)
    return status


async def test_execute_restart_scale_then_rollback_restores_the_release_before_the_incident(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cluster: tuple[KubeApi, Path]
) -> None:
    api, path = cluster
    remediation_settings(
        deps,
        remediation_approval_from_rung=0,
        remediation_executor="kubernetes",
        kubeconfig=path,
    )
    await add_user(deps, USER, permission="execute")
    async with (
        error_rate(healthy_from=3) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        handle = await start(
            ts_env, worker.task_queue, alert(url, cluster_id=CLUSTER), mode="execute"
        )
        status = await handle.result()
        await save_history(handle, "graded_remediation_kubernetes")

    assert status.state == "resolved" and status.mode == "execute"
    assert [(a.rung, a.applied, a.resolved) for a in status.attempts] == [
        (Rung.RESTART, True, False),
        (Rung.SCALE_OUT, True, False),
        (Rung.ROLLBACK, True, True),
    ]
    # Revision 2 was running at the first checkpoint; the restart made revision 3 (still v2);
    # the rollback took revision 1's template (v1), which becomes revision 4 as in kubectl.
    assert images(api) == [V1]
    assert api.revisions("prod", "checkout") == {2: [V2], 3: [V2], 4: [V1]}
    assert api.deployments[("prod", "checkout")]["spec"]["replicas"] == 4
    assert len(api.writes()) == 3  # one change per rung, nothing twice
    async with deps.db.session() as session:
        records = await AuditRepository(session).list(subject=status.run_key, action="checkpoint")
    assert records[0].detail["revision"] == 2 and records[0].detail["previous_revision"] == 1


async def test_a_release_shipped_while_the_first_rung_waits_is_not_rung_threes_baseline(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cluster: tuple[KubeApi, Path]
) -> None:
    """The alert came on v2 outside the change window; while the run waited for it, v3 was
    shipped (bad too). The baseline was read at the first change, after the wait: rung 3
    rolled back to v2, the very release the alert was raised on, and v1 was never tried. It is
    read as the run opens, whatever its first rung waits for."""
    api, path = cluster
    api.failing_images = {V2, V3}
    remediation_settings(
        deps,
        remediation_approval_from_rung=0,
        remediation_executor="kubernetes",
        kubeconfig=path,
        remediation_change_windows=closed_today_and_tomorrow(deps),
        remediation_max_gate_wait_minutes=60 * 24 * 4,
    )
    await add_user(deps, USER, permission="execute")
    async with (
        error_rate(healthy_from=None) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        handle = await start(
            ts_env, worker.task_queue, alert(url, cluster_id=CLUSTER), mode="execute"
        )
        await state_reaches(ts_env, handle, ("waiting_gate",))
        client = client_from_kubeconfig(path=path, context=CLUSTER)
        shipped = {
            "spec": {"template": {"spec": {"containers": [{"name": "checkout", "image": V3}]}}}
        }
        await client.patch(Deployment, "checkout", shipped, namespace="prod")
        await client.close()
        status = await handle.result()
        await save_history(handle, "graded_remediation_baseline_before_a_wait")
    rollback = next(a for a in status.attempts if a.rung is Rung.ROLLBACK)
    assert rollback.applied and "revision 1" in (rollback.detail or ""), rollback.detail
    async with deps.db.session() as session:
        based = await AuditRepository(session).list(subject=status.run_key, action="baseline")
    assert [(r.detail["revision"], r.detail["previous_revision"]) for r in based] == [(2, 1)]


async def test_dry_run_reads_the_cluster_and_writes_nothing(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cluster: tuple[KubeApi, Path]
) -> None:
    api, path = cluster
    remediation_settings(
        deps, remediation_approval_from_rung=0, remediation_executor="kubernetes", kubeconfig=path
    )
    await add_user(deps, USER, permission="dry_run")
    async with (
        error_rate(healthy_from=None) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        handle = await start(
            ts_env, worker.task_queue, alert(url, cluster_id=CLUSTER), mode="execute"
        )
        status = await handle.result()

    assert status.mode == "dry_run" and status.state == "budget_exhausted"
    assert api.writes() == []
    assert images(api) == [V2]
    rollback = next(a for a in status.attempts if a.rung == Rung.ROLLBACK)
    assert rollback.patch is not None and not rollback.applied
    # The JSON patch the Kubernetes executor would send, planned from a read of the workload.
    [template] = [
        op["value"]
        for op in rollback.patch["deployment/prod/checkout"]
        if op["path"] == "/spec/template"
    ]
    assert [c["image"] for c in template["spec"]["containers"]] == [V1]
    assert rollback.detail.startswith("dry run: would roll back deployment prod/checkout")
    isolate = next(a for a in status.attempts if a.rung == Rung.ISOLATE)
    assert isolate.patch is not None and "service/prod/checkout" in isolate.patch


async def test_a_dry_run_without_a_verify_block_previews_the_ladder_not_saying_the_alert_cleared(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """A latency alert (no verify block) on a workload whose pods are all Ready: its dry run
    ended at rung 1 "resolved" and pushed "Alert cleared", the restart it never made having
    "rolled out". Nothing was changed and nothing read tells whether the alert is over: the
    preview climbs the ladder and hands over, saying so of each rung."""
    api = KubeApi()
    api.add_deployment("prod", "checkout", V1, replicas=2)
    api.add_service("prod", "checkout", {"app": "checkout"})
    async with serve(api.app()) as base:
        path = _kubeconfig(tmp_path, base)
        remediation_settings(
            deps, remediation_approval_from_rung=0, kubeconfig=path, remediation_settle_seconds=0
        )
        await add_user(deps, USER, permission="dry_run")
        async with running_worker(ts_env.client, deps) as worker:
            subject = alert(
                "http://127.0.0.1:9/unused",
                cluster_id=CLUSTER,
                verify=None,
                metric="latency_p99",
                message="p99 latency 4s on checkout",
            )
            handle = await start(ts_env, worker.task_queue, subject, mode="dry_run")
            status = await handle.result()

    assert api.writes() == []
    assert status.state == "budget_exhausted", status.outcome
    judged = [a for a in status.attempts if a.verified]
    assert [a.rung for a in judged] == [Rung.RESTART, Rung.SCALE_OUT, Rung.ISOLATE]
    for attempt in judged:
        assert attempt.resolved is False
        assert "no verify metric tells if the alert cleared" in (attempt.verification or "")
    async with deps.db.session() as session:
        inbox = await InboxRepository(session).list(USER)
    assert not any(m.title.startswith("Alert cleared") for m in inbox), inbox
    (handed,) = [m for m in inbox if m.title.startswith("Needs a person")]
    assert (
        "Tried: restart (dry run, no verify metric to tell), scale_out (dry run, no verify "
        "metric to tell), rollback (not applied), isolate (dry run, no verify metric to tell)."
    ) in handed.body


async def test_a_dry_run_waits_out_a_short_api_outage_as_execute_does_not_planning_from_the_alert(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cluster: tuple[KubeApi, Path]
) -> None:
    """Listing Services answers 503 twice (an API server restarting): the dry run's checkpoint
    is retried and read, not replaced at once by one "from the alert alone" (no revision, no
    Service selectors, no ConfigMaps) that the whole run then plans from."""
    api, path = cluster
    api.unavailable_reads = {"list services": 2}
    remediation_settings(
        deps, remediation_approval_from_rung=0, remediation_executor="kubernetes", kubeconfig=path
    )
    await add_user(deps, USER, permission="dry_run")
    async with (
        error_rate(healthy_from=None) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        handle = await start(
            ts_env, worker.task_queue, alert(url, cluster_id=CLUSTER), mode="execute"
        )
        status = await handle.result()

    assert status.mode == "dry_run" and api.writes() == []
    assert [c.status for c in api.calls if c.kind == "services"][:3] == [503, 503, 200]
    async with deps.db.session() as session:
        records = await AuditRepository(session).list(subject=status.run_key, action="checkpoint")
    first = records[0].detail
    assert first["observed"] and first["revision"] == 2, first["detail"]
    assert first["service_selectors"] == {"checkout": {"app": "checkout"}}
    assert first["configmaps"] == {"checkout-env": {"MODE": "fast"}}
    assert not any("from the alert" in a.detail for a in status.attempts)


async def test_a_release_without_an_earlier_revision_makes_rung_three_say_so_and_move_on(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    api = KubeApi()
    api.add_deployment("prod", "checkout", V1, replicas=2)
    api.add_service("prod", "checkout", {"app": "checkout"})
    async with serve(api.app()) as base:
        path = _kubeconfig(tmp_path, base)
        remediation_settings(
            deps,
            remediation_approval_from_rung=0,
            remediation_executor="kubernetes",
            kubeconfig=path,
        )
        await add_user(deps, USER, permission="execute")
        async with (
            error_rate(healthy_from=None) as (_, url),
            running_worker(ts_env.client, deps) as worker,
        ):
            handle = await start(
                ts_env, worker.task_queue, alert(url, cluster_id=CLUSTER), mode="execute"
            )
            status = await handle.result()

    rungs = {a.rung: a for a in status.attempts}
    assert status.state == "budget_exhausted" and list(rungs) == [1, 2, 3, 4]
    assert "not a Deployment revision" in (rungs[Rung.ROLLBACK].skipped_reason or "")
    assert not rungs[Rung.ROLLBACK].applied and rungs[Rung.ISOLATE].applied
    assert images(api) == [V1]
    # Handed over with its Service isolated: the person is told that first.
    async with deps.db.session() as session:
        (row,) = await AuditRepository(session).list(
            subject=status.run_key, action="hand_over", limit=10
        )
    assert row.detail["body"].endswith(
        "Its Services still select no pods (isolated at rung 4): restore their selectors "
        "before anything else."
    ), row.detail["body"]


async def test_an_alert_that_clears_once_the_service_is_isolated_goes_to_a_person_not_resolved(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """The error rate falls once no traffic reaches the workload: the run ended "resolved at
    rung 4 (isolate)", pushed as remediated, with its Service selecting no pods."""
    api = KubeApi()
    api.add_deployment("prod", "checkout", V1, replicas=2)
    api.add_service("prod", "checkout", {"app": "checkout"})
    async with serve(api.app()) as base:
        path = _kubeconfig(tmp_path, base)
        # Restart and scale out do not help, rung 3 has nothing to roll back to (no reading),
        # and the third reading, after the isolation, is healthy.
        status = await _execute(
            ts_env, deps, path, healthy_from=3, history="graded_remediation_isolated"
        )
        selector = api.services[("prod", "checkout")]["spec"]["selector"]

    rungs = {a.rung: a for a in status.attempts}
    assert list(rungs) == [1, 2, 3, 4] and rungs[Rung.ISOLATE].applied
    assert rungs[Rung.ISOLATE].resolved is True
    assert set(selector) == {"app", ISOLATION_LABEL}  # still isolated: nothing serves
    assert status.state == "handed_over", status.outcome
    assert "isolat" in status.outcome and "no traffic" in status.outcome
    async with deps.db.session() as session:
        (row,) = await AuditRepository(session).list(
            subject=status.run_key, action="hand_over", limit=10
        )
        queued = await BroadcastRepository(session).pending(USER)
        inbox = await InboxRepository(session).list(USER)
    assert row.detail["body"].endswith(
        "Its Services still select no pods (isolated at rung 4): restore their selectors "
        "before anything else."
    ), row.detail["body"]
    assert [b.source for b in queued] == ["remediation"]
    assert not any(m.title.startswith("Remediated") for m in inbox)
    assert any(m.title.startswith("Needs a person") for m in inbox)


async def test_an_alert_that_clears_behind_the_deny_policy_hands_over_naming_the_policy(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """No Service selected the workload, so rung 4 created the deny-all NetworkPolicy; the
    hand-over said "Its Services still select no pods ... restore their selectors", and the
    person looked for a selector to fix while the policy kept the traffic out."""
    api = KubeApi()
    api.add_deployment("prod", "checkout", V1, replicas=2)
    async with serve(api.app()) as base:
        path = _kubeconfig(tmp_path, base)
        status = await _execute(ts_env, deps, path, healthy_from=3)
        [(namespace, policy)] = list(api.networkpolicies)

    assert status.state == "handed_over", status.outcome
    async with deps.db.session() as session:
        (row,) = await AuditRepository(session).list(
            subject=status.run_key, action="hand_over", limit=10
        )
    assert row.detail["body"].endswith(
        f"The deny-all NetworkPolicy {policy} in {namespace} still keeps all traffic from its "
        "pods (isolated at rung 4): delete it before anything else to restore traffic."
    ), row.detail["body"]


async def test_a_chinese_readers_hand_over_says_the_deny_policy_to_delete_first_in_chinese(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """The one instruction that restores traffic came last, in English, in a Chinese body."""
    api = KubeApi()
    api.add_deployment("prod", "checkout", V1, replicas=2)
    async with serve(api.app()) as base:
        path = _kubeconfig(tmp_path, base)
        status = await _execute(ts_env, deps, path, healthy_from=3, language=Language.ZH)
        [(namespace, policy)] = list(api.networkpolicies)

    assert status.state == "handed_over", status.outcome
    async with deps.db.session() as session:
        (message,) = await InboxRepository(session).list(USER)
    assert message.title.startswith("需要人工处理："), message.title
    assert message.body.startswith(
        f"修复 `{status.remediation_id}` 已停止：{namespace} 中拒绝所有流量的 NetworkPolicy "
        f"{policy} 仍挡着其 Pod 的全部流量（第 4 级隔离所建）：请先删除它以恢复流量，再做其他处理。"
    ), message.body
    assert message.body.count("NetworkPolicy") == 1, message.body


async def test_a_change_that_resolved_is_said_fixed_to_a_chinese_reader(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """Made in execute mode, the restart is the fix the push names (a dry run's says the alert
    cleared, nothing changed: tests/remediation/test_pushed_language.py)."""
    api = KubeApi()
    api.add_deployment("prod", "checkout", V1, replicas=2)
    async with serve(api.app()) as base:
        status = await _execute(
            ts_env, deps, _kubeconfig(tmp_path, base), healthy_from=1, language=Language.ZH
        )

    assert status.state == "resolved", status.outcome
    async with deps.db.session() as session:
        (message,) = await InboxRepository(session).list(USER)
    assert message.title == f"已修复：{status.alert.service}", message.title
    assert message.body == f"修复 `{status.remediation_id}` 已在第 1 级（重启）解决。", message.body


async def test_refusing_or_aborting_an_execute_step_needs_execute_permission_like_approving(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cluster: tuple[KubeApi, Path]
) -> None:
    from ambient.remediation.service import RemediationService
    from ambient.remediation.views import RemediationRefusedError
    from tests.remediation.support import state_reaches

    api, path = cluster
    remediation_settings(
        deps,
        remediation_approval_from_rung=1,
        remediation_executor="kubernetes",
        kubeconfig=path,
        remediation_approvers={CLUSTER: ["watcher", "lead"]},
    )
    await add_user(deps, USER, permission="execute")
    await add_user(deps, "watcher", permission="dry_run")
    await add_user(deps, "lead", permission="execute")
    async with (
        error_rate(healthy_from=1) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        settings = deps.settings.model_copy(update={"temporal_task_queue": worker.task_queue})
        service = RemediationService(ts_env.client, settings, deps.db)
        handle = await start(
            ts_env, worker.task_queue, alert(url, cluster_id=CLUSTER), mode="execute"
        )
        await state_reaches(ts_env, handle, ("waiting_approval",))
        # The workflow's own validator holds the same bar for whoever reaches it directly.
        with pytest.raises(WorkflowUpdateFailedError) as direct:
            await handle.execute_update(
                GradedRemediationWorkflow.approve,
                ApprovalInput(approver="watcher", approver_permission="dry_run", approve=False),
            )
        refusals = []
        for act in (
            service.approve("watcher", handle.id, False, "not today", via="api"),
            service.abort("watcher", handle.id, "not today", via="api"),
        ):
            try:
                await act
            except RemediationRefusedError as exc:
                refusals.append(str(exc))
        waiting = await service.get("watcher", handle.id)
        refused = await service.approve("lead", handle.id, False, "change freeze", via="api")
        status = await handle.result()

    assert "refusing a execute step needs 'execute'" in str(direct.value.cause)
    assert len(refusals) == 2 and all("rollback_permission 'dry_run'" in r for r in refusals)
    assert "cannot refuse" in refusals[0] and "cannot abort" in refusals[1]
    assert waiting.state == "waiting_approval" and waiting.mode == "execute"
    assert refused.approver == "lead" and refused.approve is False
    assert status.state == "handed_over" and "lead refused rung 1" in status.outcome
    assert status.attempts == [] and images(api) == [V2]


async def test_one_approver_approving_and_refusing_at_once_has_one_applied_and_one_conflict(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, cluster: tuple[KubeApi, Path]
) -> None:
    # On the real server: the abort cancels the approved change, which may complete in the
    # same workflow task. The time-skipping test server refuses that cancel (ACTIVITY_UNKNOWN,
    # sdk-java#2391) and the run wedges; the real server takes the change's answer.
    from ambient.remediation.service import RemediationService
    from ambient.remediation.views import RemediationStateError
    from tests.remediation.support import state_reaches

    _api, path = cluster
    remediation_settings(
        deps,
        remediation_approval_from_rung=1,
        remediation_executor="kubernetes",
        kubeconfig=path,
        remediation_approvers={CLUSTER: ["lead"]},
    )
    await add_user(deps, USER, permission="execute")
    await add_user(deps, "lead", permission="execute")
    async with (
        error_rate(healthy_from=None) as (_, url),
        running_worker(dev_env.client, deps) as worker,
    ):
        settings = deps.settings.model_copy(update={"temporal_task_queue": worker.task_queue})
        service = RemediationService(dev_env.client, settings, deps.db)
        handle = await start(
            dev_env, worker.task_queue, alert(url, cluster_id=CLUSTER), mode="execute"
        )
        await state_reaches(dev_env, handle, ("waiting_approval",))
        # Both answers read the run while it waited, as two requests in flight at once do.
        seen = await service._status(handle.id)

        async def as_seen(rid: str, description: object = None) -> RemediationStatus:
            return seen

        service._status = as_seen  # type: ignore[method-assign]
        approved = await service.approve("lead", handle.id, True, "go", via="api")
        with pytest.raises(RemediationStateError) as late:
            await service.approve("lead", handle.id, False, "no, wait", via="api")
        await service.abort("lead", handle.id, "enough", via="api")
        status = await handle.result()

    assert approved.approve is True
    # Refused by the run: no longer waiting, or the rung already answered (by the approval).
    assert "approval not accepted" in str(late.value), late.value
    assert [a.approve for a in status.approvals] == [True]


async def test_a_short_api_outage_during_the_restart_is_waited_out_not_climbed_past(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cluster: tuple[KubeApi, Path]
) -> None:
    api, path = cluster
    api.failing_images = set()  # the restart alone cures it
    # More 503s than the change's first three attempts (the API server restarting).
    api.unavailable_writes = 4
    status = await _execute(ts_env, deps, path, healthy_from=1)

    assert status.state == "resolved", status.outcome
    assert [(a.rung, a.applied, a.resolved) for a in status.attempts] == [
        (Rung.RESTART, True, True)
    ]
    assert [c.status for c in api.calls if c.method == "PATCH"] == [503] * 4 + [200]
    assert api.deployments[("prod", "checkout")]["spec"]["replicas"] == 2


async def test_a_change_the_cluster_refuses_hands_over_naming_it_instead_of_climbing(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cluster: tuple[KubeApi, Path]
) -> None:
    api, path = cluster
    api.forbidden = {"patch deployments"}
    status = await _execute(
        ts_env, deps, path, healthy_from=None, history="graded_remediation_change_refused"
    )

    assert status.state == "handed_over"
    assert status.outcome.startswith("rung 1 (restart) could not be applied (rung 1 on ")
    assert 'cannot patch resource "deployments"' in status.outcome
    assert [(a.rung, a.applied) for a in status.attempts] == [(Rung.RESTART, False)]
    assert (status.attempts[0].skipped_reason or "").startswith("change failed: ")
    # Neither a scale out nor an isolation of the service was bought by the refusal.
    assert api.writes() == []
    actions = await audit_actions(deps, status.run_key)
    assert "action" not in actions and actions[-2:] == ["hand_over", "finished"]
    # The person handed the run is not told that a restart was tried.
    async with deps.db.session() as session:
        (row,) = await AuditRepository(session).list(
            subject=status.run_key, action="hand_over", limit=10
        )
    assert row.detail["body"].endswith("Tried: restart (not applied).")


async def test_a_checkpoint_the_cluster_refuses_hands_over_naming_it(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cluster: tuple[KubeApi, Path]
) -> None:
    api, path = cluster
    api.forbidden = {"deployments"}
    status = await _execute(ts_env, deps, path, healthy_from=None)

    assert status.state == "handed_over"
    assert status.outcome.startswith(
        "rung 1 (restart) was not applied: its checkpoint could not be read ("
    )
    assert 'cannot get resource "deployments"' in status.outcome
    assert [a.rung for a in status.attempts] == [Rung.RESTART]
    assert api.writes() == []


async def _rate_limited(deps: WorkerDeps, kubeconfig: Path, *, per_hour: int) -> None:
    """The Kubernetes executor on the stand-in, no approval, ``per_hour`` changes a cluster
    an hour and no waiting for a slot; USER may execute."""
    remediation_settings(
        deps,
        remediation_approval_from_rung=0,
        remediation_executor="kubernetes",
        kubeconfig=kubeconfig,
        remediation_rate_limit_per_hour=per_hour,
        remediation_max_gate_wait_minutes=0,
    )
    await add_user(deps, USER, permission="execute")


async def test_a_step_that_changed_nothing_leaves_the_clusters_rate_limit_slot_free(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cluster: tuple[KubeApi, Path]
) -> None:
    """Steps skipped (the Deployment is paused: its restart, scale out and rollback) sent
    nothing: the isolation after them is not held by the per-cluster rate limit (one change
    an hour) as if a change had been made."""
    api, path = cluster
    api.deployments[("prod", "checkout")]["spec"]["paused"] = True
    await _rate_limited(deps, path, per_hour=1)
    async with (
        error_rate(healthy_from=1) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        handle = await start(
            ts_env, worker.task_queue, alert(url, cluster_id=CLUSTER), mode="execute"
        )
        status = await handle.result()

    assert [(a.rung, a.applied) for a in status.attempts] == [
        (Rung.RESTART, False),
        (Rung.SCALE_OUT, False),
        (Rung.ROLLBACK, False),
        (Rung.ISOLATE, True),
    ]
    assert all("is paused" in (a.skipped_reason or "") for a in status.attempts[:3])
    assert [c.kind for c in api.writes()] == ["services"]
    # The isolation is the one change of the hour, its gate open after three skipped steps.
    async with deps.db.session() as session:
        gates = await AuditRepository(session).list(subject=status.run_key, action="gate")
    assert [(g.detail["rung"], g.detail["allowed"]) for g in sorted(gates, key=lambda g: g.id)] == [
        (1, True),
        (2, True),
        (3, True),
        (4, True),
    ]
    assert "cluster rate limit" not in status.outcome, status.outcome


async def _next_run_on_the_cluster(env: WorkflowEnvironment, deps: WorkerDeps) -> RemediationStatus:
    """Another alert on the cluster, healthy after its first change: is its change let through?"""
    async with (
        error_rate(healthy_from=1) as (_, url),
        running_worker(env.client, deps) as worker,
    ):
        subject = alert(url, cluster_id=CLUSTER, workload="cart", message="cart errors")
        handle = await start(env, worker.task_queue, subject, mode="execute")
        return await handle.result()


async def test_a_run_aborted_before_its_first_change_leaves_the_clusters_rate_limit_slot_free(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cluster: tuple[KubeApi, Path]
) -> None:
    """An abort sent while the worker was away: the run opens (its first gate reserves the
    cluster's slot) and stops at once. The hour's one change is still there for the next run."""
    from ambient.remediation.alerts import remediation_id
    from ambient.remediation.runs import AbortInput, RemediationInput
    from tests.conftest import unique
    from workflows.remediation_records import search_attributes

    api, path = cluster
    api.add_deployment("prod", "cart", V1, replicas=2)
    await _rate_limited(deps, path, per_hour=1)
    async with (
        error_rate(healthy_from=None) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        subject = alert(url, cluster_id=CLUSTER)
        handle = await ts_env.client.start_workflow(
            GradedRemediationWorkflow.run,
            RemediationInput(alert=subject, user=USER, mode="execute"),
            id=f"{remediation_id(subject)}-{unique('t')}",
            task_queue=worker.task_queue,
            search_attributes=search_attributes(USER, CLUSTER),
            start_signal="abort",
            start_signal_args=[AbortInput(by=USER, reason="I am on it")],
        )
        aborted = await handle.result()
    assert aborted.state == "aborted" and aborted.attempts == []
    assert api.writes() == []

    status = await _next_run_on_the_cluster(ts_env, deps)
    assert status.state == "resolved", status.outcome
    assert [c.path.rsplit("/", 1)[-1] for c in api.writes()] == ["cart"]


async def _run_to_its_end(ts_env: WorkflowEnvironment, deps: WorkerDeps) -> RemediationStatus:
    """An alert of an error rate that stays high, remediated on CLUSTER to the run's end."""
    async with (
        error_rate(healthy_from=None) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        handle = await start(
            ts_env, worker.task_queue, alert(url, cluster_id=CLUSTER), mode="execute"
        )
        status: RemediationStatus = await handle.result()
        return status


async def _slots_taken(deps: WorkerDeps) -> list[Any]:
    """The changes CLUSTER's next gate counts (any age: the test server's clock jumps)."""
    async with deps.db.session() as session:
        return (await ActionLedger(session).recent(CLUSTER, datetime(2000, 1, 1, tzinfo=UTC)))[0]


async def test_a_checkpoint_that_failed_leaves_the_clusters_rate_limit_slot_free(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cluster: tuple[KubeApi, Path]
) -> None:
    """The run hands over without a change (its checkpoint could not be read): it holds none
    of the hour's changes on the cluster."""
    api, path = cluster
    await _rate_limited(deps, path, per_hour=1)
    api.forbidden = {"deployments"}
    failed = await _run_to_its_end(ts_env, deps)
    assert failed.state == "handed_over" and "checkpoint could not be read" in failed.outcome
    assert api.writes() == []
    # What the cluster's next gate counts (a later run here starts hours later: the test
    # server's clock jumps after a run with activities ends).
    assert await _slots_taken(deps) == []


async def test_a_change_the_cluster_refuses_leaves_the_clusters_rate_limit_slot_free(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cluster: tuple[KubeApi, Path]
) -> None:
    """RBAC refuses the restart's patch (403, not retried): nothing was changed, and the run
    hands over holding none of the hour's changes on the cluster (it kept the slot before)."""
    api, path = cluster
    await _rate_limited(deps, path, per_hour=1)
    api.forbidden = {"patch deployments"}
    failed = await _run_to_its_end(ts_env, deps)
    assert failed.state == "handed_over" and "could not be applied" in failed.outcome
    assert api.writes() == []
    assert await _slots_taken(deps) == []


async def test_a_rollback_with_nothing_to_roll_back_to_leaves_the_clusters_rate_limit_slot_free(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """Three changes an hour: restart, scale out, (rollback: nothing to go back to), isolate."""
    api = KubeApi()
    api.add_deployment("prod", "checkout", V1, replicas=2)
    api.add_service("prod", "checkout", {"app": "checkout"})
    async with serve(api.app()) as base:
        path = _kubeconfig(tmp_path, base)
        await _rate_limited(deps, path, per_hour=3)
        async with (
            error_rate(healthy_from=None) as (_, url),
            running_worker(ts_env.client, deps) as worker,
        ):
            handle = await start(
                ts_env, worker.task_queue, alert(url, cluster_id=CLUSTER), mode="execute"
            )
            status = await handle.result()

    assert status.state == "budget_exhausted", status.outcome
    assert [(a.rung, a.applied) for a in status.attempts] == [
        (Rung.RESTART, True),
        (Rung.SCALE_OUT, True),
        (Rung.ROLLBACK, False),
        (Rung.ISOLATE, True),
    ]


async def test_a_change_failing_until_its_retries_are_spent_leaves_the_rate_limit_slot_free(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cluster: tuple[KubeApi, Path]
) -> None:
    """The API server answers every write 503 until the change's retries are spent: nothing
    was changed, and the run hands over holding none of the hour's changes on the cluster."""
    api, path = cluster
    await _rate_limited(deps, path, per_hour=1)
    api.unavailable_writes = 1000
    failed = await _run_to_its_end(ts_env, deps)
    assert failed.state == "handed_over" and "could not be applied" in failed.outcome
    assert api.writes() == []
    assert await _slots_taken(deps) == []


async def test_a_first_change_whose_first_write_met_a_busy_api_server_keeps_its_slot(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cluster: tuple[KubeApi, Path]
) -> None:
    """One change an hour on the cluster. The restart's first PATCH meets a 503 (nothing
    written), the next one lands: the restart was made and holds the hour's one change, so
    the run climbs to no scale out. That first try was the opening task's one try, a local
    activity of one attempt: not the change's last, after which an unchanged step gives its
    slot back."""
    api, path = cluster
    await _rate_limited(deps, path, per_hour=1)
    api.unavailable_writes = 1
    async with (
        error_rate(healthy_from=None) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        handle = await start(
            ts_env, worker.task_queue, alert(url, cluster_id=CLUSTER), mode="execute"
        )
        status = await handle.result()
        await save_history(handle, "graded_remediation_first_try_then_activity")

    assert [c.status for c in api.calls if c.method == "PATCH"] == [503, 200]
    assert [(a.rung, a.applied) for a in status.attempts][:1] == [(Rung.RESTART, True)]
    assert len(await _slots_taken(deps)) == 1
    assert "cluster rate limit" in status.outcome, status.outcome


async def test_an_alert_on_a_tke_cluster_of_another_region_is_remediated_in_that_cluster(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cluster: tuple[KubeApi, Path]
) -> None:
    """The alert names its TKE cluster's region: the worker asks TKE for that cluster's
    kubeconfig there, not in the configured region (where TKE does not know it)."""
    from tencentcloud.common.credential import Credential

    from ambient.clients.tencent.client import TencentCloud
    from tests.standins.tencent_api import SECRET_ID, SECRET_KEY, TencentApi

    api, path = cluster
    served = yaml.safe_load(path.read_text())
    served["current-context"] = CLUSTER
    tke = "cls-shanghai"
    cloud = TencentApi(
        kubeconfigs={tke: yaml.safe_dump(served)}, cluster_regions={tke: "ap-shanghai"}
    )
    remediation_settings(deps, remediation_approval_from_rung=0, remediation_executor="kubernetes")
    await add_user(deps, USER, permission="execute")
    async with (
        serve(cloud.app()) as base,
        error_rate(healthy_from=1) as (_, url),
    ):
        deps.tencent = TencentCloud(
            Credential(SECRET_ID, SECRET_KEY),
            region="ap-guangzhou",
            endpoint=base.removeprefix("http://"),
            protocol="http",
        )
        async with running_worker(ts_env.client, deps) as worker:
            there = alert(url, cluster_id=tke, region="ap-shanghai")
            handle = await start(ts_env, worker.task_queue, there, mode="execute")
            status = await handle.result()
            await save_history(handle, "graded_remediation_other_region")
    assert status.state == "resolved", status
    assert status.attempts and all(a.applied for a in status.attempts)
    asked = {
        region
        for (_, action, _), region in zip(cloud.calls, cloud.regions, strict=True)
        if action == "DescribeClusterKubeconfig"
    }
    assert asked == {"ap-shanghai"}
    assert len(api.writes()) == len(status.attempts)  # each rung's change, in that cluster


async def test_a_dry_run_of_a_cluster_no_server_answers_for_reports_at_once(
    tmp_path: Path,
) -> None:
    """An API server that does not answer (an intranet address seen from outside its VPC)
    is no busy server: a dry run's checkpoint waited out about two minutes of retries before
    it said "from the alert alone"; it says so at once again. 503s are still waited out."""
    from temporalio.testing import ActivityEnvironment

    from ambient.clients.kube import KubeClients
    from ambient.remediation.dry_run import DryRunExecutor
    from ambient.remediation.ladder import WorkloadRef
    from tests.support.servers import free_port

    path = _kubeconfig(tmp_path, f"http://127.0.0.1:{free_port()}")
    clients = KubeClients(path, None)
    target = WorkloadRef(cluster_id=CLUSTER, namespace="prod", name="checkout")
    try:
        executor = DryRunExecutor(clients)
        taken = await ActivityEnvironment().run(executor.checkpoint, target)
    finally:
        await clients.aclose()
    assert not taken.observed and "from the alert alone" in taken.detail, taken.detail


async def test_a_dry_run_scale_out_of_a_cluster_it_cannot_read_names_no_none(
    tmp_path: Path,
) -> None:
    """A dry run's step "from the alert alone" said "scale … from None to 4 replicas": the
    count before is unknown, and the sentence says so in words (the audit and the page show it)."""
    from ambient.clients.kube import KubeClients
    from ambient.remediation.dry_run import DryRunExecutor
    from ambient.remediation.ladder import Rung, StepRequest, WorkloadRef, step_key
    from tests.support.servers import free_port

    path = _kubeconfig(tmp_path, f"http://127.0.0.1:{free_port()}")
    clients = KubeClients(path, None)
    target = WorkloadRef(cluster_id=CLUSTER, namespace="prod", name="checkout")
    step = StepRequest(
        remediation_id="remediation/r9",
        rung=Rung.SCALE_OUT,
        target=target,
        mode="dry_run",
        key=step_key("remediation/r9", Rung.SCALE_OUT),
        replicas=4,
    )
    try:
        planned = await DryRunExecutor(clients).apply(step)
    finally:
        await clients.aclose()
    assert not planned.applied
    assert "None" not in planned.detail, planned.detail
    assert "scale deployment/prod/checkout to 4 replicas" in planned.detail, planned.detail


@pytest.mark.usefixtures("quick_change_retries")
async def test_a_cluster_that_keeps_refusing_the_credentials_hands_over_promising_no_next_try(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cluster: tuple[KubeApi, Path]
) -> None:
    api, path = cluster
    api.require_token("a-token-the-kubeconfig-does-not-hold")
    status = await _execute(ts_env, deps, path, healthy_from=None)

    assert status.state == "handed_over"
    assert status.outcome.startswith(
        "rung 1 (restart) was not applied: its checkpoint could not be read ("
        "reading Deployment prod/checkout: the API server refused the kubeconfig's credentials"
    )
    # Its retries are spent: the person it is handed to is told what to fix, not that the
    # run will read the kubeconfig again.
    assert "next attempt" not in status.outcome
    assert "not valid for this cluster" in status.outcome
    assert api.writes() == []


@pytest.mark.usefixtures("quick_change_retries")
async def test_a_dead_api_server_behind_a_gateway_hands_over_naming_the_gateways_answer(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """A load balancer in front of an API server that is down answers 502 with its own page,
    not a Kubernetes Status: the run hands over saying so, not with an unreadable reason."""

    async def bad_gateway(request: Request) -> Response:
        return PlainTextResponse("Bad Gateway", status_code=502)

    gateway = Starlette(routes=[Route("/{path:path}", bad_gateway, methods=["GET", "PATCH"])])
    async with serve(gateway) as base:
        path = _kubeconfig(tmp_path, base)
        status = await _execute(ts_env, deps, path, healthy_from=None)

    assert status.state == "handed_over"
    assert status.outcome == (
        "rung 1 (restart) was not applied: its checkpoint could not be read (reading "
        "Deployment prod/checkout: HTTP 502 Bad Gateway, not a Kubernetes API answer: "
        "Bad Gateway)"
    ), status.outcome


async def test_an_alert_read_healthy_with_no_pod_available_after_an_approval_is_not_cleared(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cluster: tuple[KubeApi, Path]
) -> None:
    """v2's pods never become ready, and the error rate reads healthy (no pod serves: no
    request reaches the app). Rungs 1 and 2 were judged unresolved by the rollout; read after
    rung 3's approval, the metric alone ended the run "Remediated", v2 left at 0 available
    and the approved rollback never made. The rollout is read too: the rollback is made."""
    api, path = cluster
    remediation_settings(
        deps,
        remediation_approval_from_rung=3,
        remediation_executor="kubernetes",
        kubeconfig=path,
    )
    await add_user(deps, USER, permission="execute")
    await add_user(deps, "lead", permission="execute")
    async with (
        error_rate(healthy_from=1) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        handle = await start(
            ts_env, worker.task_queue, alert(url, cluster_id=CLUSTER), mode="execute"
        )
        seen = await state_reaches(ts_env, handle, ("waiting_approval",))
        assert seen.waiting is not None and seen.waiting.rung == Rung.ROLLBACK, seen
        answer = ApprovalInput(approver="lead", approver_permission="execute", approve=True)
        await handle.execute_update(
            GradedRemediationWorkflow.approve, await as_door(deps, handle, answer)
        )
        status = await handle.result()
        await save_history(handle, "graded_remediation_cleared_with_no_pod_available")
    assert "cleared while" not in status.outcome, status.outcome
    assert status.state == "resolved", status.outcome
    assert [(a.rung, a.applied) for a in status.attempts] == [
        (Rung.RESTART, True),
        (Rung.SCALE_OUT, True),
        (Rung.ROLLBACK, True),
    ]
    assert images(api) == [V1]
    assert "cleared_waiting" not in await audit_actions(deps, status.run_key)


@pytest.mark.parametrize("ended_by", ["abort", "terminate"])
async def test_a_run_reset_in_temporal_does_not_make_its_change_again(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, cluster: tuple[KubeApi, Path], ended_by: str
) -> None:
    """The Web UI's Reset starts the run again as a new run: its step keys were of its run
    id, so it found nothing of what it had done and restarted the Deployment a second time,
    and the list said the run "aborted" while the reset run went on."""
    api, path = cluster
    remediation_settings(
        deps,
        remediation_approval_from_rung=2,
        remediation_executor="kubernetes",
        kubeconfig=path,
    )
    await add_user(deps, USER, permission="execute")
    async with (
        error_rate(healthy_from=None) as (_, url),
        running_worker(dev_env.client, deps) as worker,
    ):
        subject = alert(url, cluster_id=CLUSTER, settle_seconds=0)
        handle = await start(dev_env, worker.task_queue, subject, mode="execute")
        await state_reaches(dev_env, handle, ("waiting_approval",))
        restarts = [c for c in api.writes() if c.method == "PATCH"]
        assert len(restarts) == 1, restarts
        first = await handle.describe()
        completed = [
            e.event_id
            async for e in handle.fetch_history_events()
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        ]
        reset = await dev_env.client.workflow_service.reset_workflow_execution(
            ResetWorkflowExecutionRequest(
                namespace=dev_env.client.namespace,
                workflow_execution=ProtoExecution(workflow_id=handle.id, run_id=first.run_id),
                reason="an operator's reset",
                workflow_task_finish_event_id=completed[0],
                request_id=str(uuid.uuid4()),
            )
        )
        again = dev_env.client.get_workflow_handle_for(
            GradedRemediationWorkflow.run, handle.id, run_id=reset.run_id
        )
        seen = await state_reaches(dev_env, again, ("waiting_approval",))
        service = RemediationService(
            dev_env.client,
            deps.settings.model_copy(update={"temporal_task_queue": worker.task_queue}),
            deps.db,
        )

        async def listed() -> list[tuple[str, str]]:  # Temporal's list: eventually consistent
            runs = (await service.list_page(USER)).runs
            return [(r.run_key, r.state) for r in runs if r.remediation_id == handle.id]

        await until_equal(listed, [(seen.run_key, "waiting_approval")], "the reset run listed")
        view = await service.get(USER, handle.id)
        # The run it ended, named (an approval push's link names the run it was sent from), is
        # the run it goes on as: waiting, not "aborted" with no way to answer it.
        named = await service.get(USER, handle.id, first.run_id)
        assert (named.state, named.run_key) == ("waiting_approval", seen.run_key), named.outcome
        if ended_by == "abort":
            # Answered as any run: sent to the run the reset started, not to the one it ended
            # (every door's approve and abort were refused "already finished").
            await service.abort(USER, handle.id, "enough", via="api")
            done = await again.result()
            assert done.state == "aborted" and "enough" in done.outcome, done.outcome
        else:
            # Terminated in its turn: listed aborted, not waiting for ever.
            await again.terminate("an operator's terminate")
            await until_equal(listed, [(seen.run_key, "aborted")], "the reset run ended")
    assert [c for c in api.writes() if c.method == "PATCH"] == restarts
    assert seen.run_key == f"{handle.id}@{first.run_id}"
    [rung1] = seen.attempts
    assert rung1.rung == Rung.RESTART and rung1.already_applied, rung1
    assert view.state == "waiting_approval", view.outcome
