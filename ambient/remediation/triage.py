"""The morning triage's input: yesterday's unresolved Monitor and CLS alarms as alerts.

Read through the Tencent Cloud client; one alert per workload (its fingerprint: one ladder per
workload). Repeats of one alarm collapse; another alarm on a workload already found, what
names no TKE Deployment (no workload, another kind, no namespace), and an alarm with no data
are said in skipped, not dropped silently.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field
from temporalio.common import RetryPolicy

from ambient.clients.tencent.alarms import AlarmRecord, UnreadSource, list_alarms
from ambient.clients.tencent.client import TencentCloud
from ambient.clients.tencent.errors import TencentCloudError, TencentRetryableError
from ambient.cloud.errors import told
from ambient.domain.identifiers import region_name
from ambient.domain.workflow_input import WorkflowInput
from ambient.remediation.alerts import Alert, remediation_id, workload_of
from ambient.remediation.ladder import Mode

# The nightly triage's read of the alarms (AlertTriageWorkflow gives it): a source failing for
# now (a rate limit, an outage) fails an attempt that is not the last, so the next reads it
# again; the last goes on without it and says so (the schedule never asks that day again).
TRIAGE_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=10))


class TriageInput(WorkflowInput):
    user: str
    mode: Mode = "execute"
    # Days back from the local midnight that starts today ("yesterday" by default).
    days: int = Field(default=1, ge=1, le=7)


class CollectInput(BaseModel):
    days: int = 1
    now: datetime


class TriageAlerts(BaseModel):
    alerts: list[Alert] = Field(default_factory=list)
    # Each alert's remediation id, its cluster by its one name (none from an earlier release).
    ids: list[str] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list)
    window: str = ""


class TriageResult(BaseModel):
    window: str
    started: list[str] = Field(default_factory=list)
    joined: list[str] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list)


# AlarmStatus "ALARM": not recovered (CLS records' Status 0 reads the same, list_alarms).
UNRESOLVED = {"ALARM"}
# Its metric had too little data to tell: not remediated (nothing to verify a change by), and
# said in skipped, as its user sees it apart in the console and the briefing.
NO_DATA = "NO_DATA"
_CLUSTER_KEYS = r"(?:tke_cluster_instance_id|cluster_id|clusterid|cluster)"
_NAMESPACE_KEYS = r"(?:namespace|ns)"
_WORKLOAD_KEYS = r"(?:workload_name|workload|deployment)"


def _find(pattern: str, text: str) -> str | None:
    match = re.search(pattern, text, re.IGNORECASE)
    return match.group(1) if match else None


def alert_from_alarm(alarm: AlarmRecord) -> Alert | str:
    """An alert from a Cloud Monitor / CLS alarm record naming a TKE Deployment, or why the
    record is none (said in the night's skipped): a target is never guessed, since a ladder
    run on a guess changes another workload of the same name."""
    # A Monitor alarm's dimensions name its workload; its alarm object is a display text. Else
    # the text is read for key:value pairs (e.g. a CLS trigger's cluster_id=… workload=…).
    cluster, namespace, workload = workload_of(alarm.dimensions)
    text = f"{alarm.target or ''} {alarm.detail}"
    cluster = cluster or _find(rf"{_CLUSTER_KEYS}\s*[:=]\s*\"?([A-Za-z0-9-]+)", text)
    cluster = cluster or _find(r"\b(cls-[a-z0-9]{4,})\b", text)
    workload = workload or _find(rf"{_WORKLOAD_KEYS}\s*[:=]\s*\"?([a-z0-9][a-z0-9.-]*)", text)
    if not cluster or not workload:
        return "names no TKE workload"
    dims = {key.lower(): value for key, value in alarm.dimensions.items()}
    kind = dims.get("workload_kind") or _find(r"\bworkload_kind\s*[:=]\s*\"?([A-Za-z]+)", text)
    if kind and kind.lower() != "deployment":
        return f"is on {kind} {workload} in {cluster}: remediation changes Deployments only"
    namespace = namespace or _find(rf"\b{_NAMESPACE_KEYS}\s*[:=]\s*\"?([a-z0-9][a-z0-9-]*)", text)
    if not namespace:
        return (
            f"names workload {workload} in {cluster} but no namespace: remediation does not "
            "guess one (add namespace to the alarm's dimensions or text)"
        )
    try:
        return Alert(
            source=alarm.source,
            cluster_id=cluster,
            namespace=namespace,
            workload=workload,
            # The alarm object's region, when written as one (else the configured region).
            region=region_name(alarm.region),
            metric=alarm.name[:200] or None,
            message=alarm.detail[:4000],
            labels={"level": alarm.level} if alarm.level else {},
        )
    except ValueError as exc:
        return f"names a workload remediation cannot take ({exc})"


def _no_data_said(alarm: AlarmRecord) -> str:
    """A no-data alarm the night passes over, said with its workload when it names one."""
    alert = alert_from_alarm(alarm)
    on = f" on {alert.service}" if isinstance(alert, Alert) else ""
    return (
        f"{alarm.source} alarm {alarm.name!r}{on}: no data (NO_DATA, 数据不足): its metric had "
        "too little data to tell, so it is not remediated (nothing to verify a change by); "
        "look at what reports the metric"
    )


def _unread_said(unread: UnreadSource, asked: int) -> str:
    """A source not read, said; one failing for now, as still failing on the last attempt."""
    if unread.retryable and asked > 1:
        return f"{unread} (still failing on the night's last of {asked} attempts)"
    return str(unread)


async def unresolved_alarms(
    tencent: TencentCloud | None,
    zone: ZoneInfo,
    now: datetime,
    days: int,
    *,
    fail_fast: bool = False,
    asked: int = 1,
    identity: Callable[[str], str] = str,
) -> TriageAlerts:
    """The alarms of the ``days`` whole days before today (in ``zone``) not yet recovered.

    ``fail_fast``: a source failing for now (a rate limit, an outage) raises, nothing more read,
    for an activity attempt that is not its last (the next reads both again); else it is said
    unread, with the ``asked`` attempts that read the day. ``identity``: a cluster's one name
    (``cluster_identity``: a kubeconfig context's TKE id), one workload however it is named."""
    today = now.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    start, end = today - timedelta(days=days), today
    window = f"{start.isoformat()} – {end.isoformat()}"
    if tencent is None or not tencent.configured:
        return TriageAlerts(
            window=window, skipped=["Tencent Cloud is not configured: no alarm history"]
        )
    try:
        history = await list_alarms(tencent, start, end, said=told, fail_fast=fail_fast)
    except TencentRetryableError:
        # An outage or a rate limit: an attempt not the last is asked again (one source's
        # failure raised too); the last raises only when both sources failed.
        raise
    except TencentCloudError as exc:
        # Both sources refused for good (the keys, a CAM policy): the night says what to fix,
        # as for one source, and ends; it failed with the API's code alone.
        return TriageAlerts(
            window=window, skipped=[f"the alarm history could not be read: {told(exc)}"]
        )
    found: dict[str, Alert] = {}
    # A source refused while the other answered, alarms without a time: not here, and said.
    skipped = [_unread_said(unread, asked) for unread in history.unread]
    skipped += history.skipped_said()
    silent: set[tuple[str, str, str]] = set()  # the no-data alarms said (repeats are not)
    for alarm in history.alarms:
        if alarm.status.upper() == NO_DATA:
            if (said := (alarm.source, alarm.name, alarm.target or "")) not in silent:
                silent.add(said)
                skipped.append(_no_data_said(alarm))
            continue
        if alarm.status.upper() not in UNRESOLVED:
            continue
        alert = alert_from_alarm(alarm)
        if isinstance(alert, str):
            skipped.append(f"{alarm.source} alarm {alarm.name!r}: {alert}")
            continue
        # One remediation per workload: repeats of the same alarm collapse here; another
        # alarm on it joins the first one's remediation, and is said.
        first = found.setdefault(alert.fingerprint(identity(alert.cluster_id)), alert)
        if (first.source, first.metric) != (alert.source, alert.metric):
            skipped.append(
                f"{alarm.source} alarm {alarm.name!r} on {alert.service}: joined into the "
                f"remediation of {first.source} alarm {first.metric!r} (one remediation per "
                "workload)"
            )
    alerts = list(found.values())
    ids = [remediation_id(alert, identity(alert.cluster_id)) for alert in alerts]
    return TriageAlerts(alerts=alerts, ids=ids, skipped=skipped, window=window)
