"""The real Tencent Cloud SDK against the loopback stand-in."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from tencentcloud.common.credential import Credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from ambient.clients.tencent.alarms import list_alarms
from ambient.clients.tencent.client import LIMIT_RETRIES, TencentCloud, backoff, calls_within
from ambient.clients.tencent.clusters import list_clusters, list_node_pools
from ambient.clients.tencent.credentials import credential_from_env
from ambient.clients.tencent.errors import (
    TencentAnswerError,
    TencentAuthError,
    TencentNotConfiguredError,
    TencentNotFoundError,
    TencentRequestError,
    TencentRetryableError,
    translate,
)
from ambient.clients.tencent.logs import list_log_topics, search_logs
from ambient.clients.tencent.metrics import get_metric, latest_metric_point
from ambient.clients.tencent.tts import text_to_voice, tts_segments
from ambient.clients.tencent.writes import CloudRequest, send
from ambient.cloud.errors import failure, told
from tests.standins.tencent_api import SECRET_ID, SECRET_KEY, TencentApi
from tests.support.servers import HANG, serve
from tests.support.tencent import standin_tencent

NOW = datetime.now(UTC).replace(microsecond=0)


async def latest_metric_value(*args: Any, **kwargs: Any) -> float:
    """The newest datapoint's value (what a threshold watch's check reads)."""
    return (await latest_metric_point(*args, **kwargs)).value


def _scale(cluster_id: str, node_pool_id: str, desired: int) -> CloudRequest:
    """The request scale_node_pool sends (ambient.cloud.node_pools)."""
    params = {"ClusterId": cluster_id, "NodePoolId": node_pool_id, "DesiredCapacity": desired}
    return CloudRequest(
        product="tke", action="ModifyNodePoolDesiredCapacityAboutAsg", params=params
    )


async def test_search_logs_pages_with_context_and_parses_json(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    api, tc = cloud
    base = int((NOW - timedelta(hours=1)).timestamp() * 1000)
    api.logs = [
        {"time": base + i, "json": {"level": "ERROR" if i % 3 == 0 else "INFO", "msg": f"订单 {i}"}}
        for i in range(2500)
    ]
    result = await search_logs(tc, "topic-1", "*", NOW - timedelta(hours=2), NOW, limit=2200)
    assert len(result.logs) == 2200 and not result.complete
    assert result.logs[0].content == {"level": "ERROR", "msg": "订单 2499"}  # newest first
    searches = [params for _, action, params in api.calls if action == "SearchLog"]
    assert len(searches) == 3 and "Context" in searches[1]
    assert all(p["Limit"] == 1000 and p["From"] == searches[0]["From"] for p in searches)

    errors = await search_logs(tc, "topic-1", "ERROR", NOW - timedelta(hours=2), NOW, limit=5000)
    assert errors.complete and len(errors.logs) == 834
    sql = await search_logs(
        tc, "topic-1", "* | select level, count(*) group by level", NOW - timedelta(hours=2), NOW
    )
    assert sql.analysis == [{"level": "ERROR", "count": 834}, {"level": "INFO", "count": 1666}]


async def test_search_logs_reads_past_contexts_cap_by_offset(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """SearchLog's Context pages end at CLS's cap (10,000 logs; 1,500 here): the search goes
    on with Offset, each log once, newest first, and says whether it read to the end."""
    api, tc = cloud
    api.context_logs = 1_500
    base = int((NOW - timedelta(hours=1)).timestamp() * 1000)
    api.logs = [{"time": base + i, "json": {"n": i}} for i in range(3_200)]
    window = NOW - timedelta(hours=2), NOW
    found = await search_logs(tc, "topic-1", "*", *window, limit=5_000)
    assert found.complete
    assert [r.content["n"] for r in found.logs] == list(range(3_199, -1, -1))  # type: ignore[index]
    searches = [params for _, action, params in api.calls if action == "SearchLog"]
    assert [(p.get("Context") is not None, p.get("Offset")) for p in searches] == [
        (False, None),
        (True, None),
        (False, 1_500),
        (False, 2_500),
    ]
    cut = await search_logs(tc, "topic-1", "*", *window, limit=2_000)
    assert len(cut.logs) == 2_000 and not cut.complete

    # An answer too large on the way: the search goes on from there in smaller pages.
    api.calls.clear()
    api.search_result_bytes = 600 * 12  # about 600 of these lines a page
    found = await search_logs(tc, "topic-1", "*", *window, limit=5_000)
    assert found.complete
    assert [r.content["n"] for r in found.logs] == list(range(3_199, -1, -1))  # type: ignore[index]


async def test_a_search_whose_context_expired_goes_on_by_offset_from_where_it_was(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """SearchLog's Context lives an hour (cls errorcodes: FailedOperation.InvalidContext
    "检索游标已失效或不存在"): a search read slower than that, a busy day's briefing say, failed
    whole at its next page. It goes on by Offset, each log once, newest first."""
    api, tc = cloud
    api.context_lifetime = 0  # every Context has expired by the time it comes back
    base = int((NOW - timedelta(hours=1)).timestamp() * 1000)
    api.logs = [{"time": base + i, "json": {"n": i}} for i in range(2_500)]
    found = await search_logs(tc, "topic-1", "*", NOW - timedelta(hours=2), NOW, limit=2_200)
    assert [r.content["n"] for r in found.logs] == list(range(2_499, 299, -1))  # type: ignore[index]
    assert not found.complete
    searches = [params for _, action, params in api.calls if action == "SearchLog"]
    assert [(p.get("Context") is not None, p.get("Offset")) for p in searches] == [
        (False, None),
        (True, None),
        (False, 1_000),
        (False, 2_000),
    ]


def test_calls_refused_together_by_a_rate_limit_come_back_apart() -> None:
    """Every refused call waited exactly 0.5, 1 and 2 s: calls refused in one second (60
    watches' reads at once) came back in one instant, and were refused again."""
    for attempt in range(LIMIT_RETRIES):
        delay = 0.5 * 2**attempt
        waits = [backoff(0.5, attempt) for _ in range(200)]
        assert all(delay / 2 <= wait <= delay * 3 / 2 for wait in waits)
        assert max(waits) - min(waits) > delay / 2  # spread over the span, not one instant
        assert sum(waits) / len(waits) == pytest.approx(delay, rel=0.2)  # as long on average


async def test_errors_are_classified_and_rate_limits_back_off(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    api, tc = cloud
    api.clusters = [
        {"ClusterId": "cls-abcd1234", "ClusterName": "prod", "ClusterStatus": "Running"}
    ]
    api.failures["DescribeClusters"] = ["RequestLimitExceeded", "RequestLimitExceeded"]
    assert [c.cluster_id for c in await list_clusters(tc)] == [
        "cls-abcd1234"
    ]  # backed off twice, then ok

    api.failures["DescribeClusterNodePools"] = ["RequestLimitExceeded"] * 5
    with pytest.raises(TencentRetryableError, match="RequestLimitExceeded"):
        await list_node_pools(tc, "cls-abcd1234")
    api.failures["DescribeClusterNodePools"] = ["InvalidParameter.ClusterId"]
    with pytest.raises(TencentRequestError, match="InvalidParameter"):
        await list_node_pools(tc, "cls-abcd1234")
    with pytest.raises(TencentNotFoundError):
        await list_node_pools(tc, "cls-missing")

    forged = TencentCloud(
        Credential(SECRET_ID, "wrong-key"),
        region="ap-guangzhou",
        endpoint=tc._endpoint,
        protocol="http",
    )
    with pytest.raises(TencentAuthError, match="SignatureFailure"):
        await list_log_topics(forged)
    unreachable = TencentCloud(
        Credential(SECRET_ID, SECRET_KEY),
        region="ap-guangzhou",
        endpoint="127.0.0.1:1",
        protocol="http",
        timeout=2,
    )
    with pytest.raises(TencentRetryableError, match="NetworkError"):
        await list_log_topics(unreachable)
    with pytest.raises(TencentNotConfiguredError, match="TENCENTCLOUD_SECRET_ID"):
        await list_log_topics(TencentCloud(None, region="ap-guangzhou"))


async def test_a_cvm_role_without_keys_is_said_and_not_retried(
    cloud: tuple[TencentApi, TencentCloud], monkeypatch: pytest.MonkeyPatch
) -> None:
    """AMBIENT_TENCENTCLOUD_CVM_ROLE set off a CVM, or with a role not bound to it: the SDK
    passes over the metadata service's refusal and failed signing on None, which was read as a
    retryable network error ("the answer is not a Tencent Cloud API response"), no request
    sent. Now it is a credentials error naming the role; a role the service answers signs."""
    from tencentcloud.common.credential import CVMRoleCredential

    api, tc = cloud
    api.clusters = [{"ClusterId": "cls-abcd1234", "ClusterName": "prod"}]
    bound: dict[str, dict[str, object]] = {}
    failing = [0]  # answers the service fails with 503 first

    async def metadata(request: Request) -> Response:
        if failing[0]:
            failing[0] -= 1
            return PlainTextResponse("busy", 503)
        keys = bound.get(request.path_params["role"])
        return JSONResponse(keys) if keys else PlainTextResponse("not found", 404)

    app = Starlette(routes=[Route("/cam/security-credentials/{role}", metadata)])
    async with serve(app) as base:
        monkeypatch.setattr(
            CVMRoleCredential, "_role_endpoint", f"{base}/cam/security-credentials/"
        )
        monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", "")

        def as_role() -> TencentCloud:
            """A client of the role, its keys not yet asked for."""
            return TencentCloud(
                credential_from_env("ambient-ops-role"),
                region="ap-guangzhou",
                endpoint=tc._endpoint,
                protocol="http",
                timeout=int(HANG),
            )

        role = as_role()
        with pytest.raises(
            TencentAuthError, match="no temporary keys for the CVM role 'ambient-ops-role'"
        ):
            await list_clusters(role)
        assert api.calls == []
        bound["ambient-ops-role"] = {
            "Code": "Success",
            "TmpSecretId": SECRET_ID,
            "TmpSecretKey": SECRET_KEY,
            "Token": "role-token",
            "ExpiredTime": int(NOW.timestamp()) + 3600,
        }
        assert [c.cluster_id for c in await list_clusters(role)] == ["cls-abcd1234"]
        # A service that fails (503) before it ever gave keys may pass on the next try: not a
        # credentials error for good (a hiccup on a CVM bound right stopped its watches).
        fresh = as_role()
        failing[0] = 2  # the SDK's ask and ours
        with pytest.raises(TencentRetryableError, match=r"ClientNetworkError.*HTTP 503"):
            await list_clusters(fresh)
        assert [c.cluster_id for c in await list_clusters(fresh)] == ["cls-abcd1234"]
        # Off a CVM, the service's name does not resolve: for the user to fix.
        monkeypatch.setattr(
            CVMRoleCredential, "_role_endpoint", "http://metadata.invalid/cam/security-credentials/"
        )
        nowhere = TencentCloud(
            credential_from_env("ambient-ops-role"), region="ap-guangzhou", endpoint=tc._endpoint
        )
        with pytest.raises(TencentAuthError, match="does not resolve"):
            await list_clusters(nowhere)


@pytest.mark.parametrize(
    ("content_type", "error_status"),
    [("application/json; charset=utf-8", 200), ("application/json", 400), ("text/json", 500)],
)
async def test_an_api_error_is_an_error_however_the_answer_is_labelled(
    cloud: tuple[TencentApi, TencentCloud], content_type: str, error_status: int
) -> None:
    """Only an answer labelled exactly application/json is checked for errors by the SDK: any
    other label, or an HTTP error status, must not turn an error into an empty success."""
    api, tc = cloud
    api.content_type, api.error_status = content_type, error_status
    api.failures["SearchLog"] = ["AuthFailure.SecretIdNotFound"]
    with pytest.raises(TencentAuthError, match="SecretIdNotFound"):
        await search_logs(tc, "topic-1", "*", NOW - timedelta(hours=1), NOW)
    api.failures["DescribeAlarmHistories"] = ["RequestLimitExceeded"] * 4
    api.failures["DescribeAlertRecordHistory"] = ["UnauthorizedOperation.CamNoAuth"]
    with pytest.raises(TencentRetryableError, match="RequestLimitExceeded"):
        await list_alarms(tc, NOW - timedelta(hours=1), NOW)
    api.failures["TextToVoice"] = ["InvalidParameterValue.InvalidText"]
    with pytest.raises(TencentRequestError, match="InvalidText"):
        await text_to_voice(tc, "你好")
    api.logs = [{"time": int(NOW.timestamp() * 1000) - 1000, "json": {"msg": "ok"}}]
    found = await search_logs(tc, "topic-1", "*", NOW - timedelta(hours=1), NOW)
    assert [log.content for log in found.logs] == [{"msg": "ok"}]


async def test_an_api_error_without_its_request_id_or_message_keeps_its_code(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """The SDK reads an error's RequestId and Message as keys: an answer without one (a
    gateway's, a stand-in's) was a KeyError, then "not a Tencent Cloud API response", a
    retryable network error, its code lost."""
    api, tc = cloud
    error = '{"Response": {"Error": {"Code": "AuthFailure.SecretIdNotFound"%s}}}'
    api.raw["DescribeClusters"] = [
        (200, "application/json", (error % ', "Message": "no such id"').encode()),
        (200, "application/json", (error % "").encode()),
    ]
    for _ in range(2):
        with pytest.raises(TencentAuthError, match="SecretIdNotFound"):
            await list_clusters(tc)


async def test_an_answer_that_is_not_the_apis_is_a_retryable_error_with_its_start(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    api, tc = cloud
    page = b"<html><body>" + b"502 Bad Gateway " * 100 + b"</body></html>"
    api.raw["DescribeClusters"] = [
        (200, "text/html", page),
        (200, "application/json", b'{"Result": {}}'),
        (502, "text/html", page),
    ]
    for _ in range(3):
        with pytest.raises(TencentRetryableError, match="ServerNetworkError") as caught:
            await list_clusters(tc)
        assert len(caught.value.message) < 400
    api.clusters = [{"ClusterId": "cls-abcd1234", "ClusterName": "p", "ClusterStatus": "Running"}]
    assert [c.cluster_id for c in await list_clusters(tc)] == ["cls-abcd1234"]


async def test_an_error_status_without_an_api_answer_names_the_status_and_what_to_check(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """A gateway's empty 504 was said as "ServerNetworkError: ", nothing more."""
    api, tc = cloud
    api.raw["DescribeClusters"] = [(504, "text/plain", b""), (502, "text/html", b"<h1>Bad</h1>")]
    said = []
    for _ in range(2):
        with pytest.raises(TencentRetryableError) as caught:
            await list_clusters(tc)
        said.append(str(caught.value))
    check = "(if it lasts, check the way to the API: a proxy, AMBIENT_TENCENTCLOUD_ENDPOINT)"
    assert said == [
        f"ServerNetworkError: HTTP 504 and no Tencent Cloud API answer {check}: empty body",
        f"ServerNetworkError: HTTP 502 and no Tencent Cloud API answer {check}: <h1>Bad</h1>",
    ]


async def test_read_mostly_calls_are_cached_and_paged(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    api, tc = cloud
    api.topics = [
        {"TopicId": f"t-{i}", "TopicName": f"app-{i}", "LogsetId": "ls-1"} for i in range(250)
    ]
    first = await list_log_topics(tc)
    again = await list_log_topics(tc)
    assert len(first) == 250 and first == again
    assert [action for _, action, _ in api.calls].count(
        "DescribeTopics"
    ) == 3  # 100 + 100 + 50, once


async def test_alarms_from_monitor_and_cls_in_one_timeline(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    api, tc = cloud
    t = int((NOW - timedelta(hours=3)).timestamp())
    api.monitor_alarms = [
        {
            "PolicyName": f"cpu-high-{i}",
            "AlarmStatus": "ALARM",
            "FirstOccurTime": t + i,
            "AlarmObject": "ins-1",
            "Content": "CPU > 90%",
        }
        for i in range(130)
    ]
    api.cls_records = [
        {
            "AlarmName": "5xx burst",
            "Status": 1,
            "CreateTime": (t + 500) * 1000,
            "TopicName": "nginx",
            "Trigger": "count > 100",
        }
    ]
    alarms = (await list_alarms(tc, NOW - timedelta(hours=6), NOW)).alarms
    assert len(alarms) == 131
    assert alarms[0].source == "cls" and alarms[0].name == "5xx burst"
    # Named by its log topic's name (AlertHistoryRecord.TopicName, 监控对象名称), not its id.
    assert alarms[0].target == "nginx"
    assert {a.source for a in alarms} == {"monitor", "cls"}


async def test_alarms_one_source_refused_lists_the_others_and_names_the_refused(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """A CAM policy without cls:DescribeAlertRecordHistory (or CLS not switched on): the whole
    list failed and Cloud Monitor's alarms, read already, were lost. Now they are listed and
    the refused source is named with the API's own words; both refused, the call fails."""
    api, tc = cloud
    t = int((NOW - timedelta(hours=1)).timestamp())
    api.monitor_alarms = [{"PolicyName": "cpu-high", "AlarmStatus": "ALARM", "FirstOccurTime": t}]
    api.cls_records = [{"AlarmName": "5xx burst", "Status": 0, "CreateTime": t * 1000}]
    api.failures["DescribeAlertRecordHistory"] = ["AuthFailure.UnauthorizedOperation"]
    found = await list_alarms(tc, NOW - timedelta(hours=2), NOW)
    assert [(a.source, a.name) for a in found.alarms] == [("monitor", "cpu-high")]
    assert [(u.source, u.error) for u in found.unread] == [
        (
            "cls",
            "AuthFailure.UnauthorizedOperation: injected AuthFailure.UnauthorizedOperation"
            " (RequestId req-standin)",
        )
    ]
    api.failures["DescribeAlarmHistories"] = ["AuthFailure.UnauthorizedOperation"]
    api.failures["DescribeAlertRecordHistory"] = ["AuthFailure.UnauthorizedOperation"]
    with pytest.raises(TencentAuthError):
        await list_alarms(tc, NOW - timedelta(hours=2), NOW)


async def test_an_event_alarm_without_policy_name_or_metrics_is_listed(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """An event alarm (an instance unreachable) carries no metrics; with no policy name
    either, reading its name from the first metric failed the whole list (IndexError)."""
    api, tc = cloud
    t = int((NOW - timedelta(hours=1)).timestamp())
    api.monitor_alarms = [
        {"PolicyName": "", "AlarmType": "EVENT", "MetricsInfo": metrics, "FirstOccurTime": t + i}
        for i, metrics in enumerate(([], None))
    ]
    alarms = (await list_alarms(tc, NOW - timedelta(hours=2), NOW)).alarms
    assert [a.name for a in alarms] == ["EVENT alarm", "EVENT alarm"]


async def test_metrics_node_pool_scaling_and_tts(cloud: tuple[TencentApi, TencentCloud]) -> None:
    api, tc = cloud
    now = int(NOW.timestamp())
    api.metric_points["CPUUsage"] = [(now - 120, 40.0), (now - 60, 95.5)]
    points = await get_metric(
        tc, "QCE/CVM", "CPUUsage", {"InstanceId": "ins-1"}, NOW - timedelta(minutes=5), NOW
    )
    assert [p.value for p in points] == [40.0, 95.5]
    assert (
        await latest_metric_value(tc, "QCE/CVM", "CPUUsage", {"InstanceId": "ins-1"}, now=NOW)
        == 95.5
    )

    api.node_pools["cls-abcd1234"] = [
        {
            "NodePoolId": "np-1",
            "Name": "default",
            "LifeState": "normal",
            "DesiredNodesNum": 3,
            "MinNodesNum": 1,
            "MaxNodesNum": 10,
        }
    ]
    await send(tc, _scale("cls-abcd1234", "np-1", 5))
    assert (await list_node_pools(tc, "cls-abcd1234"))[0].desired == 5
    with pytest.raises(TencentRequestError, match="outside"):
        await send(tc, _scale("cls-abcd1234", "np-1", 50))

    text = "早上好。" + "昨天共有三次告警，其中两次已经自动修复。" * 12
    audio = await text_to_voice(tc, text)
    spoken = [p["Text"] for _, action, p in api.calls if action == "TextToVoice"]
    assert len(spoken) > 1 and all(len(s) <= 150 for s in spoken)
    assert "".join(spoken) == text
    assert audio == b"".join(base64.b64decode(base64.b64encode(f"[{s}]".encode())) for s in spoken)


async def test_an_english_text_is_spoken_as_english_in_the_references_longer_segments(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """TextToVoice read every briefing with its default PrimaryLanguage, Chinese: an English
    one's numbers and times were read by Chinese rules, in 150-character pieces where its
    reference takes 500 letters of English."""
    api, tc = cloud
    english = "Good morning. " + "Three alarms fired yesterday at 02:14, CPU at 95.5%. " * 12
    await text_to_voice(tc, english, english=True)
    await text_to_voice(tc, "早上好。昨天共有三次告警。")
    spoken = [p for _, action, p in api.calls if action == "TextToVoice"]
    languages = [p["PrimaryLanguage"] for p in spoken]
    assert languages == [2] * (len(spoken) - 1) + [1], languages
    english_parts = [p["Text"] for p in spoken[:-1]]
    assert len(english_parts) == 2 and all(150 < len(t) <= 500 for t in english_parts)
    # A character past ASCII (a Chinese service name, a dash): the stricter count holds.
    await text_to_voice(tc, english.replace("CPU", "支付 CPU"), english=True)
    mixed = [p for _, action, p in api.calls if action == "TextToVoice"][len(spoken) :]
    assert len(mixed) > 2 and all(len(p["Text"]) <= 150 for p in mixed)
    assert {p["PrimaryLanguage"] for p in mixed} == {2}


def test_tts_segments_never_exceed_the_limit() -> None:
    text = "句子" * 400 + "。短句。"
    assert all(len(s) <= 150 for s in tts_segments(text))
    assert "".join(tts_segments(text)) == text


def test_tts_segments_end_where_speech_pauses_and_never_hold_punctuation_alone() -> None:
    clauses = "，".join(f"服务{n}出现错误{12345 + n}次" for n in range(14)) + "。"
    segments = tts_segments(clauses)
    assert len(clauses) > 150 and len(segments) == 2
    assert all(len(s) <= 150 for s in segments) and segments[0].endswith("，")
    assert "".join(segments) == clauses  # cut between clauses, no number split
    # A number or a time is not a pause: 95.5, 12,345 and 9:45 are never cut.
    numbers = "CPU 在 9:45 达到 95.5%，共 12,345 次，" * 12
    assert all(not re.search(r"[\d][.,:]$", s) for s in tts_segments(numbers)), tts_segments(
        numbers
    )
    # One sentence of 150 characters and its full stop: the stop is not a segment of its own.
    assert tts_segments("字" * 150 + "。") == ["字" * 150]
    # No pause at all: cut at the limit, but not inside a number or a Latin word.
    digits = "字" * 148 + "12345" + "字" * 10
    first, rest = tts_segments(digits)
    assert first == "字" * 148 and rest.startswith("12345")


async def test_a_long_chinese_briefing_is_spoken_whole_in_segments_tts_accepts(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    _, tc = cloud
    text = (
        "，".join(f"第{n}个服务昨天报了{n * 7}次错误" for n in range(40)) + "。" + "好" * 150 + "。"
    )
    audio = (await text_to_voice(tc, text)).decode()
    spoken = "".join(part.strip("[]") for part in audio.split("]["))
    assert spoken == text.removesuffix("。")


async def test_threshold_watch_reads_tencent_monitor_and_reports_missing_credentials(
    cloud: tuple[TencentApi, TencentCloud], db: object
) -> None:
    from temporalio.testing import ActivityEnvironment

    from activities.watches import WatchActivities
    from ambient.clients.web import WebFetcher
    from ambient.domain.checks import ReadMetricInput

    api, tc = cloud
    now = int(datetime.now(UTC).timestamp())
    api.metric_points["CPUUsage"] = [(now - 30, 97.0)]
    source = {
        "type": "tencent_monitor",
        "namespace": "QCE/CVM",
        "metric": "CPUUsage",
        "dimensions": {"InstanceId": "ins-1"},
    }
    reading = await ActivityEnvironment().run(
        WatchActivities(db, WebFetcher(), tc).read_metric,
        ReadMetricInput(source=source),  # type: ignore[arg-type]
    )
    missing = await ActivityEnvironment().run(
        WatchActivities(db, WebFetcher(), TencentCloud(None, region="ap-guangzhou")).read_metric,  # type: ignore[arg-type]
        ReadMetricInput(source=source),
    )
    assert reading.value == 97.0
    assert missing.value is None and "TENCENTCLOUD_SECRET_ID" in (missing.error or "")


async def test_a_tke_workload_metric_is_read_with_describe_statistic_data(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    api, tc = cloud
    now = int(NOW.timestamp())
    api.metric_points["K8sWorkloadCpuCoreUsed"] = [(now - 120, 0.4), (now - 60, 1.8)]
    workload = {"tke_cluster_instance_id": "cls-1", "namespace": "prod", "workload_name": "api"}
    value = await latest_metric_value(
        tc, "QCE/TKE2", "K8sWorkloadCpuCoreUsed", workload, period=60, now=NOW
    )
    assert value == 1.8
    [(service, action, params)] = api.calls
    assert (service, action) == ("monitor", "DescribeStatisticData")
    assert params["Module"] == "monitor" and params["MetricNames"] == ["K8sWorkloadCpuCoreUsed"]
    assert params["Conditions"] == [
        {"Key": k, "Operator": "=", "Value": [v]} for k, v in workload.items()
    ]
    # Its periods are 60, 300, 3600 and 86400: another is refused before any call.
    with pytest.raises(TencentRequestError, match="60, 300, 3600 or 86400"):
        await latest_metric_value(
            tc, "QCE/TKE2", "K8sWorkloadCpuCoreUsed", workload, period=10, now=NOW
        )
    assert len(api.calls) == 1


async def test_a_workload_metric_whose_dimensions_match_several_series_is_refused_naming_why(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """Conditions that do not pin one resource answer one series each: the newest value of an
    arbitrary one is no reading of the workload (prod at 95 % read as staging's 3 %)."""
    api, tc = cloud
    now = int(NOW.timestamp()) // 60 * 60
    api.metric_series["K8sWorkloadCpuUsage"] = [
        ({"tke_cluster_instance_id": "cls-1", "namespace": ns, "workload_name": "api"}, points)
        for ns, points in (("prod", [(now - 60, 95.0)]), ("staging", [(now - 60, 3.0)]))
    ]
    loose = {"tke_cluster_instance_id": "cls-1", "workload_name": "api"}
    with pytest.raises(
        TencentRequestError,
        match=r"matches 2 series .*namespace=prod; namespace=staging.*add namespace",
    ):
        await latest_metric_value(tc, "QCE/TKE2", "K8sWorkloadCpuUsage", loose, now=NOW)
    pinned = {**loose, "namespace": "prod"}
    assert await latest_metric_value(tc, "QCE/TKE2", "K8sWorkloadCpuUsage", pinned, now=NOW) == 95.0


async def test_a_metric_with_no_datapoints_names_the_dimensions_to_check(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """A threshold watch whose dimension was wrong (an instance ID mistyped) failed with only
    "has no datapoints": nothing said the dimensions select no instance."""
    api, tc = cloud
    api.metric_points["CPUUsage"] = []
    with pytest.raises(TencentRequestError) as failed:
        await latest_metric_value(tc, "QCE/CVM", "CPUUsage", {"InstanceId": "ins-typo"}, now=NOW)
    assert "no datapoints" in str(failed.value) and "InstanceId=ins-typo" in str(failed.value)
    # A resource in another region reports nothing in this one: the region asked is named.
    with pytest.raises(TencentRequestError) as elsewhere:
        await latest_metric_value(
            tc, "QCE/CVM", "CPUUsage", {"InstanceId": "ins-c"}, region="ap-shanghai", now=NOW
        )
    assert "in region ap-shanghai" in str(elsewhere.value), elsewhere.value
    assert "in region ap-guangzhou" in str(failed.value), failed.value  # the client's default


@pytest.mark.parametrize(
    ("period", "age", "said"),
    [(60, timedelta(minutes=9), "9 min old"), (86400, timedelta(days=4), "4 days old")],
)
async def test_a_datapoint_long_past_its_period_is_no_current_value_saying_how_old(
    cloud: tuple[TencentApi, TencentCloud], period: int, age: timedelta, said: str
) -> None:
    """An instance that stopped reporting leaves its last datapoint in the window read (ten
    periods): a minute metric's of 9 minutes ago, a daily metric's of days ago, was taken as
    the current value, so a breach long over read as breaching and no recovery was ever seen."""
    api, tc = cloud
    dimensions = {"InstanceId": "ins-1"}
    api.metric_points["CPUUsage"] = [(int((NOW - age).timestamp()), 95.0)]
    with pytest.raises(TencentRequestError) as stale:
        await latest_metric_value(tc, "QCE/CVM", "CPUUsage", dimensions, period=period, now=NOW)
    text = str(stale.value)
    assert text.startswith("NoCurrentData: ") and said in text, text
    assert "InstanceId=ins-1" in text and (NOW - age).strftime("%Y-%m-%d %H:%M") in text, text


@pytest.mark.parametrize(
    ("period", "age"),
    [
        (10, timedelta(minutes=2)),
        (10, timedelta(minutes=5)),
        (60, timedelta(minutes=5)),
        (300, timedelta(minutes=15)),
        (86400, timedelta(days=2)),
    ],
)
async def test_a_datapoint_as_late_as_cloud_monitor_publishes_is_the_current_value(
    cloud: tuple[TencentApi, TencentCloud], period: int, age: timedelta
) -> None:
    """Cloud Monitor publishes a datapoint minutes after its period: one that late is current.
    At a 10 s period the window read was ten periods (100 s): such a datapoint
    was outside it, and the reading failed "no datapoints", blaming the dimensions."""
    api, tc = cloud
    api.metric_points["CPUUsage"] = [(int((NOW - age).timestamp()), 95.0)]
    dimensions = {"InstanceId": "ins-1"}
    assert (
        await latest_metric_value(tc, "QCE/CVM", "CPUUsage", dimensions, period=period, now=NOW)
        == 95.0
    )


@pytest.mark.parametrize("odd", [float("nan"), float("inf"), float("-inf")])
async def test_a_datapoint_that_is_no_finite_number_is_no_datapoint(
    cloud: tuple[TencentApi, TencentCloud], odd: float
) -> None:
    """The API's JSON may say NaN (the SDK parses it): as the newest value it breached no line,
    so a watch in breach reported a recovery, and its status could not be sent as JSON."""
    api, tc = cloud
    now = int(NOW.timestamp())
    api.metric_points["CPUUsage"] = [(now - 120, 95.5), (now - 60, odd)]
    dimensions = {"InstanceId": "ins-1"}
    assert await latest_metric_value(tc, "QCE/CVM", "CPUUsage", dimensions, now=NOW) == 95.5
    points = await get_metric(
        tc, "QCE/CVM", "CPUUsage", dimensions, NOW - timedelta(minutes=5), NOW
    )
    assert [p.value for p in points] == [95.5]
    api.metric_points["CPUUsage"] = [(now - 60, odd)]
    with pytest.raises(TencentRequestError, match="no datapoints"):
        await latest_metric_value(tc, "QCE/CVM", "CPUUsage", dimensions, now=NOW)


def _series(dimensions: dict[str, str], *points: tuple[int, float]) -> dict[str, Any]:
    """A GetMonitorData series as the API answers it: its dimensions, its datapoints."""
    return {
        "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
        "Timestamps": [t for t, _ in points],
        "Values": [v for _, v in points],
    }


async def test_a_metric_value_is_read_from_the_series_of_the_instance_asked_for_alone(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """GetMonitorData answers one series per instance: every series was read as one, so
    another instance's datapoint (or one of several series the dimensions match) was taken
    as the value of the instance watched."""
    api, tc = cloud
    now = int(NOW.timestamp()) // 60 * 60
    ours, other = {"InstanceId": "ins-ours"}, {"InstanceId": "ins-other"}

    def answers(*series: dict[str, Any]) -> tuple[int, str, bytes]:
        body = {"Response": {"MetricName": "CPUUsage", "Period": 60, "DataPoints": list(series)}}
        return 200, "application/json", json.dumps(body).encode()

    api.raw["GetMonitorData"] = [
        answers(_series(other, (now, 99.0)), _series(ours, (now - 60, 10.0))),
        answers(_series(other, (now, 99.0)), _series(ours)),
    ]
    assert await latest_metric_value(tc, "QCE/CVM", "CPUUsage", ours, now=NOW) == 10.0
    with pytest.raises(TencentRequestError, match="no datapoints"):
        await latest_metric_value(tc, "QCE/CVM", "CPUUsage", ours, now=NOW)

    vip = {"vip": "10.0.0.1"}
    api.raw["GetMonitorData"] = [
        answers(_series({**vip, "port": "80"}, (now, 1.0)), _series({**vip, "port": "443"}))
    ]
    with pytest.raises(TencentRequestError) as refused:
        await latest_metric_value(tc, "QCE/LB_PUBLIC", "ClientConnum", vip, now=NOW)
    assert refused.value.message == (
        "ClientConnum with these dimensions matches 2 series (port=80; port=443); "
        "add port that names one"
    )
    # The one series of the one instance asked for is its value, whatever form its dimensions
    # came back in (a value written in another case was read as no datapoints).
    api.raw["GetMonitorData"] = [answers(_series({"protocol": "http"}, (now, 42.0)))]
    asked = {"protocol": "HTTP", "vip": "10.0.0.1"}
    assert await latest_metric_value(tc, "QCE/LB_PUBLIC", "ClientConnum", asked, now=NOW) == 42.0


@pytest.mark.parametrize("region", ["广州", "ap-guangzhou\r\nX-Injected: 1", "ap guangzhou"])
async def test_a_region_out_of_format_is_refused_before_any_call_and_not_retried(
    cloud: tuple[TencentApi, TencentCloud], region: str
) -> None:
    api, tc = cloud
    with pytest.raises(TencentRequestError) as refused:
        await list_clusters(tc, region=region)
    assert not isinstance(refused.value, TencentRetryableError)
    assert refused.value.code == "InvalidParameterValue.Region"
    assert "e.g. ap-guangzhou" in refused.value.message
    assert api.calls == []


async def test_a_three_day_minute_metric_is_read_whole_in_requests_the_api_accepts(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    # The API reference (GetMonitorData): "单请求的数据点数限制为1440个"; 3 days of minutes are
    # 4320 points: split into requests of at most 1440, every point read once.
    api, tc = cloud
    # Datapoints lie on minute boundaries; the window starts and ends between two.
    start = NOW.replace(second=30) - timedelta(days=3)
    end = NOW.replace(second=30)
    stamps = range(int(start.timestamp()) + 30, int(end.timestamp()), 60)
    outside = [(stamps[0] - 60, 0.0), (stamps[-1] + 60, 0.0)]
    api.metric_points["CPUUsage"] = [*outside, *((t, 1.0) for t in stamps)]
    days = await get_metric(tc, "QCE/CVM", "CPUUsage", {"InstanceId": "ins-1"}, start, end)
    assert [int(p.time.timestamp()) for p in days] == list(stamps)  # none lost between windows
    assert {p.value for p in days} == {1.0}
    requests = [p for _, action, p in api.calls if action == "GetMonitorData"]
    assert len(requests) == len(api.calls) == 4
    for params in requests:
        span = datetime.fromisoformat(params["EndTime"]) - datetime.fromisoformat(
            params["StartTime"]
        )
        assert span.total_seconds() // 60 <= 1440


async def test_a_metric_window_past_7200_datapoints_is_refused_with_the_period_that_fits(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    api, tc = cloud
    api.metric_points["CPUUsage"] = [(int(NOW.timestamp()) - 60, 40.0)]
    week = NOW - timedelta(days=7)
    with pytest.raises(TencentRequestError) as refused:
        await get_metric(tc, "QCE/CVM", "CPUUsage", {"InstanceId": "ins-1"}, week, NOW)
    assert not isinstance(refused.value, TencentRetryableError)
    assert "10080 datapoints" in refused.value.message and "period=300" in refused.value.message
    with pytest.raises(TencentRequestError, match="period"):
        await get_metric(tc, "QCE/CVM", "CPUUsage", {"InstanceId": "ins-1"}, week, NOW, period=0)
    assert api.calls == []
    # The stand-in holds the documented limit too: the request itself is refused.
    params = {
        "Namespace": "QCE/CVM",
        "MetricName": "CPUUsage",
        "Period": 60,
        "StartTime": week.isoformat(),
        "EndTime": NOW.isoformat(),
        "Instances": [{"Dimensions": [{"Name": "InstanceId", "Value": "ins-1"}]}],
    }
    with pytest.raises(TencentRequestError, match="1440"):
        await tc.call("monitor", "GetMonitorData", params)
    hours = await get_metric(
        tc, "QCE/CVM", "CPUUsage", {"InstanceId": "ins-1"}, week, NOW, period=3600
    )
    assert [p.value for p in hours] == [40.0]


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        # TKE documents these InternalError codes for causes a retry cannot fix.
        ("InternalError.CamNoAuth", TencentAuthError),
        ("InternalError.AccountUserNotAuthenticated", TencentAuthError),
        ("InternalError.ClusterNotFound", TencentNotFoundError),
        ("InternalError.Param", TencentRequestError),
        ("InternalError.QuotaMaxNodLimit", TencentRequestError),
        ("InternalError.ClusterUpgradeNodeVersion", TencentRequestError),  # 集群节点版本过低
        # And under FailedOperation: 无该接口CAM权限, 子账户RBAC权限不足.
        ("FailedOperation.CamNoAuth", TencentAuthError),
        ("FailedOperation.RBACForbidden", TencentAuthError),
        # The rest stay worth a retry.
        ("InternalError", TencentRetryableError),
        ("InternalError.UnexpectedInternal", TencentRetryableError),
    ],
)
async def test_tke_internal_errors_that_name_a_permanent_cause_are_not_retried(
    cloud: tuple[TencentApi, TencentCloud], code: str, kind: type[Exception]
) -> None:
    api, tc = cloud
    api.failures["DescribeClusterNodePools"] = [code]
    with pytest.raises(kind) as err:
        await list_node_pools(tc, "cls-abcd1234")
    assert type(err.value) is kind and err.value.code == code


async def test_tts_cut_off_by_its_callers_bound_leaves_its_thread_free(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """A spoken briefing's TTS cut off by what its caller listens (TextToVoice stuck) kept its
    SDK thread until the request's own timeout (30 s), the caller long gone: a few such
    greetings in a row held every thread of the process's pool, and the next one's request
    never went out. Now a request cut off is timed out with its caller, its thread free."""
    api, tc = cloud
    arrived, released = asyncio.Event(), asyncio.Event()
    api.held["TextToVoice"] = (arrived, released)  # stuck until the test ends
    # One more than the threads of asyncio's default pool (ThreadPoolExecutor's default).
    calls = min(32, (os.cpu_count() or 1) + 4) + 1
    try:
        for _ in range(calls):
            with pytest.raises(TimeoutError):
                async with calls_within(0.5):
                    await text_to_voice(tc, "你好")
        asked = [p for _, action, p in api.calls if action == "TextToVoice"]
    finally:
        released.set()
    assert len(asked) == calls, f"{len(asked)} of {calls} cut-off requests went out"


@pytest.mark.parametrize(
    "code",
    ["UnsupportedOperation.AuthorizationFailed", "UnsupportedOperation.AuthorizationExpired"],
)
async def test_tts_refusing_the_accounts_authorisation_is_a_credentials_error(
    cloud: tuple[TencentApi, TencentCloud], code: str
) -> None:
    """TTS answers an authentication that failed or expired (tts errorcodes: 鉴权失败, 鉴权已过期)
    under UnsupportedOperation: the keys or their access must change, as for AuthFailure."""
    api, tc = cloud
    api.failures["TextToVoice"] = [code]
    with pytest.raises(TencentAuthError) as refused:
        await text_to_voice(tc, "你好")
    assert refused.value.code == code and api.failures["TextToVoice"] == []


@pytest.mark.parametrize(
    "code",
    [
        "FailedOperation.DataQueryFailed",
        "FailedOperation.DbQueryFailed",
        "FailedOperation.DruidQueryFailed",
        "FailedOperation.InternalError",
        "FailedOperation.DoHTTPTransferFailed",
        "LimitExceeded.LimitedAccess",
    ],
)
async def test_a_monitor_read_whose_back_end_failed_is_worth_reading_again(
    cloud: tuple[TencentApi, TencentCloud], code: str
) -> None:
    """Cloud Monitor's error codes for its own query back ends and its rate limit (its
    errorcodes: 数据查询失败, 内部服务错误, 后端服务超时, 请求受限 ... 限频): retryable, so a
    verification reads again instead of taking it as the metric's answer (the rate limit
    after the client's own tries, backing off)."""
    api, tc = cloud
    api.failures["GetMonitorData"] = [code] * (LIMIT_RETRIES + 1)
    with pytest.raises(TencentRetryableError) as failed:
        await get_metric(
            tc, "QCE/CVM", "CPUUsage", {"InstanceId": "ins-1"}, NOW - timedelta(minutes=5), NOW
        )
    assert failed.value.code == code


@pytest.mark.parametrize(
    "code", ["RequestLimitExceeded.UinLimitExceeded", "RequestLimitExceeded.IPLimitExceeded"]
)
async def test_a_rate_limit_of_a_named_kind_is_said_busy_as_the_plain_one_is(
    cloud: tuple[TencentApi, TencentCloud], code: str
) -> None:
    """The common rate limit's kinds (RequestLimitExceeded.UinLimitExceeded, .IPLimitExceeded:
    per account, per address) were backed off as rate limits but said "unavailable ... try
    again", as an outage is: too many requests at once, as for the plain one."""
    api, tc = cloud
    api.failures["GetMonitorData"] = [code] * (LIMIT_RETRIES + 1)
    with pytest.raises(TencentRetryableError) as failed:
        await get_metric(
            tc, "QCE/CVM", "CPUUsage", {"InstanceId": "ins-1"}, NOW - timedelta(minutes=5), NOW
        )
    said = failure(failed.value)
    assert said.kind == "unavailable", said
    assert str(said).startswith(
        f"Tencent Cloud is busy for GetMonitorData ({code}) (too many requests at once); "
    ), str(said)


async def test_an_api_that_cannot_be_reached_names_the_way_to_check_not_a_retry_alone() -> None:
    """A wrong AMBIENT_TENCENTCLOUD_ENDPOINT (refused, or a name that does not resolve) was
    said "Tencent Cloud is unavailable for DescribeClusters (ClientNetworkError); try again",
    the same after every retry: what to check is said too."""
    from tests.support.servers import free_port

    closed = standin_tencent(f"http://127.0.0.1:{free_port()}", backoff=0.01)
    with pytest.raises(TencentRetryableError) as failed:
        await list_clusters(closed)
    said = failure(failed.value)
    assert said.kind == "unavailable", said
    assert str(said).startswith(
        "Tencent Cloud's API could not be reached for DescribeClusters (ClientNetworkError); "
        "try again, and if it lasts, check the way to it (DNS, a proxy, "
        "AMBIENT_TENCENTCLOUD_ENDPOINT)."
    ), str(said)
    # Sent and its answer lost (a read timed out), or the CVM role's metadata service not
    # answering: no endpoint to check, "unavailable; try again" as before.
    lost = TencentRetryableError("ClientNetworkError", "Read timed out")
    lost.unanswered = True
    role = TencentRetryableError(
        "ClientNetworkError", "no temporary keys for the CVM role 'ops': metadata: timed out"
    )
    for other in (lost, role):
        assert "AMBIENT_TENCENTCLOUD_ENDPOINT" not in str(failure(other, "cvm", "X")), other


async def test_a_log_search_with_no_room_or_a_reversed_window_is_refused_before_any_call(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    api, tc = cloud
    api.logs = [{"time": int(NOW.timestamp() * 1000) - 1000, "json": {"msg": "x"}}]
    hour_ago = NOW - timedelta(hours=1)
    with pytest.raises(TencentRequestError, match="limit") as no_room:
        await search_logs(tc, "topic-1", "*", hour_ago, NOW, limit=0)
    with pytest.raises(TencentRequestError, match="after its end") as reversed_window:
        await search_logs(tc, "topic-1", "*", NOW, hour_ago)
    assert not isinstance(no_room.value, TencentRetryableError)
    assert not isinstance(reversed_window.value, TencentRetryableError)
    assert api.calls == []


async def test_a_metric_without_dimensions_is_refused_before_any_call(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    api, tc = cloud
    api.metric_points["CPUUsage"] = [(int(NOW.timestamp()) - 60, 40.0)]
    with pytest.raises(TencentRequestError, match="InstanceId") as refused:
        await get_metric(tc, "QCE/CVM", "CPUUsage", {}, NOW - timedelta(minutes=5), NOW)
    assert not isinstance(refused.value, TencentRetryableError)
    assert api.calls == []
    # The stand-in, as the API reference: each instance names its dimensions.
    params = {
        "Namespace": "QCE/CVM",
        "MetricName": "CPUUsage",
        "Period": 60,
        "StartTime": (NOW - timedelta(minutes=5)).isoformat(),
        "EndTime": NOW.isoformat(),
        "Instances": [{"Dimensions": []}],
    }
    with pytest.raises(TencentRequestError, match="dimensions"):
        await tc.call("monitor", "GetMonitorData", params)


async def test_every_cluster_is_listed_however_many_pages_they_take(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    api, tc = cloud
    api.clusters = [
        {"ClusterId": f"cls-{i:08d}", "ClusterName": f"c{i}", "ClusterStatus": "Running"}
        for i in range(620)
    ]
    clusters = await list_clusters(tc)
    assert [c.cluster_id for c in clusters] == [c["ClusterId"] for c in api.clusters]
    pages = [(action, params["Offset"], params["Limit"]) for _, action, params in api.calls]
    assert pages == [("DescribeClusters", offset, 100) for offset in range(0, 700, 100)]


async def test_every_log_topic_is_listed_past_a_thousand(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    api, tc = cloud
    api.topics = [
        {"TopicId": f"t-{i}", "TopicName": f"app-{i}", "LogsetId": "ls-1"} for i in range(1250)
    ]
    topics = await list_log_topics(tc)
    assert [t.topic_id for t in topics] == [t["TopicId"] for t in api.topics]
    pages = [(action, params["Offset"], params["Limit"]) for _, action, params in api.calls]
    assert pages == [("DescribeTopics", offset, 100) for offset in range(0, 1300, 100)]


async def test_every_cls_alert_record_of_the_window_is_read_past_a_thousand(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    api, tc = cloud
    t = int((NOW - timedelta(hours=20)).timestamp())
    # A noisy alarm firing every minute, then, last in the history, the one still open.
    api.cls_records = [
        {
            "AlarmName": "5xx burst" if i < 1199 else "checkout down",
            "Status": 1 if i < 1199 else 0,
            "CreateTime": (t + 60 * i) * 1000,
            "TopicName": "nginx",
            "Trigger": "count > 100",
        }
        for i in range(1200)
    ]
    alarms = (await list_alarms(tc, NOW - timedelta(hours=24), NOW)).alarms
    assert len(alarms) == 1200
    assert (alarms[0].name, alarms[0].status) == ("checkout down", "ALARM")


async def test_a_topic_just_created_is_in_the_next_topic_list(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    api, tc = cloud
    api.logsets = [{"LogsetId": "logset-app", "LogsetName": "app"}]
    api.topics = [{"TopicId": "t-old", "TopicName": "old", "LogsetId": "logset-app"}]
    assert [t.name for t in await list_log_topics(tc)] == ["old"]
    created = await send(
        tc,
        CloudRequest(
            product="cls",
            action="CreateTopic",
            params={"LogsetId": "logset-app", "TopicName": "nginx"},
        ),
    )
    # Not the list cached before the create: the user would think it failed and create again.
    listed = await list_log_topics(tc)
    assert [(t.topic_id, t.name) for t in listed] == [("t-old", "old"), (created, "nginx")]


async def test_a_sql_search_answers_its_rows_as_the_api_returns_them(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    api, tc = cloud
    base = int((NOW - timedelta(minutes=30)).timestamp() * 1000)
    api.logs = [
        {"time": base + i, "json": {"level": "ERROR" if i < 2 else "INFO"}} for i in range(5)
    ]
    sql = await search_logs(
        tc, "topic-1", "* | select level, count(*) group by level", NOW - timedelta(hours=1), NOW
    )
    assert sql.complete and sql.analysis == [
        {"level": "ERROR", "count": 2},
        {"level": "INFO", "count": 3},
    ]


async def test_a_sql_search_cut_at_its_row_limit_does_not_say_it_is_complete(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    api, tc = cloud
    base = int((NOW - timedelta(minutes=30)).timestamp() * 1000)
    api.logs = [{"time": base + i, "json": {"level": f"L{i:03d}"}} for i in range(150)]
    window = (NOW - timedelta(hours=1), NOW)
    # CLS answers an SQL's first 100 rows unless it names a limit: 150 groups, 100 rows.
    cut = await search_logs(tc, "topic-1", "* | select level, count(*) group by level", *window)
    assert len(cut.analysis) == 100 and cut.complete is False
    limited = await search_logs(
        tc, "topic-1", "* | select level, count(*) group by level limit 120", *window
    )
    assert len(limited.analysis) == 120 and limited.complete is False
    whole = await search_logs(
        tc, "topic-1", "* | SELECT level, count(*) GROUP BY level LIMIT 1000", *window
    )
    assert len(whole.analysis) == 150 and whole.complete is True


async def test_a_log_search_over_the_topics_concurrency_limit_backs_off_like_a_rate_limit(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    api, tc = cloud
    api.logs = [{"time": int((NOW - timedelta(minutes=5)).timestamp() * 1000), "json": {"a": 1}}]
    # CLS allows 15 concurrent searches per topic; others (the console, another worker) held them.
    api.failures["SearchLog"] = ["LimitExceeded.LogSearch"] * 2
    found = await search_logs(tc, "topic-1", "*", NOW - timedelta(hours=1), NOW)
    assert [r.content for r in found.logs] == [{"a": 1}]
    api.failures["SearchLog"] = ["LimitExceeded.LogSearch"] * 5
    with pytest.raises(TencentRetryableError, match=r"LimitExceeded\.LogSearch"):
        await search_logs(tc, "topic-1", "*", NOW - timedelta(hours=1), NOW)


async def test_cls_alert_records_say_their_status_and_level_as_monitor_alarms_do(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    api, tc = cloud
    ms = int((NOW - timedelta(hours=1)).timestamp() * 1000)
    # AlertHistoryRecord: Status 0 not recovered, 1 recovered, 2 expired; AlarmLevel 0 Warn,
    # 1 Info, 2 Critical.
    api.cls_records = [
        {"AlarmName": name, "Status": status, "AlarmLevel": level, "CreateTime": ms - i}
        for i, (name, status, level) in enumerate(
            [("checkout down", 0, 2), ("5xx burst", 1, 0), ("old policy", 2, 1)]
        )
    ]
    alarms = (await list_alarms(tc, NOW - timedelta(hours=2), NOW)).alarms
    assert [(a.name, a.status, a.level) for a in alarms] == [
        ("checkout down", "ALARM", "Critical"),
        ("5xx burst", "OK", "Warn"),
        ("old policy", "NO_CONF", "Info"),
    ]


async def test_a_page_of_logs_past_the_size_cls_answers_is_read_in_smaller_pages(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """CLS refuses a SearchLog answer over 20 MB (LimitExceeded.SearchResultTooLarge): a day of
    large log lines, read 1000 a page, failed the briefing's log section for good, and the
    page size was not the user's to change. Now the search is read again in smaller pages."""
    api, tc = cloud
    base = int((NOW - timedelta(minutes=30)).timestamp() * 1000)
    api.logs = [{"time": base + i, "json": {"trace": "x" * 1000, "n": i}} for i in range(1200)]
    api.search_result_bytes = 300 * 1020  # about 300 of these lines a page
    found = await search_logs(tc, "topic-1", "*", NOW - timedelta(hours=1), NOW, limit=1200)
    assert found.complete and len(found.logs) == 1200
    assert sorted(r.content["n"] for r in found.logs) == list(range(1200))  # type: ignore[index]
    # One line alone too large: nothing smaller to ask, said as what to change.
    api.search_result_bytes = 10
    with pytest.raises(TencentRequestError, match="narrow the query or the time range"):
        await search_logs(tc, "topic-1", "*", NOW - timedelta(hours=1), NOW)
    # Past the search's memory at CLS (检索内存超限): no page size helps; raised as answered,
    # said (failure()) as a wait, or a narrower search, not as a quota to raise.
    api.failures["SearchLog"] = ["LimitExceeded.SearchResources"]
    with pytest.raises(TencentRequestError) as refused:
        await search_logs(tc, "topic-1", "*", NOW - timedelta(hours=1), NOW)
    said = told(refused.value)
    assert "ask again in a few minutes, or narrow the query" in said and "quota" not in said


async def test_a_pipe_inside_quotes_is_the_searchs_value_not_the_start_of_its_sql(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """CQL reads a `|` inside double quotes as the value's (`msg:"a|b"`); the search took any
    `|` for the start of an SQL analysis, and a page of it over 20 MB was refused ("narrow the
    query or the time range") instead of read in smaller pages, as a search without one is."""
    api, tc = cloud
    base = int((NOW - timedelta(minutes=30)).timestamp() * 1000)
    api.logs = [
        {
            "time": base + i,
            "json": {"level": "ERROR" if i % 2 else "INFO", "msg": "a|b" if i % 2 else "c", "n": i}
            | {"trace": "x" * 1000},
        }
        for i in range(1200)
    ]
    api.search_result_bytes = 300 * 1040  # about 300 of these lines a page
    window = NOW - timedelta(hours=1), NOW
    found = await search_logs(tc, "topic-1", 'msg:"a|b"', *window, limit=1000)
    assert found.complete and not found.analysis
    assert sorted(r.content["n"] for r in found.logs) == list(range(1, 1200, 2))  # type: ignore[index]
    # The `|` after the quotes starts the SQL: its `limit`, none here, is read after that one
    # (read after the first, "limit 1" said these two rows of 100 allowed were cut).
    query = 'msg:"a|limit 1" | select level, count(*) group by level'
    sql = await search_logs(tc, "topic-1", query, *window)
    assert sql.analysis == [{"level": "ERROR", "count": 600}, {"level": "INFO", "count": 600}]
    assert sql.complete


async def test_a_topic_whose_cls_does_not_take_cql_says_what_to_do(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """SearchLog's OperationDenied.NewSyntaxNotSupported (cls errorcodes: 不支持新语法): CLS does
    not take CQL, the syntax every search is sent in (QuerySyntax 1), there. It was said as
    "rejected a parameter of SearchLog: 不支持新语法", no parameter the user gave, nothing to do."""
    api, tc = cloud
    api.failures["SearchLog"] = ["OperationDenied.NewSyntaxNotSupported"]
    api.failure_words["SearchLog"] = "不支持新语法"
    with pytest.raises(TencentRequestError) as refused:
        await search_logs(tc, "topic-1", "level:ERROR", NOW - timedelta(hours=1), NOW)
    assert told(refused.value) == (
        "OperationDenied.NewSyntaxNotSupported: CLS does not take CQL, the syntax this search "
        "is sent in (SearchLog's QuerySyntax 1), "
        "for this topic or in its region (不支持新语法): search the topic in the CLS console, "
        "which offers the Lucene syntax, or search a topic in a region whose CLS takes CQL "
        "(RequestId req-standin)"
    )
    assert [p["QuerySyntax"] for _, action, p in api.calls if action == "SearchLog"] == [1]


@pytest.mark.parametrize("code", ["FailedOperation.SearchTimeout", "FailedOperation.Timeout"])
async def test_a_log_search_that_timed_out_at_cls_may_be_retried(
    cloud: tuple[TencentApi, TencentCloud], code: str
) -> None:
    api, tc = cloud
    # cls errorcodes: 搜索超时 / 操作超时 — the same search may pass on the next try.
    api.failures["SearchLog"] = [code]
    with pytest.raises(TencentRetryableError, match=code.replace(".", r"\.")):
        await search_logs(tc, "topic-1", "*", NOW - timedelta(hours=1), NOW)


@pytest.mark.parametrize(
    ("product", "action", "params"),
    [
        (
            "monitor",
            "DescribeAlarmHistories",
            {"Module": "monitor", "PageNumber": 1, "PageSize": 101},
        ),
        ("cls", "DescribeTopics", {"Offset": 0, "Limit": 101}),
        ("tke", "DescribeClusters", {"Offset": 0, "Limit": 101}),
    ],
)
async def test_the_stand_in_refuses_pages_past_the_documented_100(
    cloud: tuple[TencentApi, TencentCloud], product: str, action: str, params: dict[str, object]
) -> None:
    # The product pages these lists 100 at a time (list_alarms, TencentCloud.paged); the
    # stand-in holds the documented maximum so a larger page would fail here as it would there.
    _, tc = cloud
    with pytest.raises(TencentRequestError, match="InvalidParameterValue"):
        await tc.call(product, action, params)


async def test_a_day_of_tke_minutes_is_read_whole_in_windows_the_api_accepts(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    # The API reference (DescribeStatisticData, Period): at 60 s, EndTime-StartTime < 12 hours.
    api, tc = cloud
    start = NOW.replace(second=30) - timedelta(days=1)
    end = NOW.replace(second=30)
    stamps = range(int(start.timestamp()) + 30, int(end.timestamp()), 60)
    api.metric_points["K8sWorkloadCpuCoreUsed"] = [(t, 1.0) for t in stamps]
    workload = {"tke_cluster_instance_id": "cls-1", "namespace": "prod", "workload_name": "api"}
    points = await get_metric(tc, "QCE/TKE2", "K8sWorkloadCpuCoreUsed", workload, start, end)
    assert [int(p.time.timestamp()) for p in points] == list(stamps)
    assert len(api.calls) == 3
    for _, action, params in api.calls:
        span = datetime.fromisoformat(params["EndTime"]) - datetime.fromisoformat(
            params["StartTime"]
        )
        assert action == "DescribeStatisticData" and span < timedelta(hours=12)


async def test_a_tke_metric_older_than_its_period_keeps_is_refused_naming_the_period_that_does(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    # The API reference (DescribeStatisticData, Period): "60s：... StartTime距当前时间不能超过15天；
    # 300s：... 31天；3600s：... 93天；86400s：... 186天".
    api, tc = cloud
    workload = {"tke_cluster_instance_id": "cls-1", "namespace": "prod", "workload_name": "api"}
    start, end = NOW - timedelta(days=16), NOW - timedelta(days=16) + timedelta(hours=1)
    api.metric_points["K8sWorkloadCpuCoreUsed"] = [(int(start.timestamp()) + 600, 1.5)]
    with pytest.raises(TencentRequestError) as refused:
        await get_metric(tc, "QCE/TKE2", "K8sWorkloadCpuCoreUsed", workload, start, end)
    assert not isinstance(refused.value, TencentRetryableError)
    assert "15 days" in refused.value.message and "period=300" in refused.value.message
    assert api.calls == []
    # The stand-in holds the documented limit too: the request itself is refused.
    params = {
        "Module": "monitor",
        "Namespace": "QCE/TKE2",
        "MetricNames": ["K8sWorkloadCpuCoreUsed"],
        "Conditions": [{"Key": k, "Operator": "=", "Value": [v]} for k, v in workload.items()],
        "Period": 60,
        "StartTime": start.isoformat(),
        "EndTime": end.isoformat(),
    }
    with pytest.raises(TencentRequestError) as at_the_api:
        await tc.call("monitor", "DescribeStatisticData", params)
    assert at_the_api.value.code == "InvalidParameterValue"
    # At the period that keeps it, the same window is read.
    points = await get_metric(
        tc, "QCE/TKE2", "K8sWorkloadCpuCoreUsed", workload, start, end, period=300
    )
    assert [p.value for p in points] == [1.5]


@pytest.mark.parametrize(
    ("instances", "days"),
    [(1, 2), (11, 0.5)],
    ids=["past-1440-datapoints", "past-10-instances"],
)
async def test_the_stand_in_refuses_a_monitor_read_past_its_limits_with_the_documented_code(
    cloud: tuple[TencentApi, TencentCloud], instances: int, days: float
) -> None:
    # The API reference (GetMonitorData): 10 instances and 1440 datapoints per request; its
    # error codes are FailedOperation.ErrNotOpen, FailedOperation.ErrOwed, InternalError,
    # InvalidParameterValue and UnsupportedOperation (no InvalidParameter).
    api, tc = cloud
    api.metric_points["CPUUsage"] = [(int(NOW.timestamp()) - 60, 40.0)]
    params = {
        "Namespace": "QCE/CVM",
        "MetricName": "CPUUsage",
        "Period": 60,
        "StartTime": (NOW - timedelta(days=days)).isoformat(),
        "EndTime": NOW.isoformat(),
        "Instances": [
            {"Dimensions": [{"Name": "InstanceId", "Value": f"ins-{i}"}]} for i in range(instances)
        ],
    }
    with pytest.raises(TencentRequestError) as refused:
        await tc.call("monitor", "GetMonitorData", params)
    assert refused.value.code == "InvalidParameterValue"


@pytest.mark.parametrize(
    ("product", "action", "params", "named"),
    [
        ("cls", "DescribeTopics", {"Offset": 0, "Limit": 10, "Page": 2}, "Page"),
        (
            "cls",
            "DescribeTopics",
            {"Filters": [{"Key": "topicName", "Values": ["app"], "Exact": True}]},
            "Exact",
        ),
        ("monitor", "DescribeAlarmHistories", {"Module": "monitor", "Limit": 10}, "Limit"),
    ],
    ids=["top-level", "nested", "another-products-paging"],
)
async def test_the_stand_in_refuses_a_parameter_the_action_does_not_define(
    cloud: tuple[TencentApi, TencentCloud],
    product: str,
    action: str,
    params: dict[str, object],
    named: str,
) -> None:
    # Common error codes: UnknownParameter, an undefined parameter is refused, not ignored (a
    # misspelt or wrongly placed one would otherwise pass here and be refused there).
    _, tc = cloud
    with pytest.raises(TencentRequestError) as refused:
        await tc.call(product, action, params)
    assert refused.value.code == "UnknownParameter"
    assert f"`{named}`" in refused.value.message


@pytest.mark.parametrize(
    ("action", "params", "named"),
    [
        ("DescribeTopics", {"Offset": 0, "Limit": "100"}, "Limit"),
        (
            "DescribeTopics",
            {"Filters": [{"Key": "topicName", "Values": "app"}]},
            "Filters.0.Values",
        ),
        ("DescribeLogsets", {"Offset": 0, "Limit": True}, "Limit"),
    ],
    ids=["string-for-integer", "string-for-array", "boolean-for-integer"],
)
async def test_the_stand_in_refuses_a_value_not_of_the_type_the_action_defines(
    cloud: tuple[TencentApi, TencentCloud], action: str, params: dict[str, object], named: str
) -> None:
    # The API reads each field as its reference types it (Integer, String, Array of ...): "100"
    # for an Integer is refused, where a lax stand-in would read it as 100.
    _, tc = cloud
    with pytest.raises(TencentRequestError) as refused:
        await tc.call("cls", action, params)
    assert refused.value.code == "InvalidParameter"
    assert f"`{named}`" in refused.value.message


async def test_a_request_signed_by_a_clock_six_minutes_slow_is_refused_as_the_clocks_fault(
    cloud: tuple[TencentApi, TencentCloud], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Common error codes: AuthFailure.SignatureExpire, X-TC-Timestamp more than five minutes
    # from the server's time; the keys and the signature are right.
    import time as real_time
    from types import SimpleNamespace

    from tencentcloud.common import abstract_client

    from ambient.clients.tencent.errors import TencentClockError

    _, tc = cloud
    slow = SimpleNamespace(time=lambda: real_time.time() - 360)
    monkeypatch.setattr(abstract_client, "time", slow)
    with pytest.raises(TencentClockError, match="clock"):
        await list_clusters(tc)
    monkeypatch.setattr(abstract_client, "time", real_time)
    assert await list_clusters(tc) == []


async def test_a_service_temporarily_unavailable_is_worth_asking_again(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    # Common error codes: ServiceUnavailable, 当前服务暂时不可用 (every product answers it).
    api, tc = cloud
    api.failures["DescribeClusters"] = ["ServiceUnavailable"]
    with pytest.raises(TencentRetryableError, match="ServiceUnavailable"):
        await list_clusters(tc)
    assert await list_clusters(tc) == []


async def test_every_documented_rate_limit_of_the_actions_called_backs_off_and_then_answers(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    # CLS errorcodes: FailedOperation.ReadQpsLimit 读qps超过限制, FailedOperation.TagQpsLimit
    # 请求标签服务限频; TTS errorcodes: LimitExceeded.AccessLimit 请求超过限制频率. Each was
    # read as a request that can never work: nothing retried it.
    api, tc = cloud
    api.failures["DescribeTopics"] = ["FailedOperation.ReadQpsLimit"] * 2
    assert await list_log_topics(tc) == []
    api.failures["TextToVoice"] = ["LimitExceeded.AccessLimit"]
    assert await text_to_voice(tc, "你好") == b"[\xe4\xbd\xa0\xe5\xa5\xbd]"
    api.failures["CreateLogset"] = ["FailedOperation.TagQpsLimit"]
    request = CloudRequest(product="cls", action="CreateLogset", params={"LogsetName": "ops"})
    assert await send(tc, request) == api.logsets[0]["LogsetId"]
    # Past the retries, still a passing failure: a later read may work.
    api.failures["DescribeTopics"] = ["FailedOperation.ReadQpsLimit"] * 4
    with pytest.raises(TencentRetryableError, match="ReadQpsLimit"):
        await list_log_topics(tc, region="ap-shanghai")


SEARCH = {"TopicId": "topic-1", "From": 0, "To": 1, "QueryString": "*"}


@pytest.mark.parametrize(
    ("product", "action", "params", "code"),
    [
        # cls errorcodes: ResourceNotFound.TopicNotExist (日志主题不存在).
        ("cls", "SearchLog", {**SEARCH, "TopicId": "topic-gone"}, "ResourceNotFound.TopicNotExist"),
        # SearchLog: Limit "默认为100，最大值为1000".
        ("cls", "SearchLog", {**SEARCH, "Limit": 1001}, "InvalidParameterValue"),
        # DescribeAlarmHistories: AlarmStatus ALARM, OK, NO_CONF or NO_DATA; AlarmLevels
        # Remind, Serious or Warn.
        (
            "monitor",
            "DescribeAlarmHistories",
            {"Module": "monitor", "AlarmStatus": ["FIRING"]},
            "InvalidParameterValue",
        ),
        (
            "monitor",
            "DescribeAlarmHistories",
            {"Module": "monitor", "AlarmLevels": ["Critical"]},
            "InvalidParameterValue",
        ),
        # DescribeAlertRecordHistory: filter status 0, 1 or 2 (未恢复, 已恢复, 已失效).
        (
            "cls",
            "DescribeAlertRecordHistory",
            {
                "From": 0,
                "To": 1,
                "Offset": 0,
                "Limit": 10,
                "Filters": [{"Key": "status", "Values": ["ALARM"]}],
            },
            "InvalidParameter",
        ),
        # DescribeTopics: PreciseSearch 0 to 3; DescribeClusters: ClusterType of two.
        ("cls", "DescribeTopics", {"PreciseSearch": 4}, "InvalidParameterValue"),
        ("tke", "DescribeClusters", {"ClusterType": "EKS"}, "InvalidParameterValue"),
        # tts errorcodes: InvalidParameterValue.TextTooLong (合成文本字符过长).
        (
            "tts",
            "TextToVoice",
            {"Text": "好" * 151, "SessionId": "s-1"},
            "InvalidParameterValue.TextTooLong",
        ),
    ],
    ids=[
        "search-of-a-topic-not-there",
        "search-limit-past-1000",
        "alarm-status-not-listed",
        "alarm-level-not-listed",
        "alert-record-status-not-listed",
        "precise-search-past-3",
        "cluster-type-not-listed",
        "text-past-150",
    ],
)
async def test_the_stand_in_refuses_what_the_api_reference_refuses_with_its_code(
    cloud: tuple[TencentApi, TencentCloud],
    product: str,
    action: str,
    params: dict[str, object],
    code: str,
) -> None:
    _, tc = cloud
    with pytest.raises(TencentRequestError) as refused:
        await tc.call(product, action, params)
    assert refused.value.code == code, refused.value


async def test_a_search_without_a_limit_answers_the_documented_100(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    # SearchLog: Limit "默认为100".
    api, tc = cloud
    api.logs = [{"time": i, "json": {"n": i}} for i in range(150)]
    answer = await tc.call("cls", "SearchLog", {**SEARCH, "To": 1000})
    assert len(answer["Results"]) == 100


async def test_a_read_soon_asked_with_no_time_left_keeps_the_read_for_the_next_caller(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    # A voice call that has spent its budget asks with no time left: the cluster list (cached,
    # or read at once) must not be taken for a slow read and go unread for a minute.
    _, tc = cloud
    read = lambda: list_clusters(tc)  # noqa: E731

    assert await tc.read_soon(("clusters",), read, within=-0.2, unread_for=60) is None
    named = await tc.read_soon(("clusters",), read, within=HANG, unread_for=60)
    assert named is not None


def test_reads_refused_are_said_as_their_cause_asks() -> None:
    # A search past CLS's concurrent ones is a rate limit, no quota; an error the client worded
    # itself (no call made) is said as worded, not as Tencent Cloud rejecting a parameter.
    busy = TencentRetryableError("LimitExceeded.LogSearch", "并发查询超过限制", "req-1")
    busy.call = ("cls", "SearchLog")
    said = told(busy)
    assert "try again in a moment" in said and "quota" not in said and "req-1" in said
    window = TencentRequestError("InvalidParameterValue.From", "the window's start is after")
    assert told(window) == "InvalidParameterValue.From: the window's start is after"
    narrow = TencentRequestError("LimitExceeded.SearchResources", "too much: narrow the query")
    assert "quota" not in told(narrow) and told(narrow).endswith("narrow the query")


@pytest.mark.parametrize(
    ("product", "action", "params", "code", "name"),
    [
        ("tke", "DescribeClusters", {}, "UnsupportedRegion", "TKE"),
        ("cls", "DescribeTopics", {}, "UnsupportedOperation.UnsupportedRegion", "CLS"),
        (
            "monitor",
            "DescribeAlarmHistories",
            {"Module": "monitor"},
            "UnsupportedRegion",
            "Cloud Monitor",
        ),
    ],
)
async def test_a_product_not_offered_in_the_region_asked_names_that_region(
    cloud: tuple[TencentApi, TencentCloud],
    product: str,
    action: str,
    params: dict[str, Any],
    code: str,
    name: str,
) -> None:
    """A product asked in a region it is not offered in: the answer said "DescribeClusters
    (UnsupportedRegion) failed: 接口不支持所传地域", naming no region and nothing to do. It names
    the region asked (and the setting it came from) and says to give another; the user's
    input, not a failure of Tencent Cloud's."""
    api, tc = cloud
    if code == "UnsupportedRegion":  # the common code, as the API answers it there
        api.not_offered[product] = {"ap-tokyo"}
        words = "接口不支持所传地域"
    else:  # a product's own documented code
        api.failures[action] = [code]
        words = f"injected {code}"
    with pytest.raises(TencentRequestError) as refused:
        await tc.call(product, action, params, region="ap-tokyo")
    said = failure(refused.value)
    assert (said.kind, str(said)) == (
        "invalid_parameter",
        f"Tencent Cloud refused {action} ({code}): {name} is not offered in region ap-tokyo; "
        f"give a region where it is (its API reference lists them). {words} "
        "(RequestId req-standin)",
    )
    # The configured region, none given in the call: the setting to change is named.
    api.not_offered[product], api.failures[action] = {"ap-guangzhou"}, []
    with pytest.raises(TencentRequestError) as refused:
        await tc.call(product, action, params)
    assert "region ap-guangzhou (set as AMBIENT_TENCENTCLOUD_REGION);" in told(refused.value)


@pytest.mark.parametrize("code", ["AuthFailure.TokenFailure", "AuthFailure.SecretIdNotFound"])
async def test_a_cvm_roles_keys_refused_say_the_roles_words_not_the_keys_variables(
    cloud: tuple[TencentApi, TencentCloud], monkeypatch: pytest.MonkeyPatch, code: str
) -> None:
    """Keys of a CVM role refused (its temporary keys' token expired by a clock set wrong, the
    role deleted): the answer said to check TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY,
    which a role's user never set. It names the role, the clock and the role's binding."""
    from tencentcloud.common.credential import CVMRoleCredential

    api, tc = cloud

    async def metadata(request: Request) -> Response:
        return JSONResponse(
            {
                "Code": "Success",
                "TmpSecretId": SECRET_ID,
                "TmpSecretKey": SECRET_KEY,
                "Token": "role-token",
                "ExpiredTime": int(NOW.timestamp()) + 3600,
            }
        )

    app = Starlette(routes=[Route("/cam/security-credentials/{role}", metadata)])
    async with serve(app) as base:
        monkeypatch.setattr(
            CVMRoleCredential, "_role_endpoint", f"{base}/cam/security-credentials/"
        )
        monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", "")
        role = TencentCloud(
            credential_from_env("ambient-ops-role"),
            region="ap-guangzhou",
            endpoint=tc._endpoint,
            protocol="http",
            timeout=int(HANG),
        )
        api.failures["DescribeClusters"] = [code]
        with pytest.raises(TencentAuthError) as refused:
            await list_clusters(role)
    said = told(refused.value)
    assert said == (
        f"Tencent Cloud refused DescribeClusters ({code}): it does not accept the temporary "
        "keys of the CVM role 'ambient-ops-role' (AMBIENT_TENCENTCLOUD_CVM_ROLE); check that "
        "this machine's clock is right (NTP), and in the CAM console that the role still "
        f"exists and is bound to this instance. injected {code} (RequestId req-standin)"
    )
    # Keys of the user's own: those are what to check.
    api.failures["DescribeClusters"] = [code]
    with pytest.raises(TencentAuthError) as refused:
        await list_clusters(tc)
    if code == "AuthFailure.TokenFailure":
        # Temporary keys' token (TENCENTCLOUD_TOKEN): it was said to check the two keys only.
        assert (
            "get new ones (STS) and set TENCENTCLOUD_SECRET_ID, TENCENTCLOUD_SECRET_KEY and "
            "TENCENTCLOUD_TOKEN together" in told(refused.value)
        ), told(refused.value)
    else:
        assert "check TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY" in told(refused.value)
    # Read from the process's environment at its start: new keys need a restart, said so.
    assert "restart them after setting new ones" in told(refused.value), told(refused.value)


@pytest.mark.parametrize(
    "code",
    ["AuthFailure.SecretIdNotFound", "AuthFailure.TokenFailure", "AuthFailure.SignatureExpire"],
)
async def test_temporary_keys_refused_are_said_as_temporary_keys_to_refresh(
    cloud: tuple[TencentApi, TencentCloud], code: str
) -> None:
    """Temporary keys (STS: TENCENTCLOUD_TOKEN with its SecretId and SecretKey) expire within
    hours; expired, the API answers that their SecretId does not exist, their token is wrong,
    or their signature expired. It was said as keys to check ("check TENCENTCLOUD_SECRET_ID and
    TENCENTCLOUD_SECRET_KEY"), or as this machine's clock. Now as temporary keys to renew."""
    api, tc = cloud
    if code == "AuthFailure.SecretIdNotFound":  # as the API answers keys it does not know
        secret_id, words = "AKIDsts-expired", "unknown SecretId"
    else:
        api.failures["DescribeClusters"] = [code]
        secret_id, words = SECRET_ID, f"injected {code}"
    temporary = TencentCloud(
        Credential(secret_id, SECRET_KEY, "sts-token"),
        region="ap-guangzhou",
        endpoint=tc._endpoint,
        protocol="http",
        timeout=int(HANG),
    )
    with pytest.raises(TencentRequestError) as refused:
        await list_clusters(temporary)
    clock = (
        "; if they are new, this machine's clock is more than 5 minutes off; set it right (NTP). "
        if code == "AuthFailure.SignatureExpire"
        else ". "
    )
    assert told(refused.value) == (
        f"Tencent Cloud refused DescribeClusters ({code}): it does not accept the temporary keys "
        "(TENCENTCLOUD_TOKEN): they have expired or are not valid; get new ones (STS) and set "
        "TENCENTCLOUD_SECRET_ID, TENCENTCLOUD_SECRET_KEY and TENCENTCLOUD_TOKEN together; "
        "a running worker and API keep the keys they started with: restart them after setting "
        "new ones"
        f"{clock}{words} (RequestId req-standin)"
    )


def test_a_sub_account_tke_rbac_refuses_is_told_to_ask_for_rbac_not_a_cam_policy() -> None:
    """子账户RBAC权限不足 was said as a failure ("… (FailedOperation.RBACForbidden) failed"),
    and as auth it would name a CAM policy: the cluster's RBAC authorisation is what lacks."""
    for code in ("FailedOperation.RBACForbidden", "UnauthorizedOperation.NoRBACPermissions"):
        error = translate(TencentCloudSDKException(code, "子账户RBAC权限不足", "req-1"))
        error.call = ("tke", "DescribeClusterKubeconfig")
        said = told(error)
        assert isinstance(error, TencentAuthError) and "TKE RBAC" in said, said
        assert "CAM policy" not in said, said


def test_a_finance_region_is_called_at_its_own_domain() -> None:
    """A finance region (ap-shanghai-fsi) is isolated from the others: its calls went to the
    nearby domain, monitor.tencentcloudapi.com, which serves the other regions only."""
    tc = TencentCloud(Credential("AKIDexample", "secret"), region="ap-guangzhou")
    assert tc._client("monitor", "ap-shanghai-fsi")._get_endpoint() == (
        "monitor.ap-shanghai-fsi.tencentcloudapi.com"
    )
    assert tc._client("tke", "ap-beijing-fsi")._get_endpoint() == (
        "tke.ap-beijing-fsi.tencentcloudapi.com"
    )
    assert tc._client("cls", "ap-guangzhou")._get_endpoint() == "cls.tencentcloudapi.com"
    pinned = TencentCloud(
        Credential("AKIDexample", "secret"), region="ap-guangzhou", endpoint="127.0.0.1:9"
    )
    assert pinned._client("cls", "ap-shanghai-fsi")._get_endpoint() == "127.0.0.1:9"


async def test_a_series_whose_times_and_values_do_not_pair_is_no_answer_of_the_api(
    cloud: tuple[TencentApi, TencentCloud],
) -> None:
    """GetMonitorData gives each Timestamps entry its Values entry: an answer with one more of
    either (a proxy's, nulls dropped on the way) was paired short, the newest value said at
    another datapoint's time."""
    api, tc = cloud
    now = int(NOW.timestamp()) // 60 * 60
    series = _series({"InstanceId": "ins-ours"}, (now - 60, 10.0), (now, 99.0))
    series["Timestamps"] = series["Timestamps"][1:]  # the newest time, two values
    body = {"Response": {"MetricName": "CPUUsage", "Period": 60, "DataPoints": [series]}}
    api.raw["GetMonitorData"] = [(200, "application/json", json.dumps(body).encode())]
    with pytest.raises(TencentAnswerError, match="2 values for 1 timestamps"):
        await latest_metric_value(tc, "QCE/CVM", "CPUUsage", {"InstanceId": "ins-ours"}, now=NOW)


async def test_a_local_metric_read_that_cloud_monitor_holds_leaves_its_thread_free(
    cloud: tuple[TencentApi, TencentCloud], db: object
) -> None:
    """A threshold watch's first read is a local activity of 2 s: Cloud Monitor not answering,
    Temporal ended it there, but its SDK request held a thread of the process's shared pool
    for its own 30 s (web fetches' name lookups, mail sends and every other Tencent call use
    that pool). Now the request ends with the read, which hands over to the regular read."""
    from dataclasses import replace

    from temporalio.exceptions import ApplicationError
    from temporalio.testing import ActivityEnvironment

    from activities.watches import WatchActivities
    from ambient.clients.web import WebFetcher
    from ambient.domain.checks import ReadMetricInput

    api, tc = cloud
    arrived, released = asyncio.Event(), asyncio.Event()
    api.held["GetMonitorData"] = (arrived, released)  # Cloud Monitor answers nothing
    source = {
        "type": "tencent_monitor",
        "namespace": "QCE/CVM",
        "metric": "CPUUsage",
        "dimensions": {"InstanceId": "ins-1"},
    }
    env = ActivityEnvironment()
    env.info = replace(env.info, is_local=True, start_to_close_timeout=timedelta(seconds=2))
    read = WatchActivities(db, WebFetcher(), tc).read_metric  # type: ignore[arg-type]
    # One more than the threads of asyncio's default pool.
    calls = min(32, (os.cpu_count() or 1) + 4) + 1
    try:
        for _ in range(calls):
            with pytest.raises((ApplicationError, TimeoutError)):
                async with asyncio.timeout(2):  # Temporal's end of the local activity
                    await env.run(read, ReadMetricInput(source=source))
        asked = [p for _, action, p in api.calls if action == "GetMonitorData"]
    finally:
        released.set()
    assert len(asked) == calls, f"{len(asked)} of {calls} cut-off reads went out"
