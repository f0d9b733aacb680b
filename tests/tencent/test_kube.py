"""lightkube against the stateful Kubernetes stand-in: workloads and their revision."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ambient.clients.kube import client_from_kubeconfig, cluster_client, list_workloads
from ambient.clients.kube_errors import KubeError, KubeUnavailableError, KubeUnreachableError
from ambient.clients.tencent.client import TencentCloud
from ambient.deps import WorkerDeps
from ambient.domain.users import UserCreate
from ambient.settings import Settings
from ambient.storage.users import UserRepository
from tests.standins.kube_api import KubeApi
from tests.standins.tencent_api import SECRET_ID, SECRET_KEY, TencentApi
from tests.support.servers import serve


def kubeconfig(server: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "tke",
            "clusters": [{"name": "tke", "cluster": {"server": server}}],
            "contexts": [
                {
                    "name": "tke",
                    "context": {"cluster": "tke", "user": "admin", "namespace": "default"},
                }
            ],
            "users": [{"name": "admin", "user": {"token": "test-token"}}],
        }
    )


@pytest_asyncio.fixture
async def kube() -> AsyncIterator[tuple[KubeApi, str]]:
    api = KubeApi()
    api.add_deployment("shop", "checkout", "registry/checkout:1.0", replicas=3)
    api.add_deployment("shop", "cart", "registry/cart:2.1", replicas=1)
    async with serve(api.app()) as base:
        yield api, kubeconfig(base)


async def test_workloads_and_their_revision_through_a_tke_style_kubeconfig(
    kube: tuple[KubeApi, str],
) -> None:
    api, config = kube
    client = client_from_kubeconfig(config)
    workloads = await list_workloads(client)
    assert [(w.name, w.replicas, w.ready, w.revision, w.images, w.healthy) for w in workloads] == [
        ("cart", 1, 1, 1, ["registry/cart:2.1"], True),
        ("checkout", 3, 3, 1, ["registry/checkout:1.0"], True),
    ]

    # A new image makes revision 2.
    deployment = api.deployments[("shop", "checkout")]
    deployment["spec"]["template"]["spec"]["containers"][0]["image"] = "registry/checkout:1.1"
    api._reconcile("shop", "checkout")
    checkout = (await list_workloads(client, "shop"))[1]
    assert (checkout.revision, checkout.images) == (2, ["registry/checkout:1.1"])


@pytest.mark.parametrize(("code", "retryable"), [(503, True), (429, True), (403, False)])
async def test_a_busy_api_server_while_listing_is_a_retryable_error(
    code: int, retryable: bool
) -> None:
    async def refuse(request: Request) -> JSONResponse:
        status = {"kind": "Status", "status": "Failure", "message": "not now", "code": code}
        return JSONResponse(status, status_code=code)

    app = Starlette(routes=[Route("/apis/apps/v1/deployments", refuse)])
    async with serve(app) as base:
        # A 403 not worded by the authorizer is a rule of the cluster's, said so.
        said = r"^listing deployments: (refused by the cluster: )?not now$"
        with pytest.raises(KubeError, match=said) as raised:
            await list_workloads(client_from_kubeconfig(kubeconfig(base)))
    assert raised.value.retryable is retryable
    assert isinstance(raised.value, KubeUnavailableError) is retryable


async def test_no_kubeconfig_is_a_clear_error(tmp_path: object) -> None:
    with pytest.raises(KubeError, match="AMBIENT_KUBECONFIG"):
        client_from_kubeconfig()


@asynccontextmanager
async def mcp_tools(deps: WorkerDeps, kubeconfigs: dict[str, str]) -> AsyncIterator[Any]:
    """An MCP client of the full server whose Tencent Cloud answers these kubeconfigs."""
    from mcp import Client
    from tencentcloud.common.credential import Credential

    from ambient.clients.tencent.client import TencentCloud
    from ambient.wiring import AppState, StateHolder
    from mcp_server.server import build_server
    from tests.standins.tencent_api import SECRET_ID, SECRET_KEY, TencentApi

    cloud = TencentApi(kubeconfigs=kubeconfigs)
    async with serve(cloud.app()) as base:
        tc = TencentCloud(
            Credential(SECRET_ID, SECRET_KEY),
            region="ap-guangzhou",
            endpoint=base.removeprefix("http://"),
            protocol="http",
        )
        state = AppState(
            settings=deps.settings,
            db=deps.db,
            temporal=None,  # type: ignore[arg-type]  # list_workloads needs no Temporal
            channels=deps.channels,
            tencent=tc,
            stdio_user="ops",
        )
        try:
            async with Client(build_server(state.settings, holder=StateHolder(state))) as client:
                yield client
        finally:
            await state.close_clusters()  # as ``open_state`` does at the process's end


async def test_list_workloads_tool_uses_the_tke_kubeconfig(
    kube: tuple[KubeApi, str], deps: WorkerDeps
) -> None:
    _, config = kube
    async with mcp_tools(deps, {"cls-abcd1234": config}) as client:
        found = await client.call_tool(
            "list_workloads", {"cluster_id": "cls-abcd1234", "namespace": "shop"}
        )
        missing = await client.call_tool("list_workloads", {})
    assert found.structured_content is not None
    assert [w["name"] for w in found.structured_content["workloads"]] == ["cart", "checkout"]
    assert missing.is_error and "AMBIENT_KUBECONFIG" in missing.content[0].text


async def test_list_workloads_tool_keeps_a_client_a_cluster_and_closes_every_one(
    kube: tuple[KubeApi, str], deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long-running MCP server keeps one client a cluster for its reads; one dropped (its
    cluster not reached) is closed at once, the others when the server ends."""
    import ambient.clients.kube as kube_clients

    opened: list[Any] = []

    def recording(*args: Any, **kwargs: Any) -> Any:
        opened.append(client_from_kubeconfig(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(kube_clients, "client_from_kubeconfig", recording)
    _, config = kube
    # A second cluster whose API server is not there: the error path must close too.
    dead = kubeconfig("http://127.0.0.1:9")
    async with mcp_tools(deps, {"cls-abcd1234": config, "cls-dead0000": dead}) as client:
        for _ in range(2):
            found = await client.call_tool(
                "list_workloads", {"cluster_id": "cls-abcd1234", "namespace": "shop"}
            )
        failed = await client.call_tool("list_workloads", {"cluster_id": "cls-dead0000"})
        # The dead cluster's kubeconfig read again once (a cluster moved would answer there).
        assert len(opened) == 3 and not opened[0]._client._client.is_closed
        assert all(c._client._client.is_closed for c in opened[1:])
    assert not found.is_error and failed.is_error
    assert "listing deployments: " in failed.content[0].text
    assert all(c._client._client.is_closed for c in opened)


async def test_a_tke_cluster_without_a_kubeconfig_is_said_not_read_from_the_local_file(
    kube: tuple[KubeApi, str], deps: WorkerDeps, tmp_path: Path
) -> None:
    # AMBIENT_KUBECONFIG names another cluster (the stand-in's shop deployments).
    _, config = kube
    local = tmp_path / "kubeconfig"
    local.write_text(config)
    deps.settings = deps.settings.model_copy(update={"kubeconfig": local})
    # TKE answers no kubeconfig for cls-abcd1234: its API server access is not enabled.
    async with mcp_tools(deps, {"cls-abcd1234": ""}) as client:
        asked = await client.call_tool("list_workloads", {"cluster_id": "cls-abcd1234"})
        local_ones = await client.call_tool("list_workloads", {})
    assert asked.is_error, asked.structured_content
    assert "TKE returned no kubeconfig for 'cls-abcd1234'" in asked.content[0].text
    assert not local_ones.is_error  # the file still serves a call that names no cluster


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "not found"),  # e.g. AMBIENT_KUBECONFIG=~/.kube/config in .env (no ~ there)
        ("clusters: [", "not a readable kubeconfig"),
        ("apiVersion: v1\nclusters: []\n", "not a readable kubeconfig"),
        # Its current context names a cluster it does not define: lightkube's KeyError was
        # "Error executing tool", and in a remediation retried for minutes as a passing one.
        (
            "apiVersion: v1\nkind: Config\nclusters: []\nusers: [{name: u, user: {token: t}}]\n"
            "contexts: [{name: dev, context: {cluster: missing, user: u}}]\n"
            "current-context: dev\n",
            "names something the file does not define (KeyError: 'missing')",
        ),
    ],
)
async def test_a_kubeconfig_file_that_cannot_be_read_is_named_with_why(
    deps: WorkerDeps, tmp_path: Path, content: str | None, says: str
) -> None:
    """list_workloads with no cluster reads AMBIENT_KUBECONFIG: a missing or broken file was
    'Error executing tool list_workloads' (lightkube's ConfigError, a YAML or a KeyError)."""
    local = tmp_path / "kubeconfig"
    if content is not None:
        local.write_text(content)
    deps.settings = deps.settings.model_copy(update={"kubeconfig": local})
    async with mcp_tools(deps, {}) as client:
        listed = await client.call_tool("list_workloads", {})
    assert listed.is_error
    text = listed.content[0].text
    assert f"AMBIENT_KUBECONFIG {local}" in text and says in text, text


