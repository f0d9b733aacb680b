"""Asked-for Tencent Cloud writes through the MCP tools, against the TC3-verifying stand-in."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio

from ambient.clients.tencent.client import TencentCloud
from ambient.clients.tencent.errors import TencentRequestError
from ambient.cloud.node_pools import NodePoolSpec
from ambient.deps import WorkerDeps
from ambient.domain.users import UserCreate, UserSettings
from ambient.storage.audit import AuditRepository
from ambient.storage.users import UserRepository
from ambient.wiring import AppState
from tests.standins import tencent_api
from tests.standins.tencent_api import (
    REQUIRED,
    TencentApi,
    missing_parameter,
)
from tests.support.servers import serve
from tests.support.tencent import ops_state, standin_tencent
from tests.tencent.test_cloud_tools import call, client

POOL = {
    "cluster_id": "cls-abcd1234",
    "name": "gpu",
    "vpc_id": "vpc-1",
    "subnet_ids": ["subnet-1"],
    "instance_type": "S5.MEDIUM4",
    "minimum": 0,
    "maximum": 4,
    "desired": 2,
}
ALARM = {
    "name": "too-many-errors",
    "topic_id": "topic-app",
    "query": "level:ERROR | select count(*) as n",
    "condition": "$1.n > 10",
    "notice_name": "oncall",
    "notice_webhook": "https://hooks.example.com/cls",
}
SQL = {
    "name": "errors-hourly",
    "source_topic_id": "topic-app",
    "target_topic_id": "topic-stats",
    "sql": "level:ERROR | select count(*) as n",
    "start": "2026-11-22T08:00:00Z",
}


@pytest_asyncio.fixture
async def cloud(deps: WorkerDeps) -> AsyncIterator[tuple[TencentApi, AppState]]:
    api = TencentApi()
    api.node_pools["cls-abcd1234"] = []
    api.logsets = [{"LogsetId": "logset-app", "LogsetName": "app"}]
    api.topics = [
        {"TopicId": "topic-app", "TopicName": "app", "LogsetId": "logset-app"},
        {"TopicId": "topic-stats", "TopicName": "stats", "LogsetId": "logset-app"},
    ]
    async with deps.db.session() as session:
        users = UserRepository(session)
        for name, permission in (("ops", "execute"), ("viewer", "dry_run"), ("guest", "none")):
            await users.create(UserCreate(name=name, rollback_permission=permission))  # type: ignore[arg-type]
        await session.commit()
    async with serve(api.app()) as base:
        tc = standin_tencent(base)
        yield api, ops_state(deps, tc)


CASES: list[tuple[str, str, dict[str, Any], list[str]]] = [
    ("create_node_pool", "pool", POOL, ["CreateClusterNodePool"]),
    ("create_logset", "logset", {"name": "audit"}, ["CreateLogset"]),
    (
        "create_log_topic",
        "topic",
        {"logset_id": "logset-app", "name": "nginx", "period": 7},
        ["CreateTopic"],
    ),
    ("create_cls_alarm", "alarm", ALARM, ["CreateAlarmNotice", "CreateAlarm"]),
    ("create_scheduled_sql", "task", SQL, ["CreateScheduledSql"]),
]


@pytest.mark.parametrize(("tool", "arg", "spec", "actions"), CASES)
async def test_cw01_a_dry_run_answers_the_exact_request_and_execute_sends_it_once(
    cloud: tuple[TencentApi, AppState],
    tool: str,
    arg: str,
    spec: dict[str, Any],
    actions: list[str],
) -> None:
    api, state = cloud
    async with client(state, "ops") as c:
        failed, dry = await call(c, tool, **{arg: spec})
        assert not failed, dry
        assert api.creates() == []  # nothing sent in a dry run
        failed, done = await call(c, tool, **{arg: spec}, mode="execute")
        assert not failed, done
    assert dry["mode"] == "dry_run" and [s["sent"] for s in dry["steps"]] == [False] * len(actions)
    assert [s["request"]["action"] for s in dry["steps"]] == actions
    assert [a for _, a, _ in api.creates()] == actions  # exactly one request per create
    # What the dry run showed is what execute sent (a new notice's id is only known then).
    sent = api.creates()[-1][2]
    previewed = dry["steps"][-1]["request"]["params"]
    if tool == "create_cls_alarm":
        assert previewed["AlarmNoticeIds"] == ["<id of new notice 'oncall'>"]
        previewed = {**previewed, "AlarmNoticeIds": [done["steps"][0]["resource_id"]]}
    assert sent == previewed
    # The region too: left out, the preview names the configured one the create went to.
    assert {s["request"]["region"] for s in dry["steps"]} == set(api.regions)
    assert done["resource_id"] and done["steps"][-1]["sent"] is True
    async with state.db.session() as session:
        rows = await AuditRepository(session).list()
    outcomes = [(r.action, r.detail["outcome"]) for r in rows if r.action == f"cloud.{tool}"]
    assert sorted(o for _, o in outcomes) == ["dry_run", "executed"]


async def test_a_node_pool_is_made_without_the_autoscaler_when_asked(
    cloud: tuple[TencentApi, AppState],
) -> None:
    """Every pool was made with TKE's cluster autoscaler on (EnableAutoscale true), free to take
    it down to its minimum (0 by default) and undo a scale_node_pool: it is the asker's."""
    api, state = cloud
    async with client(state, "ops") as c:
        for autoscale in (False, True):
            pool = {**POOL, "name": f"pool-{autoscale}", "autoscale": autoscale}
            failed, done = await call(c, "create_node_pool", pool=pool, mode="execute")
            assert not failed, done
    assert [params["EnableAutoscale"] for _, _, params in api.creates()] == [False, True]


@pytest.mark.parametrize(("tool", "arg", "spec", "actions"), CASES)
async def test_cw02_a_retried_create_finds_the_existing_resource_instead_of_making_two(
    cloud: tuple[TencentApi, AppState],
    tool: str,
    arg: str,
    spec: dict[str, Any],
    actions: list[str],
) -> None:
    api, state = cloud
    async with client(state, "ops") as c:
        _, first = await call(c, tool, **{arg: spec}, mode="execute")
        failed, again = await call(c, tool, **{arg: spec}, mode="execute")
    assert not failed, again
    assert len(api.creates()) == len(actions)
    assert again["resource_id"] == first["resource_id"]
    assert all(s["existing"] and not s["sent"] for s in again["steps"])
    assert "already exists" in again["summary"]


