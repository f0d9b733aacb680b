"""A spoken reference's words, whatever it names: a place ("第二个", "the second", "2",
"倒数第二个"), a reference that names nothing ("它", "任务名"), names compared as said (whole or a
part of them), the words around a name that only say what it is; and the words a list said aloud
is made of (counts, names, places). Which fix or task a reference names is `voice_fix_names` and
`voice_task_names`. Deterministic, no LLM.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

from mcp_server.voice_numbers import CJK, ENGLISH_NUMBERS, ORDINAL_WORDS, number


def counted(count: int | str, one: str, many: str) -> str:
    """``count`` things in English: "1 fix", "2 fixes" (a count as a number or as written)."""
    return f"{count} {one if str(count) == '1' else many}"


def spoken_name(raw: str) -> str:
    return raw.replace("-", " ").replace("_", " ").replace(".", " ").strip()


# Between the items of an English list said aloud: an item may hold a comma of its own ("number
# 1, error rate on checkout"), so commas between them ran items together (a task's label holds
# none: `task_label`). Chinese lists are joined by "、", which no item holds.
LIST_SEP_EN = "; "


def ordinal_word(i: int) -> str:
    """The Chinese ordinal of place i (from 0): a word up to the tenth, digits after it."""
    return ORDINAL_WORDS[i] if i < len(ORDINAL_WORDS) else str(i + 1)


ORDINALS_EN = "first second third fourth fifth sixth seventh eighth ninth tenth".split()
# "one" to "ten" are read as numbers (_place): only the ordinals and the last are words here.
_ORDINALS: dict[str, int] = {
    **{w: i for i, w in enumerate(ORDINALS_EN)},
    "last": -1,
    "最后": -1,
}


def _place(word: str) -> int | None:
    """The place (from 0) a word names: digits, 一…九十九 ("十一", "二十三"), English words."""
    if word in _ORDINALS:
        return _ORDINALS[word]
    count = number(word)  # read as a span's count is
    return int(count) - 1 if count else None


# Each voice tool's own verbs, which a small model copies before what the user named ("恢复第二个",
# "暂停那个价格监控", "pause the price watch", "同意那个修复"): `without_verb` leaves them out.
PAUSE_VERBS = ("暂停一下", "暂停", "停一下", "停掉", "pause")
RESUME_VERBS = ("恢复", "继续", "resume", "unpause", "continue")
APPROVE_VERBS = ("批准", "同意", "approve")
REFUSE_VERBS = ("拒绝", "refuse", "reject")
# The tools whose verbs undo each other's, and each one's verb as an answer says it: a reference
# sent to one with the other's verb before it ("恢复2" to pause_task: the model picked the wrong
# tool) names nothing that tool may act on (`other_verb`). Approvals read theirs as a reply
# (`voice_replies`: "拒绝2" to approve_remediation approves nothing).
OPPOSITE_VERBS: dict[tuple[str, ...], tuple[str, ...]] = {
    PAUSE_VERBS: RESUME_VERBS,
    RESUME_VERBS: PAUSE_VERBS,
}
VERB_SAID: dict[tuple[str, ...], tuple[str, str]] = {
    PAUSE_VERBS: ("暂停", "pause"),
    RESUME_VERBS: ("恢复", "resume"),
}
# The voice tools' verbs, which a model copies before what it names ("批准2", "pause the backup").
_VERBS = "批准|拒绝|暂停|恢复|approve|refuse|pause|resume"
# Which one, by place: "第二个", "二号", "the second", "2" (or "two", "二", "approve 2": a number
# alone answers "say which number"), and as the English answers name a fix ("number 2"):
# "number two", "no. 2", "#2", "2nd".
ORDINAL = re.compile(
    r"第\s*([一二三四五六七八九十\d]+)|([一二三四五六七八九十\d]+)\s*号"
    rf"|\b({'|'.join(ORDINALS_EN)}|last)\b|最后"
    rf"|^(?:{_VERBS})?\s*"
    rf"(\d+|[一二三四五六七八九十]+|{'|'.join(ENGLISH_NUMBERS[:10])})[\s.。!！]*$"
    rf"|(?:\bnumber\s*|\bno\.\s*|#\s*)(\d+|{'|'.join(ENGLISH_NUMBERS[:10])})\b"
    r"|\b(\d+)(?:st|nd|rd|th)\b"
)


# What a model passes when the person named nothing: a pronoun, a bare kind of thing, or a
# placeholder copied from an argument's description ("任务名", "服务名"). Measured: a 1.5B model
# calls pause_task(name="它") for "把它停了" and approve_remediation(which="第一个") for
# "批准。" (docs/benchmarks.md). Such a reference picks nothing: the answer asks back.
_NAMES_NOTHING = frozenset(
    {
        *("它", "他", "她", "它们", "那", "这", "那个", "这个", "那一个", "这一个", "哪个"),
        *("任务", "任务名", "一个任务", "那个任务", "这个任务", "监控", "那个监控", "这个监控"),
        *("服务", "服务名", "修复", "那个修复", "这个修复", "回滚", "那个回滚", "第几个", "名字"),
        *("it", "that", "this", "thatone", "thisone", "them", "theone", "unknown"),
        *("task", "thetask", "atask", "taskname", "yourtaskname", "name", "watch", "thewatch"),
        *("monitor", "themonitor", "fix", "thefix", "thatfix", "service", "servicename"),
    }
)
_FILLER = re.compile(r"[\s_.\-'\"“”‘’，。？！、,?!]+|[吧呢啊了哦嘛]+$")


_UNFLAT = re.compile(r"[\s_.-]+")


def flat(value: str | None) -> str:
    """``value`` lowercased without spaces, '_', '.' or '-': how names are compared."""
    return _UNFLAT.sub("", (value or "").lower())


_FILLERS_BEFORE = re.compile(r"\s*(?:那个|这个|(?:the|that|this|my)(?=\s))\s*", re.IGNORECASE)


@lru_cache(maxsize=16)
def _verb_before(verbs: tuple[str, ...]) -> re.Pattern[str]:
    """One of ``verbs`` at the start of a reference."""
    # An English verb as a word ("pauses" is none); a Chinese one before any name ("停一下shop").
    said = "|".join(re.escape(v) + ("(?![a-z])" if v.isascii() else "") for v in verbs)
    return re.compile(rf"\s*(?:{said or '(?!)'})\s*", re.IGNORECASE)


def without_verb(said: str, verbs: tuple[str, ...] = ()) -> str:
    """``said`` without the tool's own ``verbs`` a model copied before what the user named, and
    the fillers after them ("恢复第二个" is "第二个", "暂停那个价格监控" "价格监控"), left out
    one at a time until what is left names nothing ("pause that one" is "that one", not "one",
    a place): "没找到叫“恢复第二个”的任务" was the answer. Only the tool's own are left out
    ("恢复第二个" said to pause_task keeps its verb: `other_verb`). Without a verb, as said."""
    verb = _verb_before(verbs)
    if not verb.match(said):
        return said
    while (found := verb.match(said) or _FILLERS_BEFORE.match(said)) and not names_nothing(said):
        said = said[found.end() :]
    return said


def other_verb(said: str, verbs: tuple[str, ...]) -> bool:
    """Whether ``said`` starts with a verb of the tool opposite the one whose ``verbs`` these
    are (`OPPOSITE_VERBS`): "恢复2", "继续第一个", "resume the backup" to pause_task."""
    others = OPPOSITE_VERBS.get(verbs, ())
    return bool(others) and _verb_before(others).match(said) is not None


def names_nothing(said: str) -> bool:
    """True when a spoken reference names no particular thing ("它", "that one", "任务名")."""
    key = _FILLER.sub("", said.strip().lower())
    return not key or key in _NAMES_NOTHING


class Heard(NamedTuple):
    """A name as a spoken reference is compared with it (`flat`, its words, and where in
    `flat` a separator stood between two characters), read once where many references are
    compared with many names."""

    flat: str
    words: frozenset[str]
    breaks: frozenset[int] = frozenset()


_WORD_BREAKS = re.compile(r"[\W_]+")


@lru_cache(maxsize=4096)  # tasks said alike share their summaries
def heard(said: str | None) -> Heard:
    lower = (said or "").lower()
    breaks, at = set(), 0
    for part in _UNFLAT.split(lower):  # "log-2026-12": a break before "2026" and "12"
        at += len(part)
        breaks.add(at)
    return Heard(flat(said), frozenset(_WORD_BREAKS.split(lower)), frozenset(breaks))


def part_of(key: str, said: str | Heard | None) -> bool:
    """``key`` names ``said``: all of it, a word of it ("hn" of "hn_daily_pv"), or a part long
    enough to mean it ("it" ≠ "bitcoin"), not a number word ("two" ≠ "network": a place)."""
    name = said if isinstance(said, Heard) else heard(said)
    long_enough = len(key) >= (2 if CJK.search(key) else 3) and key not in ENGLISH_NUMBERS
    return bool(key) and (
        key == name.flat or (long_enough and _within(key, name)) or key in name.words
    )


def _within(key: str, name: Heard) -> bool:
    """``key`` in ``name``, a number at its start or end not part of a longer one there ("db1"
    is not of "db12", "8点" not of "18点"; "log-2026" is of "log-2026-12"), nor an hour said on
    the hour part of a time with minutes ("8点" is not of "8点30分"): "早上八点的提醒" paused the
    reminder at 18:00, "server1" the watch server10-cpu."""
    text, breaks = name.flat, name.breaks
    head = key[0].isdigit()
    tail = key[-1].isdigit() or bool(_CLOCK_HOUR.search(key))
    start = text.find(key)
    while start >= 0:
        end = start + len(key)
        joined_before = start not in breaks and text[start - 1 : start].isdigit()
        joined_after = end not in breaks and text[end : end + 1].isdigit()
        if not (head and joined_before) and not (tail and joined_after):
            return True
        start = text.find(key, start + 1)
    return False


_CLOCK_HOUR = re.compile(r"\d点$")  # an hour as `clock_as_labelled` writes it, on the hour


_FROM_END = re.compile(r"倒数|\b(?:to|from)\s+(?:the\s+)?last\b|\b(?:second|third)\s+last\b")


# Words that only say what a thing is, around its name: "the backup task", "hn 那个", "checkout
# 服务的回滚", the tool's verb a model copied before it ("批准checkout", "pause the backup"), and
# "reminder at" before a time as `clock_as_labelled` writes it ("the reminder at 20点").
WHAT_IT_IS = re.compile(
    rf"^(?:{_VERBS}|the|that|this|my|那个|这个|我的|(?:reminder|提醒|reminderat|at)(?=\d{{1,2}}点))+"
    r"|(?:的|那个|这个|one|task|watch|monitor|reminder|fix|service|rollback|任务|监控|提醒|修复|回滚|服务)+$|的"
)


PLACE_ONLY = re.compile(r"一?个|倒数|the|one|task|任务|的")


def index_said(ordinal: re.Match[str], text: str) -> int | None:
    """The place ``ordinal`` (found in ``text``) names: from 0, or from the end when negative."""
    index = _place(next((g for g in ordinal.groups() if g), None) or "最后")
    if index is not None and index >= 0 and _FROM_END.search(text):
        index = -index - 1  # "倒数第二个": the second from the end
    return index


def only_so_many(many: str, many_en: str, english: bool) -> str:
    """The answer to a place past the end of a list: how ``many`` it holds, and to say which."""
    return f"Only {many_en}: say which number." if english else f"只有 {many}，请说第几个。"


# What a label holds that a listener does not say back: "（", "：" ("8:30" is "830" both ways).
UNSAID = re.compile(r"[^\w\s]+")


def names_a_place(said: str) -> bool:
    """True when ``said`` is a place and nothing else ("第二个", "the second one", "2")."""
    return place_alone(said.strip().lower()) is not None


def place_alone(text: str) -> re.Match[str] | None:
    """The place in ``text`` (lowercased) when it says nothing else; else None."""
    ordinal = ORDINAL.search(text)
    if ordinal and not PLACE_ONLY.sub("", flat(text[: ordinal.start()] + text[ordinal.end() :])):
        return ordinal
    return None
