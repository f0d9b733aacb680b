"""The cloud write routes: same service as the MCP tools, HTTP status by error class."""

from __future__ import annotations

import json
import pathlib
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
import yaml

from ambient.domain.users import RollbackPermission, UserCreate
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.users import UserRepository
from api.app import create_app
from tests.standins.tencent_api import SECRET_ID, SECRET_KEY, TencentApi
from tests.support.servers import HANG, free_port, http_client, serve


async def _token(settings: Settings, name: str, permission: RollbackPermission) -> dict[str, str]:
    db = Database(settings.resolved_database_url)
    try:
        async with db.session() as session:
            _, token = await UserRepository(session).create(
                UserCreate(name=name, rollback_permission=permission)
            )
            await session.commit()
    finally:
        await db.close()
    return {"Authorization": f"Bearer {token}"}


@pytest_asyncio.fixture
async def api(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[TencentApi, httpx.AsyncClient, Settings]]:
    cloud = TencentApi()
    cloud.logsets = [{"LogsetId": "logset-app", "LogsetName": "app"}]
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", SECRET_ID)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", SECRET_KEY)
    async with serve(cloud.app()) as tencent_base:
        settings = settings.model_copy(
            update={
                "temporal_address": f"127.0.0.1:{free_port()}",
                "tencentcloud_endpoint": tencent_base.removeprefix("http://"),
                "tencentcloud_protocol": "http",
            }
        )
        async with serve(create_app(settings)) as base:
            async with http_client(base, timeout=30) as client:
                yield cloud, client, settings


async def test_ca01_routes_preview_execute_refuse_and_map_errors(
    api: tuple[TencentApi, httpx.AsyncClient, Settings],
) -> None:
    cloud, http, settings = api
    ops = await _token(settings, "ops", RollbackPermission.EXECUTE)
    viewer = await _token(settings, "viewer", RollbackPermission.DRY_RUN)
    topic = {"logset_id": "logset-app", "name": "nginx"}
    dry = await http.post("/cloud/log-topics", json=topic, headers=viewer)
    assert dry.status_code == 200, dry.text
    assert dry.json()["steps"][0]["request"]["params"]["TopicName"] == "nginx"
    refused = await http.post(
        "/cloud/log-topics", json={**topic, "mode": "execute"}, headers=viewer
    )
    assert refused.status_code == 403 and "'dry_run'" in refused.json()["detail"]
    assert cloud.creates() == []
    done = await http.post("/cloud/log-topics", json={**topic, "mode": "execute"}, headers=ops)
    assert done.status_code == 200 and done.json()["steps"][0]["sent"] is True
    assert [a for _, a, _ in cloud.creates()] == ["CreateTopic"]
    missing = await http.post(
        "/cloud/log-topics",
        json={"logset_id": "logset-404", "name": "x", "mode": "execute"},
        headers=ops,
    )
    assert missing.status_code == 404 and "does not exist" in missing.json()["detail"]
    cloud.failures["CreateLogset"] = ["LimitExceeded.Logset"]
    quota = await http.post("/cloud/logsets", json={"name": "more", "mode": "execute"}, headers=ops)
    assert quota.status_code == 409 and "quota" in quota.json()["detail"]
    bad = await http.post(
        "/cloud/alarms",
        json={"name": "a", "topic_id": "t", "query": "*", "condition": "$1.n > 1"},
        headers=ops,
    )
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "notice_ids"]
    anonymous = await http.post("/cloud/logsets", json={"name": "x"})
    assert anonymous.status_code == 401


