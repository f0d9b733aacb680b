"""A time said, as a task's label says it on its 24-hour clock (`ambient.speech.said_time`):
"八点半", "晚上八点", "8 pm", "half past eight in the evening", "eight thirty pm", "8.30" and
"20:00" are "8点30分", "20点", "20点", "20点30分", "20点30分", "8点30分" and "20点"; so are
"830" and "8 30" said alone or as a reminder's time, "twenty thirty", "夜里八点半" (20:30).
One reader for both languages: ASR writes "8pm" and "8:30" for a Chinese speaker too, and an English
speaker's reminder is one at "20:00". Deterministic, no LLM.
"""

from __future__ import annotations

import re
from functools import lru_cache

from ambient.speech import said_time
from mcp_server.voice_numbers import ENGLISH_NUMBERS, chinese_number, number

# A time as people say it in Chinese ("八点半", "8点一刻", "八点三十分", "十二点零五分") and as
# the labels say it ("8点30分", "12点5分", "8点" on the hour). A minute in one Chinese numeral
# says 分 ("八点五分"): "三点一线" is no time.
_PARTS = r"早上|上午|凌晨|中午|下午|晚上|傍晚|半夜|午夜|夜里|夜间"
# The minutes before the hour ("差一刻九点", "九点差五分", "差十分九点" are 8:45, 8:55, 8:50).
_LESS = r"一刻|(?:[一二两三四五六七八九十]{1,3}|\d{1,2})\s*分"
_CHINESE = (
    rf"(?P<part>{_PARTS})?(?:差(?P<less>{_LESS})\s*)?"
    r"(?P<hour>[零一二两三四五六七八九十]{1,3}|\d{1,2})\s*点\s*"
    rf"(?:差(?P<less_after>{_LESS})|(?P<half>半)|(?P<quarter>[一三])刻"
    r"|(?P<minute>[零一二两三四五六七八九十]{2,3}|\d{1,2})"
    r"\s*分?|(?P<one>[零一二两三四五六七八九])\s*分|整)?"
)
# In English and digits: "8 pm", "8:30 a.m.", "8.30", "20:00", "eight o'clock in the evening",
# "eight thirty", "seven oh five", "half past eight", "a quarter to nine", "12 noon", "midnight";
# not inside a word or a number ("server18", "12:30:45", "v1.10"), nor a number's last word
# ("fifty-nine pm" is no hour of nine). A Chinese part of the day may come first ("晚上8:30"). An
# hour alone ("eight", "8") is one only after "at" or before "reminder" ("the 8 reminder", "the
# eight reminder", not "backup 2 reminder"): "approve 2" is a place. "830", "8 30" are 8:30 where
# a time is expected (`_english`), "twenty thirty" 20:30 (an hour past twelve with its minutes).
_ONES = "|".join(ENGLISH_NUMBERS[:9])
_MINUTE_WORDS = (
    rf"(?:oh|o|zero)[\s-]+(?:{_ONES})|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen"
    rf"|seventeen|eighteen|nineteen|(?:twenty|thirty|forty|fifty)(?:[\s-]+(?:{_ONES}))?"
)
# An hour of the 24-hour clock in words ("twenty thirty" is 20:30) only with its minutes: a
# number word alone ("twenty") is a count.
_HOURS_24 = (
    r"(?:twenty[\s-]+(?:one|two|three)|twenty|thirteen|fourteen|fifteen|sixteen|seventeen"
    rf"|eighteen|nineteen)(?=[\s-]+(?:{_MINUTE_WORDS})(?![a-z]))"
)
_HOUR = rf"\d{{1,2}}(?!\d)|{_HOURS_24}|(?<!ty[-\s])(?:{'|'.join(ENGLISH_NUMBERS)})(?![a-z])"
_ENGLISH = (
    rf"(?<![a-z0-9_:.])(?:(?P<en_zh>{_PARTS})\s*(?=\d))?"
    r"(?:(?:(?P<en_half>half)|(?:a\s+)?(?P<en_quarter>quarter))"
    rf"\s+(?P<en_way>past|after|to)\s+(?P<en_of>{_HOUR})"
    r"|(?P<en_run>(?P<run_hour>[01]?\d|2[0-3])(?P<run_minute>[0-5]\d))(?![\d:]|\.\d)"
    rf"|(?P<en_hour>{_HOUR})(?:[:.](?P<en_minute>[0-5]\d)(?![\d:]|\.\d)"
    r"|\s+(?P<en_spaced>[0-5]\d)(?![\d:]|\.\d)"
    rf"|[\s-]+(?P<en_words>{_MINUTE_WORDS})(?![a-z]))?)"
    r"(?:\s*(?P<en_mark>(?:[ap]\.?\s?m(?![a-z])\.?|o['’]?\s?clock|noon|midnight)(?![a-z])))?"
    r"(?:\s+(?P<en_part>(?:in\s+the|this)\s+(?:morning|afternoon|evening)|at\s+night|tonight)(?![a-z]))?"
    r"|(?<![a-z])(?P<en_alone>noon|midday|midnight)(?![a-z])"
)
_CLOCK = re.compile(f"{_CHINESE}|{_ENGLISH}", re.IGNORECASE)
_AT = re.compile(r"(?<![a-z])at\s+$", re.IGNORECASE)
_REMINDER = re.compile(r"\s*reminders?(?![a-z])", re.IGNORECASE)
_A_REMINDER = re.compile(r"\s*reminder(?![a-z])", re.IGNORECASE)
_OPENS = re.compile(r"(?:^|(?<![a-z])(?:the|my|this|that)\s+)$", re.IGNORECASE)  # not "backup 2"
_A_REMINDER_ZH = re.compile(r"\s*(?:reminders?(?![a-z])|的?提醒)", re.IGNORECASE)
_NOTHING_ELSE = re.compile(r"[\W_]*")  # spaces and punctuation: nothing said
# The parts of the day that put an hour of the 12-hour clock in the afternoon, and those
# whose "十二点" is midnight ("晚上十二点" found the noon reminder); English ones as these.
AFTERNOON, MIDNIGHT = {"下午", "晚上", "傍晚"}, {"晚上", "凌晨", "半夜", "午夜", "夜里", "夜间"}
# "夜里八点" is 20:00, but "夜里两点" is 2:00 (the small hours are of the night too).
NIGHT = {"夜里", "夜间"}
_PARTS_EN = {
    **{"am": "凌晨", "pm": "下午", "morning": "早上", "afternoon": "下午", "evening": "晚上"},
    **{"night": "晚上", "tonight": "晚上", "noon": "中午", "midday": "中午", "midnight": "午夜"},
}


