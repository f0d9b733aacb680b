"""A daily briefing's run cancelled in Temporal (the Web UI's "Request Cancellation") while it
records a greeting, pushes at the window's end, or a send or regenerate is under way: the run
ends Canceled, a request under way is answered, a push whose inbox took its copy reads pushed,
and no delivery of the cut push stays in flight for ever (time-skipping test server, the
greeting's write, the mail server or the preparation held)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import CancelledError
from temporalio.testing import WorkflowEnvironment

import activities.briefing
from ambient.briefing.config import BriefingConfig
from ambient.briefing.errors import BriefingReplacedError
from ambient.deps import WorkerDeps
from ambient.domain.notify import HANDED_CANCELLED
from ambient.domain.users import Language
from ambient.storage.repositories import DeliveryRepository
from api.i18n import Words
from api.routers.ops_pages import briefing_problem
from tests.briefing.harness import briefing_stack, held_preparations, make_user
from tests.support.channels import mail_held
from tests.support.record import save_history
from tests.support.servers import HANG
from tests.support.waits import eventually

CONFIG = BriefingConfig(timezone="Asia/Shanghai", language="en")
# The email's row once the push is cut short, its message handed to the mail server: given up
# as maybe delivered (it stayed `pending`, in flight for good).
HANDED = ("failed", HANDED_CANCELLED)


async def test_a_temporal_cancel_while_the_greeting_is_recorded_ends_the_run_canceled(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Gus greeted his briefing; at the window's end the run writes the greeting down (the
    write held) when an operator cancels the run in the Web UI: the run took the cancel for a
    failed write and went on to the next day's run (it never closed). It ends Canceled."""
    taken, release = asyncio.Event(), asyncio.Event()
    store = activities.briefing.store_given

    async def held(*args, **kwargs):  # type: ignore[no-untyped-def]
        taken.set()
        await release.wait()
        return await store(*args, **kwargs)

    monkeypatch.setattr(activities.briefing, "store_given", held)
    await make_user(deps.db, "gus")
    async with briefing_stack(ts_env, deps) as stack:
        day = await stack.created_in_window("gus", CONFIG)
        run = ts_env.client.get_workflow_handle("daily-briefing/gus")
        first = (await run.describe()).run_id
        answer = await stack.service.greet("gus", via="voice", request_id="g1")
        assert answer.outcome.value == "spoken", answer
        run = ts_env.client.get_workflow_handle("daily-briefing/gus", run_id=first)
        try:
            await stack.skip_to(day.window_end)
            await asyncio.wait_for(taken.wait(), HANG)
            await run.cancel()
            await eventually(lambda: _closed(run), "the run closed")
        finally:
            release.set()
        status = (await run.describe()).status
        if status is WorkflowExecutionStatus.CANCELED:
            await save_history(run, "daily_briefing_cancelled_while_recording_greeting")
    assert status is WorkflowExecutionStatus.CANCELED, status


