"""A watch's create answers its baseline once the first reading is taken, not once that
reading's alerts are delivered: a slow notification channel does not hold the answer. So does
a web monitor's check now: its answer waits for the check, not for the check's deliveries."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from mcp import Client
from temporalio.testing import WorkflowEnvironment

from ambient.clients.notify.registry import build_channels
from ambient.deps import WorkerDeps
from ambient.storage.repositories import DeliveryRepository, EventRepository
from ambient.watches.models import TaskStatus
from tests.conftest import running_worker, unique
from tests.support.mcp_as import mcp_as
from tests.support.record import save_history
from tests.support.servers import HANG
from tests.watches.site import article
from tests.watches.test_lifecycle import GatedSite, gated  # noqa: F401  (fixture)
from tests.watches.test_workflows import USER, loopback_deps  # noqa: F401  (fixture)


async def test_a_breaching_first_reading_is_answered_while_its_alert_waits_on_a_slow_channel(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """The first reading of a threshold watch breached and its webhook took the POST and did
    not answer: create_threshold_watch waited out its baseline_wait for the alert's delivery (with
    its retries) and answered ``baseline: null``, though the reading took milliseconds."""
    state, base = gated
    state.values = [150]
    state.hook_gate.clear()  # the webhook takes the POST and answers only once opened
    deps = loopback_deps
    deps.channels = build_channels(deps.settings, deps.db, deps.http)
    config = {
        "source": {"type": "http_json", "url": f"{base}/value", "json_path": "$.data.amount"},
        "threshold": 100,
        "targets": [{"type": "webhook", "target": f"{base}/hook"}],
    }
    async with running_worker(dev_env.client, deps) as worker:
        try:
            async with _mcp(dev_env, deps, worker.task_queue) as mcp:
                made = await call(mcp, "create_threshold_watch", config=config, name=unique("w"))
                assert made["baseline"] == {"value": 150, "error": None}
                # The alert is under way all the same: the webhook holds its POST.
                await asyncio.wait_for(state.hook_waiting.wait(), HANG)
                state.hook_gate.set()  # the channel answers again
                task_id = made["task_id"]
                await call(mcp, "delete_task", task_id=task_id)
        finally:
            state.hook_gate.set()
        handle = dev_env.client.get_workflow_handle(task_id)
        final = await handle.result()
    assert final["detail"]["delivery_failures"] == 0
    async with deps.db.session() as session:
        events = await EventRepository(session).list(task=task_id, limit=100)
        (breach,) = [e for e in events if e.kind == "watch.breach"]
        rows = await DeliveryRepository(session).under(USER, breach.idempotency_key)
    assert sorted(e.kind for e in events) == ["watch.breach", "watch.stopped"]
    assert sorted((row.channel, row.status) for row in rows) == [
        ("inbox", "sent"),
        ("webhook", "sent"),
    ]
    # Delivered once: every POST the webhook took (a retry's too) carries its delivery's key.
    told = {json.loads(body)["idempotency_key"] for body in state.hooks}
    assert told == {row.key for row in rows if row.channel == "webhook"}
    await save_history(handle, "threshold_watch_baseline_before_alert")


def _mcp(env: WorkflowEnvironment, deps: WorkerDeps, queue: str) -> Client:
    """The MCP server of the doors, on the worker's task queue."""
    settings = deps.settings.model_copy(update={"temporal_task_queue": queue})
    return mcp_as(deps, USER, temporal=env.client, settings=settings)


async def _delivered_once(deps: WorkerDeps, state: GatedSite, task_id: str, kind: str) -> None:
    """The event ``kind`` of ``task_id`` went once to the inbox and once to the webhook: its
    rows sent, and every POST the webhook took (a retry's too) under its delivery's key."""
    async with deps.db.session() as session:
        events = await EventRepository(session).list(task=task_id, limit=100)
        (told,) = [e for e in events if e.kind == kind]
        rows = await DeliveryRepository(session).under(USER, told.idempotency_key)
    assert sorted((row.channel, row.status) for row in rows) == [
        ("inbox", "sent"),
        ("webhook", "sent"),
    ]
    keys = {json.loads(body)["idempotency_key"] for body in state.hooks}
    assert keys == {row.key for row in rows if row.channel == "webhook"}


