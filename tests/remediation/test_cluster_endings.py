"""A run's end recorded whole: a cancel in Temporal that comes while the run records its end."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import CancelledError
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.remediation.runs import AbortInput
from ambient.remediation.storage import UNVERIFIED, RemediationRepository
from tests.remediation.support import refusing, some
from tests.remediation.test_cluster_abort_cancel import (
    CANCEL_REQUESTED,
    HeldAnswer,
    _after,
    _cluster,
    _ended,
)
from tests.remediation.test_cluster_cancel import Queue
from tests.remediation.test_workflow import USER
from tests.support.record import save_history
from tests.support.servers import HANG
from tests.support.waits import eventually


@pytest.mark.devserver
async def test_a_run_cancelled_while_it_records_its_end_records_it_whole(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """Aborted as it started, the run records its end (`aborted` and `finished` audited, then
    its row) and is cancelled in Temporal while the database refuses that row's write. The
    cancel cut the write short: the audit said the run finished, its row stayed `planned`,
    running for every list, count and door that reads it."""
    queue = Queue(dev_env, deps)
    async with _cluster(deps, tmp_path, HeldAnswer(), refused=0) as (api, url):
        async with queue.runs():
            # A short workflow task: the server passes the cancel on while the run writes its
            # row (a local activity, retried in the task).
            short = timedelta(seconds=2)
            final = "WHEN NEW.state = 'aborted'"
            async with refusing(deps, "UPDATE", "remediations", final) as tried:
                handle = await queue.start(url, short, AbortInput(by=USER))
                await eventually(partial(some, tried), "the row's write refused")
                await handle.cancel()
                await _after(handle, CANCEL_REQUESTED, "the run took the cancel")
            with pytest.raises(WorkflowFailureError) as closed:
                await asyncio.wait_for(handle.result(), HANG)
            await save_history(handle, "remediation_cancelled_while_it_records_its_end")
            status, audit, _ = await _ended(deps, handle)
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
