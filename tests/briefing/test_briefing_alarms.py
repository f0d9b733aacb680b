"""A day of many alarms in the briefing: counted whole, the open ones listed first."""

from __future__ import annotations

import json
import time as real_time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from tencentcloud.common import abstract_client

from activities.briefing import BriefingActivities
from ambient.briefing.config import BriefingConfig, ClsLogSpec, DayPlan, plan_for
from ambient.briefing.models import BriefingInputs, PreparedBriefing, PrepareRequest, SourceNote
from ambient.briefing.offline import offline_draft
from ambient.briefing.writer import llm_prompt
from ambient.clients.llm import LLMClient
from ambient.clients.tencent.alarms import AlarmHistory, AlarmRecord, list_alarms
from ambient.clients.tencent.client import TencentCloud
from ambient.clients.tencent.errors import (
    TencentAnswerError,
    TencentAuthError,
    TencentClockError,
    TencentCloudError,
    TencentNotFoundError,
    TencentRetryableError,
)
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.briefings import BriefingRepository
from ambient.storage.models import Briefing, Event
from tests.briefing.harness import make_user
from tests.standins.tencent_api import TencentApi
from tests.support.servers import serve
from tests.support.tencent import standin_tencent


async def test_a_day_of_more_than_fifty_alarms_is_counted_whole_and_lists_the_open_ones(
    settings: Settings, db: Database
) -> None:
    """An alarm storm: 70 recovered alarms in the evening after 60 that stayed open in the
    morning. The briefing kept the newest 50 and counted those: "50 alarms (0 not resolved)",
    "Yesterday was quiet"-like, while its sources said 130 alarms."""
    day = plan_for(datetime(2026, 11, 23, tzinfo=UTC).date(), BriefingConfig())  # Shanghai
    api = TencentApi()

    def alarm(name: str, status: str, minutes: int) -> dict[str, object]:
        at = day.logs_from + timedelta(minutes=minutes)
        return {"PolicyName": name, "AlarmStatus": status, "FirstOccurTime": int(at.timestamp())}

    api.monitor_alarms = [alarm("disk-full", "ALARM", 60 + i) for i in range(60)]
    api.monitor_alarms += [alarm("cpu-high", "OK", 1000 + i) for i in range(70)]
    prepared, row = await _prepared(settings, db, api, day)
    assert {s.source: s.detail for s in prepared.sources}["alarms"] == "130 alarms"
    assert "- 告警 130 条（未恢复 60 条）" in row.report_markdown
    assert "有 60 条告警未恢复，包括 disk-full。" in prepared.spoken_text
    # The table lists 50: the open ones first.
    table = row.report_markdown.split("## 告警")[1].split("## 数据源")[0]
    assert table.count("| disk-full |") == 50 and "| cpu-high |" not in table


async def test_an_alarm_with_no_data_is_said_apart_not_counted_open(
    settings: Settings, db: Database
) -> None:
    """Cloud Monitor's NO_DATA (数据不足: the metric had too little data to tell) was counted
    as an open alarm ("有 2 条告警未恢复"), where the nightly triage, reading ALARM (未恢复)
    alone, never took it up; it is now said apart, as an alarm with no data."""
    await make_user(db, "alice")
    day = plan_for(datetime(2026, 11, 23, tzinfo=UTC).date(), BriefingConfig())  # Shanghai
    api = TencentApi()

    def alarm(name: str, status: str, hours: int) -> dict[str, object]:
        at = day.logs_from + timedelta(hours=hours)
        return {
            "PolicyName": name,
            "AlarmStatus": status,
            "FirstOccurTime": int(at.timestamp()),
            "AlarmObject": f"ins-{hours}",
        }

    api.monitor_alarms = [
        alarm("net-in", "OK", 1),
        alarm("cpu-usage", "NO_DATA", 2),
        alarm("disk-full", "ALARM", 3),
    ]
    prepared, row = await _prepared(settings, db, api, day)
    assert "- 告警 3 条（未恢复 1 条，数据不足 1 条）" in row.report_markdown
    assert "有 1 条告警未恢复，包括 disk-full。" in prepared.spoken_text
    assert "有 1 条告警数据不足，包括 cpu-usage。" in prepared.spoken_text
    assert "- cpu-usage (ins-2)：数据不足" in row.report_markdown
    # Listed the open one first, then the one with no data.
    table = row.report_markdown.split("## 告警")[1].split("## 数据源")[0]
    names = [line.split(" | ")[2] for line in table.splitlines() if line.startswith("| 2026-")]
    assert names == ["disk-full", "cpu-usage", "net-in"], table


