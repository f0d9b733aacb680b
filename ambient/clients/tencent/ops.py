"""Tencent Cloud operations the product uses, returning pydantic models, not SDK objects.

Time units differ by API (see NOTES): CLS SearchLog / alert records take milliseconds,
Monitor GetMonitorData ISO strings, DescribeAlarmHistories seconds.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field, field_validator

from ambient.clients.tencent.client import TencentCloud
from ambient.clients.tencent.errors import (
    TencentCloudError,
    TencentRequestError,
    TencentRetryableError,
)
from ambient.domain.identifiers import region_name
from ambient.watches.threshold_config import STATISTIC_NAMESPACES, STATISTIC_PERIODS

MAX_SEARCH_LOGS = 10_000  # CLS caps a Context-paged search here
# An SQL answers its first 100 rows unless it says `limit N`, at most 10,000 (CLS LIMIT syntax,
# cloud.tencent.com/document/product/614/58977).
SQL_DEFAULT_ROWS, SQL_MAX_ROWS = 100, 10_000
SQL_LIMIT = re.compile(r"\blimit\s+(\d+)", re.IGNORECASE)
TTS_CHUNK = 150  # characters per TextToVoice call
TTS_VOICE = 101001  # the TextToVoice voice every briefing is spoken in
# The most datapoints one metric read fetches (in several requests): a week of minutes is not.
MAX_METRIC_POINTS = 7200
# GetMonitorData answers at most this many datapoints per request (API reference, 248/30353:
# "单请求的数据点数限制为1440个"; the SDK's docstrings say 7200): longer windows are split.
MONITOR_REQUEST_POINTS = 1440
# DescribeStatisticData's longest EndTime-StartTime (exclusive) per period (API reference,
# Period: "60s：EndTime-StartTime<12小时 ... 300s：<3天 ... 3600s：<30天 ... 86400s：<186天").
STATISTIC_WINDOWS = {60: 12 * 3600, 300: 3 * 86400, 3600: 30 * 86400, 86400: 186 * 86400}
# How far before now DescribeStatisticData's StartTime may lie per period: older datapoints
# are not kept (API reference, Period: "60s：...StartTime距当前时间不能超过15天；300s：...31天；
# 3600s：...93天；86400s：...186天").
STATISTIC_RETENTION = {60: 15 * 86400, 300: 31 * 86400, 3600: 93 * 86400, 86400: 186 * 86400}
# The API ages StartTime by its own clock: a start this close to the limit is refused here.
RETENTION_MARGIN = 60


# Nested deeper, a record's content is kept as its JSON text: pydantic encodes 255 levels at
# most, the answer's own with them, and a line nested past that failed the whole answer.
MAX_NESTING = 100


class LogRecord(BaseModel):
    time: datetime
    topic_id: str
    source: str | None = None
    content: dict[str, Any] | str

    @field_validator("content")
    @classmethod
    def _text_when_too_deep(cls, content: dict[str, Any] | str) -> dict[str, Any] | str:
        level: list[Any] = [content]
        for _ in range(MAX_NESTING):  # level by level: no recursion
            level = [v for x in level if isinstance(x, dict | list) for v in _inside(x)]
            if not level:
                return content
        with contextlib.suppress(RecursionError):  # json.loads read it a few frames higher
            return json.dumps(content, ensure_ascii=False)
        return "(a JSON object nested too deep to show)"


def _inside(value: dict[str, Any] | list[Any]) -> Iterable[Any]:
    return value.values() if isinstance(value, dict) else value


class SearchResult(BaseModel):
    logs: list[LogRecord] = Field(default_factory=list)
    analysis: list[dict[str, Any]] = Field(default_factory=list, description="SQL rows, if any")
    complete: bool = Field(description="false when the limit cut the result")


class LogTopic(BaseModel):
    topic_id: str
    name: str
    logset_id: str | None = None


class AlarmRecord(BaseModel):
    source: str = Field(description="monitor or cls")
    name: str
    status: str = Field(description="ALARM (not recovered), OK, NO_CONF (expired), NO_DATA")
    time: datetime
    level: str | None = None
    target: str | None = Field(default=None, description="alarm object / topic")
    detail: str = ""
    region: str | None = Field(default=None, description="the alarm object's region (Monitor)")
    dimensions: dict[str, str] = Field(
        default_factory=dict, description="the alarm object's dimensions (Monitor)"
    )


class UnreadSource(BaseModel):
    """An alarm source that failed while the other answered: named, with the API's words."""

    source: str = Field(description="monitor or cls")
    error: str = Field(description="why it could not be read (the API's code and message)")
    retryable: bool = Field(default=False, description="a passing failure: asking again may work")

    def __str__(self) -> str:
        return f"{self.source} alarms could not be read: {self.error}"


