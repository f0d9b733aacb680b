"""Rungs 4 (isolate) and 5 (full rollback) were asked for without their plans being run: a full
rollback with nothing to put back (the workload, its Services and ConfigMaps as at the first
checkpoint) was pushed "Approval needed" and skipped "nothing to change" once approved, and a dry
run's isolation of Services an earlier run left isolated was asked for and then skipped "nothing
to write, already so". Their plans are run before asking too, in the run's own mode: an execute
run's isolation found in place is its change already made (asked, then verified), no skip."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.remediation.ladder import ISOLATION_LABEL, Mode, Rung
from ambient.remediation.runs import FINAL_STATES
from ambient.remediation.views import RemediationView
from tests.remediation.test_plan_before_approval import (
    CHECKOUT,
    approvals_asked,
    asked_for,
    checkout,
)
from tests.remediation.test_slow_cluster_after_wait import asking_from_rung_one
from tests.remediation.test_workflow import USER
from tests.support.record import save_history
from tests.support.waits import eventually

# An alert whose score buys every rung (full rollback, then a person).
SIX = {"tier": "critical", "user_facing": "true"}
NOTHING = (
    "nothing to change",
    f"full rollback: {CHECKOUT} to its template at the first checkpoint (no earlier revision)",
)


@pytest.mark.devserver
@pytest.mark.parametrize("mode", ["execute", "dry_run"])
async def test_a_full_rollback_with_nothing_to_put_back_is_skipped_without_asking(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path, mode: Mode
) -> None:
    """Approvals from rung 1. A paused Deployment (rungs 1-3 skipped) whose Service an earlier
    run left isolated: in execute mode rung 4's isolation is in place already, asked and
    approved (no write); in a dry run it is skipped as a dry run of it says, nobody asked.
    Rung 5's full rollback finds everything as at the first checkpoint: skipped before asking,
    and the run hands over."""
    api = checkout()
    api.deployments[("prod", "checkout")]["spec"]["paused"] = True
    api.add_service("prod", "checkout", {"app": "checkout", ISOLATION_LABEL: "earlier"})
    app = api.app()
    async with asking_from_rung_one(dev_env, deps, tmp_path, app, mode, labels=SIX) as run:

        async def asked_or_ended() -> RemediationView | None:
            seen = await run.service.get(USER, run.rid)
            return seen if seen.state in ("waiting_approval", *FINAL_STATES) else None

        seen = await eventually(asked_or_ended, "the run asks or ends")
        if mode == "execute":
            assert (seen.state, seen.waiting and seen.waiting.rung) == (
                "waiting_approval",
                Rung.ISOLATE,
            )
            await run.service.approve(USER, run.rid, True, "go", via="api")

            async def past_isolation() -> RemediationView | None:
                seen = await asked_or_ended()
                waiting = seen and seen.waiting and seen.waiting.rung
                return seen if seen is not None and waiting is not Rung.ISOLATE else None

            seen = await eventually(past_isolation, "the run asks again or ends")
        status = seen
        asked = await approvals_asked(deps)
        await run.handle.result()  # recorded whole
        if mode == "execute":
            await save_history(run.handle, "remediation_last_rungs_planned_before_approval")

    assert asked == (asked_for(Rung.ISOLATE) if mode == "execute" else [])
    assert status.state == "handed_over", [(a.rung, a.skipped_reason) for a in status.attempts]
    isolate, full = status.attempts[3], status.attempts[4]
    if mode == "execute":
        assert (isolate.applied, isolate.already_applied) == (True, True), isolate
    else:
        assert (isolate.applied, isolate.skipped_reason) == (
            False,
            "nothing to write, already so: service prod/checkout",
        )
    assert (full.rung, full.applied, (full.skipped_reason, full.detail)) == (
        Rung.FULL_ROLLBACK,
        False,
        NOTHING,
    )
    assert api.writes() == []