def test_a_day_whose_only_alarm_has_no_data_is_not_said_to_have_an_open_one() -> None:
    """Said and told to the model as no alarm open, one with no data: a day whose one alarm
    was NO_DATA was "1 open alarm", and the model read "(1 not resolved)"."""
    at = datetime(2026, 11, 22, 3, tzinfo=UTC)
    silent = AlarmRecord(source="monitor", name="cpu-usage", status="NO_DATA", time=at)
    inputs = BriefingInputs(
        date="2026-11-22", language="en", alarms_configured=True, alarms=[silent]
    )
    draft = offline_draft(inputs)
    assert (
        draft.headline == "No logs were recorded yesterday, and no alarm is open (1 with no data)"
    )
    assert "1 alarm has no data: cpu-usage." in draft.spoken_text
    assert "still open" not in draft.spoken_text
    assert "1 alarm (0 not resolved, 1 with no data" in llm_prompt(inputs)
    errors = inputs.model_copy(update={"errors": 2, "log_lines": 10, "logs_configured": True})
    assert offline_draft(errors).headline == (
        "Yesterday: 2 errors, 0 open alarms, 1 alarm with no data, no problem needs a person"
    )


async def test_an_alarm_firing_since_before_yesterday_is_in_the_briefing_once_with_its_start(
    settings: Settings, db: Database
) -> None:
    """DescribeAlarmHistories finds an alarm by its first occurrence (StartTime/EndTime "对应
    FirstOccurTime"): a disk full since the day before yesterday and still firing was not in
    the morning's briefing at all. It is, said with when it began; one that began in the window
    is counted once, and one from before that recovered is not listed."""
    day = plan_for(datetime(2026, 11, 23, tzinfo=UTC).date(), BriefingConfig())  # Shanghai
    api = TencentApi()

    def alarm(name: str, status: str, at: datetime) -> dict[str, object]:
        return {"PolicyName": name, "AlarmStatus": status, "FirstOccurTime": int(at.timestamp())}

    api.monitor_alarms = [
        alarm("disk-full", "ALARM", day.logs_from - timedelta(days=2)),
        alarm("cpu-high", "OK", day.logs_from - timedelta(days=1)),
        alarm("mem-high", "ALARM", day.logs_from + timedelta(hours=2)),
    ]
    api.cls_records = [
        {
            "AlarmName": "5xx burst",
            "Status": 0,
            "CreateTime": int((day.logs_from - timedelta(hours=5)).timestamp() * 1000),
            "TopicName": "nginx",
        }
    ]
    prepared, row = await _prepared(settings, db, api, day)
    assert {s.source: s.detail for s in prepared.sources}["alarms"] == "3 alarms"
    assert "- 告警 3 条（未恢复 3 条）" in row.report_markdown
    table = row.report_markdown.split("## 告警")[1].split("## 数据源")[0]
    assert table.count("| mem-high |") == 1 and "| cpu-high |" not in table
    # Shanghai time: the disk has been full since midnight on the 20th, the burst since 19:00
    # on the 21st; the day read is the 22nd.
    assert "| 2026-11-20 00:00 | monitor | disk-full | ALARM（自 2026-11-20 00:00 起） |" in table
    assert "| 2026-11-21 19:00 | cls | 5xx burst | ALARM（自 2026-11-21 19:00 起） |" in table
    assert "有 3 条告警未恢复，包括 mem-high。" in prepared.spoken_text


