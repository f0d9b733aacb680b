"""The daily briefing's regenerate or send under way when it is deleted (held on the model or
the mail server): answered at once, created again."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from mcp import Client
from mcp.types import CallToolResult
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.storage.briefings import BriefingRepository
from ambient.storage.repositories import DeliveryRepository
from tests.briefing.harness import make_user
from tests.conftest import running_worker, unique
from tests.standins.llm_api import API_KEY, LLMApi
from tests.support.channels import mailed
from tests.support.mcp_as import mcp_as
from tests.support.record import save_history
from tests.support.servers import HANG, serve
from tests.support.waits import eventually


def zone_at_midday() -> str:
    """A fixed-offset zone where it is between 09:00 and 15:00 now."""
    now = datetime.now(UTC)
    for hours in range(-12, 15):
        if 9 <= (now + timedelta(hours=hours)).hour < 15:
            return f"Etc/GMT{-hours:+d}" if hours else "UTC"
    raise AssertionError("no zone")


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
