"""A stand-in for the Tencent Cloud API 3.0 endpoint, served on loopback for the real SDK.

It verifies TC3-HMAC-SHA256 signatures (written from the public spec, not the SDK's code),
routes on (service from the credential scope, X-TC-Action), refuses a request without a
parameter the API reference marks required (`REQUIRED`, MissingParameter naming it), answers a
create whose name is taken with the action's documented conflict code, pages like the real API
and injects errors on demand.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import importlib
import json
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

SECRET_ID, SECRET_KEY = "AKIDtest", "test-secret-key"
# Common error codes (AuthFailure.SignatureExpire): a request whose X-TC-Timestamp is more than
# five minutes from the server's clock is refused, whatever its signature.
SIGNATURE_SKEW = 300
# The API version each service's actions are called at (X-TC-Version); another is NoSuchVersion.
VERSIONS = {"cls": "2020-10-16", "monitor": "2018-07-24", "tke": "2018-05-25", "tts": "2019-08-23"}
# Seconds a request held by `together` waits for the others before going on alone.
GATE_PATIENCE = 5.0


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def expected_signature(
    request_headers: dict[str, str], body: bytes, secret_key: str, date: str, service: str
) -> str:
    canonical = "\n".join(
        [
            "POST",
            "/",
            "",
            f"content-type:{request_headers['content-type']}\nhost:{request_headers['host']}\n",
            "content-type;host",
            hashlib.sha256(body).hexdigest(),
        ]
    )
    timestamp = request_headers["x-tc-timestamp"]
    scope = f"{date}/{service}/tc3_request"
    to_sign = (
        f"TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    )
    key = _hmac(_hmac(_hmac(("TC3" + secret_key).encode(), date), service), "tc3_request")
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


# CLS search syntax (检索条件语法规则, 614/47044): [检索条件] | [SQL语句]; a CQL value in double
# quotes holds any character, `|` too (`msg:"a|b"`): the first `|` outside quotes starts the SQL.
CQL_SEARCH_THEN_PIPE = re.compile(r'(?:"(?:[^"\\]|\\.)*"|[^"|])*\|')


def _cql_parts(query: str) -> tuple[str, str | None]:
    """A query's search condition and its SQL (None without one)."""
    head = CQL_SEARCH_THEN_PIPE.match(query)
    return (query, None) if head is None else (query[: head.end() - 1], query[head.end() :])


def reply(payload: dict[str, Any]) -> Response:
    # Exactly application/json: with a charset the SDK would not see errors (see NOTES).
    body = json.dumps({"Response": {**payload, "RequestId": "req-standin"}}, ensure_ascii=False)
    return Response(body, headers={"Content-Type": "application/json"})


# The dimensions a namespace's instances are named by (the Cloud Monitor reference's
# dimension tables, e.g. 248/6843 for CVM): `metric_points` answer only those.
NAMESPACE_DIMENSIONS = {"QCE/CVM": {"InstanceId"}}

# Namespaces Cloud Monitor serves through DescribeStatisticData, not GetMonitorData.
STATISTIC_NAMESPACES = ("QCE/TKE2", "QCE/KEEWIDB", "QCE/CAMP")
# DescribeStatisticData: the longest EndTime-StartTime (exclusive) each period allows.
STATISTIC_WINDOWS = {60: 12 * 3600, 300: 3 * 86400, 3600: 30 * 86400, 86400: 186 * 86400}
# DescribeStatisticData: how far before now StartTime may lie at each period (days kept).
STATISTIC_RETENTION = {60: 15 * 86400, 300: 31 * 86400, 3600: 93 * 86400, 86400: 186 * 86400}
# DescribeClusterKubeconfig's server for an API server access that is not enabled.
UNREACHABLE_SERVER = "https://127.0.0.1:9"
AS_DISK_TYPES = frozenset(
    {
        "LOCAL_BASIC", "LOCAL_SSD", "CLOUD_BASIC", "CLOUD_PREMIUM", "CLOUD_SSD", "CLOUD_BSSD",
        "CLOUD_HSSD", "CLOUD_TSSD",
    }
)  # fmt: skip
AS_GROUP_NAME = re.compile(r"[A-Za-z0-9_.\-\u4e00-\u9fff]+")
ISO_SECONDS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d")
# The regions the API answers in (its region list; X-TC-Region). Another, such as a typo
# (ap-guangzhuo), is refused as the API refuses it, whatever the action.
REGIONS = frozenset(
    {
        "ap-bangkok", "ap-beijing", "ap-beijing-fsi", "ap-chengdu", "ap-chongqing",
        "ap-guangzhou", "ap-hongkong", "ap-jakarta", "ap-mumbai", "ap-nanjing", "ap-seoul",
        "ap-shanghai", "ap-shanghai-fsi", "ap-shenzhen-fsi", "ap-singapore", "ap-tokyo",
        "eu-frankfurt", "na-ashburn", "na-siliconvalley", "sa-saopaulo",
    }
)  # fmt: skip
BAD_REGION = "A value specified in `X-TC-Region` is not valid, is unsupported, or cannot be used."
# GetMonitorData: "每个指标支持的统计周期不一定相同" (the metric's documentation lists them); a
# CVM metric such as CPUUsage is kept at 10, 60, 300, 3600 and 86400 s. Metrics not named in
# `TencentApi.metric_periods` take these.
MONITOR_PERIODS = (10, 60, 300, 3600, 86400)


def every_period(
    value: float, period: int = 60, *, before: int = 3600, after: int = 3600
) -> list[tuple[int, float]]:
    """A metric holding ``value``: a datapoint on each whole-period boundary from ``before``
    seconds ago to ``after`` seconds on. The stand-in serves none stamped after now, so
    those ahead appear one a period as time passes (Cloud Monitor publishes a period's
    datapoint once the period is over, minutes late; the stand-in has no such lag)."""
    now = int(time.time())
    first = (now - before) // period * period
    return [(stamp, value) for stamp in range(first, now + after + 1, period)]


def error(code: str, message: str) -> Response:
    return reply({"Error": {"Code": code, "Message": message}})


# A filter's name and values, required in each filter given (CLS says Key, TKE says Name).
_FILTER_KEYS = ("Filters[].Key", "Filters[].Values")
_TKE_FILTER_KEYS = ("Filters[].Name", "Filters[].Values")

# The parameters each action's API reference marks required ("是否必填: 是"), as dotted paths;
# `[]` steps into every item of a list. The real API answers a request without one of them with
# MissingParameter before looking at anything else, so the stand-in does too.
REQUIRED: dict[str, tuple[str, ...]] = {
    # CLS (cls/2020-10-16)
    "CreateLogset": ("LogsetName",),
    "CreateTopic": ("LogsetId", "TopicName"),
    "DeleteAlarmNotice": ("AlarmNoticeId",),
    "CreateAlarmNotice": (
        "Name",
        "NoticeReceivers[].ReceiverType",
        "NoticeReceivers[].ReceiverIds",
        "NoticeReceivers[].ReceiverChannels",
        # The SDK's field text: "允许接收信息的开始时间。格式：`15:04:05`。必填" (and EndTime's).
        "NoticeReceivers[].StartTime",
        "NoticeReceivers[].EndTime",
        "WebCallbacks[].Url",
        "WebCallbacks[].CallbackType",
    ),
    "CreateAlarm": (
        "Name",
        "AlarmTargets",
        "AlarmTargets[].TopicId",
        "AlarmTargets[].Query",
        "AlarmTargets[].Number",
        "AlarmTargets[].StartTimeOffset",
        "AlarmTargets[].EndTimeOffset",
        "AlarmTargets[].LogsetId",
        "MonitorTime",
        "MonitorTime.Type",
        "MonitorTime.Time",
        "TriggerCount",
        "AlarmPeriod",
    ),
    "CreateScheduledSql": (
        "SrcTopicId",
        "Name",
        "EnableFlag",
        "DstResource",
        "DstResource.TopicId",
        "ScheduledSqlContent",
        "ProcessStartTime",
        "ProcessType",
        "ProcessPeriod",
        "ProcessTimeWindow",
        "ProcessDelay",
        "SrcTopicRegion",
    ),
    "SearchLog": ("From", "To"),
    "DescribeAlertRecordHistory": ("From", "To", "Offset", "Limit", *_FILTER_KEYS),
    "DescribeLogsets": _FILTER_KEYS,
    "DescribeTopics": _FILTER_KEYS,
    "DescribeAlarms": _FILTER_KEYS,
    "DescribeAlarmNotices": _FILTER_KEYS,
    "DescribeScheduledSqlInfo": _FILTER_KEYS,
    # Cloud Monitor (monitor/2018-07-24)
    "GetMonitorData": (
        "Namespace",
        "MetricName",
        "Instances",
        "Instances[].Dimensions",
        "Instances[].Dimensions[].Name",
        "Instances[].Dimensions[].Value",
    ),
    "DescribeStatisticData": (
        "Module",
        "Namespace",
        "MetricNames",
        "Conditions[].Key",
        "Conditions[].Operator",
        "Conditions[].Value",
    ),
    "DescribeAlarmHistories": ("Module",),
    # TTS (tts/2019-08-23)
    "TextToVoice": ("Text", "SessionId"),
    # TKE (tke/2018-05-25)
    "CreateClusterNodePool": (
        "ClusterId",
        "AutoScalingGroupPara",
        "LaunchConfigurePara",
        "InstanceAdvancedSettings",
        "EnableAutoscale",
    ),
    "ModifyNodePoolDesiredCapacityAboutAsg": ("ClusterId", "NodePoolId", "DesiredCapacity"),
    "DescribeClusterNodePools": ("ClusterId", *_TKE_FILTER_KEYS),
    "DescribeClusters": _TKE_FILTER_KEYS,
    "DescribeClusterKubeconfig": ("ClusterId",),
}


