"""An abort that reaches a run before its first climb, after the opening's workflow task that
made the first change was lost: the change stays the run's (its attempt, its slot, its audit).

The first rung's one try is a local activity in the opening's workflow task, whose marker the
history gets only when that task completes. A worker that stalls or dies after the try wrote
(a loaded CI host: the task timed out) leaves a history without it, and the next task runs the
run again from its start, an abort that came meanwhile read first."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import (
    HandleSignalInput,
    Interceptor,
    StartLocalActivityInput,
    Worker,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from activities.registry import build_activities
from ambient import temporal
from ambient.deps import WorkerDeps
from ambient.remediation.alerts import remediation_id
from ambient.remediation.ladder import Mode, Rung, StepRequest, WorkloadRef, step_key
from ambient.remediation.runs import AbortInput, Keyed, RemediationInput, RemediationStatus
from ambient.remediation.service import RemediationService
from ambient.remediation.storage import ActionLedger, append_entry, record_asked
from ambient.remediation.views import report_markdown
from ambient.storage.audit import AuditRepository
from ambient.storage.models import DiscussionMessage
from tests.conftest import unique
from tests.remediation.support import alert, error_rate
from tests.remediation.test_cluster import CLUSTER, _kubeconfig
from tests.remediation.test_cluster_edges import _checkout, _executing
from tests.remediation.test_workflow import USER
from tests.support.record import save_history
from tests.support.servers import HANG, serve
from tests.support.waits import ask, eventually
from workflows.registry import ALL_WORKFLOWS
from workflows.remediation import GradedRemediationWorkflow
from workflows.remediation_change import CANCELLED
from workflows.remediation_records import search_attributes

TASK_FAILED = EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
MAYBE = (
    "may have been made (no record says whether its first try ran): check deployment/prod/checkout"
)


class LosesTheOpening(Interceptor):
    """Fails a run's workflow task at the post that follows the first change (the opening's
    task, its first try made) until the run has heard an abort or a cancel: the task is lost
    after the change, as a worker's that stalls or dies there, and the history never holds the
    try. ``at`` the first try instead, the task is lost after the opening, nothing written."""

    def __init__(self, at: str = "post_to_discussion") -> None:
        self.at = at

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        at = self.at

        class Losing(WorkflowInboundInterceptor):
            heard = False

            def init(self, outbound: WorkflowOutboundInterceptor) -> None:
                inbound = self

                class Failing(WorkflowOutboundInterceptor):
                    def start_local_activity(
                        self, input: StartLocalActivityInput
                    ) -> workflow.ActivityHandle[Any]:
                        heard = inbound.heard or workflow.cancellation_reason() is not None
                        if input.activity == at and not heard:
                            raise RuntimeError("the worker lost this workflow task")
                        return super().start_local_activity(input)

                super().init(Failing(outbound))

            async def handle_signal(self, input: HandleSignalInput) -> None:
                self.heard = self.heard or input.signal == "abort"
                await super().handle_signal(input)

        return Losing


@pytest.mark.devserver
async def test_an_abort_read_before_the_first_climb_after_a_lost_opening_keeps_its_change(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """The opening's task restarted the Deployment (its one try) and was lost; the abort came
    before the task run again, which read it first: the run ended "before its first climb"
    with no attempt, gave the rate-limit slot back and said nothing of the restart made. Now it
    ends as an abort after a first change does: the restart is its attempt, the slot kept."""
    api = _checkout(tmp_path)
    async with serve(api.app()) as base:
        await _executing(deps, _kubeconfig(tmp_path, base), approval_from=0)
        async with error_rate(healthy_from=None) as (_, url):
            async with _lost_opening(dev_env, deps, url, LosesTheOpening()) as handle:
                assert [(c.kind, c.method) for c in api.writes()] == [("deployments", "PATCH")]
                run_key, status = await _aborted(deps, handle)
                # What users read (get_remediation, the page): the service's view.
                queue = (await handle.describe()).task_queue
                settings = deps.settings.model_copy(update={"temporal_task_queue": queue})
                view = await RemediationService(dev_env.client, settings, deps.db).get(
                    USER, handle.id
                )
                # Recorded: the abort after a lost opening replays (tests/histories).
                await save_history(handle, "remediation_aborted_after_a_lost_opening")
        async with deps.db.session() as session:
            audit = await AuditRepository(session).list(subject=run_key, limit=1000)
            slot = await ActionLedger(session).reserved(f"{run_key}#1")

    assert [(c.kind, c.method) for c in api.writes()] == [("deployments", "PATCH")]
    assert status.state == "aborted" and status.outcome.startswith("aborted by"), status.outcome
    assert [(a.rung, a.applied, a.skipped_reason) for a in status.attempts] == [
        (Rung.RESTART, True, None)
    ]
    restart = status.attempts[0]
    assert restart.detail.startswith("restart deployment prod/checkout"), restart.detail
    # The restart's time is its action row's, not the abort's task's (that came later).
    (made,) = [r for r in audit if r.action == "action"]
    assert restart.at == made.created_at and restart.verified is None
    assert view.state == "aborted" and view.outcome == status.outcome, view.outcome
    assert [(a.rung, a.applied, a.at) for a in view.attempts] == [
        (Rung.RESTART, True, made.created_at)
    ]
    (row,) = [line for line in report_markdown(view).splitlines() if line.startswith("| 1 | ")]
    assert "restart deployment" in row and "not reached" not in row, row
    assert slot is not None  # the restart was made: it counts
    actions = [r.action for r in audit]
    assert actions.count("action") == 1 and actions.count("aborted") == 1, actions
    assert [r.detail["state"] for r in audit if r.action == "finished"] == ["aborted"]
    assert "hand_over" not in actions


@contextlib.asynccontextmanager
async def _lost_opening(
    env: WorkflowEnvironment,
    deps: WorkerDeps,
    url: str,
    losing: LosesTheOpening,
    mode: Mode = "execute",
) -> AsyncIterator[WorkflowHandle[Any, RemediationStatus]]:
    """A run on a worker that ``losing`` makes lose its opening's task, once it was lost."""
    queue = unique("tq")
    worker = Worker(
        env.client,
        task_queue=queue,
        workflows=ALL_WORKFLOWS,
        activities=build_activities(deps),
        workflow_runner=temporal.workflow_runner(),
        interceptors=[losing],
        build_id=temporal.BUILD_ID,
    )
    async with worker:
        subject = alert(url, cluster_id=CLUSTER, settle_seconds=0)
        handle: WorkflowHandle[Any, RemediationStatus] = await env.client.start_workflow(
            GradedRemediationWorkflow.run,
            RemediationInput(alert=subject, user=USER, mode=mode),
            id=f"{remediation_id(subject)}-{unique('t')}",
            task_queue=queue,
            search_attributes=search_attributes(USER, subject.cluster_id),
        )
        await eventually(lambda: _task_failed(handle), "the opening's task lost")
        yield handle


