"""AlertTriageWorkflow — nightly (Schedule `alert-triage`, 05:00 team time): one remediation
per workload with unresolved alarms yesterday (its fingerprint), before briefings are prepared.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from activities.remediation import RemediationActivities
    from ambient.activity_attempts import ACTIVITY_FAILED
    from ambient.remediation.alerts import remediation_id
    from ambient.remediation.runs import TRIAGE, RemediationInput
    from ambient.remediation.triage import TRIAGE_RETRY, CollectInput, TriageInput, TriageResult

from workflows.remediation_records import cause_of
from workflows.remediation_start import start_remediation

# The time the Schedule meant a run for (Temporal sets it on each run it starts).
SCHEDULED_AT = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")
# A start cut by the triage's cancel is asked again and the triage ends Canceled (before
# 2026-12-07: a cut join was skipped and the next alerts started; a cut start, lost).
START_THROUGH_CANCEL = "triage-start-through-cancel"


@workflow.defn
class AlertTriageWorkflow:
    def __init__(self) -> None:
        self.through_cancel = workflow.patched(START_THROUGH_CANCEL)

    @workflow.run
    async def run(self, request: TriageInput) -> TriageResult:
        night = workflow.info().typed_search_attributes.get(SCHEDULED_AT)
        found = await workflow.execute_activity_method(
            RemediationActivities.collect_unresolved_alarms,
            # The night it was meant for: a run a worker took late (down past midnight) read
            # the day after instead, and the night's day was never triaged. One started by hand,
            # the time it starts.
            CollectInput(days=request.days, now=night or workflow.now()),
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=TRIAGE_RETRY,
            summary=f"collect the alarms not recovered in the {request.days} day(s) before",
        )
        result = TriageResult(window=found.window, skipped=found.skipped)
        # One alert per workload already (unresolved_alarms collapses the others into skipped).
        # By the cluster's one name (an alarm naming a kubeconfig context and one naming its
        # TKE id are one workload); a result of an earlier release has none.
        ids = found.ids or [remediation_id(alert) for alert in found.alerts]
        for alert, child in zip(found.alerts, ids, strict=True):
            remediation = RemediationInput(
                alert=alert, user=request.user, mode=request.mode, requested_by=TRIAGE
            )
            summary = f"Remediation of {alert.service} (nightly triage)"
            try:
                child, joined = await start_remediation(child, remediation, summary)
            except BaseException as exc:
                if self.through_cancel and is_cancelled_exception(exc):
                    # The triage's cancel cut the start (or its join): asked again, then the
                    # triage ends Canceled. A start the server has not made when its starter
                    # closes is never made: the alert would be left without its remediation.
                    await start_remediation(child, remediation, summary)
                    raise
                if not isinstance(exc, ACTIVITY_FAILED):
                    raise
                result.skipped.append(f"{child}: neither started nor joined: {cause_of(exc)}")
                continue
            (result.joined if joined else result.started).append(child)
        return result
