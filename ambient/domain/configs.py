"""Configs a person (or an agent, or a voice model) writes: every field means something.

A field a config model does not know is refused by name where the config enters (a
misspelled ``"taget"`` or ``"kind"`` for ``kinds`` used to be dropped and silently did
nothing). A config that was stored before a rule was added — a workflow's input, a
schedule's action, a recorded update, a saved push config — is read back as it ran: fields
it carried that were ignored then are ignored again, so a running workflow replays and a
schedule's next run starts. Reading stored data passes ``STORED`` as the validation context
(``read_stored``); the contradiction rules of each model read that context the same way.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from functools import partial
from typing import Annotated, Any, TypeVar

from annotated_types import GroupedMetadata
from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ambient.domain.identifiers import tencent_region

STORED: dict[str, Any] = {"stored": True}
# A name, label or address field of a config.
ShortText = Annotated[str, StringConstraints(max_length=200)]

M = TypeVar("M", bound=BaseModel)


def reading_stored(info: ValidationInfo) -> bool:
    """Whether this validation reads a config back as it was stored (see the module doc)."""
    return isinstance(info.context, dict) and bool(info.context.get("stored"))


def new_region(value: str | None, info: ValidationInfo) -> str | None:
    """A field validator: a new config's region written as a Tencent Cloud region (written
    otherwise, every read with it failed); a stored one runs as it ran."""
    return value if value is None or reading_stored(info) else tencent_region(value)


class NewBound(GroupedMetadata):
    """A text field's bound (``Annotated[str, NewBound(limit)]``): a new config's text at most
    ``limit`` characters, and its schema says ``maxLength``; a stored one runs as it ran (a
    bound added after configs were stored must not stop a running workflow decoding its
    input)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def __iter__(self) -> Iterator[Any]:
        yield AfterValidator(self._bounded)
        yield Field(json_schema_extra={"maxLength": self.limit})

    def _bounded(self, value: str, info: ValidationInfo) -> str:
        if len(value) > self.limit and not reading_stored(info):
            raise ValueError(f"String should have at most {self.limit} characters")
        return value


def read_stored(model: type[M], value: Any) -> M | Any:
    """``value`` read as a stored ``model``: for a workflow input's config field (mode
    "before"); the Temporal data converter itself decodes without a context."""
    if isinstance(value, dict):
        return model.model_validate(value, context=STORED)
    return value


def as_it_ran(model: type[BaseModel]) -> BeforeValidator:
    """A workflow input's config field (``Annotated[Config, as_it_ran(Config)]``): the input
    is stored data, so replays and continue-as-new read it as it ran (``read_stored``)."""
    return BeforeValidator(partial(read_stored, model))


def _accepted_keys(model: type[BaseModel]) -> set[str]:
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        keys.add(name)
        # An alias is a validation alias too (pydantic sets both); only that one is accepted.
        alias = field.validation_alias
        if isinstance(alias, str):
            keys.add(alias)
        elif isinstance(alias, AliasChoices):
            keys.update(choice for choice in alias.choices if isinstance(choice, str))
    return keys


NUL_REFUSED = "holds a NUL character (U+0000), which cannot be stored"


def holds_nul(text: str) -> bool:
    """Whether ``text`` has a NUL (PostgreSQL refuses one in text and in a query)."""
    return "\x00" in text


# What a person sees nothing of: controls and format characters (Cc, Cf: U+200B, U+FEFF),
# separators (Zs, Zl, Zp) and combining marks with no letter to sit on (Mn: U+034F); with
# the letters and symbols fonts draw blank (the Hangul fillers, the braille blank) and the
# code points Unicode keeps ignorable before they are assigned (Default_Ignorable_Code_Point).
_UNSEEN = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp", "Mn"})
_BLANK = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def unseen(c: str) -> bool:
    """Whether a person sees nothing of the character ``c``."""
    if c in _BLANK or unicodedata.category(c) in _UNSEEN:
        return True
    return unicodedata.category(c) == "Cn" and (
        c == "\u2065" or "\ufff0" <= c <= "\ufff8" or "\U000e0000" <= c <= "\U000e0fff"
    )


def unseen_codes(text: str) -> str:
    """The code points of ``text`` a person does not see, as a refusal names them."""
    return " ".join(f"U+{ord(c):04X}" for c in dict.fromkeys(text) if not c.isspace())


def shows_nothing(text: str) -> bool:
    """Whether ``text`` is only characters a person sees nothing of (spaces, U+200B, U+3164,
    U+2800, a lone combining mark)."""
    return all(unseen(c) for c in text)


# A lone UTF-16 surrogate: JSON can write one ("\\ud800"), UTF-8 cannot, so no database can.
SURROGATE = re.compile("[\ud800-\udfff]")
SURROGATE_REFUSED = "holds a lone UTF-16 surrogate (U+D800-U+DFFF), which is no text"


def unstorable_at(
    value: Any, at: tuple[str | int, ...] = ()
) -> tuple[tuple[str | int, ...], str] | None:
    """Where text in ``value`` (JSON-like) first cannot be stored, and why. Walked with a
    stack, not by recursion: a body nested 450 deep ran out of Python's frames (a 500)."""
    left: list[tuple[Any, tuple[str | int, ...]]] = [(value, at)]
    while left:
        item, where = left.pop()
        if isinstance(item, str):
            if holds_nul(item):
                return where, NUL_REFUSED
            if SURROGATE.search(item):
                return where, SURROGATE_REFUSED
        elif isinstance(item, dict):
            # Each key before its value, in order: the first one found is the one written first.
            for key, inner in reversed(item.items()):
                left += [(inner, (*where, key)), (key, (*where, key))]
        elif isinstance(item, list | tuple):
            left += [(inner, (*where, i)) for i, inner in reversed(list(enumerate(item)))]
    return None


class StorableText(BaseModel):
    """Input whose text is stored: PostgreSQL's text holds no NUL (U+0000) and no database a
    lone surrogate, so one is refused where it enters, naming its field, on every database."""

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any, info: ValidationInfo) -> Any:
        if reading_stored(info):
            return value
        found = unstorable_at(list(value) if isinstance(value, set | frozenset) else value)
        if found is not None:
            raise ValueError(found[1])
        return value


class UserConfig(StorableText):
    """A user-facing config model: unknown fields are refused by name, unless stored."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _stored_fields_only(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict) and reading_stored(info):
            known = _accepted_keys(cls)
            return {key: value for key, value in data.items() if key in known}
        return data


# RFC 9535 lets a member name in dot notation hold any character past ASCII ($.数据.价格); the
# reader's parser (jsonpath-ng) reads such a name only quoted ($.'数据'.'价格'), and refused
# a Chinese price API's path: read so, quoted runs left as written.
_QUOTED_OR_WIDE_NAME = re.compile(
    r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\.((?:\w|[^\x00-\x7f])*[^\x00-\x7f](?:\w|[^\x00-\x7f])*)"""
)


def readable_json_path(path: str) -> str:
    """``path`` with its non-ASCII names in dot notation quoted, as jsonpath-ng reads them."""
    if path.isascii():
        return path
    return _QUOTED_OR_WIDE_NAME.sub(lambda m: f".'{m[1]}'" if m[1] else m[0], path)