async def test_an_alarm_begun_since_midnight_and_firing_as_the_briefing_is_prepared_is_said(
    settings: Settings, db: Database
) -> None:
    """A disk full since 02:00 today, firing at 05:00's preparation: the briefing read the
    alarms up to midnight and said "没有未恢复的告警" of it, at 07:00 (a review). It is listed
    open, with when it began; one begun since and recovered is not, nor one a day later."""
    day = plan_for(datetime(2026, 11, 23, tzinfo=UTC).date(), BriefingConfig())  # Shanghai
    api = TencentApi()

    def alarm(name: str, status: str, at: datetime) -> dict[str, object]:
        return {"PolicyName": name, "AlarmStatus": status, "FirstOccurTime": int(at.timestamp())}

    api.monitor_alarms = [
        alarm("disk-full", "ALARM", day.logs_to + timedelta(hours=2)),
        alarm("cpu-high", "OK", day.logs_to + timedelta(hours=3)),
        alarm("later", "ALARM", day.logs_to + timedelta(days=2)),
    ]
    prepared, row = await _prepared(settings, db, api, day)
    assert "没有未恢复" not in prepared.headline, prepared.headline
    said = "有 1 条告警未恢复，包括 disk-full（自 2026-11-23 02:00 起）。"
    assert said in prepared.spoken_text, prepared.spoken_text
    table = row.report_markdown.split("## 告警")[1].split("## 数据源")[0]
    assert "| disk-full | ALARM（自 2026-11-23 02:00 起） |" in table, table
    assert "cpu-high" not in table and "later" not in table


async def _prepared(
    settings: Settings, db: Database, api: TencentApi, day: DayPlan
) -> tuple[PreparedBriefing, Briefing]:
    """Alice's briefing of ``day`` prepared against the stand-in, and its stored row."""
    async with serve(api.app()) as base:
        acts = BriefingActivities(db, LLMClient(settings), standin_tencent(base), settings)
        request = PrepareRequest(
            user="alice", task_id="daily-briefing/alice", config=BriefingConfig(), day=day
        )
        prepared = await ActivityEnvironment().run(acts.prepare_briefing, request)
    async with db.session() as session:
        row = await BriefingRepository(session).get("alice", day.date)
    assert row is not None
    return prepared, row


async def test_a_refused_read_of_the_alarms_firing_since_before_keeps_the_windows_alarms() -> None:
    """The look-back (the 30 days before the window) is its own read: rate-limited, it left
    the window's alarms of that source unread too, and the source said not read at all."""
    day = plan_for(datetime(2026, 11, 23, tzinfo=UTC).date(), BriefingConfig())
    api = TencentApi()
    at = int((day.logs_from + timedelta(hours=2)).timestamp())
    api.monitor_alarms = [{"PolicyName": "mem-high", "AlarmStatus": "ALARM", "FirstOccurTime": at}]

    class LookBackLimited(TencentCloud):
        async def call(
            self, product: str, action: str, params: dict[str, Any], *, region: str | None = None
        ) -> dict[str, Any]:
            if "AlarmStatus" in params:  # the look-back's filter: not recovered
                raise TencentRetryableError("RequestLimitExceeded", "too many requests")
            return await super().call(product, action, params, region=region)

    async with serve(api.app()) as base:
        tc = standin_tencent(base)
        limited = LookBackLimited(tc.credential, region="ap-guangzhou")
        limited.__dict__.update(tc.__dict__)
        history = await list_alarms(limited, day.logs_from, day.logs_to, ongoing=True)
    assert [a.name for a in history.alarms] == ["mem-high"]
    assert [(u.source, u.retryable) for u in history.unread] == [
        ("monitor (firing since before)", True)
    ]


