"""Graded remediation as the product defines it: alerts, scores, the budget, the ladder, safety.

Pure and deterministic (no clock, no I/O): workflows import this through the sandbox, and
executors (dry run, Kubernetes) implement ``RemediationExecutor`` against these models.
Alert text is data: nothing here lets a message choose a target or a step outside the ladder.
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
import re
from collections.abc import Mapping
from datetime import datetime, time, timedelta
from enum import IntEnum
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field, field_validator

from ambient.domain.configs import UserConfig
from ambient.domain.identifiers import cluster_ref, namespace_name, object_name
from ambient.domain.watches import Condition, MetricSource

# Annotation stamped on an object with the step key of the last change we made to it, so a
# retried or re-run step finds its own effect instead of applying it twice.
STEP_ANNOTATION = "ambient-ops.io/remediation-step"
# Label a Service selector gains when rung 4 isolates the workload (matches no pod).
ISOLATION_LABEL = "ambient-ops.io/isolated"

Mode = Literal["dry_run", "execute"]


class Rung(IntEnum):
    """The escalation ladder, one rung per attempt."""

    RESTART = 1
    SCALE_OUT = 2
    ROLLBACK = 3
    ISOLATE = 4
    FULL_ROLLBACK = 5
    HAND_OVER = 6


RUNG_ACTIONS: dict[Rung, str] = {
    Rung.RESTART: "rollout restart (new pods, same release)",
    Rung.SCALE_OUT: "scale out (absolute replica count, capped by the blast-radius limit)",
    Rung.ROLLBACK: "roll back the release to the revision before the one running at the start",
    Rung.ISOLATE: "isolate the service (Service selector matches no pod)",
    Rung.FULL_ROLLBACK: "full rollback: release, ConfigMaps, replicas and isolation as before",
    Rung.HAND_OVER: "hand over to a person (broadcast queue + push now)",
}


# --- alerts ---------------------------------------------------------------------------


class VerifySpec(UserConfig):
    """How to tell the alert is over: a threshold-watch metric source and healthy conditions."""

    source: MetricSource
    healthy: list[Condition] = Field(
        min_length=1, description='conditions that hold when healthy, e.g. [{"op": "below", ...}]'
    )
    combine: Literal["all", "any"] = "all"

    def holds(self, value: float) -> bool:
        # Condition.breached(value) means "value is past the line in the op's direction".
        results = [c.breached(value) for c in self.healthy]
        return all(results) if self.combine == "all" else any(results)


class Alert(UserConfig):
    """An alert about one Kubernetes workload; the only place a remediation's target comes from.

    A field it does not know is refused by name (``"cluster"`` for ``cluster_id`` used to be
    dropped); free-form facts go in ``labels``.
    """

    source: str = Field(
        min_length=1,
        max_length=64,
        description="where the alert came from: threshold_watch, monitor, cls, manual, ...",
    )
    # A target is only ever these three fields, each checked by its real format.
    cluster_id: str = Field(
        description="TKE cluster id (cls- and 8 lowercase letters or digits, e.g. "
        "cls-7kq2m0ab) or a context name of AMBIENT_KUBECONFIG"
    )
    namespace: str = Field(default="default", description="Kubernetes namespace (DNS label)")
    workload: str = Field(description="Deployment name (DNS subdomain)")
    metric: str | None = Field(default=None, max_length=200)
    value: float | None = None
    threshold: float | None = None
    message: str = Field(default="", max_length=4000, description="alert text (data only)")
    verify: VerifySpec | None = None
    settle_seconds: int | None = Field(default=None, ge=0, le=24 * 3600)
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("cluster_id")
    @classmethod
    def _cluster(cls, value: str) -> str:
        return cluster_ref(value)

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return namespace_name(value)

    @field_validator("workload")
    @classmethod
    def _workload(cls, value: str) -> str:
        return object_name(value, "Deployment name")

    @field_validator("value", "threshold")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    def fingerprint(self) -> str:
        """Stable identity of the problem: the same alert again maps to the same remediation."""
        parts = [self.source, self.cluster_id, self.namespace, self.workload, self.metric or ""]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]

    @property
    def service(self) -> str:
        return f"{self.cluster_id}/{self.namespace}/{self.workload}"

    def target(self) -> WorkloadRef:
        return WorkloadRef(cluster_id=self.cluster_id, namespace=self.namespace, name=self.workload)


def remediation_id(alert: Alert) -> str:
    """Workflow id of the remediation of this alert (one at a time per fingerprint)."""
    return f"remediation/{alert.fingerprint()}"


# --- executors ------------------------------------------------------------------------


class WorkloadRef(BaseModel):
    cluster_id: str
    namespace: str
    name: str
    kind: str = "Deployment"

    def __str__(self) -> str:
        return f"{self.cluster_id}/{self.namespace}/{self.kind.lower()}/{self.name}"


class Checkpoint(BaseModel):
    """What the workload looked like before a change, enough to undo it."""

    target: WorkloadRef
    # deployment.kubernetes.io/revision running now, and the revision before it (the release
    # rung 3 returns to); None when unknown or there is no earlier ReplicaSet.
    revision: int | None
    previous_revision: int | None = None
    replicas: int | None
    images: list[str] = Field(default_factory=list)
    spec: dict[str, Any] = Field(default_factory=dict)
    # Service name -> its selector; ConfigMap name -> its data (what full rollback restores).
    service_selectors: dict[str, dict[str, str]] = Field(default_factory=dict)
    configmaps: dict[str, dict[str, Any]] = Field(default_factory=dict)
    taken_at: datetime
    # False when nothing could be read (dry run without a reachable cluster).
    observed: bool = True
    detail: str = ""


class StepRequest(BaseModel):
    remediation_id: str
    rung: Rung
    target: WorkloadRef
    mode: Mode
    # remediation id + rung: stamped on the object (STEP_ANNOTATION) so a retry finds it.
    key: str
    restarted_at: str | None = Field(default=None, description="RFC 3339, chosen by the workflow")
    replicas: int | None = Field(default=None, ge=1, description="absolute count for scale out")
    to_revision: int | None = Field(default=None, ge=1, description="revision rung 3 returns to")
    # The remediation's FIRST checkpoint (its baseline): what full rollback restores.
    checkpoint: Checkpoint | None = None


class StepResult(BaseModel):
    applied: bool
    already_applied: bool = False
    detail: str
    patch: dict[str, Any] | None = None
    skipped_reason: str | None = None


class RolloutHealth(BaseModel):
    available: bool
    ready_replicas: int
    desired: int
    detail: str
    # False when nothing could be read (dry run without a reachable cluster).
    observed: bool = True


class RemediationExecutor(Protocol):
    """Reads and changes one workload; every change is idempotent by ``StepRequest.key``."""

    async def checkpoint(self, target: WorkloadRef) -> Checkpoint: ...

    async def apply(self, step: StepRequest) -> StepResult: ...

    async def rollout_health(self, target: WorkloadRef) -> RolloutHealth: ...


def step_key(remediation: str, rung: Rung | int) -> str:
    """Idempotency key of one rung of one remediation."""
    return f"{remediation}#{int(rung)}"


# --- scoring --------------------------------------------------------------------------

WEIGHTS = {"impact": 0.4, "severity": 0.3, "importance": 0.2, "time_sensitivity": 0.1}


def clamp(value: float, low: int = 0, high: int = 100) -> int:
    if not math.isfinite(value):
        return low
    return int(max(low, min(high, round(value))))


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
    """Weighted total: impact 40 %, severity 30 %, importance 20 %, time sensitivity 10 %."""
    total = sum(weight * clamp(getattr(dimensions, name).score) for name, weight in WEIGHTS.items())
    return clamp(total)


def attempt_budget(score: int) -> int:
    """How many rungs a score buys: 90–100 → 6, 70–89 → 4, 50–69 → 3, 30–49 → 2, 0–29 → 1."""
    score = clamp(score)
    if score >= 90:
        return 6
    if score >= 70:
        return 4
    if score >= 50:
        return 3
    if score >= 30:
        return 2
    return 1


class AlertRule(BaseModel):
    """A per-service override: pin importance, or force manual handling."""

    name: str = Field(min_length=1, max_length=100)
    cluster_id: str = Field(default="*", description="glob, e.g. cls-* ")
    namespace: str = Field(default="*", description="glob")
    workload: str = Field(default="*", description="glob over Deployment names")
    importance: int | None = Field(default=None, ge=0, le=100)
    manual: bool = Field(default=False, description="never act; hand over to a person at once")
    note: str = ""

    def matches(self, alert: Alert) -> bool:
        return (
            fnmatch.fnmatchcase(alert.cluster_id, self.cluster_id)
            and fnmatch.fnmatchcase(alert.namespace, self.namespace)
            and fnmatch.fnmatchcase(alert.workload, self.workload)
        )

    def specificity(self) -> int:
        return sum(part != "*" for part in (self.cluster_id, self.namespace, self.workload))


def match_rule(alert: Alert, rules: list[AlertRule]) -> AlertRule | None:
    """The most specific rule that matches (ties: the first given)."""
    matching = [rule for rule in rules if rule.matches(alert)]
    if not matching:
        return None
    return max(matching, key=lambda rule: rule.specificity())


def apply_rule(dimensions: ScoreDimensions, rule: AlertRule | None) -> ScoreDimensions:
    if rule is None or rule.importance is None:
        return dimensions
    pinned = DimensionScore(
        score=rule.importance, reason=f"pinned to {rule.importance} by alert rule {rule.name!r}"
    )
    return dimensions.model_copy(update={"importance": pinned})


def score_card(
    dimensions: ScoreDimensions,
    rule: AlertRule | None,
    generated_by: Literal["llm", "offline"],
) -> ScoreCard:
    """The total, budget and reasons of validated sub-scores, with the rule's overrides."""
    dimensions = apply_rule(dimensions, rule)
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


