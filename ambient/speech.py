"""Text a TTS engine reads as it is meant: no Markdown, URLs, ids or log-template
placeholders. The one cleaning step of everything the product speaks (the voice tools, the
device's greeting). Deterministic, no LLM.
"""

from __future__ import annotations

import re

MAX_SPOKEN = 300
# A spoken answer is one to three sentences (docs/xiaozhi.md): a briefing of seven is cut.
MAX_SENTENCES = 3

# A web address is ASCII: the Chinese written against it, with no space between, is not part
# of it (a quote and the answer after it went with it). Its sentence's end stays.
_URL = re.compile(r"(?:(?:https?|wss?)://|\bwww\.)[!-~]*", re.I)
_URL_ENDS = ".,;:!?)]'\""  # kept after it: its sentence's end, a closing bracket or quote
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")  # [words](url): the words are said
_BULLET = re.compile(r"^\s*[-+*]\s+", re.MULTILINE)
# Emoji a TTS reads by name ("fire", "alarm clock"), with what composes them (skin tones, ZWJ,
# VS16, keycaps), and shapes used as bullets ("black circle"): the pictograph blocks, the
# technical one (⌚ ⏰ ⏳), geometric shapes (● ▶ ■), ‼ ⁉ ℹ ™. Symbols it reads well (℃, °,
# →) are outside these ranges.
_EMOJI = re.compile(
    "[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\u2300-\u23ff\u25a0-\u25ff"
    "\u203c\u2049\u2122\u2139\ufe0e\ufe0f\u200d\u20e3\U000e0020-\U000e007f]+"
)
# Marks nobody hears that turn text around or join it unseen (bidi overrides and isolates,
# zero-width spaces, a BOM): a name written with them was sent to the TTS with them.
_INVISIBLE = re.compile("[\u200b\u200c\u200e\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]+")
# The id rules read ASCII words: Chinese is written against an id, and is no part of it. A word
# of a path or key may have the letters of the scripts written with spaces (ü, é, ж) too.
_W = "\\w\u00c0-\u1fff"
# remediation/abc…, web-monitor/alice/x; not what a listener needs: a fraction or date ("3/5",
# "11/26"), an abbreviation ("I/O", "TCP/IP"), a rate ("KB/s", "800/s", "rows/s", "5000
# rows/s", per a thing too: "req/s/pod"), "HTTP/1.1". The product's ids are lowercase.
# A path in a log line ("/api/orders/<*>") goes whole: its first slash and variable parts too,
# and an image's tag or an address's port.
_PER = "/(?:s|sec|min|h|day)"
_PATH_ID = re.compile(
    rf"(?<![{_W}./-])/?(?!(?:\d+(?:/\d+)+|[A-Z][A-Za-z]*/[A-Z][A-Za-z]*"
    rf"|(?:\d[\d.]*[A-Za-z]*|[A-Za-z]+){_PER}(?:/[A-Za-z]+)*"
    r"|HTTP/\d(?:\.\d)?)(?![\w@/-]|\.\w))"
    rf"[{_W}.-]+/[{_W}.@/<*>-]+(?::[\w.-]+)?",
    re.ASCII,
)
# A UUID, whole: the hex rule alone leaves its short middle groups ("-7d4e-4a1b-") behind.
_UUID = re.compile(r"\b[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}\b", re.IGNORECASE | re.ASCII)
# A Kubernetes pod of a Deployment is said by its workload: checkout-api-7d9f8b6c5d-x2k4p.
# The ReplicaSet hash and the suffix are drawn from Kubernetes' "safe" alphabet (no vowels,
# no 0, 1, 3); a digit among them tells them from a word ("backlog-worker" stays).
_SAFE = "[bcdfghjklmnpqrstvwxz2456789]"
_POD = re.compile(
    rf"\b([a-z0-9][a-z0-9.-]*?)-(?=[a-z-]{{0,16}}\d){_SAFE}{{6,10}}-{_SAFE}{{5}}\b", re.ASCII
)
# A hex id is random, so it holds letters and digits both: 8 digits are a number said (an order
# id 20261126, a count), and a word of the letters a-f alone is a name someone chose
# ("deadbeef", "cafeadded"), said as it is. So is a short one that is a word and a number
# ("cafe2024", "beef2025": a task or a Deployment its user named): one of fewer than 12
# characters whose letters and digits change over once (a random one does so 7 times in 100
# at 8 characters, fewer longer). Taken out, a name went from every answer, the question
# before an approval too ("要批准第三个， 的错误率的修复吗？").
_HEX = re.compile(r"\b(?=[a-f]*\d)(?=\d*[a-f])[0-9a-f]{8,}\b", re.IGNORECASE | re.ASCII)
_WORD_AND_NUMBER = re.compile(r"[a-f]+\d+|\d+[a-f]+", re.IGNORECASE | re.ASCII)


