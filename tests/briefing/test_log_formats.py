"""Real teams' log files read by the briefing's preparation: time zones, encodings, levels."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from temporalio.testing import ActivityEnvironment

from activities.briefing import BriefingActivities
from ambient.briefing.models import BriefingConfig, PreparedBriefing, PrepareRequest, plan_for
from ambient.clients.llm import LLMClient
from ambient.clients.tencent.client import TencentCloud
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.briefings import BriefingRepository

DAY = datetime(2026, 11, 23, tzinfo=UTC).date()


async def prepare(
    settings: Settings, db: Database, path: Path, timezone: str = "Asia/Shanghai"
) -> tuple[PreparedBriefing, str]:
    """The real preparation activity (offline writer) on ``path``: its result and stored report."""
    acts = BriefingActivities(
        db, LLMClient(settings), TencentCloud(None, region="ap-guangzhou"), settings
    )
    config = BriefingConfig(
        timezone=timezone,
        log_source={"type": "file", "path": str(path)},  # type: ignore[arg-type]
    )
    request = PrepareRequest(
        user="alice", task_id="daily-briefing/alice", config=config, day=plan_for(DAY, config)
    )
    prepared = await ActivityEnvironment().run(acts.prepare_briefing, request)
    async with db.session() as session:
        row = await BriefingRepository(session).get("alice", DAY.isoformat())
    assert row is not None
    return prepared, row.report_markdown


def log_note(prepared: PreparedBriefing) -> str:
    (note,) = [s for s in prepared.sources if s.source == "logs"]
    assert note.ok, note.detail
    return note.detail


async def test_timestamps_without_an_offset_are_the_briefings_local_time(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    # A Shanghai service's log4j lines carry local time with no offset: the 22nd, local day.
    path = tmp_path / "app.log"
    path.write_text(
        "2026-11-21 23:59:59,999 WARN [main] c.a.Pay - the day before\n"
        "2026-11-22 00:00:00,000 ERROR [main] c.a.Pay - refused\n"
        "2026-11-22 23:30:00,123 ERROR [main] c.a.Pay - refused\n"
        "2026-11-23 00:00:00,000 WARN [main] c.a.Pay - today\n"
        "2026-11-23 07:00:00,000 WARN [main] c.a.Pay - today\n",
        encoding="utf-8",
    )
    prepared, report = await prepare(settings, db, path)
    assert log_note(prepared).endswith(": 2 lines read")
    # Before, they were read as UTC: 08:00 to 08:00 local, the day before's last line in.
    assert "日志 2 行，错误 2，警告 0" in report
