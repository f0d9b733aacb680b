"""Web monitors poll in a long-running activity: on the dev server, in real (short) time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest_asyncio
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.domain.polling import PollResult
from ambient.domain.tasks import TaskStatus, WebMonitorInput
from ambient.domain.users import UserCreate
from ambient.domain.watches import WebMonitorConfig
from ambient.storage.repositories import EventRepository, UserRepository
from tests.conftest import running_worker, unique
from tests.support.record import save_history
from tests.support.servers import serve
from tests.watches.site import Site, article

USER = "poll-user"


@pytest_asyncio.fixture
async def site() -> AsyncIterator[tuple[Site, str]]:
    state = Site()
    async with serve(state.app()) as base:
        yield state, base


@pytest_asyncio.fixture
async def poll_deps(deps: WorkerDeps) -> WorkerDeps:
    deps.settings = deps.settings.model_copy(update={"fetch_allow_cidrs": ["127.0.0.1/32"]})
    async with deps.db.session() as session:
        await UserRepository(session).create(UserCreate(name=USER))
        await session.commit()
    return deps


def fast(urls: list[str], **fields: Any) -> WebMonitorConfig:
    return WebMonitorConfig.model_validate({"urls": urls, "check_interval_minutes": 1, **fields})


async def start(
    env: WorkflowEnvironment,
    queue: str,
    config: WebMonitorConfig,
    *,
    every: float = 0.5,
    window: float = 3.0,
) -> WorkflowHandle[Any, Any]:
    """A web monitor checked every ``every`` seconds (below the product minimum: tests only)."""
    task = unique("web-monitor/poll-user/p")
    return await env.client.start_workflow(
        "WebMonitorWorkflow",
        WebMonitorInput(
            user=USER,
            task=task,
            config=config,
            poll_window_seconds=window,
            check_interval_seconds=every,
        ),
        id=task,
        task_queue=queue,
    )


async def until(what: Callable[[], Any], seconds: float = 30.0) -> Any:
    """Wait for ``what()`` to be truthy (a bound, not a timing claim)."""
    for _ in range(int(seconds / 0.1)):
        got = await what()
        if got:
            return got
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached")


async def status(handle: WorkflowHandle[Any, Any]) -> TaskStatus:
    return await handle.query("status", result_type=TaskStatus)


async def events(deps: WorkerDeps, task: str) -> list[tuple[str, str | None]]:
    async with deps.db.session() as session:
        rows = await EventRepository(session).list(task=task, limit=1000)
    return [(row.kind, row.idempotency_key) for row in reversed(rows)]


async def poll_results(handle: WorkflowHandle[Any, Any]) -> list[PollResult]:
    """Every poll result recorded in the workflow's history."""
    history = await handle.fetch_history()
    converter = handle._client.data_converter  # noqa: SLF001 - decode as the workflow does
    polls, results = set(), []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            if event.activity_task_scheduled_event_attributes.activity_type.name == "poll_pages":
                polls.add(event.event_id)
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            done = event.activity_task_completed_event_attributes
            if done.scheduled_event_id in polls:
                (value,) = await converter.decode(done.result.payloads, [PollResult])
                results.append(value)
    return results


async def test_each_change_is_stored_notified_and_in_history_once(
    dev_env: WorkflowEnvironment, poll_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    state, base = site
    state.pages["/news"] = article("First headline.")
    async with running_worker(dev_env.client, poll_deps) as worker:
        handle = await start(dev_env, worker.task_queue, fast([f"{base}/news"]))
        await until(lambda: _checks(handle, 1))
        for n in range(3):
            state.pages["/news"] = article(f"Headline number {n}.")
            await until(lambda n=n: _changes(handle, n + 1))
        await handle.signal("stop")
        await handle.result()
        final = await status(handle)
    await save_history(handle, "web_monitor")
    stored = await events(poll_deps, handle.id)
    changes = [key for kind, key in stored if kind == "watch.change"]
    assert len(changes) == 3 and len(set(changes)) == 3
    results = await poll_results(handle)
    in_history = [e.key for r in results for e in r.events]
    assert in_history == changes
    assert final.detail["changes_total"] == 3
    assert sum(r.checks for r in results) == final.checks
    # Unchanged pages cost a conditional GET between the changes.
    assert ("/news", 304) in state.requests


async def _checks(handle: WorkflowHandle[Any, Any], n: int) -> bool:
    return (await status(handle)).checks >= n


async def _changes(handle: WorkflowHandle[Any, Any], n: int) -> bool:
    return int((await status(handle)).detail["changes_total"]) >= n
