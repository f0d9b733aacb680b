"""Whole numbers inside JSON bodies and MCP arguments: ASCII digits or a JSON number, as the
query, path and form numbers (test_query_params.py). pydantic's lax int read "0_3", " 3 ",
"+3" and "3.0" as 3: a typo or a pasted value must not become a replica or node count."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from mcp import Client
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.settings import Settings
from ambient.wiring import AppState, StateHolder
from api.app import create_app
from mcp_server.server import build_server
from tests.conftest import unique
from tests.support.admins import admin_headers
from tests.support.servers import free_port, http_client, serve

CLUSTER = "cls-7kq2m0ab"
WORKLOAD = {"cluster_id": CLUSTER, "namespace": "default", "name": "web"}
POOL = {
    "cluster_id": CLUSTER,
    "name": "pool",
    "vpc_id": "vpc-abc123",
    "subnet_ids": ["subnet-abc123"],
    "instance_type": "S5.MEDIUM4",
}
POOL_SCALE = {"cluster_id": CLUSTER, "node_pool_id": "np-abc123"}
TOPIC = {"logset_id": "ls-1", "name": "app"}
ALARM = {
    "name": "errors",
    "topic_id": "topic-1",
    "query": "level:ERROR",
    "condition": "$1 > 1",
    "notice_ids": ["notice-1"],
}
SQL = {"name": "rollup", "source_topic_id": "t-1", "target_topic_id": "t-2", "sql": "* | select 1"}
ALERT = {"source": "manual", "cluster_id": CLUSTER, "namespace": "default", "workload": "web"}
SHARE = {"title": "Report", "body": "all well"}


@dataclass(frozen=True)
class Field:
    """A whole-number field: where a door takes it, around what, and a number it accepts."""

    door: str  # "POST /path" or "tool name"
    around: dict[str, Any]  # the rest of the body (or arguments)
    at: tuple[str | int, ...]  # where the number goes in it
    number: int


def _put(around: dict[str, Any], at: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """``around`` with ``value`` at ``at`` (an int step: the value as a list's item)."""
    key, rest = at[0], at[1:]
    assert isinstance(key, str)
    if not rest:
        return {**around, key: value}
    if isinstance(rest[0], int):
        return {**around, key: [value]}
    return {**around, key: _put(around.get(key, {}), rest, value)}


FIELDS = [
    Field("POST /cloud/workloads/scale", WORKLOAD, ("replicas",), 3),
    Field("POST /cloud/node-pools", POOL, ("minimum",), 1),
    Field("POST /cloud/node-pools", POOL, ("maximum",), 3),
    Field("POST /cloud/node-pools", POOL, ("desired",), 2),
    Field("POST /cloud/node-pools", POOL, ("disk_size",), 50),
    Field("POST /cloud/node-pools/scale", POOL_SCALE, ("desired",), 2),
    Field("POST /cloud/log-topics", TOPIC, ("period",), 30),
    Field("POST /cloud/log-topics", TOPIC, ("partitions",), 2),
    Field("POST /cloud/alarms", ALARM, ("period_minutes",), 5),
    Field("POST /cloud/alarms", ALARM, ("window_minutes",), 15),
    Field("POST /cloud/alarms", ALARM, ("trigger_count",), 2),
    Field("POST /cloud/alarms", ALARM, ("level",), 2),
    Field("POST /cloud/alarms", ALARM, ("notice_uids", 0), 100012),
    Field("POST /cloud/scheduled-sql", SQL, ("period_minutes",), 60),
    Field("POST /share", SHARE, ("days",), 7),
    Field("POST /remediations/score", {"alert": ALERT}, ("alert", "settle_seconds"), 60),
    Field("create_node_pool", {"pool": POOL}, ("pool", "desired"), 2),
    Field("create_node_pool", {"pool": POOL}, ("pool", "disk_size"), 50),
    Field("create_log_topic", {"topic": TOPIC}, ("topic", "period"), 30),
    Field("create_cls_alarm", {"alarm": ALARM}, ("alarm", "level"), 2),
    Field("create_cls_alarm", {"alarm": ALARM}, ("alarm", "notice_uids", 0), 100012),
    Field("create_scheduled_sql", {"task": SQL}, ("task", "period_minutes"), 60),
    Field("score_alert", {"alert": ALERT}, ("alert", "settle_seconds"), 60),
    Field("start_remediation", {"alert": ALERT}, ("alert", "settle_seconds"), 60),
    Field("list_discussions", {}, ("offset",), 1),
    Field("scale_workload", {"workload": WORKLOAD}, ("replicas",), 3),
    Field("scale_node_pool", POOL_SCALE, ("desired",), 2),
    Field("list_events", {}, ("limit",), 5),
    Field("read_discussion", {"discussion_id": "disc_20261122081500_ab12"}, ("offset",), 1),
]


def _refused(number: int) -> list[tuple[Any, str]]:
    """What pydantic's lax int read as ``number`` (or as 1 and 0), and the error it now is."""
    typos = [f"0_{number}", f" {number} ", f"+{number}", f"{number}.0"]
    return [*((typo, "int_parsing") for typo in typos), (True, "int_type"), (False, "int_type")]


@pytest_asyncio.fixture
async def state(settings: Settings, deps: WorkerDeps, dev_env: WorkflowEnvironment) -> AppState:
    return AppState(
        settings=settings.model_copy(update={"temporal_task_queue": unique("tq")}),
        db=deps.db,
        temporal=dev_env.client,
        channels=deps.channels,
        stdio_user="alice",
    )


API = [f for f in FIELDS if f.door.startswith("POST ")]
MCP = [f for f in FIELDS if not f.door.startswith("POST ")]


def _name(field: Field) -> str:
    return f"{field.door}:{'.'.join(map(str, field.at))}"


@pytest.mark.parametrize("field", API, ids=_name)
async def test_a_whole_number_in_a_body_is_digits_only_or_refused_naming_it(
    settings: Settings, field: Field
) -> None:
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    path = field.door.removeprefix("POST ")
    async with (
        serve(create_app(settings)) as base,
        http_client(base) as http,
    ):
        admin = await admin_headers(settings)
        for typed, kind in _refused(field.number):
            body = _put(field.around, field.at, typed)
            response = await http.post(path, json=body, headers=admin)
            assert response.status_code == 422, (typed, response.text)
            [error] = response.json()["detail"]
            assert (error["loc"], error["type"]) == (["body", *field.at], kind), typed
        # As written, the number is read (no cloud, no Temporal here: never 422).
        for given in [str(field.number), field.number]:
            body = _put(field.around, field.at, given)
            response = await http.post(path, json=body, headers=admin)
            assert response.status_code != 422, (given, response.text)


@pytest.mark.parametrize("field", MCP, ids=_name)
async def test_a_whole_number_in_tool_arguments_is_digits_only_or_the_tool_refuses_it(
    state: AppState, field: Field
) -> None:
    where = ".".join(map(str, field.at))
    async with Client(build_server(state.settings, holder=StateHolder(state))) as client:
        for typed, _ in _refused(field.number):
            refused = await client.call_tool(field.door, _put(field.around, field.at, typed))
            assert refused.is_error, typed
            text = refused.content[0].text  # type: ignore[union-attr]
            assert f"{where}: Input should be a valid integer" in text, (typed, text)
        for given in [str(field.number), field.number]:
            read = await client.call_tool(field.door, _put(field.around, field.at, given))
            text = read.content[0].text  # type: ignore[union-attr]
            assert f"{where}:" not in text, (given, text)


# Decimal numbers the same way: pydantic's lax float read "9_5" as 95, "1e2" as 100 and true
# as 1, so an alert's value or threshold could be another number than the one meant.
NOT_DECIMAL = [("9_5", "float_parsing"), (" 95 ", "float_parsing"), ("1e2", "float_parsing")]
NOT_DECIMAL += [("+95", "float_parsing"), ("inf", "float_parsing"), (True, "float_type")]


async def test_a_decimal_number_in_a_body_or_tool_arguments_is_digits_and_a_point_or_refused(
    settings: Settings, state: AppState
) -> None:
    app_settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with (
        serve(create_app(app_settings)) as base,
        http_client(base) as http,
        Client(build_server(state.settings, holder=StateHolder(state))) as client,
    ):
        admin = await admin_headers(app_settings)
        for field in ("value", "threshold"):
            for typed, kind in NOT_DECIMAL:
                body = {"alert": {**ALERT, field: typed}}
                response = await http.post("/remediations/score", json=body, headers=admin)
                assert response.status_code == 422, (typed, response.text)
                [error] = response.json()["detail"]
                assert (error["loc"], error["type"]) == (["body", "alert", field], kind), typed
                refused = await client.call_tool("score_alert", body)
                text = refused.content[0].text  # type: ignore[union-attr]
                assert refused.is_error and f"alert.{field}: Input should be" in text, text
            for given in ["95.5", "-3", 95.5, 95, 1e2]:
                body = {"alert": {**ALERT, field: given}}
                response = await http.post("/remediations/score", json=body, headers=admin)
                assert response.status_code == 200, (given, response.text)
        for typed, _ in NOT_DECIMAL:
            path = "/discussions/disc_20261122081500_ab12/anomalies"
            response = await http.get(path, params={"threshold_seconds": typed}, headers=admin)
            assert response.status_code == 422, (typed, response.text)
            assert response.json()["detail"][0]["loc"] == ["query", "threshold_seconds"]
            arguments = {"discussion_id": "disc_1", "threshold_seconds": typed}
            refused = await client.call_tool("detect_anomalies", arguments)
            text = refused.content[0].text  # type: ignore[union-attr]
            assert "threshold_seconds: Input should be" in text, text
