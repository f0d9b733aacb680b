"""Alarms partly unread (a source refused or changing at each read) are not said as read: not
in the headline's count of open alarms, nor in the facts the LLM is given."""

from __future__ import annotations

import re

import pytest

from ambient.briefing.config import Language
from ambient.briefing.models import ALARMS_NOT_CONFIGURED, BriefingInputs, SourceNote
from ambient.briefing.offline import offline_draft
from ambient.briefing.writer import llm_prompt
from ambient.speech import speakable
from tests.briefing.harness import heard

READ = SourceNote(source="alarms", ok=True, detail="0 alarms")
UNREAD = SourceNote(source="alarms.cls", ok=False, detail="AuthFailure: refused")
UNSET = SourceNote(source="alarms", ok=False, detail=ALARMS_NOT_CONFIGURED)


def _day(
    language: Language, errors: int, notes: list[SourceNote], **more: object
) -> BriefingInputs:
    return BriefingInputs(
        date="2026-11-22",
        language=language,
        errors=errors,
        alarms_configured=UNSET not in notes,
        notes=notes,
        **{"log_lines": 3, **more},
    )


@pytest.mark.parametrize(
    ("language", "headline"),
    [
        ("en", "Yesterday: 2 errors, alarms not all read, no problem needs a person"),
        ("zh", "昨天有 2 个错误，告警没能全部读取，没有问题需要人工处理"),
    ],
)
def test_a_day_with_errors_whose_alarms_were_partly_read_does_not_count_them_open(
    language: Language, headline: str
) -> None:
    """Monitor's alarms read, CLS's refused: the headline said "2 errors, 0 open alarms", a
    count of alarms not all read."""
    draft = offline_draft(_day(language, 2, [READ, UNREAD]))
    assert draft.headline == headline
    assert heard(headline, draft.spoken_text)


def test_the_llm_is_not_told_a_partly_read_alarm_history_is_available() -> None:
    """The prompt said "Alarm history available: yes, 0 alarms" with CLS's alarms unread."""
    facts = llm_prompt(_day("en", 2, [READ, UNREAD])).split("\n")[0]
    assert facts.endswith(
        "Alarm history available: partly read: alarms.cls unread: AuthFailure: refused; "
        "0 alarms read (0 not resolved)."
    ), facts
    assert (
        llm_prompt(_day("en", 2, [READ]))
        .split("\n")[0]
        .endswith("Alarm history available: yes, 0 alarms (0 not resolved).")
    )
    assert (
        llm_prompt(_day("en", 2, [UNSET])).split("\n")[0].endswith("Alarm history available: no.")
    )


@pytest.mark.parametrize(
    ("language", "errors", "headline"),
    [
        ("en", 0, "Yesterday was quiet"),
        ("zh", 0, "昨天一切平稳"),
        ("en", 2, "Yesterday: 2 errors, no problem needs a person"),
        ("zh", 2, "昨天有 2 个错误，没有问题需要人工处理"),
    ],
)
def test_a_day_without_tencent_cloud_says_no_alarm_unread(
    language: Language, errors: int, headline: str
) -> None:
    """Tencent Cloud not configured: no alarm history to read, so none is said unread."""
    assert offline_draft(_day(language, errors, [UNSET])).headline == headline


def test_the_llm_is_told_an_alarm_history_none_of_which_was_read_was_not_read() -> None:
    """Tencent Cloud configured, both sources refused: the prompt said the history was "partly
    read: …; 0 alarms read", a count of alarms read when none was."""
    refused = SourceNote(source="alarms", ok=False, detail="AuthFailure: refused")
    facts = llm_prompt(_day("en", 2, [refused])).split("\n")[0]
    assert facts.endswith(
        "Alarm history available: no, none could be read: alarms unread: AuthFailure: refused."
    ), facts