async def test_cw03_permission_is_read_from_the_database_and_refusals_are_audited(
    cloud: tuple[TencentApi, AppState],
) -> None:
    api, state = cloud
    async with client(state, "guest") as c:
        refused, message = await call(c, "create_logset", logset={"name": "x"})
    assert refused and "rollback_permission 'none'" in message
    async with client(state, "viewer") as c:
        failed_dry, dry = await call(c, "create_logset", logset={"name": "x"})
        refused_exec, message_exec = await call(
            c, "create_logset", logset={"name": "x"}, mode="execute"
        )
    assert not failed_dry and dry["steps"][0]["sent"] is False
    assert refused_exec and "'dry_run'" in message_exec
    assert api.creates() == []
    async with state.db.session() as session:
        rows = await AuditRepository(session).list()
    refusals = [(r.actor, r.detail["mode"]) for r in rows if r.detail.get("outcome") == "refused"]
    assert sorted(refusals) == [("guest", "dry_run"), ("viewer", "execute")]


async def test_a_caller_who_may_not_create_is_refused_before_the_input_is_judged(
    cloud: tuple[TencentApi, AppState],
) -> None:
    """A node pool's desired outside [minimum, maximum] or a scheduled SQL onto its own
    topic, sent by a guest: told what was wrong with the input, audited as failed/invalid."""
    api, state = cloud
    async with client(state, "guest") as c:
        pool = await call(c, "create_node_pool", pool={**POOL, "desired": 9})
        task = await call(c, "create_scheduled_sql", task={**SQL, "target_topic_id": "topic-app"})
    for refused, message in (pool, task):
        assert refused and "rollback_permission 'none'" in message, message
    assert api.calls == []
    async with state.db.session() as session:
        rows = await AuditRepository(session).list()
    assert sorted((r.action, r.detail["outcome"]) for r in rows if "outcome" in r.detail) == [
        ("cloud.create_node_pool", "refused"),
        ("cloud.create_scheduled_sql", "refused"),
    ]


@pytest.mark.parametrize(
    ("code", "says"),
    [
        ("AuthFailure.UnauthorizedOperation", "CAM policy allows cls:CreateLogset"),
        ("UnauthorizedOperation.NotAllowed", "CAM policy allows cls:CreateLogset"),
        ("LimitExceeded.Logset", "quota or limit reached"),
        ("InvalidParameter.Content", "rejected a parameter of CreateLogset"),
        ("ResourceNotFound.LogsetNotExist", "does not exist"),
        # The name is taken, yet the lookup after the conflict finds nothing it could adopt.
        ("InvalidParameter.LogsetConflict", "the name is taken"),
    ],
)
async def test_cw04_each_tencent_error_class_reads_as_what_to_do(
    cloud: tuple[TencentApi, AppState], code: str, says: str
) -> None:
    api, state = cloud
    api.failures["CreateLogset"] = [code]
    async with client(state, "ops") as c:
        failed, message = await call(c, "create_logset", logset={"name": "x"}, mode="execute")
    assert failed and says in message and code in message
    async with state.db.session() as session:
        rows = await AuditRepository(session).list()
    assert [r.detail["outcome"] for r in rows if r.action == "cloud.create_logset"] == ["failed"]


@pytest.mark.parametrize(
    ("code", "says"),
    [
        ("InternalError.CamNoAuth", "CAM policy allows tke:CreateClusterNodePool"),
        ("InternalError.QuotaMaxNodLimit", "quota or limit reached"),
        ("InternalError.Param", "rejected a parameter of CreateClusterNodePool"),
        ("InternalError.ClusterNotFound", "does not exist"),
        # Lasting causes TKE words as InternalError (tke errorcodes): said as "unavailable,
        # try again" and retried, before.
        ("InternalError.TradeInsufficientBalance", "account has too little balance"),
        ("InternalError.InsufficientBalance", "account has too little balance"),
        ("InternalError.NotVerified", "account is not identity-verified"),
        ("InternalError.NoPaymentAccess", "may not pay for new resources"),
        ("InternalError.OsNotSupport", "node pool's OS (`os_name`)"),
        # The same refusals under TKE's other prefixes (tke errorcodes): "... failed" (a quota
        # with no advice) and "rejected a parameter" with no word of the OS, before.
        ("FailedOperation.OsNotSupport", "node pool's OS (`os_name`)"),
        ("InvalidParameter.OsNotSupport", "node pool's OS (`os_name`)"),
        ("FailedOperation.QuotaMaxNodLimit", "quota or limit reached"),
        ("FailedOperation.QuotaMaxClsLimit", "quota or limit reached"),
        ("InternalError.PublicClusterOpNotSupport", "CreateClusterNodePool"),
        ("InternalError.CidrConflictWithVpcCidr", "CreateClusterNodePool"),
    ],
)
async def test_tke_internal_errors_naming_a_permanent_cause_read_as_what_to_do(
    cloud: tuple[TencentApi, AppState], code: str, says: str
) -> None:
    api, state = cloud
    api.failures["CreateClusterNodePool"] = [code]
    async with client(state, "ops") as c:
        failed, message = await call(c, "create_node_pool", pool=POOL, mode="execute")
    assert failed and says in message and code in message, message
    assert "try again" not in message and "unavailable" not in message, message
    assert api.failures["CreateClusterNodePool"] == []  # asked once, not retried


@pytest.mark.parametrize(
    "code",
    [
        "ResourceNotFound.ClusterNotFound",
        "InternalError.ClusterNotFound",
        "InvalidParameter.ClusterNotFound",
        "FailedOperation.ClusterNotFound",
    ],
)
async def test_every_code_tke_has_for_a_missing_cluster_reads_as_not_found(
    cloud: tuple[TencentApi, AppState], code: str
) -> None:
    """TKE answers a cluster it does not know with any of four codes (tke errorcodes
    .ClusterNotFound under ResourceNotFound, InternalError, InvalidParameter, FailedOperation):
    two of them read as "Tencent Cloud rejected a parameter" (HTTP 422) or "... failed" (502),
    not as a cluster that does not exist (404) as the other two did."""
    api, state = cloud
    api.failures["CreateClusterNodePool"] = [code]
    async with client(state, "ops") as c:
        failed, message = await call(c, "create_node_pool", pool=POOL, mode="execute")
    assert failed and "does not exist" in message and code in message, message
    assert "rejected a parameter" not in message and "try again" not in message


@pytest.mark.parametrize(
    ("code", "says"),
    [
        # cls errorcodes: 账户欠费, 账户已销毁, 账户不存在, ACL校验失败 - not a parameter's fault.
        ("OperationDenied.AccountIsolate", "account is in arrears"),
        ("OperationDenied.AccountDestroy", "account has been destroyed"),
        ("OperationDenied.AccountNotExists", "account does not exist"),
        ("OperationDenied.ACLFailed", "CAM policy allows cls:CreateLogset"),
    ],
)
async def test_cls_refusals_for_the_account_or_its_access_are_not_blamed_on_a_parameter(
    cloud: tuple[TencentApi, AppState], code: str, says: str
) -> None:
    api, state = cloud
    api.failures["CreateLogset"] = [code]
    async with client(state, "ops") as c:
        failed, message = await call(c, "create_logset", logset={"name": "x"}, mode="execute")
    assert failed and says in message and code in message, message
    assert "rejected a parameter" not in message and "try again" not in message


