"""The daily briefing through the generic task door after a delete, while its stopped run
still finishes (a preparation held on a news page)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
from starlette.responses import HTMLResponse
from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from ambient.briefing.config import BriefingConfig
from ambient.briefing.errors import BriefingNotFoundError
from ambient.briefing.models import NOT_SET_UP, GreetOutcome, PushRequest
from ambient.deps import WorkerDeps
from ambient.watches.inputs import TaskStateError
from ambient.watches.service import TaskService
from tests.briefing.harness import briefing_stack, make_user, news_site
from tests.support.record import save_history
from tests.support.servers import HANG
from tests.support.waits import until_equal
from workflows.daily_briefing import DailyBriefingWorkflow
from workflows.daily_briefing_prepare_push import BRIEFING_DELETED


def zone_at_midday() -> str:
    """A fixed-offset zone where it is between 09:00 and 15:00 now."""
    now = datetime.now(UTC)
    for hours in range(-12, 15):
        if 9 <= (now + timedelta(hours=hours)).hour < 15:
            return f"Etc/GMT{-hours:+d}" if hours else "UTC"
    raise AssertionError("no zone")


@asynccontextmanager
async def deleted_while_preparing(
    env: WorkflowEnvironment, deps: WorkerDeps, user: str
) -> AsyncIterator[tuple[TaskService, BriefingConfig, asyncio.Event]]:
    """A briefing deleted through the task door while its preparation reads a news page that
    has not answered yet: its run is still running, stopping."""
    asked, release = asyncio.Event(), asyncio.Event()

    async def page(_request: object) -> HTMLResponse:
        asked.set()
        await release.wait()
        return HTMLResponse("<html><body><article><p>Late news.</p></article></body></html>")

    await make_user(deps.db, user)
    async with news_site(deps, page) as site, briefing_stack(env, deps) as stack:
        tasks = TaskService(env.client, stack.service.settings, deps.db, briefings=stack.service)
        config = BriefingConfig(
            timezone=zone_at_midday(),
            language="en",
            window_end="20:00",
            news_urls=[f"{site}/news"],  # type: ignore[list-item]
        )
        # Created inside its window, past its preparation time: it prepares at once.
        await stack.service.create(user, config)
        await asyncio.wait_for(asked.wait(), 30)
        await tasks.delete(user, f"daily-briefing/{user}")
        try:
            yield tasks, config, release
        finally:
            release.set()


async def test_a_deleted_briefing_still_finishing_is_stopped_and_refuses_update_and_controls(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Deleted while its preparation ran, the briefing showed 'active', took pause and resume
    as if it lived on, and an update_task (a settings page opened before the delete) waited
    for the stopped run and started the briefing again: the delete was undone."""
    async with deleted_while_preparing(dev_env, deps, "dora") as (tasks, config, release):
        task_id = "daily-briefing/dora"
        assert (await tasks.get("dora", task_id)).state == "stopped"
        for poke in (tasks.pause, tasks.resume, tasks.trigger):
            with pytest.raises(TaskStateError, match="is stopped; create it again"):
                await asyncio.wait_for(poke("dora", task_id), HANG)
        update = asyncio.create_task(
            tasks.update("dora", task_id, config.model_dump(mode="json") | {"language": "zh"})
        )
        await asyncio.sleep(1)
        release.set()  # the stopped run ends now
        with pytest.raises(TaskStateError, match="is stopped; create it again"):
            await asyncio.wait_for(update, HANG)
        handle = dev_env.client.get_workflow_handle(task_id)
        assert await asyncio.wait_for(handle.result(), HANG) == "stopped"
        # Nothing took its place: the last run is the stopped one.
        assert (await handle.describe()).status is WorkflowExecutionStatus.COMPLETED


