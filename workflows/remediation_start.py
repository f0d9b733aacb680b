"""How a watch or the nightly triage starts an alert's remediation, or joins its running run.

The starter's side of ``GradedRemediationWorkflow`` (workflows/remediation.py): the run is an
abandoned child under its alert's id; a run already under that id takes the alert in instead
(the ``join_remediation`` activity, which signals it as the API's join does).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from workflows.remediation import GradedRemediationWorkflow
from workflows.remediation_records import RECORD_RETRY, TASK_TIMEOUT, search_attributes

with workflow.unsafe.imports_passed_through():
    from activities.remediation import RemediationActivities
    from ambient.remediation.runs import JoinRequest, RemediationInput

JOIN_RETRY = RetryPolicy(
    maximum_attempts=4,
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    non_retryable_error_types=RECORD_RETRY.non_retryable_error_types,
)


async def start_remediation(
    child: str, request: RemediationInput, summary: str, key: str | None = None
) -> tuple[str, bool]:
    """Start the alert's remediation as the abandoned child ``child`` (remediation_id of its
    alert), or join the run under that id. The id of the run started or joined (what the caller
    reports), and True when joined. A cancel of the caller never sends the run a cancel.
    ``key``: the alert's own, the same at each ask of it (its join audited once)."""
    while True:
        try:
            # Abandoned: the remediation outlives its starter (continue-as-new, stop, the end).
            await workflow.start_child_workflow(
                GradedRemediationWorkflow.run,
                request,
                id=child,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                cancellation_type=workflow.ChildWorkflowCancellationType.ABANDON,
                task_timeout=TASK_TIMEOUT,
                search_attributes=search_attributes(request.user, request.alert.cluster_id),
                static_summary=summary,
            )
            return child, False
        except WorkflowAlreadyStartedError:
            pass
        # False only once the run found has completed: the next start cannot find it again.
        if await _join(child, request, key):
            return child, True


async def _join(rid: str, request: RemediationInput, key: str | None) -> bool:
    """Join the alert into the running run ``rid``; False when no run of that id is running."""
    return await workflow.execute_activity_method(
        RemediationActivities.join_remediation,
        JoinRequest(
            remediation_id=rid,
            user=request.user,
            source=request.requested_by,
            alert=request.alert,
            key=key,
        ),
        start_to_close_timeout=timedelta(minutes=1),
        retry_policy=JOIN_RETRY,
        summary=f"join the alert into {rid}",
    )