async def test_a_cls_service_role_refused_is_said_as_the_role_to_grant_and_not_retried(
    cloud: tuple[TencentApi, AppState],
) -> None:
    """CLS answers InternalError.IllegalRole (cls errorcodes: 角色非法) when the service role it
    acts with (CLS_QcsRole) is missing or lacks a policy: asking again answers the same, so the
    person is told which role to grant, not that Tencent Cloud is unavailable."""
    api, state = cloud
    api.failures["CreateLogset"] = ["InternalError.IllegalRole"] * 4
    async with client(state, "ops") as c:
        failed, message = await call(c, "create_logset", logset={"name": "x"}, mode="execute")
    assert failed and "CLS_QcsRole" in message and "InternalError.IllegalRole" in message, message
    assert "try again" not in message and "unavailable" not in message
    assert api.failures["CreateLogset"] == ["InternalError.IllegalRole"] * 3  # asked once


async def test_cw05_bad_input_names_the_field_and_sends_nothing(
    cloud: tuple[TencentApi, AppState],
) -> None:
    api, state = cloud
    async with client(state, "ops") as c:
        failed, message = await call(
            c, "create_node_pool", pool={**POOL, "desired": 9}, mode="execute"
        )
        no_notice, notice_message = await call(
            c, "create_cls_alarm", alarm={**ALARM, "notice_name": None}, mode="execute"
        )
        wrong_cluster, cluster_message = await call(
            c, "create_node_pool", pool={**POOL, "cluster_id": "cls-nope0404"}, mode="execute"
        )
        no_topic, topic_message = await call(
            c, "create_cls_alarm", alarm={**ALARM, "topic_id": "topic-404"}, mode="execute"
        )
        no_webhook, webhook_message = await call(
            c, "create_cls_alarm", alarm={**ALARM, "notice_webhook": None}, mode="execute"
        )
        same_topic, same_message = await call(
            c, "create_scheduled_sql", task={**SQL, "target_topic_id": "topic-app"}
        )
        tools = {t.name: t for t in (await c.list_tools()).tools}
    # Worded as create_scheduled_sql words a missing topic (must_exist).
    assert no_topic and "topic topic-404 does not exist in region" in topic_message
    assert failed and "desired" in message
    assert no_notice and "notice_ids" in notice_message
    assert wrong_cluster and "does not exist" in cluster_message
    assert no_webhook and "notice_webhook" in webhook_message
    assert same_topic and "target_topic_id" in same_message
    assert api.creates() == []
    # Every call leaves its row: input refused before any lookup too (those left none).
    async with state.db.session() as session:
        rows = await AuditRepository(session).list()
    failures = sorted((r.action, r.detail["kind"]) for r in rows if r.detail.get("outcome"))
    assert failures == [
        ("cloud.create_cls_alarm", "invalid"),
        ("cloud.create_cls_alarm", "invalid"),
        ("cloud.create_cls_alarm", "not_found"),
        ("cloud.create_node_pool", "invalid"),
        ("cloud.create_node_pool", "not_found"),
        ("cloud.create_scheduled_sql", "invalid"),
    ], failures
    for name, *_ in CASES:
        hints = tools[name].annotations
        assert hints is not None and hints.read_only_hint is False
        assert hints.idempotent_hint is True and hints.open_world_hint is True
        assert hints.destructive_hint is False


async def test_cw06_without_credentials_a_write_says_what_to_configure(
    cloud: tuple[TencentApi, AppState],
) -> None:
    api, state = cloud
    state = AppState(**{**state.__dict__, "tencent": TencentCloud(None, region="ap-guangzhou")})
    async with client(state, "ops") as c:
        failed, message = await call(c, "create_logset", logset={"name": "x"}, mode="execute")
    assert failed and "TENCENTCLOUD_SECRET_ID" in message
    assert api.calls == []


@pytest.mark.parametrize(
    "conflict", ["InvalidParameter.LogsetConflict", "FailedOperation.LogsetConflict"]
)
async def test_cw07_a_create_racing_another_caller_for_the_name_answers_the_winner(
    cloud: tuple[TencentApi, AppState], conflict: str
) -> None:
    """Either of CreateLogset's documented answers to a taken name finds the winner's."""
    api, state = cloud
    api.logset_conflict = conflict
    raced = {"LogsetId": "logset-raced", "LogsetName": "audit"}
    api.before["CreateLogset"] = lambda: api.logsets.append(raced)
    async with client(state, "ops") as c:
        failed, result = await call(c, "create_logset", logset={"name": "audit"}, mode="execute")
    assert not failed, result
    assert result["resource_id"] == "logset-raced" and result["steps"][0]["existing"] is True
    assert [s["LogsetName"] for s in api.logsets].count("audit") == 1


@pytest.mark.parametrize(("tool", "arg", "spec", "actions"), CASES)
async def test_cw08_every_create_sends_each_parameter_the_api_reference_requires(
    cloud: tuple[TencentApi, AppState],
    tool: str,
    arg: str,
    spec: dict[str, Any],
    actions: list[str],
) -> None:
    _, state = cloud
    async with client(state, "ops") as c:
        failed, dry = await call(c, tool, **{arg: spec})
    assert not failed, dry
    for step in dry["steps"]:
        request = step["request"]
        assert request["action"] in REQUIRED
        assert missing_parameter(request["params"], REQUIRED[request["action"]]) is None


async def test_cw09_a_scheduled_sql_task_names_its_topics_region_the_configured_one_by_default(
    cloud: tuple[TencentApi, AppState],
) -> None:
    api, state = cloud
    async with client(state, "ops") as c:
        failed, done = await call(c, "create_scheduled_sql", task=SQL, mode="execute")
        _, elsewhere = await call(c, "create_scheduled_sql", task={**SQL, "region": "ap-shanghai"})
    assert not failed, done
    sent = api.creates()[-1][2]
    assert sent["SrcTopicRegion"] == "ap-guangzhou"
    assert sent["DstResource"]["Region"] == "ap-guangzhou"
    params = elsewhere["steps"][0]["request"]["params"]
    assert (params["SrcTopicRegion"], params["DstResource"]["Region"]) == (
        "ap-shanghai",
        "ap-shanghai",
    )


