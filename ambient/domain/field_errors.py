"""Refused input in the words every door shows: each field, then what is wrong with it.

MCP tool errors, the API's 422 details, the CLI and the pages all read a pydantic
ValidationError through these two functions, so a field is refused with the same words
everywhere; each door only frames them (a prefix, a label, one line each). Each refusal is a
Refusal, so the pages can say it in their language: a validator's own, or pydantic's by its
type (its message template the msgid, its ctx the values).
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Sequence
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails, PydanticKnownError

from ambient.refusals import Refusal

Location = tuple[str | int, ...]
Refused = tuple[Location, str | Refusal]


def field_errors(
    exc: ValidationError, model: type[BaseModel] | None = None
) -> list[tuple[Location, Refusal]]:
    """Each refused field as (path, refusal): a missing one is "required", and pydantic's
    "Value error, " before a validator's own words is dropped. Given the ``model`` validated,
    a field it does not have is said with the fields it has there (and the nearest one)."""
    said: list[tuple[Location, Refusal]] = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = tuple(error["loc"])
        fields = _fields_at(model, loc[:-1]) if error["type"] == "extra_forbidden" else None
        said.append((loc, _not_a_field(str(loc[-1]), fields) if fields else refusal(error)))
    return said


def _not_a_field(name: str, fields: list[str]) -> Refusal:
    known = ", ".join(fields)
    if near := difflib.get_close_matches(name, fields, n=1, cutoff=0.6):
        return Refusal(
            "not a field here: did you mean %(near)s? (fields: %(names)s)",
            near=near[0],
            names=known,
        )
    return Refusal("not a field here (fields: %(names)s)", names=known)


def _fields_at(kind: Any, path: Location) -> list[str] | None:
    """The field names of the model that sits at ``path`` inside ``kind`` (through lists,
    dicts and optional values); None where no model is."""
    for part in path:
        kind = _unwrapped(kind)
        if get_origin(kind) in (list, tuple, set, dict):
            kind = get_args(kind)[-1] if get_args(kind) else None
            continue
        if member := _member(kind, part):  # a union's: pydantic names it by tag or class
            kind = member
            continue
        model = _inner_model(kind)
        if model is None or part not in model.model_fields:
            return None
        kind = model.model_fields[part].annotation
    model = _inner_model(_unwrapped(kind))
    return [info.alias or name for name, info in model.model_fields.items()] if model else None


def _member(union: Any, tag: str | int) -> Any:
    """The model of ``union`` that ``tag`` names: its class name, or its discriminator's value."""
    if get_origin(union) not in (Union, types.UnionType):
        return None
    for model in filter(_is_model, get_args(union)):
        literals = (get_args(f.annotation) for f in model.model_fields.values())
        if tag == model.__name__ or any(
            tag in values for values in literals if values and not _is_model(values[0])
        ):
            return model
    return None


def _unwrapped(kind: Any) -> Any:
    """An optional value's type, Annotated's metadata left off."""
    while get_origin(kind) in (Union, types.UnionType, Annotated):
        inner = [arg for arg in get_args(kind) if arg is not type(None)]
        if get_origin(kind) is not Annotated and len(inner) != 1:
            return kind
        kind = inner[0]
    return kind


def _is_model(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, BaseModel)


def _inner_model(kind: Any) -> Any:
    """The model a type is (itself, or the first of a union's or an optional's)."""
    if _is_model(kind):
        return kind
    if get_origin(kind) in (Union, types.UnionType, Annotated):
        for arg in get_args(kind):
            if (found := _inner_model(arg)) is not None:
                return found
    return None


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
