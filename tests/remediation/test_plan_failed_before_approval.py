"""A rung whose own plan, run before its approval is asked, fails: the Deployment was re-created
(another uid) since the run's first checkpoint, or the API server answers 503 to a read of the
plan's. The whole read before asking failed: no `read_before_asking` row was written, and the
person was asked with no word anywhere of what the read met. Its row says it now, in the words
the change itself fails with, and the rung is asked as before (the change plans again)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.remediation.ladder import Rung
from ambient.remediation.runs import RemediationStatus
from ambient.storage.audit import AuditRepository
from ambient.storage.repositories import InboxRepository
from tests.remediation.test_plan_before_approval import approvals_asked, asked_for, checkout
from tests.remediation.test_slow_cluster_after_wait import asking_from_rung_one
from tests.remediation.test_workflow import USER
from tests.standins.kube_api import ApiCall
from tests.support.waits import eventually

KEY = ("prod", "checkout")


@pytest.mark.devserver
@pytest.mark.parametrize("met", ["re-created", "unavailable"])
async def test_a_plan_that_fails_before_asking_is_audited_and_the_rung_asked_as_before(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path, met: str
) -> None:
    """Approvals from rung 1; rung 1's restart approved and made. Then the Deployment is
    deleted and created again (another uid), or the API server answers 503 to every list of
    HorizontalPodAutoscalers (rung 2's plan reads it, its checkpoint does not): rung 2's read
    before asking records what its plan met, and rung 2 is asked all the same."""
    api = checkout()
    uid = api.deployments[KEY]["metadata"]["uid"]

    def after_the_restart(call: ApiCall) -> None:
        api.on_write = None
        if met == "re-created":
            api.deployments[KEY]["metadata"]["uid"] = "checkout-again"
        else:
            api.unavailable_reads["horizontalpodautoscalers"] = 1000

    api.on_write = after_the_restart
    async with asking_from_rung_one(dev_env, deps, tmp_path, api.app()) as run:
        await eventually(lambda: run.waits_on(Rung.RESTART), "rung 1 waits for approval")
        await run.service.approve(USER, run.rid, True, "go", via="api")
        await eventually(lambda: run.waits_on(Rung.SCALE_OUT), "rung 2 waits for approval")

        async def both_asked() -> list[str] | None:
            asked = await approvals_asked(deps)  # pushed once the run waits
            return asked if len(asked) == 2 else None

        asked = await eventually(both_asked, "rung 2's approval pushed")
        status = await run.service.get(USER, run.rid)
        async with deps.db.session() as session:
            reads = await AuditRepository(session).list(
                subject=status.run_key, action="read_before_asking"
            )
            inbox = await InboxRepository(session).list(USER)
        if met == "re-created":
            # The change after the approval plans again, and fails as its plan did.
            await run.service.approve(USER, run.rid, True, "go", via="api")
            ended = RemediationStatus.model_validate(await run.handle.result())

    assert asked == asked_for(Rung.RESTART, Rung.SCALE_OUT)
    rows = {r.detail["key"]: r.detail for r in reads}
    row = rows[f"{status.run_key}#{int(Rung.SCALE_OUT)}/checkpoint/before-asking"]
    assert row["planned"] is None
    if met == "re-created":
        failed = (
            f"deployment prod/checkout was re-created since the first checkpoint (uid "
            f"checkout-again, the checkpoint read uid {uid}): this remediation does not change "
            "another object of the same name"
        )
        assert (row["uid"], row["observed"], row["plan_failed"]) == ("checkout-again", True, failed)
        assert ended.state == "handed_over", ended.outcome
        assert ended.attempts[1].skipped_reason == f"change failed: {failed}"
    else:
        assert row["observed"] and row["replicas"] == 2, row
        # Its last try's 503, as the change's would say it.
        failed = "listing HorizontalPodAutoscalers in prod: the apiserver is shutting down"
        assert row["plan_failed"] == failed
    # The request says what it asks and nothing of a plan: nothing in it is false.
    request = next(m for m in inbox if m.title == asked_for(Rung.SCALE_OUT)[0])
    assert request.body.startswith(
        f"Remediation `{run.rid}` wants rung 2 (scale out (absolute replica count, capped by the "
        "blast-radius limit)) in execute mode. Approve or refuse it"
    ), request.body