async def test_a_cloud_unavailable_for_now_is_a_503_and_refused_server_keys_a_502(
    api: tuple[TencentApi, httpx.AsyncClient, Settings],
) -> None:
    """A retryable upstream error ("try again") is 503, as Temporal or the database down is;
    Tencent Cloud refusing the server's own keys is the upstream's answer (502), not a 401 or
    403: the caller's token and permission were fine, and a 401 asks them for a new token."""
    cloud, http, settings = api
    ops = await _token(settings, "ops", RollbackPermission.EXECUTE)
    answers = {}
    for code in ("InternalError", "AuthFailure.SecretIdNotFound", "OperationDenied.AccountIsolate"):
        cloud.failures["CreateLogset"] = [code]
        answer = await http.post(
            "/cloud/logsets", json={"name": "more", "mode": "execute"}, headers=ops
        )
        answers[code] = answer.status_code, answer.json()["detail"]
    assert answers["InternalError"][0] == 503 and "try again" in answers["InternalError"][1]
    assert answers["AuthFailure.SecretIdNotFound"][0] == 502
    assert "TENCENTCLOUD_SECRET_ID" in answers["AuthFailure.SecretIdNotFound"][1]
    assert answers["OperationDenied.AccountIsolate"][0] == 502
    assert "arrears" in answers["OperationDenied.AccountIsolate"][1]


async def test_a_refused_lookup_names_the_read_the_cam_policy_lacks(
    api: tuple[TencentApi, httpx.AsyncClient, Settings],
) -> None:
    """A create's lookups by name are reads: refused, the answer said to allow the create
    ("cls:CreateTopic"), which the policy already allowed."""
    cloud, http, settings = api
    ops = await _token(settings, "ops", RollbackPermission.EXECUTE)
    topic = {"logset_id": "logset-app", "name": "nginx", "mode": "execute"}
    for refused in ("DescribeTopics", "DescribeLogsets"):
        cloud.failures[refused] = ["AuthFailure.UnauthorizedOperation"]
        answer = await http.post("/cloud/log-topics", json=topic, headers=ops)
        assert answer.status_code == 502, answer.text
        assert f"CAM policy allows cls:{refused} " in answer.json()["detail"], answer.text
    assert cloud.creates() == []


async def test_ca02_cli_previews_by_default_and_executes_with_the_flag(
    api: tuple[TencentApi, httpx.AsyncClient, Settings],
) -> None:
    import asyncio

    from typer.testing import CliRunner

    from ambient.cli import app

    cloud, _, settings = api
    await _token(settings, "ops", RollbackPermission.EXECUTE)
    env = {
        "TENCENTCLOUD_SECRET_ID": SECRET_ID,
        "TENCENTCLOUD_SECRET_KEY": SECRET_KEY,
        "AMBIENT_TENCENTCLOUD_ENDPOINT": settings.tencentcloud_endpoint or "",
        "AMBIENT_TENCENTCLOUD_PROTOCOL": "http",
        "AMBIENT_DATABASE_URL": settings.resolved_database_url,
    }
    runner = CliRunner()
    command = ["cloud", "create-logset", "audit", "--user", "ops"]
    preview = await asyncio.to_thread(runner.invoke, app, command, env=env)
    assert preview.exit_code == 0, preview.output
    assert '"CreateLogset"' in preview.output and cloud.creates() == []
    done = await asyncio.to_thread(runner.invoke, app, [*command, "--execute"], env=env)
    assert done.exit_code == 0, done.output
    assert [a for _, a, _ in cloud.creates()] == ["CreateLogset"]
    stranger = await asyncio.to_thread(
        runner.invoke, app, ["cloud", "create-logset", "x", "--user", "nobody"], env=env
    )
    assert stranger.exit_code == 1 and "ask an admin" in stranger.output
    empty = await asyncio.to_thread(
        runner.invoke, app, ["cloud", "create-logset", "", "--user", "ops"], env=env
    )
    assert empty.exit_code == 2 and "name" in empty.output

    cloud.topics = [{"TopicId": "topic-app", "TopicName": "app", "LogsetId": "logset-app"}]
    alarm = {
        "name": "errors",
        "topic_id": "topic-app",
        "query": "level:ERROR | select count(*) as n",
        "condition": "$1.n > 10",
        "notice_ids": [],
        "notice_name": "oncall",
        "notice_webhook": "https://hooks.example.com/cls",
    }
    spec = settings.data_dir / "alarm.yaml"
    spec.write_text(yaml.safe_dump(alarm))
    created = await asyncio.to_thread(
        runner.invoke,
        app,
        ["cloud", "create-alarm", str(spec), "--user", "ops", "--execute"],
        env=env,
    )
    assert created.exit_code == 0, created.output
    assert [a for _, a, _ in cloud.creates()][-2:] == ["CreateAlarmNotice", "CreateAlarm"]
    spec.write_text(yaml.safe_dump({**alarm, "level": 7}))
    bad = await asyncio.to_thread(
        runner.invoke, app, ["cloud", "create-alarm", str(spec), "--user", "ops"], env=env
    )
    assert bad.exit_code == 2 and "level" in bad.output


