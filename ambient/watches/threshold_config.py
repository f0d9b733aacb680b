"""A threshold watch's config: where its number comes from (a JSON document over HTTP, a
Prometheus query, a Tencent Cloud Monitor metric, a metric named in the catalogue) and the
lines it is held against. Pure and deterministic, as ambient/watches/configs.py."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ambient.domain.configs import ShortText, UserConfig, new_region, reading_stored
from ambient.domain.push import SECRET_NAME, SECRET_PREFIX
from ambient.refusals import N_, Refusal
from ambient.watches.configs import (
    MAX_CONDITIONS,
    Count,
    Number,
    WebUrl,
    _TaskBase,
    check_json_path,
)


def _secret_named(value: str) -> str:
    if value.startswith(SECRET_PREFIX) and SECRET_NAME.fullmatch(value[len(SECRET_PREFIX) :]):
        return value
    # Written here, a token would be kept in the watch's history, events and status.
    raise Refusal(
        "give the credentials as secret:NAME, a server secret the operator defines in "
        "AMBIENT_SECRETS (letters, digits, _ . -), never the token or password itself"
    )


class SourceAuth(UserConfig):
    """Credentials a metric source asks for, by a server secret's name: its value stays in
    the server's settings, out of the watch's config, history and status."""

    type: Literal["bearer", "basic"] = Field(
        description="bearer: the secret's value is the token; basic: it is user:password"
    )
    secret: Annotated[str, AfterValidator(_secret_named)] = Field(
        description="secret:NAME, a server secret you may use (AMBIENT_SECRETS)"
    )


# Left out of a source's JSON when not given: configs, ids and histories of sources without it
# stay as they were.
Auth = Annotated[
    SourceAuth | None,
    Field(
        default=None,
        exclude_if=lambda auth: auth is None,
        description='credentials, e.g. {"type": "bearer", "secret": "secret:NAME"}; sent to the '
        "URL's origin only",
    ),
]


class HttpJsonSource(UserConfig):
    """A number inside a JSON document served over HTTP (e.g. a price API)."""

    type: Literal["http_json"] = Field(default="http_json", description="http_json")
    url: WebUrl = Field(description="http(s) URL of the JSON document")
    auth: Auth
    json_path: Annotated[
        str, StringConstraints(max_length=500), AfterValidator(check_json_path)
    ] = Field(description="JSONPath to a number, e.g. $.data.amount (checked at creation)")


# The end of a Prometheus URL that is no base: the HTTP API's (/api/v1/…), the query pages of
# Prometheus 2 (/graph, /classic/graph) and 3 (/query).
PROMETHEUS_PAGE = re.compile(r"/api/v1(/.*)?$|(/classic)?/graph$|/query$")


class PrometheusSource(UserConfig):
    """A Prometheus instant query that returns one sample."""

    type: Literal["prometheus"] = Field(default="prometheus", description="prometheus")
    url: WebUrl = Field(
        description="Prometheus base URL, e.g. http://prometheus:9090 (or its /api/v1/query)"
    )
    query: str = Field(
        min_length=1, max_length=4000, description="PromQL instant query returning one sample"
    )
    auth: Auth

    @field_validator("url")
    @classmethod
    def _base(cls, value: Any, info: ValidationInfo) -> Any:
        # The query is asked at the url's /api/v1/query (read there when it is that
        # endpoint): a page's or another endpoint's URL was asked at …/graph/api/v1/query and
        # failed every check with an HTTP 404 from the URL the owner gave.
        parts = urlsplit(str(value))
        path = parts.path.rstrip("/")
        base = PROMETHEUS_PAGE.sub("", path)
        if reading_stored(info) or not (
            parts.query or parts.fragment or (base != path and path != f"{base}/api/v1/query")
        ):
            return value
        raise Refusal(
            "%(url)s is a Prometheus page or endpoint, not the server's base URL: give "
            "%(base)s, and the PromQL in query",
            url=str(value),
            base=f"{parts.scheme}://{parts.netloc}{base}",
        )


# Cloud Monitor serves these namespaces with DescribeStatisticData, not GetMonitorData (its
# reference: "不适用于拉取容器服务监控数据"), at these periods only.
STATISTIC_NAMESPACES = frozenset({"QCE/TKE2", "QCE/KEEWIDB", "QCE/CAMP"})
STATISTIC_PERIODS = (60, 300, 3600, 86400)


class TencentMonitorSource(UserConfig):
    """A Tencent Cloud Monitor metric."""

    type: Literal["tencent_monitor"] = Field(
        default="tencent_monitor", description="tencent_monitor"
    )
    namespace: str = Field(min_length=1, max_length=100, description="e.g. QCE/CVM, QCE/TKE2")
    metric: str = Field(min_length=1, max_length=200, description="MetricName, e.g. CPUUsage")
    dimensions: dict[ShortText, ShortText] = Field(
        default_factory=dict, max_length=20, description='e.g. {"InstanceId": "ins-1"}'
    )
    period: Count = Field(default=60, gt=0, le=86400, description="seconds per data point")
    region: ShortText | None = Field(
        default=None, description="e.g. ap-shanghai (default: the configured region)"
    )

    # Sent as X-TC-Region, and named by the alert a breach starts a remediation with: a region
    # not written as one failed every check, and its breach remediated nothing.
    _region = field_validator("region")(new_region)

    @field_validator("dimensions")
    @classmethod
    def _named(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        # A dimension names the instance read: an empty or padded name or value names none,
        # and such a watch was created and failed every check.
        if reading_stored(info):
            return value
        for name, named in value.items():
            for what, text in (("name", name), ("value", named)):
                wrong = "is empty" if not text.strip() else "has spaces around it"
                if not text.strip() or text != text.strip():
                    raise ValueError(
                        f"the dimension {what} {text!r} {wrong}: name the instance, "
                        'e.g. {"InstanceId": "ins-123"}'
                    )
        return value

    @field_validator("period")
    @classmethod
    def _served(cls, value: int, info: ValidationInfo) -> int:
        namespace = info.data.get("namespace")
        if (
            namespace in STATISTIC_NAMESPACES
            and value not in STATISTIC_PERIODS
            and not reading_stored(info)
        ):
            raise ValueError(
                f"{namespace} metrics are read with DescribeStatisticData, whose period is "
                "60, 300, 3600 or 86400 seconds"
            )
        return value


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


class Condition(UserConfig):
    """The metric is above or below a value."""

    op: Literal["above", "below"] = Field(description="above or below")
    value: Number = Field(description="the line")

    def breached(self, value: float, margin: float = 0.0) -> bool:
        # margin > 0 makes the condition harder to meet (used for recovery hysteresis).
        return value > self.value + margin if self.op == "above" else value < self.value - margin


# Fields that say what another says (a threshold is one 'above' condition; a named metric is
# its source): an update that sends one drops the other in force (ambient/watches/config_patch).
SAID_BY_OTHER = {
    "threshold": ("conditions",),
    "conditions": ("threshold",),
    "metric": ("source",),
    "source": ("metric",),
}


class ThresholdWatchConfig(_TaskBase):
    """Watch a metric; alert once on breach and once on recovery."""

    source: MetricSource | None = Field(
        default=None, description="where the value comes from: http_json, prometheus, ..."
    )
    metric: ShortText | None = Field(
        default=None, description="a named metric from the catalogue, e.g. bitcoin_price"
    )
    threshold: Number | None = Field(
        default=None, description="shorthand for one 'above' condition"
    )
    conditions: list[Condition] = Field(
        default_factory=list, max_length=MAX_CONDITIONS, description="above/below lines"
    )
    combine: Literal["all", "any"] = Field(default="any", description="how conditions combine")
    for_checks: Count = Field(default=1, ge=1, le=100, description="consecutive breaching checks")
    hysteresis: Number = Field(default=0, ge=0, description="recover only this far past the line")
    cooldown_minutes: Number = Field(
        default=0, ge=0, le=7 * 24 * 60, description="no new breach alert within this time"
    )
    on_breach: Literal["notify", "remediate"] = Field(
        default="notify",
        description="notify, or remediate: start the graded remediation of the TKE Deployment "
        "a tencent_monitor source names (needs rollback_permission dry_run or execute)",
    )

    @field_validator("source")
    @classmethod
    def _one_instance(cls, source: Any, info: ValidationInfo) -> Any:
        # A Cloud Monitor read names the instance (get_metric refuses one without): such a
        # watch was created and failed every check.
        if isinstance(source, TencentMonitorSource) and not source.dimensions:
            if not reading_stored(info):
                raise ValueError(
                    f"dimensions: {source.namespace}/{source.metric} is read for one instance; "
                    'give its dimensions, e.g. {"InstanceId": "ins-123"} (see the product\'s '
                    "metric documentation)"
                )
        return source

    @model_validator(mode="before")
    @classmethod
    def _as_it_ran(cls, data: Any, info: ValidationInfo) -> Any:
        """A stored watch given both ran on its conditions: its threshold is dropped."""
        if isinstance(data, dict) and reading_stored(info) and data.get("conditions"):
            data = {key: value for key, value in data.items() if key != "threshold"}
        return data

    @model_validator(mode="after")
    def _shape(self, info: ValidationInfo) -> ThresholdWatchConfig:
        shorthand = None if self.threshold is None else Condition(op="above", value=self.threshold)
        if shorthand is not None and self.conditions and self.conditions != [shorthand]:
            # Both given and saying different things: one of them would be ignored (it was
            # the threshold). The same pair is accepted: a config read back holds both.
            raise ValueError(
                f"threshold: {self.threshold:.15g} is shorthand for conditions "
                f"[{{op: above, value: {self.threshold:.15g}}}], but conditions were given too; "
                "give threshold or conditions, not both"
            )
        if shorthand is not None:
            self.conditions = [shorthand]
        if not self.conditions:
            raise ValueError("give 'conditions' (or 'threshold' for one 'above' condition)")
        if self.source is None and self.metric is None:
            raise ValueError("give a metric 'source' or a named 'metric'")
        if not reading_stored(info):
            self._can_breach_and_recover()
        return self

    def _can_breach_and_recover(self) -> None:
        """Refuse lines no value can breach together, or none can recover from."""
        above = [c.value for c in self.conditions if c.op == "above"]
        below = [c.value for c in self.conditions if c.op == "below"]
        if not (above and below):
            return
        high, low = max(above), min(below)
        if self.combine == "all" and high >= low:
            raise ValueError(
                f"conditions: no value is above {high:.15g} and below {low:.15g} at once, so the "
                "watch could never breach; use combine 'any' to alert outside a band"
            )
        # combine any: recovery needs the value back inside every line by the margin.
        top, bottom, margin = min(above), max(below), self.hysteresis
        if self.combine == "any" and top < bottom:
            raise ValueError(
                f"conditions: every value is above {top:.15g} or below {bottom:.15g}, so a breach "
                "could never recover; with combine 'any' put the below line under the above one"
            )
        if self.combine == "any" and top - margin < bottom + margin:
            raise ValueError(
                f"hysteresis: no value is {margin:.15g} (hysteresis) inside both lines "
                f"(above {top:.15g}, below {bottom:.15g}), so a breach could never recover; "
                f"give at most {max(top - bottom, 0) / 2:.15g}"
            )


def workload_of(dimensions: dict[str, str]) -> tuple[str | None, str | None, str | None]:
    """Cluster, namespace and workload named by QCE/TKE2 dimensions (keys in any case)."""
    dims = {k.lower(): v for k, v in dimensions.items()}
    cluster = dims.get("tke_cluster_instance_id") or dims.get("cluster_id")
    return cluster, dims.get("namespace"), dims.get("workload_name") or dims.get("workload")


NO_WORKLOAD = N_(
    "the metric names no TKE workload: remediation needs a tencent_monitor source with "
    "tke_cluster_instance_id, namespace and workload_name"
)
NOT_A_DEPLOYMENT = N_(
    "the metric is on %(kind)s %(workload)s: remediation changes Deployments only"
)
NO_NAMESPACE = N_(
    "the metric names workload %(workload)s in %(cluster)s but no namespace: remediation does "
    "not guess one (add namespace to the source's dimensions)"
)


def breach_target_refusal(source: dict[str, Any]) -> Refusal | None:
    """Why a threshold watch's breaches on ``source`` cannot be remediated (None: they can):
    its dimensions must name a Deployment for certain, since a ladder run on a guessed
    namespace or on another kind of workload changes another Deployment of that name. The
    names themselves are the alert's to check (``breach_alert``)."""
    if source.get("type") != "tencent_monitor":
        return Refusal(NO_WORKLOAD)
    dimensions = source.get("dimensions") or {}
    cluster, namespace, workload = workload_of(dimensions)
    if not cluster or not workload:
        return Refusal(NO_WORKLOAD)
    kind = {key.lower(): value for key, value in dimensions.items()}.get("workload_kind")
    if kind and kind.lower() != "deployment":
        return Refusal(NOT_A_DEPLOYMENT, kind=kind, workload=workload)
    if not namespace:
        return Refusal(NO_NAMESPACE, workload=workload, cluster=cluster)
    return None