class AlarmHistory(BaseModel):
    alarms: list[AlarmRecord] = Field(default_factory=list, description="newest first")
    unread: list[UnreadSource] = Field(
        default_factory=list, description="sources that could not be read: their alarms are missing"
    )


def _dimensions(value: Any) -> dict[str, str]:
    """Monitor's Dimensions (a JSON string in DescribeAlarmHistories): an object, or a list of
    Key/Value (Name/Value) pairs as other Monitor answers write them; anything else is none."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = json.loads(value)
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items() if isinstance(v, str | int)}
    if isinstance(value, list):
        pairs = (d for d in value if isinstance(d, dict))
        named = ((d.get("Key") or d.get("Name"), d.get("Value")) for d in pairs)
        return {str(k): str(v) for k, v in named if k and isinstance(v, str | int)}
    return {}


class MetricPoint(BaseModel):
    time: datetime
    value: float


class Cluster(BaseModel):
    cluster_id: str
    name: str
    status: str
    version: str | None = None
    nodes: int | None = None


class NodePool(BaseModel):
    node_pool_id: str
    name: str
    state: str | None = None
    desired: int | None = None
    minimum: int | None = None
    maximum: int | None = None


# CLS alert records number their status and level (AlertHistoryRecord: Status 0 未恢复,
# 1 已恢复, 2 已失效; AlarmLevel 0 Warn, 1 Info, 2 Critical); said in Cloud Monitor's words.
CLS_ALARM_STATUS: dict[Any, str] = {0: "ALARM", 1: "OK", 2: "NO_CONF"}
CLS_ALARM_LEVEL: dict[Any, str] = {0: "Warn", 1: "Info", 2: "Critical"}


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _from_ms(value: int | str) -> datetime:
    return datetime.fromtimestamp(int(value) / 1000, UTC)


async def search_logs(
    tc: TencentCloud,
    topic_id: str,
    query: str,
    start: datetime,
    end: datetime,
    *,
    limit: int = 100,
    region: str | None = None,
) -> SearchResult:
    """CQL search or `... | select ...` SQL analysis, paged with Context up to ``limit``."""
    # Either would come back as an empty answer (or an API error), not as what to change.
    if limit < 1:
        raise TencentRequestError("InvalidParameterValue.Limit", f"limit must be >= 1, not {limit}")
    if start > end:
        raise TencentRequestError(
            "InvalidParameterValue.From",
            f"the window's start ({start.isoformat()}) is after its end ({end.isoformat()})",
        )
    limit = min(limit, MAX_SEARCH_LOGS)
    params: dict[str, Any] = {
        "TopicId": topic_id,
        "QueryString": query or "*",
        "From": _ms(start),
        "To": _ms(end),
        "Limit": min(limit, 1000),
        "Sort": "desc",
        "SyntaxRule": 1,
        # SQL rows come in AnalysisRecords only when asked for (otherwise AnalysisRecords is null).
        "UseNewAnalysis": True,
    }
    result = SearchResult(complete=False)
    while True:
        try:
            page = await tc.call("cls", "SearchLog", params, region=region)
        except TencentRequestError as exc:
            # An answer over 20 MB (cls errorcodes: 检索接口返回的日志量太大，超过20MB限制): the
            # search starts over with half the page (Context pages keep their first Limit).
            # Past the search's memory (检索内存超限), no page size helps.
            too_large = exc.code == "LimitExceeded.SearchResultTooLarge"
            if not too_large and exc.code != "LimitExceeded.SearchResources":
                raise
            if not too_large or params["Limit"] == 1 or "|" in query:
                raise TencentRequestError(
                    exc.code, f"{exc.message}: narrow the query or the time range", exc.request_id
                ) from None
            params = {key: value for key, value in params.items() if key != "Context"}
            params["Limit"] //= 2
            result.logs = []
            continue
        if page.get("Analysis"):
            result.analysis = [json.loads(row) for row in page.get("AnalysisRecords") or []]
            # As many rows as the SQL's limit allows may be a cut answer, not the whole one.
            limit_clause = SQL_LIMIT.search(query.split("|", 1)[-1])
            cap = min(int(limit_clause[1]), SQL_MAX_ROWS) if limit_clause else SQL_DEFAULT_ROWS
            result.complete = len(result.analysis) < cap
            return result
        for item in page.get("Results") or []:
            raw = item.get("LogJson") or item.get("RawLog") or ""
            content: dict[str, Any] | str = str(raw)
            with contextlib.suppress(TypeError, ValueError, RecursionError):
                content = json.loads(raw)
            result.logs.append(
                LogRecord(
                    time=_from_ms(item["Time"]),
                    topic_id=item.get("TopicId", topic_id),
                    source=item.get("Source"),
                    content=content,
                )
            )
        if page.get("ListOver") or not page.get("Context"):
            result.complete = True
            break
        if len(result.logs) >= limit:
            break
        # Other parameters must stay unchanged between pages.
        params = {**params, "Context": page["Context"]}
    if len(result.logs) > limit:
        result.logs, result.complete = result.logs[:limit], False
    return result


async def list_log_topics(tc: TencentCloud, *, region: str | None = None) -> list[LogTopic]:
    async def load() -> list[LogTopic]:
        # Every page: search_logs needs the id of whichever topic the user means.
        topics = await tc.paged("cls", "DescribeTopics", {}, "Topics", region=region)
        return [
            LogTopic(
                topic_id=t["TopicId"], name=t.get("TopicName", ""), logset_id=t.get("LogsetId")
            )
            for t in topics
        ]

    return await tc.cached(("topics", region or tc.region), load)


async def list_alarms(
    tc: TencentCloud, start: datetime, end: datetime, *, region: str | None = None
) -> AlarmHistory:
    """Cloud Monitor alarm history and CLS alert records in the window, newest first.

    One source refused (a CAM policy without its action, CLS not opened in the region, a rate
    limit past the retries): the other's alarms are answered and it is named in ``unread``.
    Both refused: the call fails, with Monitor's error."""
    history = AlarmHistory()
    errors: list[TencentCloudError] = []
    for source, read in (("monitor", _monitor_alarms), ("cls", _cls_alarms)):
        try:
            history.alarms += await read(tc, start, end, region)
        except TencentCloudError as exc:
            errors.append(exc)
            retryable = isinstance(exc, TencentRetryableError)
            history.unread.append(UnreadSource(source=source, error=str(exc), retryable=retryable))
    if len(errors) == 2:
        raise errors[0]
    history.alarms.sort(key=lambda a: a.time, reverse=True)
    return history


