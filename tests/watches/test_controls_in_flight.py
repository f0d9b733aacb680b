"""Pauses sent back to back, or at once through two doors, to a watch whose worker has not taken
the first yet: the second sent a second pause signal (its look saw the run unsettled, so it
signalled all the same) and answered as if it had changed something."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    PollWorkflowTaskQueueRequest,
    RespondWorkflowTaskFailedRequest,
)
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from ambient import controls_in_flight, no_answer
from ambient.controls_in_flight import ALREADY_SO, DELIVERED_UNCONFIRMED
from ambient.deps import WorkerDeps
from ambient.settings import Settings
from tests.conftest import LOADED_HOST_QUERY_TIMEOUT, running_worker, unique
from tests.support.mcp_as import mcp_as
from tests.support.waits import eventually
from tests.watches.site import article
from tests.watches.test_lifecycle import GatedSite, gated  # noqa: F401  (fixture)
from tests.watches.test_workflows import USER, loopback_deps  # noqa: F401  (fixture)
from worker import build_worker


async def signals(handle: WorkflowHandle[Any, Any], name: str) -> int:
    """How many ``name`` signals the run's history holds."""
    return len(
        [
            event
            async for event in handle.fetch_history_events()
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
            and event.workflow_execution_signaled_event_attributes.signal_name == name
        ]
    )


async def monitor_left_alone(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, url: str
) -> tuple[str, Settings]:
    """A web monitor of ``url`` created through MCP with a worker that then stops, and the
    settings naming that worker's queue."""
    async with running_worker(dev_env.client, deps) as worker:
        settings = deps.settings.model_copy(update={"temporal_task_queue": worker.task_queue})
        async with mcp_as(deps, USER, temporal=dev_env.client, settings=settings) as mcp:
            config = {"urls": [url], "check_interval_minutes": 60}
            made = await mcp.call_tool(
                "create_web_monitor", {"config": config, "name": unique("inflight")}
            )
            assert made.structured_content is not None, made.content
            return made.structured_content["task_id"], settings


@pytest.mark.parametrize("at_once", [False, True])
async def test_a_pause_in_flight_is_not_sent_again_and_is_said_already_so(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    at_once: bool,
) -> None:
    site, base = gated
    site.pages["/a"] = article("A page.")
    # The answer's status read waits this long for the (stopped) worker: what it says does not
    # depend on how long it waited.
    monkeypatch.setattr(no_answer, "QUERY_TIMEOUT", timedelta(seconds=1))
    task_id, settings = await monitor_left_alone(dev_env, loopback_deps, f"{base}/a")
    # No worker now: a pause sent stays in flight (its workflow task pending) until one is back.
    handle = dev_env.client.get_workflow_handle(task_id)
    async with mcp_as(loopback_deps, USER, temporal=dev_env.client, settings=settings) as mcp:

        async def pause() -> dict[str, Any]:
            answer = await mcp.call_tool("pause_task", {"task_id": task_id})
            assert not answer.is_error and answer.structured_content is not None, answer.content
            return answer.structured_content

        if at_once:
            told = await asyncio.gather(pause(), pause())
        else:
            told = [await pause(), await pause()]
    assert await signals(handle, "pause") == 1
    assert all(t["state"] == "paused" for t in told), told
    if not at_once:
        assert [t["note"] for t in told] == [DELIVERED_UNCONFIRMED, ALREADY_SO]
    # A worker back: the pause applies once; the watch is deleted. Its read waits as other
    # tests' do (1 s was missed under load: "no worker answered within 1 s").
    monkeypatch.setattr(no_answer, "QUERY_TIMEOUT", LOADED_HOST_QUERY_TIMEOUT)
    async with build_worker(dev_env.client, loopback_deps, task_queue=settings.temporal_task_queue):
        async with mcp_as(loopback_deps, USER, temporal=dev_env.client, settings=settings) as mcp:
            status = await mcp.call_tool("get_task", {"task_id": task_id})
            assert status.structured_content is not None, status.content
            assert status.structured_content["state"] == "paused"
            await mcp.call_tool("delete_task", {"task_id": task_id})


async def test_controls_sent_while_a_worker_holds_the_runs_task_are_each_sent(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While a worker holds a workflow task of the run (busy in a local activity, or dead with
    it), the server keeps the signals sent meanwhile out of the history: a pause, a resume and
    a pause read the run alike, the second pause was said "already so" (or shared the first's
    request id) and the watch ran on after the person's last word, pause."""
    site, base = gated
    site.pages["/a"] = article("A page.")
    monkeypatch.setattr(no_answer, "QUERY_TIMEOUT", timedelta(seconds=1))
    # Each control waits this long for the held task before it sends (all three within the
    # task's 10 s timeout, after which the server would hand the run on).
    monkeypatch.setattr(controls_in_flight, "HELD_WAIT", 0.2)
    task_id, settings = await monitor_left_alone(dev_env, loopback_deps, f"{base}/a")
    client = dev_env.client
    handle = client.get_workflow_handle(task_id)
    # A worker takes the run's next workflow task and holds it.
    await handle.signal("check_now")
    held = await client.workflow_service.poll_workflow_task_queue(
        PollWorkflowTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=settings.temporal_task_queue),
            identity="a worker holding the task",
        )
    )
    assert held.task_token
    told = []
    async with mcp_as(loopback_deps, USER, temporal=dev_env.client, settings=settings) as mcp:
        for tool in ("pause_task", "resume_task", "pause_task"):
            answer = await mcp.call_tool(tool, {"task_id": task_id})
            assert not answer.is_error and answer.structured_content is not None, answer.content
            told.append(answer.structured_content["note"])
    assert ALREADY_SO not in told, told
    # The held task fails: the run goes to the next worker with every signal sent meanwhile.
    await client.workflow_service.respond_workflow_task_failed(
        RespondWorkflowTaskFailedRequest(
            namespace=client.namespace, task_token=held.task_token, identity="held"
        )
    )
    controls = [
        event.workflow_execution_signaled_event_attributes.signal_name
        async for event in handle.fetch_history_events()
        if event.workflow_execution_signaled_event_attributes.signal_name in ("pause", "resume")
    ]
    assert controls == ["pause", "resume", "pause"]
    async with build_worker(client, loopback_deps, task_queue=settings.temporal_task_queue):
        async with mcp_as(loopback_deps, USER, temporal=dev_env.client, settings=settings) as mcp:

            async def paused() -> bool:
                status = await mcp.call_tool("get_task", {"task_id": task_id})
                return (status.structured_content or {}).get("state") == "paused"

            await eventually(paused, "the watch paused, as the last word said")
            await mcp.call_tool("delete_task", {"task_id": task_id})
