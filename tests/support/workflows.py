"""Workflows that exist only to exercise the foundation (worker wiring, replay, restarts)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from ambient.domain.events import RecordEventInput
    from ambient.domain.notify import Message, NotifyRequest, NotifyResult, Target


class PingInput(BaseModel):
    user: str
    text: str


@workflow.defn
class PingWorkflow:
    """Records an event and notifies the user's inbox, then waits a day and finishes."""

    @workflow.run
    async def run(self, request: PingInput) -> NotifyResult:
        wf_id = workflow.info().workflow_id
        await workflow.execute_activity(
            "record_event",
            RecordEventInput(
                kind="test.ping",
                user=request.user,
                task=wf_id,
                payload={"text": request.text},
                idempotency_key=f"{wf_id}/event",
            ),
            start_to_close_timeout=timedelta(seconds=30),
        )
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
            retry_policy=RetryPolicy(maximum_attempts=3),
        )
        await workflow.sleep(timedelta(days=1))
        return result


@workflow.defn
class WaitForSignalWorkflow:
    """Runs until signalled; used to prove a restart keeps running workflows."""

    def __init__(self) -> None:
        self.done = False

    @workflow.signal
    def finish(self) -> None:
        self.done = True

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.done)
        return "finished"


@workflow.defn
class RelayFailureWorkflow:
    """Runs the named activity once and fails with its failure (what history keeps of one)."""

    @workflow.run
    async def run(self, activity: str) -> None:
        await workflow.execute_activity(
            activity,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )


TEST_WORKFLOWS = [PingWorkflow, WaitForSignalWorkflow]
