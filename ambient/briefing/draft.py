"""The briefing written without an LLM (extractive, deterministic), and the stored briefing
made from any draft: the draft plus its TTS segments, sources and totals."""

from __future__ import annotations

from ambient.briefing.logreport import TemplateStat
from ambient.briefing.models import (
    ALARMS_NOT_CONFIGURED,
    SPOKEN_MAX_CHARS,
    BriefingContent,
    BriefingDraft,
    BriefingInputs,
    SourceNote,
    greeting,
    still_open,
)
from ambient.clients.tencent.ops import AlarmRecord, tts_segments
from ambient.domain.events import clipped
from ambient.domain.loglevels import ERROR_LEVELS


def _short(text: str, limit: int = 90) -> str:
    return clipped(" ".join(text.split()), limit)


# The sources' names in a Chinese briefing.
_SOURCE_NAMES = {"logs": "日志", "alarms": "告警记录", "llm": "大模型", "discussions": "讨论"}
# A source that failed, said in the briefing's language (failed logs are its headline).
_FAILED_SAID = {
    "alarms": ("告警记录没能读取。", "The alarm history could not be read. "),
    "llm": (
        "大模型没有回应，这份简报按规则写成。",
        "The language model did not answer: this briefing was written by rules. ",
    ),
}


def _unavailable(note: SourceNote, zh: bool) -> str:
    """A failed source in the written briefing (page, e-mail)."""
    if note.detail == ALARMS_NOT_CONFIGURED:
        return "腾讯云未配置，没有告警记录" if zh else "Tencent Cloud is not configured"
    if zh:
        return f"数据源不可用：{_SOURCE_NAMES.get(note.source, note.source)}：{_short(note.detail)}"
    return f"{note.source} unavailable: {_short(note.detail)}"


def offline_draft(inputs: BriefingInputs) -> BriefingDraft:
    """A deterministic extractive briefing from the reduced inputs (no LLM)."""
    zh = inputs.language == "zh"
    errors = [t for t in inputs.top_templates if t.level in ERROR_LEVELS]
    failed = [n for n in inputs.notes if not n.ok]
    firing = still_open(inputs.alarms)
    happened: list[str] = []
    if inputs.log_lines:
        happened.append(
            f"日志 {inputs.log_lines} 行，错误 {inputs.errors}，警告 {inputs.warnings}"
            if zh
            else f"{inputs.log_lines} log lines, {inputs.errors} errors, {inputs.warnings} warnings"
        )
    if inputs.trend:
        happened.append(inputs.trend)
    happened += [f"{t.level} ×{t.count}: {_short(t.template)}" for t in errors[:3]]
    if inputs.alarms:
        happened.append(
            f"告警 {len(inputs.alarms)} 条（未恢复 {len(firing)} 条）"
            if zh
            else f"{len(inputs.alarms)} alarms ({len(firing)} not resolved)"
        )
    happened += [f"{'新闻' if zh else 'News'}: {_short(n)}" for n in inputs.news[:3]]
    attention = [_short(a) for a in inputs.anomalies[:4]]
    attention += [f"{a.name} ({a.target or a.source})" for a in firing[:3]]
    attention += [_unavailable(n, zh) for n in failed]
    people = len(inputs.needs_person)
    if not inputs.log_lines:
        # Nothing was read: nothing is known of the logs (not "quiet", not "0 errors").
        if any(n.source == "logs" for n in failed):
            headline = "昨天的日志没能读取" if zh else "Yesterday's logs could not be read"
        elif not inputs.logs_configured:
            headline = "没有配置日志源" if zh else "No log source is set up"
        else:
            headline = "昨天没有日志记录" if zh else "No logs were recorded yesterday"
        if people:
            headline += (
                f"，{people} 个问题需要人工处理"
                if zh
                else f"; {_many(people, 'problem needs', 'problems need')} a person"
            )
    elif people or firing or errors or inputs.errors:
        headline = (
            f"昨天有 {inputs.errors} 个错误、{len(firing)} 条未恢复告警，"
            f"{people} 个问题需要人工处理"
            if zh
            else f"Yesterday: {_many(inputs.errors, 'error', 'errors')}, "
            f"{_many(len(firing), 'open alarm', 'open alarms')}, "
            f"{_many(people, 'problem needs', 'problems need')} a person"
        )
    elif inputs.anomalies:
        # Not "quiet": the spoken briefing goes on to name them.
        count = len(inputs.anomalies)
        headline = (
            f"昨天没有错误，但有 {count} 个异常"
            if zh
            else f"Yesterday: no errors, but {_many(count, 'anomaly', 'anomalies')}"
        )
    else:
        headline = "昨天一切平稳" if zh else "Yesterday was quiet"
    spoken = _spoken(inputs, headline, errors, firing, failed)
    return BriefingDraft(
        headline=_short(headline, 200),
        what_happened=happened[:10],
        needs_attention=attention[:10],
        fixed_automatically=[_short(f, 200) for f in inputs.fixed[:10]],
        needs_a_person=[_short(f, 200) for f in inputs.needs_person[:10]],
        spoken_text=spoken[:SPOKEN_MAX_CHARS],
    )


