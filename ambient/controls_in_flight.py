"""Controls on their way to a run: what a pause, resume or stop makes of its state before its
worker takes them, and a signal the server records once however often it is sent."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, PendingWorkflowTaskState
from temporalio.api.workflowservice.v1 import (
    GetWorkflowExecutionHistoryReverseRequest,
    SignalWorkflowExecutionRequest,
)
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
)

from ambient.no_answer import by, time_left
from ambient.refusals import N_
from ambient.request_deadline import deadline

# A pause of a paused task or a resume of a running one: nothing was sent (a signal would have
# changed nothing but its run's history, a schedule's write its conflict token).
ALREADY_SO = N_("it already was; nothing was sent")
# A control the server holds for a worker that did not answer the status read after it (busy,
# or none running), or sent just before Temporal went: it applies when they are back.
DELIVERED_UNCONFIRMED = N_("delivered; not confirmed yet (its worker or Temporal did not answer)")
# A control the server holds for a run whose worker keeps failing its workflow task
# (`task_failing`): it applies once an operator mends the cause, not by waiting.
DELIVERED_FAILING = N_(
    "delivered; not applied while its worker keeps failing the run (Temporal: Workflow Task "
    "in failed state); the worker's log says why"
)


# What a control signal makes of a run's AmbientState once its worker takes it.
CONTROL_STATES = {"pause": "paused", "resume": "active", "stop": "stopped"}


@dataclass(frozen=True)
class InFlight:
    """What the controls a run holds make of it: its ``state`` once those its worker has not
    taken yet apply, the event that reading rests on (``basis``), and whether the reading is
    ``whole``: not while a worker holds a workflow task of the run (busy in a local activity,
    or dead with it), since the server keeps the signals sent meanwhile out of the history
    until that task completes."""

    state: str
    basis: int
    whole: bool


async def state_in_flight(
    client: Client, description: WorkflowExecutionDescription, state: str
) -> InFlight:
    """The run's ``state`` (as its worker last made it) once the controls it holds and has not
    taken yet apply (they arrived after its last completed workflow task; the
    ``description``'s history, not later), resting on the last of those controls, else that
    completion (a run with no workflow task pending: its last event). A pause in flight is a
    paused task; two requests that read alike are one decision."""
    seen = description.raw_description.workflow_execution_info.history_length
    if not description.raw_description.HasField("pending_workflow_task"):
        # Every control it holds was taken (one not taken is a workflow task pending): no
        # history to read (the time-skipping test server reads none from the end).
        return InFlight(state, seen, whole=True)
    held = description.raw_description.pending_workflow_task.state
    whole = held != PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_STARTED
    request = GetWorkflowExecutionHistoryReverseRequest(
        namespace=client.namespace,
        execution=WorkflowExecution(workflow_id=description.id, run_id=description.run_id),
        maximum_page_size=20,
    )
    controls: list[tuple[int, str]] = []  # the controls not taken, newest first
    taken = 0  # the last completed workflow task (none yet: every control is still to come)
    while not taken:
        with by():
            page = await client.workflow_service.get_workflow_execution_history_reverse(
                request, retry=True, timeout=time_left()
            )
        for event in page.history.events:
            name = event.workflow_execution_signaled_event_attributes.signal_name
            if event.event_id > seen:
                continue
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                taken = event.event_id
                break
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED and (
                name in CONTROL_STATES
            ):
                controls.append((event.event_id, name))
        if not page.next_page_token:
            break
        request.next_page_token = page.next_page_token
    for _, name in reversed(controls):
        state = state if state == "stopped" else CONTROL_STATES[name]
    return InFlight(state, controls[0][0] if controls else taken, whole)


# How long a control waits for a worker holding the run's workflow task to complete it, so that
# what is on its way can be read whole (a task takes milliseconds; a poll's end, up to seconds).
HELD_WAIT = 2.0


async def read_in_flight(
    client: Client, look: Callable[[], Awaitable[tuple[str, WorkflowExecutionDescription]]]
) -> tuple[WorkflowExecutionDescription, InFlight]:
    """A run as ``look`` describes it (its state as its worker last made it, and its
    description) and `state_in_flight`'s reading of it, looked at again while a worker holds a
    workflow task of the run, up to HELD_WAIT (the reading not whole then) and the request's
    deadline."""
    clock = asyncio.get_running_loop().time
    held_until, pause = clock() + HELD_WAIT, 0.05
    until = deadline()
    while True:
        state, description = await look()
        held = description.raw_description.pending_workflow_task.state
        if held != PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_STARTED or clock() > min(
            held_until, until or held_until
        ):
            # The history read once: not at every look while the task is held.
            return description, await state_in_flight(client, description, state)
        await asyncio.sleep(pause)
        pause = min(2 * pause, 0.4)


async def signal_once(client: Client, workflow_id: str, signal: str, request_id: str) -> None:
    """Send ``signal`` (no arguments) to the workflow's current run under ``request_id``: the
    server records a signal whose request id the run has seen once (the SDK's handle sends a
    fresh id each time)."""
    request = SignalWorkflowExecutionRequest(
        namespace=client.namespace,
        workflow_execution=WorkflowExecution(workflow_id=workflow_id),
        signal_name=signal,
        identity=client.identity,
        request_id=request_id,
    )
    with by(sends=True):
        await client.workflow_service.signal_workflow_execution(
            request, retry=True, timeout=time_left()
        )
