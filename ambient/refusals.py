"""A refusal every door can say in its reader's language.

The message id is the English with ``%(name)s`` placeholders and the values fill them: str()
is the English (MCP tool errors, API 422 bodies and the CLI show it as it is) and the pages
look the id up in their catalog. A value may itself be a Refusal, said in the same language.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel


def said_back(value: str, limit: int) -> str:
    """``value`` quoted as a refusal says it back: cut after ``limit`` characters (a 100 KB
    argument is not said back whole)."""
    return repr(value) if len(value) <= limit else f"{value[:limit]!r}…"


def N_(message: str) -> str:
    """Marks a msgid for the catalog where it is translated later (labels, tables)."""
    return message


# Values read back as any text (another's words; a length said in words; a path jsonpath-ng
# writes with a space, $.'unit price'; a Content-Type's absence; a Content-Encoding's name as a
# server sends it, "x gzip"; a task summary's cron and threshold lines; a remediation step's
# sentence and the images it rolls back to; a datapoint's date and time), not one word.
_WORDS = frozenset(
    {
        *("reason", "why", "error", "query", "shown", "path", "after", "example", "kind"),
        *("coding", "cron", "rules", "sentence", "images", "moment", "summary", "message"),
        # A remediation step's objects and what it put back: names listed, an autoscaler
        # named with its bounds, a selector, the revisions a Deployment has.
        *("names", "hpa", "selector", "done", "revisions", "notes"),
        "hops",  # the URLs of a redirect loop, joined by arrows
        # A Cloud Monitor metric's dimensions ("InstanceId=ins-1, ..."), a datapoint's age and
        # how late one is published ("12 min").
        *("dimensions", "age", "lag"),
    }
)


def read_back(text: str, msgids: Iterable[str], *, cut: bool = False) -> Refusal | None:
    """``text``, stored as English (a check's error), as the Refusal of the first of ``msgids``
    it fits, each value one word but those of ``_WORDS`` (another's words, a query, a value
    quoted); None: none of them. ``cut``: ``text`` was cut where it was kept, and may end
    inside the words its msgid's last value is (said cut: "…"), the tail after them lost."""
    msgids = tuple(msgids)
    for msgid in msgids:
        if found := _pattern(msgid).fullmatch(text):
            return Refusal(msgid, **found.groupdict())
    for msgid in msgids if cut else ():
        if (pattern := _cut_pattern(msgid)) and (found := pattern.fullmatch(text)):
            values = found.groupdict()
            last = next(reversed(values))
            # Cut in the words after the last value, not in it: the value ends before them.
            tail = msgid[msgid.rindex(f"%({last})s") + len(last) + 4 :].replace("%%", "%")
            value = values[last]
            at = next((i for i in range(len(value)) if tail.startswith(value[i:])), None)
            if at is not None and len(value) - at >= min(len(tail), _TAIL_SEEN):
                return Refusal(msgid, **values | {last: value[:at]})
            return Refusal(msgid, **values | {last: value + "…"})
    return None


# How much of the words after a cut value must be read to take them for those words (one
# character may as well end the value: ")" after "f(x)").
_TAIL_SEEN = 2


@functools.cache
def _pattern(msgid: str) -> re.Pattern[str]:
    """What `read_back` matches for ``msgid`` (built once a msgid: a page reads back each row's
    error against every msgid it knows)."""
    # DOTALL: a stored error can span lines (a database driver's, a multi-line query).
    pattern = re.sub(r"%\\\((\w+)\\\)s", _value, re.escape(msgid)).replace("%%", "%")
    return re.compile(pattern, re.DOTALL)


@functools.cache
def _cut_pattern(msgid: str) -> re.Pattern[str] | None:
    """`_pattern` of a ``msgid`` cut inside its last value, when that value is words
    (``_WORDS``); None for any other."""
    placeholders = list(re.finditer(r"%\((\w+)\)s", msgid))
    if not placeholders or placeholders[-1][1] not in _WORDS:
        return None
    return _pattern(msgid[: placeholders[-1].end()])


def _value(placeholder: re.Match[str]) -> str:
    """The pattern of a value `read_back` reads: one word, or words (``_WORDS``)."""
    name = placeholder[1]
    return rf"(?P<{name}>.+)" if name in _WORDS else rf"(?P<{name}>\S+)"


class Refusal(ValueError):
    """Refused input: ``msgid`` and its ``values``; str() is the English."""

    # Kept out of the instance dict: FastAPI's 422 body encodes a validator's error by vars().
    __slots__ = ("msgid", "values")

    def __init__(self, msgid: str, /, **values: Any) -> None:
        super().__init__(msgid % values if values else msgid)
        self.msgid = msgid
        self.values = values


class Said(BaseModel):
    """A Refusal as data, to cross a workflow's history or a query (plain values only)."""

    msgid: str
    # A value that is itself a Refusal (said in the same language) crosses as a Said.
    values: dict[str, str | int | float | Said] = {}

    @classmethod
    def of(cls, refusal: Refusal) -> Said:
        values = refusal.values.items()
        return cls(
            msgid=refusal.msgid,
            values={k: cls.of(v) if isinstance(v, Refusal) else v for k, v in values},
        )

    def refusal(self) -> Refusal:
        values = self.values.items()
        return Refusal(
            self.msgid, **{k: v.refusal() if isinstance(v, Said) else v for k, v in values}
        )