@pytest.mark.parametrize(
    ("language", "said"),
    [
        (
            "en",
            "Cloud Monitor's alarms of the day could not be read: those still firing since "
            "before are listed.",
        ),
        ("zh", "云监控当天的告警没能读取，此前开始、仍在告警的已列出。"),
    ],
)
def test_a_days_read_failed_whose_alarms_still_firing_were_read_says_which(
    language: Language, said: str
) -> None:
    """The day's Monitor alarms unread, its alarms still firing read: said as such, not as a
    source read whole nor as one of which nothing is listed."""
    day_unread = SourceNote(source="alarms.monitor (the day's)", ok=False, detail="busy")
    draft = offline_draft(_day(language, 2, [READ, day_unread]))
    assert said in draft.spoken_text


def _sentences(text: str) -> int:
    return len(re.findall(r"[。！？]|[.!?](?=\s|$)", text))


@pytest.mark.parametrize(
    ("language", "said", "headline"),
    [
        (
            "en",
            [
                "1 Cloud Monitor alarm was skipped: its time could not be read.",
                "2 CLS alert records were skipped: their times could not be read.",
            ],
            "Yesterday: no errors, but not every alarm could be read",
        ),
        (
            "zh",
            [
                "云监控有 1 条告警的时间无法读取，已跳过。",
                "CLS 有 2 条告警记录的时间无法读取，已跳过。",
            ],
            "昨天没有错误，但告警没能全部读取",
        ),
    ],
)
def test_alarms_skipped_unreadable_are_said_in_three_spoken_sentences_at_most(
    language: Language, said: list[str], headline: str
) -> None:
    """A quiet day whose alarms of both sources were skipped unreadable: "Cloud Monitor alarms
    skipped, their time unreadable: 1." ended in a bare number, which speakable reads as an
    item's numbering, so its cut to three sentences failed and five were spoken. The count
    comes first, in the singular for one; the page and the LLM read the sentences too."""
    day = _day(language, 0, [READ], alarms_skipped={"monitor": 1, "cls": 2})
    draft = offline_draft(day)
    assert draft.headline == headline
    spoken = speakable(draft.spoken_text, english=language == "en")
    assert _sentences(spoken) <= 3 and said[0] in spoken
    assert all(s in draft.spoken_text for s in said) and draft.needs_attention == said
    facts, status = llm_prompt(day).split("\n", 1)
    assert facts.endswith(
        "partly read: 1 Cloud Monitor alarm was skipped: its time could not be read; 2 CLS "
        "alert records were skipped: their times could not be read; 0 alarms read (0 not "
        "resolved)."
    )
    assert "unreadable" not in status


@pytest.mark.parametrize(
    ("language", "more", "headline"),
    [
        (
            "en",
            {"anomalies": ["p99 x3"]},
            "Yesterday: no errors, but 1 anomaly, alarms not all read",
        ),
        ("en", {"warnings": 2}, "Yesterday: no errors, 2 warnings, alarms not all read"),
        ("zh", {"anomalies": ["p99 x3"]}, "昨天没有错误，但有 1 个异常，告警没能全部读取"),
        ("zh", {"warnings": 2}, "昨天没有错误，有 2 个警告，告警没能全部读取"),
        (
            "en",
            {"log_lines": 0, "logs_configured": False},
            "No log source is set up, alarms not all read",
        ),
        ("zh", {"log_lines": 0, "logs_configured": False}, "没有配置日志源，告警没能全部读取"),
        ("en", {"log_lines": 0}, "No logs were recorded yesterday, alarms not all read"),
        ("zh", {"log_lines": 0}, "昨天没有日志记录，告警没能全部读取"),
    ],
)
def test_a_day_of_anomalies_warnings_or_no_logs_whose_alarms_were_not_all_read_says_so_first(
    language: Language, more: dict[str, object], headline: str
) -> None:
    """A day of an anomaly (or warnings, or no log lines) and an alarm skipped unreadable: the
    headline said the rest alone, the skipped alarm past the three sentences a spoken answer
    keeps."""
    draft = offline_draft(_day(language, 0, [READ], alarms_skipped={"monitor": 1}, **more))
    assert draft.headline == headline
    assert heard(headline, speakable(draft.spoken_text, english=language == "en"))