@pytest.mark.parametrize("ends", ["neither", "both"])
async def test_an_alarm_that_began_at_midnight_is_the_days_once(ends: str) -> None:
    """Alarms begin on the minute, midnight's too. DescribeAlarmHistories finds an alarm whose
    FirstOccurTime is "晚于 StartTime" and "早于 EndTime": asked from midnight, one that began
    at midnight was in no day's briefing, nor among those firing since before; an API holding
    both ends listed it twice (in the day, and as firing since before) and in the day before
    too. Either way it is the day's, once; CLS's alert records likewise."""
    day = plan_for(datetime(2026, 11, 23, tzinfo=UTC).date(), BriefingConfig())  # Shanghai
    api = TencentApi(alarm_ends=ends)  # type: ignore[arg-type]
    midnight, next_midnight = int(day.logs_from.timestamp()), int(day.logs_to.timestamp())
    api.monitor_alarms = [
        {"PolicyName": "disk-full", "AlarmStatus": "ALARM", "FirstOccurTime": midnight},
        {"PolicyName": "cpu-high", "AlarmStatus": "ALARM", "FirstOccurTime": next_midnight},
    ]
    api.cls_records = [
        {"AlarmName": "5xx burst", "Status": 0, "CreateTime": midnight * 1000},
        {"AlarmName": "slow", "Status": 0, "CreateTime": next_midnight * 1000},
    ]
    async with serve(api.app()) as base:
        tc = standin_tencent(base)
        history = await list_alarms(tc, day.logs_from, day.logs_to, ongoing=True)
        day_before = await list_alarms(tc, day.logs_from - timedelta(days=1), day.logs_from)
    assert sorted((a.name, a.ongoing) for a in history.alarms) == [
        ("5xx burst", False),
        ("disk-full", False),
    ]
    assert day_before.alarms == []


async def test_alarms_with_empty_fields_are_listed_not_a_failed_read() -> None:
    """Tencent Cloud answers a field without a value as null: a Monitor alarm with a null
    Content or AlarmStatus (an event alarm's), or a CLS record with a null Trigger, failed
    the whole alarm read (a validation error, not an API error: the briefing's alarms were
    lost with it, and retried as if passing)."""
    day = plan_for(datetime(2026, 11, 23, tzinfo=UTC).date(), BriefingConfig())
    at = int((day.logs_from + timedelta(hours=2)).timestamp())
    api = TencentApi()
    api.monitor_alarms = [
        {
            **{"PolicyName": None, "AlarmType": "EVENT", "MetricsInfo": None, "Content": None},
            **{"AlarmStatus": None, "FirstOccurTime": at, "AlarmLevel": None, "Dimensions": None},
        },
        {"PolicyName": "cpu-high", "AlarmStatus": "OK", "FirstOccurTime": at + 60},
    ]
    api.cls_records = [
        {"AlarmName": "5xx", "Status": 1, "CreateTime": at * 1000, "Trigger": None, "TopicId": "t"}
    ]
    async with serve(api.app()) as base:
        history = await list_alarms(standin_tencent(base), day.logs_from, day.logs_to)
    assert [(a.source, a.name, a.status, a.detail) for a in history.alarms] == [
        ("monitor", "cpu-high", "OK", ""),
        ("monitor", "EVENT alarm", "", ""),
        ("cls", "5xx", "OK", ""),
    ]
    assert history.unread == []


async def test_an_alarm_that_begins_while_the_pages_are_read_leaves_the_count_true() -> None:
    """DescribeAlarmHistories answers newest first by default: an alarm that began while a
    read up to now was paging (an alarm storm, when alarms are asked for) moved every later
    page by one, and the alarm at the end of a page was listed twice."""
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(hours=6)
    api = TencentApi()
    api.monitor_alarms = [
        {"PolicyName": f"p{i}", "AlarmStatus": "OK", "FirstOccurTime": int(start.timestamp()) + i}
        for i in range(150)
    ]
    newest = {"PolicyName": "new", "AlarmStatus": "ALARM", "FirstOccurTime": int(now.timestamp())}
    # Before the second page is asked, the new alarm begins.
    api.before["DescribeAlarmHistories"] = lambda: api.before.__setitem__(
        "DescribeAlarmHistories", lambda: api.monitor_alarms.append(newest)
    )
    async with serve(api.app()) as base:
        history = await list_alarms(standin_tencent(base), start, now + timedelta(seconds=1))
    names = [a.name for a in history.alarms if a.source == "monitor"]
    assert len(names) == len(set(names))
    assert set(names) >= {f"p{i}" for i in range(150)}