async def test_a_web_monitor_create_answers_its_failing_baseline_while_its_alert_waits(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """A web monitor's first check found its page answering 404 (failure_threshold 1: a
    ``watch.failing`` at once) and its webhook held the POST: the poll waited 30 s for the
    delivery before handing the check back, and create_web_monitor answered ``baseline:
    null`` after its wait. The check hands back at once; the delivery finishes after it, once."""
    state, base = gated
    state.hook_gate.clear()  # the webhook takes the POST and answers only once opened
    deps = loopback_deps
    deps.channels = build_channels(deps.settings, deps.db, deps.http)
    config = {
        "urls": [f"{base}/gone"],
        "failure_threshold": 1,
        "targets": [{"type": "webhook", "target": f"{base}/hook"}],
    }
    async with running_worker(dev_env.client, deps) as worker:
        try:
            async with _mcp(dev_env, deps, worker.task_queue) as mcp:
                made = await call(mcp, "create_web_monitor", config=config, name=unique("m"))
                (page,) = made["baseline"]["urls"].values()
                assert page["outcome"] == "error" and "404" in page["error"]
                await asyncio.wait_for(state.hook_waiting.wait(), HANG)  # the alert is under way
                state.hook_gate.set()
                task_id = made["task_id"]
                await call(mcp, "delete_task", task_id=task_id)
        finally:
            state.hook_gate.set()
        final = await dev_env.client.get_workflow_handle(task_id).result()
    assert final["detail"]["delivery_failures"] == 0
    await _delivered_once(deps, state, task_id, "watch.failing")


async def test_check_now_answers_its_check_while_the_hit_waits_on_a_slow_channel(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """A check now that found a keyword hit while the webhook held its POST answered after its
    whole wait, without the check (the poll waited 30 s for the delivery before handing it back):
    a voice user asking to check now heard nothing. It answers once the check is made; the
    hit is delivered once all the same, though the watch is paused meanwhile."""
    state, base = gated
    state.pages["/news"] = article("Nothing new.")
    deps = loopback_deps
    deps.channels = build_channels(deps.settings, deps.db, deps.http)
    config = {
        "urls": [f"{base}/news"],
        "keywords": ["outage"],
        "targets": [{"type": "webhook", "target": f"{base}/hook"}],
    }
    async with running_worker(dev_env.client, deps) as worker:
        try:
            async with _mcp(dev_env, deps, worker.task_queue) as mcp:
                made = await call(mcp, "create_web_monitor", config=config, name=unique("m"))
                assert made["baseline"] is not None
                task_id = made["task_id"]
                handle = dev_env.client.get_workflow_handle(task_id)
                state.hook_gate.clear()
                state.pages["/news"] = article("Nothing new.", "A database outage in Shanghai.")
                await call(mcp, "trigger_task", task_id=task_id)
                # Answered with the check it asked for: the hit is in the watch's history.
                recorded = await handle.query("status", result_type=TaskStatus)
                assert (recorded.checks, recorded.detail["hits_total"]) == (2, 1)
                await asyncio.wait_for(state.hook_waiting.wait(), HANG)  # the hit is under way
                assert (await call(mcp, "pause_task", task_id=task_id))["state"] == "paused"
                state.hook_gate.set()
                await call(mcp, "delete_task", task_id=task_id)
        finally:
            state.hook_gate.set()
        final = await handle.result()
    assert final["detail"]["delivery_failures"] == 0
    await _delivered_once(deps, state, task_id, "watch.hit")


async def call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content
