"""Scoring rules: four weighted dimensions, the attempt budget and the plan it buys (pure)."""

from __future__ import annotations

import fnmatch
import math
import re
import sys
from collections.abc import Collection
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from ambient.remediation.alerts import Alert
from ambient.remediation.ladder import RUNG_ACTIONS, Rung

# --- scoring --------------------------------------------------------------------------

WEIGHTS = {"impact": 0.4, "severity": 0.3, "importance": 0.2, "time_sensitivity": 0.1}


def clamp(value: float) -> int:
    """``value`` as a score, 0-100 (NaN reads as 0)."""
    return 0 if math.isnan(value) else round(max(0, min(100, value)))


class DimensionScore(BaseModel):
    score: int = Field(description="0-100")
    reason: str = Field(default="", max_length=500)

    @field_validator("score", mode="before")
    @classmethod
    def _clamp(cls, value: Any) -> int:
        return clamp(float(value))


class ScoreDimensions(BaseModel):
    """The four sub-scores the LLM (or the offline rules) return, each with a reason."""

    impact: DimensionScore = Field(description="impact scope: how many users/services")
    severity: DimensionScore = Field(description="how bad: errors, outage, degradation")
    importance: DimensionScore = Field(description="business importance of the service")
    time_sensitivity: DimensionScore = Field(description="how fast it gets worse")


class ScoreCard(BaseModel):
    score: int
    budget: int
    dimensions: ScoreDimensions
    generated_by: Literal["llm", "offline"]
    manual: bool = False
    rule: str | None = None
    reasons: list[str] = Field(default_factory=list)


def total_score(dimensions: ScoreDimensions) -> int:
    """Weighted total: impact 40 %, severity 30 %, importance 20 %, time sensitivity 10 %,
    a half rounded up. Summed in whole tenths: in floats two totals of exactly 89.5 came to
    89 and 90 (binary error, then round-half-even), 4 attempts for one and 6 for the other."""
    # Each score is 0-100 already (DimensionScore clamps it) and the weights sum to 1.
    tenths = sum(
        round(weight * 10) * getattr(dimensions, name).score for name, weight in WEIGHTS.items()
    )
    return (tenths + 5) // 10


# The lowest score of each budget, highest first.
BUDGETS = ((90, 6), (70, 4), (50, 3), (30, 2), (0, 1))


def attempt_budget(score: int) -> int:
    """How many rungs a score buys: 90–100 → 6, 70–89 → 4, 50–69 → 3, 30–49 → 2, 0–29 → 1."""
    score = clamp(score)
    return next(budget for floor, budget in BUDGETS if score >= floor)


class AlertRule(BaseModel):
    """A per-service override: pin importance, or force manual handling."""

    name: str = Field(min_length=1, max_length=100)
    cluster_id: str = Field(default="*", description="glob, e.g. cls-* ")
    namespace: str = Field(default="*", description="glob")
    workload: str = Field(default="*", description="glob over Deployment names")
    importance: int | None = Field(default=None, ge=0, le=100)
    manual: bool = Field(default=False, description="never act; hand over to a person at once")
    note: str = ""

    def matches(self, alert: Alert, clusters: Collection[str] = ()) -> bool:
        """Whether the rule is about the alert's workload; ``clusters``: the other names of its
        cluster (``cluster_names``: its TKE id, the kubeconfig contexts that reach it)."""
        return (
            any(
                fnmatch.fnmatchcase(name, self.cluster_id) for name in (alert.cluster_id, *clusters)
            )
            and fnmatch.fnmatchcase(alert.namespace, self.namespace)
            and fnmatch.fnmatchcase(alert.workload, self.workload)
        )

    def specificity(self) -> int:
        return sum(part != "*" for part in (self.cluster_id, self.namespace, self.workload))


def match_rule(
    alert: Alert, rules: list[AlertRule], clusters: Collection[str] = ()
) -> AlertRule | None:
    """The most specific rule that matches (ties: the first given)."""
    matching = [rule for rule in rules if rule.matches(alert, clusters)]
    return max(matching, key=lambda rule: rule.specificity(), default=None)


def score_card(
    dimensions: ScoreDimensions,
    rule: AlertRule | None,
    generated_by: Literal["llm", "offline"],
) -> ScoreCard:
    """The total, budget and reasons of validated sub-scores, with the rule's overrides."""
    if rule is not None and rule.importance is not None:
        pinned = DimensionScore(
            score=rule.importance, reason=f"pinned to {rule.importance} by alert rule {rule.name!r}"
        )
        dimensions = dimensions.model_copy(update={"importance": pinned})
    score = total_score(dimensions)
    reasons = [
        f"{name} {getattr(dimensions, name).score}: {getattr(dimensions, name).reason}"
        for name in WEIGHTS
    ]
    manual = bool(rule and rule.manual)
    if manual and rule is not None:
        reasons.append(f"alert rule {rule.name!r} forces manual handling")
    return ScoreCard(
        score=score,
        budget=attempt_budget(score),
        dimensions=dimensions,
        generated_by=generated_by,
        manual=manual,
        rule=rule.name if rule else None,
        reasons=reasons,
    )


