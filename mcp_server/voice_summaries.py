"""A task's summary as the voice says it: the service's shapes ("Reminder, daily at 08:30")
in the listener's language, and what people call the daily briefing."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from ambient.watches.reminders import DAYS
from mcp_server import voice_fix_names
from mcp_server.voice_references import counted, flat

# What people call the daily briefing besides its label ("每日简报"); the greet tool and the
# wake's context name it "今日简报".
BRIEFING_SUMMARY = re.compile(r"Daily briefing for")
BRIEFING_NAMES = (
    "今日简报",
    "今天的简报",
    "每天的简报",
    "早上的简报",
    "早间简报",
    "早报",
    "晨报",
    "today's briefing",
    "morning briefing",
)
# A task created without a name is said by its summary, which the service writes for lists
# ("Web monitor of 1 URL(s) every 5 min for alice"): its shapes said in Chinese and English.
BRIEFING_SAID = {flat(name) for name in BRIEFING_NAMES}
_SUMMARIES: list[tuple[re.Pattern[str], str, Callable[..., str]]] = [
    (
        re.compile(r"Web monitor of (\d+) URL\(s\) every ([\d.]+) min\b"),
        "网页监控（{0} 个网址，每 {1} 分钟）",
        lambda n, m: (
            f"web monitor of {counted(n, 'page', 'pages')} every {counted(m, 'minute', 'minutes')}"
        ),
    ),
    (re.compile(r"Threshold watch (\S+):"), "阈值监控 {0}", lambda m: f"threshold watch {m}"),
    (
        re.compile(r"News digest of (\d+) page\(s\), weekly on ([a-z,]+) at (\d\d:\d\d)"),
        "新闻摘要（{0} 个网页，每周{1} {2}）",
        lambda n, d, t: f"news digest of {counted(n, 'page', 'pages')} weekly on {d} at {t}",
    ),
    (
        re.compile(r"News digest of (\d+) page\(s\), (\w+) at (\d\d:\d\d)"),
        "新闻摘要（{0} 个网页，{1} {2}）",
        lambda n, e, t: f"news digest of {counted(n, 'page', 'pages')} {e} at {t}",
    ),
    (
        re.compile(r"Reminder, weekly on ([a-z,]+) at (\d\d:\d\d)"),
        "提醒（每周{0} {1}）",
        lambda d, t: f"reminder weekly on {d} at {t}",
    ),
    (
        re.compile(r"Reminder, (\w+) at (\d\d:\d\d)"),
        "提醒（{0} {1}）",
        lambda e, t: f"reminder {e} at {t}",
    ),
    (
        re.compile(r"News digest of (\d+) page\(s\), cron"),
        "新闻摘要（{0} 个网页，按计划）",
        lambda n: f"news digest of {counted(n, 'page', 'pages')} on a schedule",
    ),
    (re.compile(r"Reminder, cron"), "提醒（按计划）", lambda: "reminder on a schedule"),
    (BRIEFING_SUMMARY, "每日简报", lambda: "daily briefing"),
]
_EVERY = {"daily": "每天", "weekly": "每周"}
# A weekly one's days, said: "mon,fri" is 一、五 (每周一、五), "Mon, Fri".
_DAYS_ZH = dict(zip(DAYS, "一二三四五六日", strict=True))
_DAY_LIST = re.compile(rf"(?:{'|'.join(DAYS)})(?:,(?:{'|'.join(DAYS)}))*")


def _days_said(days: str, english: bool) -> str:
    names = days.split(",")
    if english:
        return ", ".join(name.capitalize() for name in names)
    return "、".join(_DAYS_ZH[name] for name in names)


@lru_cache(maxsize=1024)
def spoken_summary(summary: str | None, english: bool = False) -> str | None:
    """A task's summary as the voice says it: the service's own shapes in the listener's
    language (Chinese unless ``english``), any other summary as it is."""
    for pattern, said, said_en in _SUMMARIES:
        if summary and (found := pattern.match(summary)):
            # A word among them is a threshold watch's metric (said as `metric_said`), or
            # daily/weekly; counts and times ("2.5", "08:30") as written.
            if english:
                return said_en(
                    *(
                        _days_said(g, True)
                        if _DAY_LIST.fullmatch(g)
                        else voice_fix_names.metric_said(g, english)
                        if g.isidentifier()
                        else g
                        for g in found.groups()
                    )
                )
            words = [
                _days_said(g, False)
                if _DAY_LIST.fullmatch(g)
                else _EVERY.get(g, voice_fix_names.metric_said(g) if g.isidentifier() else g)
                for g in found.groups()
            ]
            return said.format(*words)
    return summary
