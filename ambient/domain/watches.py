"""Watches as the product defines them: configs, the threshold rule, page-change detection.

Pure and deterministic (no clock, no I/O): workflows import this through the sandbox.
Configs accept the original task configs as they are (``check_interval_minutes``,
``notification: {"method": "send_sms", ...}``, ``metric`` + ``threshold``).
"""

from __future__ import annotations

import difflib
import hashlib
import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, HttpUrl, field_validator, model_validator

from ambient.domain.notify import Target

MAX_URLS = 50
HISTORY_SIZE = 100


class TaskKind(StrEnum):
    WEB_MONITOR = "web_monitor"
    THRESHOLD_WATCH = "threshold_watch"
    SCHEDULE = "schedule"
    NEWS_DIGEST = "news_digest"


class TaskState(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    STOPPED = "stopped"


# --- notifications -------------------------------------------------------------------

METHOD_CHANNELS = {
    "send_sms": "sms",
    "sms": "sms",
    "email": "email",
    "send_email": "email",
    "wecom": "wecom",
    "dingtalk": "dingtalk",
    "webhook": "webhook",
    "apprise": "apprise",
    "inbox": "inbox",
}


class NotificationSpec(BaseModel):
    """The original form: a method and its address fields."""

    model_config = {"extra": "allow"}

    method: str = Field(description=f"one of: {', '.join(sorted(METHOD_CHANNELS))}")
    phone_number: str | None = None
    email: str | None = None
    target: str | None = Field(default=None, description="URL, address or secret name")

    @field_validator("method")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in METHOD_CHANNELS:
            raise ValueError(f"unknown method {value!r}; use one of {sorted(METHOD_CHANNELS)}")
        return value

    def target_of(self) -> Target:
        channel = METHOD_CHANNELS[self.method]
        address = self.target or self.phone_number or self.email or ""
        return Target(channel=channel, target=address)


def notification_targets(spec: NotificationSpec | None, extra: list[Target]) -> list[Target]:
    """Targets of a task; the inbox always, so every hit is visible on the web page."""
    targets = [Target(channel="inbox")]
    for target in ([spec.target_of()] if spec else []) + extra:
        if target not in targets:
            targets.append(target)
    return targets


class _TaskBase(BaseModel):
    check_interval_minutes: float = Field(
        default=5, ge=1, le=7 * 24 * 60, description="minutes between checks, at least 1"
    )
    notification: NotificationSpec | None = None
    targets: list[Target] = Field(default_factory=list, description="extra notification targets")
    failure_threshold: int = Field(
        default=3, ge=1, le=100, description="consecutive failed checks before 'failing' is sent"
    )

    @property
    def interval(self) -> timedelta:
        return timedelta(minutes=self.check_interval_minutes)


# --- web monitor ----------------------------------------------------------------------


class WebMonitorConfig(_TaskBase):
    urls: list[HttpUrl] = Field(min_length=1, max_length=MAX_URLS)
    keywords: list[str] = Field(
        default_factory=list,
        description="case-insensitive; plain text, or a regular expression prefixed with 're:'",
    )
    selectors: dict[str, str] = Field(
        default_factory=dict, description="optional CSS selector per URL (URL -> selector)"
    )
    ignore_patterns: list[str] = Field(
        default_factory=list, description="regular expressions removed before comparing"
    )

    @field_validator("keywords", "ignore_patterns")
    @classmethod
    def _compiles(cls, values: list[str], info: Any) -> list[str]:
        for value in values:
            pattern = value[3:] if value.startswith("re:") else value
            if info.field_name == "ignore_patterns" or value.startswith("re:"):
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(
                        f"{value!r} is not a valid regular expression: {exc}"
                    ) from None
        return values

    def selector_for(self, url: str) -> str | None:
        return self.selectors.get(url) or self.selectors.get(url.rstrip("/"))


def keyword_patterns(keywords: list[str]) -> list[tuple[str, re.Pattern[str]]]:
    compiled = []
    for keyword in keywords:
        if keyword.startswith("re:"):
            compiled.append((keyword, re.compile(keyword[3:], re.IGNORECASE)))
        else:
            # Whole words for short plain keywords ("AI" must not match "said").
            compiled.append((keyword, re.compile(rf"(?<!\w){re.escape(keyword)}(?!\w)", re.I)))
    return compiled


def normalise(text: str, ignore_patterns: list[str]) -> list[str]:
    """Lines of text without ignored parts, whitespace collapsed, empty lines dropped."""
    for pattern in ignore_patterns:
        text = re.sub(pattern, "", text)
    lines = (re.sub(r"\s+", " ", line).strip() for line in text.splitlines())
    return [line for line in lines if line]


def content_hash(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


class PageDiff(BaseModel):
    changed: bool
    added: list[str]
    hits: dict[str, list[str]] = Field(description="keyword -> new lines that mention it")
    excerpt: str


def diff_pages(
    old: list[str] | None, new: list[str], keywords: list[str], excerpt_lines: int = 12
) -> PageDiff:
    """What changed between two normalised pages; keyword hits count only on new text."""
    if old is None:  # first sight: a baseline, nothing is "new"
        return PageDiff(changed=False, added=[], hits={}, excerpt="")
    seen = set(old)
    added = [line for line in new if line not in seen]
    hits: dict[str, list[str]] = {}
    for keyword, pattern in keyword_patterns(keywords):
        matched = [line for line in added if pattern.search(line)]
        if matched:
            hits[keyword] = matched[:5]
    diff = difflib.unified_diff(old, new, lineterm="", n=0)
    body = [line for line in diff if not line.startswith(("---", "+++", "@@"))]
    return PageDiff(
        changed=old != new, added=added, hits=hits, excerpt="\n".join(body[:excerpt_lines])
    )


# --- threshold watch ------------------------------------------------------------------


class HttpJsonSource(BaseModel):
    type: Literal["http_json"] = "http_json"
    url: HttpUrl
    json_path: str = Field(description="JSONPath to a number, e.g. $.data.amount")


class PrometheusSource(BaseModel):
    type: Literal["prometheus"] = "prometheus"
    url: HttpUrl = Field(description="Prometheus base URL, e.g. http://prometheus:9090")
    query: str = Field(min_length=1, description="PromQL instant query returning one sample")


class TencentMonitorSource(BaseModel):
    type: Literal["tencent_monitor"] = "tencent_monitor"
    namespace: str = Field(description="e.g. QCE/CVM, QCE/TKE2")
    metric: str = Field(description="MetricName, e.g. CPUUsage")
    dimensions: dict[str, str] = Field(default_factory=dict)
    period: int = 60
    region: str | None = None


MetricSource = Annotated[
    HttpJsonSource | PrometheusSource | TencentMonitorSource, Field(discriminator="type")
]

# Named metrics usable as {"metric": name}; extend with AMBIENT_METRIC_CATALOGUE.
DEFAULT_CATALOGUE: dict[str, dict[str, Any]] = {
    "bitcoin_price": {
        "type": "http_json",
        "url": "https://api.coinbase.com/v2/prices/BTC-USD/spot",
        "json_path": "$.data.amount",
    },
    "ethereum_price": {
        "type": "http_json",
        "url": "https://api.coinbase.com/v2/prices/ETH-USD/spot",
        "json_path": "$.data.amount",
    },
}


class UnknownMetricError(ValueError):
    """A named metric is not in the catalogue."""


def resolve_metric(name: str, catalogue: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if name not in catalogue:
        known = ", ".join(sorted(catalogue)) or "none"
        raise UnknownMetricError(f"unknown metric {name!r}; known metrics: {known}")
    return catalogue[name]


class Condition(BaseModel):
    op: Literal["above", "below"]
    value: float

    def breached(self, value: float, margin: float = 0.0) -> bool:
        # margin > 0 makes the condition harder to meet (used for recovery hysteresis).
        return value > self.value + margin if self.op == "above" else value < self.value - margin


class ThresholdWatchConfig(_TaskBase):
    source: MetricSource | None = None
    metric: str | None = Field(default=None, description="a named metric from the catalogue")
    threshold: float | None = Field(default=None, description="shorthand for one 'above' condition")
    conditions: list[Condition] = Field(default_factory=list)
    combine: Literal["all", "any"] = "any"
    for_checks: int = Field(default=1, ge=1, le=100, description="consecutive breaching checks")
    hysteresis: float = Field(default=0, ge=0, description="recover only this far past the line")
    cooldown_minutes: float = Field(default=0, ge=0, description="no new breach alert before")
    on_breach: Literal["notify", "remediate"] = "notify"

    @model_validator(mode="after")
    def _shape(self) -> ThresholdWatchConfig:
        if self.threshold is not None and not self.conditions:
            self.conditions = [Condition(op="above", value=self.threshold)]
        if not self.conditions:
            raise ValueError("give 'conditions' (or 'threshold' for one 'above' condition)")
        if self.source is None and self.metric is None:
            raise ValueError("give a metric 'source' or a named 'metric'")
        return self


class Breach(StrEnum):
    BREACH = "breach"
    RECOVERY = "recovery"


class ThresholdState(BaseModel):
    breaching: bool = False
    # A breach inside the cooldown is silent; so is its recovery.
    silent: bool = False
    consecutive: int = 0
    last_alert_at: datetime | None = None
    values: list[tuple[datetime, float]] = Field(default_factory=list)


class Transition(BaseModel):
    kind: Breach
    value: float
    conditions: list[Condition]


def evaluate(
    config: ThresholdWatchConfig, state: ThresholdState, value: float, now: datetime
) -> tuple[ThresholdState, Transition | None]:
    """One check of a threshold watch: a breach once, a recovery once, never repeats."""
    state = state.model_copy(deep=True)
    state.values = [*state.values, (now, value)][-HISTORY_SIZE:]
    met = [c for c in config.conditions if c.breached(value)]
    combine = all if config.combine == "all" else any
    breaching_now = combine(c.breached(value) for c in config.conditions)
    if not state.breaching:
        state.consecutive = state.consecutive + 1 if breaching_now else 0
        if state.consecutive < config.for_checks:
            return state, None
        cooldown = timedelta(minutes=config.cooldown_minutes)
        if state.last_alert_at is not None and now - state.last_alert_at < cooldown:
            state.breaching, state.silent = True, True
            return state, None
        state.breaching, state.silent, state.last_alert_at = True, False, now
        return state, Transition(kind=Breach.BREACH, value=value, conditions=met)
    # Recovery needs the value back past the line by the hysteresis margin.
    still = combine(c.breached(value, -config.hysteresis) for c in config.conditions)
    if still:
        return state, None
    silent = state.silent
    state.breaching, state.silent, state.consecutive = False, False, 0
    if silent:
        return state, None
    return state, Transition(kind=Breach.RECOVERY, value=value, conditions=config.conditions)
