"""Is a model's summary faithful to its input? Every number, service name and error it states.

The briefing's model receives structured facts (counts, the reduced log report, alarms, what
was fixed, what needs a person) and writes a summary a person hears first thing in the
morning. A number, service or error code in that summary that is not in those facts was made
up, and a made-up "payment-service failed 300 times" is worse than no summary: such a draft is
not spoken (ambient/briefing/writer.py), and these claims are what the note says.

The check is lexical on purpose: it can be run on every briefing, offline, and it errs on the
side of refusing (a total the model added up itself is "not in the input" too; the input
states the totals it wants said).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel

ClaimKind = Literal["number", "service", "error", "fact"]


class Unsupported(BaseModel):
    """One thing the summary states that its input does not."""

    kind: ClaimKind
    text: str

    def __str__(self) -> str:
        return f"{self.kind} {self.text!r}"


# Service-like names: kebab/snake identifiers (payment-service, db-2, order_api), CamelCase
# names of services (OrderService, PaymentGateway), and Chinese names ending in 服务 (订单服务).
_SERVICE = re.compile(
    r"(?<![\w.-])(?:[A-Za-z][A-Za-z0-9]*(?:[-_][A-Za-z0-9]+)+"
    r"|[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]+)*(?:Service|Server|Gateway|Api|API|DB|Worker|Job))(?![\w-])"
    r"|[\u4e00-\u9fff]{2,4}服务"
)
# Words before 服务 that say which services in general, not which one ("所有服务").
_GENERIC_SERVICES = ("所有", "各项", "各个", "整体", "其他", "相关", "下游", "上游", "多个", "核心")
# Error codes and names: ALL_CAPS with an underscore or digit (ERR_TIMEOUT, E1234, OOMKilled is
# below), exception names (NullPointerException, TimeoutError), dotted cloud error codes
# (FailedOperation.Timeout), errno names (ECONNREFUSED).
_ERROR = re.compile(
    r"(?<![\w.])(?:[A-Z][A-Z0-9]*_[A-Z0-9_]+|[A-Z]{1,4}\d{3,}"
    r"|[A-Z][A-Za-z0-9]*(?:Exception|Error|Killed|Failure)"
    r"|[A-Z][A-Za-z]+\.[A-Z][A-Za-z.]+|E[A-Z]{4,})(?![\w])"
)
# Quoted error text: what a summary puts in quotes is a claim about a message, word for word.
_QUOTED = re.compile(r"[\"“「『]([^\"”」』\n]{4,200})[\"”」』]")
# Where facts were read from: URLs, paths and file names (the log file, a page's link) and
# UUIDs (a CLS topic). Their digits are not numbers the input states (a temporary folder
# pytest-777 made a made-up 777 pass); a summary quoting one the input holds names it.
_LOCATOR = re.compile(
    r"(?:(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*:/|(?<![A-Za-z0-9_.~/])(?:~|\.{1,2})?)"
    r"/[^\s<>\"'()|,;\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]*"
    r"[^\s<>\"'()|,;.:!?\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]"
    r"|(?<![A-Za-z0-9_./-])[0-9.-]*[A-Za-z_][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_.-]+)*"
    r"\.[A-Za-z][A-Za-z0-9]{0,4}(?![A-Za-z0-9_/])"
    r"|\b[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\b"
)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_CN_DIGITS = {d: value for value, d in enumerate("零一二三四五六七八九")} | {"〇": 0, "两": 2}
_CN_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10_000}
# A Chinese numeral counts as a number only before a measure word ("四十次", "三条告警"):
# 一 alone is too often not a number (一切, 一下) to be read as one anywhere else.
_CN_NUMBER = re.compile(
    r"([零〇一二两三四五六七八九十百千万]+)(?=次|条|个|行|项|台|起|例|秒|毫秒|分钟|小时|天|%|％)"
)


def unsupported_claims(summary: str, facts: str) -> list[Unsupported]:
    """What ``summary`` states (numbers, services, errors, quoted text) that ``facts`` does not."""
    facts_lower = facts.lower()
    found: list[Unsupported] = []
    seen: set[tuple[str, str]] = set()

    def flag(kind: ClaimKind, text: str) -> None:
        if (kind, text.lower()) not in seen:
            seen.add((kind, text.lower()))
            found.append(Unsupported(kind=kind, text=text))

    for match in _QUOTED.finditer(summary):
        if _squash(match[1]) not in _squash(facts):
            flag("error", match[1])
    # A quote is checked as a whole, like a name: its words are not claims of their own.
    rest = _QUOTED.sub(" ", summary)
    rest = _LOCATOR.sub(lambda match: " " if match[0].lower() in facts_lower else match[0], rest)
    for pattern, kind in ((_ERROR, "error"), (_SERVICE, "service")):
        for match in pattern.finditer(rest):
            name = _named(match[0], facts_lower)
            if name is not None:
                flag(kind, name)  # type: ignore[arg-type]
        # A name is checked as a whole: its digits are not numbers of their own (db-2).
        rest = pattern.sub(" ", rest)
    known = _numbers(facts)
    for match in _NUMBER.finditer(rest):
        value = _number_value(match[0])
        if value is not None:
            if value not in known:
                flag("number", match[0])
            continue
        for part in re.findall(r"\d+(?:\.\d+)?", match[0]):  # "3,4": two numbers
            if _number_value(part) not in known:
                flag("number", part)
    for match in _CN_NUMBER.finditer(rest):
        spoken = chinese_number(match[1])
        if spoken is not None and str(spoken) not in known:
            flag("number", match[1])
    return found


def _named(name: str, facts_lower: str) -> str | None:
    """The name as claimed if the facts do not have it; None when they do or it is generic."""
    if not name.endswith("服务"):
        return None if name.lower() in facts_lower else name
    # Chinese has no spaces: "昨天订单服务" holds "订单服务"; any tail the facts name is theirs.
    tails = [name[start:] for start in range(len(name) - 4, -1, -1)]
    if any(tail in facts_lower for tail in tails) or name[:-2].endswith(_GENERIC_SERVICES):
        return None
    return tails[0]


def chinese_number(text: str) -> int | None:
    """四十 → 40, 一百零五 → 105, 三千二 → 3200 (colloquial tail), 2 万 stays to the digits."""
    total = section = digit = 0
    last_unit = 10
    for char in text:
        if char in _CN_DIGITS:
            digit = _CN_DIGITS[char]
        elif char in _CN_UNITS:
            unit = _CN_UNITS[char]
            if unit == 10_000:
                total += (section + digit) * unit
                section = digit = 0
            else:
                section += (digit or 1) * unit
                digit = 0
            last_unit = unit
        else:
            return None
    if digit and last_unit >= 100 and len(text) > 1 and text[-2] in _CN_UNITS:
        digit *= last_unit // 10  # 三千二 is 3200, not 3002
    return total + section + digit


def _numbers(text: str) -> set[str]:
    text = _LOCATOR.sub(" ", text)
    values = {v for match in _NUMBER.finditer(text) if (v := _number_value(match[0]))}
    # Parts of a grouped or decimal number are numbers the facts state too (09:00, 1.5).
    values |= {str(int(part)) for part in re.findall(r"\d+", text)}
    return values


def _number_value(text: str) -> str | None:
    """A canonical form: thousands separators dropped, leading zeros dropped (09 → 9)."""
    plain = text.replace(",", "") if re.fullmatch(r"\d{1,3}(?:,\d{3})+", text) else text
    plain = plain.rstrip(".,")
    if re.fullmatch(r"\d+", plain):
        return str(int(plain))
    if re.fullmatch(r"\d+\.\d+", plain):
        whole, fraction = plain.split(".")
        fraction = fraction.rstrip("0")
        return f"{int(whole)}.{fraction}" if fraction else str(int(whole))
    return None


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


# What a summary may not say of a whole day its facts contradict: words of a quiet day or of
# no open alarm pass the lexical check ("0" is in any time, "300%" in the trend it turns round).
# Only claims of the whole day are checked: a sentence that excepts or contrasts ("except",
# "but", "除了", "其他") or names what it is about ("CPU stayed quiet", "支付服务没有报错",
# "no alarms are open on checkout") says something else, true or not.
_HEDGED = re.compile(
    r"\b(?:except|but|though|although|however|other|others|besides|apart|while|whereas|only)\b"
    r"|除了|但|不过|其他|其余|以外|之外|只有|今天",
    re.I,
)
_NO_ERRORS = re.compile(
    r"\b(?:yesterday|the day|the night)\b[^.;:!?]*?\b(?:was|were|stayed|remained)\b[^.;:!?]*?"
    r"\bquiet\b|\ba quiet (?:day|night)\b|^\W*(?:yesterday\W+)?(?:there were )?(?:no|zero|0) "
    r"errors?(?![-\w])"
    r"|\b(?:yesterday|the day)\b[^.;!?]*?\b(?:no|zero|(?<![\d.,])0) errors?(?![-\w])"
    r"|一切平稳|昨天(?:很|比较|整体)?平稳|昨天(?:一共)?(?:没有|无)(?:任何)?(?:错误|报错)|^\W*(?:没有|无)(?:任何)?错误"
    r"|(?<![\d.,])0 ?个错误",
    re.I,
)
_ALARM = r"(?:alarms?|alerts?)"
_NOT_QUALIFIED = r"(?!\s+(?:on|for|in|of|at|from)\b)"
_NONE_OPEN = re.compile(
    rf"\bno {_ALARM} (?:is |are |was |were )?(?:still )?(?:open|firing|unresolved|active)"
    rf"{_NOT_QUALIFIED}|\b(?:no|(?<![\d.,])0) (?:open|unresolved|firing|active) {_ALARM}"
    rf"{_NOT_QUALIFIED}|(?<![\d.,])0 {_ALARM} (?:is |are )?(?:open|firing){_NOT_QUALIFIED}"
    rf"|\ball (?:the )?{_ALARM} (?:have |were |are )?(?:recovered|resolved|cleared)"
    r"|没有(?:任何)?未恢复|无未恢复|告警(?:均|都|已全部)已?恢复|(?<![\d.,])0 ?条未恢复",
    re.I,
)
_NO_ALARMS = re.compile(
    rf"\bno {_ALARM}\b(?! (?:is |are |was |were )?(?:still )?(?:open|firing|unresolved|active))"
    rf"{_NOT_QUALIFIED}|没有(?:任何)?告警|无告警",
    re.I,
)
# The errors' own trend: the direction word right after errors as its subject ("Errors fell
# 300%", "错误数比前 1 天减少 300%"), not another measure's in the same sentence.
_ERRORS_ROSE = re.compile(
    r"\berrors?\b(?:\s+\w+){0,2}?\s+(?:rose|increased|grew|climbed|went up)\b"
    r"|错误数?[^，。；,;]{0,12}?(?:增加|上升|增长|升高)",
    re.I,
)
_ERRORS_FELL = re.compile(
    r"\berrors?\b(?:\s+\w+){0,2}?\s+(?:fell|dropped|decreased|declined|went down)\b"
    r"|错误数?[^，。；,;]{0,12}?(?:减少|下降|降低)",
    re.I,
)
_ROSE = re.compile(r"\b(?:rose|increased|grew|climbed)\b|增加|上升|增长|升高", re.I)
_FELL = re.compile(r"\b(?:fell|dropped|decreased|declined)\b|减少|下降|降低", re.I)
_SENTENCE = re.compile(r"(?<=[.!?。！？；;\n])")


def contradicted(
    summary: str,
    *,
    errors: int,
    alarms: int,
    open_alarms: int,
    trend: str | None,
    errors_unknown: bool = False,
) -> list[Unsupported]:
    """What ``summary`` says of the whole day that its counts contradict: a quiet day or no
    errors with errors counted (or with most lines of no level: ``errors_unknown``), no open
    alarm with one open, no alarm with some of the day's (``alarms``: begun in the day), errors
    that fell where they rose (or rose where they fell)."""
    found: list[Unsupported] = []

    def flag(pattern: re.Pattern[str], text: str, why: str) -> None:
        if (match := pattern.search(text)) is not None:
            claim = Unsupported(kind="fact", text=f"{match[0]} ({why})")
            if claim not in found:
                found.append(claim)

    rose = trend is not None and _ROSE.search(trend) is not None
    fell = trend is not None and _FELL.search(trend) is not None
    for sentence in _SENTENCE.split(summary):
        sentence = sentence.strip()
        if not sentence:
            continue
        if rose != fell:  # a trend that says one way (not level, not "at least")
            flag(_ERRORS_FELL if rose else _ERRORS_ROSE, sentence, f"the trend: {trend}")
        if _HEDGED.search(sentence):
            continue
        if errors or errors_unknown:
            flag(_NO_ERRORS, sentence, f"{errors} errors" if errors else "levels not read")
        if open_alarms:
            flag(_NONE_OPEN, sentence, f"{open_alarms} open")
        if alarms:
            flag(_NO_ALARMS, sentence, f"{alarms} alarms")
    return found