def offline_score(alert: Alert, rules: list[AlertRule]) -> ScoreCard:
    """Rule-based sub-scores with reasons, used when no LLM is configured."""
    text = f"{alert.message} {alert.metric or ''}".lower()
    labels = {k.lower(): v.lower() for k, v in alert.labels.items()}

    # Severity: how far past the threshold, raised by words that mean an outage.
    if alert.value is not None and alert.threshold not in (None, 0):
        assert alert.threshold is not None
        ratio = abs(alert.value / alert.threshold)
        severity = clamp(40 + (ratio - 1) * 60) if ratio >= 1 else 30
        severity_reason = f"value {alert.value:g} is {ratio:.2f}x the threshold"
    else:
        severity, severity_reason = 50, "no value/threshold given"
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
    return score_card(dimensions, match_rule(alert, rules), "offline")


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
            needs_approval=needs_approval(rung, approval_from_rung),
        )
        for index, rung in enumerate(rungs)
    ]


def needs_approval(rung: Rung, approval_from_rung: int) -> bool:
    # 0 turns approval off; handing over to a person needs nobody's approval.
    return 0 < approval_from_rung <= rung and rung is not Rung.HAND_OVER


# --- permission -----------------------------------------------------------------------

_MODE_ORDER = {"none": 0, "dry_run": 1, "execute": 2}


