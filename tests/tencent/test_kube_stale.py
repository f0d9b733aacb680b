"""The process's kept cluster clients (KubeClients) when what they were made from is no longer
true: the cluster re-created behind the same id (a new CA: the TLS handshake fails), moved (no
one answers at the old endpoint: refused), or AMBIENT_KUBECONFIG edited. Real stand-ins on
loopback: the Kubernetes one served with TLS, TKE's kubeconfig from the Tencent API one."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx2
import pytest
import pytest_asyncio
import yaml

from ambient.clients.kube import KubeClients, list_workloads
from ambient.clients.kube_errors import KubeConnectTimeoutError, unreachable
from ambient.deps import WorkerDeps
from ambient.domain.users import UserCreate
from ambient.remediation.kube_executor import KubernetesExecutor
from ambient.remediation.ladder import WorkloadRef
from ambient.storage.users import UserRepository
from ambient.wiring import AppState
from bench.certs import certificate
from tests.standins.kube_api import KubeApi
from tests.standins.kube_api import kubeconfig as contexts
from tests.standins.tencent_api import TencentApi
from tests.support.servers import free_port, serve
from tests.support.tencent import ops_state, standin_tencent
from tests.support.waits import eventually
from tests.tencent.test_cloud_tools import call, client
from tests.tencent.test_cloud_writes_kube import ApplyingKubeApi, _kubeconfig_fetches
from tests.tencent.test_kube import kubeconfig

CLUSTER = "cls-abcd1234"
WORKLOAD = {"cluster_id": CLUSTER, "namespace": "shop", "name": "checkout"}


class Cluster:
    """One TKE cluster: its API server (served, stopped, served again elsewhere or with a new
    CA) and the kubeconfig TKE hands out for it."""

    def __init__(self, cloud: TencentApi, folder: Path) -> None:
        self.kube = ApplyingKubeApi()
        self.kube.add_deployment("shop", "checkout", "registry/checkout:1.0", replicas=2)
        self.cloud, self.folder = cloud, folder
        self._running: AsyncExitStack | None = None
        self.lives = 0

    async def serve(self, port: int | None = None) -> int:
        """The API server (again) on ``port`` (default: a new one) with a CA of this life."""
        await self.stop()
        self.lives += 1
        life = self.folder / f"life{self.lives}"
        life.mkdir()
        cert, key = certificate("kube", life, ips=("127.0.0.1",))
        port = port or free_port()
        self._running = AsyncExitStack()
        base = await self._running.enter_async_context(
            serve(self.kube.app(), port=port, tls=(cert, key))
        )
        config = yaml.safe_load(kubeconfig(base))
        pem = base64.b64encode(cert.read_bytes()).decode()
        config["clusters"][0]["cluster"]["certificate-authority-data"] = pem
        self.cloud.kubeconfigs[CLUSTER] = yaml.safe_dump(config)
        return port

    async def stop(self) -> None:
        if self._running is not None:
            await self._running.aclose()
            self._running = None


@pytest_asyncio.fixture
async def tke(deps: WorkerDeps, tmp_path: Path) -> AsyncIterator[tuple[Cluster, AppState]]:
    async with deps.db.session() as session:
        await UserRepository(session).create(UserCreate(name="ops", rollback_permission="execute"))
        await session.commit()
    cloud = TencentApi(kubeconfigs={})
    async with serve(cloud.app()) as base:
        cluster = Cluster(cloud, tmp_path)
        state = ops_state(deps, standin_tencent(base))
        try:
            yield cluster, state
        finally:
            await state.close_clusters()
            await cluster.stop()


def _names(answer: Any) -> list[str]:
    return [w["name"] for w in answer["workloads"]]


async def test_workload_reads_share_the_process_client_and_kubeconfig(
    tke: tuple[Cluster, AppState],
) -> None:
    """list_workloads read TKE's kubeconfig (DescribeClusterKubeconfig) and made a client for
    every read, then closed it; the reads share the doors' kept client, as the changes do, and
    credentials the cluster refuses are read again within the read."""
    cluster, state = tke
    await cluster.serve()
    async with client(state, "ops") as c:
        reads = [await call(c, "list_workloads", cluster_id=CLUSTER) for _ in range(3)]
        _, restarted = await call(c, "restart_workload", workload=WORKLOAD, mode="execute")
        assert _kubeconfig_fetches(cluster.cloud) == 1
        cluster.kube.require_token("rotated")
        rotated = cluster.cloud.kubeconfigs[CLUSTER].replace("test-token", "rotated")
        cluster.cloud.kubeconfigs[CLUSTER] = rotated
        after, listed = await call(c, "list_workloads", cluster_id=CLUSTER, namespace="shop")
    assert [failed for failed, _ in reads] == [False] * 3
    assert all(_names(answer) == ["checkout"] for _, answer in reads)
    assert restarted["applied"] is True
    assert not after and _names(listed) == ["checkout"], listed
    assert _kubeconfig_fetches(cluster.cloud) == 2


async def test_a_cluster_re_created_with_a_new_ca_or_moved_is_read_again_within_the_request(
    tke: tuple[Cluster, AppState],
) -> None:
    """The kept client's TLS handshake fails against the re-created cluster's certificate
    (httpx ConnectError, CERTIFICATE_VERIFY_FAILED), or nothing answers where it points
    (ConnectError, connection refused): nothing was sent, so the client is dropped and the
    read or change is made once more on TKE's kubeconfig read again."""
    cluster, state = tke
    port = await cluster.serve()
    async with client(state, "ops") as c:
        _, first = await call(c, "list_workloads", cluster_id=CLUSTER)
        await cluster.serve(port)  # re-created behind the same address: a new CA
        failed_read, read = await call(c, "list_workloads", cluster_id=CLUSTER)
        failed_restart, restarted = await call(
            c, "restart_workload", workload=WORKLOAD, mode="execute"
        )
        assert _kubeconfig_fetches(cluster.cloud) == 2
        await cluster.serve()  # moved: the old address refuses connections
        failed_scale, scaled = await call(
            c, "scale_workload", workload=WORKLOAD, replicas=3, mode="execute"
        )
    assert _names(first) == ["checkout"]
    assert not failed_read and _names(read) == ["checkout"], read
    assert not failed_restart and restarted["applied"] is True, restarted
    assert not failed_scale and scaled["applied"] is True, scaled
    assert cluster.kube.deployments[("shop", "checkout")]["spec"]["replicas"] == 3
    assert len(cluster.kube.writes("deployments")) == 2
    assert _kubeconfig_fetches(cluster.cloud) == 3