async def test_a_temporal_cancel_while_the_greeting_is_recorded_settles_a_send_under_way(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pia was greeted and sends her briefing by email (a slow mail server, its inbox copy
    taken) as the window ends and the run writes the greeting down (the write held); an
    operator cancels the run. The cancel reached the run as the write's activity cancelled,
    not asyncio's: the run ended at once under the send, its push abandoned, the day "ready"
    and the email's row pending. The send's push is settled and answered first."""
    taken, release = asyncio.Event(), asyncio.Event()
    store = activities.briefing.store_given

    async def held_store(*args, **kwargs):  # type: ignore[no-untyped-def]
        taken.set()
        await release.wait()
        return await store(*args, **kwargs)

    monkeypatch.setattr(activities.briefing, "store_given", held_store)
    async with mail_held(ts_env, deps, "pia", CONFIG) as (stack, day, run, held):
        try:
            # Seconds before the window's end: the clock is not skipped while the push runs
            # (a skip past its heartbeat timeout would time the push out).
            await stack.skip_to(day.window_end - timedelta(seconds=3))
            answer = await stack.service.greet("pia", via="voice", request_id="g1")
            assert answer.outcome.value == "spoken", answer
            sending = asyncio.create_task(stack.service.send("pia", request_id="s1"))
            await held.asked()
            await asyncio.wait_for(taken.wait(), HANG)  # the window ends as the push runs
            await run.cancel()
            with pytest.raises(BriefingReplacedError) as replaced:  # a run ended under it
                await asyncio.wait_for(sending, HANG)
            with pytest.raises(WorkflowFailureError) as ended:
                await asyncio.wait_for(run.result(follow_runs=False), HANG)
            await save_history(run, "daily_briefing_cancelled_while_recording_greeting_sending")
        finally:
            release.set()
    assert isinstance(ended.value.cause, CancelledError), ended.value.cause
    # The page says it in its reader's language (it said "Briefings are unavailable right
    # now" in either).
    assert briefing_problem(replaced.value, Words(Language.ZH)) == (
        "每日简报在这次发送完成前被替换或停止了；已开始的部分可能已经完成：请先查看简报的状态，"
        "再决定是否重新发送"
    )
    assert briefing_problem(replaced.value, Words(Language.EN)) == (
        "The daily briefing was replaced or stopped before this send finished; what it had "
        "begun may be done: check the briefing's status before you send again"
    )
    view = await stack.service.get_briefing("pia", day.date)
    # Given (by voice) and pushed: the push's record was abandoned ("ready" to push).
    assert (view.status, view.pushed_at is not None) == ("given", True), view
    assert await _rows(deps, "pia") == {"inbox": ("sent", None), "email": HANDED}


async def test_a_temporal_cancel_meeting_the_window_end_push_ends_it_with_the_day_pushed(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Nobody greeted Cal's briefing; at the window's end its email waits on a slow mail
    server (its inbox copy taken) and an operator cancels the run in the Web UI: the run ends
    Canceled and the day reads pushed (as it did), and the email's row is given up as maybe
    delivered (it stayed `pending`, in flight for good)."""
    async with mail_held(ts_env, deps, "cal", CONFIG) as (stack, day, run, held):
        # To the window's end, not past it: the clock is not skipped while the push runs.
        await stack.skip_to(day.window_end)
        await held.asked()
        await run.cancel()
        with pytest.raises(WorkflowFailureError) as ended:
            await asyncio.wait_for(run.result(follow_runs=False), HANG)
        await save_history(run, "daily_briefing_cancelled_while_pushing")
        # The cut try let its rows go as it ended: the give-up took them at its first try (a
        # row a live try holds is left to it, and given up once that lease ends).
        assert await _given_up_at_attempt(run) == 1
    assert isinstance(ended.value.cause, CancelledError), ended.value.cause
    view = await stack.service.get_briefing("cal", day.date)
    assert (view.status, view.pushed_at is not None) == ("pushed", True), view
    assert await _rows(deps, "cal") == {"inbox": ("sent", None), "email": HANDED}


async def test_a_send_under_way_when_the_run_is_cancelled_is_answered_and_settled(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Dee sends her briefing; its email waits on a slow mail server (its inbox copy taken)
    when an operator cancels the run in the Web UI: the run ended under the send (its caller
    told so by the server), its push abandoned, and the day stayed "ready". The push is
    cancelled and settled first: the day reads pushed, the email's row is given up as maybe
    delivered, and the send is answered as before."""
    async with mail_held(ts_env, deps, "dee", CONFIG) as (stack, day, run, held):
        await stack.skip_to(day.window_start + timedelta(minutes=5))
        sending = asyncio.create_task(stack.service.send("dee", request_id="s1"))
        await held.asked()
        await run.cancel()
        with pytest.raises(BriefingReplacedError):  # answered, as a run ended under it
            await asyncio.wait_for(sending, HANG)
        with pytest.raises(WorkflowFailureError) as ended:
            await asyncio.wait_for(run.result(follow_runs=False), HANG)
        await save_history(run, "daily_briefing_cancelled_while_sending")
    assert isinstance(ended.value.cause, CancelledError), ended.value.cause
    view = await stack.service.get_briefing("dee", day.date)
    assert (view.status, view.pushed_at is not None) == ("pushed", True), view
    assert await _rows(deps, "dee") == {"inbox": ("sent", None), "email": HANDED}


async def test_a_regenerate_under_way_when_the_run_is_cancelled_is_answered(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eva regenerates her briefing (its logs slow to read) when an operator cancels the run
    in the Web UI: the regenerate is answered (as before, as a run ended under it), and its
    preparation is cancelled with the run, not left to run on."""
    await make_user(deps.db, "eva")
    async with briefing_stack(ts_env, deps) as stack:
        _day, first = await stack.created("eva", CONFIG)
        run = ts_env.client.get_workflow_handle("daily-briefing/eva", run_id=first)
        reasons, held = held_preparations(monkeypatch)
        try:
            await eventually(lambda: _planned(run), "the day planned")
            regenerating = asyncio.create_task(stack.service.regenerate("eva"))
            await eventually(lambda: _true(reasons == ["regenerate"]), "the regenerate")
            await run.cancel()
            with pytest.raises(BriefingReplacedError) as replaced:  # a run ended under it
                await asyncio.wait_for(regenerating, HANG)
            with pytest.raises(WorkflowFailureError) as ended:
                await asyncio.wait_for(run.result(follow_runs=False), HANG)
            events = [e.event_type async for e in run.fetch_history_events()]
            await save_history(run, "daily_briefing_cancelled_while_regenerating")
        finally:
            held.set()
    assert isinstance(ended.value.cause, CancelledError), ended.value.cause
    assert briefing_problem(replaced.value, Words(Language.ZH)) == (
        "每日简报在这次重新生成完成前被替换或停止了；已开始的部分可能已经完成：请先查看简报的"
        "状态，再决定是否重新生成"
    )
    # The preparation is cancelled with the run: it was left to run on (to its heartbeat's
    # failure), and the run ended under the regenerate (the worker warned of it).
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED in events


async def _rows(deps: WorkerDeps, user: str) -> dict[str, tuple[str, str | None]]:
    """Each delivery of ``user``'s briefing: its status and error, by channel."""
    async with deps.db.session() as session:
        rows = await DeliveryRepository(session).list(user=user, task=f"daily-briefing/{user}")
    return {r.channel: (r.status, r.error) for r in rows}


async def _given_up_at_attempt(run: WorkflowHandle[object, object]) -> int:
    """The attempt at which the run's notify_given_up started (its last)."""
    events = [e async for e in run.fetch_history_events()]
    scheduled = {
        e.event_id
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == "notify_given_up"
    }
    (started,) = [
        e.activity_task_started_event_attributes.attempt
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
        and e.activity_task_started_event_attributes.scheduled_event_id in scheduled
    ]
    return started


async def _closed(run: WorkflowHandle[object, object]) -> bool:
    return (await run.describe()).status is not WorkflowExecutionStatus.RUNNING


async def _planned(run: WorkflowHandle[object, object]) -> bool:
    from workflows.daily_briefing import DailyBriefingWorkflow

    return (await run.query(DailyBriefingWorkflow.status)).day is not None


async def _true(value: bool) -> bool:
    return value