async def test_cw10_the_stand_in_refuses_a_request_without_a_required_parameter_by_name(
    cloud: tuple[TencentApi, AppState],
) -> None:
    api, state = cloud
    target = {"TopicId": "topic-app", "Query": "*", "Number": 1, "StartTimeOffset": -15}
    with pytest.raises(TencentRequestError) as missing_top:
        await state.tencent.call("cls", "CreateTopic", {"LogsetId": "logset-app"})
    with pytest.raises(TencentRequestError) as missing_nested:
        await state.tencent.call(
            "cls",
            "CreateAlarm",
            {
                "Name": "a",
                "AlarmTargets": [{**target, "EndTimeOffset": 0, "LogsetId": "logset-app"}, target],
                "MonitorTime": {"Type": "Period", "Time": 1},
                "TriggerCount": 1,
                "AlarmPeriod": 15,
            },
        )
    assert missing_top.value.code == "MissingParameter"
    assert "`TopicName`" in missing_top.value.message
    assert missing_nested.value.code == "MissingParameter"
    assert "`AlarmTargets.1.EndTimeOffset`" in missing_nested.value.message
    assert api.topics[-1]["TopicName"] == "stats" and api.cls_alarms == []


async def test_the_stand_in_refuses_a_scaling_group_without_its_sizes_as_tke_does(
    cloud: tuple[TencentApi, AppState],
) -> None:
    """A scaling group without MinSize or MaxSize raised KeyError in the stand-in (an answer no
    real TKE gives) before its documented refusal; DesiredCapacity is optional."""
    api, state = cloud
    params = NodePoolSpec.model_validate(POOL).request().params
    scaling = json.loads(params["AutoScalingGroupPara"])
    codes = []
    for missing in ("MinSize", "MaxSize"):
        without = {k: v for k, v in scaling.items() if k != missing}
        with pytest.raises(TencentRequestError) as refused:
            await state.tencent.call(
                "tke",
                "CreateClusterNodePool",
                {**params, "AutoScalingGroupPara": json.dumps(without)},
            )
        codes.append(refused.value.code)
    assert codes == ["InvalidParameter.AsCommonError"] * 2
    assert api.node_pools["cls-abcd1234"] == []
    no_desired = {k: v for k, v in scaling.items() if k != "DesiredCapacity"}
    await state.tencent.call(
        "tke", "CreateClusterNodePool", {**params, "AutoScalingGroupPara": json.dumps(no_desired)}
    )
    assert len(api.node_pools["cls-abcd1234"]) == 1


async def test_the_stand_in_honours_filters_and_refuses_what_the_api_reference_refuses(
    cloud: tuple[TencentApi, AppState],
) -> None:
    api, state = cloud
    tc = state.tencent

    async def names(action: str, listed: str, field: str, **params: Any) -> list[str]:
        answer = await tc.call("cls", action, params)
        return [item[field] for item in answer[listed]]

    def only(key: str, *values: str) -> list[dict[str, Any]]:
        return [{"Key": key, "Values": list(values)}]

    # topicName is fuzzy unless PreciseSearch says exact; ids match exactly.
    assert await names("DescribeTopics", "Topics", "TopicId", Filters=only("topicName", "a")) == [
        "topic-app",
        "topic-stats",
    ]
    exact = {"Filters": only("topicName", "a"), "PreciseSearch": 1}
    assert await names("DescribeTopics", "Topics", "TopicId", **exact) == []
    assert await names(
        "DescribeTopics", "Topics", "TopicName", Filters=only("topicId", "topic-stats")
    ) == ["stats"]
    assert (
        await names(
            "DescribeLogsets", "Logsets", "LogsetId", Filters=only("logsetId", "logset-gone")
        )
        == []
    )
    refusals = [
        ("DescribeTopics", {"Filters": only("name", "app")}, "InvalidParameter"),
        ("DescribeLogsets", {"Filters": only("logsetName", *"abcdef")}, "InvalidParameter"),
        ("DescribeAlarms", {"Filters": only("enable", "yes")}, "InvalidParameter"),
        ("DescribeAlarms", {"Limit": 101}, "InvalidParameterValue"),
        (
            "SearchLog",
            {"From": 0, "To": 1, "TopicId": "topic-app", "Topics": []},
            "InvalidParameterValue",
        ),
        ("CreateLogset", {"LogsetName": "a|b"}, "InvalidParameterValue"),
        (
            "CreateTopic",
            {"LogsetId": "logset-app", "TopicName": "cls_service_log"},
            "InvalidParameterValue",
        ),
    ]
    for action, params, code in refusals:
        with pytest.raises(TencentRequestError) as refused:
            await tc.call("cls", action, params)
        assert refused.value.code == code, (action, refused.value)
    assert len(api.logsets) == 1 and len(api.topics) == 2


RACES: list[tuple[str, str, dict[str, Any], list[str]]] = [
    ("create_logset", "logset", {"name": "audit"}, ["CreateLogset"]),
    ("create_log_topic", "topic", {"logset_id": "logset-app", "name": "nginx"}, ["CreateTopic"]),
    ("create_cls_alarm", "alarm", ALARM, ["CreateAlarmNotice", "CreateAlarm"]),
]


@pytest.mark.parametrize(("tool", "arg", "spec", "actions"), RACES)
async def test_cw11_two_callers_creating_the_same_name_at_once_both_get_the_one_resource(
    cloud: tuple[TencentApi, AppState],
    tool: str,
    arg: str,
    spec: dict[str, Any],
    actions: list[str],
) -> None:
    api, state = cloud
    # Both creates reach the API only after both lookups found nothing: a real race.
    api.together = dict.fromkeys(actions, 2)

    async def ask() -> tuple[bool, Any]:
        async with client(state, "ops") as c:
            return await call(c, tool, **{arg: spec}, mode="execute")

    (failed_a, a), (failed_b, b) = await asyncio.gather(ask(), ask())
    assert not failed_a, a
    assert not failed_b, b
    assert [act for _, act, _ in api.creates()] == [x for x in actions for _ in (1, 2)]
    assert a["resource_id"] == b["resource_id"]
    for index in range(len(actions)):
        steps = [a["steps"][index], b["steps"][index]]
        assert steps[0]["resource_id"] == steps[1]["resource_id"]
        # Both sent: the loser's was refused for the name taken, made nothing, and says so.
        said = sorted((s["sent"], s["existing"], s["refused"] is not None) for s in steps)
        assert said == [(True, False, False), (True, True, True)], steps
    async with state.db.session() as session:
        rows = await AuditRepository(session).list()
    outcomes = [r.detail["outcome"] for r in rows if r.action == f"cloud.{tool}"]
    assert sorted(outcomes) == ["executed", "existing"]