async def test_list_workloads_reads_any_context_of_the_kubeconfig_the_writes_accept(
    kube: tuple[KubeApi, str], deps: WorkerDeps, tmp_path: Path
) -> None:
    """scale_workload / restart_workload take a context of AMBIENT_KUBECONFIG by its name
    (ClusterRef): list_workloads lists the same cluster under the same name."""
    _, config = kube
    local = tmp_path / "kubeconfig"
    local.write_text(config.replace("tke", "kind-dev"))  # its one context is "kind-dev"
    deps.settings = deps.settings.model_copy(update={"kubeconfig": local})
    async with deps.db.session() as session:
        await UserRepository(session).create(UserCreate(name="ops", rollback_permission="dry_run"))  # type: ignore[arg-type]
        await session.commit()
    async with mcp_tools(deps, {}) as client:
        listed = await client.call_tool(
            "list_workloads", {"cluster_id": "kind-dev", "namespace": "shop"}
        )
        scaled = await client.call_tool(
            "scale_workload",
            {
                "workload": {"cluster_id": "kind-dev", "namespace": "shop", "name": "cart"},
                "replicas": 2,
            },
        )
    assert not listed.is_error, listed.content[0].text
    assert listed.structured_content is not None
    assert [w["name"] for w in listed.structured_content["workloads"]] == ["cart", "checkout"]
    assert not scaled.is_error, scaled.content[0].text