def _id_or_name(match: re.Match[str]) -> str:
    """A hex-looking word out ("" for an id), or kept when it reads as a name (`_HEX`)."""
    word = match[0]
    return word if len(word) < 12 and _WORD_AND_NUMBER.fullmatch(word) else ""


# The key an id was written under ("trace_id=…"), left with nothing after it once the id is
# out: said "trace id equals" otherwise; a Chinese key ("实例=") is said without its sign.
_EMPTIED_KEY = re.compile(
    rf"(?:(?<![{_W}.-])[{_W}.-]+|(?<=[^\x00-\x7f]))=(?=[\s，。；、,;.!?！？]|$)", re.ASCII
)
_CLOUD_ID = re.compile(
    r"\b(?:cls|np|ins|lb|vpc|subnet|sg)-[0-9a-z]{4,}\b", re.IGNORECASE | re.ASCII
)
# A threshold's sign before its number ("CPU > 90%"): said, not taken out as Markdown.
_COMPARE = re.compile(r"\s*([<>]=?)\s*(?=\d)")
_COMPARED = {">": ("超过", "above"), "<": ("低于", "below")}
_COMPARED |= {">=": ("不低于", "at least"), "<=": ("不超过", "at most")}
_MARKDOWN = re.compile(r"[*_`#<>|\[\]]+")
# Log templates name their variable parts <*>: said as words, not as symbols, in the language
# of the line around it (an English log line in a Chinese answer stays English): "some" before
# a unit ("after some ms"), else "something"; in Chinese "某个值", its spaces to Chinese gone.
_PLACEHOLDER = re.compile(r"(\s?)<\*>(\s?)")
# A key's "=" before the words said for its value: a TTS said "equals" ("trace id 等于某个值").
_KEY_SAID = re.compile(r"(?<=\w)=(?=something|some\b|某个值)")
# What ends a clause around a placeholder, and a Chinese character in it.
_CLAUSE_MARKS = ("。", "，", "；", "：", "！", "？", "“", "”", "\n")
_HAN = re.compile(r"[\u3400-\u9fff]")
_UNIT = re.compile(
    r"\s*(?:ms|s|secs?|seconds?|mins?|minutes?|h|hours?|days?|bytes?|[KMGT]i?B|times|retries"
    r"|attempts|rows|items|records|requests|lines|connections)\b",
    re.IGNORECASE | re.ASCII,
)
# A class said without its package (java.net.SocketTimeoutException: SocketTimeoutException),
# as a stack trace's reader says it: two or more lowercase parts before a capitalised name, not
# inside a longer name ("my-app.v2.Service") or an address ("ops.team.Lead@example.com").
_PACKAGE = re.compile(
    r"(?<![\w.@-])(?:[a-z_][a-z0-9_]*\.){2,}(?=[A-Z][\w$]*(?![\w.$]*@))", re.ASCII
)
# Where a clause ends: Chinese punctuation, or an ASCII comma, semicolon or colon before a space
# (not inside "09:30", "1,500,000" or "https://").
_CLAUSE_END = re.compile(r"[，；：]|[,;:](?=\s)")
_OPENERS, _CLOSERS = "(（[【“‘", ")）]】”’"
_EMPTIED_QUOTES = re.compile(r"'\s*'|\"\s*\"|“\s*”|‘\s*’|\(\s*\)|（\s*）")
# A span of clock times ("09:00–09:05", "09:00 - 09:05", a burst's run): its dash, read oddly,
# is said "到" / "to" (each time as below). An ASCII arrow ("2 -> 4") is said as "to" too: its
# '>' is no Markdown (a TTS reads "→" well).
_SPAN = re.compile(r"\b(\d{1,2}:\d{2})\s*[-–—~～]\s*(?=\d{1,2}:\d{2}\b(?!:\d))")
# Every clock time ("每天 08:30", "14:30之后") in words: a TTS may read "08:30" as a ratio. Only
# HH:MM, hours 0-23 and two digits of minutes: not a time with seconds or in a timestamp
# ("T08:30:00"), nor a count ("3:2"), nor a zone's offset ("+08:00", "UTC-05:00"); nor a ratio
# or score that looks like a time, named so just before or after it ("ratio 1:10", "比分 12:30").
_CLOCK = re.compile(r"(?<![A-Za-z0-9_:.+\-−±])([01]?\d|2[0-3]):[0-5]\d(?![A-Za-z0-9_:]|\.\d)")
_RATIO = "ratio|score|odds|比分|比例|比率|比值|赔率"
_RATIO_BEFORE = re.compile(rf"(?:{_RATIO})\s*(?:is|was|of|at|为|是|=|:|：)?\s*$", re.IGNORECASE)
_RATIO_AFTER = re.compile(rf"\s*的?(?:{_RATIO})", re.IGNORECASE)
_ARROW = re.compile(r"\s*-+>\s*")
_FULL_STOP = re.compile(r"[。！？]+|[.!?]+(?=\s|$)")  # "3.5" and "a.b" go on
# "1." numbering an item ("要点：1. …；2. …") ends no sentence: the cut would stop on "2.". A
# number is an item's only where it opens a segment (the text's start, a line's, after a mark
# or a sentence's end) in a run 1, 2, … of such numbers, each after the one before it; a later
# item opens after its own mark, not a colon ("Checks: 1. Alerts: 2." is two sentences), a
# comma too ("1. a, 2. b": so "Firing, 1. Pending, 2." is read as a list, not cut). A number
# ending a sentence ("rose to 12.", "at 1.9.") opens none; a line opened by "1." is an item.
_ITEM = re.compile(
    r"(?:^|(?<=\n)|(?<=[：；，。！？])|(?<=[：；，。！？:;,.!?] ))(\d{1,2})\.(?=\s|$)"
)


