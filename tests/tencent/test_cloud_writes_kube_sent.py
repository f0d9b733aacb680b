"""scale_workload and restart_workload's audit ``sent`` once their PATCH is refused (a 4xx)
or never connects: back to whether an earlier write of the call was stored (none here)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.requests import Request

from ambient.cloud.errors import CloudOpsFailedError
from ambient.cloud.workloads import WorkloadSpec
from ambient.storage.audit import AuditRepository
from ambient.wiring import AppState
from tests.standins.kube_api import ApiCall
from tests.standins.tencent_api import TencentApi
from tests.support.servers import serve
from tests.tencent.test_cloud_writes_kube import WORKLOAD, ApplyingKubeApi, cluster, standins
from tests.tencent.test_kube import kubeconfig

__all__ = ["cluster", "standins"]  # the fixtures, shared


async def _asked(state: AppState, operation: str) -> tuple[str, dict[str, Any]]:
    """The change asked for (execute), what it raised, and the one audit row it wrote."""
    spec, ops = WorkloadSpec.model_validate(WORKLOAD), state.workload_ops
    async with state.db.session() as session:
        before = len(await AuditRepository(session).list(action=f"cloud.{operation}"))
    with pytest.raises(CloudOpsFailedError) as raised:
        if operation == "restart_workload":
            await ops.restart_workload("ops", spec, "execute")
        else:
            await ops.scale_workload("ops", spec, 5, "execute")
    async with state.db.session() as session:
        rows = await AuditRepository(session).list(action=f"cloud.{operation}")
    [row] = [r.detail for r in rows[before:]]
    return str(raised.value), row


@pytest.mark.parametrize("operation", ["restart_workload", "scale_workload"])
async def test_a_workload_change_whose_patch_is_refused_is_audited_not_sent(
    cluster: tuple[ApplyingKubeApi, AppState], operation: str
) -> None:
    """RBAC refuses the PATCH (403), on the kubeconfig read again too: nothing was stored, and
    the row says so (sent false), with why and that the workload was not changed."""
    kube, state = cluster
    kube.forbidden = {"patch deployments"}
    said, row = await _asked(state, operation)
    assert "lack permission" in said and said.endswith("was not changed"), said
    assert (row["outcome"], row["kind"], row["sent"]) == ("failed", "auth", False), row
    assert row["reason"] == said
    patches = [c.status for c in kube.calls if c.method == "PATCH"]
    assert patches == [403, 403] and kube.writes() == []


@contextlib.asynccontextmanager
async def _relay(base: str) -> AsyncIterator[tuple[str, asyncio.Server]]:
    """A loopback port whose connections go on to ``base``: closed, it refuses new ones (the
    API server's port gone) while the ones open finish."""
    host, port = base.removeprefix("http://").split(":")

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", server
    finally:
        server.close()


def _one_connection_each(app: Any) -> Any:
    """``app`` answering each request with `Connection: close`: the client's next request
    connects anew (a connection kept open would carry it past a port closed)."""

    async def closing(scope: Any, receive: Any, send: Any) -> None:
        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message["headers"], (b"connection", b"close")]}
            await send(message)

        await app(scope, receive, sending)

    return closing


@pytest.mark.parametrize("operation", ["restart_workload", "scale_workload"])
async def test_a_workload_change_whose_patch_cannot_connect_is_audited_not_sent(
    standins: tuple[ApplyingKubeApi, TencentApi, AppState], operation: str
) -> None:
    """The API server's port closes after the Deployment was read: the PATCH never connects
    (ConnectError), so nothing was sent; the row says so and the words say the workload
    was not changed (they were only the retry's read error: "reading Deployment ...: All
    connection attempts failed; try again")."""
    kube, cloud, state = standins
    log = kube._log

    async with serve(_one_connection_each(kube.app())) as base, _relay(base) as (relayed, port):
        cloud.kubeconfigs["cls-abcd1234"] = kubeconfig(relayed)
        # A first pass whose PATCH is refused (403) shows the reads that come before it.
        kube.forbidden = {"patch deployments"}
        await _asked(state, operation)
        patch = next(i for i, c in enumerate(kube.calls) if c.method == "PATCH")
        reads = [(c.method, c.path) for c in kube.calls[:patch]]
        assert reads and {method for method, _ in reads} == {"GET"}, kube.calls
        kube.forbidden, kube.calls[:] = set(), []

        async def closing_after_reads(request: Request, status: int, body: Any = None) -> ApiCall:
            call = await log(request, status, body)
            if len(kube.calls) == len(reads):
                port.close()  # the read's answer still comes back on its connection
            return call

        kube._log = closing_after_reads  # type: ignore[method-assign]
        said, row = await _asked(state, operation)
    assert said.endswith(f"the workload {WORKLOAD['name']} was not changed; try again"), said
    assert (row["outcome"], row["kind"], row["sent"]) == ("failed", "unavailable", False), row
    # Every read before the PATCH came, and nothing after: what did not connect was the PATCH
    # (a port closed a read early leaves a read out; one closed late lets the PATCH in).
    assert [(c.method, c.path) for c in kube.calls] == reads, kube.calls
    assert kube.writes() == []
