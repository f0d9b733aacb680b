"""Alerts as the remediation takes them: the model, its id, and intake from threshold breaches.

Pure (sandbox-safe). Alert text is data: nothing here lets a message choose a target or a
step outside the ladder.
"""

from __future__ import annotations

import hashlib
import math
from functools import partial
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from ambient.domain.configs import ShortText, UserConfig
from ambient.domain.field_errors import field_problems
from ambient.domain.identifiers import (
    ClusterRef,
    NamespaceName,
    TencentRegion,
    object_name,
)
from ambient.domain.numbers import WHOLE_NUMBER, DecimalNumber
from ambient.refusals import N_, Refusal
from ambient.remediation.ladder import WorkloadRef
from ambient.watches.configs import MAX_CONDITIONS
from ambient.watches.threshold_config import (
    Condition,
    MetricSource,
    TencentMonitorSource,
    breach_target_refusal,
    workload_of,
)

# --- alerts ---------------------------------------------------------------------------

DeploymentName = Annotated[str, AfterValidator(partial(object_name, what="Deployment name"))]


class VerifySpec(UserConfig):
    """How to tell the alert is over: a threshold-watch metric source and healthy conditions."""

    source: MetricSource
    # Bounded as a watch's conditions: the alert travels whole in the workflow's input (100,000
    # of them were past Temporal's 2 MB blob limit: an HTTP 500).
    healthy: list[Condition] = Field(
        min_length=1,
        max_length=MAX_CONDITIONS,
        description='conditions that hold when healthy, e.g. [{"op": "below", ...}]',
    )
    combine: Literal["all", "any"] = "all"
    inclusive: StrictBool = Field(
        default=False,
        description="true: a value on a line is healthy too (below means at most, above at "
        "least), as a threshold watch's breach is over once the value is back on its line",
    )

    def holds(self, value: float) -> bool:
        # Condition.breached(value) means "value is past the line in the op's direction".
        results = [c.breached(value) or (self.inclusive and value == c.value) for c in self.healthy]
        return all(results) if self.combine == "all" else any(results)

    def said(self) -> str:
        """The healthy conditions as a person reads them ("below 0.05", "at or below 0")."""
        on_line = "at or " if self.inclusive else ""
        return ", ".join(f"{on_line}{c.op} {c.value:.15g}" for c in self.healthy)


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
    cluster_id: ClusterRef = Field(
        description="TKE cluster id (cls- and 8 lowercase letters or digits, e.g. "
        "cls-7kq2m0ab) or a context name of AMBIENT_KUBECONFIG"
    )
    # Required: the target is never guessed (an alert without one was remediated in default).
    namespace: NamespaceName = Field(description="Kubernetes namespace (DNS label)")
    workload: DeploymentName = Field(description="Deployment name (DNS subdomain)")
    # Not part of the fingerprint: a TKE cluster id names one cluster whatever the region.
    region: TencentRegion | None = Field(
        default=None, description="the TKE cluster's region (default: the configured one)"
    )
    metric: str | None = Field(default=None, max_length=200)
    value: DecimalNumber | None = None
    threshold: DecimalNumber | None = None
    message: str = Field(default="", max_length=4000, description="alert text (data only)")
    verify: VerifySpec | None = None
    settle_seconds: Annotated[int | None, WHOLE_NUMBER] = Field(default=None, ge=0, le=24 * 3600)
    # Bounded like a metric's dimensions: an alert travels whole in the workflow's input (a
    # label set past Temporal's 2 MB blob limit was an HTTP 500) and in every status answer.
    labels: dict[ShortText, ShortText] = Field(
        default_factory=dict, max_length=50, description='free-form facts, e.g. {"tier": "high"}'
    )

    @field_validator("value", "threshold")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @model_validator(mode="after")
    def _verified_in_its_region(self) -> Alert:
        # A Cloud Monitor metric that names no region is its cluster's: read where the cluster
        # is (in the configured region it has no datapoints, and the run could not verify).
        verify = self.verify
        if (
            self.region is not None
            and verify is not None
            and isinstance(verify.source, TencentMonitorSource)
            and verify.source.region is None
        ):
            source = verify.source.model_copy(update={"region": self.region})
            self.verify = verify.model_copy(update={"source": source})
        return self

    def fingerprint(self, cluster: str | None = None) -> str:
        """Stable identity of the problem: the workload. Any alert on it while its remediation
        runs maps to that run (two ladders would restart, scale and roll back one Deployment
        against each other), whatever its source or metric. ``cluster``: the TKE cluster id
        the alert's kubeconfig context reaches (``cluster_identity``), one name for both."""
        return _digest([cluster or self.cluster_id, self.namespace, self.workload])

    @property
    def service(self) -> str:
        return f"{self.cluster_id}/{self.namespace}/{self.workload}"

    def target(self) -> WorkloadRef:
        return WorkloadRef(
            cluster_id=self.cluster_id,
            namespace=self.namespace,
            name=self.workload,
            region=self.region,
        )