async def test_alarms_that_change_at_each_read_fail_the_attempt_before_the_logs_are_read(
    settings: Settings, db: Database
) -> None:
    """An alert flapping while the firing ones are read, at each of the client's reads: the
    preparation's attempt fails (a passing failure, read again by the next attempt). The logs
    were read first, a whole day of them, and read again by every attempt; now the alarms
    come first and the attempt fails before any log is asked for."""
    day = plan_for(datetime(2026, 11, 23, tzinfo=UTC).date(), BriefingConfig())
    api = TencentApi()
    oldest = int((day.logs_from - timedelta(days=10)).timestamp())
    api.monitor_alarms = [
        {"PolicyName": f"disk-{i}", "AlarmStatus": "ALARM", "FirstOccurTime": oldest + 60 * i}
        for i in range(150)
    ]
    api.logs = [{"time": int(day.logs_from.timestamp() * 1000) + 1, "json": {"msg": "ok"}}]
    recovering = iter(range(150))

    def recover() -> None:
        if "AlarmStatus" in api.calls[-1][2]:  # the look-back's pages: one recovers each time
            api.monitor_alarms[next(recovering)].update(AlarmStatus="OK")
        api.before["DescribeAlarmHistories"] = recover

    api.before["DescribeAlarmHistories"] = recover
    config = BriefingConfig(log_source=ClsLogSpec(topic_id=api.log_topic))
    async with serve(api.app()) as base:
        acts = BriefingActivities(db, LLMClient(settings), standin_tencent(base), settings)
        request = PrepareRequest(
            user="alice", task_id="daily-briefing/alice", config=config, day=day
        )
        with pytest.raises(ApplicationError, match="the alarms changed while they were read"):
            await ActivityEnvironment().run(acts.prepare_briefing, request)
    assert [c[1] for c in api.calls if c[1] == "SearchLog"] == []


async def test_a_days_alarms_without_a_time_are_said_unreadable_in_its_sources(
    settings: Settings, db: Database
) -> None:
    """An alarm whose FirstOccurTime is not the API's (in ms, here) was dropped by the day
    unsaid, or failed the whole read; now its count is said beside the alarms read."""
    day = plan_for(datetime(2026, 11, 23, tzinfo=UTC).date(), BriefingConfig())
    api = TencentApi()
    at = int((day.logs_from + timedelta(hours=2)).timestamp())
    window = [
        {"AlarmId": f"alarm-{n}", "PolicyName": f"disk-{n}", "AlarmStatus": "OK"}
        | {"FirstOccurTime": at * 1000 if n == 2 else at + n}
        for n in range(3)
    ]
    api.raw["DescribeAlarmHistories"] = [
        (200, "application/json", json.dumps({"Response": answer}).encode())
        for answer in ({"Histories": window, "TotalCount": 3}, {"Histories": [], "TotalCount": 0})
    ]
    prepared, _ = await _prepared(settings, db, api, day)
    assert {s.source: s.detail for s in prepared.sources}["alarms"] == "2 alarms, 1 unreadable"


