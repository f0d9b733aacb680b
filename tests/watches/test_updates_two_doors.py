"""update_task through MCP and PUT /tasks/{id}/config through the API at once, on one watch: the
workflow applies both, one after the other, and the later one is in force. The answer of the
one applied first said success with the other's config and not a word of it."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.watches.service import OVERTAKEN
from tests.conftest import unique
from tests.support.admins import admin_headers
from tests.support.api_worker import api_over_worker
from tests.support.mcp_as import mcp_as
from tests.watches.site import article
from tests.watches.test_lifecycle import GatedSite, gated  # noqa: F401  (fixture)
from tests.watches.test_lifecycle_service import monitor
from tests.watches.test_workflows import loopback_deps  # noqa: F401  (fixture)


async def test_an_update_overtaken_by_another_doors_update_is_told_so(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    site, base = gated
    for page in ("/a", "/b", "/c"):
        site.pages[page] = article(f"The page {page}.")
    async with api_over_worker(dev_env, loopback_deps) as (settings, http):
        name = unique("upd")
        registered = await http.post(
            "/users", json={"name": name}, headers=await admin_headers(settings)
        )
        assert registered.status_code in (200, 201), registered.text
        me = {"Authorization": f"Bearer {registered.json()['token']}"}
        body = {"type": "web_monitor", "config": monitor(base, "/a"), "name": "twice"}
        made = await http.post("/tasks", json=body, headers=me)
        assert made.status_code in (200, 201), made.text
        task_id = made.json()["task_id"]
        by_mcp, by_api = monitor(base, "/b"), monitor(base, "/c")
        async with mcp_as(loopback_deps, name, temporal=dev_env.client, settings=settings) as mcp:

            async def through_mcp() -> dict[str, Any]:
                answer = await mcp.call_tool("update_task", {"task_id": task_id, "config": by_mcp})
                assert not answer.is_error and answer.structured_content, answer.content
                return answer.structured_content

            async def through_api() -> dict[str, Any]:
                answer = await http.put(f"/tasks/{task_id}/config", json=by_api, headers=me)
                assert answer.status_code == 200, answer.text
                told: dict[str, Any] = answer.json()
                return told

            told = await asyncio.gather(through_mcp(), through_api())
            final = await http.get(f"/tasks/{task_id}/status", headers=me)
            in_force = final.json()["config"]["urls"]
            for sent, answer in zip((by_mcp, by_api), told, strict=True):
                applied = answer["config"]["urls"] == sent["urls"]
                # Its own config in the answer, or the other's with the sentence that says so.
                assert answer["note"] == (None if applied else OVERTAKEN), told
                assert applied or answer["config"]["urls"] == in_force
            assert any(a["note"] is None and a["config"]["urls"] == in_force for a in told), told
            await http.delete(f"/tasks/{task_id}", headers=me)
