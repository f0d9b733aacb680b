"""A file topic's search query: CQL's simplest forms (terms joined by AND, ``field:value`` or
text), matched against a log record as CLS would match it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from ambient.clients.tencent.logs import LogRecord
from ambient.domain.loglevels import level_and_message, normal_level

# CQL's simplest forms, as a file topic reads them: terms joined by AND, each `field:value`
# (`level` read as the record's level however its format names it; a nested JSON field named
# by its dotted path) or text the line holds as shown, quotes and backslashes as written.
_AND = re.compile(r"\s+AND\s+")
_FIELD = re.compile(r"(?P<key>[A-Za-z_@][\w.@-]*)\s*:\s*(?P<value>.+)")
# What CLS's index splits a text field's value into words at (its default delimiters).
_WORDS = re.compile(r"[^\s@&?|#()='\",;:<>\[\]{}/\\]+")


def _unquoted(text: str) -> str:
    text = text.strip()
    if len(text) > 1 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def _shown(content: dict[str, Any] | str) -> str:
    """The text a search reads: the record's values as written (not JSON-escaped), and the
    record as JSON (what earlier releases matched against)."""
    if isinstance(content, str):
        return content.lower()
    values = [_text(value) for value in content.values()]
    return "\n".join([*values, json.dumps(content, ensure_ascii=False)]).lower()


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _field(content: dict[str, Any], key: str) -> Any:
    """The value of the field ``key`` (lower case) names: a field of that name, else a nested
    one by its dotted path (``kubernetes.pod_name``); None if there is none."""
    held = next((v for k, v in content.items() if k.lower() == key), None)
    if held is not None or "." not in key:
        return held
    parts = key.split(".")
    for cut in range(1, len(parts)):
        inner = _field(content, ".".join(parts[:cut]))
        if isinstance(inner, dict) and (held := _field(inner, ".".join(parts[cut:]))) is not None:
            return held
    return None


def _value_matches(held: Any, value: str, prefix: bool) -> bool:
    """Whether a field's value is ``value`` as CQL compares them: a number equal to it, a
    text holding its words in order (the last one's beginning with a trailing `*`)."""
    if isinstance(held, int | float) and not isinstance(held, bool) and not prefix:
        try:
            return held == float(value)
        except ValueError:
            return False
    words, wanted = _WORDS.findall(_text(held).lower()), _WORDS.findall(value)
    if not wanted:
        return prefix  # `field:*`: the field is there
    span = len(wanted)
    for at in range(len(words) - span + 1):
        if words[at : at + span - 1] == wanted[:-1] and (
            words[at + span - 1].startswith(wanted[-1])
            if prefix
            else words[at + span - 1] == wanted[-1]
        ):
            return True
    return False


def _term(part: str) -> Callable[[LogRecord, str], bool]:
    text = _unquoted(part).lower()
    field = _FIELD.fullmatch(part.strip())
    if field is None:
        return lambda _record, shown: text in shown
    key, value = field["key"].lower(), _unquoted(field["value"]).lower()
    prefix, value = value.endswith("*"), value.rstrip("*")
    level = normal_level(value) if key == "level" else "UNKNOWN"

    def matches(record: LogRecord, shown: str) -> bool:
        content = record.content
        if isinstance(content, dict):
            if level != "UNKNOWN" and level_and_message(content)[0] == level:
                return True
            held = _field(content, key)
            if level == "UNKNOWN" and held is not None and _value_matches(held, value, prefix):
                return True
        return text in shown  # else the text as written ("C:\\srv", "note: retry")

    return matches


def file_query(query: str) -> Callable[[LogRecord], bool]:
    """Whether a file topic's record matches ``query``: `*` (or nothing) all; else each term
    joined by AND, a term `field:value` or text the line shows."""
    if query.strip() in ("", "*"):
        return lambda _record: True
    terms = [_term(part) for part in _AND.split(query.strip()) if part.strip()]

    def wanted(record: LogRecord) -> bool:
        shown = _shown(record.content)
        return all(term(record, shown) for term in terms)

    return wanted
