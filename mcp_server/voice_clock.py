"""A time said, as a task's label says it on its 24-hour clock (`ambient.speech.said_time`):
"八点半", "晚上八点" are "8点30分", "20点". Deterministic, no LLM.
"""

from __future__ import annotations

import re

from mcp_server.voice_numbers import chinese_number

# A time as people say it ("八点半", "8点一刻", "八点三十分", "十二点零五分") and as the labels
# say it (`ambient.speech`'s "8点30分", "12点5分", "8点" on the hour).
# A minute in one Chinese numeral says 分 ("八点五分"): "三点一线" is no time.
_CLOCK = re.compile(
    r"(?P<part>早上|上午|凌晨|中午|下午|晚上|傍晚|半夜|午夜)?"
    r"(?P<hour>[零一二两三四五六七八九十]{1,3}|\d{1,2})\s*点\s*"
    r"(?:(?P<half>半)|(?P<quarter>[一三])刻|(?P<minute>[零一二两三四五六七八九十]{2,3}|\d{1,2})"
    r"\s*分?|(?P<one>[零一二两三四五六七八九])\s*分|整)?"
)
# The parts of the day that put an hour of the 12-hour clock in the afternoon, and those
# whose "十二点" is midnight ("晚上十二点" found the noon reminder).
AFTERNOON, MIDNIGHT = {"下午", "晚上", "傍晚"}, {"晚上", "凌晨", "半夜", "午夜"}


def clock_as_labelled(said: str, later: bool = False) -> str:
    """``said`` with each time in it as a task's label says it, on a 24-hour clock (ASR writes
    八点半 as often as 8点30分: a reminder at 8:30 was not found by it); ``later``: an hour
    said without the part of the day ("八点") as the afternoon's or evening's (20点)."""

    def labelled(match: re.Match[str]) -> str:
        hour = _number(match["hour"])
        if match["half"]:
            minute: float | None = 30
        elif match["quarter"]:
            minute = 15 if match["quarter"] == "一" else 45
        else:
            said = match["minute"] or match["one"]
            minute = _number(said) if said else 0
        if hour is None or minute is None or hour > 24 or minute > 59:
            return match[0]
        part = match["part"]
        if part in MIDNIGHT and hour == 12:
            hour = 0
        elif (part in AFTERNOON and hour < 12) or (part == "中午" and hour < 3):
            hour += 12  # the labels' clock is of 24 hours ("15点"); 中午一点 is 13点
        elif later and part is None and 0 < hour < 12:
            hour += 12
        return f"{int(hour)}点" + (f"{int(minute)}分" if minute else "")

    return _CLOCK.sub(labelled, said)


def _number(word: str) -> float | None:
    return float(word) if word.isdigit() else chinese_number(word)