class PermissionDecision(BaseModel):
    mode: Mode | None
    reason: str


def effective_mode(
    asked: Mode, permission: str, executor: str = "kubernetes"
) -> PermissionDecision:
    """The lower of what is asked, the user's rollback_permission and the global executor."""
    if permission not in _MODE_ORDER:
        return PermissionDecision(mode=None, reason=f"unknown rollback_permission {permission!r}")
    if permission == "none":
        return PermissionDecision(
            mode=None,
            reason="rollback_permission is 'none': an admin must grant dry_run or execute",
        )
    mode: Mode = "execute" if asked == "execute" and permission == "execute" else "dry_run"
    reasons = [f"asked {asked}, rollback_permission {permission}"]
    if mode == "execute" and executor == "dry_run":
        mode = "dry_run"
        reasons.append("AMBIENT_REMEDIATION_EXECUTOR is dry_run (changes are off globally)")
    return PermissionDecision(mode=mode, reason="; ".join(reasons) + f" → {mode}")


def may_approve(permission: str, mode: Mode) -> bool:
    """An approver needs at least the permission the step runs with."""
    return _MODE_ORDER.get(permission, 0) >= _MODE_ORDER[mode]


def named_approver(user: str, cluster_id: str, approvers: Mapping[str, list[str]]) -> bool:
    """Whether the policy names ``user`` an approver of remediations on ``cluster_id`` (globs)."""
    return any(
        user in names
        for pattern, names in approvers.items()
        if fnmatch.fnmatchcase(cluster_id, pattern)
    )


