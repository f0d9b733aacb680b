"""The graded remediation ladder under time skipping, with real activities, database and metric."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, closing
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlalchemy import event, select
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, UpdateWorkflowExecutionLifecycleStage
from temporalio.api.update.v1 import UpdateRef, WaitPolicy
from temporalio.api.workflowservice.v1 import PollWorkflowExecutionUpdateRequest
from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import CancelledError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from ambient.clients.kube_errors import KubeError, KubeUnavailableError
from ambient.clients.notify import inbox as inbox_channel
from ambient.deps import WorkerDeps
from ambient.domain.users import Language
from ambient.remediation.alerts import Alert, remediation_id
from ambient.remediation.dry_run import DryRunExecutor
from ambient.remediation.ladder import (
    ISOLATION_LABEL,
    RolloutHealth,
    Rung,
    StepRequest,
    StepResult,
    WorkloadRef,
)
from ambient.remediation.runs import (
    AbortInput,
    ApprovalDecision,
    ApprovalInput,
    RemediationInput,
    RemediationStatus,
)
from ambient.remediation.storage import UNVERIFIED, BreakerRepository, RemediationRepository
from ambient.storage.audit import AuditRepository
from ambient.storage.briefings import BroadcastRepository
from ambient.storage.models import RemediationAction
from ambient.storage.repositories import InboxRepository
from ambient.storage.users import UserRepository
from tests.conftest import running_worker, unique
from tests.remediation.support import (
    add_user,
    alert,
    as_door,
    audit_quoting,
    error_rate,
    remediation_settings,
    remediations_on_dev,
    run_ended,
    signal_taken,
    state_reaches,
)
from tests.standins.kube_api import KubeApi, kubeconfig
from tests.support.record import save_history
from tests.support.servers import HANG, serve
from tests.support.waits import ask, eventually
from worker import build_worker
from workflows.remediation import GradedRemediationWorkflow
from workflows.remediation_records import search_attributes

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


@pytest.mark.parametrize("language", [None, Language.ZH], ids=["en", "zh"])
@pytest.mark.parametrize(
    ("fields", "english", "chinese"),
    [
        (
            BANDS[1][0],
            "the budget of 2 attempt(s) is spent and the alert is not resolved",
            "2 次尝试的预算已用完，告警仍未解决",
        ),
        (BANDS[4][0], "the ladder reached hand-over (rung 6)", "已到第 6 级（转人工）"),
    ],
    ids=["budget_spent", "ladder_top"],
)
async def test_a_dry_runs_end_says_it_was_a_dry_run_that_changed_nothing(
    ts_env: WorkflowEnvironment,
    deps: WorkerDeps,
    fields: dict[str, Any],
    english: str,
    chinese: str,
    language: Language | None,
) -> None:
    """A dry run whose metric stays bad ended as a run whose changes failed ("the budget of 2
    attempt(s) is spent and the alert is not resolved"): its end, record and push now say it
    was a dry run and nothing was changed, in its reader's language."""
    remediation_settings(deps, remediation_approval_from_rung=0)
    await add_user(deps, USER, language=language)
    async with (
        error_rate(healthy_from=None) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        handle = await start(ts_env, worker.task_queue, alert(url, message="errors", **fields))
        status = await handle.result()

    said = f"a dry run, nothing was changed: {english}"
    assert status.mode == "dry_run" and status.outcome == said, status.outcome
    async with deps.db.session() as session:
        inbox = await InboxRepository(session).list(USER)
        record = await RemediationRepository(session).get(status.run_key)
    assert record is not None and record.detail["outcome"] == said
    (pushed,) = [m for m in inbox if "`" + status.remediation_id + "`" in m.body]
    if language is Language.ZH:
        assert f"已停止：演练，未做任何改动：{chinese}。告警：" in pushed.body, pushed.body
    else:
        assert f"stopped: {said}. Alert:" in pushed.body, pushed.body


async def test_every_end_of_a_dry_run_says_it_was_a_dry_run(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A dry run resolved, refused at its approval or aborted ended as a real run does
    ("resolved at rung 1 (restart)", "lead refused rung 3", "aborted …"), as if its change had
    cleared the alert or been stopped: each end now says it was a dry run, nothing changed;
    the resolved one that the alert cleared (its record, its push, a zh reader's push)."""
    dry = "a dry run, nothing was changed: "
    remediation_settings(deps, remediation_approval_from_rung=3)
    await add_user(deps, USER)
    await add_user(deps, "lead", permission="execute")
    async with (
        error_rate(healthy_from=1) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        resolved = await (await start(ts_env, worker.task_queue, alert(url))).result()
    async with (
        error_rate(healthy_from=None) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        handle = await start(ts_env, worker.task_queue, alert(url))
        await state_reaches(ts_env, handle, ("waiting_approval",))
        refusal = ApprovalInput(
            approver="lead", approver_permission="execute", approve=False, reason="freeze"
        )
        await handle.execute_update(
            GradedRemediationWorkflow.approve, await as_door(deps, handle, refusal)
        )
        refused = await handle.result()
        handle = await start(ts_env, worker.task_queue, alert(url))
        await state_reaches(ts_env, handle, ("settling",))
        await handle.signal(GradedRemediationWorkflow.abort, AbortInput(by="lead"))
        aborted = await handle.result()

    assert resolved.state == "resolved"
    assert resolved.outcome == dry + "the alert cleared at rung 1 (restart)"
    assert refused.state == "handed_over" and refused.outcome == dry + "lead refused rung 3: freeze"
    assert aborted.state == "aborted" and aborted.outcome.startswith(dry + "aborted in Temporal")
    async with deps.db.session() as session:
        inbox = await InboxRepository(session).list(USER)
        records = [
            await RemediationRepository(session).get(s.run_key)
            for s in (resolved, refused, aborted)
        ]
    assert [r.detail["outcome"] for r in records if r is not None] == [
        resolved.outcome,
        refused.outcome,
        aborted.outcome,
    ]
    bodies = [m.body for m in inbox]
    cleared = f"Remediation `{resolved.remediation_id}`: {resolved.outcome}."
    assert cleared in bodies, bodies
    assert any(f"stopped: {refused.outcome}. Alert:" in b for b in bodies), bodies


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


async def test_the_first_change_follows_its_opening_in_the_runs_first_task_every_check_audited(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # An alert storm queued each run's five transactions (scoring, the plan's post,
    # permission, gates, checkpoint) before its first change: now one decides them all. And
    # the change follows in the same workflow task: no round trip through the server between
    # the opening and the change, no task after it.
    remediation_settings(deps, remediation_approval_from_rung=0)
    await add_user(deps, USER)
    async with (
        error_rate(healthy_from=1) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        handle = await start(ts_env, worker.task_queue, alert(url))
        status = await handle.result()
        history = await handle.fetch_history()
        await save_history(handle, "graded_remediation_first_change_in_task")

    assert status.state == "resolved"
    assert [a.rung for a in status.attempts] == [Rung.RESTART]
    tasks = 0
    first_task: list[str] = []  # the local activities the first workflow task ran, in order
    scheduled: list[str] = []
    for item in history.events:
        tasks += item.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        if item.HasField("activity_task_scheduled_event_attributes"):
            scheduled.append(item.activity_task_scheduled_event_attributes.activity_type.name)
        marker = item.marker_recorded_event_attributes
        if tasks == 1 and marker.marker_name == "core_local_activity":
            data = json.loads(marker.details["data"].payloads[0].data)
            first_task.append(data["activity_type"])
    assert first_task[:2] == ["open_remediation", "apply_remediation_step"], first_task
    assert "apply_remediation_step" not in scheduled  # no regular activity for the change
    actions = await audit_actions(deps, status.run_key)
    # The baseline: the workload as the run opened (rungs 3 and 5 go back from it).
    assert actions[:7] == [
        *("scored", "planned", "baseline", "permission", "gate", "checkpoint", "action")
    ]


async def test_approval_granted_runs_the_rollback_and_records_the_approver(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=3)
    await add_user(deps, USER)
    await add_user(deps, "lead", permission="execute")
    async with (
        error_rate(healthy_from=4) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        handle = await start(ts_env, worker.task_queue, alert(url))
        waiting = await state_reaches(ts_env, handle, ("waiting_approval",))
        assert waiting.waiting is not None and waiting.waiting.what == "approval"
        assert waiting.waiting.rung == Rung.ROLLBACK
        assert [a.rung for a in waiting.attempts] == [Rung.RESTART, Rung.SCALE_OUT]
        decision = await handle.execute_update(
            GradedRemediationWorkflow.approve,
            await as_door(
                deps,
                handle,
                ApprovalInput(approver="lead", approver_permission="execute", approve=True),
            ),
        )
        status = await handle.result()
        await save_history(handle, "graded_remediation_approved")

    assert decision.approve and decision.rung == Rung.ROLLBACK
    assert status.state == "resolved"
    assert status.attempts[-1].rung == Rung.ROLLBACK and status.attempts[-1].resolved
    async with deps.db.session() as session:
        records = await AuditRepository(session).list(subject=status.run_key, action="approval")
    assert [(r.actor, r.detail["approve"]) for r in records] == [("lead", True)]


async def test_approval_refused_hands_over_without_the_rollback(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=3)
    await add_user(deps, USER)
    await add_user(deps, "lead", permission="execute")
    async with (
        error_rate(healthy_from=None) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        handle = await start(ts_env, worker.task_queue, alert(url))
        await state_reaches(ts_env, handle, ("waiting_approval",))
        await handle.execute_update(
            GradedRemediationWorkflow.approve,
            await as_door(
                deps,
                handle,
                ApprovalInput(
                    approver="lead",
                    approver_permission="execute",
                    approve=False,
                    reason="deploy freeze",
                ),
            ),
        )
        status = await handle.result()

    assert status.state == "handed_over"
    assert "lead refused rung 3: deploy freeze" in status.outcome
    assert Rung.ROLLBACK not in [a.rung for a in status.attempts]
    async with deps.db.session() as session:
        queued = await BroadcastRepository(session).pending(USER)
    assert len(queued) == 1 and "deploy freeze" in queued[0].body


async def test_approval_not_given_in_time_hands_over(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(
        deps, remediation_approval_from_rung=1, remediation_approval_timeout_minutes=45
    )
    await add_user(deps, USER)
    async with (
        error_rate(healthy_from=None) as (site, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        handle = await start(ts_env, worker.task_queue, alert(url))
        status = await handle.result()
        await save_history(handle, "graded_remediation_approval_timeout")

    assert status.state == "handed_over"
    assert "nobody approved rung 1 within 45 min" in status.outcome
    assert status.attempts == [] and site.reads == 0
    actions = await audit_actions(deps, status.run_key)
    assert "approval_timeout" in actions and "action" not in actions
    # The audit row says how long it waited as the hand-over does, not a timedelta's "0:45:00".
    async with deps.db.session() as session:
        (timed_out,) = await AuditRepository(session).list(
            subject=status.run_key, action="approval_timeout"
        )
    assert (timed_out.detail["rung"], timed_out.detail["after"]) == (1, "45 min")


async def test_approval_from_a_user_without_permission_is_rejected_by_the_validator(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, USER)
    async with (
        error_rate(healthy_from=1) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        handle = await start(ts_env, worker.task_queue, alert(url))
        await state_reaches(ts_env, handle, ("waiting_approval",))
        with pytest.raises(WorkflowUpdateFailedError) as failed:
            await handle.execute_update(
                GradedRemediationWorkflow.approve,
                ApprovalInput(approver="viewer", approver_permission="none", approve=True),
            )
        assert "viewer has rollback_permission 'none'" in str(failed.value.cause)
        still = await ask(handle, GradedRemediationWorkflow.status)
        assert still.state == "waiting_approval" and still.approvals == []
        await handle.signal(GradedRemediationWorkflow.abort, AbortInput(by=USER))
        status = await handle.result()
    assert status.state == "aborted"


async def test_an_approval_that_comes_with_an_abort_is_refused_not_taken(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, USER)
    queue = unique("tq")
    async with error_rate(healthy_from=None) as (_, url):
        async with build_worker(dev_env.client, deps, task_queue=queue):
            handle = await start(dev_env, queue, alert(url))
            await state_reaches(dev_env, handle, ("waiting_approval",), timedelta(0))
        # With no worker, an abort and an approval arrive: the run takes them in one task.
        await handle.signal(GradedRemediationWorkflow.abort, AbortInput(by=USER, reason="stop"))
        answer = await answer_held(dev_env, deps, handle)
        async with build_worker(dev_env.client, deps, task_queue=queue):
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await answer
            status = await handle.result()

    # Told "approved", the approver would believe the step runs; the run is aborted instead.
    # The abort was signalled in Temporal: the refusal does not name its sender as "ops".
    assert str(refused.value.cause) == (
        f"StateConflict: {handle.id} has ended (a dry run, nothing was changed: aborted in "
        "Temporal, not through ambient-ops: the sender is not verified (it gave the name 'ops'): "
        "stop): rung 1 will not be applied"
    )
    assert status.state == "aborted" and status.approvals == []


# Temporalio applies an activation's updates (and runs them) before its fired timers; it means to
# apply all of an activation's jobs before running any by default in a coming release (its
# logic flag 2, single batch): the run must answer the same both ways.
@pytest.mark.parametrize("single_batch", [False, True])
async def test_an_approval_that_comes_as_its_timeout_fires_is_acted_on(
    ts_env: WorkflowEnvironment,
    deps: WorkerDeps,
    monkeypatch: pytest.MonkeyPatch,
    single_batch: bool,
) -> None:
    if single_batch:
        # Private names: a temporalio that renames them skips this case, not the whole file.
        try:
            from temporalio.worker import _workflow
            from temporalio.worker._workflow_instance import _WorkflowLogicFlag

            flag = _WorkflowLogicFlag.PROCESS_WORKFLOW_ACTIVATION_JOBS_AS_SINGLE_BATCH
            monkeypatch.setattr(
                _workflow, "_DEFAULT_ENABLED_WORKFLOW_LOGIC_FLAGS", frozenset({flag})
            )
        except (ImportError, AttributeError) as exc:
            pytest.skip(f"this temporalio has no single-batch logic flag to turn on ({exc})")
    # No sticky cache: the second worker gets the run's next task from the shared queue.
    remediation_settings(
        deps,
        remediation_approval_from_rung=1,
        remediation_approval_timeout_minutes=45,
        max_cached_workflows=0,
    )
    await add_user(deps, USER)
    task_queue = unique("tq")
    async with error_rate(healthy_from=2) as (_, url):
        async with build_worker(ts_env.client, deps, task_queue=task_queue):
            handle = await start(ts_env, task_queue, alert(url))
            await state_reaches(ts_env, handle, ("waiting_approval",), timedelta(0))
            await eventually(lambda: timer_started(handle), "the approval's timer started")
        # With no worker, the approval's timeout fires and then the answer comes: the run takes
        # both in one workflow task.
        await ts_env.sleep(timedelta(minutes=45))
        answer = await answer_held(ts_env, deps, handle)
        async with build_worker(ts_env.client, deps, task_queue=task_queue):
            decision = await answer
            status = await handle.result()

    # Told "approved", the approver believes the step runs: it does.
    assert decision.approve and status.approvals == [decision]
    assert [a.rung for a in status.attempts] == [Rung.RESTART] and status.state == "resolved"
    assert "approval_timeout" not in await audit_actions(deps, status.run_key)


async def timer_started(handle: WorkflowHandle[Any, Any]) -> bool:
    history = await handle.fetch_history()
    return any(e.event_type == EventType.EVENT_TYPE_TIMER_STARTED for e in history.events)


async def answer_held(
    env: WorkflowEnvironment,
    deps: WorkerDeps,
    handle: WorkflowHandle[Any, Any],
    approver: str = USER,
    permission: str = "dry_run",
    *,
    approve: bool = True,
) -> asyncio.Task[ApprovalDecision]:
    """``approver``'s answer to rung 1, recorded as a door does and sent to a run no worker
    serves, once the server holds it (its update id is the approver's name): it resolves when
    a worker takes the run's next task."""
    answer = ApprovalInput(approver=approver, approver_permission=permission, approve=approve)
    answer = await as_door(deps, handle, answer, Rung.RESTART)
    sent = asyncio.create_task(
        handle.execute_update(GradedRemediationWorkflow.approve, answer, id=approver)
    )
    await admitted(env, handle, approver)
    return sent


async def admitted(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any], update: str) -> None:
    """Until the server holds the update ``update`` of ``handle``'s run (no worker needed)."""
    request = PollWorkflowExecutionUpdateRequest(
        namespace=env.client.namespace,
        update_ref=UpdateRef(
            workflow_execution=WorkflowExecution(workflow_id=handle.id), update_id=update
        ),
        wait_policy=WaitPolicy(
            lifecycle_stage=UpdateWorkflowExecutionLifecycleStage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED
        ),
    )

    async def held() -> bool:
        try:
            await env.client.workflow_service.poll_workflow_execution_update(request)
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                return False
            raise
        return True

    await eventually(held, "the update admitted")


async def test_permission_none_refuses_before_any_change(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=0)
    await add_user(deps, USER, permission="none")
    async with (
        error_rate(healthy_from=None) as (site, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        handle = await start(ts_env, worker.task_queue, alert(url), mode="execute")
        status = await handle.result()

    assert status.state == "refused"
    assert "rollback_permission is 'none'" in status.outcome
    assert status.attempts == [] and site.reads == 0
    actions = await audit_actions(deps, status.run_key)
    assert "permission" in actions and "action" not in actions


async def test_a_run_refused_by_its_owners_permission_tells_its_owner(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A run a watch or the nightly triage started for an owner whose rollback_permission is
    none (taken away after the start was asked for) ended "refused" at once, telling nobody:
    its owner is told it was refused, why, and that nothing was changed."""
    remediation_settings(deps, remediation_approval_from_rung=0)
    await add_user(deps, USER, permission="none")
    async with (
        error_rate(healthy_from=None) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        handle = await start(ts_env, worker.task_queue, alert(url), mode="execute")
        status = await handle.result()
        await save_history(handle, "graded_remediation_refused_told")
    assert status.state == "refused"
    async with deps.db.session() as session:
        inbox = await InboxRepository(session).list(USER)
    reason = "rollback_permission is 'none': an admin must grant dry_run or execute"
    told = {m.title: m.body for m in inbox}
    assert told == {
        f"Remediation refused: {status.alert.service}": f"Remediation `{status.remediation_id}` "
        f"refused: {reason}. Nothing was changed."
    }, told


async def test_a_permission_revoked_while_a_step_waits_for_approval_stops_its_change(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, USER)
    await add_user(deps, "lead")
    async with (
        error_rate(healthy_from=None) as (site, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        handle = await start(ts_env, worker.task_queue, alert(url))
        await state_reaches(ts_env, handle, ("waiting_approval",))
        # While rung 1 waits for its approval, an admin takes the owner's permission away.
        async with deps.db.session() as session:
            owner = await UserRepository(session).get(USER)
            assert owner is not None
            owner.rollback_permission = "none"
            await session.commit()
        await handle.execute_update(
            GradedRemediationWorkflow.approve,
            await as_door(
                deps,
                handle,
                ApprovalInput(approver="lead", approver_permission="dry_run", approve=True),
            ),
        )
        status = await handle.result()
        await save_history(handle, "graded_remediation_revoked_while_waiting")

    assert status.state == "refused"
    assert "rollback_permission is 'none'" in status.outcome
    assert status.attempts == [] and site.reads == 0
    actions = await audit_actions(deps, status.run_key)
    assert "approval" in actions and "action" not in actions


async def test_execute_asked_with_dry_run_permission_runs_as_dry_run(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=0, remediation_executor="kubernetes")
    await add_user(deps, USER, permission="dry_run")
    async with (
        error_rate(healthy_from=1) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        handle = await start(ts_env, worker.task_queue, alert(url), mode="execute")
        status = await handle.result()

    assert status.mode == "dry_run" and status.state == "resolved"
    assert status.attempts[0].mode == "dry_run" and not status.attempts[0].applied
    assert status.attempts[0].detail.startswith("dry run: would restart")


async def test_execute_with_execute_permission_uses_the_configured_executor(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    executor = RecordingExecutor()
    deps.executors = {"dry_run": DryRunExecutor(), "kubernetes": executor}
    remediation_settings(deps, remediation_approval_from_rung=0, remediation_executor="kubernetes")
    await add_user(deps, USER, permission="execute")
    async with (
        error_rate(healthy_from=1) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        handle = await start(ts_env, worker.task_queue, alert(url), mode="execute")
        status = await handle.result()

    assert status.mode == "execute" and status.state == "resolved"
    assert [(s.rung, s.mode, s.key) for s in executor.steps] == [
        (Rung.RESTART, "execute", f"{status.run_key}#1")
    ]
    assert executor.steps[0].restarted_at is not None


async def test_global_dry_run_switch_keeps_execute_permission_to_a_dry_run(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=0, remediation_executor="dry_run")
    await add_user(deps, USER, permission="execute")
    async with (
        error_rate(healthy_from=1) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        handle = await start(ts_env, worker.task_queue, alert(url), mode="execute")
        status = await handle.result()
    assert status.mode == "dry_run"
    async with deps.db.session() as session:
        records = await AuditRepository(session).list(subject=status.run_key, action="permission")
    assert "AMBIENT_REMEDIATION_EXECUTOR is dry_run" in records[0].detail["reason"]


async def test_cluster_cooldown_makes_a_second_remediation_wait(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    deps.executors = {"dry_run": DryRunExecutor(), "kubernetes": RecordingExecutor()}
    remediation_settings(
        deps,
        remediation_approval_from_rung=0,
        remediation_cluster_cooldown_seconds=600,
        remediation_executor="kubernetes",
    )
    await add_user(deps, USER, permission="execute")
    async with (
        error_rate(healthy_from=1) as (_, url),
        # Read again after its wait (still firing), then healthy at its change's verify.
        error_rate(healthy_from=2) as (_, later),
        running_worker(ts_env.client, deps) as worker,
    ):
        first = await start(ts_env, worker.task_queue, alert(url, workload="cart"), "execute")
        await state_reaches(ts_env, first, ("settling", "verifying", "resolved"))
        second = await start(
            ts_env, worker.task_queue, alert(later, workload="payments"), "execute"
        )
        waiting = await state_reaches(ts_env, second, ("waiting_gate",))
        assert waiting.waiting is not None and waiting.waiting.what == "rate_limit"
        # Its lengths as the breaker's wait says one (it said "(< 600s)"): minutes.
        assert waiting.waiting.detail.startswith("cluster cooldown: last change ")
        assert waiting.waiting.detail.endswith(" ago (< 10 min)"), waiting.waiting.detail
        assert waiting.attempts == []
        done = await second.result()
        first_done = await first.result()

    assert first_done.state == "resolved" and done.state == "resolved"
    async with deps.db.session() as session:
        rows = (
            await session.execute(select(RemediationAction).order_by(RemediationAction.at))
        ).scalars()
        times = [r.at for r in rows]
    assert len(times) == 2
    assert (times[1] - times[0]).total_seconds() >= 600


async def test_a_dry_run_holds_no_slot_of_the_clusters_rate_limit(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(
        deps, remediation_approval_from_rung=0, remediation_cluster_cooldown_seconds=600
    )
    await add_user(deps, USER)
    async with (
        error_rate(healthy_from=None) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        # A dry run changed nothing: the next step on the cluster, its own or another run's,
        # is not held for a cooldown (or an hourly limit) as if it had.
        first = await start(ts_env, worker.task_queue, alert(url, workload="cart"))
        done = await first.result()

    assert [(a.rung, a.skipped_reason) for a in done.attempts][:2] == [
        (Rung.RESTART, None),
        (Rung.SCALE_OUT, None),
    ]
    async with deps.db.session() as session:
        gates = await AuditRepository(session).list(subject=done.run_key, action="gate")
        held = (await session.execute(select(RemediationAction))).scalars().all()
    assert all(g.detail["allowed"] for g in gates), [g.detail["reason"] for g in gates]
    assert held == []


@pytest.mark.parametrize("mode", ["execute", "dry_run"])
async def test_breaker_opens_after_failures_and_skips_that_rung(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, mode: str
) -> None:
    deps.executors = {"dry_run": DryRunExecutor(), "kubernetes": RecordingExecutor()}
    remediation_settings(
        deps,
        remediation_approval_from_rung=0,
        remediation_breaker_failures=1,
        remediation_breaker_open_minutes=600,
        remediation_executor="kubernetes",
    )
    await add_user(deps, USER, permission="execute")
    low = {"namespace": "default", "value": 0.01, "labels": {"tier": "low"}, "message": "disk"}
    async with (
        error_rate(healthy_from=None) as (site, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        subject = alert(url, metric="disk", **low)
        first_handle = await start(ts_env, worker.task_queue, subject, mode=mode)
        # Polled, not awaited: awaiting a result can let the test server's clock leap ahead.
        first = await state_reaches(ts_env, first_handle, ("budget_exhausted",))
        subject = alert(url, metric="disk2", **low)
        second = await (await start(ts_env, worker.task_queue, subject, mode="execute")).result()

    assert [a.rung for a in first.attempts] == [Rung.RESTART, Rung.SCALE_OUT]
    assert second.state == "budget_exhausted"
    if mode == "dry_run":
        # A dry run changed nothing: its rungs failing to clear the alert say nothing of them.
        assert [(a.rung, a.skipped_reason) for a in second.attempts] == [
            (Rung.RESTART, None),
            (Rung.SCALE_OUT, None),
        ]
        return
    assert [(a.rung, a.skipped_reason is not None) for a in second.attempts] == [
        (Rung.RESTART, True),
        (Rung.SCALE_OUT, True),
    ]
    assert all("breaker open" in (a.skipped_reason or "") for a in second.attempts)
    # Its wait as the audit says one (it said "closes in 35880s"): hours and minutes.
    waits = [(a.skipped_reason or "").partition("closes in ")[2] for a in second.attempts]
    assert all(re.fullmatch(r"\d+ h( \d+ min)?|\d+ min", wait) for wait in waits), waits
    assert site.reads == 2  # the second remediation changed and verified nothing


async def test_an_answer_when_no_approval_is_pending_is_rejected_and_the_ladder_goes_on(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=0)
    await add_user(deps, USER)
    async with (
        error_rate(healthy_from=None) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        handle = await start(ts_env, worker.task_queue, alert(url))
        await state_reaches(ts_env, handle, ("settling",))
        with pytest.raises(WorkflowUpdateFailedError) as failed:
            await handle.execute_update(
                GradedRemediationWorkflow.approve,
                ApprovalInput(approver=USER, approver_permission="execute", approve=True),
            )
        assert "is not waiting for approval (state settling)" in str(failed.value.cause)
        still = await ask(handle, GradedRemediationWorkflow.status)
        assert still.state == "settling" and still.approvals == []
        await handle.signal(GradedRemediationWorkflow.abort, AbortInput(by=USER))
        status = await handle.result()
    assert status.state == "aborted"


async def test_abort_stops_during_the_settle_timer(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=0)
    await add_user(deps, USER)
    async with (
        error_rate(healthy_from=None) as (site, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        handle = await start(ts_env, worker.task_queue, alert(url))
        await state_reaches(ts_env, handle, ("settling",))
        await handle.signal(GradedRemediationWorkflow.abort, AbortInput(by="lead", reason="on it"))
        status = await handle.result()
        await save_history(handle, "graded_remediation_aborted")

    assert status.state == "aborted"
    # Signalled in Temporal, not through a door that checked "lead": the name is only a claim.
    assert status.outcome == (
        "a dry run, nothing was changed: aborted in Temporal, not through ambient-ops: the "
        "sender is not verified (it gave the name 'lead'): on it"
    )
    assert [a.rung for a in status.attempts] == [Rung.RESTART] and site.reads == 0
    async with deps.db.session() as session:
        records = await AuditRepository(session).list(subject=status.run_key, action="aborted")
        assert await BroadcastRepository(session).pending(USER) == []
    assert [(r.actor, r.detail["given_by"]) for r in records] == [(UNVERIFIED, "lead")]


class RecordingExecutor(DryRunExecutor):
    """The dry-run executor that also keeps the step requests it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[StepRequest] = []

    async def apply(self, step: StepRequest) -> StepResult:
        self.steps.append(step)
        return await super().apply(step)


class UnverifiableExecutor(RecordingExecutor):
    """Applies the step, then the rollout can no longer be read (credentials revoked)."""

    async def rollout_health(self, target: WorkloadRef) -> RolloutHealth:
        raise KubeError('deployments is forbidden: User "ops" cannot get resource "deployments"')


async def test_a_change_that_cannot_be_verified_hands_over_instead_of_failing_the_run(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    executor = UnverifiableExecutor()
    deps.executors = {"dry_run": DryRunExecutor(), "kubernetes": executor}
    remediation_settings(deps, remediation_approval_from_rung=0, remediation_executor="kubernetes")
    await add_user(deps, USER, permission="execute")
    async with (
        error_rate(healthy_from=1) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        subject = alert(url, labels={"tier": "critical", "user_facing": "true"})
        handle = await start(ts_env, worker.task_queue, subject, mode="execute")
        status = await handle.result()

    # One change, then a person: no stronger rung climbed blind, and the run ends, not fails.
    assert status.state == "handed_over"
    assert [s.rung for s in executor.steps] == [Rung.RESTART]
    assert status.attempts[0].verified is False
    assert "verification failed" in (status.attempts[0].verification or "")
    assert "could not be verified" in (status.outcome or "")
    async with deps.db.session() as session:
        queued = await BroadcastRepository(session).pending(USER)
    assert [b.source for b in queued] == ["remediation"]
    assert "could not be verified" in queued[0].body


async def test_a_verification_whose_metric_cannot_be_read_hands_over_instead_of_climbing(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    executor = RecordingExecutor()
    deps.executors = {"dry_run": executor}
    remediation_settings(deps, remediation_approval_from_rung=0)
    await add_user(deps, USER)
    async with (
        error_rate(healthy_from=1) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        # The metric's endpoint is gone (404): nothing says whether the restart worked.
        gone = url.replace("/metrics", "/gone")
        subject = alert(url, labels={"tier": "critical", "user_facing": "true"})
        subject.verify.source.url = gone  # type: ignore[union-attr]
        handle = await start(ts_env, worker.task_queue, subject)
        status = await handle.result()

    # An unreadable metric is no verdict: no stronger rung bought on it, a person takes over.
    assert status.state == "handed_over"
    assert [s.rung for s in executor.steps] == [Rung.RESTART]
    assert status.attempts[0].verified is False
    assert "metric unreadable" in (status.attempts[0].verification or "")
    assert "could not be verified" in (status.outcome or "")
    async with deps.db.session() as session:
        # Not counted against the rung either: the breaker saw no failure.
        breaker = await BreakerRepository(session).state(subject.service, int(Rung.RESTART))
    assert breaker.failures == 0


async def test_a_verification_read_that_fails_once_is_read_again_and_verifies(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=0)
    await add_user(deps, USER)
    async with (
        error_rate(healthy_from=1, unavailable=1) as (site, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        handle = await start(ts_env, worker.task_queue, alert(url))
        status = await handle.result()

    # One 503 from the metric source is no reason to call a person: the read is made again.
    assert site.reads == 2
    assert status.state == "resolved"
    [restart] = status.attempts
    assert (restart.rung, restart.verified, restart.resolved) == (Rung.RESTART, True, True)
    assert status.outcome == "a dry run, nothing was changed: the alert cleared at rung 1 (restart)"


async def test_a_verification_metric_that_keeps_failing_hands_over_saying_how_many_reads_failed(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=0)
    await add_user(deps, USER)
    async with (
        error_rate(healthy_from=1, unavailable=100) as (site, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        handle = await start(ts_env, worker.task_queue, alert(url))
        status = await handle.result()

    assert site.reads == 3
    assert status.state == "handed_over"
    assert [a.rung for a in status.attempts] == [Rung.RESTART]
    assert status.attempts[0].verified is False
    # A dry run: its restart was previewed, not applied.
    assert status.outcome == (
        "a dry run, nothing was changed: rung 1 (restart) was previewed but could not be "
        f"verified (metric unreadable: 3 reads failed, the last: HTTP 503 from {url})"
    )
    async with deps.db.session() as session:
        queued = await BroadcastRepository(session).pending(USER)
    assert [b.source for b in queued] == ["remediation"]
    assert "3 reads failed, the last: HTTP 503" in queued[0].body


async def test_outside_the_change_window_the_step_waits_for_the_next_opening(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # A one-hour window opening two hours from now (team time), every day.
    local = datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(hours=2)
    opens = f"{local:%H}:00"
    closes = f"{(local + timedelta(hours=1)):%H}:00"
    remediation_settings(
        deps,
        remediation_approval_from_rung=0,
        remediation_change_windows=[{"start": opens, "end": closes}],
    )
    await add_user(deps, USER)
    async with (
        error_rate(healthy_from=2) as (site, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        handle = await start(ts_env, worker.task_queue, alert(url))
        waiting = await state_reaches(ts_env, handle, ("waiting_gate",))
        assert waiting.waiting is not None and waiting.waiting.what == "change_window"
        assert "next opens" in waiting.waiting.detail and waiting.attempts == []
        status = await handle.result()

    assert status.state == "resolved" and [a.rung for a in status.attempts] == [Rung.RESTART]
    assert status.attempts[0].at is not None and status.started_at is not None
    waited = status.attempts[0].at - status.started_at
    assert timedelta(hours=1) <= waited <= timedelta(hours=2, minutes=1)
    # Read again once the window opened (was it over meanwhile?), then the change's verify.
    assert site.reads == 2


@asynccontextmanager
async def waiting_with_no_worker(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> AsyncIterator[tuple[WorkflowHandle[Any, Any], Callable[[], Worker]]]:
    """A run waiting for approval whose worker stopped, and how to start one again: what is
    sent meanwhile reaches the run in one workflow task. No sticky cache, so the new worker
    gets the run's next task from the shared queue."""
    remediation_settings(deps, remediation_approval_from_rung=1, max_cached_workflows=0)
    await add_user(deps, USER)
    task_queue = unique("tq")
    async with error_rate(healthy_from=None) as (_, url):
        async with build_worker(ts_env.client, deps, task_queue=task_queue):
            handle = await start(ts_env, task_queue, alert(url))
            await state_reaches(ts_env, handle, ("waiting_approval",))
        yield handle, partial(build_worker, ts_env.client, deps, task_queue=task_queue)


async def test_two_answers_at_once_one_decides_and_the_other_is_refused(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    async with waiting_with_no_worker(ts_env, deps) as (handle, worker):
        # The owner refuses and the lead approves at the same moment: with no worker polling,
        # both answers reach the run in one workflow task.
        answers = [
            await answer_held(ts_env, deps, handle, who, "execute", approve=yes)
            for who, yes in ((USER, False), ("lead", True))
        ]
        async with worker():
            results = await asyncio.gather(*answers, return_exceptions=True)
            await handle.signal(GradedRemediationWorkflow.abort, AbortInput(by=USER))
            status = await handle.result()

    taken = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, WorkflowUpdateFailedError)]
    assert len(taken) == 1 and len(refused) == 1, results
    assert "already answered" in str(refused[0].cause)
    assert [(a.approver, a.approve) for a in status.approvals] == [
        (taken[0].approver, taken[0].approve)
    ]
    async with deps.db.session() as session:
        records = await AuditRepository(session).list(subject=status.run_key, action="approval")
    assert [(r.actor, r.detail["approve"]) for r in records] == [
        (taken[0].approver, taken[0].approve)
    ]


async def test_a_copy_of_a_doors_answer_sent_in_temporal_with_its_token_is_not_verified(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # The Web UI shows the door's update, its token too: a copy sent while the run still read
    # the original was verified by the door's record as well (one record, any number of copies).
    async with waiting_with_no_worker(ts_env, deps) as (handle, worker):
        # With no worker polling, the door's refusal and its copy reach the run in one task.
        refusal = ApprovalInput(
            approver=USER, approver_permission="dry_run", approve=False, reason="freeze"
        )
        sent = await as_door(deps, handle, refusal, Rung.RESTART)
        answers = []
        for update in ("door", "copy"):
            answers.append(
                asyncio.create_task(
                    handle.execute_update(GradedRemediationWorkflow.approve, sent, id=update)
                )
            )
            await admitted(ts_env, handle, update)
        async with worker():
            results = await asyncio.gather(*answers, return_exceptions=True)
            status = await handle.result()

    taken = [r for r in results if isinstance(r, ApprovalDecision)]
    refused = [r for r in results if isinstance(r, WorkflowUpdateFailedError)]
    assert len(taken) == 1 and len(refused) == 1, results
    assert str(refused[0].cause) == (
        "refusal sent in Temporal, not through ambient-ops: the sender is not verified (it gave "
        "the name 'ops')"
    )
    assert status.state == "handed_over" and "ops refused rung 1: freeze" in status.outcome
    assert sent.token and await audit_quoting(deps, sent.token) == []
    async with deps.db.session() as session:
        rows = await AuditRepository(session).list(subject=status.run_key)
    assert sorted((r.action, r.actor) for r in rows if r.action.startswith("approv")) == [
        ("approval", USER),
        ("approval_unverified", UNVERIFIED),
        ("approve", USER),
    ]


async def test_a_database_that_refuses_writes_for_a_while_delays_the_run_and_does_not_fail_it(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, USER)
    tried: list[str] = []

    def refuse_three(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("INSERT INTO audit_log") and len(tried) < 4:
            tried.append(statement)
            if len(tried) == 4:  # the old policy's three tries are over: writes pass again
                conn.exec_driver_sql("DROP TRIGGER hiccup")

    async with (
        error_rate(healthy_from=2) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        handle = await start(ts_env, worker.task_queue, alert(url))
        await state_reaches(ts_env, handle, ("waiting_approval",))
        answer = ApprovalInput(approver=USER, approver_permission="dry_run", approve=True)
        answer = await as_door(deps, handle, answer)
        # The audit log refuses every write (as a locked or read-only database would) while
        # the approval is recorded; the run used to fail after the third try.
        # In a thread: the worker's write turns run in this event loop, so a blocking wait
        # for the write lock here would hold the lock's owner still (locked after 5 s).
        with closing(
            sqlite3.connect(
                deps.settings.data_dir / "ambient.db",
                check_same_thread=False,
                isolation_level=None,
            )
        ) as hiccup:
            await asyncio.to_thread(
                hiccup.execute,
                "CREATE TRIGGER hiccup BEFORE INSERT ON audit_log "
                "BEGIN SELECT RAISE(ABORT, 'the database refuses writes'); END",
            )
        event.listen(deps.db.engine.sync_engine, "before_cursor_execute", refuse_three)
        try:
            await handle.execute_update(GradedRemediationWorkflow.approve, answer)
            status = await handle.result()
        finally:
            event.remove(deps.db.engine.sync_engine, "before_cursor_execute", refuse_three)

    # Recorded at the fourth try, not failed after the third.
    assert len(tried) == 4
    cleared = "a dry run, nothing was changed: the alert cleared at rung 1 (restart)"
    assert status.state == "resolved" and status.outcome == cleared
    actions = await audit_actions(deps, status.run_key)
    assert actions.count("approval") == 1 and actions[-1] == "finished"


async def test_a_database_that_refuses_the_verifications_write_for_a_while_does_not_hand_over(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # An executed change's verification writes the breakers (a dry run's changed nothing).
    deps.executors = {"dry_run": DryRunExecutor(), "kubernetes": RecordingExecutor()}
    remediation_settings(deps, remediation_approval_from_rung=6, remediation_executor="kubernetes")
    await add_user(deps, USER, permission="execute")
    tried: list[str] = []

    def refuse_three(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("INSERT INTO remediation_breakers"):
            tried.append(statement)
            if len(tried) == 4:  # the old policy's three tries are over: writes pass again
                conn.exec_driver_sql("DROP TRIGGER breaker_hiccup")

    # Only a verification writes the breakers: they refuse every write until the fourth try.
    with closing(sqlite3.connect(deps.settings.data_dir / "ambient.db")) as hiccup:
        hiccup.execute(
            "CREATE TRIGGER breaker_hiccup BEFORE INSERT ON remediation_breakers "
            "BEGIN SELECT RAISE(ABORT, 'the database refuses writes'); END"
        )
        hiccup.commit()
    event.listen(deps.db.engine.sync_engine, "before_cursor_execute", refuse_three)
    try:
        async with (
            error_rate(healthy_from=1) as (_, url),
            running_worker(ts_env.client, deps) as worker,
        ):
            handle = await start(ts_env, worker.task_queue, alert(url), mode="execute")
            status = await handle.result()
    finally:
        event.remove(deps.db.engine.sync_engine, "before_cursor_execute", refuse_three)

    # Verified at the fourth try, not handed over "could not be verified" after the third.
    assert len(tried) == 4
    assert status.state == "resolved" and status.outcome == "resolved at rung 1 (restart)"


async def test_a_run_started_under_an_older_id_shows_the_fingerprint_of_its_own_id(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A run started before the id named the workload (its id hashed source and metric too)
    showed the new hash as its fingerprint: /remediations/{fingerprint} found no such run."""
    remediation_settings(deps, remediation_approval_from_rung=0)
    await add_user(deps, USER, permission="none")
    older = f"remediation/{unique('older')}"
    async with (
        error_rate(healthy_from=None) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        subject = alert(url)
        handle = await ts_env.client.start_workflow(
            GradedRemediationWorkflow.run,
            RemediationInput(alert=subject, user=USER, mode="execute"),
            id=older,
            task_queue=worker.task_queue,
            search_attributes=search_attributes(USER, subject.cluster_id),
        )
        status = await handle.result()

    assert status.remediation_id == older
    assert f"remediation/{status.fingerprint}" == older


class HeldCheckpointExecutor(RecordingExecutor):
    """Its second checkpoint (rung 2's) is read until released: a slow cluster."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.reading, self.release = asyncio.Event(), asyncio.Event()

    async def checkpoint(self, target: Any) -> Any:
        self.reads += 1
        if self.reads == 2:
            self.reading.set()
            await self.release.wait()
        return await super().checkpoint(target)


async def test_an_abort_while_a_rungs_checkpoint_is_read_stops_that_rungs_change(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Aborted while rung 2's checkpoint was read from a slow cluster: the run went on to
    scale the Deployment out, then ended "aborted"."""
    executor = HeldCheckpointExecutor()
    deps.executors = {"dry_run": DryRunExecutor(), "kubernetes": executor}
    remediation_settings(
        deps,
        remediation_approval_from_rung=0,
        remediation_executor="kubernetes",
        remediation_cluster_cooldown_seconds=0,  # rung 2 at once after rung 1's change
    )
    await add_user(deps, USER, permission="execute")
    async with (
        error_rate(healthy_from=None) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        # No settle wait: this test waits on the executor, not on the run (no time skipped).
        subject = alert(url, settle_seconds=0)
        handle = await start(ts_env, worker.task_queue, subject, mode="execute")
        await asyncio.wait_for(executor.reading.wait(), HANG)
        await handle.signal(GradedRemediationWorkflow.abort, AbortInput(by=USER, reason="mine"))
        await signal_taken(handle)
        executor.release.set()
        status = await handle.result()
        await save_history(handle, "graded_remediation_aborted_at_checkpoint")

    assert status.state == "aborted", status.outcome
    assert [s.rung for s in executor.steps] == [Rung.RESTART]  # no scale-out
    assert [(a.rung, a.skipped_reason) for a in status.attempts][-1] == (
        Rung.SCALE_OUT,
        "aborted before its change",
    )


@pytest.mark.devserver
async def test_a_slow_first_change_leaves_the_opening_task_after_one_try_and_the_run_answers(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # A slow API server (or one answering 503: a change is tried up to 8 times, minutes): the
    # first rung's change made in the opening's workflow task kept that task open, and the
    # server holds every query of the run until the task ends (or the SDK's heartbeat of it,
    # at 80 % of its timeout). get_remediation then said the worker was silent, and the run's
    # state stayed "scoring", while the worker was changing the workload. Now the task tries
    # the change once (FIRST_TRY), then a regular activity goes on with it.
    remediation_settings(deps)
    await add_user(deps, USER)
    entries: list[asyncio.Event] = [asyncio.Event(), asyncio.Event()]
    release = asyncio.Event()

    class SlowCluster(DryRunExecutor):
        async def apply(self, step: StepRequest) -> StepResult:
            next(e for e in entries if not e.is_set()).set()
            await release.wait()
            return await super().apply(step)

    deps.executors = {"dry_run": SlowCluster(), "kubernetes": RecordingExecutor()}
    async with remediations_on_dev(dev_env, deps, healthy_from=1) as (url, _, remediations):
        started = await remediations.start(USER, alert(url, settle_seconds=0), mode="dry_run")
        handle = dev_env.client.get_workflow_handle(
            started.remediation_id, result_type=RemediationStatus
        )
        try:
            # The try in the task given up, the regular activity makes the change.
            await asyncio.wait_for(entries[1].wait(), 60)
            view = await remediations.get(USER, started.remediation_id)
        finally:
            release.set()
        status = await handle.result()
        history = await handle.fetch_history()

    assert view.unanswered == ""
    assert view.state == "applying"
    assert [a.rung for a in view.attempts] == [Rung.RESTART]
    assert status.state == "resolved"
    assert [a.rung for a in status.attempts] == [Rung.RESTART]
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert scheduled.count("apply_remediation_step") == 1


async def test_a_dry_run_first_change_waits_out_a_busy_api_server_not_planning_from_the_alert(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # The cluster's plan for the restart meets a 503 once (an API server restarting). The
    # opening task's one try of the change is not its last: the regular activity's retries
    # wait the 503 out, and the dry run reports the cluster's plan, not one "from the alert".
    class BusyOnceCluster:
        def __init__(self) -> None:
            self.tries = 0

        async def apply(self, step: StepRequest) -> StepResult:
            self.tries += 1
            if self.tries == 1:
                raise KubeUnavailableError("rung 1: 503 the apiserver is shutting down")
            return StepResult(applied=False, detail="dry run: would restart (the cluster's plan)")

    cluster = BusyOnceCluster()
    executor = DryRunExecutor()
    executor._kube = cluster  # type: ignore[assignment]  # the cluster's answers, as given
    deps.executors = {"dry_run": executor, "kubernetes": RecordingExecutor()}
    remediation_settings(deps, remediation_approval_from_rung=0)
    await add_user(deps, USER)
    async with (
        error_rate(healthy_from=1) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        status = await (await start(ts_env, worker.task_queue, alert(url))).result()

    assert cluster.tries == 2
    assert [(a.rung, a.detail) for a in status.attempts] == [
        (Rung.RESTART, "dry run: would restart (the cluster's plan)")
    ]


async def _approved_after_it_cleared(
    env: WorkflowEnvironment, deps: WorkerDeps, queue: str, site: Any, url: str
) -> WorkflowHandle[Any, Any]:
    """A run of "cart" waiting for rung 1's approval, its alert over meanwhile, then approved
    by "lead"."""
    handle = await start(env, queue, alert(url, workload="cart"), "execute")
    await state_reaches(env, handle, ("waiting_approval",))
    site.healthy_from = 0  # over while the approval waits
    answer = ApprovalInput(approver="lead", approver_permission="execute", approve=True)
    await handle.execute_update(
        GradedRemediationWorkflow.approve, await as_door(deps, handle, answer)
    )
    return handle


async def test_a_run_whose_alert_cleared_while_it_waited_gives_its_slot_back_and_says_so(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Ended resolved with no change after its approval wait, the run kept its gate's
    rate-limit slot (a second alert on the cluster waited an hour for a change nobody made)
    and told its user nothing (the inbox held only "Approval needed")."""
    deps.executors = {"dry_run": DryRunExecutor(), "kubernetes": RecordingExecutor()}
    remediation_settings(
        deps,
        remediation_approval_from_rung=1,
        remediation_cluster_cooldown_seconds=0,
        remediation_rate_limit_per_hour=1,
        remediation_executor="kubernetes",
    )
    await add_user(deps, USER, permission="execute")
    await add_user(deps, "lead", permission="execute")
    async with (
        error_rate(healthy_from=None) as (site, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        handle = await _approved_after_it_cleared(ts_env, deps, worker.task_queue, site, url)
        done = await handle.result()
    assert done.state == "resolved" and done.attempts == [], done
    async with deps.db.session() as session:
        held = (await session.execute(select(RemediationAction))).scalars().all()
        inbox = await InboxRepository(session).list(USER)
    assert held == [], [h.key for h in held]
    titles = [m.title for m in inbox]
    assert "Alert cleared: cls-test0001/prod/cart" in titles, titles


async def test_a_run_cancelled_as_it_says_its_alert_cleared_while_it_waited_closes_cancelled(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its message "Alert cleared" was pushed after its end was recorded, outside it: a
    Temporal cancel meanwhile cut the push and was dropped, no `cancelled` row, and the run
    closed Completed. Now it is pushed with its end, as a run resolved at a rung is: the
    cancel waits for it, is audited after the end, and the run closes Cancelled."""
    remediation_settings(
        deps, remediation_approval_from_rung=1, remediation_cluster_cooldown_seconds=0
    )
    await add_user(deps, USER, permission="execute")
    await add_user(deps, "lead", permission="execute")
    arrived, released = asyncio.Event(), asyncio.Event()
    store = inbox_channel.store

    async def held(session: Any, user: str, message: Any, *args: Any) -> Any:
        if message.title.startswith("Alert cleared"):
            arrived.set()
            await released.wait()
        return await store(session, user, message, *args)

    monkeypatch.setattr(inbox_channel, "store", held)
    async with (
        error_rate(healthy_from=None) as (site, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        handle = await _approved_after_it_cleared(ts_env, deps, worker.task_queue, site, url)
        await asyncio.wait_for(arrived.wait(), HANG)
        await handle.cancel()

        async def cancel_recorded() -> bool:  # before the push is let go
            asked = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED
            return asked in [e.event_type async for e in handle.fetch_history_events()]

        await eventually(cancel_recorded, "the cancel in the run's history")
        released.set()
        with pytest.raises(WorkflowFailureError) as closed:
            await asyncio.wait_for(handle.result(), HANG)
        described = await handle.describe()
        status, audit, _ = await run_ended(deps, handle)
    await save_history(handle, "remediation_cancelled_as_it_says_its_alert_cleared")
    assert isinstance(closed.value.cause, CancelledError), closed.value.cause
    assert described.status == WorkflowExecutionStatus.CANCELED
    assert status.state == "resolved", status.outcome
    async with deps.db.session() as session:
        inbox = await InboxRepository(session).list(USER)
    actions = [r.action for r in sorted(audit, key=lambda r: r.id)]
    assert actions.index("cancelled") > actions.index("finished"), actions
    assert "push_failed" not in actions, actions
    assert "Alert cleared: cls-test0001/prod/cart" in [m.title for m in inbox]


async def test_an_alert_that_cleared_behind_the_runs_isolation_does_not_end_the_wait(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """Rung 4 isolated the service, and its error rate fell because no traffic reached it:
    read again after rung 5's approval wait, that "cleared" ended the run resolved, the
    service left isolated. The approved rung goes on (its full rollback puts traffic back)."""
    api = KubeApi()
    api.add_deployment("prod", "checkout", "registry/checkout:v1", replicas=2)
    api.add_service("prod", "checkout", {"app": "checkout"})
    async with serve(api.app()) as base:
        path = tmp_path / "kubeconfig"
        path.write_text(yaml.safe_dump(kubeconfig({"cls-standin1": base})))
        remediation_settings(
            deps,
            remediation_approval_from_rung=5,
            remediation_executor="kubernetes",
            kubeconfig=path,
        )
        await add_user(deps, USER, permission="execute")
        await add_user(deps, "lead", permission="execute")
        async with (
            error_rate(healthy_from=None) as (site, url),
            running_worker(ts_env.client, deps) as worker,
        ):
            labels = {"tier": "critical", "user_facing": "true"}
            subject = alert(url, cluster_id="cls-standin1", labels=labels)
            handle = await start(ts_env, worker.task_queue, subject, mode="execute")
            seen = await state_reaches(ts_env, handle, ("waiting_approval",))
            assert seen.waiting is not None and seen.waiting.rung == Rung.FULL_ROLLBACK, seen
            site.healthy_from = 0  # no traffic reaches the isolated pods: the error rate falls
            answer = ApprovalInput(approver="lead", approver_permission="execute", approve=True)
            await handle.execute_update(
                GradedRemediationWorkflow.approve, await as_door(deps, handle, answer)
            )
            status = await handle.result()
        selector = api.services[("prod", "checkout")]["spec"]["selector"]
    assert "cleared while" not in status.outcome, status.outcome
    assert ISOLATION_LABEL not in selector, selector
    assert [a.rung for a in status.attempts][-1] == Rung.FULL_ROLLBACK, status.attempts


async def test_an_alert_cleared_while_a_later_rung_waited_names_the_change_made_before(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """Rung 1 restarted the Deployment; the alert cleared while rung 2 waited for approval:
    the Chinese push said no change at all had been made (没有做任何改动)."""
    api = KubeApi()
    api.add_deployment("prod", "checkout", "registry/checkout:v1", replicas=2)
    async with serve(api.app()) as base:
        path = tmp_path / "kubeconfig"
        path.write_text(yaml.safe_dump(kubeconfig({"cls-standin1": base})))
        remediation_settings(
            deps,
            remediation_approval_from_rung=2,
            remediation_executor="kubernetes",
            kubeconfig=path,
        )
        await add_user(deps, USER, permission="execute", language=Language.ZH)
        await add_user(deps, "lead", permission="execute")
        async with (
            error_rate(healthy_from=None) as (site, url),
            running_worker(ts_env.client, deps) as worker,
        ):
            subject = alert(url, cluster_id="cls-standin1")
            handle = await start(ts_env, worker.task_queue, subject, mode="execute")
            await state_reaches(ts_env, handle, ("waiting_approval",))
            site.healthy_from = 0
            answer = ApprovalInput(approver="lead", approver_permission="execute", approve=True)
            await handle.execute_update(
                GradedRemediationWorkflow.approve, await as_door(deps, handle, answer)
            )
            status = await handle.result()
    assert "cleared while rung 2" in status.outcome, status.outcome
    assert [(a.rung, a.applied) for a in status.attempts] == [(Rung.RESTART, True)]
    async with deps.db.session() as session:
        inbox = await InboxRepository(session).list(USER)
    [end] = [m for m in inbox if m.title.startswith("已修复")]
    assert "做过的改动是" in end.body and "未做改动" not in end.body, end.body