def _spoken(
    inputs: BriefingInputs,
    headline: str,
    errors: list[TemplateStat],
    firing: list[AlarmRecord],
    failed: list[SourceNote],
) -> str:
    zh = inputs.language == "zh"
    parts: list[str] = []

    def say(chinese: str, english: str) -> None:
        parts.append(chinese if zh else english)

    hello = greeting(inputs)
    say(f"{hello}，这是昨天的简报。", f"{hello}, here is yesterday's briefing. ")
    say(headline + "。", headline + ". ")
    if errors:
        top = errors[0]
        say(
            f"最多的错误是：{_short(top.template, 60)}，共 {top.count} 次。",
            f"The most frequent error was {_short(top.template, 60)}, {top.count} times. ",
        )
    if inputs.trend:
        say(inputs.trend + "。", inputs.trend + ". ")
    if inputs.anomalies:
        first = _short(inputs.anomalies[0], 60)
        say(
            f"发现 {len(inputs.anomalies)} 个异常，例如{first}。",
            f"{_many(len(inputs.anomalies), 'anomaly', 'anomalies')}, for example {first}. ",
        )
    unset = [n for n in failed if n.source == "alarms" and n.detail == ALARMS_NOT_CONFIGURED]
    if unset:
        say(
            "腾讯云未配置，没有告警记录。", "Tencent Cloud is not configured, so no alarm history. "
        )
    elif firing:
        say(
            f"有 {len(firing)} 条告警未恢复，包括 {firing[0].name}。",
            f"{_many(len(firing), 'alarm is', 'alarms are')} still open"
            f"{': ' if len(firing) == 1 else ', including '}{firing[0].name}. ",
        )
    if inputs.fixed:
        say(
            f"夜间自动修复了 {len(inputs.fixed)} 个问题。",
            f"{_many(len(inputs.fixed), 'problem was', 'problems were')} fixed "
            "automatically overnight. ",
        )
    if inputs.needs_person:
        count, first = len(inputs.needs_person), _short(inputs.needs_person[0], 60)
        say(
            f"有 {count} 个问题需要人工处理：{first}。",
            f"{_many(count, 'problem needs', 'problems need')} a person: {first}. ",
        )
    if inputs.news:
        say(
            f"新闻 {len(inputs.news)} 条，例如：{_short(inputs.news[0], 60)}。",
            f"{_many(len(inputs.news), 'news item', 'news items')}, for example: "
            f"{_short(inputs.news[0], 60)}. ",
        )
    for note in failed:
        if note.source in _FAILED_SAID and note not in unset:
            say(*_FAILED_SAID[note.source])
    say("详细报告已放在简报页面。", "The full report is on the briefing page.")
    return "".join(parts).strip()


def finish(draft: BriefingDraft, inputs: BriefingInputs, generated_by: str) -> BriefingContent:
    """The stored briefing: the draft plus TTS segments, sources and totals."""
    return BriefingContent(
        **draft.model_dump(),
        date=inputs.date,
        language=inputs.language,
        generated_by=generated_by,
        spoken_segments=tts_segments(draft.spoken_text),
        sources=inputs.notes,
        log_lines=inputs.log_lines,
        errors=inputs.errors,
        warnings=inputs.warnings,
    )


def _many(count: int, one: str, more: str) -> str:
    """The count and its words, in the singular for one ("1 alarm is", "2 alarms are")."""
    return f"{count} {one if count == 1 else more}"
