"""The visibility queries that enumerate watches name their workflow type: a run of another
type in the namespace (reminders, briefings, remediations) is never taken for a watch."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.testing import WorkflowEnvironment

from activities.poll_upkeep import closed_runs_query
from ambient import temporal
from ambient.briefing.service import BriefingService
from ambient.settings import Settings
from ambient.storage import Database
from ambient.watches.service import TaskService
from tests.conftest import unique


async def _until(what: Callable[[], Awaitable[Any]], seconds: float = 30.0) -> Any:
    """Wait for ``what()`` to be truthy (a bound, not a timing claim)."""
    for _ in range(int(seconds / 0.1)):
        if got := await what():
            return got
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached")


def _equal(got: Callable[[], Awaitable[set[str]]], want: set[str]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await got() == want

    return check


async def _ids(env: WorkflowEnvironment, query: str) -> set[str]:
    return {execution.id async for execution in env.client.list_workflows(query)}


def _attrs(user: str) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(temporal.KIND, "web_monitor"),
            SearchAttributePair(temporal.USER, user),
        ]
    )


async def test_the_closed_runs_a_poll_process_looks_for_are_web_monitors_only(
    dev_env: WorkflowEnvironment,
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=5)
    queue = unique("no-worker")  # the runs wait for a worker that never comes
    monitor = await dev_env.client.start_workflow(
        "WebMonitorWorkflow", id=unique("web-monitor/q/closed"), task_queue=queue
    )
    other = await dev_env.client.start_workflow(
        "ReminderWorkflow", id=unique("reminder/q/closed"), task_queue=queue
    )
    await other.terminate("closed, not a watch")
    await monitor.terminate("closed under its poll")
    both = {monitor.id, other.id}
    listed = " OR ".join(f"WorkflowId = '{i}'" for i in both)
    await _until(
        _equal(lambda: _ids(dev_env, f"ExecutionStatus != 'Running' AND ({listed})"), both)
    )
    found = await _ids(dev_env, closed_runs_query(since))
    assert monitor.id in found
    assert other.id not in found


async def test_the_watch_list_leaves_out_runs_of_other_types_with_watch_attributes(
    dev_env: WorkflowEnvironment, settings: Settings, db: Database
) -> None:
    user = unique("q-user")
    queue = unique("no-worker")
    watch = await dev_env.client.start_workflow(
        "WebMonitorWorkflow",
        id=unique(f"web-monitor/{user}/w"),
        task_queue=queue,
        search_attributes=_attrs(user),
        memo={"summary": "a watch"},
    )
    impostor = await dev_env.client.start_workflow(
        "ReminderWorkflow",
        id=unique(f"reminder/{user}/x"),
        task_queue=queue,
        search_attributes=_attrs(user),
        memo={"summary": "not a watch"},
    )
    try:
        both = {watch.id, impostor.id}
        await _until(_equal(lambda: _ids(dev_env, f"AmbientUser = '{user}'"), both))
        listed = await TaskService(
            dev_env.client, settings, db, briefings=BriefingService(dev_env.client, settings, db)
        ).list(user)
        assert [t.task_id for t in listed] == [watch.id]
    finally:
        for handle in (watch, impostor):
            await handle.terminate("test over")
