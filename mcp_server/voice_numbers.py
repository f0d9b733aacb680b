"""Numbers and spans of time as a listener says them: "十二", "twenty-four", "两三天", "this
week" read as a count or as hours (the voice tools' spans, a place said in words). Deterministic,
no LLM.
"""

from __future__ import annotations

import math
import re

ORDINAL_WORDS = ["一", "二", "三", "四", "五", "六", "七", "八", "九", "十"]
ENGLISH_NUMBERS = "one two three four five six seven eight nine ten eleven twelve".split()
CJK = re.compile(r"[\u3400-\u9fff]")


# Spoken time spans for "errors of the last …": a 1.5B model turns "最近两天" into hours=24 and
# "这一周" into hours=1 (docs/benchmarks.md, round 9), yet copies the words well. The span is read
# here: a number (digits, Chinese numerals, English words, "a", "couple"), then its unit.
_NUMBER_WORDS: dict[str, float] = {
    **{w: i + 1 for i, w in enumerate(ORDINAL_WORDS)},
    **{"两": 2, "俩": 2, "半": 0.5, "几": 3},
    **{w: i + 1 for i, w in enumerate(ENGLISH_NUMBERS)},
    **{"a": 1, "an": 1, "half": 0.5, "couple": 2, "few": 3, "several": 3},
    **{"half a": 0.5, "half an": 0.5},  # "half a day": not "a day"
}
# A count in words is read whole: its first words left unread, "一百小时" was one hour and
# "twenty-four hours" four.
_CHINESE_DIGITS = {**{w: i + 1 for i, w in enumerate(ORDINAL_WORDS[:9])}, "两": 2, "俩": 2, "零": 0}
_CHINESE_TENS = {"十": 10, "百": 100, "千": 1000}
_ENGLISH_SMALL = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
        " fifteen sixteen seventeen eighteen nineteen".split()
    )
}
_ENGLISH_TENS = {
    w: 10 * (i + 2)
    for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())
}
_ENGLISH_WORD = "|".join([*_ENGLISH_SMALL, *_ENGLISH_TENS, "hundred", "thousand"])
# "twenty-four", "a hundred and twenty": number words joined by spaces, hyphens and "and".
_ENGLISH_COUNT = rf"(?:(?:an?|{_ENGLISH_WORD})[\s-]+(?:and[\s-]+)?)*(?:{_ENGLISH_WORD})"


