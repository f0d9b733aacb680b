"""Numbers as every door takes them: a number, or ASCII digits (one point for a decimal) with a
leading minus.

pydantic's lax int reads "1_5", " 15 ", "+15" and "15.0" as 15, and true as 1: a typo or a
pasted value must not become another number. The API's query, path and form numbers, the
whole-number fields of the models its JSON bodies and the MCP tools' arguments are read into (a
node count, a share link's days) refuse them here, as pydantic's own int_parsing (int_type for
true and false) error (the 422 names the field); the CLI reads them with DIGITS too
(ambient/cli_numbers.py). A JSON number is int's to check.

A bounded whole number puts its bounds before the check, ``Annotated[int, Field(ge=1, le=500),
WHOLE_NUMBER]``: after it (``Annotated[WholeNumber, Field(ge=1)]``) pydantic still enforces
them but publishes them under its own names (``ge``, ``le``), which no JSON Schema validator or
model reads, instead of ``minimum`` and ``maximum`` in the tools' and the API's schemas.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_core import PydanticKnownError

DIGITS = re.compile(r"-?[0-9]+")
DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def _as_written(pattern: re.Pattern[str], kind: str) -> Any:
    """A check that a value is a number (not true or false) or a string the pattern takes,
    refused as pydantic's own ``{kind}_type`` / ``{kind}_parsing`` error."""

    def check(value: Any) -> Any:
        # lax int and float read true and false as 1 and 0: {"replicas": true} is no count.
        if isinstance(value, bool):
            raise PydanticKnownError(f"{kind}_type")  # type: ignore[arg-type]
        if isinstance(value, str) and not pattern.fullmatch(value):
            raise PydanticKnownError(f"{kind}_parsing")  # type: ignore[arg-type]
        return value

    return check


WHOLE_NUMBER = BeforeValidator(_as_written(DIGITS, "int"))
WholeNumber = Annotated[int, WHOLE_NUMBER]
# A decimal number as the doors take it: a number, or ASCII digits with one point (lax float
# reads "9_5" as 95, "1e2" as 100, "inf").
DecimalNumber = Annotated[float, BeforeValidator(_as_written(DECIMAL, "float"))]