class _DayRefused(TencentCloud):
    """Tencent Cloud refusing the day's alarm reads of ``refused`` (no status filter: not a
    look-back) with ``error`` and ``code``, the look-backs too when ``look_back``; ``asked``
    holds each alarm read asked (action, whether a look-back)."""

    refused: tuple[str, ...] = ()
    error: type[TencentCloudError] = TencentRetryableError
    code, look_back = "RequestLimitExceeded", False
    # The look-backs' own refusal, when ``look_back`` (``error`` by default).
    back_error: type[TencentCloudError] | None = None
    asked: list[tuple[str, bool]]

    async def call(
        self, product: str, action: str, params: dict[str, Any], *, region: str | None = None
    ) -> dict[str, Any]:
        looking_back = "AlarmStatus" in params or "Filters" in params
        self.asked.append((action, looking_back))
        if action in self.refused and looking_back and self.look_back and self.back_error:
            raise self.back_error("RequestLimitExceeded", "refused")
        if action in self.refused and (self.look_back or not looking_back):
            raise self.error(self.code, "refused")
        return await super().call(product, action, params, region=region)


def _refusing(tc: TencentCloud, refused: tuple[str, ...], **how: Any) -> _DayRefused:
    refusing = _DayRefused(tc.credential, region="ap-guangzhou")
    refusing.__dict__.update(tc.__dict__)
    refusing.refused, refusing.asked = refused, []
    refusing.__dict__.update(how)
    return refusing


async def _history_refused(
    refused: tuple[str, ...], **how: Any
) -> tuple[AlarmHistory, list[tuple[str, bool]]]:
    """The alarms of a day whose ``refused`` day reads fail, a disk full since three days
    before it (Monitor) and a 5xx burst since two (CLS), both still firing; and the reads asked."""
    day = plan_for(datetime(2026, 11, 23, tzinfo=UTC).date(), BriefingConfig())
    api = TencentApi()
    since = day.logs_from - timedelta(days=3)
    api.monitor_alarms = [
        {
            "PolicyName": "disk-full",
            "AlarmStatus": "ALARM",
            "FirstOccurTime": int(since.timestamp()),
        }
    ]
    burst = int((day.logs_from - timedelta(days=2)).timestamp() * 1000)
    api.cls_records = [{"AlarmName": "5xx burst", "Status": 0, "CreateTime": burst}]
    async with serve(api.app()) as base:
        refusing = _refusing(standin_tencent(base), refused, **how)
        history = await list_alarms(refusing, day.logs_from, day.logs_to, ongoing=True)
        return history, refusing.asked


async def test_alarms_still_firing_are_listed_when_the_days_read_of_their_source_failed() -> None:
    """Monitor's read of the day rate-limited past its retries: its alarms still firing from
    before (a disk full for three days) were not even asked for, and the briefing's open
    problems went without them. They are read and listed; the day's read is said unread."""
    history, _ = await _history_refused(("DescribeAlarmHistories",))
    assert sorted((a.name, a.ongoing) for a in history.alarms) == [
        ("5xx burst", True),
        ("disk-full", True),
    ]
    assert [(u.source, u.retryable) for u in history.unread] == [("monitor (the day's)", True)]


async def test_both_days_reads_failed_still_list_the_alarms_firing_since_before() -> None:
    """Both sources' reads of the day failed: the whole call failed, the open problems that
    could be read too."""
    refused = ("DescribeAlarmHistories", "DescribeAlertRecordHistory")
    history, _ = await _history_refused(refused)
    assert sorted(a.name for a in history.alarms) == ["5xx burst", "disk-full"]
    assert [u.source for u in history.unread] == ["monitor (the day's)", "cls (the day's)"]


async def test_a_source_whose_day_and_look_back_both_failed_is_said_unread_once() -> None:
    """Monitor's day read and its look-back both failed: the source is said unread once, as
    "monitor" by the day's error, not also as "monitor (firing since before)"; CLS is listed."""
    history, asked = await _history_refused(("DescribeAlarmHistories",), look_back=True)
    assert ("DescribeAlarmHistories", True) in asked  # the look-back was asked, and failed
    assert [a.name for a in history.alarms] == ["5xx burst"]
    assert [(u.source, u.retryable) for u in history.unread] == [("monitor", True)]