WORKLOAD = {"cluster_id": "cls-abcd1234", "namespace": "shop", "name": "checkout"}
# (tool, arguments, the field the refusal names): one bad cluster id, namespace or name each.
BAD_IDENTIFIERS: list[tuple[str, dict[str, Any], str]] = [
    ("create_node_pool", {"pool": {**POOL, "cluster_id": "http://evil/"}}, "cluster_id"),
    ("create_node_pool", {"pool": {**POOL, "cluster_id": "cls-1"}}, "cluster_id"),
    ("create_node_pool", {"pool": {**POOL, "cluster_id": "kind-dev"}}, "cluster_id"),
    (
        "scale_node_pool",
        {"cluster_id": "cls-ABCD1234", "node_pool_id": "np-1", "desired": 1},
        "cluster_id",
    ),
    ("list_node_pools", {"cluster_id": "cls-1"}, "cluster_id"),
    ("list_workloads", {"cluster_id": "cls-abcd1234", "namespace": "Shop!"}, "namespace"),
    ("apply_yaml", {"apply": {"cluster_id": "http://evil/", "documents": "a: 1"}}, "cluster_id"),
    (
        "apply_yaml",
        {"apply": {"cluster_id": "kind-dev", "documents": "a: 1", "namespace": "a/b"}},
        "namespace",
    ),
    (
        "scale_workload",
        {"workload": {**WORKLOAD, "cluster_id": "cls-"}, "replicas": 2},
        "cluster_id",
    ),
    (
        "scale_workload",
        {"workload": {**WORKLOAD, "namespace": "../kube-system"}, "replicas": 2},
        "namespace",
    ),
    ("restart_workload", {"workload": {**WORKLOAD, "name": "Checkout_Web"}}, "name"),
]


@pytest.mark.parametrize(("tool", "args", "field"), BAD_IDENTIFIERS)
async def test_cw12_a_malformed_cluster_id_namespace_or_name_is_a_tool_error_naming_the_field(
    cloud: tuple[TencentApi, AppState], tool: str, args: dict[str, Any], field: str
) -> None:
    api, state = cloud
    # The writes are asked to execute; the reads take no mode (an argument a tool does not
    # take is refused by its name).
    mode = {} if tool.startswith("list_") else {"mode": "execute"}
    async with client(state, "ops") as c:
        failed, message = await call(c, tool, **args, **mode)
    assert failed, message
    assert field in message and "must be a" in message, message
    assert "pydantic" not in message
    assert api.calls == []


# Creates whose name the API does not keep unique: no conflict code answers the second one.
UNNAMED_RACES: list[tuple[str, str, dict[str, Any], str, str]] = [
    ("create_node_pool", "pool", POOL, "DescribeClusterNodePools", "CreateClusterNodePool"),
    ("create_scheduled_sql", "task", SQL, "DescribeScheduledSqlInfo", "CreateScheduledSql"),
]


@pytest.mark.parametrize(("tool", "arg", "spec", "lookup", "action"), UNNAMED_RACES)
async def test_cw13_two_simultaneous_creates_of_a_name_without_a_conflict_code_make_one_resource(
    cloud: tuple[TencentApi, AppState],
    monkeypatch: pytest.MonkeyPatch,
    tool: str,
    arg: str,
    spec: dict[str, Any],
    lookup: str,
    action: str,
) -> None:
    api, state = cloud
    # The stand-in holds the lookups until both callers have asked (as two callers looking
    # before either creates would); a caller that asks alone goes on after the patience.
    monkeypatch.setattr(tencent_api, "GATE_PATIENCE", 0.5)
    api.together = {lookup: 2}

    async def ask() -> tuple[bool, Any]:
        async with client(state, "ops") as c:
            return await call(c, tool, **{arg: spec}, mode="execute")

    (failed_a, a), (failed_b, b) = await asyncio.gather(ask(), ask())
    assert not failed_a, a
    assert not failed_b, b
    assert [act for _, act, _ in api.creates()] == [action]
    assert a["resource_id"] == b["resource_id"]
    steps = sorted((s["steps"][0]["sent"], s["steps"][0]["existing"]) for s in (a, b))
    assert steps == [(False, True), (True, False)]


@pytest.mark.parametrize(("tool", "arg", "spec", "lookup", "action"), UNNAMED_RACES)
async def test_cw14_the_configured_region_named_or_left_out_is_one_resource_to_take_turns_on(
    cloud: tuple[TencentApi, AppState],
    monkeypatch: pytest.MonkeyPatch,
    tool: str,
    arg: str,
    spec: dict[str, Any],
    lookup: str,
    action: str,
) -> None:
    api, state = cloud
    monkeypatch.setattr(tencent_api, "GATE_PATIENCE", 0.5)
    api.together = {lookup: 2}

    async def ask(where: dict[str, Any]) -> tuple[bool, Any]:
        async with client(state, "ops") as c:
            return await call(c, tool, **{arg: {**spec, **where}}, mode="execute")

    # One caller leaves the region out, the other names the configured one: the same place.
    (failed_a, a), (failed_b, b) = await asyncio.gather(
        ask({}), ask({"region": state.tencent.region})
    )
    assert not failed_a and not failed_b, (a, b)
    assert [act for _, act, _ in api.creates()] == [action]
    assert a["resource_id"] == b["resource_id"]


async def test_cw15_the_audit_keeps_an_alarm_notice_webhook_without_its_key(
    cloud: tuple[TencentApi, AppState],
) -> None:
    api, state = cloud
    hook = (
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    )
    alarm = {**ALARM, "notice_webhook": hook}
    async with client(state, "ops") as c:
        failed, done = await call(c, "create_cls_alarm", alarm=alarm, mode="execute")
    assert not failed, done
    assert api.creates()[0][2]["WebCallbacks"][0]["Url"] == hook  # sent as given
    async with state.db.session() as session:
        rows = await AuditRepository(session).list()
    audited = [r.detail for r in rows if r.action.startswith("cloud.create_cls_alarm")]
    notice = next(d for d in audited if d["request"]["action"] == "CreateAlarmNotice")
    assert notice["request"]["params"]["WebCallbacks"][0]["Url"] == (
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?[redacted]"
    )
    assert "0f1e2d3c" not in repr(audited)


