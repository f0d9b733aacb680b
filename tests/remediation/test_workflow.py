"""The graded remediation ladder under time skipping, with real activities, database and metric."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.domain.remediation import Alert, Rung, remediation_id
from ambient.domain.remediation_runs import RemediationInput, RemediationStatus
from ambient.storage.audit import AuditRepository
from ambient.storage.briefings import BroadcastRepository
from ambient.storage.remediations import RemediationRepository
from ambient.storage.repositories import InboxRepository
from tests.conftest import running_worker, unique
from tests.remediation.support import add_user, alert, error_rate, remediation_settings
from tests.support.record import save_history
from workflows.graded_remediation import GradedRemediationWorkflow, search_attributes

USER = "ops"


async def start(
    env: WorkflowEnvironment,
    task_queue: str,
    subject: Alert,
    mode: str = "dry_run",
    user: str = USER,
) -> WorkflowHandle[Any, RemediationStatus]:
    return await env.client.start_workflow(
        GradedRemediationWorkflow.run,
        RemediationInput(alert=subject, user=user, mode=mode),  # type: ignore[arg-type]
        id=f"{remediation_id(subject)}-{unique('t')}",
        task_queue=task_queue,
        search_attributes=search_attributes(user, subject.cluster_id),
    )


async def audit_actions(deps: WorkerDeps, run_key: str) -> list[str]:
    async with deps.db.session() as session:
        return [r.action for r in await AuditRepository(session).list(subject=run_key, limit=1000)]


# Offline scores of these alerts fall in each band (see offline_score's rules).
BANDS = [
    ({"namespace": "dev-a", "value": 0.01, "labels": {"tier": "low"}, "metric": "disk"}, 1),
    ({"namespace": "default", "value": 0.01, "labels": {"tier": "low"}, "metric": "disk"}, 2),
    ({"namespace": "default", "labels": {"tier": "medium"}}, 3),
    ({"namespace": "prod", "labels": {"tier": "high"}}, 4),
    ({"namespace": "prod", "labels": {"tier": "critical", "user_facing": "true"}}, 6),
]


@pytest.mark.parametrize(("fields", "budget"), BANDS)
async def test_each_score_band_climbs_exactly_its_budget_then_hands_over(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, fields: dict[str, Any], budget: int
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=0)
    await add_user(deps, USER)
    async with (
        error_rate(healthy_from=None) as (site, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        subject = alert(url, message="errors", **fields)
        handle = await start(ts_env, worker.task_queue, subject)
        status = await handle.result()

    assert status.budget == budget
    assert [s.rung for s in status.plan] == list(Rung)[:budget]
    acted = [a.rung for a in status.attempts]
    if budget == 6:
        # Rung 6 is the hand-over itself: five changes, then a person.
        assert acted == list(Rung)[:5]
        assert status.state == "handed_over"
    else:
        assert acted == list(Rung)[:budget]
        assert status.state == "budget_exhausted"
    assert all(a.resolved is False for a in status.attempts)
    assert site.reads == len(acted)
    async with deps.db.session() as session:
        queued = await BroadcastRepository(session).pending(USER)
        inbox = await InboxRepository(session).list(USER)
        record = await RemediationRepository(session).get(status.run_key)
    assert [b.source for b in queued] == ["remediation"]
    assert subject.service in queued[0].title
    assert any(m.kind == "remediation" and "Needs a person" in m.title for m in inbox)
    assert record is not None and record.state == status.state
    assert record.budget_exhausted is (budget != 6)


async def test_success_at_rung_two_stops_the_ladder(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=0)
    await add_user(deps, USER)
    async with (
        error_rate(healthy_from=2) as (site, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        handle = await start(ts_env, worker.task_queue, alert(url))
        status = await handle.result()
        await save_history(handle, "graded_remediation_resolved")

    assert status.state == "resolved"
    assert status.budget == 4
    assert [(a.rung, a.resolved) for a in status.attempts] == [
        (Rung.RESTART, False),
        (Rung.SCALE_OUT, True),
    ]
    assert site.reads == 2
    restart, scale = status.attempts
    assert restart.patch is not None and scale.patch is not None
    deployment = "deployment/prod/checkout"
    assert "kubectl.kubernetes.io/restartedAt" in str(restart.patch[deployment])
    assert scale.patch[deployment]["spec"]["replicas"] == 2
    actions = await audit_actions(deps, status.run_key)
    assert actions[:2] == ["scored", "planned"]
    for needed in ("permission", "gate", "checkpoint", "action", "verification", "finished"):
        assert needed in actions
    assert actions.count("action") == 2
    async with deps.db.session() as session:
        assert await BroadcastRepository(session).pending(USER) == []
        record = await RemediationRepository(session).get(status.run_key)
    assert record is not None and record.resolved_rung == 2
