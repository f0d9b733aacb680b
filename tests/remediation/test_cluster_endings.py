"""A run's end recorded whole: a cancel in Temporal that comes while the run records its end,
and an abort heard as the run ended otherwise (resolved, refused)."""

from __future__ import annotations

import asyncio
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from temporalio.api.enums.v1 import EventType, WorkflowExecutionStatus
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import CancelledError
from temporalio.testing import WorkflowEnvironment

import workflows.remediation_records
from ambient.deps import WorkerDeps
from ambient.remediation.runs import AbortInput, RemediationStatus
from ambient.remediation.service import RemediationService
from ambient.remediation.storage import UNVERIFIED, RemediationRepository
from ambient.remediation.views import audit_action
from ambient.storage.users import UserRepository
from tests.remediation.support import (
    CANCEL_REQUESTED,
    ErrorRate,
    HeldAnswer,
    error_rate,
    refusing,
    run_ended,
    signal_taken,
    some,
    state_reaches,
    taken_after,
)
from tests.remediation.test_cluster import _kubeconfig
from tests.remediation.test_cluster_abort_cancel import _cluster
from tests.remediation.test_cluster_cancel import Queue
from tests.remediation.test_cluster_edges import _checkout, _executing
from tests.remediation.test_workflow import USER
from tests.support.record import save_history
from tests.support.servers import HANG, serve
from tests.support.waits import eventually
from workflows.remediation import GradedRemediationWorkflow

# A short workflow task: the server passes a cancel or signal on while the run's local
# activity (a write retried in the task) still runs.
SHORT_TASK = timedelta(seconds=2)


def _released() -> HeldAnswer:
    """No answer held: the cluster answers every write at once."""
    answered = HeldAnswer()
    answered.release.set()
    return answered