async def test_an_alarm_notice_to_account_uids_names_the_hours_the_reference_requires(
    cloud: tuple[TencentApi, AppState],
) -> None:
    # NoticeReceivers' StartTime and EndTime are "必填" in the reference: a notice to account
    # UIDs went without them, and a server that holds to the reference answered MissingParameter.
    api, state = cloud
    alarm = {**ALARM, "notice_webhook": None, "notice_uids": [100012345678]}
    async with client(state, "ops") as c:
        failed, done = await call(c, "create_cls_alarm", alarm=alarm, mode="execute")
    assert not failed, done
    (receiver,) = api.creates()[0][2]["NoticeReceivers"]
    assert (receiver["StartTime"], receiver["EndTime"]) == ("00:00:00", "23:59:59")
    assert [a for _, a, _ in api.creates()] == ["CreateAlarmNotice", "CreateAlarm"]


async def test_an_alarm_policy_is_looked_up_once_by_its_create(
    cloud: tuple[TencentApi, AppState],
) -> None:
    # It was looked up before its notice and again by its create: two DescribeAlarms each.
    api, state = cloud
    async with client(state, "ops") as c:
        failed, done = await call(c, "create_cls_alarm", alarm=ALARM, mode="execute")
    assert not failed, done
    assert [a for _, a, _ in api.calls if a == "DescribeAlarms"] == ["DescribeAlarms"]
    assert [a for _, a, _ in api.creates()] == ["CreateAlarmNotice", "CreateAlarm"]


async def test_cw16_an_alarm_policy_that_exists_leaves_no_new_notice_behind(
    cloud: tuple[TencentApi, AppState],
) -> None:
    # The policy was made before (in the console, or by a run that lost its answer) with
    # another notice: asking for it again with a new notice_name creates nothing at all.
    api, state = cloud
    api.alarm_notices = [{"AlarmNoticeId": "notice-console", "Name": "console"}]
    api.cls_alarms = [{"AlarmId": "alarm-console", "Name": ALARM["name"]}]
    async with client(state, "ops") as c:
        failed, dry = await call(c, "create_cls_alarm", alarm=ALARM)
        assert not failed, dry
        failed, done = await call(c, "create_cls_alarm", alarm=ALARM, mode="execute")
    assert not failed, done
    assert api.creates() == []  # no notice nobody uses
    assert [n["Name"] for n in api.alarm_notices] == ["console"]
    for answer in (dry, done):
        assert answer["resource_id"] == "alarm-console"
        assert "already exists" in answer["summary"]
        assert [s["request"]["action"] for s in answer["steps"]] == ["CreateAlarm"]


async def test_a_notice_of_that_name_sending_elsewhere_is_not_taken_for_the_one_asked_for(
    cloud: tuple[TencentApi, AppState],
) -> None:
    # notice_name "oncall" with a webhook, while a notice "oncall" (someone else's, or an older
    # one) calls another: the alarm was wired to it, its alerts sent there, and the summary
    # said only "created alarm policy".
    api, state = cloud
    theirs = {"Url": "https://old.example.net/secret-path", "CallbackType": "Http"}
    api.alarm_notices = [
        {"AlarmNoticeId": "notice-old", "Name": "oncall", "WebCallbacks": [theirs]}
    ]
    async with client(state, "ops") as c:
        for mode in ("dry_run", "execute"):
            failed, said = await call(c, "create_cls_alarm", alarm=ALARM, mode=mode)
            assert failed, said
            assert "notice_name" in said and "notice-old" in said and "old.example.net" in said
            assert "secret-path" not in said and "notice_ids=['notice-old']" in said, said
        assert api.creates() == [] and api.cls_alarms == []
        # As it is, by its id: taken.
        by_id = {**ALARM, "notice_name": None, "notice_webhook": None, "notice_ids": ["notice-old"]}
        failed, done = await call(c, "create_cls_alarm", alarm=by_id, mode="execute")
        assert not failed, done
        # One that sends where asked (made by an earlier try, or in the console, its
        # callbacks under a rule): taken by its name.
        ours = {"Url": ALARM["notice_webhook"], "CallbackType": "Http"}
        api.alarm_notices.append(
            {
                "AlarmNoticeId": "notice-ours",
                "Name": "ours",
                "NoticeRules": [{"WebCallbacks": [ours]}],
            }
        )
        again = {**ALARM, "name": "another", "notice_name": "ours"}
        failed, done = await call(c, "create_cls_alarm", alarm=again, mode="execute")
        assert not failed, done
    assert [a["AlarmNoticeIds"] for a in api.cls_alarms] == [["notice-old"], ["notice-ours"]]
    assert [a for _, a, _ in api.creates()] == ["CreateAlarm", "CreateAlarm"]


async def test_an_alarm_refused_leaves_no_notice_made_for_it_behind(
    cloud: tuple[TencentApi, AppState],
) -> None:
    # The notice is made first, then CreateAlarm is refused (its condition, a CAM policy
    # without cls:CreateAlarm): the notice stayed in CLS, made for nothing. It is deleted, and
    # the refusal says so; a notice that was there before is never deleted.
    api, state = cloud
    api.failures["CreateAlarm"] = ["InvalidParameter"]
    async with client(state, "ops") as c:
        failed, said = await call(c, "create_cls_alarm", alarm=ALARM, mode="execute")
        assert failed and "InvalidParameter" in said, said
        assert "oncall" in said and "was deleted" in said, said
        assert api.alarm_notices == [] and api.cls_alarms == []
        # Its own delete refused: said, with the notice's id to use when asking again.
        api.failures["CreateAlarm"] = ["AuthFailure.UnauthorizedOperation"]
        api.failures["DeleteAlarmNotice"] = ["InternalError"]
        failed, said = await call(c, "create_cls_alarm", alarm=ALARM, mode="execute")
        assert failed and "could not be deleted" in said, said
        [left] = api.alarm_notices
        assert f"notice_ids=[{left['AlarmNoticeId']!r}]" in said, said
        # The notice there before (left above, sending where asked): taken, never deleted.
        api.failures["CreateAlarm"] = ["InvalidParameter"]
        failed, said = await call(c, "create_cls_alarm", alarm=ALARM, mode="execute")
        assert failed and "deleted" not in said, said
    assert api.alarm_notices == [left]
    async with state.db.session() as session:
        rows = await AuditRepository(session).list()
    deletes = [r.detail["outcome"] for r in rows if r.action == "cloud.delete_cls_alarm_notice"]
    assert sorted(deletes) == ["executed", "failed"], deletes