async def _aborted(
    deps: WorkerDeps, handle: WorkflowHandle[Any, RemediationStatus]
) -> tuple[str, RemediationStatus]:
    """The run aborted as the abort door sends it (its record first, then the signal), ended:
    its run key and status."""
    run_key = f"{handle.id}@{handle.first_execution_run_id}"
    async with deps.db.writing() as session:
        token = await record_asked(session, run_key, USER, {"reason": "stop"}, "abort")
    await handle.signal(
        GradedRemediationWorkflow.abort, AbortInput(by=USER, reason="stop", token=token)
    )
    await asyncio.wait_for(handle.result(), HANG)
    return run_key, await ask(handle, "status", result_type=RemediationStatus)


async def _task_failed(handle: WorkflowHandle[Any, Any]) -> bool:
    return any([e.event_type == TASK_FAILED async for e in handle.fetch_history_events()])


@pytest.mark.devserver
@pytest.mark.parametrize("lost", ["after_its_change", "before_its_change", "after_a_dry_run"])
async def test_a_cancel_read_before_the_opening_s_answer_says_what_that_opening_did(
    lost: str, dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """A cancel in Temporal (not an abort) in the same window: the task run again is cancelled
    while it opens, before it reads open_remediation's answer. The run ended with no attempt
    and its `cancelled` row's `written` empty though the restart was made. Now the run reads
    what its opening recorded: the restart made is its attempt and its slot. A slot held with
    no change recorded stays counted (its try may have written, its answer lost: nothing tells
    it from a try never made); one a dry run recorded as nothing sent is given back."""
    api = _checkout(tmp_path)
    before, dry = lost == "before_its_change", lost == "after_a_dry_run"
    async with serve(api.app()) as base:
        await _executing(deps, _kubeconfig(tmp_path, base), approval_from=0)
        async with error_rate(healthy_from=None) as (_, url):
            losing = LosesTheOpening("apply_remediation_step" if before else "post_to_discussion")
            mode = "dry_run" if dry else "execute"
            async with _lost_opening(dev_env, deps, url, losing, mode) as handle:
                run_key = f"{handle.id}@{handle.first_execution_run_id}"
                async with deps.db.session() as session:
                    held = await ActionLedger(session).reserved(f"{run_key}#1")
                # The lost opening reserved the first rung's slot (a dry run's try gave it back).
                assert (held is None) == dry
                writes = [] if before or dry else [("deployments", "PATCH")]
                assert [(c.kind, c.method) for c in api.writes()] == writes
                await handle.cancel()
                with pytest.raises(WorkflowFailureError) as closed:
                    await asyncio.wait_for(handle.result(), HANG)
                status = await ask(handle, "status", result_type=RemediationStatus)
                if lost == "after_its_change":
                    # Recorded: the cancel after a lost opening replays (tests/histories).
                    await save_history(handle, "remediation_cancelled_after_a_lost_opening")
        async with deps.db.session() as session:
            audit = await AuditRepository(session).list(subject=run_key, limit=1000)
            slot = await ActionLedger(session).reserved(f"{run_key}#1")

    assert isinstance(closed.value.cause, CancelledError)
    assert [(c.kind, c.method) for c in api.writes()] == writes
    # A dry run's cancel says it was a dry run.
    said = (
        f"a dry run, nothing was changed: {CANCELLED}" if lost == "after_a_dry_run" else CANCELLED
    )
    assert (status.state, status.outcome) == ("aborted", said)
    (cancelled,) = [r for r in audit if r.action == "cancelled"]
    assert [r.detail["state"] for r in audit if r.action == "finished"] == ["aborted"]
    if before:
        # Its try may have written before it was lost (a stalled worker's still may): said so.
        assert [(a.rung, a.applied, a.maybe_applied) for a in status.attempts] == [
            (Rung.RESTART, False, True)
        ]
        assert cancelled.detail["written"] == [f"rung 1 (restart): {MAYBE}"]
        assert slot is not None  # not known unmade: counted
        return
    if dry:
        assert [(a.rung, a.applied, a.mode) for a in status.attempts] == [
            (Rung.RESTART, False, "dry_run")
        ]
        assert cancelled.detail["written"] == []
        assert slot is None  # nothing sent: the cluster's hour does not count it
        return
    assert [(a.rung, a.applied, a.skipped_reason) for a in status.attempts] == [
        (Rung.RESTART, True, None)
    ]
    restart = status.attempts[0]
    (made,) = [r for r in audit if r.action == "action"]
    assert restart.detail.startswith("restart deployment prod/checkout"), restart.detail
    assert restart.at == made.created_at
    assert cancelled.detail["written"] == [f"rung 1 (restart): {restart.detail}"]
    assert slot is not None  # the restart was made: it counts


@pytest.mark.devserver
async def test_an_abort_after_a_lost_dry_run_opening_gives_its_slot_back(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """A dry run's first try records "nothing sent" and gives its slot back; its task lost, the
    opening run again with the abort reserved the slot anew, and the run kept it as a change
    made: counted against the cluster's hour for a change nobody made. It is given back now."""
    api = _checkout(tmp_path)
    async with serve(api.app()) as base:
        await _executing(deps, _kubeconfig(tmp_path, base), approval_from=0)
        async with error_rate(healthy_from=None) as (_, url):
            async with _lost_opening(dev_env, deps, url, LosesTheOpening(), "dry_run") as handle:
                run_key, status = await _aborted(deps, handle)
        async with deps.db.session() as session:
            slot = await ActionLedger(session).reserved(f"{run_key}#1")

    assert api.writes() == []
    assert status.state == "aborted", status.outcome
    assert [(a.rung, a.applied, a.mode) for a in status.attempts] == [
        (Rung.RESTART, False, "dry_run")
    ]
    assert slot is None  # nothing sent: the cluster's hour does not count it


@pytest.mark.devserver
@pytest.mark.parametrize("mode", ["execute", "dry_run"])
async def test_an_abort_after_an_opening_lost_at_its_first_try_says_the_change_may_be_made(
    mode: Mode, dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """The opening's task was lost as its first try began (a worker that stalls there may
    still write when it wakes); the abort came before the task ran again. The run gave the
    slot back and ended with no attempt, "before its change", though the try's write was
    unknown. Now the first rung is an attempt that may have been made, with what to check,
    its slot counted, its step posted. A dry run sends nothing: its slot is given back."""
    api = _checkout(tmp_path)
    async with serve(api.app()) as base:
        await _executing(deps, _kubeconfig(tmp_path, base), approval_from=0)
        async with error_rate(healthy_from=None) as (_, url):
            losing = LosesTheOpening("apply_remediation_step")
            async with _lost_opening(dev_env, deps, url, losing, mode) as handle:
                run_key = f"{handle.id}@{handle.first_execution_run_id}"
                async with deps.db.session() as session:
                    assert await ActionLedger(session).reserved(f"{run_key}#1") is not None
                _, status = await _aborted(deps, handle)
                if mode == "execute":
                    # Recorded: the abort after a lost first try replays (tests/histories).
                    await save_history(handle, "remediation_aborted_after_a_lost_first_try")
        async with deps.db.session() as session:
            audit = await AuditRepository(session).list(subject=run_key, limit=1000)
            slot = await ActionLedger(session).reserved(f"{run_key}#1")

    assert api.writes() == []
    aborted = "aborted by" if mode == "execute" else "a dry run, nothing was changed: aborted by"
    assert status.state == "aborted" and status.outcome.startswith(aborted), status.outcome
    actions = [r.action for r in audit]
    assert "action" not in actions and actions.count("aborted") == 1, actions
    if mode == "dry_run":
        assert status.attempts == [] and slot is None  # nothing sent: not counted
        return
    assert [(a.rung, a.applied, a.maybe_applied, a.detail) for a in status.attempts] == [
        (Rung.RESTART, False, True, MAYBE)
    ]
    assert slot is not None  # not known unmade: counted
    async with deps.db.session() as session:
        posts = await session.scalars(
            select(DiscussionMessage).where(DiscussionMessage.from_id == "remediation")
        )
        steps = [p.content for p in posts if "step" in p.tags]
    # Its discussion hears it as a person reads the attempt (the words escaped as Markdown).
    assert len(steps) == 1 and "may have been applied" in steps[0], steps
    assert "check deployment/prod/checkout" in steps[0], steps


async def test_a_try_a_stalled_worker_makes_after_its_run_ended_sends_nothing(
    deps: WorkerDeps, tmp_path: Path
) -> None:
    """A worker that stalled in the opening's task (not died) wakes after the run went on
    without it and ended (aborted, "may have been made"): its first try restarted the
    Deployment after the run's end. A try of a run that recorded its end sends nothing now,
    refused for good as not sent; a live run's same try restarts it."""
    api = _checkout(tmp_path)
    async with serve(api.app()) as base:
        await _executing(deps, _kubeconfig(tmp_path, base), approval_from=0)
        (apply,) = [a for a in build_activities(deps) if a.__name__ == "apply_remediation_step"]
        target = WorkloadRef(cluster_id=CLUSTER, namespace="prod", name="checkout")

        def step(run_key: str) -> StepRequest:
            return StepRequest(
                remediation_id=run_key,
                rung=Rung.RESTART,
                target=target,
                mode="execute",
                key=step_key(run_key, Rung.RESTART),
                restarted_at="2026-12-03T09:00:00Z",
            )

        ended, live = f"{unique('remediation/ended')}@1", f"{unique('remediation/live')}@1"
        async with deps.db.writing() as session:
            keyed = Keyed(run_key=ended, key=f"{ended}/finished")
            await append_entry(session, keyed, "finished", {"state": "aborted"})
        with pytest.raises(ApplicationError) as refused:
            await ActivityEnvironment().run(apply, step(ended))
        unsent = api.writes()
        made = await ActivityEnvironment().run(apply, step(live))

    assert unsent == []
    assert refused.value.type == "RunEnded" and refused.value.non_retryable
    assert tuple(refused.value.details) == (False,)  # not sent: what the run's `wrote` reads
    assert made.applied and [(c.kind, c.method) for c in api.writes()] == [("deployments", "PATCH")]