def _list_numbers(text: str) -> set[int]:
    """Where each full stop numbering a list's item ends, in one pass over ``text``."""
    items: set[int] = set()
    run: list[int] = []
    for item in _ITEM.finditer(text):
        at = item.start() - 1 - (text[item.start() - 1 : item.start()] == " ")
        n, mark = int(item[1]), text[at] if at >= 0 else ""
        if n == len(run) + 1 > 1 and mark not in ":：":
            run.append(item.end())
            continue
        items.update(run if len(run) > 1 else ())
        run = [item.end()] if n == 1 else []
        if n == 1 and text[item.start() - 1 : item.start()] in ("", "\n"):
            items.add(item.end())  # a line opened by "1." is an item, alone too
    return items | (set(run) if len(run) > 1 else set())


def cleaned(text: str, *, english: bool = False) -> str:
    """Text a TTS engine reads well, whatever its length: no Markdown, URLs or ids (the words
    it puts in are English when ``english``). Every spoken answer goes through it."""
    return _cleaned_lines(text, english).replace("\n", " ")


def _cleaned_lines(text: str, english: bool) -> str:
    """``cleaned``, each run of white space one space, or one line break if it holds one."""
    text = _INVISIBLE.sub("", _LINK.sub(r"\1", text))
    to = " to " if english else "到"
    text = _SPAN.sub(lambda m: m[1] + to, text)
    text = _CLOCK.sub(lambda m: _clock_said(m, english), text)
    # Greedy, its end given back (a lazy match looked ahead at each character: quadratic).
    text = _URL.sub(lambda found: found[0][len(found[0].rstrip(_URL_ENDS)) :], text)
    text = _ARROW.sub(to, text)
    text = _BULLET.sub("", text)
    text = _EMOJI.sub(" ", text)
    text = _UUID.sub("", text)
    text = _POD.sub(r"\1", text)
    text = _PATH_ID.sub("", text)
    text = _PACKAGE.sub("", text)
    text = _PLACEHOLDER.sub(lambda m: _placeholder_said(m, english), text)
    text = _KEY_SAID.sub(" ", text)
    text = _CLOUD_ID.sub("", text)
    text = _HEX.sub(_id_or_name, text)
    text = _EMPTIED_QUOTES.sub("", text)  # an id said in quotes leaves its quotes behind
    text = _EMPTIED_KEY.sub("", text)
    text = _COMPARE.sub(lambda m: f" {_COMPARED[m[1]][english]} ", text)
    text = _MARKDOWN.sub(" ", text)
    text = re.sub(r"[^\S\n]+", " ", re.sub(r"\s*\n\s*", "\n", text)).strip()
    return re.sub(r"\s+([，。！？,.!?:：;；])", r"\1", text)