# Every door that can scale a node pool, asked the same forbidden thing: the service refuses.
POOL_CLUSTER = "cls-abcd1234"
FORBIDDEN = [
    ("viewer", RollbackPermission.DRY_RUN, "execute"),
    ("guest", RollbackPermission.NONE, "dry_run"),
]


async def _scale_over_mcp(settings: Settings, user: str, mode: str) -> tuple[bool, str]:
    from mcp import Client
    from tencentcloud.common.credential import Credential

    from ambient.clients.tencent.client import TencentCloud
    from ambient.wiring import AppState, StateHolder
    from mcp_server.server import build_server

    db = Database(settings.resolved_database_url)
    tencent = TencentCloud(
        Credential(SECRET_ID, SECRET_KEY),
        region="ap-guangzhou",
        endpoint=settings.tencentcloud_endpoint,
        protocol="http",
        timeout=int(HANG),  # served on the test's own loop: a loaded host's answers come late
    )
    state = AppState(
        settings=settings, db=db, temporal=None, channels=None, tencent=tencent, stdio_user=user
    )  # type: ignore[arg-type]
    try:
        async with Client(build_server(settings, holder=StateHolder(state))) as c:
            result = await c.call_tool(
                "scale_node_pool",
                {"cluster_id": POOL_CLUSTER, "node_pool_id": "np-1", "desired": 4, "mode": mode},
            )
    finally:
        await db.close()
    return bool(result.is_error), " ".join(getattr(p, "text", "") for p in result.content)


async def _scale_over_api(
    http: httpx.AsyncClient, headers: dict[str, str], mode: str
) -> tuple[bool, str]:
    body = {"cluster_id": POOL_CLUSTER, "node_pool_id": "np-1", "desired": 4, "mode": mode}
    answer = await http.post("/cloud/node-pools/scale", json=body, headers=headers)
    return answer.status_code == 403, answer.text


async def _scale_over_cli(settings: Settings, user: str, mode: str) -> tuple[bool, str]:
    import asyncio

    from typer.testing import CliRunner

    from ambient.cli import app

    env = {
        "TENCENTCLOUD_SECRET_ID": SECRET_ID,
        "TENCENTCLOUD_SECRET_KEY": SECRET_KEY,
        "AMBIENT_TENCENTCLOUD_ENDPOINT": settings.tencentcloud_endpoint or "",
        "AMBIENT_TENCENTCLOUD_PROTOCOL": "http",
        "AMBIENT_DATABASE_URL": settings.resolved_database_url,
    }
    command = ["cloud", "scale-node-pool", "np-1", "4", "--cluster", POOL_CLUSTER, "--user", user]
    if mode == "execute":
        command.append("--execute")
    done = await asyncio.to_thread(CliRunner().invoke, app, command, env=env)
    return done.exit_code == 1, done.output


@pytest.mark.parametrize(("user", "permission", "mode"), FORBIDDEN)
async def test_ca03_a_forbidden_node_pool_scale_is_refused_by_every_door_and_changes_nothing(
    api: tuple[TencentApi, httpx.AsyncClient, Settings],
    user: str,
    permission: RollbackPermission,
    mode: str,
) -> None:
    from ambient.storage.audit import AuditRepository

    cloud, http, settings = api
    cloud.node_pools[POOL_CLUSTER] = [
        {"NodePoolId": "np-1", "Name": "default", "DesiredNodesNum": 3, "MinNodesNum": 1}
        | {"MaxNodesNum": 6}
    ]
    headers = await _token(settings, user, permission)
    answers = {
        "mcp": await _scale_over_mcp(settings, user, mode),
        "api": await _scale_over_api(http, headers, mode),
        "cli": await _scale_over_cli(settings, user, mode),
    }
    for door, (refused, text) in answers.items():
        assert refused, f"{door}: {text}"
        assert "ask an admin" in text, f"{door}: {text}"
    assert cloud.node_pools[POOL_CLUSTER][0]["DesiredNodesNum"] == 4 - 1
    assert [a for _, a, _ in cloud.calls if a.startswith("Modify")] == []
    db = Database(settings.resolved_database_url)
    try:
        async with db.session() as session:
            rows = await AuditRepository(session).list()
    finally:
        await db.close()
    outcomes = [r.detail["outcome"] for r in rows if r.action == "cloud.scale_node_pool"]
    assert outcomes == ["refused"] * 3


