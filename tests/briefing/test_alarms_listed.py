"""A briefing lists 50 alarms at most (the open ones first); a day of more says how many
it leaves out, in the report and in what the LLM reads, rather than a table that reads as
the whole day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ambient.briefing.logreport import TemplateStat
from ambient.briefing.models import BriefingInputs, SourceNote
from ambient.briefing.offline import offline_draft
from ambient.briefing.report import full_report_markdown
from ambient.briefing.writer import finish, llm_prompt
from ambient.clients.tencent.alarms import ALARMS_CHANGED, AlarmRecord
from ambient.render import markdown_html

DAY = datetime(2026, 11, 22, tzinfo=UTC)


def _inputs(count: int, language: str = "zh") -> BriefingInputs:
    alarms = [
        AlarmRecord(
            source="monitor",
            name=f"cpu-high-{i}",
            status="OK" if i % 2 else "ALARM",
            time=DAY + timedelta(minutes=i),
        )
        for i in range(count)
    ]
    return BriefingInputs.model_validate(
        {"date": "2026-11-22", "language": language, "alarms_configured": True, "alarms": alarms}
    )


def _table(report: str, heading: str) -> list[str]:
    section = report.split(f"## {heading}\n")[1].split("\n## ")[0]
    return [line for line in section.splitlines() if line.startswith("| 2026-")]


def test_a_day_of_more_alarms_than_listed_says_how_many_are_left_out() -> None:
    for language, heading, said in (
        ("zh", "告警", "另有 10 条告警未列出"),
        ("en", "Alarms", "10 more alarms not listed"),
    ):
        inputs = _inputs(60, language)
        report = full_report_markdown(finish(offline_draft(inputs), inputs, "offline"), inputs)
        assert len(_table(report, heading)) == 50
        assert said in report.split(f"## {heading}\n")[1].split("\n## ")[0]
        assert "10 more alarms not listed" in llm_prompt(inputs)


def test_a_day_of_as_many_alarms_as_listed_says_none_left_out() -> None:
    inputs = _inputs(50)
    report = full_report_markdown(finish(offline_draft(inputs), inputs, "offline"), inputs)
    assert len(_table(report, "告警")) == 50 and "未列出" not in report
    assert "not listed" not in llm_prompt(inputs)


def test_alarms_that_changed_at_each_read_are_said_so_in_the_briefings_language() -> None:
    """An alarm source whose list changed while it was read, at each read: said as the user
    reads it, in Chinese in a Chinese briefing (not "ServerNetworkError: ... the list changed
    while it was read", no network error and nothing to act on)."""
    for language, said, failed in (
        ("zh", "告警在读取时发生了变化，这次没有列出", "失败"),
        ("en", "the alarms changed while they were read; not listed this time", "FAILED"),
    ):
        inputs = _inputs(3, language)
        inputs.notes = [SourceNote(source="alarms.cls", ok=False, detail=ALARMS_CHANGED)]
        content = finish(offline_draft(inputs), inputs, "offline")
        sources = full_report_markdown(content, inputs).split("\n## ")[-1]
        assert f"- alarms.cls: {failed} — {said}" in sources, sources
        assert any(said in item for item in content.needs_attention), content.needs_attention


def test_the_look_back_of_alarms_firing_since_before_is_named_in_the_briefings_language() -> None:
    """A flapping alert changes only the look-back list (the day's own is past): its failure
    is named as what it is, in the briefing's language, not by its key."""
    for language, named, told in (
        (
            "zh",
            "今天以前开始、仍在告警的云监控告警",
            "今天以前开始、仍在告警的云监控告警没能读取，当天的告警都已列出。",
        ),
        (
            "en",
            "Cloud Monitor alarms firing since before the day",
            "Cloud Monitor alarms firing since before the day could not be read: the day's own "
            "are all listed.",
        ),
    ):
        inputs = _inputs(3, language)
        source = "alarms.monitor (firing since before)"
        inputs.notes = [SourceNote(source=source, ok=False, detail=ALARMS_CHANGED)]
        content = finish(offline_draft(inputs), inputs, "offline")
        report = full_report_markdown(content, inputs)
        # The Sources list names each by its key, as every source; what the reader is told
        # names it as what it is.
        spoken = "".join(content.spoken_segments)
        assert told in spoken and source not in spoken, spoken
        assert any(named in item for item in content.needs_attention), content.needs_attention
        assert not any(source in item for item in content.needs_attention)
        assert named in report, report


def test_a_chinese_full_report_is_in_chinese_and_renders_with_no_inline_style() -> None:
    """Its tables' headers, a source's state, "(new)" and how it was written were English in
    a Chinese report; and the count column's alignment rendered as a style attribute, which
    the share page's Content-Security-Policy refused (the browser said so, three times)."""
    inputs = _inputs(2)
    inputs.top_templates = [
        TemplateStat(
            template_id="t1",
            template="数据库连接超时 <*>",
            level="ERROR",
            count=12,
            example="数据库连接超时 10.0.0.1",
            new=True,
        )
    ]
    inputs.notes = [SourceNote(source="logs", ok=True, detail="")]
    report = full_report_markdown(finish(offline_draft(inputs), inputs, "offline"), inputs)
    assert "| 级别 | 次数 | 模板 | 示例 |" in report and "*（新）*" in report, report
    assert "| 时间（UTC） | 来源 | 名称 | 状态 | 对象 |" in report
    assert "- logs: 正常" in report and "*生成：离线规则*" in report
    for english in ("level", "count", "(new)", "generated_by", "ok —", "FAILED"):
        assert english not in report, english
    assert "style=" not in markdown_html(report)
