"""A threshold watch or the nightly triage cancelled in Temporal while the start of a
remediation is pending.

The window is held, not raced: the workflow task that asks the server to start the child is
kept in flight (its activation's thread waits) until the cancel is requested, so the server
writes the cancel after the start's initiated event, before the parent hears the child
started. The SDK then cancels the start: with the default child cancellation type it sent
the child (the remediation, abandoned, a repair with its own life) a cancel request.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails, WorkflowRunner

from activities import remediation as remediation_activities
from ambient import temporal
from ambient.deps import WorkerDeps
from ambient.remediation.alerts import remediation_id
from ambient.remediation.joins import join
from ambient.remediation.triage import TriageInput
from ambient.storage.repositories import EventRepository
from ambient.watches.models import ThresholdWatchInput
from tests.conftest import running_worker, unique
from tests.remediation.support import add_user, remediation_settings
from tests.remediation.test_triage import USER as TRIAGED
from tests.remediation.test_triage import cloud  # noqa: F401  (fixture)
from tests.remediation.test_watch_intake import USER as WATCHER
from tests.standins.tencent_api import TencentApi
from tests.support.record import save_history
from tests.support.servers import HANG
from tests.watches.test_watch_cancelled import _canceled, _remediating_watch
from workflows.remediation_triage import AlertTriageWorkflow
from workflows.threshold_watch import ThresholdWatchWorkflow


class _HeldAtChildStart(WorkflowRunner):
    """The worker's runner, whose first activation that starts a child is held once done
    (its workflow task in flight) until ``release``; ``held`` is set on the test's loop."""

    def __init__(self, inner: WorkflowRunner, held: asyncio.Event) -> None:
        self.inner, self.held, self.release = inner, held, threading.Event()
        self.loop = asyncio.get_running_loop()

    def prepare_workflow(self, defn: Any) -> None:
        self.inner.prepare_workflow(defn)

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        instance = self.inner.create_instance(det)
        activate = instance.activate

        def held_activate(act: Any) -> Any:
            completion = activate(act)
            commands = completion.successful.commands
            if not self.held.is_set() and any(
                c.HasField("start_child_workflow_execution") for c in commands
            ):
                self.loop.call_soon_threadsafe(self.held.set)
                self.release.wait(HANG)
            return completion

        instance.activate = held_activate  # type: ignore[method-assign]
        return instance


def _kinds_of(history: Any) -> list[int]:
    return [event.event_type for event in history.events]