def unknown_parameters(service: str, action: str, params: dict[str, Any]) -> list[str]:
    """The request's fields, at any depth, that the action does not define: the API refuses
    them (common error codes: UnknownParameter) instead of ignoring them. What each action
    defines is read from the SDK's request models, generated from the API reference."""
    version = VERSIONS[service].replace("-", "")
    models = importlib.import_module(f"tencentcloud.{service}.v{version}.models")
    request = getattr(models, f"{action}Request", None)
    if request is None:  # not an action of the service: InvalidAction, answered later
        return []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # A value of the wrong shape is the handler's to refuse, not this check's.
        with contextlib.suppress(AttributeError, TypeError, ValueError):
            request()._deserialize(params)
    useless = " fileds are useless."  # the models' own words for a field they do not define
    return [
        name
        for w in caught
        if str(w.message).endswith(useless)
        for name in str(w.message).removesuffix(useless).split(",")
    ]


PRIMITIVES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
}


# API 3.0's 参数类型: an Integer's upper limit is that of an unsigned 64-bit integer (its lower
# one a signed 64-bit integer's, the stand-in's assumption): a number past them is no Integer.
INTEGER = range(-(2**63), 2**64)


def mistyped_parameter(service: str, action: str, params: dict[str, Any]) -> str | None:
    """The first field whose value is not of the type the action defines for it (Integer,
    String, Boolean, an object, an array of one): the API refuses it
    (common error codes: InvalidParameter, "参数错误（包括参数格式、类型等错误）") instead of
    reading "100" as 100. Types are read from the SDK's request models, as the fields are."""
    version = VERSIONS[service].replace("-", "")
    models = importlib.import_module(f"tencentcloud.{service}.v{version}.models")
    request = getattr(models, f"{action}Request", None)
    return None if request is None else _mistyped(models, request, params, "")


def _mistyped(models: Any, model: Any, value: Any, prefix: str) -> str | None:
    if not isinstance(value, dict):
        return prefix or "the request"
    types = dict(re.findall(r":type (\w+): (.+)", model.__init__.__doc__ or ""))
    for name, given in value.items():
        kind = types.get(name, "").strip()
        path = f"{prefix}.{name}" if prefix else name
        if given is None or not kind:  # absent, or not a field of it (UnknownParameter's)
            continue
        many = kind.startswith("list of ")
        kind = kind.removeprefix("list of ").split()[0].strip(":`").rsplit(".", 1)[-1]
        if many and not isinstance(given, list):
            return path
        for index, item in enumerate(given if many else [given]):
            where = f"{path}.{index}" if many else path
            if kind in PRIMITIVES:
                # JSON has no int/bool divide, Python does: True is not an Integer here.
                if (
                    not isinstance(item, PRIMITIVES[kind])
                    or (kind != "bool" and isinstance(item, bool))
                    or (kind == "int" and item not in INTEGER)
                ):
                    return where
            elif hasattr(models, kind) and (
                found := _mistyped(models, getattr(models, kind), item, where)
            ):
                return found
    return None


def missing_parameter(params: dict[str, Any], paths: tuple[str, ...]) -> str | None:
    """The first required parameter the request lacks, named as the API names it."""
    for path in paths:
        found = _lacks(params, path.split("."), "")
        if found is not None:
            return found
    return None


def _lacks(node: Any, steps: list[str], prefix: str) -> str | None:
    step, rest = steps[0], steps[1:]
    each = step.endswith("[]")
    key = step.removesuffix("[]")
    name = f"{prefix}.{key}" if prefix else key
    if not isinstance(node, dict):
        return None
    value = node.get(key)
    if not each:
        if value is None:
            return name
        return _lacks(value, rest, name) if rest else None
    # A list item's fields are required only when the list is given (optional lists).
    for index, item in enumerate(value or []):
        found = _lacks(item, rest, f"{name}.{index}")
        if found is not None:
            return found
    return None


def null_parameter(value: Any, prefix: str = "") -> str | None:
    """The first parameter sent as a JSON null, named as the API names it (Filters.0.Values)."""
    items = (
        value.items()
        if isinstance(value, dict)
        else (enumerate(value) if isinstance(value, list) else ())
    )
    for key, item in items:
        name = f"{prefix}.{key}" if prefix else str(key)
        found = name if item is None else null_parameter(item, name)
        if found is not None:
            return found
    return None


# --- Filters.N of the Describe* lists, as each API reference documents them -----------------
# (keys, matching and bounds from the references' Filters.N text, the same text as the SDK's
# models and tencentcloud-cli's api.json).
Values = Callable[[dict[str, Any]], list[Any]]


def at(*path: str) -> Values:
    """An item's values at ``path`` (a list on the way steps into each of its items)."""

    def values(item: dict[str, Any]) -> list[Any]:
        found: list[Any] = [item]
        for step in path:
            found = [v for f in found if isinstance(f, dict) for v in _each(f.get(step))]
        return found

    return values


