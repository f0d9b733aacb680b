"""The same create sent at once through two doors (MCP and the API, each with its own app
state, as two replicas are): one task, and each door answers truthfully which made it."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from api.app import create_app
from tests.conftest import running_worker, unique
from tests.support.admins import admin_headers
from tests.support.mcp_as import mcp_as
from tests.support.servers import http_client, serve
from tests.support.waits import until_equal

REMINDER = {"hour": 9, "minute": 30, "message": "stand-up", "timezone": "Asia/Shanghai"}
BRIEFING = {"timezone": "Asia/Shanghai", "window_start": "06:00", "window_end": "10:00"}


async def test_a_create_sent_through_mcp_and_the_api_at_once_makes_one_task_said_once_made(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    async with running_worker(dev_env.client, deps) as worker:
        settings = deps.settings.model_copy(
            update={
                "temporal_task_queue": worker.task_queue,
                "temporal_address": dev_env.client.service_client.config.target_host,
            }
        )
        async with serve(create_app(settings)) as base, http_client(base) as http:
            name = unique("door")
            admin = await admin_headers(settings)
            registered = await http.post("/users", json={"name": name}, headers=admin)
            assert registered.status_code in (200, 201), registered.text
            me = {"Authorization": f"Bearer {registered.json()['token']}"}
            async with mcp_as(deps, name, temporal=dev_env.client, settings=settings) as mcp:

                async def by_mcp(tool: str, **args: Any) -> dict[str, Any]:
                    result = await mcp.call_tool(tool, args)
                    assert not result.is_error, result.content
                    assert result.structured_content is not None
                    return result.structured_content

                async def by_api(path: str, body: dict[str, Any]) -> dict[str, Any]:
                    answer = await http.post(path, json=body, headers=me)
                    assert answer.status_code in (200, 201), answer.text
                    made: dict[str, Any] = answer.json()
                    return made

                for _ in range(2):  # a reminder named alike by both doors, twice over
                    reminder = unique("standup")
                    body = {"type": "schedule", "config": REMINDER, "name": reminder}
                    told = await asyncio.gather(
                        by_mcp("create_reminder", config=REMINDER, name=reminder),
                        by_api("/tasks", body),
                    )
                    assert len({t["task_id"] for t in told}) == 1
                    assert sorted(t["created"] for t in told) == [False, True], told
                briefing = await asyncio.gather(
                    by_mcp("create_daily_briefing", **BRIEFING),
                    by_api("/briefings/daily", BRIEFING),
                )
                assert sorted(b["created"] for b in briefing) == [False, True], briefing

                async def kinds() -> list[str]:
                    listed = await by_mcp("list_tasks")
                    return sorted(t["kind"] for t in listed["tasks"])

                # One task each, not two: the list is a visibility query, eventually
                # consistent, so it is waited on (a second copy would keep it from matching).
                wanted = ["daily_briefing", "schedule", "schedule"]
                await until_equal(kinds, wanted, "the three tasks listed once each")