async def test_a_cluster_still_unreachable_after_the_fresh_read_says_so(
    tke: tuple[Cluster, AppState],
) -> None:
    cluster, state = tke
    await cluster.serve()
    async with client(state, "ops") as c:
        await call(c, "list_workloads", cluster_id=CLUSTER)
        await cluster.stop()  # down, and TKE still hands out where it was
        failed_read, read = await call(c, "list_workloads", cluster_id=CLUSTER)
        failed_scale, scaled = await call(
            c, "scale_workload", workload=WORKLOAD, replicas=3, mode="execute"
        )
        keyed = {**WORKLOAD, "idempotency_key": "ticket-7"}  # no read before the executor's
        failed_restart, restarted = await call(
            c, "restart_workload", workload=keyed, mode="execute"
        )
    assert failed_read and "listing deployments: All connection attempts failed" in read, read
    unsent = "All connection attempts failed; the workload checkout was not changed; try again"
    assert failed_scale and unsent in scaled, scaled
    assert failed_restart and unsent in restarted, restarted
    # Read again once a request (the first read's kept client, then one each), not in a loop.
    assert _kubeconfig_fetches(cluster.cloud) == 1 + 1 + 2 + 2


async def test_the_workers_kept_client_of_a_re_created_cluster_is_read_again_at_once(
    tke: tuple[Cluster, AppState],
) -> None:
    """The worker keeps its clients as the doors do (one KubeClients): its checkpoint of a
    cluster re-created with a new CA is read on TKE's new kubeconfig, not failed until the
    activity's next attempt."""
    cluster, state = tke
    port = await cluster.serve()
    clients = KubeClients(None, state.cloud)
    executor = KubernetesExecutor(clients)
    target = WorkloadRef(cluster_id=CLUSTER, namespace="shop", name="checkout")
    try:
        assert (await executor.checkpoint(target)).images == ["registry/checkout:1.0"]
        await cluster.serve(port)
        assert (await executor.rollout_health(target)).available
    finally:
        await clients.aclose()
    assert _kubeconfig_fetches(cluster.cloud) == 2


