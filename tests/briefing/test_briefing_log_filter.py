"""A CLS search refused for its filter (a field without an index, its syntax), its topic
isolated or its search memory spent: said as what to do, as the other refusals are, and the
page's attention line keeps the cause."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from temporalio.testing import ActivityEnvironment

from activities.briefing import BriefingActivities
from ambient.briefing.config import BriefingConfig, ClsLogSpec, plan_for
from ambient.briefing.models import BriefingInputs, PrepareRequest, SourceNote
from ambient.briefing.offline import offline_draft
from ambient.clients.llm import LLMClient
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.briefings import BriefingRepository
from tests.standins.tencent_api import TencentApi
from tests.support.servers import serve
from tests.support.tencent import standin_tencent

DAY = plan_for(datetime(2026, 11, 23, tzinfo=UTC).date(), BriefingConfig())
FILTER = (
    "the log filter was refused by CLS, a field without an index or its syntax: correct the "
    "briefing's filter"
)
FILTER_ZH = "CLS 拒绝了日志筛选条件：字段没有索引或语法有误，请修改简报的筛选条件"


@pytest.mark.parametrize(
    ("code", "language", "said"),
    [
        # The stand-in refuses `level:ERROR` as CLS does when `level` has no index.
        (None, "en", FILTER),
        (None, "zh", FILTER_ZH),
        ("FailedOperation.SyntaxError", "en", FILTER),
        ("FailedOperation.TopicIsolated", "en", "the log topic is isolated for arrears: ask"),
        ("FailedOperation.TopicIsolated", "zh", "日志主题因欠费被隔离，请管理员结清欠费或续费"),
        # CLS's search memory: a wait, and the filter to narrow if it lasts (it was "busy").
        ("LimitExceeded.SearchResources", "en", "if it lasts, narrow the briefing's log filter"),
        ("LimitExceeded.SearchResources", "zh", "如果一直这样，请缩小简报的日志筛选范围"),
        # A topic with no index: it was said not to exist.
        ("ResourceNotFound.IndexNotExist", "en", "has no index, so CLS cannot search it"),
        ("ResourceNotFound.IndexNotExist", "zh", "日志主题没有索引，无法检索"),
    ],
)
async def test_a_log_search_refused_for_its_filter_or_topic_is_said_with_what_to_do(
    settings: Settings, db: Database, code: str | None, language: str, said: str
) -> None:
    """These were "Yesterday's logs could not be read" alone, every morning, and the page's
    attention line Tencent's English cut at 90 characters before its cause."""
    api = TencentApi(indexed={"msg"})
    at = int((DAY.logs_from + timedelta(hours=1)).timestamp() * 1000)
    api.logs = [
        {"time": at + n, "json": {"level": "ERROR", "msg": "payment refused"}} for n in range(3)
    ]
    if code is not None:
        api.failures["SearchLog"] = [code]
    spec = ClsLogSpec(topic_id=api.log_topic, query="level:ERROR" if code is None else "*")
    config = BriefingConfig(log_source=spec, language=language)
    request = PrepareRequest(user="alice", task_id="daily-briefing/alice", config=config, day=DAY)
    async with serve(api.app()) as base:
        acts = BriefingActivities(db, LLMClient(settings), standin_tencent(base), settings)
        prepared = await ActivityEnvironment().run(acts.prepare_briefing, request)
    assert said in prepared.headline
    async with db.session() as session:
        stored = await BriefingRepository(session).get("alice", DAY.date)
    assert stored is not None
    assert any(said in item for item in stored.content["needs_attention"])
    (logs,) = [s for s in prepared.sources if s.source == "logs"]
    # The full report's sources keep CLS's own words.
    assert (code or "Cannot search on field [level] since it is not indexed") in logs.detail


@pytest.mark.parametrize("language", ["zh", "en"])
def test_the_attention_line_of_a_source_failed_unknown_keeps_its_cause(language: str) -> None:
    """A failure of no known class is listed in Tencent's words, cut so that its cause (what
    comes last, before the RequestId) survives: cut at the end, it read "…failed: QueryError
    [illegal_arg…"."""
    detail = (
        "CLS topic topic-1: SearchLog (FailedOperation.Something) failed: Something "
        "[illegal_argument_exception] Cannot use field [level] since it is not ready "
        "(RequestId 6f1c2d3e-aaaa-bbbb-cccc-0123456789ab)"
    )
    note = SourceNote(source="logs", ok=False, detail=detail, kind="failed")
    inputs = BriefingInputs(date="2026-12-06", language=language, notes=[note])
    (item,) = offline_draft(inputs).needs_attention
    assert item.endswith(
        ": Something [illegal_argument_exception] Cannot use field [level] since it is not ready"
    )
    assert item.startswith(
        "数据源不可用：日志：CLS topic" if language == "zh" else "logs unavailable: CLS"
    )
    assert "RequestId" not in item and len(item) < 140


def test_the_attention_line_of_a_file_source_keeps_its_reason_not_its_path() -> None:
    """A file's error ends in the path it names: the line kept the path (twice) and cut the
    reason away ("log file /data/…/curre…: '/data/…/service.log'")."""
    path = "/data/applogs/payment-gateway-production/current/service.log"
    error = PermissionError(13, "Permission denied", path)
    note = SourceNote(
        source="logs", ok=False, detail=f"log file {path}: service.log: {error}", kind="failed"
    )
    inputs = BriefingInputs(date="2026-12-06", language="en", notes=[note])
    (item,) = offline_draft(inputs).needs_attention
    assert item.endswith(": [Errno 13] Permission denied"), item
    assert item.count(path) <= 1 and len(item) < 140, item