_SEVERE_WORDS = ("outage", "down", "crash", "fatal", "critical", "oom", "unavailable", "5xx")
_URGENT_METRICS = ("error", "5xx", "availability", "latency", "timeout", "fail", "restart")
_PROD_NAMESPACES = ("prod", "production", "live", "kube-system", "payment", "payments")


def _breached_below(alert: Alert) -> bool:
    """Whether the alert's line is a floor: its own verify says it is healthy above it."""
    healthy = alert.verify.healthy if alert.verify is not None else []
    return bool(healthy) and all(c.op == "above" for c in healthy)


def _severity(value: float | None, threshold: float | None, floor: bool) -> tuple[int, str]:
    """How far past its line the value is, in the direction of the breach (a ceiling's above
    it, a floor's under it), with why. A value on the safe side of its line is no breach:
    -5 against a ceiling of 0.05 was weighed by the size of their ratio, "100.00x the
    threshold", and bought 4 attempts."""
    if value is None or threshold is None:
        return 50, "no value/threshold given"
    side, other = ("under", "above") if floor else ("above", "under")
    if (value > threshold) if floor else (value < threshold):
        return 30, f"value {value:.15g} is {other} the threshold {threshold:.15g}: no breach"
    if threshold == 0:
        return 50, f"value {value:.15g} against a threshold of 0: no ratio to weigh"
    ratio = value / threshold
    # How far past the line, in the line's own size (a negative line's too): on it, 0.
    past = (1 - ratio) if floor == (threshold > 0) else (ratio - 1)
    if not floor and threshold > 0:
        times = (
            f"{ratio:.2f}x" if math.isfinite(ratio) else f"more than {sys.float_info.max:.2g} times"
        )
        return clamp(40 + past * 60), f"value {value:.15g} is {times} the threshold"
    by = f"{past:.0%}" if math.isfinite(past) else f"more than {sys.float_info.max:.2g} times"
    # A floor crossed (a success rate under 0.99): the further under it the worse, nothing
    # left at all (0.0) the worst, as a ceiling's value further over it.
    return clamp(40 + past * 60), f"value {value:.15g} is {by} {side} the threshold"


def offline_score(
    alert: Alert, rules: list[AlertRule], clusters: Collection[str] = ()
) -> ScoreCard:
    """Rule-based sub-scores with reasons, used when no LLM is configured."""
    text = f"{alert.message} {alert.metric or ''}".lower()
    labels = {k.lower(): v.lower() for k, v in alert.labels.items()}

    # Severity: how far past the threshold, raised by words that mean an outage.
    severity, severity_reason = _severity(alert.value, alert.threshold, _breached_below(alert))
    if labels.get("severity") in ("critical", "p0", "p1", "fatal"):
        severity = max(severity, 90)
        severity_reason += f"; labelled severity {labels['severity']}"
    found = [word for word in _SEVERE_WORDS if re.search(rf"\b{re.escape(word)}\b", text)]
    if found:
        severity = max(severity, 80)
        severity_reason += f"; message mentions {', '.join(found)}"

    # Impact: production namespaces and labelled user-facing services reach more people.
    if alert.namespace in _PROD_NAMESPACES or labels.get("env") in ("prod", "production"):
        impact, impact_reason = 80, f"production namespace/env ({alert.namespace})"
    elif alert.namespace.startswith(("dev", "test", "staging", "sandbox")):
        impact, impact_reason = 20, f"non-production namespace {alert.namespace}"
    else:
        impact, impact_reason = 50, f"namespace {alert.namespace}"
    if labels.get("user_facing") in ("true", "yes", "1"):
        impact = max(impact, 85)
        impact_reason += "; user-facing"

    tier = labels.get("tier")
    importance = {"critical": 95, "high": 80, "medium": 50, "low": 20}.get(tier or "", 50)
    importance_reason = f"tier {tier}" if tier else "no tier label; default"

    urgent = [word for word in _URGENT_METRICS if word in text]
    time_sensitivity = 80 if urgent else 40
    time_reason = f"user-visible signal ({', '.join(urgent)})" if urgent else "capacity-type signal"

    dimensions = ScoreDimensions(
        impact=DimensionScore(score=impact, reason=impact_reason),
        severity=DimensionScore(score=severity, reason=severity_reason),
        importance=DimensionScore(score=importance, reason=importance_reason),
        time_sensitivity=DimensionScore(score=time_sensitivity, reason=time_reason),
    )
    return score_card(dimensions, match_rule(alert, rules, clusters), "offline")


# --- the plan -------------------------------------------------------------------------


class PlannedStep(BaseModel):
    attempt: int
    rung: Rung
    action: str
    needs_approval: bool


def plan(
    score: int, rule: AlertRule | None = None, approval_from_rung: int = 3
) -> list[PlannedStep]:
    """One rung per attempt from rung 1, as many as the budget buys; manual → hand over only."""
    rungs = [Rung.HAND_OVER] if rule and rule.manual else list(Rung)[: attempt_budget(score)]
    return [
        PlannedStep(
            attempt=index + 1,
            rung=rung,
            action=RUNG_ACTIONS[rung],
            # 0 turns approval off; handing over to a person needs nobody's approval.
            needs_approval=0 < approval_from_rung <= rung and rung is not Rung.HAND_OVER,
        )
        for index, rung in enumerate(rungs)
    ]