# --- safety decisions -----------------------------------------------------------------


class Gate(BaseModel):
    """The answer of one safety check before a change."""

    allowed: bool
    reason: str
    # When not allowed: wait this long and ask again (None: do not wait, skip or hand over).
    retry_after_seconds: float | None = None


class ChangeWindow(BaseModel):
    """Local times when changes may run; ``days`` are ISO weekdays (1 = Monday)."""

    days: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5, 6, 7])
    start: str = Field(default="00:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    end: str = Field(default="24:00", pattern=r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$")

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[int]) -> list[int]:
        if not value or any(day < 1 or day > 7 for day in value):
            raise ValueError("days are ISO weekdays 1 (Monday) to 7 (Sunday)")
        return value

    def _bounds(self, day: datetime) -> tuple[datetime, datetime]:
        start = datetime.combine(day.date(), _hhmm(self.start), tzinfo=day.tzinfo)
        if self.end == "24:00":
            end = datetime.combine(day.date(), time(), tzinfo=day.tzinfo) + timedelta(days=1)
        else:
            end = datetime.combine(day.date(), _hhmm(self.end), tzinfo=day.tzinfo)
        if end <= start:  # crosses midnight
            end += timedelta(days=1)
        return start, end


def _hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def change_window_gate(local_now: datetime, windows: list[ChangeWindow]) -> Gate:
    """Inside a window (or no windows configured) → allowed; else wait for the next opening."""
    if not windows:
        return Gate(allowed=True, reason="no change windows configured")
    openings: list[datetime] = []
    for offset in (-1, 0, 1, 2, 3, 4, 5, 6, 7):
        day = local_now + timedelta(days=offset)
        for window in windows:
            if day.isoweekday() not in window.days:
                continue
            start, end = window._bounds(day)
            if start <= local_now < end:
                return Gate(
                    allowed=True, reason=f"inside change window {window.start}-{window.end}"
                )
            if start > local_now:
                openings.append(start)
    if not openings:
        return Gate(allowed=False, reason="no change window opens within a week")
    opens = min(openings)
    return Gate(
        allowed=False,
        reason=f"outside change windows; next opens {opens.isoformat()}",
        retry_after_seconds=(opens - local_now).total_seconds(),
    )


def rate_limit_gate(
    recent: list[datetime],
    now: datetime,
    per_hour: int,
    cooldown_seconds: float,
) -> Gate:
    """Per-cluster limit: at most ``per_hour`` changes an hour, ``cooldown`` between two."""
    hour_ago = now - timedelta(hours=1)
    in_hour = sorted(at for at in recent if at > hour_ago)
    if in_hour and cooldown_seconds > 0:
        since = (now - in_hour[-1]).total_seconds()
        if since < cooldown_seconds:
            return Gate(
                allowed=False,
                reason=f"cluster cooldown: last change {since:.0f}s ago (< {cooldown_seconds:g}s)",
                retry_after_seconds=cooldown_seconds - since,
            )
    if per_hour > 0 and len(in_hour) >= per_hour:
        frees = in_hour[len(in_hour) - per_hour] + timedelta(hours=1)
        return Gate(
            allowed=False,
            reason=f"cluster rate limit: {len(in_hour)} changes in the last hour (max {per_hour})",
            retry_after_seconds=max(1.0, (frees - now).total_seconds()),
        )
    return Gate(allowed=True, reason=f"{len(in_hour)} changes on this cluster in the last hour")


class BreakerState(BaseModel):
    """Consecutive failures of one rung on one service."""

    failures: int = 0
    opened_at: datetime | None = None