async def test_a_threshold_watch_cancelled_while_its_remediation_starts_does_not_cancel_it(
    dev_env: WorkflowEnvironment,
    deps: WorkerDeps,
    cloud: tuple[TencentApi, Any],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The watch's run is cancelled while its breach's remediation start is pending: the
    remediation is never sent a cancel (it was: the SDK's default child cancellation type
    asks the child to cancel as the parent's start is cancelled), the watch joins it (its
    start asked again) and ends Canceled."""
    config, alert = await _remediating_watch(deps, cloud)
    rid = remediation_id(alert)
    held = asyncio.Event()
    runner = _HeldAtChildStart(temporal.workflow_runner(), held)
    monkeypatch.setattr(temporal, "workflow_runner", lambda: runner)
    task = f"threshold-watch/{WATCHER}/{unique('cpu')}"
    run = ThresholdWatchInput(user=WATCHER, task=task, config=config)
    child = dev_env.client.get_workflow_handle(rid)
    try:
        async with running_worker(dev_env.client, deps) as worker:
            # The held activation outlives the deadlock detector's 2 s only if the test is slow.
            worker._workflow_worker._deadlock_timeout_seconds = None  # type: ignore[union-attr]
            handle = await dev_env.client.start_workflow(
                ThresholdWatchWorkflow.run,
                run,
                id=task,
                task_queue=worker.task_queue,
                start_signal="check_now",
            )
            await asyncio.wait_for(held.wait(), HANG)  # the start asked, its task in flight
            await handle.cancel()
            runner.release.set()
            await _canceled(handle)
            await save_history(handle, "threshold_watch_cancelled_while_starting_remediation")
            parent = _kinds_of(await handle.fetch_history())
            remediation = _kinds_of(await child.fetch_history())
        async with deps.db.session() as session:
            events = await EventRepository(session).list(task=task, limit=100)
    finally:
        runner.release.set()
        with contextlib.suppress(Exception):
            await child.terminate("test over")
    # The server wrote the cancel while the start was pending (after its initiated event).
    initiated = parent.index(EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED)
    cancelled = parent.index(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED)
    assert initiated < cancelled, parent
    cancel_sent = EventType.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED
    assert cancel_sent not in parent, parent
    assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED not in remediation
    said = sorted(e.kind for e in events if e.kind.startswith("watch."))
    assert said == ["watch.breach", "watch.remediation_started", "watch.stopped"], said
    (started,) = [e.payload for e in events if e.kind == "watch.remediation_started"]
    assert started["remediation_id"] == rid, started


async def test_the_triage_cancelled_while_a_remediation_starts_does_not_cancel_it(
    dev_env: WorkflowEnvironment,
    deps: WorkerDeps,
    cloud: tuple[TencentApi, Any],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The nightly triage is cancelled while its first remediation's start is pending: the
    triage asks the start again and ends Canceled, and the remediation it started runs on,
    never sent a cancel (a CI run lost it: the triage closed before the server made the
    start, and a start pending when its starter closes is never made)."""
    _, tencent = cloud
    deps.tencent = tencent
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, TRIAGED)
    held = asyncio.Event()
    runner = _HeldAtChildStart(temporal.workflow_runner(), held)
    monkeypatch.setattr(temporal, "workflow_runner", lambda: runner)
    children: list[str] = []
    try:
        async with running_worker(dev_env.client, deps) as worker:
            worker._workflow_worker._deadlock_timeout_seconds = None  # type: ignore[union-attr]
            handle = await dev_env.client.start_workflow(
                AlertTriageWorkflow.run,
                TriageInput(user=TRIAGED, mode="dry_run"),
                id=unique("alert-triage"),
                task_queue=worker.task_queue,
            )
            await asyncio.wait_for(held.wait(), HANG)  # the start asked, its task in flight
            await handle.cancel()
            runner.release.set()
            await _canceled(handle)
            await save_history(handle, "triage_cancelled_while_starting_remediation")
            history = await handle.fetch_history()
            children = [
                e.start_child_workflow_execution_initiated_event_attributes.workflow_id
                for e in history.events
                if e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
            ]
            (child,) = set(children)
            remediation = dev_env.client.get_workflow_handle(child)
            described = await remediation.describe()
            started = _kinds_of(await remediation.fetch_history())
    finally:
        runner.release.set()
        for rid in children:
            with contextlib.suppress(Exception):
                await dev_env.client.get_workflow_handle(rid).terminate("test over")
    parent = _kinds_of(history)
    cancel_sent = EventType.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED
    assert cancel_sent not in parent, parent
    # The start was asked again after the cancel: a start still pending when the triage closes
    # is never made by the server (an abandoned child of a closed parent), so the remediation
    # would be lost whenever the triage ended first.
    asked = EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
    cancelled = parent.index(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED)
    assert asked in parent[cancelled:], parent
    assert parent[-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED, parent
    assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED not in started
    assert described.status is WorkflowExecutionStatus.RUNNING, described.status


async def test_the_triage_cancelled_while_it_joins_a_run_ends_canceled_not_on_to_the_next(
    dev_env: WorkflowEnvironment,
    deps: WorkerDeps,
    cloud: tuple[TencentApi, Any],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A second night's triage finds its alerts' runs going on and joins them; cancelled
    while its first join is in flight, it ends Canceled. It used to take the cut join as a
    failed one, go on to join the next alert and end Completed, its cancel lost."""
    _, tencent = cloud
    deps.tencent = tencent
    remediation_settings(
        deps, remediation_approval_from_rung=1, remediation_approval_timeout_minutes=24 * 60
    )
    await add_user(deps, TRIAGED)
    entered, release = asyncio.Event(), asyncio.Event()
    joins: list[str] = []

    async def held_join(*args: Any, **kwargs: Any) -> Any:
        joins.append(args[4])
        if len(joins) == 1:
            entered.set()
            await release.wait()
        return await join(*args, **kwargs)

    monkeypatch.setattr(remediation_activities, "join", held_join)
    started: list[str] = []
    try:
        async with running_worker(dev_env.client, deps) as worker:
            first = await dev_env.client.start_workflow(
                AlertTriageWorkflow.run,
                TriageInput(user=TRIAGED, mode="dry_run"),
                id=unique("alert-triage"),
                task_queue=worker.task_queue,
            )
            started = (await first.result()).started
            assert len(started) == 2, started
            handle = await dev_env.client.start_workflow(
                AlertTriageWorkflow.run,
                TriageInput(user=TRIAGED, mode="dry_run"),
                id=unique("alert-triage"),
                task_queue=worker.task_queue,
            )
            await asyncio.wait_for(entered.wait(), HANG)
            await handle.cancel()
            await asyncio.sleep(0.5)  # the cut join's activity task answered, or not
            release.set()
            await _canceled(handle)
            kinds = _kinds_of(await handle.fetch_history())
    finally:
        release.set()
        for rid in started:
            with contextlib.suppress(Exception):
                await dev_env.client.get_workflow_handle(rid).terminate("test over")
    assert kinds[-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED, kinds
    # The cut join asked again; the second alert's run never joined.
    assert set(joins) == {joins[0]} and joins[0] in started, joins
