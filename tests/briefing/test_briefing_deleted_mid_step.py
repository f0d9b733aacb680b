"""A daily briefing deleted while its run's own step is under way (the scheduled preparation,
the push of a morning nobody greeted) ends at once, and a create meanwhile starts it again,
the day read pushed once the inbox took its copy; a Temporal cancel meeting that push ends the
run Canceled (time-skipping test server, the preparation, the mail server or the inbox's write
held)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import WorkflowEnvironment

from activities.briefing import BriefingActivities
from ambient.briefing.config import BriefingConfig, DayPlan
from ambient.clients.notify import inbox
from ambient.deps import WorkerDeps
from ambient.domain.notify import HANDED_CANCELLED
from ambient.storage.repositories import DeliveryRepository
from tests.briefing.harness import Stack, briefing_stack, held_preparations, make_user
from tests.support.channels import mail_held
from tests.support.record import save_history
from tests.support.servers import HANG
from tests.support.waits import eventually

CONFIG = BriefingConfig(timezone="Asia/Shanghai", language="en")
CANCEL_REQUESTED = EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED
SCHEDULED = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
ENDED = [
    f"activity_task_{end}_event_attributes"
    for end in ("completed", "failed", "timed_out", "canceled")
]


async def test_a_briefing_deleted_during_its_scheduled_preparation_is_created_again_at_once(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pia's logs are slow to read at her preparation time (the preparation held) and she
    deletes her briefing: the deleted run waited for that preparation (up to ~30 minutes with
    its retries), and creating the briefing again meanwhile said it was "still finishing". The
    preparation is cancelled with its activity, the run ends "stopped", and the create starts
    the briefing again."""
    await make_user(deps.db, "pia")
    reasons, held = held_preparations(monkeypatch)
    async with briefing_stack(ts_env, deps) as stack:
        day, first = await stack.created("pia", CONFIG)
        deleted = ts_env.client.get_workflow_handle("daily-briefing/pia", run_id=first)
        try:
            await stack.skip_to(day.prepare_at + timedelta(seconds=1))
            await eventually(lambda: _true(reasons == ["scheduled"]), "the day's preparation")
            await stack.service.delete("pia")
            again = await asyncio.wait_for(stack.service.create("pia", CONFIG), HANG)
            assert await asyncio.wait_for(deleted.result(), HANG) == "stopped"
            await save_history(deleted, "daily_briefing_deleted_while_preparing_scheduled")
            # Not tried again by the deleted run (the new run prepares its own day, in a race
            # with this test's end: its preparation is not counted here).
            events = (await deleted.fetch_history()).events
            scheduled = [
                e.activity_task_scheduled_event_attributes.activity_type.name
                for e in events
                if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            ]
            assert scheduled.count("prepare_briefing") == 1, scheduled
        finally:
            held.set()
    assert again.created, again
    assert reasons[0] == "scheduled", reasons


