"""A deliberately incompatible edit of PingWorkflow: notify before recording the event."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ambient.domain.events import RecordEventInput
    from ambient.domain.notify import Message, NotifyRequest, NotifyResult, Target
    from tests.support.workflows import PingInput


@workflow.defn(name="PingWorkflow")
class ReorderedPingWorkflow:
    @workflow.run
    async def run(self, request: PingInput) -> NotifyResult:
        wf_id = workflow.info().workflow_id
        result: NotifyResult = await workflow.execute_activity(
            "notify",
            NotifyRequest(
                user=request.user,
                message=Message(title="ping", body=request.text),
                targets=[Target(channel="inbox")],
                idempotency_key=f"{wf_id}/notify",
            ),
            result_type=NotifyResult,
            start_to_close_timeout=timedelta(seconds=30),
        )
        await workflow.execute_activity(
            "record_event",
            RecordEventInput(kind="test.ping", user=request.user, task=wf_id),
            start_to_close_timeout=timedelta(seconds=30),
        )
        return result
