"""A watch's create answers its baseline once the first reading is taken, not once that
reading's alerts are delivered: a slow notification channel does not hold the answer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from mcp import Client
from temporalio.testing import WorkflowEnvironment

from ambient.clients.notify.registry import build_channels
from ambient.deps import WorkerDeps
from ambient.storage.repositories import DeliveryRepository, EventRepository
from ambient.wiring import AppState, StateHolder
from mcp_server.server import build_server
from tests.conftest import running_worker, unique
from tests.support.record import save_history
from tests.support.servers import HANG
from tests.watches.test_lifecycle import GatedSite, gated  # noqa: F401  (fixture)
from tests.watches.test_workflows import USER, loopback_deps  # noqa: F401  (fixture)


async def test_a_breaching_first_reading_is_answered_while_its_alert_waits_on_a_slow_channel(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """The first reading of a threshold watch breached and its webhook took the POST and did
    not answer: create_threshold_watch waited its whole 20 s for the alert's delivery (with
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
        settings = deps.settings.model_copy(update={"temporal_task_queue": worker.task_queue})
        app = AppState(
            settings=settings,
            db=deps.db,
            temporal=dev_env.client,
            channels=deps.channels,
            stdio_user=USER,
        )
        try:
            async with Client(build_server(settings, holder=StateHolder(app))) as mcp:
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


async def call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content
