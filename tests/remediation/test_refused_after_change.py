"""An owner's permission revoked after a run changed the cluster: the run ends refused, and a
person is told what it changed and what to undo (the workload isolated), as a hand-over.

It ended silently before: no push, nothing in the briefing's broadcast queue, and its outcome
said nothing of the Services left selecting no pod."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.remediation.ladder import Rung
from ambient.storage.briefings import BroadcastRepository
from ambient.storage.repositories import InboxRepository
from tests.conftest import running_worker
from tests.remediation.support import add_user, alert, error_rate, remediation_settings
from tests.remediation.test_cluster import CLUSTER, cluster
from tests.remediation.test_workflow import USER, audit_actions, start
from tests.standins.kube_api import ApiCall, KubeApi
from tests.support.record import save_history

__all__ = ["cluster"]


async def test_a_permission_revoked_after_the_isolation_hands_the_run_over(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, cluster: tuple[KubeApi, Path]
) -> None:
    api, path = cluster
    remediation_settings(
        deps,
        remediation_approval_from_rung=0,
        remediation_executor="kubernetes",
        kubeconfig=path,
        remediation_rate_limit_per_hour=10,
    )
    await add_user(deps, USER, permission="execute")
    database = deps.settings.resolved_database_url.split("///", 1)[1]

    def revoke(call: ApiCall) -> None:
        # Rung 4's isolation stored: the owner loses the permission before rung 5's check.
        if call.kind == "services" and call.method == "PATCH":
            with sqlite3.connect(database) as conn:
                conn.execute("UPDATE users SET rollback_permission='none' WHERE name=?", (USER,))

    api.on_write = revoke
    async with (
        error_rate(healthy_from=None) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        subject = alert(url, cluster_id=CLUSTER, labels={"tier": "critical", "user_facing": "true"})
        handle = await start(ts_env, worker.task_queue, subject, mode="execute")
        status = await handle.result()
        await save_history(handle, "graded_remediation_refused_after_isolation")
    applied = [a.rung for a in status.attempts if a.applied]
    assert Rung.ISOLATE in applied and status.state == "refused", (applied, status.outcome)
    assert status.outcome.startswith("refused: rollback_permission"), status.outcome
    selector = api.services[("prod", "checkout")]["spec"]["selector"]
    assert any("isolated" in key for key in selector), selector  # still cut off: said below
    async with deps.db.session() as session:
        inbox = await InboxRepository(session).list(USER)
        queued = await BroadcastRepository(session).pending(USER)
    title = f"Needs a person: {subject.service}"
    told = [m for m in inbox if m.title == title]
    assert len(told) == 1 and "isolat" in told[0].body.lower(), [m.title for m in inbox]
    assert [b.title for b in queued] == [title]
    actions = await audit_actions(deps, status.run_key)
    assert actions.count("hand_over") == 1 and actions[-1] == "finished", actions
