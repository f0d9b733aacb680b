"""Is a model's tool call the one the person meant? Pure matching rules, unit-tested.

An expected call names a tool and key arguments as dotted paths (`config.urls`). Values match:
strings case-insensitively (trailing '/' ignored), numbers by value, lists when every expected
item matches some actual item, `{"contains": s}` as a substring, `{"present": true}` when the
path exists at all. A case is correct when every expected call is among the model's calls.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

_MISSING = object()


class ExpectedCall(BaseModel):
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)


class Case(BaseModel):
    id: str
    lang: str
    utterance: str
    expected: list[ExpectedCall]


class Call(BaseModel):
    tool: str
    arguments: dict[str, Any]


def lookup(arguments: Any, path: str) -> Any:
    value = arguments
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _text(value: Any) -> str:
    return str(value).strip().casefold().rstrip("/")


def value_matches(expected: Any, actual: Any) -> bool:
    if actual is _MISSING:
        return False
    if isinstance(expected, dict) and set(expected) == {"present"}:
        return True
    if isinstance(expected, dict) and set(expected) == {"contains"}:
        return _text(expected["contains"]) in _text(actual)
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual or _text(expected) == _text(actual)
    if isinstance(expected, int | float):
        try:
            return float(actual) == float(expected)
        except (TypeError, ValueError):
            return False
    if isinstance(expected, list):
        items = actual if isinstance(actual, list) else [actual]
        return all(any(value_matches(e, a) for a in items) for e in expected)
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            value_matches(v, actual.get(k, _MISSING)) for k, v in expected.items()
        )
    return _text(expected) == _text(actual)


def call_matches(expected: ExpectedCall, actual: Call) -> bool:
    return expected.tool == actual.tool and all(
        value_matches(value, lookup(actual.arguments, path))
        for path, value in expected.args.items()
    )


def case_correct(case: Case, calls: list[Call]) -> bool:
    return all(any(call_matches(e, c) for c in calls) for e in case.expected)


class Report(BaseModel):
    model: str
    cases: int
    correct: int
    rate: float
    per_tool: dict[str, dict[str, float | int]]
    per_lang: dict[str, dict[str, float | int]]
    failures: list[dict[str, Any]]


def report(model: str, results: list[tuple[Case, list[Call], str | None]]) -> Report:
    """Overall, per expected tool and per language; failures listed with what was called."""
    per_tool: dict[str, list[bool]] = {}
    per_lang: dict[str, list[bool]] = {}
    failures: list[dict[str, Any]] = []
    correct = 0
    for case, calls, error in results:
        ok = error is None and case_correct(case, calls)
        correct += ok
        per_lang.setdefault(case.lang, []).append(ok)
        for expected in case.expected:
            per_tool.setdefault(expected.tool, []).append(
                error is None and any(call_matches(expected, c) for c in calls)
            )
        if not ok:
            failures.append(
                {
                    "id": case.id,
                    "utterance": case.utterance,
                    "expected": [e.model_dump() for e in case.expected],
                    "called": [c.model_dump() for c in calls],
                    "error": error,
                }
            )

    def summary(outcomes: list[bool]) -> dict[str, float | int]:
        return {
            "cases": len(outcomes),
            "correct": sum(outcomes),
            "rate": sum(outcomes) / len(outcomes),
        }

    return Report(
        model=model,
        cases=len(results),
        correct=correct,
        rate=correct / len(results) if results else 0.0,
        per_tool={tool: summary(v) for tool, v in sorted(per_tool.items())},
        per_lang={lang: summary(v) for lang, v in sorted(per_lang.items())},
        failures=failures,
    )
