"""Cloud Monitor metrics: a window of datapoints (GetMonitorData, or DescribeStatisticData for
the namespaces it serves), and the newest one (the threshold watch's source)."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from ambient.clients.tencent.client import TencentCloud
from ambient.clients.tencent.errors import ANSWER, TencentAnswerError, TencentRequestError
from ambient.domain.notify import deadline_in
from ambient.refusals import N_, Refusal
from ambient.watches.threshold_config import STATISTIC_NAMESPACES, STATISTIC_PERIODS

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
BEIJING_OFFSET = 8 * 3600  # seconds UTC+8 is ahead: where Cloud Monitor's days begin
# How late Cloud Monitor publishes a datapoint after its period ends (a few minutes for most
# products), and how many periods more a metric may miss before its newest datapoint is no
# current value: an instance that stopped reporting keeps its last one in the window read.
PUBLISH_LAG = timedelta(minutes=5)
MISSED_PERIODS = 2
# Why a watch's read has no value, said as its code and words (read back: cloud.errors).
NO_DATAPOINTS = N_(
    "NoData: %(metric)s has no datapoints in the last %(seconds)ss in region %(region)s; check "
    "that its dimensions (%(dimensions)s) name a resource that reports it there, and that it "
    "still runs (a stopped instance reports nothing; Cloud Monitor keeps a resource's data in "
    "its own region: give the watch that region)"
)
# A read given up at its activity's time (activities/watches.py).
NOT_ANSWERED = N_(
    "ClientNetworkError: Cloud Monitor did not answer within %(seconds)s s (if it lasts, check "
    "the way to the API: a proxy, AMBIENT_TENCENTCLOUD_ENDPOINT)"
)
NO_CURRENT_VALUE = N_(
    "NoCurrentData: %(metric)s has no current value: its newest datapoint is %(age)s old, from "
    "%(moment)s, and a %(period)ss metric is published within %(lag)s; check that "
    "%(dimensions)s still reports it (a stopped instance reports nothing)"
)
# NO_CURRENT_VALUE's ages (its age and lag), each said in the reader's words.
AGES = (N_("%(count)s min"), N_("%(count)s h"), N_("%(count)s days"))


class MetricPoint(BaseModel):
    time: datetime
    value: float


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
    patient: bool = True,
) -> list[MetricPoint]:
    """The datapoints of ``start``..``end``; ``patient`` as `TencentCloud.call`'s."""
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
        fits = _first_period(lambda p: count * period // p <= MAX_METRIC_POINTS)
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
        # Datapoints lie on the period's boundaries: a window ends on one and the next starts
        # on the one after, so none falls between two windows, whether the API takes the
        # times as given or rounds them down to the period.
        upto = min(_boundary(first + span, period), last)
        window = {"Period": period, "StartTime": first.isoformat(), "EndTime": upto.isoformat()}
        pairs += await _metric_window(tc, namespace, metric, dimensions, window, region, patient)
        first = upto + timedelta(seconds=period)
    # A NaN or an infinity (JSON's NaN, which the SDK parses) is no datapoint, as a null is:
    # it breaches no line (a watch in breach reported a recovery) and cannot travel as JSON.
    points = {
        int(stamp): number
        for stamp, value in pairs
        if stamp is not None
        and value is not None
        and start <= _at(stamp) <= end
        and math.isfinite(number := float(value))
    }
    return [MetricPoint(time=_at(stamp), value=points[stamp]) for stamp in sorted(points)]


def _at(stamp: Any) -> datetime:
    return datetime.fromtimestamp(int(stamp), UTC)


def _boundary(moment: datetime, period: int) -> datetime:
    """The last period boundary at or before ``moment``; days begin at Beijing's midnight
    (a day's datapoints do), which every shorter period divides."""
    seconds = int(moment.timestamp()) + BEIJING_OFFSET
    return moment - timedelta(seconds=seconds % period, microseconds=moment.microsecond)


def _first_period(fits: Callable[[int], bool]) -> int | None:
    """The shortest of DescribeStatisticData's periods that ``fits``, if any."""
    return next((p for p in STATISTIC_PERIODS if fits(p)), None)


def _refuse_unkept(namespace: str, start: datetime, end: datetime, period: int) -> None:
    """Refuse a window older than Cloud Monitor keeps at ``period``, naming one that keeps it."""
    days_ago = (datetime.now(UTC) - start).total_seconds() / 86400
    age = days_ago * 86400 + RETENTION_MARGIN
    if age <= STATISTIC_RETENTION[period]:
        return
    span = int((end - start).total_seconds())
    fits = _first_period(lambda p: age <= STATISTIC_RETENTION[p] and span // p <= MAX_METRIC_POINTS)
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
    patient: bool,
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
            patient=patient,
        )
        series = [point for data in answer.get("Data") or [] for point in data.get("Points") or []]
        if len(series) > 1:
            raise TencentRequestError("InvalidParameterValue.Dimensions", _many(series, metric))
        return [
            (value.get("Timestamp"), value.get("Value"))
            for point in series
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
        patient=patient,
    )
    # One series per instance, each naming its dimensions: one asked for, another instance's
    # series (its own, or one more its dimensions match) is not this metric's value. A single
    # series is the one asked for, whatever form its dimensions' values came back in.
    series = answer.get("DataPoints") or []
    if len(series) > 1:
        series = [s for s in series if _of_instance(s, dimensions)]
    if len(series) > 1:
        raise TencentRequestError("InvalidParameterValue.Dimensions", _many(series, metric))
    pairs: list[tuple[Any, Any]] = []
    for each in series:
        times, values = each.get("Timestamps") or [], each.get("Values") or []
        if len(times) != len(values):
            # Each time has its value (the API's reference): paired short, the newest value
            # was said at another datapoint's time.
            raise TencentAnswerError(
                ANSWER,
                f"the answer is not the API's: {len(values)} values for {len(times)} timestamps "
                f"of {metric}: check the way to the API (a proxy, AMBIENT_TENCENTCLOUD_ENDPOINT)",
            )
        pairs += zip(times, values, strict=True)
    return pairs


def _of_instance(series: dict[str, Any], dimensions: dict[str, str]) -> bool:
    """Whether a GetMonitorData series is of the instance ``dimensions`` name: none of its
    dimensions (names and values in any case) says another value; one naming none is the one
    asked for."""
    named = {str(d.get("Name")).lower(): d.get("Value") for d in series.get("Dimensions") or []}
    return all(
        str(named.get(k.lower(), v)).lower() == str(v).lower() for k, v in dimensions.items()
    )


def _many(series: list[dict[str, Any]], metric: str) -> str:
    """Why a read whose dimensions match several series is refused, naming what tells them
    apart (the dimensions given do not pin one resource: a workload without its namespace)."""
    named = [
        {d.get("Name"): d.get("Value") for d in point.get("Dimensions") or []} for point in series
    ]
    keys = sorted({k for dims in named for k in dims if len({str(d.get(k)) for d in named}) > 1})
    shown = "; ".join(
        ", ".join(f"{k}={dims.get(k)}" for k in keys) or "(no dimensions)" for dims in named[:3]
    )
    more = f" and {len(named) - 3} more" if len(named) > 3 else ""
    return (
        f"{metric} with these dimensions matches {len(series)} series ({shown}{more}); "
        f"add {' or '.join(map(str, keys)) or 'the dimension'} that names one"
    )


async def latest_metric_point(
    tc: TencentCloud,
    namespace: str,
    metric: str,
    dimensions: dict[str, str],
    *,
    period: int = 60,
    region: str | None = None,
    now: datetime | None = None,
    patient: bool = True,
) -> MetricPoint:
    """The newest datapoint of a Cloud Monitor metric (the threshold watch's source)."""
    end = now or datetime.now(UTC)
    # Ten periods, and never less than a current value's age and a period: at a 10 s period
    # ten were 100 s, and a datapoint Cloud Monitor published 2 minutes late, still current,
    # was "no datapoints" (a mistyped dimension, the message said).
    window = max(timedelta(seconds=period * 10), current_within(period) + timedelta(seconds=period))
    start = end - window
    points = await get_metric(
        tc, namespace, metric, dimensions, start, end, period=period, region=region, patient=patient
    )
    said = {
        "metric": f"{namespace}/{metric}",
        "dimensions": ", ".join(f"{k}={v}" for k, v in dimensions.items()) or "none",
    }
    if not points:
        where = {"seconds": f"{window.total_seconds():.0f}", "region": region or tc.region}
        raise TencentRequestError(*coded(NO_DATAPOINTS % (said | where)))
    newest, current = points[-1], current_within(period)
    if end - newest.time > current:
        age = {"age": _age(end - newest.time), "period": period, "lag": _age(current)}
        raise NoCurrentValueError(said | age, newest.time)
    return newest


def coded(said: str) -> tuple[str, str]:
    """A client's own refusal (its msgid begins with the code it is raised with) as the code
    and the words after it: said as "code: words", it reads back."""
    code, words = said.split(": ", 1)
    return code, words


class NoCurrentValueError(TencentRequestError):
    """A metric's newest datapoint is too old to be its current value (NoCurrentData); its
    time said in UTC until `in_zone` says it in the reader's."""

    def __init__(self, values: dict[str, object], newest: datetime, zone: str = "UTC") -> None:
        self.values, self.newest = values, newest  # values: NO_CURRENT_VALUE's but its moment
        moment = deadline_in(newest, zone, "en")
        super().__init__(*coded(NO_CURRENT_VALUE % (values | {"moment": moment})))

    def in_zone(self, zone: str) -> NoCurrentValueError:
        """The same error, its datapoint's time the wall time in ``zone`` (an IANA name)."""
        return NoCurrentValueError(self.values, self.newest, zone)


def current_within(period: int) -> timedelta:
    """How old the newest datapoint of a ``period`` metric may be and still be its current
    value: the latest period Cloud Monitor has published, and MISSED_PERIODS more."""
    return PUBLISH_LAG + timedelta(seconds=period * (1 + MISSED_PERIODS))


def _age(age: timedelta) -> Refusal:
    """A datapoint's age as a person reads it: minutes, hours past two, days past two."""
    minutes = int(age.total_seconds()) // 60
    if minutes < 120:
        return Refusal(AGES[0], count=minutes)
    return (
        Refusal(AGES[1], count=minutes // 60)
        if minutes < 48 * 60
        else Refusal(AGES[2], count=minutes // 1440)
    )