def breaker_gate(state: BreakerState, now: datetime, threshold: int, open_seconds: float) -> Gate:
    """Open after ``threshold`` failures in a row, for ``open_seconds``; then half-open."""
    if threshold <= 0 or state.opened_at is None:
        return Gate(allowed=True, reason=f"breaker closed ({state.failures} recent failures)")
    open_for = (now - state.opened_at).total_seconds()
    if open_for >= open_seconds:
        return Gate(allowed=True, reason="breaker half-open: one trial allowed")
    return Gate(
        allowed=False,
        reason=(
            f"breaker open: this rung failed {state.failures} times in a row on this service; "
            f"closes in {open_seconds - open_for:.0f}s"
        ),
    )


def breaker_after(
    state: BreakerState, resolved: bool, now: datetime, threshold: int
) -> BreakerState:
    """The breaker after an outcome: success closes it, the threshold-th failure opens it."""
    if resolved:
        return BreakerState()
    failures = state.failures + 1
    opened = now if threshold > 0 and failures >= threshold else None
    return BreakerState(failures=failures, opened_at=opened)


def scale_target(current: int | None, max_replicas: int, max_step: int) -> int:
    """Scale out by doubling, at most ``max_step`` more pods and never past ``max_replicas``."""
    base = max(1, current or 1)
    wanted = min(base * 2, base + max(1, max_step))
    return max(base, min(wanted, max_replicas))


# --- intake ---------------------------------------------------------------------------

_CLUSTER_KEYS = r"(?:tke_cluster_instance_id|cluster_id|clusterid|cluster)"
_NAMESPACE_KEYS = r"(?:namespace|ns)"
_WORKLOAD_KEYS = r"(?:workload_name|workload|deployment)"


def _find(pattern: str, text: str) -> str | None:
    match = re.search(pattern, text, re.IGNORECASE)
    return match.group(1) if match else None


def alert_from_alarm(
    source: str, name: str, target: str | None, detail: str, level: str | None = None
) -> Alert | None:
    """An alert from a Cloud Monitor / CLS alarm record, if it names a TKE workload.

    TKE workload alarms carry their dimensions as ``key:value`` pairs in the alarm object
    (e.g. ``tke_cluster_instance_id:cls-abc12345|namespace:prod|workload_name:web``).
    """
    text = f"{target or ''} {detail}"
    cluster = _find(rf"{_CLUSTER_KEYS}\s*[:=]\s*\"?([A-Za-z0-9-]+)", text) or _find(
        r"\b(cls-[a-z0-9]{4,})\b", text
    )
    workload = _find(rf"{_WORKLOAD_KEYS}\s*[:=]\s*\"?([a-z0-9][a-z0-9.-]*)", text)
    if not cluster or not workload:
        return None
    namespace = _find(rf"\b{_NAMESPACE_KEYS}\s*[:=]\s*\"?([a-z0-9][a-z0-9-]*)", text) or "default"
    try:
        return Alert(
            source=source,
            cluster_id=cluster,
            namespace=namespace,
            workload=workload,
            metric=name[:200] or None,
            message=detail[:4000],
            labels={"level": level} if level else {},
        )
    except ValueError:
        return None


def alert_from_breach(
    source: dict[str, Any], value: float, conditions: list[Condition], message: str
) -> Alert | None:
    """An alert from a threshold-watch breach on a TKE workload metric (QCE/TKE2 dimensions).

    Verification reads the same source; healthy is the opposite of each breached condition.
    """
    if source.get("type") != "tencent_monitor":
        return None
    dims = {k.lower(): v for k, v in (source.get("dimensions") or {}).items()}
    cluster = dims.get("tke_cluster_instance_id") or dims.get("cluster_id")
    workload = dims.get("workload_name") or dims.get("workload")
    if not cluster or not workload:
        return None
    healthy = [
        Condition(op="below" if c.op == "above" else "above", value=c.value) for c in conditions
    ]
    try:
        return Alert(
            source="threshold_watch",
            cluster_id=cluster,
            namespace=dims.get("namespace") or "default",
            workload=workload,
            metric=str(source.get("metric") or "") or None,
            value=value,
            threshold=conditions[0].value if conditions else None,
            message=message[:4000],
            verify=VerifySpec.model_validate({"source": source, "healthy": healthy})
            if healthy
            else None,
        )
    except ValueError:
        return None
