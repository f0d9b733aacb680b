"""A watch keeps its fixed-rate grid across a lost poll (issue #27).

The poll after a lost one used to check at once and start its grid there: every later check
of the watch came that much after its slot, for good, and a watch the dead process had just
checked was checked again. Now it goes on with the lost poll's grid: the first slot after the
dead process's last beat, at once if that is past (docs/polling.md, invariant 2).
"""

# ruff: noqa: F811 - the fixture `loopback_deps` is imported and used by name

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities.poll_session import PollSession
from activities.registry import build_activities
from ambient import temporal
from ambient.deps import WorkerDeps
from ambient.watches.models import TaskStatus
from ambient.watches.polling import PollEnd, PollLost, PollRequest, PollResult
from tests.conftest import unique
from tests.support.record import save_history
from tests.support.servers import serve
from tests.support.waits import eventually
from tests.watches.test_polling import USER, fast, poll_results, scheduled_polls, start
from tests.watches.test_workflows import loopback_deps  # noqa: F401  (fixture)
from workflows.web_monitor import WebMonitorWorkflow
from workflows.web_monitor_polls import LOST_POLL_WAIT

EVERY = 5.0  # the watch's interval in these tests (seconds)


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def test_the_grid_after_a_lost_poll_is_its_first_slot_after_the_last_beat() -> None:
    due = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    minute = timedelta(minutes=1)
    # The lost poll took the watch 0.8 s after the workflow's due-less-20 s (its start's
    # latency): its first check was at started + 20 s, not at ``due``.
    started = due - timedelta(seconds=20) + timedelta(seconds=0.8)
    first = started + timedelta(seconds=20)

    def after(silent: datetime | None, start: datetime | None = started) -> datetime:
        lost = PollLost(
            life="l", run_id="r", poll=2, process="p", silent_since=silent, started_at=start
        )
        return WebMonitorWorkflow.grid_after(due, 20.0, minute, lost)

    assert after(None) == due  # not known: the lost poll's due (at once if past)
    assert after(due + timedelta(seconds=90), start=None) == due + 2 * minute
    assert after(due - timedelta(seconds=5)) == first  # died before its first check
    assert after(first) == first + minute  # beat at the slot: it may have checked it
    # A beat between ``due`` and the real slot: that slot was not checked yet.
    assert after(due + timedelta(seconds=0.5)) == first
    assert after(first + timedelta(seconds=150)) == first + 3 * minute
    assert after(first + 3 * minute - timedelta(microseconds=1)) == first + 3 * minute


def _request(first_check_in: float) -> PollRequest:
    return PollRequest.model_validate(
        {
            "user": USER,
            "task": "t",
            "workflow_id": "web-monitor/u/t",
            "life": "l",
            "config": fast(["https://example.com/"]).model_dump(mode="json"),
            "targets": [],
            "first_check_in": first_check_in,
            "interval_seconds": 60.0,
            "window_seconds": 3600.0,
        }
    )


async def _session(first_check_in: float) -> PollSession:
    async def make() -> PollSession:
        return PollSession(None, _request(first_check_in))  # type: ignore[arg-type]

    return await ActivityEnvironment().run(make)


async def test_an_overdue_first_check_is_made_at_once_and_the_grid_keeps_its_slots() -> None:
    # Overdue by 20 s: checked at once; the next check is the grid's next slot, 40 s on.
    session = await _session(-20.0)
    slot = session.next_due
    assert slot <= time.time() - 19.9
    session.advance_grid(started=time.time())
    assert session.next_due == pytest.approx(slot + 60.0)
    # Overdue by 45 s (past half an interval): the next slot, 15 s after the check, is
    # skipped; no two checks of a page within half an interval.
    session = await _session(-45.0)
    slot = session.next_due
    session.advance_grid(started=time.time())
    assert session.next_due == pytest.approx(slot + 120.0)
    # On time: the next slot.
    session = await _session(0.0)
    slot = session.next_due
    session.advance_grid(started=slot)
    assert session.next_due == pytest.approx(slot + 60.0)


async def _scheduled_polls(handle: WorkflowHandle[Any, Any]) -> list[tuple[PollRequest, float]]:
    """Each poll the workflow scheduled: its request and when, on the workflow's clock (epoch
    s): ``workflow.now()`` of the task that scheduled it, its WorkflowTaskStarted event's time,
    which ``first_check_in`` is counted from (the scheduled event comes as long after it as
    the task took: half a second on a loaded machine)."""
    history = await handle.fetch_history()  # one read: times and polls from the same events
    times = {e.event_id: e.event_time.ToDatetime(UTC).timestamp() for e in history.events}
    return [
        (
            request,
            times[
                event.activity_task_scheduled_event_attributes.workflow_task_completed_event_id - 1
            ],
        )
        for request, event in await scheduled_polls(handle, history)
    ]


async def _polls(handle: WorkflowHandle[Any, Any], n: int) -> list[tuple[PollRequest, float]]:
    polls = await _scheduled_polls(handle)
    return polls if len(polls) >= n else []