async def test_an_edited_kubeconfig_file_is_read_again_before_its_next_use(
    tke: tuple[Cluster, AppState], tmp_path: Path
) -> None:
    """A context of AMBIENT_KUBECONFIG edited while running (pointed at another server, or
    rotated credentials written) gives no error while the old server still answers: the kept
    client went on reading the old cluster (the worker's until it restarted). The file's
    change is seen before the next use, by the worker and the doors alike."""
    cluster, state = tke
    other = ApplyingKubeApi()
    other.add_deployment("shop", "checkout", "registry/checkout:2.0", replicas=1)
    path = tmp_path / "kubeconfig"
    settings = state.settings.model_copy(update={"kubeconfig": path})
    local = AppState(**{**state.__dict__, "settings": settings, "kube": {}})
    worker = KubeClients(path, None)
    executor = KubernetesExecutor(worker)
    target = WorkloadRef(cluster_id="prod", namespace="shop", name="checkout")
    async with serve(cluster.kube.app()) as first, serve(other.app()) as second:
        path.write_text(yaml.safe_dump(contexts({"prod": first})))
        try:
            async with client(local, "ops") as c:
                _, before = await call(c, "list_workloads", cluster_id="prod")
                _, current = await call(c, "list_workloads")
                seen = (await executor.checkpoint(target)).images
                path.write_text(yaml.safe_dump(contexts({"prod": second})))
                _, after = await call(c, "list_workloads", cluster_id="prod")
                _, current_after = await call(c, "list_workloads")
                seen_after = (await executor.checkpoint(target)).images
        finally:
            await local.close_clusters()
            await worker.aclose()
    assert [w["images"] for w in before["workloads"] + current["workloads"]] == [seen] * 2
    assert seen == ["registry/checkout:1.0"] and seen_after == ["registry/checkout:2.0"]
    assert [w["images"] for w in after["workloads"] + current_after["workloads"]] == [
        seen_after
    ] * 2


async def test_two_calls_failing_on_a_moved_clusters_client_keep_the_fresh_one(
    tke: tuple[Cluster, AppState],
) -> None:
    """Two calls on one cluster both failed on its old client: the first dropped it and made
    a fresh one, the second then dropped and closed that one under the first ("Cannot send a
    request, as the client has been closed", a crash at the doors) and read TKE once more."""
    cluster, state = tke
    await cluster.serve()
    clients = KubeClients(None, state.cloud)
    executor = KubernetesExecutor(clients)
    target = WorkloadRef(cluster_id=CLUSTER, namespace="shop", name="checkout")
    try:
        await executor.checkpoint(target)
        await cluster.serve()  # moved
        both = await asyncio.gather(*(executor.checkpoint(target) for _ in range(2)))
    finally:
        await clients.aclose()
    assert [taken.images for taken in both] == [["registry/checkout:1.0"]] * 2
    assert _kubeconfig_fetches(cluster.cloud) == 2


