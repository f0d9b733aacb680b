"""The daily briefing through the generic task door after a delete, while its stopped run
still finishes (a send's push cut short, its record held), and a regenerate or send under way
when it is deleted (held on the model or the mail server): answered at once, created again."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from mcp import Client
from mcp.types import CallToolResult
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.testing import WorkflowEnvironment

from activities.briefing import BriefingActivities
from ambient.briefing.config import BriefingConfig
from ambient.briefing.errors import BriefingNotFoundError
from ambient.briefing.greeting_answers import NOT_SET_UP_NO_MODEL, GreetOutcome
from ambient.briefing.models import BriefingStatus, PushRequest
from ambient.briefing.service import BriefingService
from ambient.deps import WorkerDeps
from ambient.storage.briefings import BriefingRepository
from ambient.storage.repositories import DeliveryRepository
from ambient.temporal import STATE
from ambient.watches.inputs import TaskStateError
from ambient.watches.service import TaskService
from tests.briefing.harness import briefing_stack, make_user
from tests.conftest import running_worker, unique
from tests.standins.llm_api import API_KEY, LLMApi
from tests.support.channels import MailHeld, mailed
from tests.support.mcp_as import mcp_as
from tests.support.record import save_history
from tests.support.servers import HANG, serve
from tests.support.waits import eventually, until_equal
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
async def deleted_while_sending(
    env: WorkflowEnvironment,
    deps: WorkerDeps,
    user: str,
    monkeypatch: pytest.MonkeyPatch,
    *,
    cancel: bool = False,
) -> AsyncIterator[tuple[TaskService, BriefingConfig, asyncio.Event]]:
    """A briefing deleted through the task door while a send of it is under way, its email
    waiting on a slow mail server: the delete cuts the push short, and the run, stopping, waits
    for what the push does once its activity has ended, the day recorded pushed (held until
    the event returned is set: a database slow to write it). Its run is still running. (A run
    deleted during its preparation ends at once: tests/briefing/test_briefing_deleted_mid_step.py;
    one deleted during the push of its own morning records it in a moment.) ``cancel``: its
    run cancelled in Temporal instead (the Web UI's "Request Cancellation"), held the same way
    once the push's record is under way."""
    release, mail, recording = asyncio.Event(), MailHeld(), asyncio.Event()
    record = BriefingActivities.record_briefing_push

    @activity.defn(name="record_briefing_push")
    async def held_record(self, request: PushRequest) -> None:  # type: ignore[no-untyped-def]
        # ``self`` unannotated: the SDK takes an annotated first parameter for an argument.
        recording.set()
        await release.wait()
        await record(self, request)

    monkeypatch.setattr(BriefingActivities, "record_briefing_push", held_record)
    with mailed(deps) as mailbox:
        email = [{"type": "email", "target": f"{user}@example.com", "kinds": ["briefing"]}]
        await make_user(deps.db, user, {"channels": email})
        async with briefing_stack(env, deps) as stack:
            tasks = TaskService(
                env.client, stack.service.settings, deps.db, briefings=stack.service
            )
            config = BriefingConfig(timezone=zone_at_midday(), language="en", window_end="20:00")
            # Created inside its window, past its preparation time: it prepares at once.
            await stack.service.create(user, config)
            await eventually(lambda: _prepared_for(stack.service, user), "the day prepared")
            mailbox.on_data = mail.hold
            sending = asyncio.create_task(stack.service.send(user, request_id="s1"))
            try:
                await mail.asked()
                if cancel:
                    await env.client.get_workflow_handle(f"daily-briefing/{user}").cancel()
                    await asyncio.wait_for(recording.wait(), HANG)
                else:
                    await tasks.delete(user, f"daily-briefing/{user}")
                yield tasks, config, release
            finally:
                release.set()
                mail.release()
                # Before the worker stops: the send is answered (refused, deleted), the run
                # ends. Its answer is the send's tests' (a failure here would hide the test's).
                await asyncio.wait_for(asyncio.gather(sending, return_exceptions=True), HANG)


async def test_a_deleted_briefing_still_finishing_is_stopped_and_refuses_update_and_controls(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deleted while its run still finished, the briefing showed 'active', took pause and
    resume as if it lived on, and an update_task (a settings page opened before the delete)
    waited for the stopped run and started the briefing again: the delete was undone."""
    user = unique("dora")
    async with deleted_while_sending(dev_env, deps, user, monkeypatch) as (tasks, config, release):
        task_id = f"daily-briefing/{user}"
        assert (await tasks.get(user, task_id)).state == "stopped"
        for poke in (tasks.pause, tasks.resume, tasks.trigger):
            with pytest.raises(TaskStateError, match="is stopped; create it again"):
                await asyncio.wait_for(poke(user, task_id), HANG)
        zh = config.model_dump(mode="json") | {"language": "zh"}
        with pytest.raises(TaskStateError, match="is stopped; create it again"):
            await asyncio.wait_for(tasks.update(user, task_id, zh), HANG)
        handle = dev_env.client.get_workflow_handle(task_id)
        assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING
        release.set()  # the stopped run ends now
        assert await asyncio.wait_for(handle.result(), HANG) == "stopped"
        # Nothing took its place: the last run is the stopped one.
        assert (await handle.describe()).status is WorkflowExecutionStatus.COMPLETED


async def test_the_briefing_tools_refuse_a_deleted_briefing_still_finishing(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pause_daily_briefing, resume_daily_briefing and regenerate after delete_daily_briefing,
    while its run still finished: the pause and resume answered the status as if it lived on
    ('paused'), and regenerate prepared a briefing nobody would get. Gone is gone, as a moment
    later when its run has ended."""
    user = unique("dino")
    async with deleted_while_sending(dev_env, deps, user, monkeypatch) as (tasks, _config, _rel):
        briefings = tasks.briefings
        assert (await briefings.status(user)).stopping
        for step in (briefings.pause, briefings.resume, briefings.regenerate):
            with pytest.raises(BriefingNotFoundError, match="deleted"):
                await asyncio.wait_for(step(user), HANG)
            # Nothing sent to the run: a pause refused after it was signalled paused it.
            assert not (await briefings.status(user)).paused


async def test_a_deleted_briefing_still_finishing_speaks_to_no_greeting(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Greeted after delete_daily_briefing while its run still finished, the deleted briefing
    spoke (it waited for a preparation under way and spoke it), and the day counted as given
    for a briefing created again. It says none is set up, as a moment later when its run has
    ended."""
    user = unique("gus")
    async with deleted_while_sending(dev_env, deps, user, monkeypatch) as (tasks, _config, release):
        briefings = tasks.briefings
        assert (await briefings.status(user)).stopping
        heard = await asyncio.wait_for(briefings.greet(user, via="voice", request_id="after"), HANG)
        # No model in tests: the voice is told who can set one up (not the web page's assistant).
        assert (heard.outcome, heard.text) == (GreetOutcome.UNAVAILABLE, NOT_SET_UP_NO_MODEL[1])
        release.set()
        handle = dev_env.client.get_workflow_handle(f"daily-briefing/{user}")
        assert await asyncio.wait_for(handle.result(), HANG) == "stopped"
        assert (await briefings.get_briefing(user)).given_at is None


async def test_a_regenerate_or_send_overtaken_by_a_delete_is_refused_as_deleted(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A regenerate or a send that looked before a delete and reached the run after it was let
    in: a regenerate prepared again for a deleted briefing, ended under it and answered
    "replaced or stopped ... regenerate again", which was then refused as deleted. Each is
    refused as deleted at once, as after the look."""
    user = unique("ida")
    async with deleted_while_sending(dev_env, deps, user, monkeypatch) as (tasks, _config, release):
        briefings = tasks.briefings
        status = await briefings.status(user)
        assert status.stopping

        async def looked_before_the_delete(
            _user: str, _until: float | None = None
        ) -> BriefingStatus:
            return status.model_copy(update={"stopping": False})

        # The look a regenerate takes before its update (a status read).
        briefings._running = looked_before_the_delete  # type: ignore[method-assign, assignment]
        with pytest.raises(BriefingNotFoundError, match="was deleted"):
            await asyncio.wait_for(briefings.regenerate(user), HANG)
        handle = dev_env.client.get_workflow_handle(f"daily-briefing/{user}")
        # A send reaches the run the same way (sent straight to it, as by a service that
        # looked before the delete): refused before it is taken up.
        push = PushRequest(user=user, date="2026-01-01", reason="requested", key=f"{user}/send")
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(DailyBriefingWorkflow.send, push)
        assert getattr(refused.value.cause, "type", None) == BRIEFING_DELETED
        release.set()
        assert await asyncio.wait_for(handle.result(), HANG) == "stopped"


async def test_a_deleted_briefing_still_finishing_is_listed_as_stopped_as_get_says(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deleted while its run still finished, the briefing was listed 'active' (and under
    state=active) until its run ended, while get_task said 'stopped'; a pause signal sent by a
    door that looked before the delete then listed it 'paused'."""
    user = unique("doro")
    async with deleted_while_sending(dev_env, deps, user, monkeypatch) as (tasks, _config, release):
        task_id = f"daily-briefing/{user}"
        assert (await tasks.get(user, task_id)).state == "stopped"
        await dev_env.client.get_workflow_handle(task_id).signal("pause")

        async def listed() -> dict[str | None, list[str]]:
            return {
                state: [f"{t.task_id}:{t.state}" for t in await tasks.list(user, state=state)]
                for state in (None, "active", "paused", "stopped")
            }

        stopped = [f"{task_id}:stopped"]
        want = {None: stopped, "active": [], "paused": [], "stopped": stopped}

        await until_equal(listed, want, "listed as stopped")  # visibility: eventually consistent
        handle = dev_env.client.get_workflow_handle(task_id)
        assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING
        release.set()
        assert await asyncio.wait_for(handle.result(), HANG) == "stopped"


@pytest.mark.parametrize("end", ["deleted", "cancelled"])
async def test_a_pause_or_resume_reaching_a_deleted_or_cancelled_briefing_changes_nothing(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch, end: str
) -> None:
    """A pause signalled to a briefing deleted (or cancelled in Temporal) while its run still
    finished, from the Web UI's signal button or a door that looked before the delete: its
    status read paused, and a cancelled run was listed 'paused' in the Web UI (its
    AmbientState). A signal cannot be refused: the run takes it and changes nothing; a resume
    likewise."""
    user = unique("lena")
    cancel = end == "cancelled"
    async with deleted_while_sending(dev_env, deps, user, monkeypatch, cancel=cancel) as (
        _tasks,
        _config,
        release,
    ):
        handle = dev_env.client.get_workflow_handle(f"daily-briefing/{user}")
        await eventually(lambda: _signals_taken(handle), "the delete taken")
        listed = await _state_attribute(handle)
        assert listed == ("active" if cancel else "stopped")
        for control in ("pause", "resume"):
            await handle.signal(control)
            await eventually(lambda: _signals_taken(handle), f"the {control} taken")
            status = await handle.query(DailyBriefingWorkflow.status)
            assert (status.paused, status.stopping) == (False, not cancel), control
            assert await _state_attribute(handle) == listed, control
        release.set()
        if cancel:
            with pytest.raises(WorkflowFailureError):
                await asyncio.wait_for(handle.result(), HANG)
        else:
            assert await asyncio.wait_for(handle.result(), HANG) == "stopped"
        await save_history(handle, f"daily_briefing_{end}_while_sending_paused")


async def _state_attribute(handle: WorkflowHandle[Any, Any]) -> str | None:
    """The run's AmbientState, as the Web UI lists it."""
    return (await handle.describe()).typed_search_attributes.get(STATE)


async def _signals_taken(handle: WorkflowHandle[Any, Any]) -> bool:
    """Whether a workflow task completed after the run's last signal (the signal handled; no
    signal: after the run's start)."""
    events = [e.event_type async for e in handle.fetch_history_events()]
    signalled = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    last = max((i for i, e in enumerate(events) if e == signalled), default=0)
    return EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED in events[last:]


async def test_a_regenerate_under_way_when_the_briefing_is_deleted_lets_it_be_created_again(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Vic regenerates her briefing while the model is slow to answer (the stand-in holds it)
    and deletes it meanwhile: the deleted run waited for the regenerate's preparation (up to
    ~30 minutes with its retries), creating the briefing again said it was "still finishing",
    and the regenerate's caller waited all that time. Now the regenerate hears at once that the
    briefing was deleted, its preparation is cancelled, and the create starts it again."""
    hold, asked, release = asyncio.Event(), asyncio.Event(), asyncio.Event()
    model = LLMApi()

    async def answer(request: Request) -> Response:
        if hold.is_set():
            asked.set()
            await release.wait()
        return await model.handle(request)

    llm = Starlette(routes=[Route("/v1/chat/completions", answer, methods=["POST"])])
    async with serve(llm) as url:
        deps.settings = deps.settings.model_copy(
            update={"openai_api_key": SecretStr(API_KEY), "openai_base_url": f"{url}/v1"}
        )
        async with briefing_over_mcp(dev_env, deps, unique("vic")) as (client, recreate):
            hold.set()
            regenerate = asyncio.create_task(client.call_tool("regenerate_briefing", {}))
            try:
                await asyncio.wait_for(asked.wait(), HANG)
                deleted = await recreate()
                refused = await asyncio.wait_for(regenerate, HANG)
            finally:
                release.set()  # before the worker stops: it waits for its activities
            assert refused.is_error, refused.structured_content
            assert "was deleted" in _text(refused), _text(refused)
            await save_history(deleted, "daily_briefing_deleted_while_regenerating")


async def test_a_send_under_way_when_the_briefing_is_deleted_lets_it_be_created_again(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Wes sends his briefing by email while the mail server is slow to take it, and deletes
    the briefing meanwhile: the deleted run waited for the send's push (up to its retries'
    end), and creating it again said "still finishing". Now the send hears at once that the
    briefing was deleted, its push is cancelled, and the create starts it again."""
    user = unique("wes")
    asked, release = threading.Event(), threading.Event()

    def held() -> None:  # in the mail server's own thread
        asked.set()
        release.wait(HANG)

    with mailed(deps) as mailbox:
        email = [{"type": "email", "target": f"{user}@example.com", "kinds": ["briefing"]}]
        async with briefing_over_mcp(dev_env, deps, user, email) as (client, recreate):
            mailbox.on_data = held
            send = asyncio.create_task(client.call_tool("send_briefing", {}))
            try:
                assert await asyncio.to_thread(asked.wait, HANG)
                await recreate()
                refused = await asyncio.wait_for(send, HANG)
            finally:
                release.set()  # before the worker stops: it waits for its activities
            assert refused.is_error, refused.structured_content
            assert "was deleted" in _text(refused), _text(refused)
    # The inbox had taken its copy when the push was cancelled: the day reads pushed (it read
    # "ready", the message said lost).
    async with deps.db.session() as session:
        (day,) = await BriefingRepository(session).list(user)
        rows = await DeliveryRepository(session).list(user=user)
    assert ("inbox", "sent") in [(r.channel, r.status) for r in rows], rows
    assert (day.status, day.pushed_at is not None) == ("pushed", True), day


@asynccontextmanager
async def briefing_over_mcp(
    env: WorkflowEnvironment,
    deps: WorkerDeps,
    user: str,
    channels: list[dict[str, Any]] | None = None,
) -> AsyncIterator[tuple[Client, Callable[[], Awaitable[WorkflowHandle[Any, Any]]]]]:
    """``user``'s briefing created over MCP inside its window (prepared at once), and a step
    that deletes it with delete_task and creates it again at once with create_daily_briefing
    (both must succeed), answering the deleted run, which must have ended "stopped"."""
    await make_user(deps.db, user, {"channels": channels} if channels else None)
    config = {
        "timezone": zone_at_midday(),
        "prepare_at": "00:00",
        "window_start": "00:00",
        "window_end": "23:59",
        "language": "en",
    }
    async with running_worker(env.client, deps) as worker:
        settings = deps.settings.model_copy(update={"temporal_task_queue": worker.task_queue})
        async with mcp_as(deps, user, temporal=env.client, settings=settings) as client:
            task_id = (await _tool(client, "create_daily_briefing", **config))["task_id"]
            await eventually(lambda: _prepared(client), "the day's briefing prepared")
            first = (await env.client.get_workflow_handle(task_id).describe()).run_id

            async def recreate() -> WorkflowHandle[Any, Any]:
                await _tool(client, "delete_task", task_id=task_id)
                again = await _tool(client, "create_daily_briefing", **config)
                assert (again["task_id"], again["created"]) == (task_id, True), again
                deleted = env.client.get_workflow_handle(task_id, run_id=first)
                assert await asyncio.wait_for(deleted.result(), HANG) == "stopped"
                return deleted

            try:
                yield client, recreate
            finally:
                await env.client.get_workflow_handle(task_id).signal("stop")


async def _tool(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, _text(result)
    assert result.structured_content is not None
    return result.structured_content


async def _prepared(client: Client) -> bool:
    return not (await client.call_tool("get_briefing", {})).is_error


def _text(result: CallToolResult) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


async def _prepared_for(service: BriefingService, user: str) -> bool:
    return (await service.status(user)).prepared is not None
