"""Check now answers with what the check found (per page: changed, a keyword hit, unchanged,
an error and why), not only that it was asked: the caller had to call get_task after it. A
check whose result is not in by the answer says so."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from mcp import Client

from ambient.briefing.service import BriefingService
from ambient.deps import WorkerDeps
from ambient.watches.service import CHECK_STARTED, TaskService
from ambient.wiring import AppState, StateHolder
from mcp_server.server import build_server
from tests.conftest import unique
from tests.watches.site import article
from tests.watches.test_lifecycle import GatedSite, gated  # noqa: F401  (fixture)
from tests.watches.test_lifecycle_service import monitor, service  # noqa: F401  (fixture)
from tests.watches.test_workflows import USER, loopback_deps  # noqa: F401  (fixture)


def door(tasks: TaskService, deps: WorkerDeps) -> Client:
    """The MCP server over the fixture's worker, as the caller ``USER``."""
    state = AppState(
        settings=tasks.settings,
        db=deps.db,
        temporal=tasks.client,
        channels=deps.channels,
        stdio_user=USER,
    )
    return Client(build_server(state.settings, holder=StateHolder(state)))


async def call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    answer = await client.call_tool(tool, args)
    assert not answer.is_error and answer.structured_content is not None, answer.content
    return answer.structured_content


async def test_trigger_task_answers_what_the_check_found_on_each_page(
    service: TaskService,  # noqa: F811
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    site, base = gated
    for page in ("/hit", "/changed", "/same", "/gone"):
        site.pages[page] = article(f"All quiet on {page}.")
    config = {**monitor(base, "/hit", "/changed", "/same", "/gone"), "keywords": ["outage"]}
    async with door(service, loopback_deps) as mcp:
        made = await call(mcp, "create_web_monitor", config=config, name=unique("now"))
        site.pages["/hit"] = article("All quiet on /hit.", "An outage in the east.")
        site.pages["/changed"] = article("Something else on /changed.")
        del site.pages["/gone"]
        told = await call(mcp, "trigger_task", task_id=made["task_id"])
        await call(mcp, "delete_task", task_id=made["task_id"])
    urls = told["checked"]["urls"]
    assert urls[f"{base}/hit"] == {
        "outcome": "hit",
        "error": None,
        "hits": {"outage": ["An outage in the east."]},
    }
    assert urls[f"{base}/changed"] == {"outcome": "changed", "error": None}
    assert urls[f"{base}/same"] in (
        {"outcome": o, "error": None} for o in ("unchanged", "not_modified")
    )
    assert urls[f"{base}/gone"]["outcome"] == "error" and "404" in urls[f"{base}/gone"]["error"]
    assert told["note"] is None and told["waits"] == []


async def test_a_check_not_in_by_the_answer_is_said_started(
    service: TaskService,  # noqa: F811
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """A web monitor's check held past the answer's wait, and a threshold watch's (not waited
    for): each says it started and where its result will be, and shows none."""
    site, base = gated
    site.pages["/slow"] = article("A slow page.")
    site.values = [5.0]
    hurried = TaskService(
        service.client,
        service.settings,
        service.db,
        briefings=BriefingService(service.client, service.settings, service.db),
        baseline_wait=1,
    )
    ref = await service.create(USER, "web_monitor", monitor(base, "/slow"), unique("slow"))
    value = {"type": "http_json", "url": f"{base}/value", "json_path": "$.data.amount"}
    watch = await service.create(
        USER, "threshold_watch", {"source": value, "threshold": 100}, unique("value")
    )
    site.page_gate.clear()  # the check now's read of the page waits
    try:
        told = await hurried.trigger(USER, ref.task_id)
    finally:
        site.page_gate.set()
    async with door(service, loopback_deps) as mcp:
        watched = await call(mcp, "trigger_task", task_id=watch.task_id)
    for answer in (told.model_dump(mode="json"), watched):
        assert (answer["note"], answer["checked"], answer["state"]) == (
            CHECK_STARTED,
            None,
            "active",
        )
    await service.delete(USER, ref.task_id)
    await service.delete(USER, watch.task_id)


async def test_ambient_task_trigger_prints_what_the_check_found(
    service: TaskService,  # noqa: F811
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """The CLI's door: `ambient task trigger` prints the answer, ``checked`` with it."""
    from typer.testing import CliRunner

    from ambient.cli import app as cli

    site, base = gated
    site.pages["/news"] = article("All quiet.")
    config = {**monitor(base, "/news"), "keywords": ["outage"]}
    ref = await service.create(USER, "web_monitor", config, unique("cli"))
    site.pages["/news"] = article("All quiet.", "An outage in the east.")
    settings = service.settings
    env = {
        "AMBIENT_DATA_DIR": str(settings.data_dir),
        "AMBIENT_TEMPORAL_ADDRESS": service.client.service_client.config.target_host,
        "AMBIENT_TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
    }
    args = ["task", "trigger", ref.task_id, "--user", USER]
    printed = await asyncio.to_thread(CliRunner().invoke, cli, args, env=env)
    await service.delete(USER, ref.task_id)
    assert printed.exit_code == 0, printed.output
    told = json.loads(printed.output)
    assert told["checked"]["urls"][f"{base}/news"]["hits"] == {"outage": ["An outage in the east."]}
    assert told["note"] is None