async def test_calls_on_a_client_dropped_for_an_edited_file_end_as_they_would_have(
    tmp_path: Path,
) -> None:
    """AMBIENT_KUBECONFIG edited (a comment added) while a read and a worker checkpoint were on
    its kept client: the client was closed under them, both failed "unreachable: ReadError"
    of a cluster that was fine. A client dropped is closed once no call uses it."""
    api = KubeApi()
    api.add_deployment("shop", "checkout", "registry/checkout:1.0", replicas=2)
    inner, held, arrived, holding = api.app(), asyncio.Event(), [], [True]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and holding[0]:
            arrived.append(scope["path"])
            await held.wait()
        await inner(scope, receive, send)

    async with serve(app) as base:
        path = tmp_path / "kubeconfig"
        path.write_text(yaml.safe_dump(contexts({"prod": base})))
        clients = KubeClients(path, None)
        target = WorkloadRef(cluster_id="prod", namespace="shop", name="checkout")
        busy = [
            asyncio.ensure_future(clients.using("prod", None, list_workloads)),
            asyncio.ensure_future(KubernetesExecutor(clients).checkpoint(target)),
        ]
        try:

            async def both_arrived() -> bool:
                return len(arrived) >= 2

            await eventually(both_arrived, "both calls at the server")
            holding[0] = False
            path.write_text(path.read_text() + "# the same server, a comment\n")
            assert [w.name for w in await clients.using("prod", None, list_workloads)] == [
                "checkout"
            ]
            held.set()
            listed, taken = await asyncio.gather(*busy)
        finally:
            held.set()
            await clients.aclose()
    assert [w.name for w in listed] == ["checkout"]
    assert taken.images == ["registry/checkout:1.0"]


async def test_a_connect_timeout_drops_the_client_for_the_next_call_not_this_one(
    tmp_path: Path,
) -> None:
    """A moved cluster's old address that drops what comes (a connect timeout: nothing sent)
    kept its client for good: every read timed out until the process restarted. The client is
    dropped; the call is not made again at once (a second wait as long), the next one is made
    on the kubeconfig read again."""
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(contexts({"prod": "https://127.0.0.1:9"})))
    clients = KubeClients(path, None)
    seen: list[object] = []

    async def timing_out(kube: Any) -> None:
        seen.append(kube)
        raise unreachable(httpx2.ConnectTimeout("timed out"), "listing deployments")

    async def taken(kube: Any) -> object:
        return kube

    try:
        with pytest.raises(KubeConnectTimeoutError):
            await clients.using("prod", None, timing_out)
        assert len(seen) == 1  # not again at once
        assert await clients.using("prod", None, taken) is not seen[0]
    finally:
        await clients.aclose()


async def test_a_client_dropped_after_the_files_contexts_changed_is_not_handed_out_again(
    tke: tuple[Cluster, AppState], tmp_path: Path
) -> None:
    """A stale call's client was dropped under the key the file gave at its failure: a
    context of the cluster's name added meanwhile missed the TKE client's key, which stayed
    kept though closed, and every call after the context went away got a closed client."""
    cluster, state = tke
    await cluster.serve()
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(contexts({"other": "https://127.0.0.1:9"})))
    clients = KubeClients(path, state.cloud)
    tries: list[int] = []

    async def moved_meanwhile(kube: Any) -> list[Any]:
        tries.append(1)
        if len(tries) == 1:  # the file gains a context of the cluster's name, then it fails
            path.write_text(yaml.safe_dump(contexts({CLUSTER: "https://127.0.0.1:9"})))
            raise unreachable(httpx2.ConnectError("refused"), "listing deployments")
        return []

    try:
        await clients.using(CLUSTER, None, moved_meanwhile)
        path.write_text(yaml.safe_dump(contexts({"other": "https://127.0.0.1:9"})))
        listed = await clients.using(CLUSTER, None, list_workloads)  # TKE's client again
    finally:
        await clients.aclose()
    assert [w.name for w in listed] == ["checkout"]
