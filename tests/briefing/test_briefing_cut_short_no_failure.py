"""A daily briefing's preparation, push or failure push cut short by a delete or a Temporal
cancel is no failure of the day: the task's status after the run has ended says stopped, and no
preparation or push error the user could act on (the activity's cancel read as one said the
day's preparation "failed" or its push "cancelled"); nothing is sent twice, and the run ends as
a delete (Completed "stopped") or a cancel (Canceled) ends it. Dev server for the preparation
and the send (a briefing created inside its window prepares at once); the time-skipping server
for the failure push at the window's end."""

from __future__ import annotations

import asyncio
from typing import Literal

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import WorkflowEnvironment

from activities.briefing import BriefingActivities
from ambient.briefing.config import BriefingConfig
from ambient.deps import WorkerDeps
from ambient.storage.briefings import BriefingRepository
from ambient.storage.repositories import DeliveryRepository
from ambient.watches.models import TaskStatus
from ambient.watches.service import TaskService
from tests.briefing.harness import Stack, briefing_stack, held_preparations, make_user
from tests.briefing.test_briefing_task_door import deleted_while_sending, zone_at_midday
from tests.conftest import unique
from tests.support.channels import mail_held
from tests.support.record import save_history
from tests.support.servers import HANG
from tests.support.waits import eventually

End = Literal["delete", "cancel"]
# What the status says of a day whose step was cut short: nothing failed.
NO_FAILURE = {"preparation_error": None, "push_error": None}


@pytest.mark.parametrize("end", ["delete", "cancel"])
async def test_a_preparation_cut_short_by_a_delete_or_cancel_is_no_failure_of_the_day(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch, end: End
) -> None:
    """Pat's logs are slow to read at her preparation time (the preparation held) when she
    deletes her briefing, or an operator cancels its run in the Web UI: the preparation is
    cancelled with its activity, and its status must not say the day's preparation failed (a
    cancel taken for a failure said "preparation failed: ... cancelled")."""
    reasons, held = held_preparations(monkeypatch)
    user = unique(f"pat-{end}")
    await make_user(deps.db, user)
    async with briefing_stack(dev_env, deps) as stack:
        tasks = _tasks(dev_env, deps, stack)
        config = BriefingConfig(timezone=zone_at_midday(), language="en", window_end="20:00")
        try:
            # Created inside its window, past its preparation time: it prepares at once.
            await stack.service.create(user, config)
            await eventually(lambda: _true(reasons == ["scheduled"]), "the preparation")
            run = dev_env.client.get_workflow_handle(f"daily-briefing/{user}")
            await _ended(tasks, run, user, end)
            seen = await tasks.get(user, f"daily-briefing/{user}")
            if end == "cancel":  # a delete's: tests/briefing/test_briefing_deleted_mid_step.py
                await save_history(run, "daily_briefing_cancelled_while_preparing_scheduled")
        finally:
            held.set()  # before the worker stops: it waits for its activities
    assert reasons == ["scheduled"], reasons  # not tried again
    assert _failures(seen) == NO_FAILURE, seen.detail
    assert seen.state == "stopped", seen
    assert seen.detail["phase"] == "stopped", seen.detail  # not "preparing" (it was cut)


async def test_a_send_cut_short_by_a_delete_is_no_failed_push(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sam sends his briefing while the mail server is slow to take it, and deletes the
    briefing meanwhile: the push is cancelled and records what the inbox took. The status of
    the ended briefing must not say the push failed (a cancel taken for a failure said
    "<date>: cancelled" as the day's push error), and the inbox has its one copy."""
    user = unique("sam")
    async with deleted_while_sending(dev_env, deps, user, monkeypatch) as (tasks, _c, release):
        release.set()  # the day's push recorded: the stopped run ends
        run = dev_env.client.get_workflow_handle(f"daily-briefing/{user}")
        assert await asyncio.wait_for(run.result(), HANG) == "stopped"
        seen = await tasks.get(user, f"daily-briefing/{user}")
    assert _failures(seen) == NO_FAILURE, seen.detail
    assert seen.state == "stopped", seen
    async with deps.db.session() as session:
        (day,) = await BriefingRepository(session).list(user)
        rows = await DeliveryRepository(session).list(user=user)
    assert [r.status for r in rows if r.channel == "inbox"] == ["sent"], rows  # once
    assert day.status == "pushed", day


@pytest.mark.parametrize("end", ["delete", "cancel"])
async def test_the_push_of_why_a_day_is_unprepared_cut_short_is_no_failed_push(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch, end: End
) -> None:
    """Una's day could not be prepared; at the window's end the push saying why waits on a
    slow mail server when she deletes the briefing, or an operator cancels its run: the push
    is cancelled. The ended briefing's status must not say that push failed (a cancel taken
    for a failure said "<date>: cancelled" as the day's push error); the preparation's own
    failure stays said. (The window's end on the time-skipping server: on the dev server it
    is the wall clock's.)"""

    async def prepare(_self, _request):  # type: ignore[no-untyped-def]
        raise ApplicationError("the log source is broken", non_retryable=True)

    monkeypatch.setattr(BriefingActivities, "_prepare", prepare)
    user = f"una-{end}"
    config = BriefingConfig(timezone="Asia/Shanghai", language="en")
    async with mail_held(ts_env, deps, user, config) as (stack, day, run, held):
        await stack.skip_to(day.window_end)
        await held.asked()
        tasks = _tasks(ts_env, deps, stack)
        await _ended(tasks, run, user, end)
        seen = await tasks.get(user, f"daily-briefing/{user}")
        if end == "delete":  # a cancel's: tests/briefing/test_briefing_deleted_mid_step.py
            await save_history(run, "daily_briefing_deleted_while_pushing_unprepared")
    assert seen.detail["push_error"] is None, seen.detail
    assert seen.detail["preparation_error"] is not None, seen.detail
    assert seen.state == "stopped", seen
    assert seen.detail["phase"] == "stopped", seen.detail  # not "pushing" (it was cut)
    async with deps.db.session() as session:
        rows = await DeliveryRepository(session).list(user=user)
    # One email asked for, none sent twice: the cut push is not tried again.
    assert len([r for r in rows if r.channel == "email"]) == 1, rows


def _tasks(env: WorkflowEnvironment, deps: WorkerDeps, stack: Stack) -> TaskService:
    return TaskService(env.client, stack.service.settings, deps.db, briefings=stack.service)


async def _ended(
    tasks: TaskService, run: WorkflowHandle[object, object], user: str, end: End
) -> None:
    """``user``'s briefing deleted through the task door, or its run cancelled in Temporal;
    the run ended as that ends it."""
    if end == "delete":
        await tasks.delete(user, f"daily-briefing/{user}")
        assert await asyncio.wait_for(run.result(follow_runs=False), HANG) == "stopped"
        return
    await run.cancel()
    with pytest.raises(WorkflowFailureError) as ended:
        await asyncio.wait_for(run.result(follow_runs=False), HANG)
    assert isinstance(ended.value.cause, CancelledError), ended.value.cause


def _failures(seen: TaskStatus) -> dict[str, object]:
    return {name: seen.detail[name] for name in NO_FAILURE}


async def _true(value: bool) -> bool:
    return value
