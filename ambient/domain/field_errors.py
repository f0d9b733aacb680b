"""Refused input in the words every door shows: each field, then what is wrong with it.

MCP tool errors, the API's 422 details, the CLI and the pages all read a pydantic
ValidationError through these two functions, so a field is refused with the same words
everywhere; each door only frames them (a prefix, a label, one line each). Each refusal is a
Refusal, so the pages can say it in their language: a validator's own, or pydantic's by its
type (its message template the msgid, its ctx the values).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails, PydanticKnownError

from ambient.refusals import Refusal

Location = tuple[str | int, ...]
Refused = tuple[Location, str | Refusal]


def field_errors(exc: ValidationError) -> list[tuple[Location, Refusal]]:
    """Each refused field as (path, refusal): a missing one is "required", and pydantic's
    "Value error, " before a validator's own words is dropped."""
    return [
        (tuple(error["loc"]), refusal(error))
        for error in exc.errors(include_url=False, include_input=False)
    ]


def refusal(error: ErrorDetails) -> Refusal:
    """One pydantic error as a Refusal whose English is the error's message, word for word."""
    if error["type"] == "missing":
        return Refusal("required")
    if error["type"] == "string_too_short" and (error.get("ctx") or {}).get("min_length") == 1:
        # An empty box, said as pydantic says it; a page can say it is empty.
        return Refusal("String should have at least 1 character")
    ctx = error.get("ctx") or {}
    cause = ctx.get("error")
    if isinstance(cause, Refusal):
        return cause
    message = error["msg"].removeprefix("Value error, ")
    values = {key: _value(key, value) for key, value in ctx.items()}
    # "at most 40 character{expected_plural}": pydantic's plural of the count in ctx.
    counts = [value for value in ctx.values() if isinstance(value, int)]
    values["expected_plural"] = "" if counts[:1] == [1] else "s"
    try:
        said = Refusal(_msgid(error, ctx), **values)
    except (KeyError, TypeError, ValueError):  # a value pydantic words itself
        return Refusal(message)
    return said if str(said) == message else Refusal(message)


def _msgid(error: ErrorDetails, ctx: dict[str, Any]) -> str:
    """pydantic's message template: its known type's, or a custom error's (an EmailStr's) message
    with each text of its ctx put back as the placeholder."""
    if error["type"] == "value_error":
        msgid = error["msg"].replace("%", "%%")
        for key, value in ctx.items():
            if isinstance(value, str) and value:
                msgid = msgid.replace(value.replace("%", "%%"), f"%({key})s")
        return msgid
    template = PydanticKnownError(error["type"], ctx).message_template  # type: ignore[arg-type]
    return re.sub(r"\{(\w+)\}", r"%(\1)s", template.replace("%", "%%"))


def _value(key: str, value: object) -> object:
    """A ctx value as pydantic's message shows it; a parser's reason is words of its own."""
    if key == "error" and isinstance(value, str):
        return Refusal(value)  # "relative URL without a base"
    if isinstance(value, float) and value.is_integer():
        return int(value)  # pydantic says 1.0 as "1"
    return value


def field_problems(
    errors: ValidationError | Sequence[Refused], whole: str = "", at: Location = ()
) -> list[str]:
    """Each refused field as "path: message", the path under ``at`` (where the value sits);
    ``whole`` names an error of the value itself, which is the bare message without it."""
    if isinstance(errors, ValidationError):
        errors = field_errors(errors)
    placed = [(".".join(str(part) for part in at + loc) or whole, said) for loc, said in errors]
    return [f"{where}: {said}" if where else str(said) for where, said in placed]
