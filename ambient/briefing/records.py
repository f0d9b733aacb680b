"""What the server recorded of a briefing's runs, read without a worker (a query needs one to
replay the run, and a worker too busy to answer in time left the caller without the answer),
and what a new run of the briefing carries from them: the day a run it replaces or follows
spoke, and a pause, resume or delete that reached the replaced run late."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError

from ambient import no_answer, temporal
from ambient.briefing.config import midnight_ending
from ambient.briefing.errors import BriefingStartedError
from ambient.briefing.greeting_answers import GreetOutcome, GreetRequest, GreetResult
from ambient.briefing.models import BriefingCarry, BriefingRun, BriefingStatus
from ambient.codec import CodecKeyError
from ambient.storage import Database
from ambient.storage.briefings import BriefingRepository
from ambient.watches.configs import task_id_for

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
            first = await anext(aiter(run.fetch_history_events(page_size=1)))
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
                        # A trial sent by hand (no given_at) spoke the day to nobody.
                        if answer.outcome is GreetOutcome.SPOKEN and answer.given_at:
                            spoken = (answer.given_at, vias[update_id])
    except UNREADABLE:
        return None
    if given is None:
        return None
    return (given, *spoken) if spoken[0] else (given, given.carry.last_given_at, None)


async def greeted_since(
    client: Client, current: BriefingStatus, task_id: str, run_id: str, deadline: float
) -> BriefingStatus:
    """``current`` with a greeting run ``run_id`` spoke after it was read, as the server
    recorded it: a run that did not take the hand-over (its worker slow) may still have
    spoken one, and the new run, not told of it, would speak the day again. Read within
    half the time left to replace the run; none read, the read before stands."""
    day = current.day
    if day is None or current.given_at is not None:
        return current
    left = deadline - asyncio.get_running_loop().time()
    seen = await greeting(client, task_id, run_id, within=max(left / 2, 0))
    at, via = seen[1:] if seen else (None, None)
    if at is None:
        return current
    since = current.last_given_at is None or at > current.last_given_at
    today = at.astimezone(ZoneInfo(current.config.timezone)).date().isoformat() == day.date
    if not (since and today):
        return current
    return current.model_copy(update={"given_at": at, "given_via": via})


async def keep_controls(
    client: Client, replaced: str, new_run: WorkflowHandle[Any, Any], carry: BriefingCarry
) -> str | None:
    """A pause, resume or delete that reached the replaced run after its status was read
    (from another door, and answered) holds in the new run too; the new run's state then.
    Read from the replaced run's history, the server's record: a query would need a worker
    to replay the ended run, and one too busy to answer in time lost the control. The last
    pause or resume there is the run's last state; a delete at any time stopped it."""
    try:
        sent = await signals(client, new_run.id, replaced)
    except RPCError as exc:
        raise BriefingStartedError(
            "the new config is running, but a pause or delete sent while it was being "
            f"changed could not be read ({no_answer.refusal(exc)}); read the daily "
            "briefing's status and send it again"
        ) from None
    toggles = [name for name in sent if name in ("pause", "resume")]
    paused = toggles[-1] == "pause" if toggles else carry.paused
    if "stop" in sent:
        signal, state = "stop", "stopped"
    elif paused != carry.paused:
        signal, state = ("pause", "paused") if paused else ("resume", "active")
    else:
        return None
    try:
        await new_run.signal(signal)
    except RPCError as exc:
        # Started, so the change is made: what is lost is the control, said as such.
        verb = "delete" if signal == "stop" else signal
        raise BriefingStartedError(
            f"the new config is running, but the {verb} sent while it was being changed "
            f"did not reach it ({no_answer.refusal(exc)}); {verb} the daily briefing again"
        ) from None
    return state


async def store_given(db: Database, user: str, date: str, at: datetime, via: str | None) -> None:
    """The day's greeting on its stored briefing (``via`` not known: "unknown")."""
    async with db.session() as session:
        await BriefingRepository(session).record_given(
            user, date, at, via or "unknown", task_id_for(user)
        )
        await session.commit()


async def given_before(client: Client, db: Database, user: str) -> BriefingCarry:
    """A briefing stopped and created again does not speak a day it already spoke: the
    stored greeting of the latest briefing is carried into the new one, or the ended
    run's own, when it could not store it (the database away at its end)."""
    async with db.session() as session:
        rows = await BriefingRepository(session).list(user, limit=1)
    carry = BriefingCarry()
    if rows and rows[0].given_at is not None:
        carry = BriefingCarry(last_date=rows[0].date, last_given_at=rows[0].given_at)
    # Read from the server's record, not a query: a worker too busy to replay the ended run
    # in a query's time left the carry without it, and the new run spoke the day again.
    ended = await greeting(client, task_id_for(user), ended=True)
    if ended is None:
        return carry
    run, at, via = ended
    if at is not None and (carry.last_given_at is None or carry.last_given_at < at):
        date = at.astimezone(ZoneInfo(run.config.timezone)).date().isoformat()
        await store_given(db, user, date, at, via)
        carry = BriefingCarry(last_date=date, last_given_at=at)
    if carry.last_date is not None:
        # The day's midnight where it was briefed: a new zone's dates do not compare.
        carry.last_midnight = midnight_ending(carry.last_date, run.config)
    return carry