@lru_cache(maxsize=4096)  # the names of a user's tasks are read with each reference
def clock_as_labelled(said: str, later: bool = False) -> str:
    """``said`` with each time in it as a task's label says it, on a 24-hour clock (ASR writes
    八点半 as often as 8点30分: a reminder at 8:30 was not found by it); ``later``: an hour
    said without the part of the day ("八点", "8 o'clock") as the afternoon's or evening's."""

    def labelled(match: re.Match[str]) -> str:
        part, hour, minute = _chinese(match) if match["hour"] else _english(match)
        if hour is None or minute is None or hour > 24 or minute > 59:
            return match[0]
        if part in MIDNIGHT and hour == 12:
            hour = 0
        elif (
            (part in AFTERNOON and hour < 12)
            or (part == "中午" and hour < 3)
            or (part in NIGHT and 6 <= hour < 12)
        ):
            hour += 12  # the labels' clock is of 24 hours ("15点"); 中午一点 is 13点
        elif later and part is None and 0 < hour < 12:
            hour += 12
        return said_time(f"{int(hour)}:{int(minute):02d}")

    return _CLOCK.sub(labelled, said)


# The part of the day, the hour and the minute a time says; None for either: no time.
_Read = tuple[str | None, float | None, float | None]
_NO_TIME: _Read = (None, None, None)


def _chinese(match: re.Match[str]) -> _Read:
    hour = _number(match["hour"])
    if less := match["less"] or match["less_after"]:
        before = 15 if less == "一刻" else _number(less.rstrip("分").strip())
        if hour is None or before is None or not 0 < before < 60:
            return _NO_TIME
        return match["part"], (hour - 1) % 24, 60 - before  # "差一刻零点" is 23:45
    if match["half"]:
        minute: float | None = 30
    elif match["quarter"]:
        minute = 15 if match["quarter"] == "一" else 45
    else:
        said = match["minute"] or match["one"]
        minute = _number(said) if said else 0
    return match["part"], hour, minute


def _number(word: str) -> float | None:
    return float(word) if word.isdigit() else chinese_number(word)


def _english(match: re.Match[str]) -> _Read:
    if match["en_alone"]:
        return _PARTS_EN[match["en_alone"].lower()], 12, 0
    mark = re.sub(r"[^a-z]", "", (match["en_mark"] or "").lower())
    words = (match["en_part"] or mark).lower().split()  # "in the evening": its last word
    part = _PARTS_EN.get(words[-1]) if words else match["en_zh"]
    if match["en_of"]:
        hour, minute = number(match["en_of"].lower()), 30 if match["en_half"] else 15
        if match["en_way"].lower() == "to":
            if match["en_half"] or hour is None:
                return _NO_TIME  # "half to" is no time
            hour, minute = hour - 1, 45
        return part, hour, minute
    if match["en_run"] or match["en_spaced"]:
        # Digits a recogniser wrote for "eight thirty" ("830", "8 30", "2030") are a time only
        # where one is expected: said alone, after "at", before "reminder" ("the 830 reminder",
        # "830的提醒"), or with a part of the day; elsewhere a number ("backup 2030", "every
        # 1440 min", "log-2026").
        before, after = match.string[: match.start()], match.string[match.end() :]
        if not (
            mark
            or part
            or _NOTHING_ELSE.fullmatch(before + after)
            or _AT.search(before)
            or (_A_REMINDER_ZH.match(after) and _OPENS.search(before))
        ):
            return _NO_TIME
        said_hour = match["run_hour"] or match["en_hour"]
        return part, number(said_hour.lower()), int(match["run_minute"] or match["en_spaced"])
    said = match["en_hour"]
    alone = not (match["en_minute"] or match["en_words"] or mark or part)
    if alone and not (
        _AT.search(match.string, 0, match.start())
        or (
            (_REMINDER if said.isdigit() else _A_REMINDER).match(match.string, match.end())
            and said.lower() != "one"  # "the one reminder", "the three reminders": no hour
            and _OPENS.search(match.string, 0, match.start())
        )
    ):
        return _NO_TIME
    if match["en_words"]:  # "thirty", "forty-five", "oh five"
        words = re.sub(r"^(?:oh|o)\b", "", match["en_words"].lower()).strip()
        return part, number(said.lower()), number(words)
    return part, number(said.lower()), int(match["en_minute"] or 0)