@pytest.mark.devserver
async def test_the_poll_after_a_lost_one_goes_on_with_its_grid(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps
) -> None:
    """A poll whose process is dead (it never answers) is reported lost; the workflow does not
    wait for it, and the next poll's first check is the lost poll's first slot after the dead
    process's last beat, already past, so it is at once (a negative ``first_check_in``) and
    the grid keeps its slots."""
    answered: list[PollRequest] = []

    @activity.defn(name="poll_pages")
    async def poll_pages(request: PollRequest) -> PollResult:
        answered.append(request)
        if request.poll == 2:
            await asyncio.Event().wait()  # a dead process: no answer, no heartbeat
        if request.first_only:  # the baseline: the grid starts at once (and its spread)
            return PollResult(
                ended=PollEnd.FIRST, checks=1, seq=request.seq, urls=request.urls, next_check_in=0
            )
        # The poll after the lost one: one check, then nothing due for an hour.
        return PollResult(
            ended=PollEnd.WINDOW, checks=1, seq=request.seq, urls=request.urls, next_check_in=3600
        )

    others = [a for a in build_activities(loopback_deps) if a.__name__ != "poll_pages"]
    queue = unique("tq")
    async with Worker(
        dev_env.client,
        task_queue=queue,
        workflows=[WebMonitorWorkflow],
        activities=[poll_pages, *others],
        workflow_runner=temporal.workflow_runner(),
    ):
        handle = await start(
            dev_env, queue, fast(["https://example.com/"]), every=EVERY, window=600.0
        )
        ((_, _), (lost_request, scheduled)) = await eventually(partial(_polls, handle, 2))
        due = scheduled + lost_request.first_check_in  # the lost poll's first slot
        # Reported once the slot after the last beat is past, so the next check is overdue.
        await asyncio.sleep(max(0.0, due + EVERY + 1.0 - time.time()))
        signalled = time.time()
        # The sweep's word: poll 2's process last beat half an interval after that slot.
        await handle.signal(
            "poll_lost",
            PollLost(
                life=lost_request.life,
                run_id=(await handle.describe()).run_id or "",
                poll=2,
                process="dead",
                silent_since=_at(due + EVERY / 2),
                started_at=_at(scheduled),
            ),
        )
        polls = await eventually(
            partial(_polls, handle, 3), bound=LOST_POLL_WAIT.total_seconds() + 30
        )
        next_request, next_scheduled = polls[2]
        await handle.signal("stop")
        final = TaskStatus.model_validate(await asyncio.wait_for(handle.result(), 30))
    await save_history(handle, "web_monitor_poll_lost_grid")
    # Not waited for (its process is silent and nobody else took the watch): the next poll
    # starts at once, with the slot after the beat (due + one interval), past by then.
    assert next_scheduled - signalled < LOST_POLL_WAIT.total_seconds()
    assert next_request.first_check_in < 0
    # The task-start times are the workflow clock's to some ms (one read 11 ms off): within a
    # second, against slots 5 s apart.
    assert next_scheduled + next_request.first_check_in == pytest.approx(due + EVERY, abs=1.0)
    assert [r.poll for r in answered] == [1, 2, 3]
    assert final.checks == 2  # the baseline's and the third poll's; the lost one's none


LATE = 1.0  # each way of a hand-back in the test below, as on a loaded server (seconds)


@pytest.mark.devserver
async def test_a_watch_keeps_its_grid_however_long_its_hand_backs_take(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps
) -> None:
    """Each poll starts a second late in its worker and its result reaches the workflow a
    second after it handed back, as on a loaded host: the watch's checks stay on its grid
    (docs/watches.md, "Polling": no drift). They used to come that much later after every
    hand-back, for good: the grid was counted from the poll's start, and again from the
    moment the workflow read its result. (A poll started late in its worker checks as late,
    its instants counted from Temporal's start of it; the next poll is back on the grid, so
    the lags here are measured from the first steady check.)"""
    fetched: list[float] = []

    async def page(request: Request) -> Response:
        fetched.append(time.time())
        return Response("<p>The same page.</p>", media_type="text/html")

    registry = build_activities(loopback_deps)
    (real,) = [a for a in registry if getattr(a, "__name__", "") == "poll_pages"]

    @activity.defn(name="poll_pages")
    async def slow_hand_backs(request: PollRequest) -> PollResult:
        await asyncio.sleep(LATE)
        result: PollResult = await real(request)
        await asyncio.sleep(LATE)
        return result

    others = [a for a in registry if a is not real]
    queue = unique("tq")
    async with (
        serve(Starlette(routes=[Route("/page", page)])) as base,
        Worker(
            dev_env.client,
            task_queue=queue,
            workflows=[WebMonitorWorkflow],
            activities=[slow_hand_backs, *others],
            workflow_runner=temporal.workflow_runner(),
        ),
    ):
        # A poll window of one interval: a hand-back between every check or two.
        handle = await start(dev_env, queue, fast([f"{base}/page"]), every=EVERY, window=EVERY)

        async def checked() -> bool:
            return len(fetched) >= 6

        await eventually(checked, bound=60)
        await handle.signal("stop")
        await asyncio.wait_for(handle.result(), 30)
    await save_history(handle, "web_monitor_slow_hand_backs")
    handed_back = [r for r in await poll_results(handle) if r.checks]
    assert len(handed_back) >= 4  # the baseline's and at least three on the grid
    # The baseline is taken at creation; the grid starts after it (and its spread).
    steady = fetched[1:6]
    lags = [t - (steady[0] + k * EVERY) for k, t in enumerate(steady)]
    assert max(abs(lag) for lag in lags) < LATE, lags
