"""A CLS topic whose logs' Time the briefing cannot read (seconds, not SearchLog's milliseconds):
the day is said unread, not briefed as a day without logs, and is no day of the baseline."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from temporalio.testing import ActivityEnvironment

from activities.briefing import BriefingActivities
from ambient.briefing.config import BriefingConfig, ClsLogSpec, plan_for
from ambient.briefing.models import PrepareRequest
from ambient.clients.llm import LLMClient
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.models import LogBaselineRow
from tests.standins.tencent_api import TencentApi
from tests.support.servers import serve
from tests.support.tencent import standin_tencent

DAY = plan_for(datetime(2026, 11, 23, tzinfo=UTC).date(), BriefingConfig())


async def test_a_cls_day_whose_every_log_has_an_unreadable_time_is_not_a_day_without_logs(
    settings: Settings, db: Database
) -> None:
    """40 ERROR logs whose Time is in seconds were all skipped: the day was briefed "No logs
    were recorded yesterday" and went into the 7-day baseline as a day of none."""
    api = TencentApi()
    seconds = int((DAY.logs_from + timedelta(hours=1)).timestamp())
    results = [
        {"TopicId": api.log_topic, "PkgId": "P", "PkgLogId": str(n), "Time": seconds + n}
        | {"LogJson": json.dumps({"level": "ERROR", "msg": "payment refused"})}
        for n in range(40)
    ]
    answer = {"Analysis": False, "ListOver": True, "Context": "", "Results": results}
    api.raw["SearchLog"] = [(200, "application/json", json.dumps({"Response": answer}).encode())]
    config = BriefingConfig(log_source=ClsLogSpec(topic_id=api.log_topic), language="en")
    request = PrepareRequest(user="alice", task_id="daily-briefing/alice", config=config, day=DAY)
    async with serve(api.app()) as base:
        acts = BriefingActivities(db, LLMClient(settings), standin_tencent(base), settings)
        prepared = await ActivityEnvironment().run(acts.prepare_briefing, request)
    (note,) = [s for s in prepared.sources if s.source == "logs"]
    assert (note.ok, note.detail) == (
        False,
        f"CLS topic {api.log_topic}: 0 lines read, 40 unreadable: "
        "no line has a time in a format the briefing reads",
    )
    assert prepared.headline == "Yesterday's logs could not be read, and no alarm is open"
    async with db.session() as session:
        row = await session.scalar(select(LogBaselineRow).where(LogBaselineRow.user == "alice"))
    assert row is None or not row.data.get("days"), row.data