# (route, body, the field the 422 names)
BAD_BODIES: list[tuple[str, dict[str, object], str]] = [
    (
        "/cloud/node-pools/scale",
        {"cluster_id": "cls-1", "node_pool_id": "np-1", "desired": 1},
        "cluster_id",
    ),
    (
        "/cloud/node-pools",
        {
            "cluster_id": "http://evil/",
            "name": "gpu",
            "vpc_id": "vpc-1",
            "subnet_ids": ["s-1"],
            "instance_type": "S5.MEDIUM4",
        },
        "cluster_id",
    ),
    (
        "/cloud/apply",
        {"cluster_id": "kind-dev", "documents": "a: 1", "namespace": "NS"},
        "namespace",
    ),
    (
        "/cloud/workloads/scale",
        {"cluster_id": "cls-abcd1234", "namespace": "shop", "name": "a_b", "replicas": 2},
        "name",
    ),
    (
        "/cloud/workloads/restart",
        {"cluster_id": "cls-", "namespace": "shop", "name": "web"},
        "cluster_id",
    ),
]


@pytest.mark.parametrize(("route", "body", "field"), BAD_BODIES)
async def test_ca04_a_malformed_cluster_id_namespace_or_name_is_a_422_naming_the_field(
    api: tuple[TencentApi, httpx.AsyncClient, Settings],
    route: str,
    body: dict[str, object],
    field: str,
) -> None:
    cloud, http, settings = api
    ops = await _token(settings, "ops", RollbackPermission.EXECUTE)
    answer = await http.post(route, json={**body, "mode": "execute"}, headers=ops)
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert [d["loc"][-1] for d in detail] == [field], detail
    assert "must be a" in detail[0]["msg"]
    assert cloud.calls == []


@pytest.mark.parametrize(
    "command",
    [
        ["cloud", "node-pools", "cls-1"],
        ["cloud", "scale-node-pool", "np-1", "4", "--cluster", "http://evil/", "--user", "ops"],
        ["cloud", "restart", "shop", "Web_1", "--cluster", "kind-dev", "--user", "ops"],
    ],
)
async def test_ca05_the_cli_refuses_a_malformed_identifier_naming_it_and_sends_nothing(
    api: tuple[TencentApi, httpx.AsyncClient, Settings], command: list[str]
) -> None:
    import asyncio

    from typer.testing import CliRunner

    from ambient.cli import app

    cloud, _, settings = api
    env = {
        "TENCENTCLOUD_SECRET_ID": SECRET_ID,
        "TENCENTCLOUD_SECRET_KEY": SECRET_KEY,
        "AMBIENT_TENCENTCLOUD_ENDPOINT": settings.tencentcloud_endpoint or "",
        "AMBIENT_TENCENTCLOUD_PROTOCOL": "http",
        "AMBIENT_DATABASE_URL": settings.resolved_database_url,
    }
    done = await asyncio.to_thread(CliRunner().invoke, app, command, env=env)
    assert done.exit_code == 2, done.output
    assert "must be a" in done.output
    assert any(field in done.output for field in ("cluster_id", "name"))
    assert cloud.calls == []


