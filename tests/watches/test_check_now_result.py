"""Check now answers with what the check found (per page: changed, a keyword hit, unchanged,
an error and why), not only that it was asked: the caller had to call get_task after it. A
check whose result is not in by the answer says so."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest
from mcp import Client
from temporalio import workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import (
    ExecuteWorkflowInput,
    Interceptor,
    Worker,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

import worker as worker_module
from ambient.briefing.service import BriefingService
from ambient.deps import WorkerDeps
from ambient.storage.repositories import EventRepository
from ambient.watches.deadline import CHECK_STARTED
from ambient.watches.models import TaskStatus
from ambient.watches.service import TaskService
from tests.conftest import unique
from tests.support.mcp_as import mcp_as
from tests.support.record import save_history
from tests.support.waits import eventually
from tests.watches.site import article
from tests.watches.test_lifecycle import GatedSite, gated  # noqa: F401  (fixture)
from tests.watches.test_lifecycle_service import (  # noqa: F401  (fixture)
    monitor,
    queue_of_its_own,
    service,
    tasks_of,
)
from tests.watches.test_workflows import USER, loopback_deps  # noqa: F401  (fixture)


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
    async with mcp_as(
        loopback_deps, USER, temporal=service.client, settings=service.settings
    ) as mcp:
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


async def test_a_keyword_hit_is_said_past_a_hundred_newer_events_of_its_watch(
    service: TaskService,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The hit was looked for among the watch's newest 100 events: a busy watch's (its
    deliveries failing, its other pages' events) past them, the check now said "changed"."""
    site, base = gated
    site.pages["/news"] = article("All quiet.")
    config = {**monitor(base, "/news"), "keywords": ["outage"]}
    ref = await service.create(USER, "web_monitor", config, unique("busy"))
    checked_now = service._checked_now

    async def busy_after(task_id: str) -> tuple[TaskStatus | None, bool]:
        status = await checked_now(task_id)
        async with service.db.writing() as session:
            for n in range(101):  # newer than the check's hit, before its answer reads it
                await EventRepository(session).add(
                    "watch.delivery_failed", user=USER, task=task_id, payload={"n": n}
                )
        return status

    monkeypatch.setattr(service, "_checked_now", busy_after)
    site.pages["/news"] = article("All quiet.", "An outage in the east.")
    told = await service.trigger(USER, ref.task_id)
    await service.delete(USER, ref.task_id)
    assert told.checked == {
        "urls": {
            f"{base}/news": {
                "outcome": "hit",
                "error": None,
                "hits": {"outage": ["An outage in the east."]},
            }
        }
    }


