"""Alarm sources whose lists change at each of their reads, on the preparation's last attempt:
the briefing still goes out, saying which sources it could not read and why."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.testing import ActivityEnvironment

from activities.briefing import BriefingActivities
from ambient.briefing.config import BriefingConfig, ClsLogSpec, plan_for
from ambient.briefing.models import PREPARE_ATTEMPTS, PreparedBriefing, PrepareRequest
from ambient.clients.llm import LLMClient
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.briefings import BriefingRepository
from ambient.storage.models import Event
from tests.standins.tencent_api import TencentApi
from tests.support.servers import serve
from tests.support.tencent import standin_tencent

DAY = plan_for(datetime(2026, 11, 23, tzinfo=UTC).date(), BriefingConfig())


def _changing(api: TencentApi, action: str, rows: list[dict[str, Any]], read: str) -> None:
    """Each later page of ``action``'s ``read`` ("day", "look-back" or "both") finds one row of the
    list gone (an alarm deleted, or recovered: no longer firing), at every read."""

    def gone() -> None:
        params = api.calls[-1][2]
        looking_back = "AlarmStatus" in params or "Filters" in params
        later = params.get("PageNumber", 1) > 1 or params.get("Offset", 0) > 0
        if later and (read == "both" or looking_back == (read == "look-back")):
            rows.pop(-1 if looking_back else 0)  # the day's rows first, the look-back's after
        api.before[action] = gone

    api.before[action] = gone


def _alarms(api: TencentApi, *, day: int, back: int) -> None:
    start, before = DAY.logs_from + timedelta(hours=1), DAY.logs_from - timedelta(days=3)
    api.monitor_alarms = [
        {"PolicyName": f"cpu-{i}", "AlarmStatus": "ALARM", "FirstOccurTime": int(at.timestamp())}
        for i, at in enumerate(
            [start + timedelta(minutes=m) for m in range(day)]
            + [before + timedelta(minutes=m) for m in range(back)]
        )
    ]
    api.cls_records = [
        {"AlarmName": f"5xx-{i}", "Status": 0, "CreateTime": int(at.timestamp() * 1000)}
        for i, at in enumerate(
            [start + timedelta(minutes=m) for m in range(day)]
            + [before + timedelta(minutes=m) for m in range(back)]
        )
    ]


async def _prepared_on_the_last_attempt(
    settings: Settings, db: Database, api: TencentApi, language: str
) -> tuple[PreparedBriefing, str, list[str]]:
    api.logs = [
        {"time": int(DAY.logs_from.timestamp() * 1000) + 1, "json": {"level": "INFO", "msg": "ok"}}
    ]
    config = BriefingConfig(log_source=ClsLogSpec(topic_id=api.log_topic), language=language)
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=PREPARE_ATTEMPTS)
    async with serve(api.app()) as base:
        acts = BriefingActivities(db, LLMClient(settings), standin_tencent(base), settings)
        request = PrepareRequest(
            user="alice", task_id="daily-briefing/alice", config=config, day=DAY
        )
        prepared = await env.run(acts.prepare_briefing, request)
    async with db.session() as session:
        row = await BriefingRepository(session).get("alice", DAY.date)
        event = await session.scalar(select(Event).where(Event.kind == "briefing.prepared"))
    assert row is not None and event is not None
    return prepared, row.report_markdown, event.payload["failed_sources"]


SAID = {
    "en": [
        "Cloud Monitor alarms firing since before the day could not be read: the day's own are "
        "all listed.",
        "CLS alert records of the day could not be read: those still firing since before are "
        "listed.",
    ],
    "zh": [
        "今天以前开始、仍在告警的云监控告警没能读取，当天的告警都已列出。",
        "CLS 当天的告警记录没能读取，此前开始、仍在告警的已列出。",
    ],
}
WHY = {
    "en": "the alarms changed while they were read; not listed this time",
    "zh": "告警在读取时发生了变化，这次没有列出",
}


@pytest.mark.parametrize("language", ["en", "zh"])
async def test_alarm_reads_that_change_at_each_read_are_said_and_the_briefing_goes_out(
    settings: Settings, db: Database, language: str
) -> None:
    """Cloud Monitor's look-back and CLS's day changing at each of their 3 reads, on the last
    attempt: the day's own Monitor alarms, CLS's still firing from before (its look-back, read
    though its day was not) and the logs are in the briefing, and each read that failed is named
    with why, spoken, on the page, among the sources and in the prepared event's failed
    sources."""
    api = TencentApi()
    _alarms(api, day=150, back=150)
    _changing(api, "DescribeAlarmHistories", api.monitor_alarms, "look-back")
    _changing(api, "DescribeAlertRecordHistory", api.cls_records, "day")
    prepared, report, failed = await _prepared_on_the_last_attempt(settings, db, api, language)
    unread = ["alarms.monitor (firing since before)", "alarms.cls (the day's)"]
    assert failed == unread
    assert [(s.source, s.ok) for s in prepared.sources] == [
        ("logs", True),
        ("alarms", True),
        *((source, False) for source in unread),
    ]
    assert {s.detail for s in prepared.sources if not s.ok} == {WHY["en"]}
    assert all(sentence in prepared.spoken_text for sentence in SAID[language])
    sources = report.split("## 数据源" if language == "zh" else "## Sources")[1]
    assert sources.count(WHY[language]) == 2
    assert "1 lines read" in sources and sources.count("cpu-") == 0
    assert report.count("| monitor | cpu-") == 50 and "| cls |" not in report


@pytest.mark.parametrize("language", ["en", "zh"])
async def test_a_quiet_day_whose_alarms_could_not_all_be_read_is_not_said_quiet(
    settings: Settings, db: Database, language: str
) -> None:
    """No error, no alarm read open, but both sources' lists, the day's and those firing since
    before, changed at each read: the whole alarm history unread. The headline said "Yesterday
    was quiet" (昨天一切平稳)."""
    api = TencentApi()
    _alarms(api, day=150, back=150)
    _changing(api, "DescribeAlarmHistories", api.monitor_alarms, "both")
    _changing(api, "DescribeAlertRecordHistory", api.cls_records, "both")
    prepared, _, failed = await _prepared_on_the_last_attempt(settings, db, api, language)
    assert failed == ["alarms"]
    assert (
        prepared.headline
        == {
            "en": "Yesterday: no errors, but the alarms could not be read",
            "zh": "昨天没有错误，但告警没能读取",
        }[language]
    )
