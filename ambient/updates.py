"""An update sent within the running request's deadline, and what it did when cut short.

`execute_update` waits for a worker to take the update with no end of its own: a worker that
answered a read and then fell silent held the request for good. Here the update is taken
(ACCEPTED) within QUERY_TIMEOUT and the deadline, and its result waited for by the deadline.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import UpdateWorkflowExecutionLifecycleStage
from temporalio.api.update.v1 import UpdateRef, WaitPolicy
from temporalio.api.workflowservice.v1 import PollWorkflowExecutionUpdateRequest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateStage
from temporalio.service import RPCError

from ambient import no_answer
from ambient.request_deadline import deadline

ACCEPTED = UpdateWorkflowExecutionLifecycleStage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ACCEPTED
COMPLETED = (
    UpdateWorkflowExecutionLifecycleStage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED
)


class Unanswered(Exception):
    """An update not answered by its request's deadline. ``sent``: the server may hold it (it
    may still apply when a worker takes it); not sent, nothing was asked. ``taken``: its worker
    accepted it and is at it (a briefing's preparation outlasts any request's budget)."""

    def __init__(self, *, sent: bool, taken: bool = False) -> None:
        super().__init__("taken" if taken else "sent" if sent else "not sent")
        self.sent, self.taken = sent or taken, taken


async def answered(
    handle: WorkflowHandle[Any, Any],
    update: Any,
    *args: Any,
    id: str | None = None,
    result_type: type | None = None,
    taken_within: float | None = None,
) -> Any:
    """The update's result by the request's deadline; Unanswered if not (none left: not sent).
    Outside a request, taken within QUERY_TIMEOUT (or ``taken_within`` seconds) and its result
    waited for with no end."""
    clock, until = asyncio.get_running_loop().time, deadline()
    if until is not None and until <= clock():
        raise Unanswered(sent=False)
    take = clock() + (taken_within or no_answer.QUERY_TIMEOUT.total_seconds())
    try:
        async with asyncio.timeout_at(take if until is None else min(until, take)):
            sent = await handle.start_update(
                update,
                args=list(args),
                id=id,
                result_type=result_type,
                wait_for_stage=WorkflowUpdateStage.ACCEPTED,
            )
    except no_answer.CUT_SHORT:
        raise Unanswered(sent=True) from None
    try:
        async with asyncio.timeout_at(until):
            return await sent.result()
    except no_answer.CUT_SHORT:
        raise Unanswered(sent=True, taken=True) from None


async def accepted(client: Client, workflow_id: str, update_id: str) -> bool:
    """Whether the server says the workflow's worker took the update ``update_id`` (asked at
    once: the poll waits for ADMITTED, which any update the server holds has reached). One the
    server does not know, or no answer by the request's deadline: not taken."""
    request = PollWorkflowExecutionUpdateRequest(
        namespace=client.namespace,
        update_ref=UpdateRef(
            workflow_execution=WorkflowExecution(workflow_id=workflow_id), update_id=update_id
        ),
        identity=client.identity,
        wait_policy=WaitPolicy(
            lifecycle_stage=UpdateWorkflowExecutionLifecycleStage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED
        ),
    )
    try:
        polled = await client.workflow_service.poll_workflow_execution_update(
            request, retry=True, timeout=no_answer.time_left()
        )
    except (RPCError, no_answer.OutOfTime):  # nothing left (not asked) or no answer: not taken
        return False
    # Completed, a rejected update's failure reads as an accepted one's would: taken only when
    # it answered (a worker refusing it, one of a release before its handler, asks again).
    return polled.stage == ACCEPTED or (
        polled.stage == COMPLETED and polled.outcome.HasField("success")
    )