@pytest.mark.devserver
async def test_a_run_cancelled_while_it_records_its_end_records_it_whole(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """Aborted as it started, the run records its end (`aborted` and `finished` audited, then
    its row) and is cancelled in Temporal while the database refuses that row's write. The
    cancel cut the write short: the audit said the run finished, its row stayed `planned`
    until a read of the run found it closed by Temporal."""
    queue = Queue(dev_env, deps)
    async with _cluster(deps, tmp_path, HeldAnswer(), refused=0) as (api, url):
        async with queue.runs():
            final = "WHEN NEW.state = 'aborted'"
            async with refusing(deps, "UPDATE", "remediations", final) as tried:
                handle = await queue.start(url, SHORT_TASK, AbortInput(by=USER))
                await eventually(partial(some, tried), "the row's write refused")
                await handle.cancel()
                await taken_after(handle, CANCEL_REQUESTED, "the run took the cancel")
            with pytest.raises(WorkflowFailureError) as closed:
                await asyncio.wait_for(handle.result(), HANG)
            await save_history(handle, "remediation_cancelled_while_it_records_its_end")
            status, audit, _ = await run_ended(deps, handle)
        async with deps.db.session() as session:
            row = await RemediationRepository(session).get(status.run_key)

    assert isinstance(closed.value.cause, CancelledError)
    assert api.writes() == []
    assert status.state == "aborted", status.outcome
    assert row is not None
    assert (row.state, row.finished_at is not None) == ("aborted", True)
    assert row.detail["outcome"] == status.outcome
    assert [r.detail["state"] for r in audit if r.action == "finished"] == ["aborted"]
    assert [r.actor for r in audit if r.action == "aborted"] == [UNVERIFIED]
    # The cancel audited once, after the end it let finish.
    assert [
        (r.actor, r.detail["state"], r.detail["after"]) for r in audit if r.action == "cancelled"
    ] == [(UNVERIFIED, "aborted", "its end")]


@pytest.mark.devserver
async def test_a_run_cancelled_while_its_end_cannot_be_recorded_still_closes_cancelled(
    dev_env: WorkflowEnvironment,
    deps: WorkerDeps,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database refuses the run's row, and goes on refusing it after the cancel until the
    end's writes spent their retries (an hour; here the first refusal after the cancel, told
    apart as an IntegrityError): the cancel waited for them, and the run still closes
    Cancelled, not Failed by the write's error (a read of the run writes its row)."""
    record = workflows.remediation_records.RECORD_RETRY
    quick = record.__class__(
        initial_interval=timedelta(milliseconds=50),
        maximum_interval=timedelta(milliseconds=200),
        non_retryable_error_types=[*(record.non_retryable_error_types or []), "IntegrityError"],
    )
    monkeypatch.setattr(workflows.remediation_records, "RECORD_RETRY", quick)
    queue = Queue(dev_env, deps)
    async with _cluster(deps, tmp_path, HeldAnswer(), refused=0) as (_, url):
        async with queue.runs():
            final = "WHEN NEW.state = 'aborted'"
            for_now = refusing(deps, "UPDATE", "remediations", final, for_now=True)
            tried = await for_now.__aenter__()
            handle = await queue.start(url, SHORT_TASK, AbortInput(by=USER))
            await eventually(partial(some, tried), "the row's write refused")
            await handle.cancel()
            await taken_after(handle, CANCEL_REQUESTED, "the run took the cancel")
            async with refusing(deps, "UPDATE", "remediations", final):
                await for_now.__aexit__(None, None, None)  # refused for good from here
                with pytest.raises(WorkflowFailureError) as closed:
                    await asyncio.wait_for(handle.result(), HANG)
            described = await handle.describe()
            _, audit, _ = await run_ended(deps, handle)

    assert isinstance(closed.value.cause, CancelledError), closed.value.cause
    assert described.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CANCELED
    assert [r.detail["state"] for r in audit if r.action == "finished"] == ["aborted"]
    # Its end not written whole: no cancel audited after it (_finish). A cancel that a slow
    # machine let come during the abort's push is audited on its own, after the end's writes
    # (_hand_over's "each on its own"): the only cancelled row there may be, naming the push.
    cancelled = [r.detail for r in audit if r.action == "cancelled"]
    assert all("push" in detail for detail in cancelled), cancelled


@pytest.mark.devserver
async def test_a_run_cancelled_while_its_abort_is_audited_audits_it_once(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """Aborted as it started, the run audits the abort while the database refuses it, and is
    cancelled meanwhile: its cancel's end audits the abort the run heard, once."""
    queue = Queue(dev_env, deps)
    async with _cluster(deps, tmp_path, HeldAnswer(), refused=0) as (api, url):
        async with queue.runs():
            aborted = "WHEN NEW.action = 'aborted'"
            async with refusing(deps, "INSERT", "audit_log", aborted) as tried:
                handle = await queue.start(url, SHORT_TASK, AbortInput(by=USER))
                await eventually(partial(some, tried), "the abort's audit refused")
                await handle.cancel()
                await taken_after(handle, CANCEL_REQUESTED, "the run took the cancel")
            with pytest.raises(WorkflowFailureError) as closed:
                await asyncio.wait_for(handle.result(), HANG)
            _, audit, _ = await run_ended(deps, handle)

    assert isinstance(closed.value.cause, CancelledError)
    assert api.writes() == []
    assert [r.actor for r in audit if r.action == "aborted"] == [UNVERIFIED]
    assert [r.actor for r in audit if r.action == "cancelled"] == [UNVERIFIED]
    assert [r.detail["state"] for r in audit if r.action == "finished"] == ["aborted"]


@pytest.mark.devserver
async def test_a_resolved_run_cancelled_while_it_records_its_end_audits_the_cancel(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """Resolved at its first rung, the run is cancelled while it records its end (the
    database refuses its row for a while): its end recorded whole, resolved, and the cancel
    audited after it (every action is)."""
    queue = Queue(dev_env, deps)
    async with _cluster(deps, tmp_path, _released(), refused=0, healthy_from=1) as (api, url):
        async with queue.runs(), queue.acts():
            final = "WHEN NEW.state = 'resolved'"
            async with refusing(deps, "UPDATE", "remediations", final) as tried:
                handle = await queue.start(url, SHORT_TASK)
                await eventually(partial(some, tried), "the row's write refused")
                await handle.cancel()
                await taken_after(handle, CANCEL_REQUESTED, "the run took the cancel")
            with pytest.raises(WorkflowFailureError) as closed:
                await asyncio.wait_for(handle.result(), HANG)
            status, audit, _ = await run_ended(deps, handle)
        async with deps.db.session() as session:
            row = await RemediationRepository(session).get(status.run_key)

    assert isinstance(closed.value.cause, CancelledError)
    assert [(c.kind, c.method) for c in api.writes()] == [("deployments", "PATCH")]
    assert row is not None and (row.state, row.resolved_rung) == ("resolved", 1)
    assert [r.detail["state"] for r in audit if r.action == "finished"] == ["resolved"]
    assert [
        (r.actor, r.detail["state"], r.detail["after"]) for r in audit if r.action == "cancelled"
    ] == [(UNVERIFIED, "resolved", "its end")]
    # Said as what it was: the run had ended, not a cancel that stopped it.
    (cancelled,) = [r for r in audit if r.action == "cancelled"]
    assert audit_action(cancelled.action, cancelled.detail) == "cancelled after the run ended"


@dataclass
class HeldFirst:
    """The first request held until ``release``: a slow metric read."""

    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def wrap(self, app: Any) -> Any:
        async def held(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and not self.arrived.is_set():
                self.arrived.set()
                await self.release.wait()
            await app(scope, receive, send)

        return held


@pytest.mark.devserver
async def test_an_abort_heard_while_the_change_is_verified_is_audited_too_late(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """Aborted while its first change's verification read the metric (slow), which found
    the alert cleared: the run ended resolved, and the abort it heard is audited once, said
    to have come too late to stop it."""
    api, held = _checkout(tmp_path), HeldFirst()
    queue = Queue(dev_env, deps)
    async with serve(api.app()) as base, serve(held.wrap(ErrorRate(healthy_from=1).app())) as m:
        await _executing(deps, _kubeconfig(tmp_path, base), approval_from=0)
        async with queue.runs(), queue.acts():
            handle = await queue.start(f"{m}/metrics", SHORT_TASK)
            await asyncio.wait_for(held.arrived.wait(), HANG)
            await handle.signal(GradedRemediationWorkflow.abort, AbortInput(by=USER))
            await signal_taken(handle)
            held.release.set()
            status: RemediationStatus = await asyncio.wait_for(handle.result(), HANG)
            _, audit, _ = await run_ended(deps, handle)

    assert status.state == "resolved", status.outcome
    (aborted,) = [r for r in audit if r.action == "aborted"]
    assert (aborted.actor, aborted.detail["ended"]) == (UNVERIFIED, "resolved")
    assert audit_action(aborted.action, aborted.detail) == "aborted too late to stop it"


@pytest.mark.devserver
async def test_an_abort_heard_while_a_rungs_permission_is_checked_is_audited_too_late(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """Rung 1 did not clear the alert; the owner's permission was revoked, and the run was
    aborted while rung 2's permission check was retried (the database refusing its record):
    the run ended refused (handed over: rung 1 had changed the cluster), and the abort it
    heard is audited once, said to have come too late to stop it."""
    queue = Queue(dev_env, deps)
    async with _cluster(deps, tmp_path, _released(), refused=0) as (_, url):
        async with queue.runs():
            second = "WHEN NEW.action = 'permission' AND json_extract(NEW.detail, '$.rung') = 2"
            async with refusing(deps, "INSERT", "audit_log", second) as tried:
                handle = await queue.start(url, SHORT_TASK)
                await eventually(partial(some, tried), "rung 2's permission check refused")
                async with deps.db.session() as session:
                    owner = await UserRepository(session).get(USER)
                    assert owner is not None
                    owner.rollback_permission = "none"
                    await session.commit()
                await handle.signal(GradedRemediationWorkflow.abort, AbortInput(by=USER))
                await signal_taken(handle)
            async with queue.acts():  # rung 1 changed the cluster: the refusal hands over
                status: RemediationStatus = await asyncio.wait_for(handle.result(), HANG)
            _, audit, _ = await run_ended(deps, handle)

    assert status.state == "refused", status.outcome
    assert [a.action for a in audit].count("hand_over") == 1
    (aborted,) = [r for r in audit if r.action == "aborted"]
    assert (aborted.actor, aborted.detail["ended"]) == (UNVERIFIED, "refused")
    assert audit_action(aborted.action, aborted.detail) == "aborted too late to stop it"


@pytest.mark.devserver
async def test_an_abort_heard_as_the_run_hands_itself_over_is_audited_too_late(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """Aborted while its first change's verification read the metric (slow), which answered
    404: the run handed itself over ("could not be verified"), and the abort it heard was
    said "aborted", as if the abort had stopped it."""
    api, held = _checkout(tmp_path), HeldFirst()
    gone = Starlette(routes=[Route("/metrics", lambda _: PlainTextResponse("no such page", 404))])
    queue = Queue(dev_env, deps)
    async with serve(api.app()) as base, serve(held.wrap(gone)) as metric:
        await _executing(deps, _kubeconfig(tmp_path, base), approval_from=0)
        async with queue.runs(), queue.acts():
            handle = await queue.start(f"{metric}/metrics", SHORT_TASK)
            await asyncio.wait_for(held.arrived.wait(), HANG)
            await handle.signal(GradedRemediationWorkflow.abort, AbortInput(by=USER))
            await signal_taken(handle)
            held.release.set()
            status: RemediationStatus = await asyncio.wait_for(handle.result(), HANG)
            await save_history(handle, "remediation_aborted_as_it_hands_itself_over")
            _, audit, _ = await run_ended(deps, handle)

    assert status.state == "handed_over", status.outcome
    assert "could not be verified" in status.outcome, status.outcome
    (aborted,) = [r for r in audit if r.action == "aborted"]
    assert audit_action(aborted.action, aborted.detail) == "aborted too late to stop it"
    assert (aborted.detail["ended"], aborted.detail["stopped_it"]) == ("handed_over", False)


@pytest.mark.devserver
async def test_a_run_cancelled_before_its_end_whose_cancel_cannot_be_recorded_closes_cancelled(
    dev_env: WorkflowEnvironment,
    deps: WorkerDeps,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Cancelled while it waits for an approval, the run audits the cancel and records its
    end, and the database refuses the `cancelled` row until its retries are spent (an hour;
    here the first refusal, told apart as an IntegrityError): the write's error closed the
    run Failed, a cancel said as a failure of the run. Its end is recorded all the same (the
    refused audit skipped it: no `finished` row, the run's row left open)."""
    record = workflows.remediation_records.RECORD_RETRY
    quick = record.__class__(
        initial_interval=timedelta(milliseconds=50),
        maximum_interval=timedelta(milliseconds=200),
        non_retryable_error_types=[*(record.non_retryable_error_types or []), "IntegrityError"],
    )
    monkeypatch.setattr(workflows.remediation_records, "RECORD_RETRY", quick)
    queue = Queue(dev_env, deps)
    async with serve(_checkout(tmp_path).app()) as base, error_rate(None) as (_, url):
        await _executing(deps, _kubeconfig(tmp_path, base), approval_from=1)
        async with queue.runs():
            handle = await queue.start(url, SHORT_TASK)
            await state_reaches(dev_env, handle, ("waiting_approval",))
            cancelled = "WHEN NEW.action = 'cancelled'"
            async with refusing(deps, "INSERT", "audit_log", cancelled) as tried:
                await handle.cancel()
                with pytest.raises(WorkflowFailureError) as closed:
                    await asyncio.wait_for(handle.result(), HANG)
            await save_history(handle, "remediation_cancelled_whose_cancel_cannot_be_recorded")
            described = await handle.describe()
            _, audit, _ = await run_ended(deps, handle)
            settings = deps.settings.model_copy(update={"temporal_task_queue": queue.name})
            read = await RemediationService(dev_env.client, settings, deps.db).get(USER, handle.id)

    assert tried, "the cancel's audit was never refused"
    assert isinstance(closed.value.cause, CancelledError), closed.value.cause
    assert described.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CANCELED
    assert [r for r in audit if r.action == "cancelled"] == []
    assert [r.detail["state"] for r in audit if r.action == "finished"] == ["aborted"]
    assert read.state == "aborted", read


async def _cancelled_as_it_pushes(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path, history: str, refused: str = ""
) -> tuple[RemediationStatus, BaseException | None, Any, list[Any]]:
    """A run whose first change's verification answered 404 hands itself over, cancelled while
    its hand-over's push waits for a worker (``refused``: the audit rows of that action the
    database refuses meanwhile): its status, why it closed, its description and audit."""
    gone = Starlette(routes=[Route("/metrics", lambda _: PlainTextResponse("no such page", 404))])
    queue = Queue(dev_env, deps)
    async with serve(_checkout(tmp_path).app()) as base, serve(gone) as metric:
        await _executing(deps, _kubeconfig(tmp_path, base), approval_from=0)
        # No worker takes the regular activities: the hand-over's push waits unstarted.
        async with queue.runs():
            handle = await queue.start(f"{metric}/metrics", SHORT_TASK)

            async def pushing() -> bool:
                scheduled = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                return scheduled in [e.event_type async for e in handle.fetch_history_events()]

            await eventually(pushing, "the hand-over's push scheduled")
            when = f"WHEN NEW.action = '{refused}'"
            refusal = refusing(deps, "INSERT", "audit_log", when) if refused else nullcontext([])
            async with refusal as tried:
                await handle.cancel()
                with pytest.raises(WorkflowFailureError) as closed:
                    await asyncio.wait_for(handle.result(), HANG)
            assert tried or not refused, f"no {refused} row was refused"
            await save_history(handle, history)
            described = await handle.describe()
            status, audit, _ = await run_ended(deps, handle)
    return status, closed.value.cause, described, audit


@pytest.mark.devserver
async def test_a_run_cancelled_while_it_pushes_its_hand_over_audits_the_cancel(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """Its first change's verification answered 404: the run handed itself over, and was
    cancelled while its hand-over's push waited for a worker. The cancel was audited as the
    push's failure (`push_failed`, error "Cancelled"), no `cancelled` row, and the run
    closed Completed as if nobody had cancelled it."""
    history = "remediation_cancelled_while_it_pushes_its_hand_over"
    status, cause, described, audit = await _cancelled_as_it_pushes(
        dev_env, deps, tmp_path, history
    )

    assert status.state == "handed_over", status.outcome
    assert isinstance(cause, CancelledError), cause
    assert described.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CANCELED
    assert [r.action for r in audit if r.action in ("push_failed", "cancelled")] == ["cancelled"]
    (cancelled,) = [r for r in audit if r.action == "cancelled"]
    assert (cancelled.actor, cancelled.detail["state"]) == (UNVERIFIED, "handed_over")
    assert cancelled.detail["push"] == f"{status.run_key}/hand-over"
    assert audit_action(cancelled.action, cancelled.detail) == "cancelled after the run ended"
    (finished,) = [r for r in audit if r.action == "finished"]
    assert finished.detail["state"] == "handed_over"
    assert cancelled.id > finished.id  # after its end, as its detail says


@pytest.mark.devserver
async def test_a_run_cancelled_while_it_pushes_whose_end_cannot_be_recorded_audits_the_cancel(
    dev_env: WorkflowEnvironment,
    deps: WorkerDeps,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As above, the database refusing its `finished` row until its retries are spent (an
    hour; here the first refusal, an IntegrityError): one suppress around its end and the
    cancel's audit skipped the audit, and nothing said the run was cancelled."""
    record = workflows.remediation_records.RECORD_RETRY
    quick = record.__class__(
        initial_interval=timedelta(milliseconds=50),
        maximum_interval=timedelta(milliseconds=200),
        non_retryable_error_types=[*(record.non_retryable_error_types or []), "IntegrityError"],
    )
    monkeypatch.setattr(workflows.remediation_records, "RECORD_RETRY", quick)
    history = "remediation_cancelled_while_it_pushes_whose_end_cannot_be_recorded"
    _, cause, described, audit = await _cancelled_as_it_pushes(
        dev_env, deps, tmp_path, history, refused="finished"
    )

    assert isinstance(cause, CancelledError), cause
    assert described.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CANCELED
    assert [r.action for r in audit if r.action in ("finished", "cancelled")] == ["cancelled"]
    (cancelled,) = [r for r in audit if r.action == "cancelled"]
    assert (cancelled.actor, cancelled.detail["state"]) == (UNVERIFIED, "handed_over")
