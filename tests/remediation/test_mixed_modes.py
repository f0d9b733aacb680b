"""A run whose first rung changed the cluster and whose later rung ran as a dry run (the owner's
rollback_permission lowered while it waited for an approval): its end push says which rung
changed something and that the rung it cleared at changed nothing, against the Kubernetes
stand-in, in English and in Chinese."""

from __future__ import annotations

from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.domain.users import Language
from ambient.remediation.ladder import Rung
from ambient.remediation.runs import ApprovalInput, RemediationStatus
from ambient.remediation.storage import RemediationRepository
from ambient.storage.models import InboxMessage
from ambient.storage.repositories import InboxRepository
from ambient.storage.users import UserRepository
from tests.conftest import running_worker
from tests.remediation.support import (
    add_user,
    alert,
    as_door,
    error_rate,
    remediation_settings,
    state_reaches,
)
from tests.remediation.test_cluster import CLUSTER, V1, _kubeconfig
from tests.remediation.test_workflow import USER, start
from tests.standins.kube_api import KubeApi
from tests.support.servers import serve
from workflows.remediation import GradedRemediationWorkflow


async def executed_then_dry(
    env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path, language: Language
) -> tuple[RemediationStatus, InboxMessage, KubeApi]:
    """Rung 1 restarts checkout (healthy pods, a failing metric) for real; rung 2 waits for
    approval, the owner's permission is lowered to dry_run meanwhile, the lead approves: rung 2
    runs as a dry run, and the alert clears after it. The run's status, its end push and the
    cluster."""
    api = KubeApi()
    api.add_deployment("prod", "checkout", V1, replicas=2)
    async with serve(api.app()) as base:
        status, end = await _run(env, deps, _kubeconfig(tmp_path, base), language)
    return status, end, api


async def _run(
    env: WorkflowEnvironment, deps: WorkerDeps, path: Path, language: Language
) -> tuple[RemediationStatus, InboxMessage]:
    remediation_settings(
        deps,
        remediation_approval_from_rung=2,
        remediation_executor="kubernetes",
        kubeconfig=path,
    )
    await add_user(deps, USER, permission="execute", language=language)
    await add_user(deps, "lead", permission="execute")
    async with (
        error_rate(healthy_from=3) as (_, url),
        running_worker(env.client, deps) as worker,
    ):
        subject = alert(url, cluster_id=CLUSTER)
        handle = await start(env, worker.task_queue, subject, mode="execute")
        await state_reaches(env, handle, ("waiting_approval",))
        async with deps.db.session() as session:
            owner = await UserRepository(session).get(USER)
            assert owner is not None
            owner.rollback_permission = "dry_run"
            await session.commit()
        answer = ApprovalInput(approver="lead", approver_permission="execute", approve=True)
        await handle.execute_update(
            GradedRemediationWorkflow.approve, await as_door(deps, handle, answer)
        )
        status = await handle.result()
    async with deps.db.session() as session:
        inbox = await InboxRepository(session).list(USER)
    return status, inbox[0]  # the newest first: its end


async def test_a_change_then_a_dry_run_says_which_rung_changed_the_cluster(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    status, end, api = await executed_then_dry(ts_env, deps, tmp_path, Language.EN)

    assert status.state == "resolved", status.outcome
    assert [(a.rung, a.mode, a.applied) for a in status.attempts] == [
        (Rung.RESTART, "execute", True),
        (Rung.SCALE_OUT, "dry_run", False),
    ]
    assert [c.kind for c in api.writes()] == ["deployments"]  # the restart alone
    # Its row (list_remediations, the web list, the stats) says what it was: a run that
    # changed the cluster, not the dry run its last rung was (it read so, as nothing touched).
    async with deps.db.session() as session:
        row = await RemediationRepository(session).get(status.run_key)
    assert row is not None and row.mode == "execute", row
    assert end.title == "Remediated: cls-standin1/prod/checkout"
    assert end.body == (
        f"Remediation `{status.remediation_id}` resolved at rung 2 (scale_out), a dry run that "
        "changed nothing; the change made was at rung 1 (restart)."
    ), end.body


async def test_a_change_then_a_dry_run_is_said_so_in_chinese(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    status, end, _api = await executed_then_dry(ts_env, deps, tmp_path, Language.ZH)

    assert status.state == "resolved", status.outcome
    assert end.title == "已修复：cls-standin1/prod/checkout"
    assert end.body == (
        f"修复 `{status.remediation_id}`：告警在第 2 级（扩容）后恢复，该级是演练，未做改动；"
        "做过的改动是第 1 级（重启）。"
    ), end.body