async def test_a_worker_outside_the_vpc_reaches_a_tke_cluster_by_its_internet_kubeconfig(
    kube: tuple[KubeApi, str], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cluster's API server is reachable from the internet only (its intranet access is
    not enabled, or the worker runs outside its VPC): AMBIENT_TKE_EXTRANET asks TKE for that
    kubeconfig (IsExtranet); the default asks for the intranet one, as the API does."""
    _, config = kube
    cloud = TencentApi(extranet_kubeconfigs={"cls-abcd1234": config})
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", SECRET_ID)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", SECRET_KEY)
    async with serve(cloud.app()) as base:
        where = {"tencentcloud_endpoint": base.removeprefix("http://")}
        inside = settings.model_copy(update={**where, "tencentcloud_protocol": "http"})
        outside = inside.model_copy(update={"tke_extranet": True})
        client = await cluster_client("cls-abcd1234", None, TencentCloud.from_settings(outside))
        listed = await list_workloads(client, "shop")
        await client.close()
        client = await cluster_client("cls-abcd1234", None, TencentCloud.from_settings(inside))
        with pytest.raises(KubeUnavailableError, match="listing deployments"):
            await list_workloads(client, "shop")
        await client.close()
    assert [w.name for w in listed] == ["cart", "checkout"]
    asked = [p for _, action, p in cloud.calls if action == "DescribeClusterKubeconfig"]
    assert asked == [
        {"ClusterId": "cls-abcd1234", "IsExtranet": True},
        {"ClusterId": "cls-abcd1234", "IsExtranet": False},
    ]


async def test_a_cluster_tke_does_not_know_is_a_kube_error_naming_the_region_asked(
    kube: tuple[KubeApi, str], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DescribeClusterKubeconfig answers an error for a cluster TKE does not know (a wrong id,
    or a cluster of another region), not an empty kubeconfig: the error is a KubeError that
    names the cluster, the region asked and TKE's code, not retried, and no advice to enable
    an access that is not the problem. An empty answer still says what to enable."""
    _, config = kube
    cloud = TencentApi(
        kubeconfigs={"cls-abcd1234": config, "cls-noaccess": ""},
        cluster_regions={"cls-abcd1234": "ap-shanghai"},
    )
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", SECRET_ID)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", SECRET_KEY)
    async with serve(cloud.app()) as base:
        where = {"tencentcloud_endpoint": base.removeprefix("http://")}
        tc = TencentCloud.from_settings(
            settings.model_copy(update={**where, "tencentcloud_protocol": "http"})
        )
        errors = []
        for cluster in ("cls-unknown1", "cls-abcd1234"):
            with pytest.raises(KubeError) as failed:
                await cluster_client(cluster, None, tc)
            errors.append(failed.value)
        with pytest.raises(KubeError, match="TKE returned no kubeconfig for 'cls-noaccess'"):
            await cluster_client("cls-noaccess", None, tc)
        found = await cluster_client("cls-abcd1234", None, tc, region="ap-shanghai")
        await found.close()
        for code in ("InvalidParameter", "FailedOperation", "InternalError"):
            cloud.failures["DescribeClusterKubeconfig"] = [f"{code}.ClusterNotFound"]
            with pytest.raises(KubeError, match="no cluster cls-abcd1234 in ap-shanghai") as other:
                await cluster_client("cls-abcd1234", None, tc, region="ap-shanghai")
            assert not other.value.retryable
    for cluster, error in zip(("cls-unknown1", "cls-abcd1234"), errors, strict=True):
        assert not error.retryable
        assert f"TKE has no cluster {cluster} in ap-guangzhou" in str(error)
        assert "ResourceNotFound.ClusterNotFound" in str(error)
        assert "enable" not in str(error)


