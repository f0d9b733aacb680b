"""A run whose cluster's API server turns slow after its approval: the workload's checkpoint
read before the approved change ran as a local activity with the change's retries, which held
the run's workflow task while the API server did not answer. The approval's answer waited, and
every read of the run said "no worker answered; is the worker running?" while the worker ran."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.remediation.ladder import Mode, Rung
from ambient.remediation.service import RemediationService
from tests.conftest import running_worker
from tests.remediation.support import alert, error_rate
from tests.remediation.test_cluster import CLUSTER, _kubeconfig
from tests.remediation.test_cluster_edges import _checkout, _executing
from tests.remediation.test_workflow import USER
from tests.support.record import save_history
from tests.support.servers import HANG, serve
from tests.support.waits import eventually


@dataclass
class _SlowReads:
    """The API server, once ``slow``, holds each read (GET) until ``release``."""

    slow: bool = False
    reading: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def wrap(self, app: Any) -> Any:
        async def held(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["method"] == "GET" and self.slow:
                self.reading.set()
                await self.release.wait()
            await app(scope, receive, send)

        return held


@dataclass
class _Waiting:
    """A run in execute mode on a cluster whose rung 1 waits for its approval."""

    service: RemediationService
    rid: str
    handle: WorkflowHandle[Any, Any]

    async def waits_on(self, rung: Rung) -> bool | None:
        seen = await self.service.get(USER, self.rid)
        waiting = seen.waiting.rung if seen.waiting else None
        return (seen.state, waiting) == ("waiting_approval", rung) or None


@asynccontextmanager
async def asking_from_rung_one(
    dev_env: WorkflowEnvironment,
    deps: WorkerDeps,
    tmp_path: Path,
    app: Any,
    mode: Mode = "execute",
    **fields: Any,
) -> AsyncIterator[_Waiting]:
    """A run in ``mode`` on the cluster served by ``app`` (its alert never clears, ``fields``
    changed), every rung asking for approval; ended after."""
    async with serve(app) as base:
        await _executing(deps, _kubeconfig(tmp_path, base), approval_from=1)
        async with (
            error_rate(healthy_from=None) as (_, url),
            running_worker(dev_env.client, deps) as worker,
        ):
            settings = deps.settings.model_copy(update={"temporal_task_queue": worker.task_queue})
            service = RemediationService(dev_env.client, settings, deps.db)
            sent = alert(url, cluster_id=CLUSTER, settle_seconds=0, **fields)
            rid = (await service.start(USER, sent, mode=mode)).remediation_id
            run = _Waiting(service, rid, dev_env.client.get_workflow_handle(rid))
            try:
                yield run
            finally:
                with contextlib.suppress(RPCError):  # ended already
                    await run.handle.terminate("test over")


@asynccontextmanager
async def _waiting_at_rung_one(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path, app: Any
) -> AsyncIterator[_Waiting]:
    """A run on the cluster served by ``app``, once rung 1 waits for its approval; ended
    after."""
    async with asking_from_rung_one(dev_env, deps, tmp_path, app) as run:
        await eventually(lambda: run.waits_on(Rung.RESTART), "rung 1 waits for approval")
        yield run


@pytest.mark.devserver
async def test_a_slow_cluster_after_an_approval_leaves_the_run_answering(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    api, reads = _checkout(tmp_path), _SlowReads()
    async with _waiting_at_rung_one(dev_env, deps, tmp_path, reads.wrap(api.app())) as run:
        service, rid, handle = run.service, run.rid, run.handle
        try:
            reads.slow = True
            approving = asyncio.create_task(service.approve(USER, rid, True, "go", via="api"))
            # The workload's checkpoint, read before the approved restart.
            await asyncio.wait_for(reads.reading.wait(), HANG)
            seen = await service.get(USER, rid)  # while that read is held
            assert seen.unanswered == "", seen.unanswered
            decision = await asyncio.wait_for(approving, HANG)
            assert decision.approve and decision.rung == Rung.RESTART

            async def read_off_the_task() -> bool | None:
                scheduled = [
                    e.activity_task_scheduled_event_attributes.activity_type.name
                    async for e in handle.fetch_history_events()
                    if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                ]
                return "take_remediation_checkpoint" in scheduled or None

            # Its one try in the task (5 s at most) given up, the read goes on off the task.
            await eventually(read_off_the_task, "the checkpoint read as an activity")
            reads.slow = False
            reads.release.set()
            # Restarted, verified (never healthy), the next rung waits for its approval.
            await eventually(lambda: run.waits_on(Rung.SCALE_OUT), "rung 2 waits")
            status = await service.get(USER, rid)
            await save_history(handle, "remediation_checkpoint_after_approval_as_an_activity")
        finally:
            reads.release.set()

    assert [(a.rung, a.applied) for a in status.attempts] == [(Rung.RESTART, True)]
    assert [(c.kind, c.method) for c in api.writes()] == [("deployments", "PATCH")]


@dataclass
class _Throttled:
    """The API server, once ``throttle`` is set, answers the next read (GET) 429 asking for
    ``after`` seconds."""

    after: int = 3
    throttle: bool = False
    answered: list[str] = field(default_factory=list)

    def wrap(self, app: Any) -> Any:
        async def throttled(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["method"] == "GET" and self.throttle:
                self.throttle = False
                self.answered.append(scope["path"])
                # As the API server's priority and fairness answers it: a Status, and the wait.
                body = json.dumps(
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "status": "Failure",
                        "message": "Too many requests, please try again later.",
                        "reason": "TooManyRequests",
                        "details": {"retryAfterSeconds": self.after},
                        "code": 429,
                    }
                ).encode()
                headers = [
                    (b"content-type", b"application/json"),
                    (b"retry-after", str(self.after).encode()),
                    (b"content-length", str(len(body)).encode()),
                ]
                await send({"type": "http.response.start", "status": 429, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            await app(scope, receive, send)

        return throttled


@pytest.mark.devserver
async def test_a_read_throttled_in_the_task_waits_what_the_server_asked_before_its_activity(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """The checkpoint read's one try in the task answered 429 "Retry-After: 3": the regular
    activity's read went at once (a one-try policy keeps no delay), where a change's read
    waits what a throttled server asks."""
    api, server = _checkout(tmp_path), _Throttled()
    async with _waiting_at_rung_one(dev_env, deps, tmp_path, server.wrap(api.app())) as run:
        server.throttle = True
        await run.service.approve(USER, run.rid, True, "go", via="api")
        await eventually(lambda: run.waits_on(Rung.SCALE_OUT), "rung 2 waits")
        events = [e async for e in run.handle.fetch_history_events()]

    assert len(server.answered) == 1, server.answered
    # After the try in the task (its marker), a timer of the asked 3 s, then the activity.
    kinds = [e.event_type for e in events]
    activity = next(
        i
        for i, e in enumerate(events)
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name
        == "take_remediation_checkpoint"
    )
    timers = [
        e.timer_started_event_attributes.start_to_fire_timeout.ToSeconds()
        for e in events[:activity]
        if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
    ]
    assert 3 in timers, (timers, kinds[:activity])
    assert [(c.kind, c.method) for c in api.writes()] == [("deployments", "PATCH")]
