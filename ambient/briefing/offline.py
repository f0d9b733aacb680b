"""The offline draft of a briefing, written without an LLM (extractive, deterministic), and
what both drafts say alike: the greeting for the hour, the alarm sources unread, the alarms
skipped, a count in words. The LLM's draft and the stored briefing are writer.py's."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

from ambient.briefing.alarm_listing import no_data, since, still_open
from ambient.briefing.greeting_answers import hello
from ambient.briefing.logreport import TemplateStat, most_frequent_error, read_short
from ambient.briefing.models import (
    ALARMS_NOT_CONFIGURED,
    SPOKEN_MAX_CHARS,
    BriefingDraft,
    BriefingInputs,
    SourceNote,
)
from ambient.briefing.offline_words import (
    FAILED_SAID,
    LLM_FAILED_SAID,
    SKIPPED,
    SOURCE_NAMES,
    SOURCE_NAMES_EN,
    WHAT_TO_DO,
)
from ambient.briefing.report import source_detail
from ambient.clients.tencent.alarms import AlarmRecord
from ambient.domain.events import clipped
from ambient.domain.loglevels import ERROR_LEVELS
from ambient.speech import cause_kept_clip, sentences_within, spoken_clip, within_a_sentence


def greeting(inputs: BriefingInputs) -> str:
    """The greeting for the hour the briefing is first spoken, in its language (said again
    for the hour it is given: `greeted_at`)."""
    return hello(int(inputs.window_start[:2]), inputs.language)


def _short(text: str, limit: int = 90) -> str:
    return clipped(" ".join(text.split()), limit)


def _unavailable(note: SourceNote, zh: bool) -> str:
    """A failed source in the written briefing (page, e-mail)."""
    if note.detail == ALARMS_NOT_CONFIGURED:
        return "腾讯云未配置，没有告警记录" if zh else "Tencent Cloud is not configured"
    # A refusal of a known class is said by what to do, in the briefing's language; Tencent's
    # own words (English, with a request id) were cut at 90 characters mid-advice. The full
    # report's sources keep them whole.
    said = WHAT_TO_DO.get(note.kind)
    if zh:
        why = said[0].strip("（）") if said else _cause_kept(source_detail(note, zh))
        return f"数据源不可用：{SOURCE_NAMES.get(note.source, note.source)}：{why}"
    why = said[1].strip(" ()") if said else _cause_kept(note.detail)
    return f"{SOURCE_NAMES_EN.get(note.source, note.source)} unavailable: {why}"


# A refusal's RequestId, for Tencent Cloud's support: the full report's sources keep it.
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_REQUEST_ID = re.compile(r" \(RequestId [^)]*\)")


def _cause_kept(detail: str, limit: int = 120) -> str:
    """A failed source's detail in ``limit`` characters, its cause whole: the words after its
    last ": " (Tencent Cloud's, a file's error) end it, what comes before is cut to what is
    left. Cut at its end, the cause was what went unsaid ("failed: QueryError [illegal_arg…")."""
    flat = _REQUEST_ID.sub("", " ".join(detail.split()))
    head, colon, cause = flat.rpartition(": ")
    if _QUOTED.fullmatch(cause) and ": " in head:
        # A file's error ends in the path it names ("Permission denied: '/data/…'"): its
        # reason is the cause, the path is in the head already.
        head, colon, cause = head.rpartition(": ")
    room = limit - len(cause) - 2
    if len(flat) <= limit or not colon or room < 12:
        return _short(flat, limit)
    return f"{_short(head, room)}: {cause}"


def skipped_said(inputs: BriefingInputs, zh: bool) -> list[str]:
    """The alarms skipped unreadable, a sentence a source, its count first (a number ending a
    sentence is read as an item's numbering by speech: "…: 1." ends none)."""
    return [
        f"{SKIPPED[source][0].format(n=n)}的时间无法读取，已跳过。"
        if zh
        else f"{many(n, SKIPPED[source][1] + ' was', SKIPPED[source][1] + 's were')} "
        f"skipped: {'its time' if n == 1 else 'their times'} could not be read."
        for source, n in inputs.alarms_skipped.items()
    ]


def alarms_unread(inputs: BriefingInputs) -> list[SourceNote]:
    """The alarm sources that could not be read (Tencent Cloud not configured is none)."""
    return [
        n
        for n in inputs.notes
        if n.source.startswith("alarms") and not n.ok and n.detail != ALARMS_NOT_CONFIGURED
    ]


def logs_short(inputs: BriefingInputs) -> bool:
    """Whether a part of the day's logs that may hold errors was not read (`read_short`)."""
    return read_short(
        inputs.log_lines, inputs.logs_unreadable, inputs.logs_broken, inputs.logs_capped
    )


def levels_unread(inputs: BriefingInputs) -> bool:
    """Whether most of the day's lines carry no level (a CVM's /var/log/messages, raw CLS
    content): no error counted is then no day without errors (its OOM kills said "quiet")."""
    return not inputs.errors and inputs.logs_unleveled * 2 >= inputs.log_lines > 0


def none_read(unread: list[SourceNote]) -> bool:
    """Whether the whole alarm history was unread ("alarms"), not one source of it."""
    return any(n.source == "alarms" for n in unread)


def offline_draft(inputs: BriefingInputs) -> BriefingDraft:
    """A deterministic extractive briefing from the reduced inputs (no LLM)."""
    zh = inputs.language == "zh"

    def said(chinese: str, english: str) -> str:
        return chinese if zh else english

    errors = [t for t in inputs.top_templates if t.level in ERROR_LEVELS]
    failed = [n for n in inputs.notes if not n.ok]
    firing = still_open(inputs.alarms)
    silent = no_data(inputs.alarms)
    unread_alarms = alarms_unread(inputs)
    skipped = skipped_said(inputs, zh)
    missed = bool(unread_alarms or skipped)
    nothing_read = none_read(unread_alarms)
    alarms_read = inputs.alarms_configured and not missed  # open alarms are counted only then
    happened: list[str] = []
    if inputs.log_lines or logs_short(inputs):
        # No line read of a day whose lines there were: no count of it ("0 errors").
        happened.append(
            said("没有读到日志行", "No log lines were read")
            if not inputs.log_lines
            else f"日志 {inputs.log_lines} 行，错误 {inputs.errors}，警告 {inputs.warnings}"
            if zh
            else f"{many(inputs.log_lines, 'log line', 'log lines')}, "
            f"{many(inputs.errors, 'error', 'errors')}, "
            f"{many(inputs.warnings, 'warning', 'warnings')}"
        )
        unread = inputs.logs_unreadable
        if unread and unread * 10 >= inputs.log_lines:  # a tenth or more: part of the day
            happened[-1] += said(
                f"，另有 {unread} 行无法读取（见数据源）",
                f", and {many(unread, 'line', 'lines')} could not be read (see Sources)",
            )
        if broken := inputs.logs_broken:
            happened[-1] += said(
                f"，{broken} 个日志文件没能读完（见数据源）",
                f", and {many(broken, 'log file', 'log files')} could not be read to the end "
                "(see Sources)",
            )
        if inputs.logs_capped:
            happened.append(_capped(inputs.log_lines)[0 if zh else 1].strip())
    if inputs.trend:
        happened.append(inputs.trend)
    happened += [f"{t.level} ×{t.count}: {_short(t.template)}" for t in errors[:3]]
    if inputs.alarms:
        happened.append(
            f"告警 {len(inputs.alarms)} 条（未恢复 {len(firing)} 条"
            + (f"，数据不足 {len(silent)} 条）" if silent else "）")
            if zh
            else f"{many(len(inputs.alarms), 'alarm', 'alarms')} ({len(firing)} not resolved"
            + (f", {len(silent)} with no data)" if silent else ")")
        )
    happened += [f"{'新闻' if zh else 'News'}: {_short(n)}" for n in inputs.news[:3]]
    attention = [_short(a) for a in inputs.anomalies[:4]]
    zone = ZoneInfo(inputs.timezone)
    attention += [f"{a.name} ({a.target or a.source}){since(a, zone, zh)}" for a in firing[:3]]
    attention += [
        f"{a.name} ({a.target or a.source}){said('：数据不足', ': no data')}" for a in silent[:3]
    ]
    attention += [_unavailable(n, zh) for n in failed] + skipped
    people = len(inputs.needs_person)
    # None is said as none ("0 个问题需要人工处理" was said of a day no problem waited on).
    needs = (
        said(
            f"{people} 个问题需要人工处理",
            f"{many(people, 'problem needs', 'problems need')} a person",
        )
        if people
        else said("没有问题需要人工处理", "no problem needs a person")
    )
    # A count of the alarms read is not the day's (the spoken text says why).
    unread_said = ""
    if missed:
        unread_said = (
            said("，告警没能读取", ", alarms could not be read")
            if nothing_read
            else said("，告警没能全部读取", ", alarms not all read")
        )
    if not inputs.log_lines:
        # Nothing was read: nothing is known of the logs (not "quiet", not "0 errors").
        if logs_failed := [n for n in failed if n.source == "logs"]:
            headline = said("昨天的日志没能读取", "Yesterday's logs could not be read")
            headline += said(*WHAT_TO_DO.get(logs_failed[0].kind, ("", "")))
        elif not inputs.logs_configured:
            headline = said("没有配置日志源", "No log source is set up")
        elif logs_short(inputs):
            # Lines there were, none read (a rotated file broken off before its first line, a
            # day of lines without a time read here): not a day without logs.
            headline = said("昨天的日志没能全部读取", "Yesterday: not all logs could be read")
        elif matched := inputs.log_filter:  # lines there were, none that matched
            headline = said(
                f"昨天没有符合 {matched} 的日志", f"No log lines matched {matched} yesterday"
            )
        else:
            headline = said("昨天没有日志记录", "No logs were recorded yesterday")
        if alarms_read and not firing:  # else the open ones are said, or why none were read
            headline += said("，也没有未恢复的告警", ", and no alarm is open")
            if silent:  # not firing, nor quiet: their metrics had no data
                headline += said(f"（{len(silent)} 条数据不足）", f" ({len(silent)} with no data)")
        headline += unread_said
        if people:
            headline += said("，", "; ") + needs
    elif people or firing or errors or inputs.errors or (silent and alarms_read):
        opened = unread_said
        if alarms_read:
            count = len(firing)
            opened = said(
                f"、{count} 条未恢复告警", f", {many(count, 'open alarm', 'open alarms')}"
            )
            if silent:  # apart from the open ones: not firing, nor recovered
                opened += said(
                    f"、{len(silent)} 条告警数据不足",
                    f", {many(len(silent), 'alarm', 'alarms')} with no data",
                )
        headline = said(
            f"昨天{_errors_said(inputs, zh)}{opened}，{needs}",
            f"Yesterday: {_errors_said(inputs, zh)}{opened}, {needs}",
        )
    elif levels_unread(inputs):
        # Not "quiet": whether its lines hold errors is not known (the report lists them).
        n = inputs.log_lines
        headline = (
            said(
                f"昨天的 {n} 行日志大多没有写级别，分不出有没有错误",
                f"Yesterday: most of the {n} log lines carry no level, so errors could not be "
                "told apart",
            )
            + unread_said
        )
    elif inputs.anomalies:
        # Not "quiet": the spoken briefing goes on to name them.
        count = len(inputs.anomalies)
        headline = (
            said(
                f"昨天{_errors_said(inputs, zh, none=True)}，但有 {count} 个异常",
                f"Yesterday: {_errors_said(inputs, zh, none=True)}, but "
                f"{many(count, 'anomaly', 'anomalies')}",
            )
            + unread_said
        )
    elif inputs.warnings:
        # Not "quiet" either: a day of warnings is said as one (they often come before errors).
        headline = (
            said(
                f"昨天{_errors_said(inputs, zh, none=True)}，有 {inputs.warnings} 个警告",
                f"Yesterday: {_errors_said(inputs, zh, none=True)}, "
                f"{many(inputs.warnings, 'warning', 'warnings')}",
            )
            + unread_said
        )
    elif logs_short(inputs):
        # Not "quiet" either: a part of the day's logs was not read (a tenth or more of its
        # lines without a time read, a rotated file broken off, only the newest lines read),
        # its errors perhaps with it.
        headline = (
            said(
                "昨天读到的日志里没有错误，但日志没能全部读取",
                "Yesterday: no errors in the logs read, but not all logs could be read",
            )
            + unread_said
        )
    elif missed:
        # Not "quiet": alarms there may have been, unread (the spoken briefing says which).
        headline = (
            said(
                "昨天没有错误，但告警没能读取",
                "Yesterday: no errors, but the alarms could not be read",
            )
            if nothing_read
            else said(
                "昨天没有错误，但告警没能全部读取",
                "Yesterday: no errors, but not every alarm could be read",
            )
        )
    else:
        headline = said("昨天一切平稳", "Yesterday was quiet")
    return BriefingDraft(
        headline=_short(headline, 200),
        what_happened=happened[:10],
        needs_attention=attention[:10],
        fixed_automatically=[_short(f, 200) for f in inputs.fixed[:10]],
        needs_a_person=[_short(f, 200) for f in inputs.needs_person[:10]],
        spoken_text=_within(_spoken(inputs, headline, errors, firing, failed)),
    )


def _errors_said(inputs: BriefingInputs, zh: bool, *, none: bool = False) -> str:
    """The day's errors in its headline (``none``: none said as such, not "0 errors"); of a
    day partly read (`logs_short`) a floor, with why in a clause, its counts being of the
    lines read alone ("5 errors" was said as the day's)."""
    count, short = inputs.errors, logs_short(inputs)
    if levels_unread(inputs):
        return "日志大多没有写级别、分不出错误" if zh else "most log lines carry no level"
    if count or not (none or short):
        said = f"有 {count} 个错误" if zh else many(count, "error", "errors")
        if short:
            said = f"至少{said}" if zh else f"at least {said}"
    elif short:
        said = "读到的日志里没有错误" if zh else "no errors in the logs read"
    else:
        said = "没有错误" if zh else "no errors"
    if short:
        said += "（日志没能全部读取）" if zh else " (not all logs could be read)"
    return said


def _within(spoken: str) -> str:
    """The spoken text in SPOKEN_MAX_CHARS: past it, its sentences that fit (else a clause's
    end, or after a word), as a speaker hears it whole (POST /voice/greeting), never ended
    inside a word."""
    return sentences_within(spoken, SPOKEN_MAX_CHARS)


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

    # The first three sentences are what a voice keeps (MAX_SENTENCES): the greeting is said
    # with the headline, and what waits on someone (an open alarm, a problem for a person)
    # comes right after the top error. "Good morning, here is yesterday's briefing." was a
    # sentence of the three, and the open alarms' names were never heard.
    hello = greeting(inputs)
    say(f"{hello}，{headline}。", f"{hello}, {headline[:1].lower()}{headline[1:]}. ")
    # The most frequent: the templates come most severe first (one CRITICAL line was said as
    # the day's most frequent error over an ERROR of thousands).
    top = most_frequent_error(errors)
    if top is not None:
        said = within_a_sentence(cause_kept_clip(top.template, 60))
        say(
            f"最多的错误是：{said}，共 {top.count} 次。",
            f"The most frequent error was {said}, {many(top.count, 'time', 'times')}. ",
        )
    if firing:
        began = since(firing[0], ZoneInfo(inputs.timezone), zh)
        say(
            f"有 {len(firing)} 条告警未恢复，包括 {firing[0].name}{began}。",
            f"{many(len(firing), 'alarm is', 'alarms are')} still open"
            f"{': ' if len(firing) == 1 else ', including '}{firing[0].name}{began}. ",
        )
    if inputs.needs_person:
        count, first = len(inputs.needs_person), spoken_clip(inputs.needs_person[0], 60)
        say(
            f"有 {count} 个问题需要人工处理：{first}。",
            f"{many(count, 'problem needs', 'problems need')} a person: {first}. ",
        )
    # Only the newest lines read: the headline says not all were ("at least N errors").
    if inputs.logs_capped:
        say(*_capped(inputs.log_lines))
    # A partly read day's trend that compares nothing ("At least N errors: not compared…")
    # repeats the headline's floor and its why: spoken once. A rise (at least X%) is said.
    if inputs.trend and not (logs_short(inputs) and "%" not in inputs.trend):
        say(inputs.trend + "。", inputs.trend + ". ")
    if inputs.anomalies:
        first = within_a_sentence(spoken_clip(inputs.anomalies[0], 60))
        say(
            f"发现 {len(inputs.anomalies)} 个异常，例如{first}。",
            f"{many(len(inputs.anomalies), 'anomaly', 'anomalies')}, for example {first}. ",
        )
    unset = [n for n in failed if n.source == "alarms" and n.detail == ALARMS_NOT_CONFIGURED]
    if unset:
        say(
            "腾讯云未配置，没有告警记录。", "Tencent Cloud is not configured, so no alarm history. "
        )
    elif silent := no_data(inputs.alarms):
        say(
            f"有 {len(silent)} 条告警数据不足，包括 {silent[0].name}。",
            f"{many(len(silent), 'alarm has', 'alarms have')} no data"
            f"{': ' if len(silent) == 1 else ', including '}{silent[0].name}. ",
        )
    if inputs.fixed:
        say(
            f"夜间自动修复了 {len(inputs.fixed)} 个问题。",
            f"{many(len(inputs.fixed), 'problem was', 'problems were')} fixed "
            "automatically overnight. ",
        )
    if inputs.news:
        say(
            f"新闻 {len(inputs.news)} 条，例如：{spoken_clip(inputs.news[0], 60)}。",
            f"{many(len(inputs.news), 'news item', 'news items')}, for example: "
            f"{spoken_clip(inputs.news[0], 60)}. ",
        )
    for note in failed:
        if note.source == "llm":
            say(*LLM_FAILED_SAID[inputs.llm_failed or "unanswered"])
        elif note.source in FAILED_SAID and note not in unset:
            say(*FAILED_SAID[note.source])
    parts += [s if zh else f"{s} " for s in skipped_said(inputs, zh)]
    say("详细报告已放在简报页面。", "The full report is on the briefing page.")
    return "".join(parts).strip()


def _capped(lines: int) -> tuple[str, str]:
    """The log counts are of the newest lines only (Chinese, English)."""
    return (
        # Not "the source's limit": CLS may have stopped the search (the sources say why).
        f"只读取了当天最新的 {lines} 行日志，错误数只算这些行。",
        f"Only the day's newest {lines} log lines were read; the error counts are of those lines. ",
    )


def many(count: int, one: str, more: str) -> str:
    """The count and its words, in the singular for one ("1 alarm is", "2 alarms are")."""
    return f"{count} {one if count == 1 else more}"