def remediation_id(alert: Alert, cluster: str | None = None) -> str:
    """Workflow id of the remediation of this alert (one at a time per workload); ``cluster``
    as for ``Alert.fingerprint``."""
    return f"remediation/{alert.fingerprint(cluster)}"


def _digest(parts: list[str]) -> str:
    """An id's 16 hex digits: the SHA-256 of ``parts`` joined by the unit separator."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


# --- intake ---------------------------------------------------------------------------
# A threshold breach's here; a Monitor or CLS alarm's is the triage's (remediation/triage.py).


# Why a breach starts no remediation though its dimensions name a Deployment: a name that is no
# Kubernetes name (a namespace in capitals), said as the alert refuses it.
NOT_A_DEPLOYMENT_NAME = N_(
    "the metric's dimensions name no Deployment a remediation can change: %(why)s"
)


def breach_alert(
    source: dict[str, Any],
    value: float,
    conditions: list[Condition],
    message: str,
    combine: Literal["all", "any"] = "any",
) -> Alert | Refusal:
    """The alert of a threshold-watch breach on a TKE Deployment metric (QCE/TKE2
    dimensions), or why its breach starts no remediation: the one reason a watch's create and
    update refuse on_breach "remediate" with (``breach_refusal``), and a watch stored before
    records at its breach. ``conditions`` are the lines it crossed, ``combine`` how the watch
    combines its lines."""
    refused = breach_target_refusal(source)
    if refused is not None:
        return refused
    cluster, namespace, workload = workload_of(source.get("dimensions") or {})
    # Verification reads the same source; healthy is the breach no longer holding: the value
    # back on or inside each line crossed ("above 0" breached is over at 0), and for a watch
    # that breaches only past all its lines at once, back inside any one of them.
    healthy = [
        Condition(op="below" if c.op == "above" else "above", value=c.value) for c in conditions
    ]
    try:
        return Alert.model_validate(
            {
                "source": "threshold_watch",
                "cluster_id": cluster,
                "namespace": namespace,
                "workload": workload,
                "region": source.get("region"),  # the metric's region is its cluster's
                "metric": str(source.get("metric") or "") or None,
                "value": value,
                "threshold": conditions[0].value if conditions else None,
                "message": message[:4000],
                "verify": {
                    "source": source,
                    "healthy": healthy,
                    "combine": "any" if combine == "all" else "all",
                    "inclusive": True,
                }
                if healthy
                else None,
            }
        )
    except ValidationError as exc:
        return Refusal(NOT_A_DEPLOYMENT_NAME, why="; ".join(field_problems(exc)))


def alert_from_breach(
    source: dict[str, Any],
    value: float,
    conditions: list[Condition],
    message: str,
    combine: Literal["all", "any"] = "any",
) -> Alert | None:
    """``breach_alert``'s alert; None where it says why there is none."""
    found = breach_alert(source, value, conditions, message, combine)
    return found if isinstance(found, Alert) else None


def breach_refusal(source: MetricSource | None, conditions: list[Condition]) -> Refusal | None:
    """Why the breaches of a watch reading ``source`` with ``conditions`` cannot start a
    remediation (None: they can), as a breach of it would say."""
    said = source.model_dump(mode="json") if source is not None else {}
    found = breach_alert(said, 0.0, conditions, "")
    return found if isinstance(found, Refusal) else None