async def _monitor_alarms(
    tc: TencentCloud, start: datetime, end: datetime, region: str | None
) -> list[AlarmRecord]:
    alarms: list[AlarmRecord] = []
    for page in itertools.count(1):
        answer = await tc.call(
            "monitor",
            "DescribeAlarmHistories",
            {
                "Module": "monitor",
                "PageNumber": page,
                "PageSize": 100,
                "StartTime": int(start.timestamp()),
                "EndTime": int(end.timestamp()),
            },
            region=region,
        )
        histories = answer.get("Histories") or []
        alarms += [
            AlarmRecord(
                source="monitor",
                name=h.get("PolicyName") or _alarm_name(h),
                status=h.get("AlarmStatus", ""),
                time=datetime.fromtimestamp(int(h.get("FirstOccurTime", 0)), UTC),
                level=h.get("AlarmLevel"),
                target=h.get("AlarmObject"),
                detail=h.get("Content", ""),
                # Written as a short name ("gz"), as the API reference's examples show.
                region=region_name(h.get("Region")),
                dimensions=_dimensions(h.get("Dimensions")),
            )
            for h in histories
        ]
        if not histories or page * 100 >= int(answer.get("TotalCount", 0)):
            break
    return alarms


async def _cls_alarms(
    tc: TencentCloud, start: datetime, end: datetime, region: str | None
) -> list[AlarmRecord]:
    records = await tc.paged(
        "cls",
        "DescribeAlertRecordHistory",
        {"From": _ms(start), "To": _ms(end)},
        "Records",
        region=region,
    )
    return [
        AlarmRecord(
            source="cls",
            name=r.get("AlarmName", ""),
            status=CLS_ALARM_STATUS.get(r.get("Status"), str(r.get("Status", ""))),
            time=_from_ms(r.get("CreateTime", 0)),
            level=CLS_ALARM_LEVEL.get(r.get("AlarmLevel"), str(r.get("AlarmLevel", "")) or None),
            target=r.get("TopicName") or r.get("TopicId"),
            detail=r.get("Trigger", ""),
        )
        for r in records
    ]