async def test_the_briefing_tools_refuse_a_deleted_briefing_still_finishing(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """pause_daily_briefing, resume_daily_briefing and regenerate after delete_daily_briefing,
    while its run still prepared: the pause and resume answered the status as if it lived on
    ('paused'), and regenerate prepared a briefing nobody would get. Gone is gone, as a moment
    later when its run has ended."""
    async with deleted_while_preparing(dev_env, deps, "dino") as (tasks, _config, _release):
        briefings = tasks.briefings
        assert (await briefings.status("dino")).stopping
        for step in (briefings.pause, briefings.resume, briefings.regenerate):
            with pytest.raises(BriefingNotFoundError, match="deleted"):
                await asyncio.wait_for(step("dino"), HANG)
        assert not (await briefings.status("dino")).paused


async def test_a_deleted_briefing_still_finishing_speaks_to_no_greeting(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Greeted after delete_daily_briefing while its run still prepared, the deleted briefing
    waited for that preparation and spoke it, and the day counted as given for a briefing
    created again. It says none is set up, as a moment later when its run has ended."""
    async with deleted_while_preparing(dev_env, deps, "gus") as (tasks, _config, release):
        briefings = tasks.briefings
        assert (await briefings.status("gus")).stopping
        greeting = asyncio.create_task(briefings.greet("gus", via="voice", request_id="after"))
        await asyncio.sleep(0.5)  # a greeting let in waits for the preparation
        release.set()
        heard = await asyncio.wait_for(greeting, HANG)
        assert (heard.outcome, heard.text) == (GreetOutcome.UNAVAILABLE, NOT_SET_UP[1]), heard
        handle = dev_env.client.get_workflow_handle("daily-briefing/gus")
        assert await asyncio.wait_for(handle.result(), HANG) == "stopped"
        assert (await briefings.get_briefing("gus")).given_at is None


async def test_a_regenerate_or_send_overtaken_by_a_delete_is_refused_as_deleted(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A regenerate or a send that looked before a delete and reached the run after it was let
    in: a regenerate prepared again for a deleted briefing, ended under it and answered
    "replaced or stopped ... regenerate again", which was then refused as deleted. Each is
    refused as deleted at once, as after the look."""
    async with deleted_while_preparing(dev_env, deps, "ida") as (tasks, _config, release):
        briefings = tasks.briefings
        status = await briefings.status("ida")
        assert status.stopping

        async def looked_before_the_delete(_user: str) -> object:
            return status

        briefings._live = looked_before_the_delete  # type: ignore[method-assign]
        with pytest.raises(BriefingNotFoundError, match="was deleted"):
            await asyncio.wait_for(briefings.regenerate("ida"), HANG)
        handle = dev_env.client.get_workflow_handle("daily-briefing/ida")
        # A send reaches the run the same way (none is prepared here for the service to look
        # up first): refused before it is taken up.
        push = PushRequest(user="ida", date="2026-01-01", reason="requested", key="ida/send")
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(DailyBriefingWorkflow.send, push)
        assert getattr(refused.value.cause, "type", None) == BRIEFING_DELETED
        release.set()
        assert await asyncio.wait_for(handle.result(), HANG) == "stopped"


async def test_a_deleted_briefing_still_finishing_is_listed_as_stopped_as_get_says(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Deleted while its preparation ran, the briefing was listed 'active' (and under
    state=active) until its run ended, while get_task said 'stopped'; a pause signal sent by a
    door that looked before the delete then listed it 'paused'."""
    async with deleted_while_preparing(dev_env, deps, "doro") as (tasks, _config, release):
        task_id = "daily-briefing/doro"
        assert (await tasks.get("doro", task_id)).state == "stopped"
        await dev_env.client.get_workflow_handle(task_id).signal("pause")

        async def listed() -> dict[str | None, list[str]]:
            return {
                state: [f"{t.task_id}:{t.state}" for t in await tasks.list("doro", state=state)]
                for state in (None, "active", "paused", "stopped")
            }

        stopped = [f"{task_id}:stopped"]
        want = {None: stopped, "active": [], "paused": [], "stopped": stopped}

        await until_equal(listed, want, "listed as stopped")  # visibility: eventually consistent
        handle = dev_env.client.get_workflow_handle(task_id)
        assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING
        release.set()
        assert await asyncio.wait_for(handle.result(), HANG) == "stopped"
        await save_history(handle, "daily_briefing_stopped_while_preparing")