async def test_a_source_whose_day_failed_for_good_and_look_back_for_now_is_asked_again() -> None:
    """Monitor's day read answered what is not the API's (for good) and its look-back was
    rate-limited (for now): the source was said unread by the day's error alone, not to be
    asked again, and the briefing went without its alarms still firing, which another attempt
    could read."""
    history, _ = await _history_refused(
        ("DescribeAlarmHistories",),
        look_back=True,
        error=TencentAnswerError,
        code="not the API's answer",
        back_error=TencentRetryableError,
    )
    assert [(u.source, u.retryable) for u in history.unread] == [("monitor", True)]


async def test_a_days_read_refused_by_the_keys_asks_no_look_back() -> None:
    """Monitor's day read refused by CAM (AuthFailure): its look-back was asked too, the same
    action refused again. It is not; the source is said unread, CLS's alarms listed."""
    history, asked = await _history_refused(
        ("DescribeAlarmHistories",), error=TencentAuthError, code="AuthFailure"
    )
    assert ("DescribeAlarmHistories", True) not in asked
    assert [a.name for a in history.alarms] == ["5xx burst"]
    assert [(u.source, u.retryable) for u in history.unread] == [("monitor", False)]


async def test_a_days_alarm_read_failing_for_now_reads_no_look_back_on_an_attempt_not_the_last(
    settings: Settings, db: Database
) -> None:
    """Monitor's day read rate-limited on an attempt that is not the last: the attempt fails
    (the next reads again), yet the 30-day look-backs, and CLS, were read first and thrown
    away. The attempt fails at the day's failure, nothing more asked."""
    day = plan_for(datetime(2026, 11, 23, tzinfo=UTC).date(), BriefingConfig())
    async with serve(TencentApi().app()) as base:
        refusing = _refusing(standin_tencent(base), ("DescribeAlarmHistories",))
        acts = BriefingActivities(db, LLMClient(settings), refusing, settings)
        request = PrepareRequest(
            user="alice", task_id="daily-briefing/alice", config=BriefingConfig(), day=day
        )
        with pytest.raises(ApplicationError, match="RequestLimitExceeded"):
            await ActivityEnvironment().run(acts.prepare_briefing, request)
    assert refusing.asked == [("DescribeAlarmHistories", False)]


class _Reached(TencentApi):
    """The Tencent stand-in noting every action that reached it, refused at its door or not."""

    reached: list[str]

    async def handle(self, request: Request) -> Response:
        self.reached.append(request.headers["x-tc-action"])
        return await super().handle(request)


async def test_a_days_read_refused_for_this_machines_clock_asks_no_look_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """This machine's clock six minutes slow: the stand-in refuses the day's read
    AuthFailure.SignatureExpire, as the API does. The look-back, signed by the same clock, was
    asked too and refused again. Each source is asked once, and the call fails saying why."""
    day = plan_for(datetime(2026, 11, 23, tzinfo=UTC).date(), BriefingConfig())
    api = _Reached()
    api.reached = []
    slow = SimpleNamespace(time=lambda: real_time.time() - 360)
    async with serve(api.app()) as base:
        monkeypatch.setattr(abstract_client, "time", slow)
        with pytest.raises(TencentClockError, match="SignatureExpire"):
            await list_alarms(standin_tencent(base), day.logs_from, day.logs_to, ongoing=True)
    assert api.reached == ["DescribeAlarmHistories", "DescribeAlertRecordHistory"]


async def test_a_days_read_not_found_asks_no_look_back() -> None:
    """Monitor's day read answered ResourceNotFound: the look-back asks the same action in
    the same region and account, and was refused again. It is not asked, as for the keys and
    the clock; the day's read is said unread, CLS listed."""
    history, asked = await _history_refused(
        ("DescribeAlarmHistories",), error=TencentNotFoundError, code="ResourceNotFound"
    )
    assert ("DescribeAlarmHistories", True) not in asked
    assert [a.name for a in history.alarms] == ["5xx burst"]
    assert [(u.source, u.retryable) for u in history.unread] == [("monitor", False)]