def _placeholder_said(match: re.Match[str], english: bool) -> str:
    """A log template's <*> in words of the line around it: its nearest letter's script (the
    one before it, else after it; none: the answer's language), but Chinese for a key's value
    ("key=<*>", "key: <*>") in a clause holding Chinese (an English word in a Chinese line
    was heard as the log's: "超时 order id=something")."""
    text, start, end = match.string, match.start(), match.end()
    opens = max(text.rfind(mark, 0, start) for mark in _CLAUSE_MARKS) + 1
    closes = min((i for mark in _CLAUSE_MARKS if (i := text.find(mark, end)) >= 0), default=None)
    near = next((c for c in reversed(text[:start]) if c.isalpha()), None)
    near = near or next((c for c in text[end:] if c.isalpha()), None)
    keyed = text[:start].rstrip().endswith(("=", ":"))
    if keyed and _HAN.search(text, opens, closes if closes is not None else len(text)):
        near = "值"
    if near.isascii() if near else english:
        word = "some" if _UNIT.match(text, end) else "something"
        # A space to a word beside it; none after a key's "=" ("status=something": a space
        # there read as a key whose id was taken out, and the key was dropped).
        before = match[1] or (" " if text[start - 1 : start].isalnum() else "")
        after = match[2] or (" " if text[end : end + 1].isalnum() else "")
        return f"{before}{word}{after}"
    # A space is kept only to an English word beside it: none between Chinese characters.
    before = match[1] if text[start - 1 : start].isascii() else ""
    after = match[2] if text[end : end + 1].isascii() else ""
    return f"{before}某个值{after}"