async def test_cw17_a_scheduled_sql_task_of_that_name_on_another_topic_is_not_the_one_asked_for(
    cloud: tuple[TencentApi, AppState],
) -> None:
    # Task names are not unique in CLS: a task of the same name reading another topic is
    # another task, not this create's earlier attempt.
    api, state = cloud
    api.topics.append({"TopicId": "topic-web", "TopicName": "web", "LogsetId": "logset-app"})
    api.scheduled_sql = [
        {"TaskId": "task-web", "Name": SQL["name"], "SrcTopicId": "topic-web"},
    ]
    async with client(state, "ops") as c:
        failed, done = await call(c, "create_scheduled_sql", task=SQL, mode="execute")
        assert not failed, done
        failed, again = await call(c, "create_scheduled_sql", task=SQL, mode="execute")
    assert not failed, again
    assert [a for _, a, _ in api.creates()] == ["CreateScheduledSql"]
    assert done["resource_id"] not in (None, "task-web")
    assert api.creates()[0][2]["SrcTopicId"] == "topic-app"
    assert again["resource_id"] == done["resource_id"] and "already exists" in again["summary"]


async def test_cw18_a_topic_dry_run_in_a_logset_that_does_not_exist_says_so(
    cloud: tuple[TencentApi, AppState],
) -> None:
    # As a node pool's dry run on a missing cluster does: the preview does not promise a
    # create that cannot work.
    api, state = cloud
    topic = {"logset_id": "logset-gone", "name": "nginx"}
    async with client(state, "ops") as c:
        failed, message = await call(c, "create_log_topic", topic=topic)
        ok, dry = await call(c, "create_log_topic", topic={**topic, "logset_id": "logset-app"})
    assert failed and "logset-gone" in message and "does not exist" in message, message
    assert not ok and dry["steps"][0]["request"]["action"] == "CreateTopic"
    assert api.creates() == []
    async with state.db.session() as session:
        rows = await AuditRepository(session).list()
    outcomes = [r.detail["outcome"] for r in rows if r.action == "cloud.create_log_topic"]
    assert sorted(outcomes) == ["dry_run", "failed"]


async def test_cw19_a_scheduled_sql_dry_run_naming_a_topic_that_does_not_exist_says_so(
    cloud: tuple[TencentApi, AppState],
) -> None:
    api, state = cloud
    answers = {}
    async with client(state, "ops") as c:
        for field in ("source_topic_id", "target_topic_id"):
            task = {**SQL, field: "topic-gone"}
            answers[field] = await call(c, "create_scheduled_sql", task=task)
    for field, (failed, message) in answers.items():
        assert failed and "topic-gone" in message and "does not exist" in message, (field, message)
    assert api.creates() == []


async def test_a_missing_topic_is_worded_the_same_by_an_alarm_and_a_scheduled_sql(
    cloud: tuple[TencentApi, AppState],
) -> None:
    """The lookup that found no topic was named by the tool's own call: create_cls_alarm said
    "DescribeTopics (ResourceNotFound.TopicNotExist): …", create_scheduled_sql
    "CreateScheduledSql (ResourceNotFound.TopicNotExist): …" for the same missing topic."""
    _, state = cloud
    async with client(state, "ops") as c:
        _, alarm = await call(c, "create_cls_alarm", alarm={**ALARM, "topic_id": "topic-gone"})
        _, task = await call(
            c, "create_scheduled_sql", task={**SQL, "source_topic_id": "topic-gone"}
        )
        _, topic = await call(
            c, "create_log_topic", topic={"logset_id": "logset-gone", "name": "x"}
        )
    said = "DescribeTopics (ResourceNotFound.TopicNotExist): "
    assert said in alarm and said in task and alarm[alarm.index(said) :] == task[task.index(said) :]
    assert "DescribeLogsets (ResourceNotFound.LogsetNotExist): " in topic, topic


async def test_cw20_an_alarm_naming_a_notice_that_does_not_exist_leaves_nothing_behind(
    cloud: tuple[TencentApi, AppState],
) -> None:
    api, state = cloud
    alarm = {**ALARM, "notice_ids": ["notice-gone"]}
    async with client(state, "ops") as c:
        answers = [
            await call(c, "create_cls_alarm", alarm=alarm),
            await call(c, "create_cls_alarm", alarm=alarm, mode="execute"),
        ]
    for failed, message in answers:
        assert failed and "notice-gone" in message and "does not exist" in message, message
    assert api.creates() == []  # not the new notice 'oncall' either


async def test_cw21_an_alarm_naming_the_wrong_logset_for_its_topic_leaves_nothing_behind(
    cloud: tuple[TencentApi, AppState],
) -> None:
    api, state = cloud
    api.logsets.append({"LogsetId": "logset-other", "LogsetName": "other"})
    alarm = {**ALARM, "logset_id": "logset-other"}
    async with client(state, "ops") as c:
        answers = [
            await call(c, "create_cls_alarm", alarm=alarm),
            await call(c, "create_cls_alarm", alarm=alarm, mode="execute"),
        ]
    for failed, message in answers:
        assert failed and "logset_id" in message and "logset-app" in message, message
    assert api.creates() == []  # not the new notice 'oncall' either


# Names and a webhook the API references refuse (InvalidParameter* from the stand-in).
REFUSED_NAMES: list[tuple[str, str, dict[str, Any], str]] = [
    # CreateLogset LogsetName: "不支持|字符".
    ("create_logset", "logset", {"name": "app|web"}, "name"),
    # CreateTopic TopicName: no '|', not one of the names CLS keeps for itself.
    ("create_log_topic", "topic", {"logset_id": "logset-app", "name": "a|b"}, "name"),
    ("create_log_topic", "topic", {"logset_id": "logset-app", "name": "cls_service_log"}, "name"),
    # CreateAlarm Name: "最大支持255个字节" (86 characters of 3 bytes each are 258).
    ("create_cls_alarm", "alarm", {**ALARM, "name": "错" * 86}, "name"),
    ("create_cls_alarm", "alarm", {**ALARM, "name": "errors|5xx"}, "name"),
    # CreateAlarmNotice Name: the same rule.
    ("create_cls_alarm", "alarm", {**ALARM, "notice_name": "on|call"}, "notice_name"),
    # WebCallback Url: "最大支持1024个字节".
    (
        "create_cls_alarm",
        "alarm",
        {**ALARM, "notice_webhook": "https://hooks.example.com/" + "告" * 340},
        "notice_webhook",
    ),
    # A node pool's name is its scaling group's (AutoScalingGroupName: "名称仅支持中文、英文、数字、
    # 下划线、分隔符"-"、小数点，最大长度不能超55个字节").
    ("create_node_pool", "pool", {**POOL, "name": "gpu pool"}, "name"),
    ("create_node_pool", "pool", {**POOL, "name": "g" * 56}, "name"),
    ("create_node_pool", "pool", {**POOL, "name": "显卡" * 10}, "name"),
]


