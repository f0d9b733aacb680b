"""Is a model's tool call the one the person meant? Pure matching rules, unit-tested.

An expected call names a tool and key arguments as dotted paths (`config.urls`). Values match:
strings case-insensitively (trailing '/' ignored), numbers by value, lists when every expected
item matches some actual item, `{"contains": s}` as a substring, `{"present": true}` when the
path exists at all. A case is correct when every expected call is among the model's calls;
a case expecting no call is correct when the model calls none (it answers in words).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from math import ceil, comb
from statistics import median
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

_MISSING = object()


class ExpectedCall(BaseModel):
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)


class Turn(BaseModel):
    """One earlier step of a conversation, before the case's utterance: what the user said,
    what the assistant said, or a tool call the assistant made with the result it got."""

    user: str | None = None
    assistant: str | None = None
    tool: str | None = None
    arguments: dict[str, Any] = Field(default_factory=dict)
    result: str | None = None

    @model_validator(mode="after")
    def one_kind(self) -> Turn:
        kinds = [self.user is not None, self.assistant is not None, self.tool is not None]
        if sum(kinds) != 1:
            raise ValueError("a turn is one of: user, assistant, or tool (with its result)")
        if self.tool is not None and self.result is None:
            raise ValueError(f"the call of {self.tool} needs the result it got")
        return self


class Case(BaseModel):
    id: str
    lang: str
    utterance: str
    expected: list[ExpectedCall]
    # Earlier turns of the conversation (multi-turn cases): the utterance is a follow-up
    # that needs them ("暂停它" after a status answer naming the task).
    history: list[Turn] = Field(default_factory=list)
    # Which half of a data set the case is in: "tune" (what descriptions and prompts are
    # tuned on) or "heldout" (what is reported after tuning); None in an unsplit set.
    split: str | None = None
    # What kind of turn the case is, when its shape does not say it: "ask-back" for a request
    # too vague to act on (the right answer is a question, no call). Otherwise see part_of.
    part: str | None = None


def split_of(case: Case) -> str:
    """The case's half: its `split` field, or, in a set without one (dataset.jsonl), its
    number's parity: even "tune", odd "heldout" (the halves bench.find_tools reports too)."""
    if case.split is not None:
        return case.split
    digits = "".join(ch for ch in case.id if ch.isdigit())
    return "tune" if int(digits or 0) % 2 == 0 else "heldout"


def part_of(case: Case) -> str:
    """The part of the set a case reports under: its `part` field, else "multi-turn" (it has
    earlier turns), "no-tool" (nothing should be called) or "single-turn"."""
    if case.part is not None:
        return case.part
    if case.history:
        return "multi-turn"
    return "single-turn" if case.expected else "no-tool"


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
    if isinstance(expected, dict) and set(expected) == {"any_of"}:
        return any(value_matches(e, actual) for e in expected["any_of"])
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
    """Every expected call made; a case expecting none is right only when nothing is called."""
    if not case.expected:
        return not calls
    return all(any(call_matches(e, c) for c in calls) for e in case.expected)


Outcome = Literal["correct", "tool_choice", "arguments", "error"]


def outcome(case: Case, calls: list[Call], error: str | None) -> Outcome:
    """What went wrong, if anything: the request failed, a wrong (or missing, or unwanted)
    tool was chosen, or the right tools were called with wrong arguments."""
    if error is not None:
        return "error"
    if case_correct(case, calls):
        return "correct"
    # The right tools, each called as often as expected: only arguments can be wrong. A
    # second call of the same tool left out is a missing call, a tool-choice error.
    called = Counter(c.tool for c in calls)
    wanted = Counter(e.tool for e in case.expected)
    if case.expected and all(called[tool] >= n for tool, n in wanted.items()):
        return "arguments"
    return "tool_choice"


def pass_hat_k(successes: list[list[bool]], k: int) -> float:
    """τ-bench's pass^k: the chance that k runs of a case, drawn from its n runs, all succeed,
    averaged over cases (C(c, k) / C(n, k) with c successes); pass^1 is the plain rate."""
    rates = [comb(sum(runs), k) / comb(len(runs), k) for runs in successes if len(runs) >= k]
    return sum(rates) / len(rates) if rates else 0.0


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100) of ``values``; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


_FENCE = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.DOTALL)
# <tool_call> is Qwen's call tag; <tools> is the tag its chat template lists the tools in,
# which the 1.5B model imitates when it writes a call into its text (seen on the voice set).
_TAG = re.compile(r"<(tool_call|tools)>\s*(\{.*?\})\s*</\1>", re.DOTALL)


