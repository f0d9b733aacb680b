"""An answer goes to the run it was checked on: when the same alert's next run starts between
the check and the sending, the answer does not decide for the next run; two answers at once
through two doors decide the rung once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.remediation.runs import FINAL_STATES
from ambient.remediation.service import RemediationStateError
from ambient.remediation.views import RemediationView
from tests.conftest import unique
from tests.remediation.support import (
    RunKeys,
    add_user,
    alert,
    remediation_settings,
    remediations_with_worker,
)
from tests.remediation.test_workflow import audit_actions
from tests.support.waits import eventually


@pytest.mark.parametrize("act", ["approve", "abort"])
async def test_an_answer_checked_on_one_run_is_not_sent_to_the_next_run(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, act: str
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=1)
    name = unique("kai")
    await add_user(deps, name, permission="dry_run")
    async with remediations_with_worker(dev_env, deps) as (metric_url, _, remediations):
        same_alert = alert(metric_url, workload=name, settle_seconds=0)
        rid = (await remediations.start(name, same_alert, mode="dry_run")).remediation_id

        runs = RunKeys(remediations, name, rid)
        first = await eventually(runs.waiting, "the first run waits for approval")
        checked = remediations._steerer
        seconds: list[str] = []

        async def steerer(*args: Any) -> Any:
            # The check passes on the first run; before the answer is sent, that run is
            # aborted and the same alert's next run waits for approval.
            found = await checked(*args)
            if seconds:  # the abort below checks too
                return found
            seconds.append(first)
            await remediations.abort(name, rid, "not now", via="api")
            await eventually(lambda: runs.ended(first), "the first run ends")
            await remediations.start(name, same_alert, mode="dry_run")
            seconds.append(await eventually(runs.waiting, "the second run waits for approval"))
            return found

        remediations._steerer = steerer  # type: ignore[method-assign]
        # Refused as a state conflict (the API's 409) that says the run answered has ended and
        # another is current, not as Temporal's "workflow execution already completed" (502)
        # or the ended run's old state.
        with pytest.raises(RemediationStateError, match=r"earlier run of .*, which has ended"):
            if act == "approve":
                await remediations.approve(name, rid, True, via="api")
            else:
                await remediations.abort(name, rid, "stop it", via="api")
        remediations._steerer = checked  # type: ignore[method-assign]
        view = await remediations.get(name, rid)
        assert seconds[1] != first
        assert (view.run_key, view.state, view.attempts) == (seconds[1], "waiting_approval", [])


async def test_an_approval_and_a_refusal_at_once_apply_one_and_refuse_the_other_as_a_conflict(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """The owner approves on the page while an admin refuses by voice: one answer decides the
    rung, the other is told the rung was answered otherwise (a conflict, never both applied)."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    owner, admin = unique("kai"), unique("root")
    await add_user(deps, owner, permission="dry_run")
    await add_user(deps, admin, permission="dry_run", role="admin")
    async with remediations_with_worker(dev_env, deps) as (metric_url, _, remediations):
        subject = alert(metric_url, workload=owner, settle_seconds=0)
        rid = (await remediations.start(owner, subject, mode="dry_run")).remediation_id
        runs = RunKeys(remediations, owner, rid)
        await eventually(runs.waiting, "the run waits for approval")

        answers = await asyncio.gather(
            remediations.approve(owner, rid, True, rung=1, via="api"),
            remediations.approve(admin, rid, False, "not now", rung=1, via="api"),
            return_exceptions=True,
        )

        async def acted() -> RemediationView | None:
            view = await remediations.get(owner, rid)
            return view if view.attempts or view.state in FINAL_STATES else None

        # The reply says the run took the answer; the run audits it (`approval`) after, before
        # it acts on it (the rung's change, or the hand-over). Usually in the workflow task
        # that carries the reply, but the SDK sends that task early when its local activities
        # outlast 80% of its timeout (a starved host, an audit write retried on a locked
        # database): the row comes after the reply.
        view = await eventually(acted, "the run acts on the answer it took")

    refused = [a for a in answers if isinstance(a, BaseException)]
    assert len(refused) == 1, answers
    assert isinstance(refused[0], RemediationStateError), refused
    applied = (await audit_actions(deps, view.run_key)).count("approval")
    assert applied == 1, await audit_actions(deps, view.run_key)
    approved = not isinstance(answers[0], BaseException)
    if approved:
        assert view.attempts and view.attempts[0].rung == 1, view
    else:
        assert view.state == "handed_over", view.outcome
