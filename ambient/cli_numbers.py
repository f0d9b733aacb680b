"""Numbers as the command line takes them: ASCII digits (and a point), as the web forms do."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from ambient.domain.numbers import DECIMAL, DIGITS


def whole_number(least: int | None = None, most: int | None = None) -> Callable[[Any], int]:
    """A Typer ``parser``: ASCII digits (a leading minus), from ``least`` to ``most``."""

    # int() reads "1_0", " 10 " and "１０" as 10, and the CLI's own parsing "10.0" too: a typo
    # or a pasted value must not become another number (endpoint 10 removed for "1_0").
    def parse(value: Any) -> int:
        if isinstance(value, int):  # the default, as declared
            number = value
        elif DIGITS.fullmatch(text := str(value)):
            number = int(text)
        else:
            raise typer.BadParameter(f"{text!r} is not a whole number (digits 0-9)")
        if (least is not None and number < least) or (most is not None and number > most):
            low = "" if least is None else f"from {least} "
            high = "" if most is None else f"to {most}"
            raise typer.BadParameter(f"{number} is out of range: {low}{high}".strip())
        return number

    return parse


def decimal_number(value: Any) -> float:
    """A Typer ``parser``: ASCII digits with one optional point (a leading minus)."""
    # float() reads "1_0" and "１０" as 10, and "nan", "inf" and "1e3" too.
    if isinstance(value, float):  # the default, as declared
        return value
    if not DECIMAL.fullmatch(text := str(value)):
        raise typer.BadParameter(f"{text!r} is not a decimal number (digits 0-9, one '.')")
    return float(text)