def _each(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def receivers(kind: str) -> Values:
    """A notice's receiver ids of one ReceiverType (Uin or Group)."""
    return lambda item: [
        i
        for r in item.get("NoticeReceivers") or []
        if r["ReceiverType"] == kind
        for i in r["ReceiverIds"]
    ]


def tagged(key: str) -> Values:
    """The values of an item's tag ``key``."""
    return lambda item: [t["Value"] for t in item.get("Tags") or [] if t["Key"] == key]


@dataclass(frozen=True)
class Filtering:
    """The filters one Describe* takes: key -> (what it matches in an item, by substring)."""

    keys: dict[str, tuple[Values, bool]]
    name: str = "Key"  # the filter's name field: CLS says Key, TKE says Name
    most_filters: int | None = None  # "每次请求的Filters的上限为10"
    most_values: int | None = None  # "Filter.Values的上限为5" (or 100)
    tags: bool = False  # also tagKey and tag:KEY (CLS), matched against the item's Tags
    enums: dict[str, frozenset[str]] = field(default_factory=dict)  # key -> its values allowed


TAG_KEYS = at("Tags", "Key")
# DescribeAlarms' enable: "1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False。其它值将返回参数
# 错误信息".
ENABLE = {v: "true" for v in ("1", "t", "T", "TRUE", "true", "True")} | {
    v: "false" for v in ("0", "f", "F", "FALSE", "false", "False")
}
# Names that the reference calls 模糊匹配 (substring) are fuzzy; a name filter whose reference
# says neither is fuzzy too: the reading a caller that wants one name must survive.
FILTERS: dict[str, Filtering] = {
    # cloud.tencent.com/document/product/614/58624
    "DescribeLogsets": Filtering(
        {"logsetName": (at("LogsetName"), True), "logsetId": (at("LogsetId"), False)},
        most_filters=10,
        most_values=5,
        tags=True,
    ),
    # 614/56454: topicName and logsetName are fuzzy unless PreciseSearch says otherwise.
    "DescribeTopics": Filtering(
        {
            "topicName": (at("TopicName"), True),
            "logsetName": (at("LogsetName"), True),
            "topicId": (at("TopicId"), False),
            "logsetId": (at("LogsetId"), False),
            "storageType": (lambda t: [t.get("StorageType", "hot")], False),
        },
        most_filters=10,
        most_values=100,
        tags=True,
    ),
    "DescribeAlarms": Filtering(
        {
            "name": (at("Name"), True),
            "alarmId": (at("AlarmId"), False),
            "topicId": (at("AlarmTargets", "TopicId"), False),
            "enable": (lambda a: [ENABLE[str(a.get("Status", True))]], False),
        },
        most_filters=10,
        most_values=5,
    ),
    # 614/56462
    "DescribeAlarmNotices": Filtering(
        {
            "name": (at("Name"), True),
            "alarmNoticeId": (at("AlarmNoticeId"), False),
            "uid": (receivers("Uin"), False),
            "groupId": (receivers("Group"), False),
            "deliverFlag": (lambda n: [n.get("DeliverStatus", 1)], False),
        },
        most_filters=10,
        most_values=5,
    ),
    # 614/95519: no documented bound on Filters.
    "DescribeScheduledSqlInfo": Filtering(
        {
            "srcTopicName": (at("SrcTopicName"), True),
            "dstTopicName": (at("DstResource", "TopicName"), True),
            "srcTopicId": (at("SrcTopicId"), False),
            "dstTopicId": (at("DstResource", "TopicId"), False),
            "bizType": (lambda t: [t["DstResource"].get("BizType", 0)], False),
            "status": (at("EnableFlag"), False),
            "taskName": (at("Name"), True),
            "taskId": (at("TaskId"), True),
        }
    ),
    "DescribeAlertRecordHistory": Filtering(
        {
            "alertId": (at("AlarmId"), False),
            "topicId": (at("TopicId"), False),
            "status": (at("Status"), False),
            "alarmLevel": (at("AlarmLevel"), False),
        },
        most_filters=10,
        most_values=100,
        # status "0代表未恢复，1代表已恢复，2代表已失效"; alarmLevel "0代表警告，1代表提醒，
        # 2代表紧急".
        enums={"status": frozenset("012"), "alarmLevel": frozenset("012")},
    ),
    "DescribeClusters": Filtering(
        {
            "ClusterName": (at("ClusterName"), True),
            "ClusterType": (at("ClusterType"), False),
            "ClusterStatus": (at("ClusterStatus"), False),
            "vpc-id": (at("ClusterNetworkSettings", "VpcId"), False),
            "tag-key": (at("TagSpecification", "Tags", "Key"), False),
            "tag-value": (at("TagSpecification", "Tags", "Value"), False),
        },
        name="Name",
    ),
    "DescribeClusterNodePools": Filtering(
        {"NodePoolsName": (at("Name"), True), "NodePoolsId": (at("NodePoolId"), False)},
        name="Name",
    ),
}


def refused_filters(action: str, params: dict[str, Any]) -> str | None:
    """Why the API refuses the request's Filters (a key it does not know, too many)."""
    rules, filters = FILTERS.get(action), params.get("Filters") or []
    if rules is None:
        return "Filters is not a parameter of this action" if filters else None
    if rules.most_filters is not None and len(filters) > rules.most_filters:
        return f"at most {rules.most_filters} Filters"
    for item in filters:
        key, values = item[rules.name], item["Values"]
        tag = rules.tags and (key == "tagKey" or key.startswith("tag:"))
        if key not in rules.keys and not tag:
            return f"unknown filter {key!r}; known: {', '.join(rules.keys)}"
        if not values or (rules.most_values is not None and len(values) > rules.most_values):
            return f"filter {key!r} takes 1 to {rules.most_values or 'any'} Values"
        if action == "DescribeAlarms" and key == "enable" and not set(values) <= set(ENABLE):
            return f"filter 'enable' takes one of {', '.join(ENABLE)}"
        if key in rules.enums and not {str(v) for v in values} <= rules.enums[key]:
            return f"filter {key!r} takes one of {', '.join(sorted(rules.enums[key]))}"
    return None


def filtered(action: str, items: list[dict[str, Any]], params: dict[str, Any]) -> list[Any]:
    """The items every filter of the request matches (any of its values)."""
    rules = FILTERS[action]
    exact = {1: {"topicName"}, 2: {"logsetName"}, 3: {"topicName", "logsetName"}}.get(
        int(params.get("PreciseSearch", 0)), set()
    )
    for item in params.get("Filters") or []:
        key, wanted = item[rules.name], [str(v) for v in item["Values"]]
        if action == "DescribeAlarms" and key == "enable":
            wanted = [ENABLE[v] for v in wanted]
        if key == "tagKey":
            values, fuzzy = TAG_KEYS, False
        elif key.startswith("tag:"):
            values, fuzzy = tagged(key.removeprefix("tag:")), False
        else:
            values, fuzzy = rules.keys[key]
            fuzzy = fuzzy and key not in exact
        items = [i for i in items if _matches([str(v) for v in values(i)], wanted, fuzzy)]
    return items


def _matches(values: list[str], wanted: list[str], fuzzy: bool) -> bool:
    return any((w in v) if fuzzy else (w == v) for v in values for w in wanted)


# --- values each create's reference allows (InvalidParameterValue naming the rule otherwise) -
Params = dict[str, Any]
# CreateTopic's TopicName: "不能使用以下名称".
RESERVED_TOPICS = {
    "cls_service_log",
    "loglistener_status",
    "loglistener_alarm",
    "loglistener_business",
    "cls_service_metric",
}


def cls_name(most: int, measure: Callable[[str], int] = len) -> Callable[[str], bool]:
    """A CLS name: not empty, no '|', at most ``most`` characters (or bytes)."""
    return lambda name: bool(name) and "|" not in name and measure(name) <= most


def utf8(text: str) -> int:
    return len(text.encode())


def _period(p: Params) -> bool:
    # "标准存储时，支持1至3600天 ... 低频存储时，支持7至3600天，值为3640时代表永久保存".
    low = 7 if p.get("StorageType", "hot") == "cold" else 1
    return low <= int(p.get("Period", 30)) <= 3600 or int(p.get("Period", 30)) == 3640


def _receivers(p: Params) -> bool:
    channels = {"Email", "Sms", "WeChat", "Phone"}
    return all(
        r["ReceiverType"] in ("Uin", "Group")
        and set(r["ReceiverChannels"]) <= channels
        and all(re.fullmatch(r"\d\d:\d\d:\d\d", r[at]) for at in ("StartTime", "EndTime"))
        for r in p.get("NoticeReceivers") or []
    )


def _callbacks(p: Params) -> bool:
    return all(
        c["CallbackType"] in ("Http", "WeCom", "DingTalk", "Lark")
        and utf8(c["Url"]) <= 1024
        and c.get("Method", "POST") in ("POST", "PUT")
        for c in p.get("WebCallbacks") or []
    )


def _targets(p: Params) -> bool:
    return all(
        -1440 <= t["StartTimeOffset"] < t["EndTimeOffset"] <= 0 and t["Number"] >= 1
        for t in p["AlarmTargets"]
    )


def _monitor_time(p: Params) -> bool:
    when = p["MonitorTime"]
    if when["Type"] == "Cron":
        return bool(when.get("CronExpression"))
    return when["Type"] in ("Period", "Fixed") and 1 <= int(when.get("Time", 0)) <= 1440


VALUE_RULES: dict[str, tuple[tuple[str, Callable[[Params], bool]], ...]] = {
    # CreateLogset: LogsetName "最大支持255个字符。不支持|字符".
    "CreateLogset": (
        ("LogsetName: 1 to 255 characters, no '|'", lambda p: cls_name(255)(p["LogsetName"])),
    ),
    # CreateTopic: TopicName "不能为空字符串; 不能包含字符'|'; 不能使用以下名称"; StorageType
    # hot or cold.
    "CreateTopic": (
        (
            "TopicName: not empty, no '|', not one of " + ", ".join(sorted(RESERVED_TOPICS)),
            lambda p: cls_name(10**6)(p["TopicName"]) and p["TopicName"] not in RESERVED_TOPICS,
        ),
        ("StorageType: hot or cold", lambda p: p.get("StorageType", "hot") in ("hot", "cold")),
        ("Period: 1 to 3600 days (cold: 7 to 3600), or 3640", _period),
    ),
    # CreateAlarmNotice: Name "最大支持255个字节。不支持'|'"; Type, ReceiverType, ReceiverChannels,
    # CallbackType and Method their listed values; WebCallback Url "最大支持1024个字节".
    "CreateAlarmNotice": (
        ("Name: 1 to 255 bytes, no '|'", lambda p: cls_name(255, utf8)(p["Name"])),
        (
            "Type: Trigger, Recovery or All",
            lambda p: p.get("Type", "All") in ("Trigger", "Recovery", "All"),
        ),
        (
            "NoticeReceivers: ReceiverType Uin or Group, ReceiverChannels of Email, Sms, "
            "WeChat, Phone, StartTime and EndTime as 15:04:05",
            _receivers,
        ),
        (
            "WebCallbacks: CallbackType Http, WeCom, DingTalk or Lark, Url at most 1024 "
            "bytes, Method POST or PUT",
            _callbacks,
        ),
    ),
    # CreateAlarm: Name "最大支持255个字节。不支持'|'"; TriggerCount 1~2000; AlarmPeriod 0~1440;
    # AlarmLevel 0/1/2; MonitorTime Period/Fixed (Time 1~1440) or Cron; offsets -1440~0, End >
    # Start; Condition+AlarmLevel and MultiConditions "互斥".
    "CreateAlarm": (
        ("Name: 1 to 255 bytes, no '|'", lambda p: cls_name(255, utf8)(p["Name"])),
        ("MonitorTime: Type Period or Fixed with Time 1 to 1440, or Cron", _monitor_time),
        ("TriggerCount: 1 to 2000", lambda p: 1 <= p["TriggerCount"] <= 2000),
        ("AlarmPeriod: 0 to 1440", lambda p: 0 <= p["AlarmPeriod"] <= 1440),
        ("AlarmLevel: 0, 1 or 2", lambda p: p.get("AlarmLevel", 0) in (0, 1, 2)),
        ("AlarmTargets: -1440 <= StartTimeOffset < EndTimeOffset <= 0, Number from 1", _targets),
        (
            "Condition (with AlarmLevel) or MultiConditions, not both",
            lambda p: not (p.get("MultiConditions") and ("Condition" in p or "AlarmLevel" in p)),
        ),
    ),
    # CreateScheduledSql: Name "0~255字符"; EnableFlag 1/2; ProcessType 1/2 (2 needs
    # ProcessEndTime); ProcessPeriod "1~1440分钟"; ProcessDelay "0~120秒".
    "CreateScheduledSql": (
        ("Name: at most 255 characters", lambda p: len(p["Name"]) <= 255),
        ("EnableFlag: 1 or 2", lambda p: p["EnableFlag"] in (1, 2)),
        (
            "ProcessType: 1, or 2 with ProcessEndTime",
            lambda p: p["ProcessType"] == 1 or (p["ProcessType"] == 2 and "ProcessEndTime" in p),
        ),
        ("ProcessPeriod: 1 to 1440 minutes", lambda p: 1 <= p["ProcessPeriod"] <= 1440),
        ("ProcessDelay: 0 to 120 seconds", lambda p: 0 <= p["ProcessDelay"] <= 120),
    ),
    # SearchLog: "TopicId 和 Topics 不能同时使用，在一次请求中有且只能选择一个"; QueryString
    # "最大长度为12KB"; Sort asc or desc; Offset "不能与Context参数同时使用".
    "SearchLog": (
        ("TopicId or Topics, exactly one", lambda p: ("TopicId" in p) != ("Topics" in p)),
        ("QueryString: at most 12 KB", lambda p: utf8(p.get("QueryString", "")) <= 12 * 1024),
        ("Sort: asc or desc", lambda p: p.get("Sort", "desc") in ("asc", "desc")),
        ("Offset and Context: not both", lambda p: not ("Offset" in p and "Context" in p)),
        # Limit "默认为100，最大值为1000".
        ("Limit: 1 to 1000", lambda p: 1 <= p.get("Limit", 100) <= 1000),
    ),
    # GetMonitorData: "EndTime不能小于StartTime"; DescribeAlarmHistories: Module
    # "固定值，为monitor", Order ASC or DESC.
    "GetMonitorData": (
        (
            "EndTime: not before StartTime",
            lambda p: (
                "EndTime" not in p
                or "StartTime" not in p
                or datetime.fromisoformat(p["EndTime"]) >= datetime.fromisoformat(p["StartTime"])
            ),
        ),
    ),
    # DescribeAlarmHistories: AlarmStatus "ALARM=未恢复 OK=已恢复 NO_CONF=已失效 NO_DATA=数据不足";
    # AlarmLevels "取值范围：Remind、Serious、Warn".
    "DescribeAlarmHistories": (
        ("Module: monitor", lambda p: p["Module"] == "monitor"),
        ("Order: ASC or DESC", lambda p: p.get("Order", "DESC") in ("ASC", "DESC")),
        (
            "AlarmStatus: of ALARM, OK, NO_CONF, NO_DATA",
            lambda p: set(p.get("AlarmStatus") or ()) <= {"ALARM", "OK", "NO_CONF", "NO_DATA"},
        ),
        (
            "AlarmLevels: of Remind, Serious, Warn",
            lambda p: set(p.get("AlarmLevels") or ()) <= {"Remind", "Serious", "Warn"},
        ),
    ),
    # DescribeTopics: PreciseSearch 0 to 3; BizType "0:日志主题 1:指标主题".
    "DescribeTopics": (
        ("PreciseSearch: 0, 1, 2 or 3", lambda p: p.get("PreciseSearch", 0) in (0, 1, 2, 3)),
        ("BizType: 0 or 1", lambda p: p.get("BizType", 0) in (0, 1)),
    ),
    # DescribeClusters: ClusterType "托管集群：MANAGED_CLUSTER，独立集群：INDEPENDENT_CLUSTER".
    "DescribeClusters": (
        (
            "ClusterType: MANAGED_CLUSTER or INDEPENDENT_CLUSTER",
            lambda p: (
                p.get("ClusterType", "MANAGED_CLUSTER")
                in ("MANAGED_CLUSTER", "INDEPENDENT_CLUSTER")
            ),
        ),
    ),
    # TextToVoice: Codec wav, mp3 or pcm; SampleRate 24000, 16000 or 8000; Volume [-10, 10];
    # Speed [-2, 6]; PrimaryLanguage 1 or 2.
    "TextToVoice": (
        ("Codec: wav, mp3 or pcm", lambda p: p.get("Codec", "wav") in ("wav", "mp3", "pcm")),
        (
            "SampleRate: 24000, 16000 or 8000",
            lambda p: p.get("SampleRate", 16000) in (24000, 16000, 8000),
        ),
        ("Volume: -10 to 10", lambda p: -10 <= p.get("Volume", 0) <= 10),
        ("Speed: -2 to 6", lambda p: -2 <= p.get("Speed", 0) <= 6),
        ("PrimaryLanguage: 1 or 2", lambda p: p.get("PrimaryLanguage", 1) in (1, 2)),
    ),
}


def refused_value(action: str, params: Params) -> str | None:
    """The first rule of the action's reference that a value of the request breaks."""
    return next((rule for rule, holds in VALUE_RULES.get(action, ()) if not holds(params)), None)


@dataclass
class TencentApi:
    logs: list[dict[str, Any]] = field(default_factory=list)  # {"time": ms, "json": {...}}
    topics: list[dict[str, Any]] = field(default_factory=list)
    clusters: list[dict[str, Any]] = field(default_factory=list)
    node_pools: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    monitor_alarms: list[dict[str, Any]] = field(default_factory=list)
    cls_records: list[dict[str, Any]] = field(default_factory=list)
    # metric -> its datapoints (epoch seconds, value): none stamped after now is served yet
    # (Cloud Monitor has published nothing of the future; see `every_period`).
    metric_points: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    # GetMonitorData: metric -> the periods it is kept at (MONITOR_PERIODS when not named).
    metric_periods: dict[str, tuple[int, ...]] = field(default_factory=dict)
    # DescribeStatisticData: metric -> its series, each with all its dimensions; a request's
    # Conditions pick every series they match, one MetricDataPoint each (as the API does
    # when they do not pin one resource). GetMonitorData: each instance asked for gets the
    # series of exactly its dimensions, and no datapoints when none has them (an instance
    # deleted, or never there). A metric not here answers from metric_points.
    metric_series: dict[str, list[tuple[dict[str, str], list[tuple[int, float]]]]] = field(
        default_factory=dict
    )
    kubeconfigs: dict[str, str] = field(default_factory=dict)  # intranet access (the default)
    extranet_kubeconfigs: dict[str, str] = field(default_factory=dict)  # internet access
    # TKE cluster id -> the region it lives in: asked in another region, TKE does not know it
    # (a cluster not listed here answers in every region).
    cluster_regions: dict[str, str] = field(default_factory=dict)
    # product -> regions of ``REGIONS`` it is not offered in: asked there, the API answers the
    # common error code UnsupportedRegion (接口不支持所传地域), whatever the action.
    not_offered: dict[str, set[str]] = field(default_factory=dict)
    logsets: list[dict[str, Any]] = field(default_factory=list)
    cls_alarms: list[dict[str, Any]] = field(default_factory=list)
    failures: dict[str, list[str]] = field(default_factory=dict)  # action -> error codes to return
    failure_words: dict[str, str] = field(default_factory=dict)  # action -> their Message
    # cls errorcodes: LimitExceeded.SearchResultTooLarge "检索接口返回的日志量太大，超过20MB限制".
    search_result_bytes: int = 20 * 2**20
    context_logs: int = 10_000  # SearchLog's Context paging: this many logs in all
    context_lifetime: float = 3600.0  # seconds a SearchLog Context is good for
    # cls errorcodes: FailedOperation.GetlogReachLimit (日志检索达到上限): SearchLog answers
    # this many pages of logs, then that code to every further page (None: no such limit).
    search_pages: int | None = None
    to_inclusive: bool = False  # SearchLog serving a record at To (see cls_SearchLog)
    log_identity: bool = True  # False: SearchLog's Results without PkgId and PkgLogId
    _log_ids: dict[int, tuple[dict[str, Any], int]] = field(default_factory=dict)
    record_ids: bool = True  # False: DescribeAlertRecordHistory's Records without RecordId
    _record_ids: dict[int, tuple[dict[str, Any], int]] = field(default_factory=dict)
    _alarm_ids: dict[int, tuple[dict[str, Any], int]] = field(default_factory=dict)
    # Which ends of their time range the alarm lists hold: DescribeAlarmHistories finds an
    # alarm whose FirstOccurTime is "晚于 StartTime" and "早于 EndTime" (neither end, as its
    # reference words it, the default); DescribeAlertRecordHistory's does not say. "both": an
    # API that holds both ends; "start": [start, end).
    alarm_ends: Literal["neither", "both", "start"] = "neither"
    log_topic: str = "topic-1"  # the topic ``logs`` are in (a topic of ``topics`` serves them too)
    # The fields the topics' index configuration indexes (key-value index); None: every field.
    # A `key:value` search on another is refused as CLS refuses it (FailedOperation.QueryError).
    indexed: set[str] | None = None
    # CreateLogset's two documented answers to a taken name (cls errorcodes: 相同的日志集已存在).
    logset_conflict: str = "InvalidParameter.LogsetConflict"
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)  # each call's body as it came
    regions: list[str | None] = field(default_factory=list)  # X-TC-Region of each call
    # action -> runs once just before that action is handled (another caller racing us).
    before: dict[str, Callable[[], None]] = field(default_factory=dict)
    # action -> how many of its requests are held until all have arrived, then handled one by
    # one: concurrent callers that each looked the name up before any of them created it.
    together: dict[str, int] = field(default_factory=dict)
    _gates: dict[str, asyncio.Barrier] = field(default_factory=dict)
    # TKE cluster id -> what its DescribeClusterKubeconfig answer waits for (a region's API
    # that is slow), set when it has come in (a test waits on that, never on a clock).
    held_clusters: dict[str, tuple[asyncio.Event, asyncio.Event]] = field(default_factory=dict)
    # action -> the same for each of its requests (TKE slow to list its clusters).
    held: dict[str, tuple[asyncio.Event, asyncio.Event]] = field(default_factory=dict)
    alarm_notices: list[dict[str, Any]] = field(default_factory=list)
    scheduled_sql: list[dict[str, Any]] = field(default_factory=list)
    next_id: int = 0
    # How answers go out, for a counterpart that is not the real API's twin: the Content-Type
    # (the API says exactly application/json; a framework's default adds a charset), the HTTP
    # status of an error (the API says 200), and action -> raw answers (status, Content-Type,
    # body) sent instead of handling the request (a proxy's page, a body without Response).
    content_type: str = "application/json"
    error_status: int = 200
    raw: dict[str, list[tuple[int, str, bytes]]] = field(default_factory=dict)

    def creates(self) -> list[tuple[str, str, dict[str, Any]]]:
        """The create calls that reached the handlers (writes, not reads)."""
        return [c for c in self.calls if c[1].startswith("Create")]

    def _new_id(self, prefix: str) -> str:
        self.next_id += 1
        return f"{prefix}-{self.next_id:06d}"

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/", self.handle, methods=["POST"])])

    async def handle(self, request: Request) -> Response:
        answer = await self._handle(request)
        action = request.headers.get("x-tc-action", "")
        if self.raw.get(action):
            status, content_type, body = self.raw[action].pop(0)
            return Response(body, status_code=status, headers={"Content-Type": content_type})
        answer.headers["Content-Type"] = self.content_type
        if "Error" in json.loads(bytes(answer.body))["Response"]:
            answer.status_code = self.error_status
        return answer

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        auth = headers.get("authorization", "")
        try:
            credential = auth.split("Credential=")[1].split(",")[0]
            secret_id, date, service, _ = credential.split("/")
            signature = auth.split("Signature=")[1]
        except (IndexError, ValueError):
            return error("AuthFailure.SignatureFailure", "malformed Authorization")
        if secret_id != SECRET_ID:
            return error("AuthFailure.SecretIdNotFound", "unknown SecretId")
        stamp = headers.get("x-tc-timestamp", "")
        if not stamp.isdigit() or abs(int(stamp) - time.time()) > SIGNATURE_SKEW:
            return error(
                "AuthFailure.SignatureExpire",
                f"X-TC-Timestamp {stamp} is more than {SIGNATURE_SKEW} s from the server's time",
            )
        if not hmac.compare_digest(
            signature, expected_signature(headers, body, SECRET_KEY, date, service)
        ):
            return error("AuthFailure.SignatureFailure", "signature mismatch")
        action = headers["x-tc-action"]
        if service not in VERSIONS:
            return error("NoSuchProduct", f"no product {service}")
        if headers.get("x-tc-version") != VERSIONS[service]:
            return error("NoSuchVersion", f"{service} has no version {headers.get('x-tc-version')}")
        params = json.loads(body or b"{}")
        self.calls.append((service, action, params))
        self.bodies.append(body)
        self.regions.append(headers.get("x-tc-region"))
        if headers.get("x-tc-region") and headers["x-tc-region"] not in REGIONS:
            return error("InvalidParameterValue", BAD_REGION)
        if headers.get("x-tc-region") in self.not_offered.get(service, ()):
            return error("UnsupportedRegion", "接口不支持所传地域")
        if action in self.together:
            gate = self._gates.setdefault(action, asyncio.Barrier(self.together[action]))
            # A caller that gave up before this action must not hang the others: after a while
            # the rest go on alone (and the test sees what went wrong instead of hanging).
            try:
                await asyncio.wait_for(gate.wait(), GATE_PATIENCE)
            except (TimeoutError, asyncio.BrokenBarrierError):
                await gate.abort()
        hook = self.before.pop(action, None)
        if hook is not None:
            hook()
        if self.failures.get(action):
            code = self.failures[action].pop(0)
            return error(code, self.failure_words.get(action, f"injected {code}"))
        unknown = unknown_parameters(service, action, params)
        if unknown:
            return error("UnknownParameter", f"`{unknown[0]}` is not a parameter of {action}")
        mistyped = mistyped_parameter(service, action, params)
        if mistyped is not None:
            return error("InvalidParameter", f"`{mistyped}` is not of the type {action} defines")
        absent = missing_parameter(params, REQUIRED.get(action, ()))
        if absent is not None:
            return error(
                "MissingParameter", f"The request is missing a required parameter `{absent}`."
            )
        # A null is no absent parameter (the SDK's models leave None out; a dict sent as it
        # is keeps it): a required one is missing (above), any other of the wrong type. A
        # conservative assumption, stricter than what is documented: the common error codes
        # list InvalidParameter and MissingParameter and say nothing of null.
        null = null_parameter(params)
        if null is not None:
            return error("InvalidParameter", f"`{null}` is null, not of the type {action} defines")
        refused = refused_filters(action, params)
        if refused is not None:
            return error("InvalidParameter", f"Filters: {refused}")
        broken = refused_value(action, params)
        if broken is not None:
            return error("InvalidParameterValue", broken)
        handler = getattr(self, f"{service}_{action}", None)
        if handler is None:
            return error("InvalidAction", f"{service} has no action {action}")
        if action == "DescribeClusterKubeconfig" and params["ClusterId"] in self.held_clusters:
            arrived, released = self.held_clusters[params["ClusterId"]]
            arrived.set()
            await released.wait()
        if action in self.held:
            arrived, released = self.held[action]
            arrived.set()
            await released.wait()
        result: Response = handler(params)
        return result

    @staticmethod
    def _page(action: str, items: list[Any], params: dict[str, Any], key: str) -> Response:
        """One page of the items the request's filters match; TotalCount counts them all."""
        offset, limit = int(params.get("Offset", 0)), int(params.get("Limit", 20))
        # The API references of the Describe* lists paged here (DescribeTopics,
        # DescribeAlertRecordHistory, DescribeClusters, ...): Limit "最大值100".
        if not 1 <= limit <= 100 or offset < 0:
            return error("InvalidParameterValue", "Limit must be 1 to 100, Offset >= 0")
        items = filtered(action, items, params)
        return reply({key: items[offset : offset + limit], "TotalCount": len(items)})

    # --- CLS ---
    def cls_SearchLog(self, params: dict[str, Any]) -> Response:
        # cls errorcodes: ResourceNotFound.TopicNotExist "日志主题不存在" — a search of a topic
        # the region does not hold finds nothing to search, not an empty result.
        if params.get("TopicId") not in {self.log_topic, *(t["TopicId"] for t in self.topics)}:
            return error("ResourceNotFound.TopicNotExist", f"topic {params.get('TopicId')}")
        params = {"Limit": 100, **params}  # "默认为100"
        # The API reference (SearchLog, as the SDK 3.1 models carry it): "时间范围为左闭右开区间
        # [From, To)"; older pages did not say: ``to_inclusive`` serves a record at To too.
        to = params["To"] + (1 if self.to_inclusive else 0)
        rows = [log for log in self.logs if params["From"] <= log["time"] < to]
        search, sql = _cql_parts(params["QueryString"])
        if sql is not None:  # SQL analysis: count by level
            counts: dict[str, int] = {}
            for row in rows:
                level = str(row["json"].get("level", "none"))
                counts[level] = counts.get(level, 0) + 1
            rows_out = [{"level": k, "count": v} for k, v in sorted(counts.items())]
            # CLS LIMIT syntax (cloud.tencent.com/document/product/614/58977, intl 614/38733):
            # an SQL answers its first 100 rows unless it says `limit N` (at most 10,000).
            limit = re.search(r"\blimit\s+(\d+)", sql, re.IGNORECASE)
            rows_out = rows_out[: min(int(limit[1]), 10_000) if limit else 100]
            # The API reference (SearchLog): AnalysisRecords "当UseNewAnalysis为true时生效"; without
            # it the rows come as AnalysisResults/ColNames and AnalysisRecords is null.
            if params.get("UseNewAnalysis") is True:
                analysis = {"AnalysisRecords": [json.dumps(r) for r in rows_out]}
            else:
                analysis = {
                    "AnalysisRecords": None,
                    "ColNames": ["level", "count"],
                    "AnalysisResults": [
                        {"Data": [{"Key": k, "Value": str(v)} for k, v in r.items()]}
                        for r in rows_out
                    ],
                }
            return reply({"Analysis": True, **analysis, "ListOver": True, "Results": []})
        term = search.strip()
        # Every field a search names (outside quoted values: `a AND level:ERROR`, `NOT x:y`) is
        # one the index holds, or CLS refuses the query with the reason in its message:
        # "Cannot search on field [level] since it is not indexed".
        named = re.findall(r"(?<![\w.])([A-Za-z_][\w.]*):", re.sub(r'"[^"]*"', '""', term))
        if self.indexed is not None and (unknown := [k for k in named if k not in self.indexed]):
            return error(
                "FailedOperation.QueryError",
                "QueryError [illegal_argument_exception] Cannot search on field "
                f"[{unknown[0]}] since it is not indexed",
            )
        # Parts joined by AND, each key:"value", key:value or a word anywhere in the log.
        for part in re.split(r"\s+AND\s+", term, flags=re.IGNORECASE):
            if (phrase := re.fullmatch(r'(\w+):(?:"(.*)"|(\S+))', part)) is not None:
                key, value = phrase[1], (phrase[2] if phrase[3] is None else phrase[3]).lower()
                rows = [r for r in rows if value in str(r["json"].get(key, "")).lower()]
            elif part != "*":
                said = part.lower()
                rows = [
                    r for r in rows if said in json.dumps(r["json"], ensure_ascii=False).lower()
                ]
        rows.sort(key=lambda r: r["time"], reverse=True)
        # The API reference (SearchLog): Context "总计最多可获取1万条原始日志" (its pages end
        # there), Offset "从第几行开始返回原始日志，无日志条数限制".
        by_context = "Offset" not in params
        if by_context:
            offset = self._context_offset(params)
            if offset is None:
                return error("FailedOperation.InvalidContext", "the search's Context has expired")
        else:
            offset = int(params["Offset"])
        end = offset + int(params["Limit"])
        if self.search_pages == 0:
            return error("FailedOperation.GetlogReachLimit", "日志检索达到上限")
        page = rows[offset : min(end, self.context_logs) if by_context else end]
        if sum(len(json.dumps(r["json"])) for r in page) > self.search_result_bytes:
            return error("LimitExceeded.SearchResultTooLarge", "检索接口返回的日志量太大")
        if self.search_pages is not None:
            self.search_pages -= 1
        done = offset + len(page) >= len(rows)
        more = by_context and not done and offset + len(page) < self.context_logs
        return reply(
            {
                "Analysis": False,
                "ListOver": done,
                "Context": self._context(params, offset + len(page)) if more else "",
                "Results": [
                    {
                        "Time": r["time"],
                        "TopicId": params["TopicId"],
                        "Source": "10.0.0.1",
                        **self._log_identity(r),
                        "LogJson": json.dumps(r["json"], ensure_ascii=False),
                    }
                    for r in page
                ],
            }
        )

    # The API reference (SearchLog's LogInfo): PkgId "日志上报请求包的ID", PkgLogId "请求包内日志的
    # ID", which DescribeLogContext takes with TopicId and the Time to name one log. A log of
    # ``logs`` keeps the pair it was first served with (an upload package of 64 logs here).
    def _log_identity(self, row: dict[str, Any]) -> dict[str, str]:
        if not self.log_identity:
            return {}
        kept = self._log_ids.setdefault(id(row), (row, len(self._log_ids)))
        n = kept[1]
        return {"PkgId": f"528C1318606EFEB8-{n // 64:X}", "PkgLogId": str(65536 + n % 64)}

    # The API reference (SearchLog): Context "过期时间1小时", and "透传该参数时，请勿修改除该
    # 参数外的其它参数"; cls errorcodes: FailedOperation.InvalidContext "检索游标已失效或不存在".
    # A Context here holds where the next page starts, when it was given and its search.
    def _context(self, params: dict[str, Any], offset: int) -> str:
        search = {k: v for k, v in params.items() if k != "Context"}
        token = {"offset": offset, "at": time.time(), "search": search}
        return base64.b64encode(json.dumps(token, sort_keys=True).encode()).decode()

    def _context_offset(self, params: dict[str, Any]) -> int | None:
        """Where a Context-paged request starts; None for a Context expired, unknown or given
        with other parameters than the search it came from."""
        if not params.get("Context"):
            return 0
        try:
            token = json.loads(base64.b64decode(params["Context"]))
        except ValueError:
            return None
        search = {k: v for k, v in params.items() if k != "Context"}
        if time.time() - token["at"] > self.context_lifetime or token["search"] != search:
            return None
        return int(token["offset"])

    def cls_DescribeTopics(self, params: dict[str, Any]) -> Response:
        topics = [{**t, "LogsetName": self._logset_name(t.get("LogsetId"))} for t in self.topics]
        return self._page("DescribeTopics", topics, params, "Topics")

    def _logset_name(self, logset_id: str | None) -> str | None:
        return next((s["LogsetName"] for s in self.logsets if s["LogsetId"] == logset_id), None)

    # DescribeAlertRecordHistory (intl 614/54789): "Region ... This parameter is not required
    # for this API": every region's records answer, each naming its topic's region
    # (AlertHistoryRecord.Region, 监控对象所属地域); X-TC-Region does not filter them.
    # Newest first, as the API answers (its records by CreateTime, the newest on the first page).
    def cls_DescribeAlertRecordHistory(self, params: dict[str, Any]) -> Response:
        rows = [
            self._with_record_id(r)
            for r in self.cls_records
            if self._alarm_in(params["From"], params["To"], r["CreateTime"])
        ]
        rows.sort(key=lambda r: r["CreateTime"], reverse=True)
        return self._page("DescribeAlertRecordHistory", rows, params, "Records")

    def _with_record_id(self, row: dict[str, Any]) -> dict[str, Any]:
        """A record as served, with the RecordId (AlertHistoryRecord: "告警历史ID") it keeps each
        time it is served, unless it has one or ``record_ids`` is off."""
        if not self.record_ids:
            return row
        kept = self._record_ids.setdefault(id(row), (row, len(self._record_ids)))
        return {"RecordId": f"alert-record-{kept[1]:06d}", **row}

    def cls_DescribeLogsets(self, params: dict[str, Any]) -> Response:
        return self._page("DescribeLogsets", self.logsets, params, "Logsets")

    def cls_DescribeAlarms(self, params: dict[str, Any]) -> Response:
        return self._page("DescribeAlarms", self.cls_alarms, params, "Alarms")

    # CLS writes: names are unique per kind (topics per logset), as the real API enforces,
    # answering each kind's documented InvalidParameter.*Conflict code (a logset's: either of
    # its two, logset_conflict).
    def cls_CreateLogset(self, params: dict[str, Any]) -> Response:
        if any(s["LogsetName"] == params["LogsetName"] for s in self.logsets):
            return error(self.logset_conflict, "a logset of that name exists")
        logset = {
            "LogsetId": self._new_id("logset"),
            "LogsetName": params["LogsetName"],
            "Tags": params.get("Tags") or [],
        }
        self.logsets.append(logset)
        return reply({"LogsetId": logset["LogsetId"]})

    def cls_CreateTopic(self, params: dict[str, Any]) -> Response:
        if not any(s["LogsetId"] == params["LogsetId"] for s in self.logsets):
            return error("ResourceNotFound.LogsetNotExist", f"logset {params['LogsetId']}")
        if int(params.get("PartitionCount", 1)) > 10:
            return error("InvalidParameter.PartitionCount", "PartitionCount must be <= 10")
        if any(
            t.get("LogsetId") == params["LogsetId"] and t["TopicName"] == params["TopicName"]
            for t in self.topics
        ):
            return error("InvalidParameter.TopicConflict", "a topic of that name exists")
        topic = {
            "TopicId": self._new_id("topic"),
            "TopicName": params["TopicName"],
            "LogsetId": params["LogsetId"],
            "StorageType": params.get("StorageType", "hot"),
            "Tags": params.get("Tags") or [],
        }
        self.topics.append(topic)
        return reply({"TopicId": topic["TopicId"]})

    def cls_DescribeAlarmNotices(self, params: dict[str, Any]) -> Response:
        return self._page("DescribeAlarmNotices", self.alarm_notices, params, "AlarmNotices")

    def cls_CreateAlarmNotice(self, params: dict[str, Any]) -> Response:
        if not params.get("NoticeReceivers") and not params.get("WebCallbacks"):
            return error("InvalidParameter", "a notice needs receivers or callbacks")
        if any(n["Name"] == params["Name"] for n in self.alarm_notices):
            return error("InvalidParameter.AlarmNoticeConflict", "a notice of that name exists")
        notice = {"AlarmNoticeId": self._new_id("notice"), **params}
        self.alarm_notices.append(notice)
        return reply({"AlarmNoticeId": notice["AlarmNoticeId"]})

    def cls_DeleteAlarmNotice(self, params: dict[str, Any]) -> Response:
        notice = params["AlarmNoticeId"]
        if notice not in {n["AlarmNoticeId"] for n in self.alarm_notices}:
            return error("ResourceNotFound.AlarmNoticeNotExist", f"notice {notice}")
        if any(notice in (a.get("AlarmNoticeIds") or []) for a in self.cls_alarms):
            # Its reference: a notice an alarm policy uses is not deleted.
            return error("OperationDenied", "the notice is used by an alarm policy")
        self.alarm_notices = [n for n in self.alarm_notices if n["AlarmNoticeId"] != notice]
        return reply({})

    def cls_CreateAlarm(self, params: dict[str, Any]) -> Response:
        known = {n["AlarmNoticeId"] for n in self.alarm_notices}
        missing = [n for n in params.get("AlarmNoticeIds") or [] if n not in known]
        if missing:
            return error("ResourceNotFound.AlarmNoticeNotExist", f"notice {missing[0]}")
        topics = {t["TopicId"]: t.get("LogsetId") for t in self.topics}
        for target in params["AlarmTargets"]:
            if target["TopicId"] not in topics:
                return error("ResourceNotFound.TopicNotExist", f"topic {target['TopicId']}")
            if target.get("LogsetId") != topics[target["TopicId"]]:
                return error("InvalidParameter.LogsetId", "LogsetId is not the topic's logset")
        if any(a["Name"] == params["Name"] for a in self.cls_alarms):
            return error("InvalidParameter.AlarmConflict", "an alarm policy of that name exists")
        alarm = {"AlarmId": self._new_id("alarm"), **params}
        self.cls_alarms.append(alarm)
        return reply({"AlarmId": alarm["AlarmId"]})

    def cls_DescribeScheduledSqlInfo(self, params: dict[str, Any]) -> Response:
        # Name and TaskId: the reference says neither exact nor fuzzy; fuzzy, as taskName is.
        names = {t["TopicId"]: t["TopicName"] for t in self.topics}
        rows = [
            {**t, "SrcTopicName": names.get(t["SrcTopicId"])}
            for t in self.scheduled_sql
            if params.get("Name", "") in t["Name"] and params.get("TaskId", "") in t["TaskId"]
        ]
        return self._page("DescribeScheduledSqlInfo", rows, params, "ScheduledSqlTaskInfos")

    def cls_CreateScheduledSql(self, params: dict[str, Any]) -> Response:
        # Scheduled SQL does not deliver across regions: the target is in the source's region.
        if params["DstResource"].get("Region") not in (None, params["SrcTopicRegion"]):
            return error(
                "InvalidParameter",
                f"DstResource.Region {params['DstResource']['Region']!r} is not the source "
                f"topic's region {params['SrcTopicRegion']!r}",
            )
        topics = {t["TopicId"] for t in self.topics}
        for topic in (params["SrcTopicId"], params["DstResource"]["TopicId"]):
            if topic not in topics:
                return error("ResourceNotFound.TopicNotExist", f"topic {topic}")
        task = {"TaskId": self._new_id("task"), **params}
        self.scheduled_sql.append(task)
        return reply({"TaskId": task["TaskId"]})

    def _alarm_in(self, start: int, end: int, at: int) -> bool:
        """Whether an alarm list's range [start, end] holds the time ``at``, its ends as
        ``alarm_ends`` says."""
        if self.alarm_ends == "both":
            return start <= at <= end
        return (start <= at if self.alarm_ends == "start" else start < at) and at < end

    # --- Monitor ---
    # DescribeAlarmHistories (248/48684): Region "公共参数，此参数为可选参数": every region's
    # alarms answer, each naming its own (Histories[].Region); X-TC-Region does not filter them.
    def monitor_DescribeAlarmHistories(self, params: dict[str, Any]) -> Response:
        # The API reference: all optional; StartTime a day before now, EndTime now, PageNumber
        # 1 and PageSize 20 when not given (seconds, like FirstOccurTime).
        now = int(time.time())
        start, end = params.get("StartTime", now - 86400), params.get("EndTime", now)
        rows = [
            self._with_alarm_id(a)
            for a in self.monitor_alarms
            if self._alarm_in(start, end, a["FirstOccurTime"])
        ]
        # AlarmStatus: "根据告警状态过滤 ALARM=未恢复 OK=已恢复 ...，不选默认查所有".
        if params.get("AlarmStatus"):
            rows = [a for a in rows if a.get("AlarmStatus") in params["AlarmStatus"]]
        # Order: "默认按首次出现时间倒序排列": a page holds the alarms at its place in that order
        # when it is asked (an alarm that began meanwhile moves the later pages' newest first).
        descending = params.get("Order", "DESC") == "DESC"
        rows = sorted(rows, key=lambda a: a["FirstOccurTime"], reverse=descending)
        number, size = int(params.get("PageNumber", 1)), int(params.get("PageSize", 20))
        # The API reference (DescribeAlarmHistories): PageSize "取值1~100", PageNumber from 1.
        if not 1 <= size <= 100 or number < 1:
            return error("InvalidParameterValue", "PageSize must be 1-100, PageNumber >= 1")
        return reply(
            {"Histories": rows[(number - 1) * size : number * size], "TotalCount": len(rows)}
        )

    def _with_alarm_id(self, row: dict[str, Any]) -> dict[str, Any]:
        """An alarm as served, with the AlarmId (AlarmHistory: "告警历史Id") it keeps each time
        it is served, unless it has one."""
        kept = self._alarm_ids.setdefault(id(row), (row, len(self._alarm_ids)))
        return {"AlarmId": f"alarm-{kept[1]:06d}", **row}

    def monitor_GetMonitorData(self, params: dict[str, Any]) -> Response:
        # The API reference (GetMonitorData): "此接口不适用于拉取容器服务监控数据" — container
        # metrics are read with DescribeStatisticData.
        if params["Namespace"] in STATISTIC_NAMESPACES:
            return error(
                "InvalidParameterValue",
                f"GetMonitorData does not serve {params['Namespace']}; use DescribeStatisticData",
            )
        points = self.metric_points.get(params["MetricName"])
        if points is None and params["MetricName"] not in self.metric_series:
            return error("InvalidParameterValue", f"unknown metric {params['MetricName']}")
        points = points or []
        # The API reference's form, 2018-09-22T19:51:23+08:00: whole seconds and an offset.
        for name in ("StartTime", "EndTime"):
            if not ISO_SECONDS.fullmatch(params.get(name) or ""):
                return error(
                    "InvalidParameterValue",
                    f"{name} {params.get(name)!r} is not YYYY-MM-DDThh:mm:ss+hh:mm",
                )
        start = datetime.fromisoformat(params["StartTime"]).timestamp()
        end = datetime.fromisoformat(params["EndTime"]).timestamp()
        # The API reference (cloud.tencent.com/document/product/248/30353, 2024-04-03; intl
        # 405/4667): "单请求最多可支持批量拉取10个实例的监控数据，单请求的数据点数限制为1440个".
        # The SDK's docstrings (monitor 3.1.189) say 50 and 7200: the stand-in holds the stricter.
        # Its documented error codes (FailedOperation.ErrNotOpen, FailedOperation.ErrOwed,
        # InternalError, InvalidParameterValue, UnsupportedOperation) have no InvalidParameter.
        if len(params["Instances"]) > 10:
            return error("InvalidParameterValue", "at most 10 instances per request")
        if not params["Instances"] or not all(i["Dimensions"] for i in params["Instances"]):
            return error("InvalidParameterValue", "each instance needs its dimensions")
        period = int(params.get("Period", 300))
        kept = self.metric_periods.get(params["MetricName"], MONITOR_PERIODS)
        if period not in kept:
            # The code is the reference's for a wrong value; its exact message is not documented.
            return error(
                "InvalidParameterValue",
                f"Period {period} is not supported by {params['MetricName']} "
                f"(supported: {', '.join(map(str, kept))})",
            )
        if (end - start) // period > 1440:
            return error("InvalidParameterValue", "more than 1440 datapoints in one request")
        series = self.metric_series.get(params["MetricName"])
        answers: list[dict[str, Any]] = []
        now = time.time()
        for instance in params["Instances"] if series is not None else params["Instances"][:1]:
            asked = {d["Name"]: d["Value"] for d in instance["Dimensions"]}
            if series is not None:
                stamped = next((p for dims, p in series if dims == asked), [])
            else:
                # As the real service: dimensions its namespace does not have (a name mistyped
                # on the way out) match no instance, so no datapoint.
                names = NAMESPACE_DIMENSIONS.get(params["Namespace"])
                stamped = points if names is None or set(asked) == names else []
            inside = [(t, v) for t, v in stamped if start <= t <= min(end, now)]
            answers.append(
                {
                    "Dimensions": instance["Dimensions"],
                    "Timestamps": [t for t, _ in inside],
                    "Values": [v for _, v in inside],
                }
            )
        return reply({"MetricName": params["MetricName"], "Period": period, "DataPoints": answers})

    def monitor_DescribeStatisticData(self, params: dict[str, Any]) -> Response:
        # The API reference (DescribeStatisticData): Module fixed "monitor"; Namespace QCE/TKE2
        # (Conditions required), QCE/KEEWIDB, QCE/CAMP; Period 60, 300, 3600 or 86400.
        if params["Module"] != "monitor":
            return error("InvalidParameterValue", "Module must be monitor")
        if params["Namespace"] not in STATISTIC_NAMESPACES:
            return error("InvalidParameterValue", f"unsupported namespace {params['Namespace']}")
        conditions = params.get("Conditions") or []
        if params["Namespace"] == "QCE/TKE2" and not conditions:
            return error(
                "MissingParameter", "The request is missing a required parameter `Conditions`."
            )
        for condition in conditions:
            if condition.get("Operator") not in ("=", "in") or not condition.get("Value"):
                return error("InvalidParameterValue", f"bad condition {condition}")
        period = int(params.get("Period", 300))
        if period not in (60, 300, 3600, 86400):
            return error("InvalidParameterValue", "Period must be one of 60, 300, 3600, 86400")
        for name in ("StartTime", "EndTime"):
            if not ISO_SECONDS.fullmatch(params.get(name) or ""):
                return error(
                    "InvalidParameterValue",
                    f"{name} {params.get(name)!r} is not YYYY-MM-DDThh:mm:ss+hh:mm",
                )
        start = datetime.fromisoformat(params["StartTime"]).timestamp()
        end = datetime.fromisoformat(params["EndTime"]).timestamp()
        # The API reference (Period): "60s：EndTime-StartTime<12小时 ... 300s：<3天 ... 3600s：<30天
        # ... 86400s：<186天".
        if end - start >= STATISTIC_WINDOWS[period]:
            return error(
                "InvalidParameterValue",
                f"at period {period}s EndTime-StartTime must be < {STATISTIC_WINDOWS[period]}s",
            )
        # The same (Period): "60s：...且StartTime距当前时间不能超过15天 ... 300s：...31天 ...
        # 3600s：...93天 ... 86400s：...186天" — older datapoints are not kept at that period.
        if datetime.now(UTC).timestamp() - start > STATISTIC_RETENTION[period]:
            return error(
                "InvalidParameterValue",
                f"at period {period}s StartTime must be within "
                f"{STATISTIC_RETENTION[period] // 86400} days of now",
            )
        data: list[dict[str, Any]] = []
        now = time.time()
        for metric in params["MetricNames"]:
            named = {c["Key"]: c["Value"][0] for c in conditions}
            series = self.metric_series.get(metric) or [(named, self.metric_points.get(metric, []))]
            points = []
            for dimensions, stamped in series:
                if any(dimensions.get(c["Key"]) not in c["Value"] for c in conditions):
                    continue
                inside = [
                    {"Timestamp": t, "Value": v} for t, v in stamped if start <= t <= min(end, now)
                ]
                if inside:
                    named_dims = [{"Name": k, "Value": v} for k, v in dimensions.items()]
                    points.append({"Dimensions": named_dims, "Values": inside})
            data.append({"MetricName": metric, "Points": points})
        return reply(
            {
                "Period": period,
                "StartTime": params["StartTime"],
                "EndTime": params["EndTime"],
                "Data": data,
            }
        )

    # --- TKE ---
    def tke_DescribeClusters(self, params: dict[str, Any]) -> Response:
        ids = params.get("ClusterIds") or [c["ClusterId"] for c in self.clusters]
        clusters = [c for c in self.clusters if c["ClusterId"] in ids]
        return self._page("DescribeClusters", clusters, params, "Clusters")

    def tke_DescribeClusterNodePools(self, params: dict[str, Any]) -> Response:
        cluster = params["ClusterId"]
        # Asked in another region than the cluster's, TKE does not know it.
        if self.cluster_regions.get(cluster, self.regions[-1]) != self.regions[-1]:
            return error("ResourceNotFound.ClusterNotFound", f"cluster {cluster} not found")
        if params["ClusterId"] not in self.node_pools:
            return error(
                "ResourceNotFound.ClusterNotFound", f"cluster {params['ClusterId']} not found"
            )
        pools = filtered("DescribeClusterNodePools", self.node_pools[params["ClusterId"]], params)
        return reply({"NodePoolSet": pools, "TotalCount": len(pools)})

    def tke_DescribeClusterKubeconfig(self, params: dict[str, Any]) -> Response:
        # The API reference: IsExtranet (Boolean, default false) asks for the internet access
        # kubeconfig, else the intranet one; for an access that is not enabled, the kubeconfig
        # names a default domain that "默认不可达" (here a loopback port nothing listens on).
        extranet = params.get("IsExtranet", False)
        if not isinstance(extranet, bool):
            return error("InvalidParameter", "IsExtranet must be a Boolean")
        asked, other = (self.extranet_kubeconfigs, self.kubeconfigs)
        if not extranet:
            asked, other = other, asked
        cluster = params["ClusterId"]
        known = cluster in asked or cluster in other
        if not known or self.cluster_regions.get(cluster, self.regions[-1]) != self.regions[-1]:
            # An error, not an empty kubeconfig: TKE documents four codes for it (tke
            # errorcodes: ResourceNotFound/InvalidParameter/FailedOperation/InternalError
            # .ClusterNotFound); an empty answer is a known cluster's ("cls-x": "").
            return error("ResourceNotFound.ClusterNotFound", f"cluster {cluster} not found")
        if cluster in asked:
            return reply({"Kubeconfig": asked[cluster]})
        config = yaml.safe_load(other[cluster])
        for entry in config.get("clusters", []):
            entry["cluster"]["server"] = UNREACHABLE_SERVER
        return reply({"Kubeconfig": yaml.safe_dump(config)})

    def tke_ModifyNodePoolDesiredCapacityAboutAsg(self, params: dict[str, Any]) -> Response:
        for pool in self.node_pools.get(params["ClusterId"], []):
            if pool["NodePoolId"] == params["NodePoolId"]:
                if not pool["MinNodesNum"] <= params["DesiredCapacity"] <= pool["MaxNodesNum"]:
                    return error("InvalidParameter.Param", "DesiredCapacity outside [min, max]")
                pool["DesiredNodesNum"] = params["DesiredCapacity"]
                return reply({})
        return error("ResourceNotFound", "node pool not found")

    def tke_CreateClusterNodePool(self, params: dict[str, Any]) -> Response:
        if params["ClusterId"] not in self.node_pools:
            return error(
                "ResourceNotFound.ClusterNotFound", f"cluster {params['ClusterId']} not found"
            )
        try:
            scaling = json.loads(params["AutoScalingGroupPara"])
            launch = json.loads(params["LaunchConfigurePara"])
        except (KeyError, TypeError, ValueError):
            return error("InvalidParameter.Param", "AutoScalingGroupPara is not JSON")
        # LaunchConfigurePara is AS's CreateLaunchConfiguration (377/20447): SystemDisk.DiskType
        # takes the eight values of AS's data types (默认取值：CLOUD_PREMIUM).
        disk = (launch.get("SystemDisk") or {}).get("DiskType", "CLOUD_PREMIUM")
        if disk not in AS_DISK_TYPES:
            return error("InvalidParameter.Param", f"SystemDisk.DiskType {disk!r}")
        # AutoScalingGroupPara is AS's CreateAutoScalingGroup (377/20440): AutoScalingGroupName,
        # MaxSize, MinSize and VpcId required; the name "仅支持中文、英文、数字、下划线、分隔符"-"、
        # 小数点，最大长度不能超55个字节"; sizes in [0, 2000]. DesiredCapacity is optional.
        group = scaling.get("AutoScalingGroupName") or ""
        if (
            any(scaling.get(k) is None for k in ("MaxSize", "MinSize", "VpcId"))
            or not AS_GROUP_NAME.fullmatch(group)
            or utf8(group) > 55
            or not 0 <= scaling["MinSize"] <= scaling["MaxSize"] <= 2000
        ):
            return error("InvalidParameter.AsCommonError", f"AutoScalingGroupPara: {scaling}")
        desired = scaling.get("DesiredCapacity", scaling["MinSize"])
        if not scaling["MinSize"] <= desired <= scaling["MaxSize"]:
            return error("InvalidParameter.Param", "DesiredCapacity outside [MinSize, MaxSize]")
        pool = {
            "NodePoolId": self._new_id("np"),
            "Name": params["Name"],
            "LifeState": "creating",
            "DesiredNodesNum": desired,
            "MinNodesNum": scaling["MinSize"],
            "MaxNodesNum": scaling["MaxSize"],
        }
        self.node_pools[params["ClusterId"]].append(pool)
        return reply({"NodePoolId": pool["NodePoolId"]})

    # --- TTS ---
    def tts_TextToVoice(self, params: dict[str, Any]) -> Response:
        # tts errorcodes: InvalidParameterValue.TextTooLong "合成文本字符过长" (InvalidParameter
        # .InvalidText is "请求文本含有非法字符", another fault). Text "中文最大支持150个汉字...
        # 英文最大支持500个字母": the stand-in takes 500 of a text all ASCII, 150 of any other
        # (a mixed text's count is not said: held to the stricter).
        limit = 500 if params["Text"].isascii() else 150
        if len(params["Text"]) > limit:
            return error(
                "InvalidParameterValue.TextTooLong", f"Text longer than {limit} characters"
            )
        if not re.search(r"\w", params["Text"]):  # the error centre: "请求文本没有有效字符"
            return error("InvalidParameterValue.InvalidText", "Text has no character to speak")
        audio = base64.b64encode(f"[{params['Text']}]".encode()).decode()
        return reply({"Audio": audio, "SessionId": params["SessionId"]})


def now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)