@pytest.mark.parametrize(("tool", "arg", "spec", "field"), REFUSED_NAMES)
async def test_a_name_the_api_refuses_is_a_tool_error_naming_the_field_before_any_call(
    cloud: tuple[TencentApi, AppState], tool: str, arg: str, spec: dict[str, Any], field: str
) -> None:
    # A dry run must not promise a create the API refuses, and execute must not try it.
    api, state = cloud
    async with client(state, "ops") as c:
        dry_failed, dry = await call(c, tool, **{arg: spec})
        failed, message = await call(c, tool, **{arg: spec}, mode="execute")
    assert dry_failed and failed, (dry, message)
    assert field in message and "pydantic" not in message, message
    assert api.calls == []


async def test_a_retried_create_finds_its_resource_behind_a_thousand_names_that_contain_it(
    cloud: tuple[TencentApi, AppState],
) -> None:
    # CLS matches logsetName (and topicName, an alarm's or notice's name) by substring: the
    # lookup by name reads every page of matches, not the first thousand.
    api, state = cloud
    api.logsets = [{"LogsetId": f"logset-{n}", "LogsetName": f"audit-{n:04}"} for n in range(1000)]
    api.logsets.append({"LogsetId": "logset-audit", "LogsetName": "audit"})
    async with client(state, "ops") as c:
        failed, dry = await call(c, "create_logset", logset={"name": "audit"})
        failed_again, done = await call(
            c, "create_logset", logset={"name": "audit"}, mode="execute"
        )
    assert not failed and not failed_again, (dry, done)
    assert dry["resource_id"] == done["resource_id"] == "logset-audit"
    assert done["steps"][0]["existing"] is True and api.creates() == []


async def test_a_scheduled_sql_start_without_an_offset_is_in_the_callers_time_zone(
    cloud: tuple[TencentApi, AppState],
) -> None:
    """search_logs reads a time without an offset in the caller's zone; a scheduled SQL's
    first run was read as UTC: 08:00 asked in Shanghai ran at 16:00 there."""
    api, state = cloud
    async with state.db.session() as session:
        users = UserRepository(session)
        ops = await users.get("ops")
        assert ops is not None
        await users.update(ops, UserSettings(timezone="Asia/Shanghai"))
        await session.commit()
    async with client(state, "ops") as c:
        for start in ("2026-11-22T08:00:00", "2026-11-22T00:00:00Z"):
            task = {**SQL, "name": f"at-{start[-1]}", "start": start}
            await call(c, "create_scheduled_sql", task=task, mode="execute")
    sent = [p["ProcessStartTime"] for _, a, p in api.calls if a == "CreateScheduledSql"]
    shanghai_eight = int(datetime(2026, 11, 22, tzinfo=UTC).timestamp()) * 1000
    assert sent == [shanghai_eight, shanghai_eight], sent


async def test_a_scheduled_sql_of_the_name_writing_to_another_topic_is_not_the_one_asked(
    cloud: tuple[TencentApi, AppState],
) -> None:
    """A task of the same name and source writing elsewhere was taken for the one asked:
    "already exists (task-000001); nothing sent", and nothing ever wrote to the topic asked;
    a dry run to a topic that does not exist was said "already exists" too."""
    api, state = cloud
    archive = {"TopicId": "topic-archive", "TopicName": "archive", "LogsetId": "logset-app"}
    api.topics.append(archive)
    async with client(state, "ops") as c:
        failed, first = await call(c, "create_scheduled_sql", task=SQL, mode="execute")
        assert not failed, first
        other = {**SQL, "target_topic_id": "topic-archive"}
        failed, second = await call(c, "create_scheduled_sql", task=other, mode="execute")
        assert not failed, second
        gone = {**SQL, "target_topic_id": "topic-gone"}
        refused, said = await call(c, "create_scheduled_sql", task=gone)
    targets = [p["DstResource"]["TopicId"] for _, action, p in api.creates()]
    assert targets == ["topic-stats", "topic-archive"], (targets, second)
    assert refused and "topic-gone" in str(said), said


async def test_a_notice_answered_without_its_id_is_looked_up_not_sent_as_a_placeholder(
    cloud: tuple[TencentApi, AppState],
) -> None:
    """CreateAlarmNotice answered without its AlarmNoticeId (not the API's answer): the step
    was audited executed with no id, and CreateAlarm went out naming the dry run's
    placeholder "<id of new notice 'oncall'>", refused as a notice that does not exist."""
    api, state = cloud
    api.raw["CreateAlarmNotice"] = [(200, "application/json", b'{"Response": {"RequestId": "r"}}')]
    async with client(state, "ops") as c:
        failed, answer = await call(c, "create_cls_alarm", alarm=ALARM, mode="execute")
    assert not failed, answer
    # The notice was made: its id is found by its name, and the alarm names it.
    sent = [p["AlarmNoticeIds"] for _, action, p in api.creates() if action == "CreateAlarm"]
    assert sent == [["notice-000001"]], sent
    async with state.db.session() as session:
        rows = await AuditRepository(session).list(action="cloud.create_cls_alarm_notice")
    told = [(r.detail["outcome"], r.detail["resource_id"]) for r in rows]
    assert told == [("unconfirmed", "notice-000001")], told


async def test_a_topic_kept_for_ever_is_created_and_a_period_cls_has_not_is_refused(
    cloud: tuple[TencentApi, AppState],
) -> None:
    """CreateTopic's Period takes 1 to 3600 days, or 3640 to keep the logs for ever (永久保存):
    3640 was refused as past 3600, so a topic kept for ever could not be made."""
    api, state = cloud
    topic = {"logset_id": "logset-app", "name": "audit-forever", "period": 3640}
    async with client(state, "ops") as c:
        refused, created = await call(c, "create_log_topic", topic=topic, mode="execute")
        failed, message = await call(
            c, "create_log_topic", topic={**topic, "period": 3620}, mode="execute"
        )
    assert not refused, created
    sent = [params for _, action, params in api.calls if action == "CreateTopic"]
    assert [params["Period"] for params in sent] == [3640]
    assert failed and "or 3640 to keep the logs for ever" in message, message


async def test_an_alarm_firing_after_an_hour_of_minutes_is_created_as_cls_allows(
    cloud: tuple[TencentApi, AppState],
) -> None:
    """CreateAlarm's TriggerCount takes 1 to 2000 periods: 60 (an hour of 1-minute checks) was
    refused as past 10."""
    api, state = cloud
    async with client(state, "ops") as c:
        refused, created = await call(
            c, "create_cls_alarm", alarm={**ALARM, "trigger_count": 60}, mode="execute"
        )
        failed, message = await call(
            c, "create_cls_alarm", alarm={**ALARM, "trigger_count": 2001}, mode="execute"
        )
    assert not refused, created
    sent = [params for _, action, params in api.calls if action == "CreateAlarm"]
    assert [params["TriggerCount"] for params in sent] == [60]
    assert failed and "trigger_count" in message, message
