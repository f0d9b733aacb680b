"""Pause and resume over /mcp/voice as xiaozhi-server's client calls it: a task that already
is as asked is said so, and nothing is sent to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from temporalio.api.enums.v1 import EventType
from temporalio.client import ScheduleHandle, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.domain.users import Language, UserCreate
from ambient.storage.users import UserRepository
from api.app import create_app
from tests.conftest import running_worker, unique
from tests.support.servers import HANG, serve
from tests.support.waits import eventually
from tests.voice.support import assert_speakable, worker_state
from tests.watches.site import Site, article


async def _user(deps: WorkerDeps, name: str, language: Language) -> str:
    """A user speaking ``language``; their API token."""
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name, language=language))
        await session.commit()
    return token


@asynccontextmanager
async def _voice(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, queue: str, token: str
) -> AsyncIterator[Client]:
    """The API served on loopback, and its /mcp/voice as xiaozhi-server's settings-file client
    reaches it: streamable HTTP with the user's token."""
    settings = deps.settings.model_copy(
        update={
            "temporal_task_queue": queue,
            "temporal_address": dev_env.client.service_client.config.target_host,
        }
    )
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        serve(create_app(settings)) as base,
        httpx2.AsyncClient(timeout=HANG, headers=headers, trust_env=False) as http,
        Client(streamable_http_client(f"{base}/mcp/voice", http_client=http)) as client,
    ):
        yield client


async def _say(client: Client, tool: str, name: str) -> str:
    result = await client.call_tool(tool, {"name": name})
    assert not result.is_error, result.content
    text = getattr(result.content[0], "text", "")
    assert_speakable(text)
    return text


async def test_pausing_a_paused_task_or_resuming_a_running_one_says_it_already_was(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A second "暂停 morning standup" was answered "好的，morning standup已暂停。" as if it had
    just been paused, and a watch's second pause was a signal more in its run's history. It is
    said as it already was ("…本来就是暂停的。"), and nothing is written or signalled."""
    users = {Language.ZH: unique("vcz"), Language.EN: unique("vce")}
    said: dict[Language, list[str]] = {}
    deps.settings = deps.settings.model_copy(update={"fetch_allow_cidrs": ["127.0.0.1/32"]})
    site = Site()
    site.pages["/shop"] = article("Open.")
    async with serve(site.app()) as base, running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        for language, user in users.items():
            token = await _user(deps, user, language)
            reminder = await state.tasks.create(
                user, "schedule", {"hour": 9, "message": "standup"}, name="morning-standup"
            )
            config = {"urls": [f"{base}/shop"]}
            watch = await state.tasks.create(user, "web_monitor", config, name="shop-home")
            schedule = dev_env.client.get_schedule_handle(reminder.task_id)
            run = dev_env.client.get_workflow_handle(watch.task_id)

            async def token_of_schedule(schedule: ScheduleHandle = schedule) -> bytes:
                return (await schedule.describe()).raw_description.conflict_token

            async def signals(run: WorkflowHandle[Any, Any] = run) -> int:
                kinds = [e.event_type async for e in run.fetch_history_events()]
                return kinds.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)

            async def settled(run: WorkflowHandle[Any, Any] = run) -> bool:
                described = await run.describe()
                return not described.raw_description.HasField("pending_workflow_task")

            async with _voice(dev_env, deps, worker.task_queue, token) as client:
                said[language] = []
                for name, written in (
                    ("morning standup", token_of_schedule),
                    ("shop home", signals),
                ):
                    # A resume of a task never paused, then a pause twice. (A watch just
                    # resumed checks at once, and a control may then be on its way to it:
                    # while its run has a workflow task pending, one is sent.)
                    for tool, again in (("resume_task", False), ("pause_task", True)):
                        await eventually(settled, "the run took its workflow tasks")
                        if again:
                            said[language].append(await _say(client, tool, name))
                            await eventually(settled, "the run took its workflow tasks")
                        before = await written()
                        said[language].append(await _say(client, tool, name))
                        # Nothing sent: the schedule is not written again, the run not signalled.
                        assert await written() == before, (language, name, tool)
    assert said == {
        Language.ZH: [
            "morning standup本来就在运行。",
            "好的，morning standup已暂停。",
            "morning standup本来就是暂停的。",
            "shop home本来就在运行。",
            "好的，shop home已暂停。",
            "shop home本来就是暂停的。",
        ],
        Language.EN: [
            "morning standup was already running.",
            "OK, morning standup is paused.",
            "morning standup was already paused.",
            "shop home was already running.",
            "OK, shop home is paused.",
            "shop home was already paused.",
        ],
    }


async def test_a_task_named_a_word_and_a_number_is_said_by_its_name(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A reminder named "cafe2024" looked like a hex id to the answers' id rule and went from
    every one of them: "好的，已暂停。", the user not told what was paused. A word and a number
    is a name; an id of that length is random and rarely so."""
    user = unique("vhx")
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        token = await _user(deps, user, Language.ZH)
        await state.tasks.create(
            user, "schedule", {"hour": 9, "message": "standup"}, name="cafe2024"
        )
        async with _voice(dev_env, deps, worker.task_queue, token) as client:
            paused = await _say(client, "pause_task", "cafe2024")
            status = await _say(client, "task_status", "cafe2024")
    assert paused == "好的，cafe2024已暂停。", paused
    assert "cafe2024" in status, status
