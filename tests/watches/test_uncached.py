"""Web monitors whose workflows are not kept in the worker's cache (issue #27, memory).

The worker caches few workflows (settings.max_cached_workflows): a watch's hand-back then
replays its run, and a run continues as new once its history is long (RUN_EVENTS).
"""

# ruff: noqa: F811 - the fixtures `site` and `loopback_deps` are imported and used by name

from __future__ import annotations

import asyncio
from collections import Counter
from functools import partial
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.poll_upkeep import PollUpkeep
from ambient.deps import WorkerDeps
from ambient.watches.models import TaskStatus
from ambient.watches.polling import PollEnd
from tests.conftest import running_worker
from tests.support.record import save_history
from tests.support.waits import eventually
from tests.watches.site import Site, article
from tests.watches.test_polling import (
    _changes,
    _checks,
    events,
    fast,
    inbox_titles,
    poll_results,
    start,
    status,
)
from tests.watches.test_workflows import loopback_deps, site  # noqa: F401  (fixtures)


async def test_a_watch_whose_workflow_is_never_cached_reports_each_change_once(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    state, base = site
    state.pages["/news"] = article("One.")
    loopback_deps.settings = loopback_deps.settings.model_copy(update={"max_cached_workflows": 0})
    async with running_worker(dev_env.client, loopback_deps) as worker:
        # Short windows: many hand-backs, each one replayed from the history.
        handle = await start(dev_env, worker.task_queue, fast([f"{base}/news"]), window=2.0)
        await eventually(partial(_checks, handle, 1))
        for n in range(3):
            state.pages["/news"] = article(f"Update number {n} of the news.")
            await eventually(partial(_changes, handle, n + 1))
        await handle.signal("stop")
        final = TaskStatus.model_validate(await handle.result())
    stored = [key for kind, key in await events(loopback_deps, handle.id) if kind == "watch.change"]
    assert [str(key).rsplit("/", 1)[1] for key in stored] == ["1", "2", "3"]
    assert final.detail["changes_total"] == 3
    assert (await inbox_titles(loopback_deps)).count(f"Changed: {base}/news") == 3


async def test_a_watch_continues_as_new_when_its_runs_history_is_long_and_keeps_its_events(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    state, base = site
    state.pages["/news"] = article("One.")
    async with running_worker(dev_env.client, loopback_deps) as worker:
        handle = await start(
            dev_env,
            worker.task_queue,
            fast([f"{base}/news"]),
            window=1.0,
            continue_as_new_after_events=40,
        )
        first_run = handle.first_execution_run_id or (await handle.describe()).run_id
        await eventually(partial(_checks, handle, 1))
        life = (await status(handle)).detail["life"]
        for n in range(3):
            state.pages["/news"] = article(f"Update number {n} of the news.")
            await eventually(partial(_changes, handle, n + 1))
        await eventually(lambda: _continued(handle, first_run))
        await handle.signal("stop")
        final = TaskStatus.model_validate(await handle.result())
        first = dev_env.client.get_workflow_handle(handle.id, run_id=first_run)
        history = await first.fetch_history()
        await save_history(first, "web_monitor_run_length")
    # The first run ended by continuing as new, once its history passed the bound.
    last = history.events[-1]
    assert last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    assert 40 <= len(history.events) < 80
    assert final.detail["life"] == life and final.detail["changes_total"] == 3
    stored = [key for kind, key in await events(loopback_deps, handle.id) if kind == "watch.change"]
    assert [str(key).rsplit("/", 1)[1] for key in stored] == ["1", "2", "3"]
    assert (await inbox_titles(loopback_deps)).count(f"Changed: {base}/news") == 3


async def _continued(handle: WorkflowHandle[Any, Any], first_run: str) -> bool:
    return (await handle.describe()).run_id != first_run


async def test_open_polls_keep_one_task_each_and_a_worker_shutdown_hands_every_one_back(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    # A poll is open for hours, mostly asleep: what it keeps is worker memory a watch. Its
    # activity's own task is the SDK's; the end at the worker's shutdown is one task for all.
    state, base = site
    for n in range(4):
        state.pages[f"/p{n}"] = article(f"Page {n}.")
    async with running_worker(dev_env.client, loopback_deps) as worker:
        # The poller's upkeep (built with the worker's activities) holds its running sessions.
        keeper = next(
            job.__self__  # type: ignore[attr-defined]
            for job in reversed(loopback_deps.upkeep)
            if isinstance(getattr(job, "__self__", None), PollUpkeep)
        )

        async def asleep(n: int) -> bool:
            # n polls past their baseline, each waiting for its next check (a minute away).
            sessions = list(keeper.sessions.values())
            return len(sessions) == n and all(
                s.nap is not None and not s.request.first_only for s in sessions
            )

        def watch(n: int) -> Any:
            config = fast([f"{base}/p{n}"])
            return start(dev_env, worker.task_queue, config, every=60.0, window=300.0)

        handles = [await watch(0)]
        await eventually(partial(asleep, 1))
        before = _kinds(asyncio.all_tasks())
        handles += [await watch(n) for n in range(1, 4)]
        await eventually(partial(asleep, 4))
        # Three more polls, three more tasks once the upkeep's passing writes are done.
        await eventually(partial(_new_tasks, before, 3))
    # The worker's shutdown ended every poll, which handed back its result.
    for handle in handles:
        assert (await poll_results(handle))[-1].ended == PollEnd.SHUTDOWN


def _kinds(tasks: set[asyncio.Task[Any]]) -> Counter[str]:
    return Counter(task.get_coro().__qualname__ for task in tasks)  # type: ignore[union-attr]


async def _new_tasks(before: Counter[str], n: int) -> bool:
    # By what they run: a loop that waits in a fresh task each turn (the SDK's pollers) is
    # not new, and tasks that ended meanwhile do not count against the new ones.
    return (_kinds(asyncio.all_tasks()) - before).total() == n
