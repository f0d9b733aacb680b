"""AlertTriageWorkflow — nightly (Schedule `alert-triage`, 05:00 team time): one remediation
per unresolved alarm of yesterday, de-duplicated by fingerprint, before briefings are prepared.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from activities.remediation import RemediationActivities
    from ambient.remediation.alerts import remediation_id
    from ambient.remediation.runs import CollectInput, RemediationInput, TriageInput, TriageResult

from workflows.remediation import GradedRemediationWorkflow
from workflows.remediation_records import CHILD_TASK_TIMEOUT, TASK_TIMEOUT, search_attributes


@workflow.defn
class AlertTriageWorkflow:
    @workflow.run
    async def run(self, request: TriageInput) -> TriageResult:
        found = await workflow.execute_activity_method(
            RemediationActivities.collect_unresolved_alarms,
            CollectInput(days=request.days, now=workflow.now()),
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=10)),
        )
        result = TriageResult(window=found.window, skipped=found.skipped)
        # One alert per fingerprint already (unresolved_alarms collapses repeats).
        for alert in found.alerts:
            child_id = remediation_id(alert)
            try:
                # Abandoned: remediations outlive the triage run (approvals, settle timers).
                await workflow.start_child_workflow(
                    GradedRemediationWorkflow.run,
                    RemediationInput(
                        alert=alert, user=request.user, mode=request.mode, requested_by="triage"
                    ),
                    id=child_id,
                    parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                    task_timeout=TASK_TIMEOUT if workflow.patched(CHILD_TASK_TIMEOUT) else None,
                    search_attributes=search_attributes(request.user, alert.cluster_id),
                    static_summary=f"Remediation of {alert.service} (nightly triage)",
                )
            except WorkflowAlreadyStartedError:
                result.joined.append(child_id)
                continue
            result.started.append(child_id)
        return result