async def test_a_day_read_failing_for_now_raises_the_clouds_own_error_when_asked_to_fail_fast() -> (
    None
):
    """The client told the briefing of a passing day failure through a callback that raised
    Temporal's ApplicationError inside the Tencent Cloud layer. Asked to fail fast, the client
    raises its own TencentRetryableError at the day's failure, nothing more read; the activity
    decides what that means for its attempt."""
    day = plan_for(datetime(2026, 11, 23, tzinfo=UTC).date(), BriefingConfig())
    async with serve(TencentApi().app()) as base:
        refusing = _refusing(standin_tencent(base), ("DescribeAlarmHistories",))
        with pytest.raises(TencentRetryableError, match="RequestLimitExceeded"):
            await list_alarms(refusing, day.logs_from, day.logs_to, ongoing=True, fail_fast=True)
    assert refusing.asked == [("DescribeAlarmHistories", False)]


async def test_a_day_whose_alarms_were_all_skipped_unreadable_is_not_said_quiet(
    settings: Settings, db: Database
) -> None:
    """Yesterday's only Monitor alarm answered without a time the API gives (in ms), beside one
    that began the second before the day: "也没有未恢复的告警" was spoken, the skipped one in the
    sources alone. The spoken briefing and the page say it was skipped, and whose it was."""
    day = plan_for(datetime(2026, 11, 23, tzinfo=UTC).date(), BriefingConfig())
    api = TencentApi()
    at, before = (int(t.timestamp()) for t in (day.logs_from + timedelta(hours=2), day.logs_from))
    served = [
        {"AlarmId": "a-1", "PolicyName": "disk", "AlarmStatus": "OK", "FirstOccurTime": at * 1000},
        {"AlarmId": "a-2", "PolicyName": "cpu", "AlarmStatus": "OK", "FirstOccurTime": before - 1},
    ]
    api.raw["DescribeAlarmHistories"] = [
        (200, "application/json", json.dumps({"Response": answer}).encode())
        for answer in ({"Histories": served, "TotalCount": 2}, {"Histories": [], "TotalCount": 0})
    ]
    prepared, row = await _prepared(settings, db, api, day)
    assert {s.source: s.detail for s in prepared.sources}["alarms"] == "0 alarms, 1 unreadable"
    said = "云监控有 1 条告警的时间无法读取，已跳过。"
    assert "没有未恢复的告警" not in prepared.spoken_text and said in prepared.spoken_text
    assert said in row.content["needs_attention"]
    # A source read, its skipped alarms counted: not a failed source on the page or the event.
    assert "(unreadable)" not in row.report_markdown
    async with db.session() as session:
        event = await session.scalar(select(Event).where(Event.kind == "briefing.prepared"))
    assert event is not None
    assert not [s for s in event.payload["failed_sources"] if s.startswith("alarms")]


def test_a_failed_read_of_the_alarms_begun_since_midnight_is_said_in_the_briefings_words() -> None:
    """Its note named the source by its key, in English on a Chinese briefing, and the
    spoken briefing did not say what was not read (a review)."""
    for language, named, spoken in (
        ("zh", "今天零点以来开始、仍在告警的云监控告警", "今天零点以来开始的云监控告警没能读取"),
        ("en", "Cloud Monitor alarms begun since midnight", "begun since midnight could not be"),
    ):
        inputs = BriefingInputs(
            date="2026-11-22",
            language=language,
            alarms_configured=True,
            log_lines=100,
            notes=[
                SourceNote(source="alarms", ok=True, detail="0 alarms"),
                SourceNote(
                    source="alarms.monitor (firing since midnight)", ok=False, detail="busy"
                ),
            ],
        )
        draft = offline_draft(inputs)
        assert any(named in item for item in draft.needs_attention), draft.needs_attention
        assert spoken in draft.spoken_text, draft.spoken_text
