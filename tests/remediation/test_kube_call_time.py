"""A remediation activity whose cluster answers slowly gives up inside its own time, naming the
cluster: lightkube's 10 s a request (several requests a checkpoint) ran the activity out of time
first, and the run said only "activity StartToClose timeout"."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.remediation import RemediationActivities
from ambient.clients.kube import KubeClients
from ambient.clients.kube_errors import KubeUnreachableError
from ambient.remediation.kube_executor import KubernetesExecutor
from ambient.remediation.ladder import Rung, StepRequest, WorkloadRef, step_key
from ambient.remediation.runs import CheckpointInput, VerifyInput
from ambient.settings import Settings
from ambient.storage import Database
from tests.standins.kube_api import kubeconfig
from tests.support.servers import serve

TARGET = WorkloadRef(cluster_id="slow-cluster", namespace="shop", name="checkout")


async def _checkpoint(acts: RemediationActivities) -> Any:
    given = CheckpointInput(run_key="run", key="run/1/checkpoint", mode="execute", target=TARGET)
    return await acts.take_remediation_checkpoint(given)


async def _change(acts: RemediationActivities) -> Any:
    step = StepRequest(
        remediation_id="r-slow",
        rung=Rung.RESTART,
        target=TARGET,
        mode="execute",
        key=step_key("r-slow", Rung.RESTART),
        restarted_at="2026-12-01T10:00:00Z",
    )
    return await acts.apply_remediation_step(step)


async def _verify(acts: RemediationActivities) -> Any:
    given = VerifyInput(
        run_key="run",
        key="run/1/verify",
        mode="execute",
        target=TARGET,
        service="checkout",
        rung=Rung.RESTART,
        now=datetime(2026, 12, 1, tzinfo=UTC),
    )
    return await acts.verify_remediation(given)


@asynccontextmanager
async def _silent_cluster(
    tmp_path: Path, asked: list[str], db: Database | None = None
) -> AsyncIterator[tuple[ActivityEnvironment, RemediationActivities]]:
    """Activities on a cluster whose API server answers nothing (until the test ends), in an
    activity of 2 s (its reads given up at 1.6 s: a fifth kept); each request in ``asked``."""
    released = asyncio.Event()

    async def silent(request: Request) -> Response:
        asked.append(f"{request.method} {request.url.path}")
        await released.wait()
        return Response(status_code=504)

    app = Starlette(routes=[Route("/{path:path}", silent, methods=["GET", "PATCH"])])
    async with serve(app) as base:
        path = tmp_path / "kubeconfig"
        path.write_text(yaml.safe_dump(kubeconfig({TARGET.cluster_id: base})))
        clients = KubeClients(path, None)
        acts = RemediationActivities(
            cast(Any, db),
            Settings(remediation_executor="kubernetes"),
            None,
            {"kubernetes": KubernetesExecutor(clients)},
        )
        env = ActivityEnvironment()
        limit = timedelta(seconds=2)
        env.info = dataclasses.replace(env.info, start_to_close_timeout=limit, is_local=False)
        try:
            yield env, acts
        finally:
            released.set()
            await clients.aclose()


# Reads only: a change cut off may have been written, which the run hears from the activity's
# own timeout ("change failed", its rate slot kept); as a refusal it said "aborted before its
# change" of a restart that was made, and gave the slot back.
@pytest.mark.parametrize("activity", [_checkpoint, _verify])
async def test_a_cluster_that_does_not_answer_is_given_up_in_the_activity_s_time_naming_it(
    tmp_path: Path, activity: Callable[[RemediationActivities], Awaitable[Any]]
) -> None:
    asked: list[str] = []
    async with _silent_cluster(tmp_path, asked) as (env, acts):
        with pytest.raises(KubeUnreachableError) as raised:
            await env.run(activity, acts)
    # Retried as an unreachable cluster is, and named (not lightkube's ReadTimeout at 10 s,
    # after the activity's 2 s were over).
    assert str(raised.value) == (
        "cluster slow-cluster: its API server did not answer within 1.6 s (slow or overloaded)"
    )
    assert asked == ["GET /apis/apps/v1/namespaces/shop/deployments/checkout"]


async def test_a_change_is_not_cut_off_by_the_reads_bound(tmp_path: Path, db: Database) -> None:
    """A change the bound cut off was said refused ("aborted before its change", its slot
    given back) though its write may have been made: it runs on to the activity's own end
    (its run not ended: the try reads that first)."""
    async with _silent_cluster(tmp_path, [], db) as (env, acts):
        with pytest.raises(TimeoutError):  # still waiting past the reads' 1.6 s
            await asyncio.wait_for(env.run(_change, acts), 3)


@pytest.mark.parametrize("activity", [_checkpoint, _verify])
async def test_a_read_a_throttled_cluster_asks_to_wait_for_is_tried_again_after_that_wait(
    tmp_path: Path, activity: Callable[[RemediationActivities], Awaitable[Any]]
) -> None:
    """A 429 asking 20 s on the checkpoint read before a change: tried again 2 and 4 s on, by
    the policy's backoff (docs/remediation.md says a read waits what was asked, as a change)."""

    async def throttled(request: Request) -> Response:
        status = {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": "Too many requests, please try again later.",
            "reason": "TooManyRequests",
            "code": 429,
            "details": {"retryAfterSeconds": 20},
        }
        return Response(json.dumps(status), 429, {"Retry-After": "20"}, "application/json")

    app = Starlette(routes=[Route("/{path:path}", throttled, methods=["GET"])])
    async with serve(app) as base:
        path = tmp_path / "kubeconfig"
        path.write_text(yaml.safe_dump(kubeconfig({TARGET.cluster_id: base})))
        clients = KubeClients(path, None)
        acts = RemediationActivities(
            cast(Any, None),
            Settings(remediation_executor="kubernetes"),
            None,
            {"kubernetes": KubernetesExecutor(clients)},
        )
        try:
            with pytest.raises(ApplicationError) as raised:
                await ActivityEnvironment().run(activity, acts)
        finally:
            await clients.aclose()
    assert raised.value.next_retry_delay == timedelta(seconds=20), raised.value
    assert not raised.value.non_retryable and "too many requests" in str(raised.value).lower()