async def test_a_check_not_in_by_the_answer_is_said_started(
    service: TaskService,  # noqa: F811
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """A web monitor's check held past the answer's wait, and a threshold watch's: each says
    it started and where its result will be, and shows none."""
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
    site.gate.clear()  # and the watch's read of its value
    try:
        told = await hurried.trigger(USER, ref.task_id)
        watched = await hurried.trigger(USER, watch.task_id)
    finally:
        site.page_gate.set()
        site.gate.set()
    for answer in (told, watched):
        assert (answer.note, answer.checked, answer.state) == (CHECK_STARTED, None, "active")
    await service.delete(USER, ref.task_id)
    await service.delete(USER, watch.task_id)


async def threshold_check_now(
    tasks: TaskService,
    deps: WorkerDeps,
    site: GatedSite,
    base: str,
    now: float | None,
    *,
    paused: bool = False,
    history: str | None = None,
) -> dict[str, Any]:
    """Check now, through MCP, a threshold watch (above 100) whose baseline read 5 and whose
    next read gives ``now`` (None: the source answers 500); ``paused`` first; its history
    saved as ``history`` when recording."""
    site.values = [5.0, now]
    value = {"type": "http_json", "url": f"{base}/value", "json_path": "$.data.amount"}
    async with mcp_as(deps, USER, temporal=tasks.client, settings=tasks.settings) as mcp:
        made = await call(
            mcp,
            "create_threshold_watch",
            config={"source": value, "threshold": 100},
            name=unique("now"),
        )
        if paused:
            await call(mcp, "pause_task", task_id=made["task_id"])
        told = await call(mcp, "trigger_task", task_id=made["task_id"])
        if history:
            await save_history(tasks.client.get_workflow_handle(made["task_id"]), history)
        await call(mcp, "delete_task", task_id=made["task_id"])
    assert site.value_reads == 2  # the baseline's read and the check now's
    state = "paused" if paused else "active"
    assert (told["note"], told["waits"], told["state"]) == (None, [], state)
    return told["checked"]


ABOVE_100 = [{"op": "above", "value": 100.0}]


async def test_a_threshold_watch_check_now_answers_the_breach_it_read(
    service: TaskService,  # noqa: F811
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """It answered 'started' and nothing it read: the caller had to call get_task."""
    site, base = gated
    # The checked_now update on a threshold watch, for the replay.
    checked = await threshold_check_now(
        service, loopback_deps, site, base, 150.0, history="threshold_watch_check_now"
    )
    assert checked == {
        "outcome": "breach",
        "value": 150.0,
        "conditions": ABOVE_100,
        "breaching": True,
        "error": None,
    }


async def test_a_threshold_watch_check_now_answers_a_value_within_its_lines(
    service: TaskService,  # noqa: F811
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    site, base = gated
    assert await threshold_check_now(service, loopback_deps, site, base, 7.5) == {
        "outcome": "within",
        "value": 7.5,
        "conditions": ABOVE_100,
        "breaching": False,
        "error": None,
    }


async def test_a_threshold_watch_check_now_answers_why_its_source_gave_no_value(
    service: TaskService,  # noqa: F811
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """The source refused (HTTP 500): no value, the error said; not the baseline's 5."""
    site, base = gated
    checked = await threshold_check_now(service, loopback_deps, site, base, None)
    error = checked.pop("error")
    assert checked == {
        "outcome": "error",
        "value": None,
        "conditions": ABOVE_100,
        "breaching": False,
    }
    assert "500" in error, error


async def test_a_paused_threshold_watch_checks_now_and_answers_what_it_read(
    service: TaskService,  # noqa: F811
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """As a paused web monitor's check now: the check is made, the watch stays paused."""
    site, base = gated
    checked = await threshold_check_now(service, loopback_deps, site, base, 150.0, paused=True)
    assert (checked["outcome"], checked["value"], checked["breaching"]) == ("breach", 150.0, True)


class _WithoutCheckedNow(WorkflowInboundInterceptor):
    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        if workflow.info().workflow_type == "ThresholdWatchWorkflow":
            workflow.set_update_handler("checked_now", None)  # as a release before it
        return await super().execute_workflow(input)


class _OlderRelease(Interceptor):
    """A worker of a release whose threshold watch has no ``checked_now``: it refuses it."""

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _WithoutCheckedNow


async def test_a_worker_without_the_update_is_asked_by_the_signal(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check is made all the same, and the answer says it started."""
    site, base = gated
    site.values = [5.0, 150.0]

    def older_worker(*args: Any, interceptors: Sequence[Interceptor] = (), **kwargs: Any) -> Worker:
        return Worker(*args, interceptors=[*interceptors, _OlderRelease()], **kwargs)

    monkeypatch.setattr(worker_module, "Worker", older_worker)
    deps = loopback_deps
    queue = queue_of_its_own(deps)
    async with worker_module.build_worker(dev_env.client, deps, task_queue=queue):
        tasks = tasks_of(dev_env.client, deps)
        value = {"type": "http_json", "url": f"{base}/value", "json_path": "$.data.amount"}
        watch = await tasks.create(
            USER, "threshold_watch", {"source": value, "threshold": 100}, unique("older")
        )
        told = await tasks.trigger(USER, watch.task_id)
        assert (told.note, told.checked) == (CHECK_STARTED, None)

        async def breached() -> bool:
            return (await tasks.get(USER, watch.task_id)).detail["breaching"] is True

        await eventually(breached, "the check the signal asked for")
        await tasks.delete(USER, watch.task_id)


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
