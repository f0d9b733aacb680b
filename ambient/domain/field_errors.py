"""Refused input in the words every door shows: each field, then what is wrong with it.

MCP tool errors, the API's 422 details, the CLI and the pages all read a pydantic
ValidationError through these two functions, so a field is refused with the same words
everywhere; each door only frames them (a prefix, a label, one line each).
"""

from __future__ import annotations

from pydantic import ValidationError

Location = tuple[str | int, ...]


def field_errors(exc: ValidationError) -> list[tuple[Location, str]]:
    """Each refused field as (path, message): a missing one is "required", and pydantic's
    "Value error, " before a validator's own words is dropped."""
    return [
        (
            tuple(error["loc"]),
            "required"
            if error["type"] == "missing"
            else error["msg"].removeprefix("Value error, "),
        )
        for error in exc.errors(include_url=False, include_input=False)
    ]


def field_problems(
    errors: ValidationError | list[tuple[Location, str]], whole: str = "", at: Location = ()
) -> list[str]:
    """Each refused field as "path: message", the path under ``at`` (where the value sits);
    ``whole`` names an error of the value itself, which is the bare message without it."""
    if isinstance(errors, ValidationError):
        errors = field_errors(errors)
    problems = []
    for loc, message in errors:
        where = ".".join(str(part) for part in at + loc) or whole
        problems.append(f"{where}: {message}" if where else message)
    return problems
