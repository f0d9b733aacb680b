"""A pause or a delete reaching a daily briefing after its window ended, while the run waits
for a regenerate under way before it goes on to the next day (time-skipping test server, the
regenerate's preparation held)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.briefing import BriefingActivities
from ambient.briefing.config import BriefingConfig
from ambient.briefing.errors import BriefingNotFoundError
from ambient.deps import WorkerDeps
from tests.briefing.harness import Stack, briefing_stack, make_user
from tests.support.record import save_history
from tests.support.servers import HANG
from tests.support.waits import eventually
from workflows.daily_briefing import DailyBriefingWorkflow

# Nobody greets: no push at the window's end, the run goes straight to its wait.
CONFIG = BriefingConfig(timezone="Asia/Shanghai", language="en", push_if_not_greeted=False)


async def test_a_pause_while_the_day_waits_for_a_regenerate_carries_to_the_next_day(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ada regenerates her briefing as its window ends (the model slow) and pauses it while
    the run waits for that regenerate before the next day: her status said paused, and the
    next day's run was not (it prepared and pushed for a briefing she had paused)."""
    async with _done_waiting(ts_env, deps, monkeypatch, "ada") as (stack, run, regenerate):
        assert (await stack.service.pause("ada")).paused
        assert (await regenerate).spoken_text  # answered: the run goes on to the next day
        await eventually(lambda: _next_run(ts_env, "ada", run), "the next day's run")
        status = await stack.service.status("ada")
    assert status.paused, status
    assert status.phase == "paused", status.phase


async def test_a_delete_while_the_day_waits_for_a_regenerate_ends_the_run_stopped(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bo regenerates his briefing as its window ends (the model slow) and deletes it while
    the run waits for that regenerate before the next day: the regenerate was refused as
    deleted, and the run went on to the next day all the same, a deleted briefing that
    prepared and pushed the next morning, its status not stopping. The run ends "stopped"."""
    async with _done_waiting(ts_env, deps, monkeypatch, "bo") as (stack, run, regenerate):
        await stack.service.delete("bo")
        with pytest.raises(BriefingNotFoundError):  # deleted, as the run says
            await asyncio.wait_for(regenerate, HANG)
        assert await asyncio.wait_for(run.result(follow_runs=False), HANG) == "stopped"
        await save_history(run, "daily_briefing_deleted_at_the_window_end")
        with pytest.raises(BriefingNotFoundError):
            await stack.service.status("bo")
        assert (await run.query(DailyBriefingWorkflow.status)).phase == "stopped"


@asynccontextmanager
async def _done_waiting(
    env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch, user: str
) -> AsyncIterator[tuple[Stack, WorkflowHandle[Any, Any], Coroutine[Any, Any, Any]]]:
    """``user``'s briefing prepared on time, the window ended while a regenerate's preparation
    is held: the run's day "done", waiting for that regenerate before the next run. The stack,
    the first run and the regenerate's answer; the preparation let go as the block ends, or
    at the first await of the regenerate's answer."""
    started, release = asyncio.Event(), asyncio.Event()
    prepare = BriefingActivities._prepare

    async def held(self: BriefingActivities, request: Any) -> Any:
        if request.reason == "regenerate":
            started.set()
            await release.wait()
        return await prepare(self, request)

    monkeypatch.setattr(BriefingActivities, "_prepare", held)
    await make_user(deps.db, user)
    async with briefing_stack(env, deps) as stack:
        day, first = await stack.created(user, CONFIG)
        run = env.client.get_workflow_handle(f"daily-briefing/{user}", run_id=first)
        # Moments before its end: the server's clock is not skipped while an activity runs.
        await stack.skip_to(day.window_end - timedelta(seconds=2))
        await eventually(lambda: _prepared(run), "the day prepared")

        answer = asyncio.create_task(stack.service.regenerate(user))
        try:
            await asyncio.wait_for(started.wait(), HANG)
            await eventually(lambda: _phase(run, "done"), "the window's end")
            yield stack, run, _answered(answer, release)
        finally:
            release.set()
            answer.cancel()
            await asyncio.gather(answer, return_exceptions=True)


async def _answered(answer: asyncio.Task[Any], release: asyncio.Event) -> Any:
    """The regenerate's answer, its preparation let go first."""
    release.set()
    return await answer


async def _phase(run: WorkflowHandle[Any, Any], phase: str) -> bool:
    return (await run.query(DailyBriefingWorkflow.status)).phase == phase


async def _prepared(run: WorkflowHandle[Any, Any]) -> bool:
    return (await run.query(DailyBriefingWorkflow.status)).prepared is not None


async def _next_run(env: WorkflowEnvironment, user: str, run: WorkflowHandle[Any, Any]) -> bool:
    description = await env.client.get_workflow_handle(f"daily-briefing/{user}").describe()
    return description.run_id != run.run_id