async def get_metric(
    tc: TencentCloud,
    namespace: str,
    metric: str,
    dimensions: dict[str, str],
    start: datetime,
    end: datetime,
    *,
    period: int = 60,
    region: str | None = None,
) -> list[MetricPoint]:
    # Refused here, with the period that would fit, rather than by the API as a bare error.
    if not dimensions:
        raise TencentRequestError(
            "InvalidParameterValue.Dimensions",
            f"{namespace}/{metric} needs the instance's dimensions, e.g. "
            '{"InstanceId": "ins-123"} (see the product\'s metric documentation)',
        )
    if period < 1:
        raise TencentRequestError("InvalidParameterValue.Period", "period must be >= 1 second")
    count = int((end - start).total_seconds()) // period
    if count > MAX_METRIC_POINTS:
        fits = next(
            (p for p in STATISTIC_PERIODS if count * period // p <= MAX_METRIC_POINTS), None
        )
        hint = f"use period={fits}" if fits else "shorten the window"
        raise TencentRequestError(
            "InvalidParameterValue.Period",
            f"{count} datapoints at period={period}s; a metric read fetches at most "
            f"{MAX_METRIC_POINTS}: {hint}",
        )
    if namespace in STATISTIC_NAMESPACES:
        if period not in STATISTIC_PERIODS:
            raise TencentRequestError(
                "InvalidParameterValue.Period",
                f"{namespace} metrics are read with DescribeStatisticData, whose period is "
                f"60, 300, 3600 or 86400 seconds, not {period}",
            )
        _refuse_unkept(namespace, start, end, period)
        # Both ends are inclusive: each request spans at most what the action accepts and the
        # next starts one period later, so no point is asked for twice.
        span = timedelta(seconds=STATISTIC_WINDOWS[period] - period)
    else:
        span = timedelta(seconds=period * (MONITOR_REQUEST_POINTS - 1))
    # The reference's form (2018-09-22T19:51:23+08:00): whole seconds, no fraction.
    first, last = start.replace(microsecond=0), end.replace(microsecond=0)
    pairs: list[tuple[Any, Any]] = []
    while first <= last:
        upto = min(first + span, last)
        window = {"Period": period, "StartTime": first.isoformat(), "EndTime": upto.isoformat()}
        pairs += await _metric_window(tc, namespace, metric, dimensions, window, region)
        first = upto + timedelta(seconds=period)
    points = [
        MetricPoint(time=datetime.fromtimestamp(int(stamp), UTC), value=float(value))
        for stamp, value in pairs
        if stamp is not None and value is not None
    ]
    return sorted(points, key=lambda p: p.time)


def _refuse_unkept(namespace: str, start: datetime, end: datetime, period: int) -> None:
    """Refuse a window older than Cloud Monitor keeps at ``period``, naming one that keeps it."""
    days_ago = (datetime.now(UTC) - start).total_seconds() / 86400
    age = days_ago * 86400 + RETENTION_MARGIN
    if age <= STATISTIC_RETENTION[period]:
        return
    span = int((end - start).total_seconds())
    fits = next(
        (
            p
            for p in STATISTIC_PERIODS
            if age <= STATISTIC_RETENTION[p] and span // p <= MAX_METRIC_POINTS
        ),
        None,
    )
    hint = (
        f"use period={fits} (kept {STATISTIC_RETENTION[fits] // 86400} days)"
        if fits
        else f"no period keeps datapoints older than {max(STATISTIC_RETENTION.values()) // 86400}"
        " days: start later"
    )
    raise TencentRequestError(
        "InvalidParameterValue.StartTime",
        f"{namespace} keeps {period}s datapoints for {STATISTIC_RETENTION[period] // 86400} "
        f"days and the window starts {days_ago:.1f} days ago: {hint}",
    )


async def _metric_window(
    tc: TencentCloud,
    namespace: str,
    metric: str,
    dimensions: dict[str, str],
    window: dict[str, Any],
    region: str | None,
) -> list[tuple[Any, Any]]:
    """(timestamp, value) pairs of one request's window."""
    if namespace in STATISTIC_NAMESPACES:
        answer = await tc.call(
            "monitor",
            "DescribeStatisticData",
            {
                "Module": "monitor",
                "Namespace": namespace,
                "MetricNames": [metric],
                "Conditions": [
                    {"Key": k, "Operator": "=", "Value": [v]} for k, v in dimensions.items()
                ],
                **window,
            },
            region=region,
        )
        return [
            (value.get("Timestamp"), value.get("Value"))
            for data in answer.get("Data") or []
            for point in data.get("Points") or []
            for value in point.get("Values") or []
        ]
    answer = await tc.call(
        "monitor",
        "GetMonitorData",
        {
            "Namespace": namespace,
            "MetricName": metric,
            "Instances": [{"Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()]}],
            **window,
        },
        region=region,
    )
    return [
        pair
        for series in answer.get("DataPoints") or []
        for pair in zip(series.get("Timestamps") or [], series.get("Values") or [], strict=False)
    ]


async def list_clusters(tc: TencentCloud, *, region: str | None = None) -> list[Cluster]:
    async def load() -> list[Cluster]:
        # Every page: a cluster left off the list reads as a cluster that does not exist.
        clusters = await tc.paged("tke", "DescribeClusters", {}, "Clusters", region=region)
        return [
            Cluster(
                cluster_id=c["ClusterId"],
                name=c.get("ClusterName", ""),
                status=c.get("ClusterStatus", ""),
                version=c.get("ClusterVersion"),
                nodes=c.get("ClusterNodeNum"),
            )
            for c in clusters
        ]

    return await tc.cached(("clusters", region or tc.region), load)


async def list_node_pools(
    tc: TencentCloud, cluster_id: str, *, region: str | None = None
) -> list[NodePool]:
    answer = await tc.call(
        "tke", "DescribeClusterNodePools", {"ClusterId": cluster_id}, region=region
    )
    return [
        NodePool(
            node_pool_id=p["NodePoolId"],
            name=p.get("Name", ""),
            state=p.get("LifeState"),
            desired=p.get("DesiredNodesNum"),
            minimum=p.get("MinNodesNum"),
            maximum=p.get("MaxNodesNum"),
        )
        for p in answer.get("NodePoolSet") or []
    ]


def tts_segments(text: str, size: int = TTS_CHUNK) -> list[str]:
    """Cut at sentence ends (。！？.!?；;) so no segment passes ``size`` characters."""
    sentences = [s for s in re.split(r"(?<=[。！？!?；;.\n])", text) if s.strip()]
    segments: list[str] = []
    current = ""
    for sentence in sentences:
        while len(sentence) > size:
            if current:
                segments.append(current)
                current = ""
            segments.append(sentence[:size])
            sentence = sentence[size:]
        if len(current) + len(sentence) > size:
            segments.append(current)
            current = ""
        current += sentence
    return [s.strip() for s in [*segments, current] if s.strip()]


async def text_to_voice(tc: TencentCloud, text: str, *, region: str | None = None) -> bytes:
    """MP3 audio of ``text``; long text is spoken in segments and the MP3 frames joined."""
    if not text.strip():
        raise TencentRequestError("InvalidParameter", "nothing to speak")
    audio = b""
    session = uuid.uuid4().hex
    for index, segment in enumerate(tts_segments(text)):
        answer = await tc.call(
            "tts",
            "TextToVoice",
            {
                "Text": segment,
                "SessionId": f"{session}-{index}",
                "VoiceType": TTS_VOICE,
                "Codec": "mp3",
                "ModelType": 1,
            },
            region=region,
        )
        audio += base64.b64decode(answer.get("Audio", ""))
    return audio


async def latest_metric_value(
    tc: TencentCloud,
    namespace: str,
    metric: str,
    dimensions: dict[str, str],
    *,
    period: int = 60,
    region: str | None = None,
    now: datetime | None = None,
) -> float:
    """The newest datapoint of a Cloud Monitor metric (the threshold watch's source)."""
    end = now or datetime.now(UTC)
    start = end - timedelta(seconds=period * 10)
    points = await get_metric(
        tc, namespace, metric, dimensions, start, end, period=period, region=region
    )
    if not points:
        named = ", ".join(f"{k}={v}" for k, v in dimensions.items()) or "none"
        raise TencentRequestError(
            "NoData",
            f"{namespace}/{metric} has no datapoints in the last {period * 10}s;"
            f" check that its dimensions ({named}) name a resource that reports it",
        )
    return points[-1].value


def _alarm_name(history: dict[str, Any]) -> str:
    """A name for an alarm without a policy name: its metric, else its type (an event alarm's)."""
    metrics = history.get("MetricsInfo") or [{}]
    return str(metrics[0].get("MetricName") or f"{history.get('AlarmType') or 'monitor'} alarm")
