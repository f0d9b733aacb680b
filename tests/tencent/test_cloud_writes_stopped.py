"""Asked-for cloud writes stopped part-way (their caller cancelled or timed out): the audit row
says how far each got (``sent``), through the real clients against the stand-ins."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.requests import Request

from ambient.cloud.workloads import WorkloadSpec
from ambient.storage.audit import AuditRepository
from ambient.wiring import AppState
from tests.standins.kube_api import ApiCall
from tests.tencent.test_cloud_writes_kube import WORKLOAD, ApplyingKubeApi, cluster, standins

__all__ = ["cluster", "standins"]  # the fixtures, shared


def _held_kube(kube: ApplyingKubeApi, method: str) -> tuple[asyncio.Event, asyncio.Event]:
    """The Deployment's first ``method`` request (not a dry run) waits, once received and
    logged, until released: a write held there is sent and not yet answered."""
    arrived, released = asyncio.Event(), asyncio.Event()
    log = kube._log

    async def held(request: Request, status: int, body: Any = None) -> ApiCall:
        call = await log(request, status, body)
        if call.method == method and "/deployments/checkout" in call.path and not call.dry_run:
            if not arrived.is_set():
                arrived.set()
                await released.wait()
        return call

    kube._log = held  # type: ignore[method-assign]
    return arrived, released


@pytest.mark.parametrize(
    ("method", "sent", "said"),
    [("GET", False, "before anything was sent"), ("PATCH", True, "may still be carried out")],
    ids=["read", "write"],
)
@pytest.mark.parametrize("operation", ["restart_workload", "scale_workload"])
async def test_a_workload_change_stopped_says_whether_its_write_was_sent(
    cluster: tuple[ApplyingKubeApi, AppState], operation: str, method: str, sent: bool, said: str
) -> None:
    """A restart or scale cancelled while it read the Deployment was audited 'a request it had
    sent may still be carried out' with nothing sent; the row says how far it got, and a
    cancel once the PATCH is out never says nothing was changed."""
    kube, state = cluster
    arrived, released = _held_kube(kube, method)
    spec = WorkloadSpec.model_validate(WORKLOAD)
    ops = state.workload_ops
    asked = (
        ops.restart_workload("ops", spec, "execute")
        if operation == "restart_workload"
        else ops.scale_workload("ops", spec, 5, "execute")
    )
    task = asyncio.create_task(asked)
    await arrived.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    released.set()
    async with state.db.session() as session:
        rows = await AuditRepository(session).list(action=f"cloud.{operation}")
    [row] = [r.detail for r in rows]
    assert (row["outcome"], row["kind"], row.get("sent")) == ("failed", "interrupted", sent), row
    assert said in row["reason"], row
    assert len(kube.writes("deployments")) == int(sent)