def calls_in_text(text: str | None) -> list[Call]:
    """Calls a model wrote into its text (```json fences, <tool_call> or <tools> tags): the lenient
    reading, reported beside the headline, never as it (a real client would not run them)."""
    calls: list[Call] = []
    found = [m.group(1) for m in _FENCE.finditer(text or "")]
    found += [m.group(2) for m in _TAG.finditer(text or "")]
    for written in found:
        try:
            data = json.loads(written)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            arguments = data.get("arguments", data.get("parameters", {}))
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments)
                except json.JSONDecodeError:
                    arguments = {}
            calls.append(
                Call(tool=data["name"], arguments=arguments if isinstance(arguments, dict) else {})
            )
    return calls


SAID_CHARS = 200


class Attempt(BaseModel):
    """One run of one case: the calls in ``tool_calls``, those only written in the text."""

    calls: list[Call]
    text_calls: list[Call] = Field(default_factory=list)
    # What the model said in words (its first SAID_CHARS): a follow-up answered without a
    # call is mostly a made-up result in the shape of the last one ("最近 2 小时有 5 个错误").
    said: str = ""
    error: str | None = None
    seconds: float = 0.0
    # The find_tools queries the model made on the way (the --profile find loop), in order.
    lookups: list[str] = Field(default_factory=list)
    # The tools the product's chat agent chose to offer (the --profile retrieve loop; None
    # when the harness offered its own list).
    offered: list[str] | None = None
    # Calls of the environment's own tools (--environment: 小智's functions and the device's):
    # kept apart, since no product tool was called by them.
    environment_calls: list[Call] = Field(default_factory=list)


class Row(BaseModel):
    cases: int
    pass1: float
    pass_k: float


class Report(BaseModel):
    model: str
    model_sha256: str | None = None
    profile: str = "full"
    tools: list[str] = Field(default_factory=list)
    runs: int
    cases: int
    pass1: float = Field(description="share of all runs right (the tool_calls field only)")
    pass_k: float = Field(description="share of cases right in every one of the runs")
    errors: dict[str, int] = Field(description="runs by kind: tool_choice, arguments, error")
    lenient_pass1: float = Field(description="pass^1 also reading calls written in the text")
    seconds_median: float
    seconds_p95: float
    seconds_first: float = Field(description="the first request (a cold prompt cache)")
    per_tool: dict[str, Row]
    per_lang: dict[str, Row]
    # Single-turn calls, multi-turn follow-ups, no-tool turns and ask-backs apart (part_of).
    per_part: dict[str, Row] = Field(default_factory=dict)
    # --profile retrieve: cases whose expected tools were all offered, and the rest (the
    # search's recall bounds the pass).
    per_offer: dict[str, Row] = Field(default_factory=dict)
    # Runs of cases that want no product call but made one, by what the product then did
    # (unwanted_effect; only when the tools' effects are known: the voice profile).
    unwanted: dict[str, int] = Field(default_factory=dict)
    # Product calls naming a speaker no case gave (the product answers a stranger's name with
    # "I don't know your voice"); None when the product's reading is not known.
    guessed_speakers: int | None = None
    # Runs of cases that want a product call where the model made none and answered in words.
    answered_in_words: int = 0
    failures: list[dict[str, Any]]


class Effect(BaseModel):
    """What calling a product tool does, for reading a call nobody asked for: whether it
    changes anything, and the argument naming its target (the product asks back when that
    names nothing: mcp_server.voice_references.names_nothing)."""

    writes: bool
    reference: str | None = None


Unwanted = Literal["asked back", "spoke", "changed"]


class ProductReading(BaseModel):
    """What the product does with a call, for the voice profile: each tool's effect, its test
    of a target that names nothing, its test of a speaker that names nobody, and the arguments
    as its tools read them (a span "两天" is hours=48), which is what the case is scored on."""

    effects: dict[str, Effect]
    names_nothing: Callable[[str], bool]
    names_no_speaker: Callable[[str], bool]
    read: Callable[[Call], Call] = lambda call: call


def unwanted_effect(
    calls: list[Call], effects: dict[str, Effect], names_nothing: Callable[[str], bool]
) -> Unwanted:
    """What the person got from product calls made where none was wanted: a question back
    (every call's target names nothing, so the product asks which one), something read aloud
    that changes nothing, or a change (a write whose target names something, or has none)."""

    def asks_back(call: Call) -> bool:
        effect = effects.get(call.tool)
        said = call.arguments.get(effect.reference) if effect and effect.reference else None
        return isinstance(said, str) and names_nothing(said)

    if all(asks_back(c) for c in calls):
        return "asked back"
    if any(effects.get(c.tool, Effect(writes=True)).writes and not asks_back(c) for c in calls):
        return "changed"
    return "spoke"


NO_TOOL = "(no tool)"
OFFERED = "expected tool offered"
NOT_OFFERED = "expected tool not offered"