async def test_tke_unable_to_reach_a_cluster_or_refusing_its_state_says_what_happens_next(
    kube: tuple[KubeApi, str], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FailedOperation.KubeClientConnection was a KubeError never retried while the same
    cause under InternalError was; a refusal for the cluster's state named no state and said
    nothing to do."""
    _, config = kube
    cloud = TencentApi(kubeconfigs={"cls-abcd1234": config})
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", SECRET_ID)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", SECRET_KEY)
    async with serve(cloud.app()) as base:
        where = {"tencentcloud_endpoint": base.removeprefix("http://")}
        tc = TencentCloud.from_settings(
            settings.model_copy(update={**where, "tencentcloud_protocol": "http"})
        )
        for code in ("FailedOperation", "InternalError"):
            cloud.failures["DescribeClusterKubeconfig"] = [f"{code}.KubeClientConnection"]
            with pytest.raises(KubeError, match=f"{code}.KubeClientConnection") as unreached:
                await cluster_client("cls-abcd1234", None, tc)
            assert unreached.value.retryable
            # Not answering: a dry run says so at once, not after the change's retries.
            assert isinstance(unreached.value, KubeUnreachableError)
        for code in ("ResourceUnavailable", "FailedOperation", "InternalError"):
            cloud.failures["DescribeClusterKubeconfig"] = [f"{code}.ClusterState"]
            with pytest.raises(KubeError) as refused:
                await cluster_client("cls-abcd1234", None, tc)
            assert str(refused.value).startswith(
                "TKE gave no kubeconfig for cls-abcd1234 (DescribeClusterKubeconfig): "
                f"{code}.ClusterState: the cluster's state does not allow this now (being "
                "created, upgraded or scaled, or abnormal): see its state in the TKE console, "
                f"and ask again once it is Running. injected {code}.ClusterState"
            )