async def test_a_region_out_of_format_is_a_422_naming_region_and_sends_nothing(
    api: tuple[TencentApi, httpx.AsyncClient, Settings],
) -> None:
    cloud, http, settings = api
    ops = await _token(settings, "ops-region", RollbackPermission.EXECUTE)
    answer = await http.post(
        "/cloud/logsets", json={"name": "x", "region": "广州", "mode": "execute"}, headers=ops
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == ["body", "region"]
    assert "ap-guangzhou" in answer.json()["detail"][0]["msg"]
    assert cloud.calls == []


async def test_an_alarm_notice_webhook_that_is_not_an_http_url_is_a_422_and_creates_nothing(
    api: tuple[TencentApi, httpx.AsyncClient, Settings],
) -> None:
    cloud, http, settings = api
    ops = await _token(settings, "ops-hook", RollbackPermission.EXECUTE)
    cloud.topics = [{"TopicId": "topic-app", "TopicName": "app", "LogsetId": "logset-app"}]
    alarm = {
        "name": "errors",
        "topic_id": "topic-app",
        "query": "level:ERROR | select count(*) as n",
        "condition": "$1.n > 10",
        "notice_name": "oncall",
        "mode": "execute",
    }
    for hook in ("hooks.example.com/cls", "javascript:alert(1)", "ftp://hooks.example.com/"):
        answer = await http.post(
            "/cloud/alarms", json={**alarm, "notice_webhook": hook}, headers=ops
        )
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"][0]["loc"] == ["body", "notice_webhook"]
    assert cloud.creates() == []


@pytest.mark.parametrize(
    ("documents", "named"),
    [
        ("apiVersion: 1\nkind: ConfigMap\nmetadata: {name: a}\n", "apiVersion"),
        ("apiVersion: v1\nkind: 5\nmetadata: {name: a}\n", "kind"),
        ("apiVersion: v1\nkind: [ConfigMap]\nmetadata: {name: a}\n", "kind"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: a\n", "metadata"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: [{name: a}]\n", "metadata"),
    ],
)
async def test_ca06_yaml_whose_apiversion_kind_or_metadata_is_no_text_is_a_422_naming_it(
    api: tuple[TencentApi, httpx.AsyncClient, Settings], documents: str, named: str
) -> None:
    cloud, http, settings = api
    ops = await _token(settings, "ops", RollbackPermission.EXECUTE)
    answer = await http.post(
        "/cloud/apply",
        json={"cluster_id": "kind-dev", "documents": f"{documents}", "mode": "execute"},
        headers=ops,
    )
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert [d["loc"][-1] for d in detail] == ["documents"], detail
    assert "document 1" in detail[0]["msg"] and named in detail[0]["msg"], detail
    assert "nothing was applied" in detail[0]["msg"]
    assert cloud.calls == []


async def test_ca07_yaml_that_multiplies_itself_by_aliases_is_refused_before_it_is_expanded(
    api: tuple[TencentApi, httpx.AsyncClient, Settings],
) -> None:
    cloud, http, settings = api
    viewer = await _token(settings, "viewer", RollbackPermission.DRY_RUN)
    # 9 KB of YAML that is 40,000 env entries (16 MB of JSON) once its aliases are expanded;
    # at the 500 KB the API accepts the same shape is billions: the server would run out of
    # memory serialising it for the dry run.
    env = "\n".join(["      - &e {name: A, value: v}", *["      - *e"] * 199])
    containers = "\n".join(["  - &c", "    name: c", "    image: i", "    env:", env])
    documents = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
        f"{containers}\n" + "\n".join(["  - *c"] * 199) + "\n"
    )
    answer = await http.post(
        "/cloud/apply", json={"cluster_id": "kind-dev", "documents": documents}, headers=viewer
    )
    assert answer.status_code == 422, answer.text[:300]
    detail = answer.json()["detail"]
    assert [d["loc"][-1] for d in detail] == ["documents"], detail
    assert "aliases" in detail[0]["msg"] and "nothing was applied" in detail[0]["msg"], detail
    assert cloud.calls == []


