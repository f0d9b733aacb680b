"""What the server recorded of a briefing's runs, read without a worker: a query needs one to
replay the run, and a worker too busy to answer in time left the caller without the answer."""

from __future__ import annotations

import asyncio
from datetime import datetime

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from ambient import temporal
from ambient.briefing.models import BriefingRun, GreetOutcome, GreetRequest, GreetResult
from ambient.codec import CodecKeyError

# How long a read of the server's record may take where the caller goes on without it: as long
# as a query (which needs a worker too) may.
READ_TIMEOUT = 5.0
# What a read the caller goes on without may fail with: Temporal refusing or gone, out of time,
# an input of another version (ValueError), a payload this process cannot decode (a key rotated
# out: CodecKeyError; encryption turned off since: the SDK's KeyError of an unknown encoding).
UNREADABLE = (RPCError, RuntimeError, TimeoutError, ValueError, KeyError, CodecKeyError)


async def described(client: Client, task_id: str) -> tuple[datetime | None, str | None]:
    """When the running briefing was created (a new config keeps it) and its run id;
    not known: None."""
    try:
        description = await client.get_workflow_handle(task_id).describe()
        return temporal.created_at(await description.memo()), description.run_id
    except RPCError:
        return None, None


async def running_input(client: Client, task_id: str) -> tuple[str | None, BriefingRun | None]:
    """The running run's id and input; None when none runs or it cannot be read in a query's
    time (the server just answered late; Temporal gone; an input of another version)."""
    try:
        async with asyncio.timeout(READ_TIMEOUT):
            description = await client.get_workflow_handle(task_id).describe()
            if description.status is not WorkflowExecutionStatus.RUNNING:
                return None, None
            run = client.get_workflow_handle(task_id, run_id=description.run_id)
            history = run.fetch_history_events(page_size=1)
            first = await anext(aiter(history))
            started = first.workflow_execution_started_event_attributes.input.payloads
            [given] = await client.data_converter.decode(started, [BriefingRun])
            return description.run_id, given
    except (*UNREADABLE, StopAsyncIteration):
        return None, None


async def signals(client: Client, task_id: str, run_id: str) -> list[str]:
    """The signals run ``run_id`` took, in the order the server recorded them."""
    run = client.get_workflow_handle(task_id, run_id=run_id)
    return [
        event.workflow_execution_signaled_event_attributes.signal_name
        async for event in run.fetch_history_events()
        if event.HasField("workflow_execution_signaled_event_attributes")
    ]


async def greeting(
    client: Client,
    task_id: str,
    run_id: str | None = None,
    *,
    ended: bool = False,
    within: float = READ_TIMEOUT,
) -> tuple[BriefingRun, datetime | None, str | None] | None:
    """Run ``run_id``'s input (default: the last run, ``ended``: only once it has ended) and
    the latest greeting it knew of (when, and the door it came through where that run took
    it): its own spoken one, else its carry's. None when it cannot be read in ``within`` s."""
    try:
        async with asyncio.timeout(within):
            if run_id is None:
                description = await client.get_workflow_handle(task_id).describe()
                if ended and description.status is WorkflowExecutionStatus.RUNNING:
                    return None
                run_id = description.run_id
            given: BriefingRun | None = None
            vias: dict[str, str] = {}
            spoken: tuple[datetime | None, str | None] = (None, None)
            run = client.get_workflow_handle(task_id, run_id=run_id)
            async for event in run.fetch_history_events():
                if event.HasField("workflow_execution_started_event_attributes"):
                    payloads = event.workflow_execution_started_event_attributes.input.payloads
                    [given] = await client.data_converter.decode(payloads, [BriefingRun])
                elif event.HasField("workflow_execution_update_accepted_event_attributes"):
                    request = event.workflow_execution_update_accepted_event_attributes
                    update = request.accepted_request
                    if update.input.name == "greet":
                        payloads = update.input.args.payloads
                        [asked] = await client.data_converter.decode(payloads, [GreetRequest])
                        vias[update.meta.update_id] = asked.via
                elif event.HasField("workflow_execution_update_completed_event_attributes"):
                    completed = event.workflow_execution_update_completed_event_attributes
                    update_id = completed.meta.update_id
                    if update_id in vias and completed.outcome.HasField("success"):
                        payloads = completed.outcome.success.payloads
                        [answer] = await client.data_converter.decode(payloads, [GreetResult])
                        if answer.outcome is GreetOutcome.SPOKEN:
                            spoken = (answer.given_at, vias[update_id])
    except UNREADABLE:
        return None
    if given is None:
        return None
    return (given, *spoken) if spoken[0] else (given, given.carry.last_given_at, None)
