"""A reply to the voice's question "要批准…吗？确认就再说一次批准。" as a model passes it in
``which``: a yes ("可以", "批准它", "yes approve it"), a no ("不要", "算了", "no don't do it"), a
wait ("等一下"), the words around a name ("好的，批准 checkout"), or no reply at all ("what is
it"). Read word by word from fixed lists, deterministic, no LLM: a person's approval is never
inferred from words that do not say yes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

# Each kind of word, tried in this order at each place (longer words first within a kind).
# A negated verb is one word: "不拒绝" says no refusal, not a refusal.
_WORDS: dict[str, tuple[str, ...]] = {
    "not_refuse": (r"(?:不要|不|别|先别)拒绝", r"(?:dont|do not) (?:refuse|reject|deny|decline)"),
    "not_approve": (
        r"(?:不要|不|别|先别)(?:批准|同意|通过)",
        r"(?:dont|do not) (?:approve|agree)",
    ),
    "wait": (
        *("等一下", "等一等", "等等", "等会儿?", "稍等", "先等", "待会儿?", "晚点", "以后再说"),
        *("再说吧", "再说", "wait", "hold on", "hold", "not now", "not yet", "later"),
    ),
    "no": (
        *("不要", "不用", "不行", "不好", "不可以", "不对", "不是", "不", "先别", "别", "算了"),
        *("取消", "没有", "否", "nope", "nah", "no", "dont", "do not", "not", "cancel"),
        *("never ?mind", "negative"),
    ),
    "approve": ("批准", "同意", "通过", "approved?", "approves", "agreed?"),
    "refuse": (
        *("拒绝", "驳回", "否决", "refused?", "reject(?:s|ed)?"),
        *("deny", "denied", "declined?"),
    ),
    "yes": (
        *("确认", "确定", "对的", "对", "是的", "是", "好的", "好吧", "好啊", "好", "可以"),
        *("行", "嗯+", "没问题", "没错", "当然", "就这样", "yes", "yeah", "yep", "yup"),
        *("okay", "ok", "sure", "go ahead", "do it", "confirm(?:ed)?", "right", "correct"),
        *("fine", "alright", "all right", "of course", "absolutely", "please"),
    ),
    # Words that only point at the fix asked about, or carry the sentence.
    "pointer": (
        *("它们", "它", "他", "她", "那一个", "这一个", "那个", "这个", "一个", "一下", "那"),
        *("这", "个", "修复", "回滚", "的", "就", "请", "帮我", "给我", "把", "我们", "我"),
        *("你", "先", "要", "that one", "this one", "the one", "it", "that", "this", "the"),
        *("fix", "rollback", "them", "on", "of", "in"),
        *("just", "then", "now", "for", "me", "i", "we", "you", "can", "lets", "let", "us"),
        *("do", "go"),
    ),
    "particle": ("了", "吧", "啊", "呀", "吗", "呢", "哦", "嘛"),
}
# A place is part of what a reply names, not a pointer ("批准第一个": "第一个", not "第").
_PLACE = re.compile(r"第 ?(?:[一二三四五六七八九十两]+|\d+) ?[个号]?|[一二三四五六七八九十\d]+ ?号")


def _alternative(word: str) -> str:
    # A Latin word is whole: "no" is not the start of "nova", nor "it" the end of "edit".
    return rf"(?<![a-z0-9]){word}(?![a-z0-9])" if word[:1].isascii() else word


_WORD = re.compile(
    "|".join(
        f"(?P<{kind}>{'|'.join(_alternative(w) for w in words)})" for kind, words in _WORDS.items()
    )
)
_APART = re.compile(r"[\s\W_]+")  # punctuation and spaces: the breaks between words
_QUOTES = re.compile(r"['’‘`]")  # "don't" is "dont"

Said = Literal["yes", "no", "wait", "question"]
# A reply that asks back ("你确定吗？", "批准吗", "approve what?", "是不是要批准") says no yes,
# whatever words it holds: the question is asked again, nothing is decided. Not "嗯呢"/"好呢"
# (呢 there is a yes's particle) nor 哪 in a name ("哪吒"), nor "真的，批准" (really: a yes).
_QUESTION = re.compile(
    r"[?？]\s*$|吗|(?<![那这])么|是不是|要不要|能不能|可不可以|什么|为什么|怎么|哪个|哪一个"
    r"|(?<![a-z])(?:what|why|how|which|really|are you sure|is it)(?![a-z])",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Reply:
    """What ``which`` says as a reply to a decision (``said``: None when it says no yes, no or
    wait; "question" when it asks back), and the words between those that may name a fix
    (``named``; "" when none)."""

    said: Said | None
    named: str

    @property
    def names_no_fix(self) -> bool:
        """A reply and nothing else: it points at the fix asked about, or asks which one."""
        return self.said is not None and not self.named


def reply_said(which: str, approve: bool) -> Reply:
    """``which`` read as the answer to approving (``approve``) or refusing a fix.

    An approval's reply is a yes only with no word against it: any no, wait or refusal in it
    sends nothing. A refusal's says yes with its verb ("不要，拒绝吧"), no with a no or a
    negated approval, and nothing with a wait, a negated refusal or an approval alone."""
    reply = _reply(which, approve)
    # A no or a wait keeps its meaning whatever else it asks ("不，什么都别做", "wait, what?").
    if reply.said in ("yes", None) and _QUESTION.search(which.strip()):
        # What it names, less its question's words ("approve what?" names nothing).
        named = _APART.sub(" ", _QUESTION.sub(" ", reply.named)).strip()
        return Reply("question", named)
    return reply


def _reply(which: str, approve: bool) -> Reply:
    text = _APART.sub(" ", _QUOTES.sub("", which.lower())).strip()
    words: list[tuple[str, int, int]] = []  # each word known: its kind, start and end
    first = last = -1  # where the words that are none of these (a name, a place) start and end
    at = 0
    while at < len(text):
        place = _PLACE.match(text, at)
        word = None if place or text[at] == " " else _WORD.match(text, at)
        if word is not None and word.lastgroup is not None:
            words.append((word.lastgroup, at, word.end()))
            at = word.end()
            continue
        if text[at] != " ":
            first = at if first < 0 else first
            last = place.end() if place else at + 1
        at = place.end() if place else at + 1
    if first < 0:
        return Reply(_meaning({kind for kind, _, _ in words}, approve), "")
    # Only the words before and after a name are its reply ("好的，批准 checkout 的修复吧": a yes,
    # naming "checkout"); a name's inner words are its own ("checkout 的错误率").
    around = {kind for kind, start, end in words if end <= first or start >= last}
    if not around - {"pointer", "particle"}:
        return Reply(None, which)  # no reply in it: the name as said
    return Reply(_meaning(around, approve), text[first:last])


def _meaning(kinds: set[str], approve: bool) -> Said:
    """What words of these ``kinds`` say to approving (``approve``) or refusing."""
    if approve:
        against = {"no", "wait", "not_approve", "not_refuse", "refuse"}
        return "wait" if kinds & against else "yes"
    if kinds & {"wait", "not_refuse"}:
        return "wait"
    if "refuse" in kinds:
        return "yes"
    if kinds & {"no", "not_approve"}:
        return "no"
    return "wait" if "approve" in kinds else "yes"