def spoken_clip(text: str, limit: int) -> str:
    """``text`` in ``limit`` characters for speech, its classes without their packages: cut at
    a clause's end when that keeps half of it, else after a word ("…"), never inside one."""
    text = _PACKAGE.sub("", " ".join(text.split()))
    if len(text) <= limit:
        return text
    cut = text[: limit + 1]  # a boundary just past the limit ends the text at it
    ahead = text[: limit + 2]  # and the space after it, which says it is one
    ends = [
        m.start()
        for m in _CLAUSE_END.finditer(ahead)
        if m.start() <= limit and _closed(cut[: m.start()])
    ]
    clause = max(ends, default=-1)
    if clause >= limit // 2:
        return cut[:clause].rstrip()
    space = cut.rfind(" ", 0, limit)
    return (cut[:space] if space >= limit // 2 else cut[: limit - 1]) + "…"


def cause_kept_clip(text: str, limit: int) -> str:
    """``spoken_clip``, but a message of an event and its cause ("request <*> failed: upstream
    returned HTTP 503") too long for ``limit`` keeps its cause whole, the event cut to what is
    left (or left out): cut at its end, the cause was what went unsaid."""
    flat = _PACKAGE.sub("", " ".join(text.split()))
    head, colon, cause = flat.partition(": ")
    if len(flat) <= limit or not colon or len(cause.split()) < 2 or len(cause) > limit:
        return spoken_clip(text, limit)
    room = limit - len(cause) - 2
    event = spoken_clip(head, room) if room >= 12 else ""
    return f"{event}: {cause}" if event else cause


def sentences_within(text: str, limit: int) -> str:
    """``text`` in ``limit`` characters: its sentences that fit, when they keep half of it,
    else ``spoken_clip`` (a clause's end, or after a word)."""
    if len(text) <= limit:
        return text
    ends = [m.end() for m in _FULL_STOP.finditer(text) if m.end() <= limit]
    if ends and ends[-1] >= limit // 2:
        return text[: ends[-1]]
    return spoken_clip(text, limit)


def within_a_sentence(text: str) -> str:
    """``text`` (a log's template, quoted in a sentence of ours) ending no sentence: its full
    stops are commas, its last dropped. A cut to three sentences ended at the "." in "Request
    timed out. Retrying", and the sentence's count was never heard."""
    text = _FULL_STOP.sub(lambda m: "，" if m[0][0] in "。！？" else ",", text)
    return text.rstrip(",， ")


def _closed(text: str) -> bool:
    """Whether ``text`` leaves no quote or bracket open (a cut there would)."""
    opened = sum(text.count(c) for c in _OPENERS) - sum(text.count(c) for c in _CLOSERS)
    return opened <= 0 and text.count('"') % 2 == 0


def _clock_said(clock: re.Match[str], english: bool) -> str:
    """A clock time found in text, in words; a ratio or a score named so, as written."""
    text, start = clock.string, clock.start()
    if _RATIO_BEFORE.search(text[max(0, start - 12) : start]) or _RATIO_AFTER.match(
        text, clock.end()
    ):
        return clock[0]
    return said_time(clock[0], english=english)


def said_time(hhmm: str, *, english: bool = False) -> str:
    """ "06:30" as a speaker hears it: "6点30分", "6:30" ("6点" on the hour)."""
    hour, _, minute = hhmm.strip().partition(":")
    if not (hour.isdigit() and minute.isdigit()):
        return hhmm.strip()
    if english:
        return f"{int(hour)}:{minute}"
    return f"{int(hour)}点" + (f"{int(minute)}分" if int(minute) else "")


def speakable(text: str, limit: int = MAX_SPOKEN, *, english: bool = False) -> str:
    """A spoken answer: ``text`` cleaned, then three sentences and ``limit`` chars at most."""
    text = _cleaned_lines(text, english)
    items = _list_numbers(text)
    ones = {m.end() for m in _ITEM.finditer(text) if m[1] == "1"}
    text = text.replace("\n", " ")
    ends = [m.end() for m in _FULL_STOP.finditer(text) if m.end() not in items]
    # A "1." may end a sentence ("Firing alarms: 1.") or open a one-item list: no cut there.
    cuts = [e for e in ends if e not in ones]
    third = next((e for e in cuts if e >= ends[MAX_SENTENCES - 1]), 0) if len(ends) > 2 else 0
    if third and text[third:].strip():
        text = text[:third]
    if len(text) <= limit:
        return text
    # At a sentence's end, as they are counted ("3.5" is none: "from 120 ms to 3." was said).
    end = max((e for e in cuts if e <= limit), default=0)
    return text[:end].rstrip() if end > limit // 3 else spoken_clip(text, limit)