def report(
    model: str,
    results: list[tuple[Case, list[Attempt]]],
    *,
    model_sha256: str | None = None,
    profile: str = "full",
    tools: list[str] | None = None,
    reading: ProductReading | None = None,
) -> Report:
    """pass^1 and pass^k overall, per expected tool and per language; error kinds counted
    over all runs; failures listed with what was called; with ``reading``, unwanted calls by
    what they would have done and the calls naming a speaker nobody said."""
    runs = min((len(attempts) for _, attempts in results), default=0)
    per_case: list[list[bool]] = []
    lenient: list[bool] = []
    per_tool: dict[str, list[list[bool]]] = {}
    per_lang: dict[str, list[list[bool]]] = {}
    per_part: dict[str, list[list[bool]]] = {}
    per_offer: dict[str, list[list[bool]]] = {}
    errors = {"tool_choice": 0, "arguments": 0, "error": 0}
    failures: list[dict[str, Any]] = []
    unwanted: Counter[str] = Counter()
    guessed_speakers = 0
    in_words = 0
    for case, attempts in results:
        if reading is not None:
            if not case.expected:
                unwanted.update(
                    unwanted_effect(a.calls, reading.effects, reading.names_nothing)
                    for a in attempts
                    if a.calls and a.error is None
                )
            # No case gives a voiceprint name: a speaker in a call is the model's guess.
            guessed_speakers += sum(
                isinstance(said := c.arguments.get("speaker"), str)
                and not reading.names_no_speaker(said)
                for a in attempts
                for c in a.calls
            )
        read = [
            [reading.read(c) for c in a.calls] if reading is not None else a.calls for a in attempts
        ]
        kinds = [outcome(case, calls, a.error) for a, calls in zip(attempts, read, strict=True)]
        if case.expected:
            in_words += sum(
                a.error is None and not a.calls and not a.text_calls and bool(a.said.strip())
                for a in attempts
            )
        oks = [kind == "correct" for kind in kinds]
        per_case.append(oks)
        per_lang.setdefault(case.lang, []).append(oks)
        per_part.setdefault(part_of(case), []).append(oks)
        if case.expected and attempts and all(a.offered is not None for a in attempts):
            wanted = {e.tool for e in case.expected}
            offered = all(wanted <= set(a.offered or ()) for a in attempts)
            per_offer.setdefault(OFFERED if offered else NOT_OFFERED, []).append(oks)
        for kind in kinds:
            if kind != "correct":
                errors[kind] += 1
        lenient += [
            a.error is None
            and case_correct(
                case, calls or [reading.read(c) if reading else c for c in a.text_calls]
            )
            for a, calls in zip(attempts, read, strict=True)
        ]
        for expected in case.expected:
            per_tool.setdefault(expected.tool, []).append(
                [
                    a.error is None and any(call_matches(expected, c) for c in calls)
                    for a, calls in zip(attempts, read, strict=True)
                ]
            )
        if not case.expected:
            per_tool.setdefault(NO_TOOL, []).append(oks)
        for number, (attempt, kind) in enumerate(zip(attempts, kinds, strict=True), start=1):
            if kind != "correct":
                failures.append(
                    {
                        "id": case.id,
                        "run": number,
                        "kind": kind,
                        "utterance": case.utterance,
                        "earlier_turns": len(case.history),
                        "expected": [e.model_dump() for e in case.expected],
                        "called": [c.model_dump() for c in attempt.calls],
                        "text_calls": [c.model_dump() for c in attempt.text_calls],
                        "said": attempt.said,
                        "error": attempt.error,
                        "lookups": attempt.lookups,
                        "offered": attempt.offered,
                    }
                )

    def row(outcomes: list[list[bool]]) -> Row:
        return Row(
            cases=len(outcomes), pass1=pass_hat_k(outcomes, 1), pass_k=pass_hat_k(outcomes, runs)
        )

    seconds = [a.seconds for _, attempts in results for a in attempts]
    return Report(
        model=model,
        model_sha256=model_sha256,
        profile=profile,
        tools=sorted(tools or []),
        runs=runs,
        cases=len(results),
        pass1=pass_hat_k(per_case, 1),
        pass_k=pass_hat_k(per_case, runs) if runs else 0.0,
        errors=errors,
        lenient_pass1=sum(lenient) / len(lenient) if lenient else 0.0,
        seconds_median=median(seconds) if seconds else 0.0,
        seconds_p95=percentile(seconds, 95),
        # The runner sends the first case's first run alone, before any other.
        seconds_first=results[0][1][0].seconds if results and results[0][1] else 0.0,
        per_tool={tool: row(v) for tool, v in sorted(per_tool.items())},
        per_lang={lang: row(v) for lang, v in sorted(per_lang.items())},
        per_part={part: row(v) for part, v in sorted(per_part.items())},
        per_offer={k: row(v) for k, v in sorted(per_offer.items())},
        unwanted=dict(sorted(unwanted.items())),
        guessed_speakers=guessed_speakers if reading is not None else None,
        answered_in_words=in_words,
        failures=failures,
    )
