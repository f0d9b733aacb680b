"""A run cancelled in Temporal (the Web UI's "Request Cancellation"): it cleans up, then
closes as Cancelled, while it waits for an approval, while its change is tried, and while its
change settles before verification."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import CancelledError
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.remediation.ladder import Rung
from ambient.remediation.runs import RemediationStatus
from ambient.remediation.service import RemediationService
from ambient.remediation.storage import UNVERIFIED, ActionLedger
from ambient.storage.audit import AuditRepository
from tests.conftest import running_worker
from tests.remediation.support import alert, error_rate, state_reaches
from tests.remediation.test_cluster import CLUSTER, _kubeconfig
from tests.remediation.test_cluster_edges import HeldWrites, _checkout, _executing
from tests.remediation.test_workflow import USER, start
from tests.support.record import save_history
from tests.support.servers import HANG, serve
from tests.support.waits import ask

CANCELLED = (
    "cancelled in Temporal (Request Cancellation), not through ambient-ops: "
    "the sender is not verified"
)


@pytest.mark.devserver
@pytest.mark.parametrize("when", ["approval", "change", "settle"])
async def test_a_run_cancelled_in_temporal_cleans_up_and_says_so(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path, when: str
) -> None:
    """It closed as Cancelled at once: its row left "running" (list and stats counted it
    open), no audit entry of its end, and the slot its step's gate reserved stayed counted
    against the cluster's hour though the change on the wire was not made."""
    api = _checkout(tmp_path)
    holding = HeldWrites(nth=2, hold=when == "change")
    if when == "change":
        api.unavailable_writes = 4  # the write on the wire is refused after the cancellation
    async with serve(holding.wrap(api.app())) as base:
        await _executing(
            deps, _kubeconfig(tmp_path, base), approval_from=1 if when == "approval" else 0
        )
        async with (
            error_rate(healthy_from=None) as (_, url),
            running_worker(dev_env.client, deps) as worker,
        ):
            settle = 3600 if when == "settle" else 0
            subject = alert(url, cluster_id=CLUSTER, settle_seconds=settle)
            handle = await start(dev_env, worker.task_queue, subject, mode="execute")
            try:
                if when == "change":
                    await asyncio.wait_for(holding.arrived.wait(), HANG)
                else:
                    wanted = "waiting_approval" if when == "approval" else "settling"
                    await state_reaches(dev_env, handle, (wanted,))
                await handle.cancel()
            finally:
                holding.release.set()
            with pytest.raises(WorkflowFailureError) as closed:
                await asyncio.wait_for(handle.result(), HANG)
            status = await ask(handle, "status", result_type=RemediationStatus)
            settings = deps.settings.model_copy(update={"temporal_task_queue": worker.task_queue})
            view = await RemediationService(dev_env.client, settings, deps.db).get(USER, handle.id)
            if when == "change":
                # Recorded: the cancelled path replays (tests/histories).
                await save_history(handle, "remediation_cancelled_during_change")
        async with deps.db.session() as session:
            audit = await AuditRepository(session).list(subject=status.run_key, limit=1000)
            slot = await ActionLedger(session).reserved(f"{status.run_key}#1")

    assert isinstance(closed.value.cause, CancelledError)
    assert (status.state, status.outcome) == ("aborted", CANCELLED)
    assert (view.state, view.outcome) == ("aborted", CANCELLED)
    assert status.waiting is None and status.next_rung is None
    (cancelled,) = [r for r in audit if r.action == "cancelled"]
    assert cancelled.actor == UNVERIFIED
    assert [r.detail["state"] for r in audit if r.action == "finished"] == ["aborted"]
    if when == "change":
        assert api.writes() == [], [(c.method, c.status) for c in api.calls]
        assert [(a.rung, a.applied, a.skipped_reason) for a in status.attempts] == [
            (Rung.RESTART, False, "cancelled before its change")
        ]
        assert slot is None  # nothing changed: the cluster's hour does not count it
    elif when == "settle":
        assert [(a.rung, a.applied) for a in status.attempts] == [(Rung.RESTART, True)]
        assert slot is not None  # the restart was made: it counts
    else:
        assert status.attempts == [] and api.writes() == []
