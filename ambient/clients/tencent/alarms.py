"""Alarm history: Cloud Monitor's alarms and CLS alert records, read together."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from ambient.clients.tencent.client import TencentCloud, ms
from ambient.clients.tencent.errors import (
    ANSWER,
    LIST_CHANGED,
    PRODUCT_NAMES,
    TencentAnswerError,
    TencentAuthError,
    TencentClockError,
    TencentCloudError,
    TencentListChangedError,
    TencentNotFoundError,
    TencentRetryableError,
)
from ambient.domain.identifiers import region_name


class AlarmRecord(BaseModel):
    source: str = Field(description="monitor or cls")
    name: str
    status: str = Field(description="ALARM (not recovered), OK, NO_CONF (expired), NO_DATA")
    time: datetime
    level: str | None = None
    target: str | None = Field(default=None, description="alarm object / topic")
    detail: str = ""
    region: str | None = Field(
        default=None, description="the alarm object's region (a CLS alarm's: its topic's)"
    )
    dimensions: dict[str, str] = Field(
        default_factory=dict, description="the alarm object's dimensions (Monitor)"
    )
    ongoing: bool = Field(
        default=False,
        description="began before the window read and had not recovered when read (firing since"
        " its time)",
    )


class UnreadSource(BaseModel):
    """An alarm source that failed while the other answered: named, and why."""

    source: str = Field(description="monitor or cls")
    error: str = Field(description="why it could not be read, as the caller words the error")
    retryable: bool = Field(default=False, description="a passing failure: asking again may work")

    def __str__(self) -> str:
        return f"{self.source} alarms could not be read: {self.error}"


class AlarmHistory(BaseModel):
    alarms: list[AlarmRecord] = Field(default_factory=list, description="newest first")
    unread: list[UnreadSource] = Field(
        default_factory=list, description="sources that could not be read: their alarms are missing"
    )
    unreadable: int = Field(
        default=0,
        description="alarms skipped: answered without a time the API's (missing, not"
        " an integer, not its unit)",
    )
    unreadable_by: dict[str, int] = Field(
        default_factory=dict, description="the alarms skipped of each source (monitor, cls)"
    )

    def skip(self, source: str, skipped: int) -> None:
        """Count ``skipped`` alarms of ``source`` as unreadable."""
        if skipped:
            self.unreadable += skipped
            self.unreadable_by[source] = self.unreadable_by.get(source, 0) + skipped

    def skipped_said(self) -> list[str]:
        """The alarms skipped, said by source as the doors list what they could not read."""
        return [
            f"{n} unreadable alarm{'' if n == 1 else 's'} skipped ({PRODUCT_NAMES[source]})"
            for source, n in self.unreadable_by.items()
        ]


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


# CLS alert records number their status and level (AlertHistoryRecord: Status 0 未恢复,
# 1 已恢复, 2 已失效; AlarmLevel 0 Warn, 1 Info, 2 Critical); said in Cloud Monitor's words.
CLS_ALARM_STATUS: dict[Any, str] = {0: "ALARM", 1: "OK", 2: "NO_CONF"}
CLS_ALARM_LEVEL: dict[Any, str] = {0: "Warn", 1: "Info", 2: "Critical"}


# Said of a source whose alarms changed at each of its reads (an alert flapping, say).
ALARMS_CHANGED = "the alarms changed while they were read; not listed this time"

# How far before a window an alarm still firing is looked for (``ongoing``): a month.
ONGOING_LOOKBACK = timedelta(days=30)

# Ours: an alarm's time is the API's integer (Monitor's in the range asked, which its reference
# says it filters; CLS's in ms), so one without is not its answer.
NO_TIME = "alarms without a time"
# A CLS CreateTime plausible as ms: from 1973 (below: seconds) to year 5138 (above: not ms).
CLS_MS = (10**11, 10**14)


async def list_alarms(
    tc: TencentCloud,
    start: datetime,
    end: datetime,
    *,
    region: str | None = None,
    ongoing: bool = False,
    said: Callable[[TencentCloudError], str] = str,
    fail_fast: bool = False,
    firing_until: datetime | None = None,
) -> AlarmHistory:
    """Cloud Monitor alarm history and CLS alert records in the window, newest first.

    Both APIs find an alarm by when it began (DescribeAlarmHistories' StartTime/EndTime "对应
    FirstOccurTime"), so one firing since before ``start`` is not in the window; ``ongoing``
    adds those not recovered (up to ONGOING_LOOKBACK before), each once, marked ``ongoing``.
    One source refused (a CAM policy without its action, CLS not opened in the region, a rate
    limit past the retries): the other's alarms are answered and it is named in ``unread``,
    its error as ``said`` words it (a door's sentence saying what to fix; the API's code and
    message by default); a day's read refused whose look-back was read is named "(the day's)",
    its alarms still firing listed. Nothing read: the call fails, with Monitor's error.
    ``fail_fast``: a day read failing for now raises at once, nothing more read (for a caller
    that will ask again). ``firing_until`` (with ``ongoing``): those begun after ``end`` up to
    then and firing still, marked ``ongoing`` too (a briefing prepared at 05:00: a disk full
    since 02:00 is the morning's open problem, and "no alarm is open" was said of it)."""
    history = AlarmHistory()
    errors: list[TencentCloudError] = []
    looked_back = False
    for source, read in (("monitor", _monitor_alarms), ("cls", _cls_alarms)):
        failed: TencentCloudError | None = None
        try:
            found, skipped = await read(tc, start, end, region, False)
            history.alarms += found
            history.skip(source, skipped)
        except TencentCloudError as exc:
            if fail_fast and isinstance(exc, TencentRetryableError):
                raise
            errors.append(failed := exc)
        # The windows meet at start and neither holds it twice: no alarm is in both. Read when
        # the day's read failed too (those still firing are the open problems a user asks for
        # first), but when the keys or the clock were refused (they sign every request alike)
        # or the source was not found (the same action, region and account; no reference
        # documents a ResourceNotFound of the time asked): it would be refused again. Its own
        # failure (a rate limit) leaves the day's alarms read, and is said.
        refused_again = TencentAuthError | TencentClockError | TencentNotFoundError
        if not ongoing or isinstance(failed, refused_again):
            history.unread += [_unread(source, failed, said)] if failed else []
            continue
        try:
            earlier, skipped = await read(tc, start - ONGOING_LOOKBACK, start, region, True)
        except TencentCloudError as exc:
            # After the day's own failure, the source is said unread once, by the day's error;
            # asking again may read it if either failure was a passing one.
            unread = _unread(source, failed, said) if failed else None
            if unread is not None and isinstance(exc, TencentRetryableError):
                unread.retryable = True
            history.unread.append(unread or _unread(f"{source} (firing since before)", exc, said))
            continue
        looked_back = True
        history.alarms += [a.model_copy(update={"ongoing": True}) for a in earlier]
        history.skip(source, skipped)
        history.unread += [_unread(f"{source} (the day's)", failed, said)] if failed else []
        if firing_until is not None and firing_until > end:
            try:
                since_end, skipped = await read(tc, end, firing_until, region, True)
            except TencentCloudError as exc:
                history.unread.append(_unread(f"{source} (firing since midnight)", exc, said))
                continue
            history.alarms += [a.model_copy(update={"ongoing": True}) for a in since_end]
            history.skip(source, skipped)
    if len(errors) == 2 and not looked_back:
        raise errors[0]
    # Each alarm names its own region, and an answer may hold other regions' (Monitor's Region
    # is optional in its API reference). A region asked for: its alarms (one naming none may be
    # its own); none: all the answer holds.
    history.alarms = [a for a in history.alarms if region is None or a.region in (None, region)]
    history.alarms.sort(key=lambda a: a.time, reverse=True)
    return history


def _skipped(times: list[datetime | None], field_said: str) -> int:
    """How many alarms of a read had no time the API's (``field_said``: which); every one of
    them is no day of none but an answer that is not the API's."""
    skipped = times.count(None)
    if skipped and skipped == len(times):
        raise TencentAnswerError(
            ANSWER,
            f"the answer is not the API's: {skipped} {NO_TIME} {field_said}: check the way "
            "to the API (a proxy, AMBIENT_TENCENTCLOUD_ENDPOINT)",
        )
    return skipped


def _alarm_time(value: Any, low: int, high: int, per_second: int) -> datetime | None:
    """An alarm's time when it is an integer in [low, high] (``per_second``: 1 for seconds,
    1000 for ms); None for any other, an alarm the read cannot place."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return None
    return datetime.fromtimestamp(value / per_second, UTC)


def _unread(
    source: str, exc: TencentCloudError, said: Callable[[TencentCloudError], str]
) -> UnreadSource:
    retryable = isinstance(exc, TencentRetryableError)
    return UnreadSource(source=source, error=said(exc), retryable=retryable)


async def _monitor_alarms(
    tc: TencentCloud, start: datetime, end: datetime, region: str | None, open_only: bool
) -> tuple[list[AlarmRecord], int]:
    # DescribeAlarmHistories' API reference: Region "公共参数，此参数为可选参数", each alarm
    # naming its own (Histories[].Region).
    # AlarmStatus "ALARM": 未恢复 (the API reference's filter of DescribeAlarmHistories).
    status = {"AlarmStatus": ["ALARM"]} if open_only else {}
    # An alarm is found when its FirstOccurTime is "晚于 StartTime" and "早于 EndTime": asked
    # from a second before, one at ``start`` is found (`_within`).
    low, high = math.ceil(start.timestamp()) - 1, math.ceil(end.timestamp())
    params = {
        "Module": "monitor",
        # Oldest first: an alarm that begins while the pages are read comes after them
        # (newest first, the default, it moved every later page: one listed twice).
        "Order": "ASC",
        "StartTime": low,
        "EndTime": high,
        **status,
    }
    try:
        # Paged by PageNumber with the checks of a list paged by Offset: read again from its
        # first page when it changed while read, short of its total not said whole. Told
        # apart by AlarmId (AlarmHistory: 告警历史Id), one alarm however often it is served.
        histories = await tc.paged(
            "monitor",
            "DescribeAlarmHistories",
            params,
            "Histories",
            "AlarmId",
            by_number=True,
            region=region,
        )
    except TencentListChangedError:
        raise TencentListChangedError(LIST_CHANGED, ALARMS_CHANGED) from None
    times = [_alarm_time(h.get("FirstOccurTime"), low, high, 1) for h in histories]
    skipped = _skipped(
        times, "in the range asked (DescribeAlarmHistories' FirstOccurTime, an integer of seconds)"
    )
    alarms = [
        AlarmRecord(
            source="monitor",
            name=h.get("PolicyName") or _alarm_name(h),
            status=h.get("AlarmStatus") or "",
            time=when,
            level=h.get("AlarmLevel"),
            target=h.get("AlarmObject"),
            detail=h.get("Content") or "",
            # Written as a short name ("gz"), as the API reference's examples show.
            region=region_name(h.get("Region")),
            dimensions=_dimensions(h.get("Dimensions")),
        )
        for h, when in zip(histories, times, strict=True)
        if when is not None
    ]
    return _within(alarms, start, end), skipped


async def _cls_alarms(
    tc: TencentCloud, start: datetime, end: datetime, region: str | None, open_only: bool
) -> tuple[list[AlarmRecord], int]:
    # Filter status "0": 未恢复 (DescribeAlertRecordHistory's Filters).
    status = {"Filters": [{"Key": "status", "Values": ["0"]}]} if open_only else {}
    # Its reference does not say whether From and To are in the range: a millisecond wider
    # and the range kept here (`_within`).
    low, high = ms(start) - 1, ms(end) + 1
    params = {"From": low, "To": high, **status}
    try:
        records = await tc.paged(
            "cls",
            "DescribeAlertRecordHistory",
            params,
            "Records",
            # AlertHistoryRecord.RecordId "告警历史ID", given every record: one record, whose
            # Status and Duration change while it is read.
            "RecordId",
            region=region,
        )
    except TencentListChangedError:
        raise TencentListChangedError(LIST_CHANGED, ALARMS_CHANGED) from None
    # Its reference does not say From/To filter on CreateTime (a record begun before, still
    # open, may be answered): a time in ms out of the range is placed, and left to `_within`.
    times = [_alarm_time(r.get("CreateTime"), *CLS_MS, 1000) for r in records]
    skipped = _skipped(times, "in ms (DescribeAlertRecordHistory's CreateTime)")
    alarms = [
        AlarmRecord(
            source="cls",
            name=r.get("AlarmName") or "",
            status=CLS_ALARM_STATUS.get(r.get("Status"), str(r.get("Status") or "")),
            time=when,
            level=CLS_ALARM_LEVEL.get(r.get("AlarmLevel"), str(r.get("AlarmLevel") or "") or None),
            target=r.get("TopicName") or r.get("TopicId"),
            detail=r.get("Trigger") or "",
            # Each record names its topic's region (AlertHistoryRecord.Region): where the
            # alarm's logs and cluster are.
            region=region_name(r.get("Region")),
        )
        for r, when in zip(records, times, strict=True)
        if when is not None
    ]
    return _within(alarms, start, end), skipped


def _within(alarms: list[AlarmRecord], start: datetime, end: datetime) -> list[AlarmRecord]:
    """The alarms that began in [start, end), as the window and its look-back meet at start:
    an alarm that began on a window's first second (alarms begin on the minute: midnight's) is
    in it, and not also in the one before (an API that holds both ends answers it to both)."""
    return [a for a in alarms if start <= a.time < end]


def _alarm_name(history: dict[str, Any]) -> str:
    """A name for an alarm without a policy name: its metric, else its type (an event alarm's)."""
    metrics = history.get("MetricsInfo") or [{}]
    return str(metrics[0].get("MetricName") or f"{history.get('AlarmType') or 'monitor'} alarm")