async def test_a_briefing_deleted_during_its_unheard_push_is_created_again_at_once(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Nobody greeted Rex's briefing; at the window's end its push waits on a slow mail server
    (it has the message, its answer held) and he deletes the briefing: the deleted run waited
    for the push (up to its retries' end) and creating it again said "still finishing". The
    push is cancelled, the run ends "stopped", the create starts it again; the day reads pushed
    (its inbox copy was taken) and the email's delivery says it may have been delivered."""
    async with _push_held(ts_env, deps, "rex") as (stack, day, deleted):
        await stack.service.delete("rex")
        again = await asyncio.wait_for(stack.service.create("rex", CONFIG), HANG)
        assert await asyncio.wait_for(deleted.result(), HANG) == "stopped"
        await save_history(deleted, "daily_briefing_deleted_while_pushing")
    assert again.created, again
    async with deps.db.session() as session:
        rows = await DeliveryRepository(session).list(user="rex", task="daily-briefing/rex")
    assert ("inbox", "sent") in [(r.channel, r.status) for r in rows], rows
    # The email's row: sent if the server's answer came before the try heard the cancel, else
    # given up as the message handed over (not left in flight for good): never said not sent.
    assert [(r.status, r.error) for r in rows if r.channel == "email"] in (
        [("sent", None)],
        [("failed", HANDED_CANCELLED)],
    ), rows
    view = await stack.service.get_briefing("rex", day.date)
    assert (view.status, view.pushed_at is not None) == ("pushed", True), view


async def test_a_temporal_cancel_meeting_the_push_of_why_a_day_is_unprepared_ends_it_canceled(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Una's day could not be prepared; at the window's end the push saying why waits on a
    slow mail server, and an operator cancels the run in the Web UI: the push took the cancel
    for its failure and the run went on, not closed at all. It ends Canceled, the push's
    activity cancelled with it, and the email's delivery is not left in flight. (Deleted
    first, the run ends at once, its push cancelled: a cancel after the delete finds it ended
    or ending, whichever reaches the server first, so that case is the delete's, tested
    above.)"""

    async def prepare(_self, _request):  # type: ignore[no-untyped-def]
        raise ApplicationError("the log source is broken", non_retryable=True)

    monkeypatch.setattr(BriefingActivities, "_prepare", prepare)
    async with _push_held(ts_env, deps, "una") as (_stack, _day, run):
        await run.cancel()
        await eventually(lambda: _closed(run), "the run closed")
        with pytest.raises(WorkflowFailureError) as ended:
            await asyncio.wait_for(run.result(follow_runs=False), HANG)
        events = [e.event_type async for e in run.fetch_history_events()]
        await save_history(run, "daily_briefing_cancelled_while_pushing_unprepared")
    assert isinstance(ended.value.cause, CancelledError), ended.value.cause
    assert (await run.describe()).status is WorkflowExecutionStatus.CANCELED
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED in events
    # Its email, handed to the mail server, is given up as maybe delivered (the push waited
    # for its activity to end): it stayed `pending`, in flight for good.
    async with deps.db.session() as session:
        rows = await DeliveryRepository(session).list(user="una", task="daily-briefing/una")
    assert [(r.status, r.error) for r in rows if r.channel == "email"] == [
        ("failed", HANDED_CANCELLED)
    ], rows


async def test_a_briefing_deleted_as_its_push_writes_the_inbox_reads_pushed_once_it_took_it(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody greeted Ida's briefing; at the window's end its push is writing her inbox's copy
    (the write held) when she deletes the briefing: the run recorded the push at once, found
    no copy sent and recorded nothing, then the inbox took the copy (its activity went on to
    its next heartbeat): the day stayed "ready", the message in her inbox said lost. The run
    waits for the push's activity to end, and the day reads pushed."""
    taken, release = asyncio.Event(), asyncio.Event()
    store = inbox.store

    async def held(*args, **kwargs):  # type: ignore[no-untyped-def]
        taken.set()
        await release.wait()
        return await store(*args, **kwargs)

    monkeypatch.setattr(inbox, "store", held)
    await make_user(deps.db, "ida")
    async with briefing_stack(ts_env, deps) as stack:
        day, first = await stack.created("ida", CONFIG)
        run = ts_env.client.get_workflow_handle("daily-briefing/ida", run_id=first)
        try:
            await stack.skip_to(day.window_end)
            await asyncio.wait_for(taken.wait(), HANG)
            await stack.service.delete("ida")
            # The inbox's write goes on once the run has done what it does before the push's
            # activity ends (a record of the push made at once, before: it read no copy sent).
            await eventually(lambda: _before_the_activity_ends(run), "the push's cancel")
        finally:
            release.set()
        assert await asyncio.wait_for(run.result(), HANG) == "stopped"
        await save_history(run, "daily_briefing_deleted_while_pushing_to_inbox")
        await eventually(lambda: _inbox_sent(deps, "ida"), "the inbox's copy taken")
        view = await stack.service.get_briefing("ida", day.date)
    assert (view.status, view.pushed_at is not None) == ("pushed", True), view


async def _before_the_activity_ends(run: WorkflowHandle[object, object]) -> bool:
    """An activity's cancel asked, and every activity the run scheduled since ended."""
    events = [e async for e in run.fetch_history_events()]
    asked = [i for i, e in enumerate(events) if e.event_type == CANCEL_REQUESTED]
    if not asked:
        return False
    since = {e.event_id for e in events[asked[0] :] if e.event_type == SCHEDULED}
    ended = {
        attributes.scheduled_event_id
        for e in events
        for name in ENDED
        if e.HasField(name) and (attributes := getattr(e, name))
    }
    return since <= ended


async def _inbox_sent(deps: WorkerDeps, user: str) -> bool:
    async with deps.db.session() as session:
        rows = await DeliveryRepository(session).list(user=user, task=f"daily-briefing/{user}")
    return ("inbox", "sent") in [(r.channel, r.status) for r in rows]


async def _closed(run: WorkflowHandle[object, object]) -> bool:
    return (await run.describe()).status is not WorkflowExecutionStatus.RUNNING


@asynccontextmanager
async def _push_held(
    env: WorkflowEnvironment, deps: WorkerDeps, user: str
) -> AsyncIterator[tuple[Stack, DayPlan, WorkflowHandle[object, object]]]:
    """``user``'s briefing, prepared and not greeted, at its window's end, its push's email
    taken by the mail server and its answer held: the stack, the day, the day's run."""
    async with mail_held(env, deps, user, CONFIG) as (stack, day, run, held):
        # To the window's end, not past it: the clock is not skipped while the push runs.
        await stack.skip_to(day.window_end)
        await held.asked()
        yield stack, day, run


async def _true(value: bool) -> bool:
    return value