@pytest.mark.parametrize("command", [["apply", "--cluster", "kind-dev"], ["create-node-pool"]])
async def test_ca08_the_cli_refuses_a_file_that_is_not_utf8_naming_it_without_a_traceback(
    api: tuple[TencentApi, httpx.AsyncClient, Settings],
    tmp_path: pathlib.Path,
    command: list[str],
) -> None:
    import asyncio

    from typer.testing import CliRunner

    from ambient.cli import app

    cloud, _, settings = api
    # Saved by an editor in Latin-1 (or UTF-16, as Windows Notepad does).
    spec = tmp_path / "caf\u00e9.yaml"
    spec.write_bytes(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: caf\u00e9}\n".encode("latin-1")
    )
    env = {
        "AMBIENT_TENCENTCLOUD_ENDPOINT": settings.tencentcloud_endpoint or "",
        "AMBIENT_DATABASE_URL": settings.resolved_database_url,
    }
    done = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["cloud", command[0], str(spec), *command[1:], "--user", "ops"],
        env=env,
    )
    assert done.exit_code == 2, done.output
    assert "UTF-8" in done.output and spec.name in done.output, done.output
    assert done.exception is None or isinstance(done.exception, SystemExit), done.exception
    assert cloud.calls == []


async def test_a_workload_change_through_the_api_asks_for_the_kubeconfig_in_its_region(
    api: tuple[TencentApi, httpx.AsyncClient, Settings],
) -> None:
    """The API door takes the cluster's region as MCP and the CLI do (one spec)."""
    cloud, http, settings = api
    ops = await _token(settings, "ops-workload-region", RollbackPermission.EXECUTE)
    body = {"cluster_id": "cls-abcd1234", "namespace": "shop", "name": "web", "replicas": 2}
    bad = await http.post("/cloud/workloads/scale", json={**body, "region": "广州"}, headers=ops)
    await http.post("/cloud/workloads/scale", json={**body, "region": "ap-shanghai"}, headers=ops)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "region"]
    asked = [
        region
        for (_, action, _), region in zip(cloud.calls, cloud.regions, strict=True)
        if action == "DescribeClusterKubeconfig"
    ]
    assert asked == ["ap-shanghai"]


# A misspelt optional field was dropped and its default asked for: {"max_size": 10} made a
# node pool of at most 3 nodes, {"retention": 7} a topic kept 30 days.
POOL = {
    "cluster_id": POOL_CLUSTER,
    "name": "pool",
    "vpc_id": "vpc-1",
    "subnet_ids": ["subnet-1"],
    "instance_type": "S5.MEDIUM4",
}
MISSPELT = [
    ("/cloud/node-pools", {**POOL, "max_size": 10}, "max_size"),
    (
        "/cloud/node-pools/scale",
        {"cluster_id": POOL_CLUSTER, "node_pool_id": "np-1", "desired": 2, "regoin": "ap-beijing"},
        "regoin",
    ),
    ("/cloud/logsets", {"name": "app", "regin": "ap-beijing"}, "regin"),
    ("/cloud/log-topics", {"logset_id": "logset-app", "name": "app", "retention": 7}, "retention"),
    (
        "/cloud/alarms",
        {
            "name": "e",
            "topic_id": "topic-app",
            "query": "q",
            "condition": "c",
            "notice_ids": ["notice-1"],
            "severity": 2,
        },
        "severity",
    ),
    (
        "/cloud/scheduled-sql",
        {"name": "s", "source_topic_id": "t1", "target_topic_id": "t2", "sql": "*", "every": 5},
        "every",
    ),
    (
        "/cloud/apply",
        {
            "cluster_id": POOL_CLUSTER,
            "documents": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
            "ns": "shop",
        },
        "ns",
    ),
    (
        "/cloud/workloads/scale",
        {"cluster_id": POOL_CLUSTER, "namespace": "shop", "name": "web", "replicas": 3, "dry": 1},
        "dry",
    ),
    (
        "/cloud/workloads/restart",
        {"cluster_id": POOL_CLUSTER, "namespace": "shop", "name": "web", "dryrun": True},
        "dryrun",
    ),
]


