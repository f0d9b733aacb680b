"""A remediation's push that fails for good is said to the person once, as final."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from activities.deliveries import delivery_key
from ambient.deps import WorkerDeps
from ambient.remediation.alerts import remediation_id
from ambient.remediation.runs import RemediationInput, RemediationStatus
from ambient.render import markdown_literal
from ambient.storage.repositories import DeliveryRepository, EventRepository
from tests.conftest import running_worker, unique
from tests.remediation.support import add_user, alert, error_rate, remediation_settings
from tests.remediation.test_workflow import audit_actions
from tests.support.channels import pushed_everywhere
from tests.support.deliveries import left_in_flight
from tests.support.record import save_history
from workflows.remediation import GradedRemediationWorkflow
from workflows.remediation_records import search_attributes


async def test_a_hand_over_push_that_fails_for_good_leaves_one_final_delivery_failed_event(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=0)
    user = unique("ops")
    await add_user(deps, user)
    async with (
        error_rate(healthy_from=None) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        # A budget of one: one restart, then the run hands over and pushes.
        subject = alert(url, namespace="dev-a", value=0.01, labels={"tier": "low"}, metric="disk")
        handle = await ts_env.client.start_workflow(
            GradedRemediationWorkflow.run,
            RemediationInput(alert=subject, user=user),
            id=f"{remediation_id(subject)}-{unique('t')}",
            task_queue=worker.task_queue,
            search_attributes=search_attributes(user, subject.cluster_id),
        )
        run_key = f"{handle.id}@{handle.result_run_id}"
        # An earlier try's worker died sending the hand-over (the run waits out its settle
        # timer meanwhile): no try of the notify activity finishes the push, and none records
        # its failure.
        await left_in_flight(deps.db, delivery_key(f"{run_key}/hand-over", "inbox", ""), user)
        status = await handle.result()
        await save_history(handle, "graded_remediation_push_gave_up")
    assert status.state == "budget_exhausted"
    assert "push_failed" in await audit_actions(deps, run_key)
    async with deps.db.session() as session:
        failed = await EventRepository(session).list(user=user, kind="delivery.failed")
    # The retries are over: said once, and not as retrying.
    assert [(e.payload["channel"], e.payload["retrying"]) for e in failed] == [("inbox", False)]
    assert "Needs a person" in failed[0].payload["title"]
    assert failed[0].task == handle.id


async def test_a_remediations_pushes_are_filed_under_the_remediation(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=0)
    user = unique("ops")
    await add_user(deps, user)
    status, run = await _handed_over(ts_env, deps, user, "disk")
    assert status.state == "budget_exhausted"
    async with deps.db.session() as session:
        mine = await DeliveryRepository(session).list(user=user, task=run)
    # list_deliveries(task=<remediation id>) shows the run's hand-over push.
    assert [(d.channel, d.status, d.kind) for d in mine] == [("inbox", "sent", "remediation")]


async def test_a_hand_over_push_shows_the_alerts_metric_as_written_on_every_channel(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A metric name from an alert's JSON with markdown in it: the robot's markdown message
    escapes it once (no emphasis, no link the alert's sender put there), and the plain
    channels show it as written, with no escape in it."""
    remediation_settings(deps, remediation_approval_from_rung=0)
    metric = "disk_`x`_*[docs](https://evil.example)*"
    async with pushed_everywhere(deps, unique("ops")) as pushed:
        status, _ = await _handed_over(ts_env, deps, pushed.user, metric)
        shown = await pushed.shown()
    assert status.state == "budget_exhausted"
    hand_overs = {
        channel: [text for text in texts if "Needs a person" in text or "stopped:" in text]
        for channel, texts in shown.items()
    }
    [robot] = hand_overs.pop("wecom")
    # What the group reads once WeCom renders it: the name, every character as sent.
    assert markdown_literal(metric) in robot
    assert markdown_literal(markdown_literal(metric)) not in robot
    for channel, [text] in hand_overs.items():
        assert f"Alert: {metric} on " in text, channel
        assert "\\" not in text, channel


async def _handed_over(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, user: str, metric: str
) -> tuple[RemediationStatus, str]:
    """A run on a workload that never becomes healthy, with a budget of one: one restart,
    then it hands over and pushes. Its end, and its workflow id (its deliveries' task)."""
    async with (
        error_rate(healthy_from=None) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        subject = alert(url, namespace="dev-a", value=0.01, labels={"tier": "low"}, metric=metric)
        handle = await ts_env.client.start_workflow(
            GradedRemediationWorkflow.run,
            RemediationInput(alert=subject, user=user),
            id=f"{remediation_id(subject)}-{unique('t')}",
            task_queue=worker.task_queue,
            search_attributes=search_attributes(user, subject.cluster_id),
        )
        return await handle.result(), handle.id
