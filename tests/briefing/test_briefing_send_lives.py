"""A briefing's send keyed by one life of the briefing, over MCP on the dev server (real time)."""

from __future__ import annotations

from typing import Any

from mcp import Client
from temporalio.testing import WorkflowEnvironment

from ambient.clients.notify.registry import build_channels
from ambient.deps import WorkerDeps
from tests.briefing.harness import make_user
from tests.briefing.test_briefing_surfaces import _all_day, _call, _zone_away_from_midnight
from tests.conftest import running_worker, unique
from tests.notify.standins import Mailbox
from tests.support.mcp_as import mcp_as
from tests.support.waits import eventually


async def test_a_send_request_id_used_again_after_the_briefing_was_created_again_is_sent(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """The send's key named the briefing's id (the same for every life of it), not one life:
    deleted and created again, a send with the request id used before (a client retrying with
    a fixed id, a voice request id that repeats) was answered "sent" and nothing was sent.
    Within one life the same request id still sends once."""
    user = unique("sl")
    channels = [{"type": "email", "target": f"{user}@example.com", "kinds": ["briefing"]}]
    await make_user(deps.db, user, {"channels": channels})
    with Mailbox() as mailbox:
        settings = deps.settings.model_copy(
            update={"smtp_host": "127.0.0.1", "smtp_port": mailbox.port, "smtp_tls": "none"}
        )
        deps.settings, deps.channels = settings, build_channels(settings, deps.db, deps.http)
        async with running_worker(dev_env.client, deps) as worker:
            settings = settings.model_copy(update={"temporal_task_queue": worker.task_queue})
            config = _all_day(_zone_away_from_midnight())
            async with mcp_as(deps, user, temporal=dev_env.client, settings=settings) as client:
                await _call(client, "create_daily_briefing", **config)
                await eventually(lambda: _regenerated(client), "prepared")
                first = await _call(client, "send_briefing", request_id="R")
                again = await _call(client, "send_briefing", request_id="R")
                sent_once = len(mailbox.messages)
                await _call(client, "delete_task", task_id=f"daily-briefing/{user}")
                created = await _call(client, "create_daily_briefing", **config)
                await eventually(lambda: _regenerated(client), "prepared again")
                next_life = await _call(client, "send_briefing", request_id="R")
    assert created["created"] is True
    assert [d["status"] for d in first["deliveries"] if d["channel"] == "email"] == ["sent"]
    assert again == first and sent_once == 1
    assert [d["status"] for d in next_life["deliveries"] if d["channel"] == "email"] == ["sent"]
    assert len(mailbox.messages) == 2
    assert [m["To"] for m in mailbox.messages] == [f"{user}@example.com"] * 2


async def _regenerated(client: Client) -> dict[str, Any] | None:
    # The day is planned a moment after the create: until then regenerate is refused.
    result = await client.call_tool("regenerate_briefing", {})
    return None if result.is_error else result.structured_content