@pytest.mark.parametrize(("route", "body", "field"), MISSPELT)
async def test_a_misspelt_field_of_a_cloud_write_is_refused_by_name_and_sends_nothing(
    api: tuple[TencentApi, httpx.AsyncClient, Settings],
    route: str,
    body: dict[str, object],
    field: str,
) -> None:
    cloud, http, settings = api
    ops = await _token(settings, "ops", RollbackPermission.EXECUTE)
    answer = await http.post(route, json={**body, "mode": "execute"}, headers=ops)
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert [(d["loc"], d["type"]) for d in detail] == [(["body", field], "extra_forbidden")]
    assert cloud.calls == []


async def test_a_misspelt_field_in_a_tool_argument_or_a_spec_file_is_refused_by_name(
    api: tuple[TencentApi, httpx.AsyncClient, Settings],
) -> None:
    import asyncio

    from mcp import Client
    from typer.testing import CliRunner

    from ambient.cli import app
    from ambient.wiring import AppState, StateHolder
    from mcp_server.server import build_server

    cloud, _, settings = api
    await _token(settings, "ops", RollbackPermission.EXECUTE)
    db = Database(settings.resolved_database_url)
    state = AppState(settings=settings, db=db, temporal=None, channels=None, stdio_user="ops")  # type: ignore[arg-type]
    try:
        async with Client(build_server(settings, holder=StateHolder(state))) as client:
            tool = await client.call_tool(
                "create_node_pool", {"pool": {**POOL, "max_size": 10}, "mode": "execute"}
            )
    finally:
        await db.close()
    assert tool.is_error
    said = tool.content[0].text  # type: ignore[union-attr]
    assert "pool.max_size: Extra inputs are not permitted" in said, said

    spec = settings.data_dir / "pool.yaml"
    spec.write_text(yaml.safe_dump({**POOL, "max_size": 10}))
    env = {
        "TENCENTCLOUD_SECRET_ID": SECRET_ID,
        "TENCENTCLOUD_SECRET_KEY": SECRET_KEY,
        "AMBIENT_TENCENTCLOUD_ENDPOINT": settings.tencentcloud_endpoint or "",
        "AMBIENT_TENCENTCLOUD_PROTOCOL": "http",
        "AMBIENT_DATABASE_URL": settings.resolved_database_url,
    }
    command = ["cloud", "create-node-pool", str(spec), "--user", "ops", "--execute"]
    done = await asyncio.to_thread(CliRunner().invoke, app, command, env=env)
    assert done.exit_code == 2, done.output
    assert "max_size: Extra inputs are not permitted" in done.output, done.output
    assert cloud.calls == []


async def test_a_lookup_whose_list_changed_at_each_read_is_a_conflict_not_an_outage(
    api: tuple[TencentApi, httpx.AsyncClient, Settings],
) -> None:
    """A create's lookup by name whose list changed at each of its 3 reads (topics made or
    removed meanwhile) was a 503, an outage's status, for a Tencent Cloud that answered every
    call: it is a 409 (RFC 9110: a conflict with the resource's current state, to submit
    again), its words as they were, and nothing is created."""
    cloud, http, settings = api
    ops = await _token(settings, "ops", RollbackPermission.EXECUTE)
    rows = [{"TopicId": f"topic-{n:03d}", "TopicName": f"t{n}"} for n in range(150)]

    def page(found: list[dict[str, str]], total: int) -> tuple[int, str, bytes]:
        body = {"Response": {"Topics": found, "TotalCount": total, "RequestId": "r"}}
        return 200, "application/json", json.dumps(body).encode()

    cloud.raw["DescribeTopics"] = [
        answer
        for left in range(3)  # one more gone at each read: no read alike
        for answer in (
            page(rows[left : left + 100], 150 - left),
            page(rows[left + 101 : 150], 149 - left),
        )
    ]
    topic = {"logset_id": "logset-app", "name": "nginx", "mode": "execute"}
    answer = await http.post("/cloud/log-topics", json=topic, headers=ops)
    assert answer.status_code == 409, answer.text
    assert answer.json()["detail"] == (
        "Tencent Cloud's DescribeTopics list changed at each of its 3 reads (items made or "
        "removed meanwhile); try again in a moment"
    )
    assert cloud.creates() == []