def chinese_number(word: str) -> float | None:
    """一…九千九百九十九 ("一百二十", "两百", "一百五" as people say 150); None if not one."""
    total, digit, last_tens = 0, None, 0
    if not word:
        return None
    for char in word:
        if char in _CHINESE_DIGITS:
            digit = _CHINESE_DIGITS[char]
        elif char in _CHINESE_TENS:
            last_tens = _CHINESE_TENS[char]
            total += (1 if digit is None else digit) * last_tens
            digit = None
        else:
            return None
    # "一百五": the digit after 百 is the tens ("一百零五" is 105).
    return total + (digit or 0) * (last_tens // 10 if last_tens > 10 and "零" not in word else 1)


def _english_number(words: str) -> float | None:
    """ "twenty-four", "a hundred and twenty", "thirty six"; None if not one."""
    total = current = 0
    said = [w for w in re.split(r"[\s-]+", words) if w and w != "and"]
    if not any(w not in ("a", "an") for w in said):
        return None  # "a" alone is no count ("a week" is read by its unit)
    for word in said:
        if word in _ENGLISH_SMALL or word in _ENGLISH_TENS:
            current += _ENGLISH_SMALL.get(word, 0) + _ENGLISH_TENS.get(word, 0)
        elif word in ("a", "an"):
            current += 1
        elif word == "hundred":
            current = max(current, 1) * 100
        elif word == "thousand":
            total, current = total + max(current, 1) * 1000, 0
        else:
            return None
    return float(total + current)


_UNIT_HOURS = {
    **dict.fromkeys(("小时", "钟头", "钟", "hour", "hr"), 1),  # "三个钟": three hours
    **dict.fromkeys(("天", "日", "晚上", "day", "night"), 24),
    **dict.fromkeys(("周", "星期", "礼拜", "week"), 168),
    **dict.fromkeys(("分钟", "minute", "min"), 1 / 60),  # an hour at least
    **dict.fromkeys(("月", "month"), 720),  # a week at most
    # "最近一年", "半年", "今年", "a quarter": a week too (not read, each was asked again).
    **dict.fromkeys(("季度", "quarter"), 2160),
    **dict.fromkeys(("年", "year", "yr"), 8760),
}
# "8点钟" is a clock time, not a span; "a quarter of an hour" is minutes, not three months.
_UNITS_ZH = "|".join("(?<!点)钟" if k == "钟" else k for k in _UNIT_HOURS if not k.isascii())
_UNITS_EN = "|".join(
    r"quarters?(?!\s+(?:of\s+an?\s+)?hour)" if k == "quarter" else f"{k}s?"
    for k in _UNIT_HOURS
    if k.isascii()
)
_SPAN = re.compile(
    rf"(\d+(?:\.\d+)?|[零一二三四五六七八九十百千两俩半几]+|\b{_ENGLISH_COUNT}\b"
    r"|\b(?:half a|half an|a|an|half|couple|few|several)\b)?"
    r"\s*(?:of\s+)?个?(半|\s*\band\s+a\s+half\b)?多?\s*"
    rf"({_UNITS_ZH}|(?<![a-z])(?:{_UNITS_EN})\b)(半|\s+and\s+a\s+half\b)?",
)
# A part of today ("上午", "this morning") is today's span: asked again, the same word came back.
_WHOLE_DAY = re.compile(
    r"今天|今日|\btoday\b|一整天|今早|今晨|今晚|上午|中午|下午|早上|早晨|凌晨|半夜|夜里"
    r"|\bthis\s+(?:morning|afternoon|evening)\b|\btonight\b"
)
_JUST_NOW = re.compile(r"刚才|刚刚|方才|\bjust\s+now\b|\ba\s+(?:moment|minute)\s+ago\b")
_SHORT = re.compile(r"\b(\d+)\s*([hd])\b")  # "6h", "2d"
_SINCE_YESTERDAY = re.compile(r"昨天|昨晚|昨日|yesterday")
# Before "yesterday": "the day before yesterday" (前天) is three days back, not two; as a count
# of days "前天" was read as one day.
_SINCE_DAY_BEFORE = re.compile(r"前天|前日|\bday before yesterday\b")


def number(word: str) -> float | None:
    if re.fullmatch(r"\d+(?:\.\d+)?", word):
        return float(word)
    if word in _NUMBER_WORDS:
        return _NUMBER_WORDS[word]
    low, high = (_NUMBER_WORDS.get(w) for w in (word[:1], word[1:]))
    if low and high and high - low == 1 and high < 10:  # "两三天": the longer of the range
        return high
    return chinese_number(word) if CJK.search(word) else _english_number(word)


def number_said(said: str) -> float | None:
    """The number ``said`` is and nothing else: "12", "十二", "twelve", "twenty-four"."""
    text = said.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    return chinese_number(text) if CJK.search(text) else _english_number(text)


def hours_said(said: int | float | str | None, most: int = 168) -> int | None:
    """How many hours a spoken span means, 1..``most``: ``48`` → 48, "两天" → 48, "这一周" →
    168, "past three days" → 72, "俩小时" → 2, "since yesterday" → 48; None when it says none."""
    if said is None or isinstance(said, bool):
        return None
    if isinstance(said, int | float):
        hours = float(said)
    else:
        text = said.strip().lower()
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            hours = float(text)
        elif _SINCE_DAY_BEFORE.search(text):
            hours = 72
        elif _SINCE_YESTERDAY.search(text):
            hours = 48
        elif found := _SPAN.search(text):
            count = number(found.group(1)) if found.group(1) else 1.0
            if count is None:  # "十几个小时": a number not read is no span, not a guess
                return None
            unit = found.group(3).rstrip("s")
            # "一个半小时", "一天半": the half is said after the count or the unit.
            hours = (count + (0.5 if found.group(2) or found.group(4) else 0)) * _UNIT_HOURS[unit]
        elif short := _SHORT.search(text):
            hours = int(short.group(1)) * (24 if short.group(2) == "d" else 1)
        elif _WHOLE_DAY.search(text):
            hours = 24
        elif _JUST_NOW.search(text):
            hours = 1
        else:
            return None
    return whole_hours(hours, most)


def whole_hours(hours: float, most: int = 168) -> int:
    """The whole span ``hours`` asks about, 1..``most``: 2.5 h is 3, and past ``most`` (an
    infinite count too) it is ``most``."""
    return max(1, math.ceil(min(most, hours)))


# A number said after a name's Latin word ("backup 二", "backup二", "backup two"): ASR writes
# what a Chinese speaker says of "backup-2" in Chinese numerals, an English one's in words.
# Taken whole ("十二点" is no "10二点"), its "号" with it ("backup 二号").
_NUMBER_AFTER_NAME = re.compile(
    rf"(?<=[A-Za-z0-9])(\s*)(?:([零一二两三四五六七八九十百]++)号?(?![个点位分之])"
    rf"|(?<=\s)({_ENGLISH_WORD})(?![A-Za-z]))",
    re.IGNORECASE,
)


def digits_in_names(said: str) -> str:
    """``said`` with each number said after a Latin word written in digits ("backup二" is
    "backup2"); the rest as it is."""

    def digits(match: re.Match[str]) -> str:
        chinese, english = match[2], match[3]
        value = chinese_number(chinese) if chinese else _english_number(english.lower())
        return match[0] if value is None else f"{match[1]}{int(value)}"

    return _NUMBER_AFTER_NAME.sub(digits, said)
