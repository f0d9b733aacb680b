"""The morning triage's input: yesterday's unresolved Monitor and CLS alarms as alerts.

Read through the Tencent Cloud client; one alert per workload (its fingerprint: one ladder per
workload). Repeats of one alarm collapse; another alarm on a workload already found, and what
names no TKE workload, are said in skipped, not dropped silently.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from ambient.clients.tencent import ops
from ambient.clients.tencent.client import TencentCloud
from ambient.remediation.alerts import Alert, alert_from_alarm
from ambient.remediation.runs import TriageAlerts

# AlarmStatus "ALARM": not recovered (CLS records' Status 0 reads the same, ops.list_alarms).
UNRESOLVED = {"ALARM"}


async def unresolved_alarms(
    tencent: TencentCloud | None, zone: ZoneInfo, now: datetime, days: int
) -> TriageAlerts:
    """The alarms of the ``days`` whole days before today (in ``zone``) not yet recovered."""
    today = now.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    start, end = today - timedelta(days=days), today
    window = f"{start.isoformat()} – {end.isoformat()}"
    if tencent is None or not tencent.configured:
        return TriageAlerts(
            window=window, skipped=["Tencent Cloud is not configured: no alarm history"]
        )
    history = await ops.list_alarms(tencent, start, end)
    found: dict[str, Alert] = {}
    # A source refused while the other answered: its alarms are not here, and the night says so.
    skipped = [str(unread) for unread in history.unread]
    for alarm in history.alarms:
        if alarm.status.upper() not in UNRESOLVED:
            continue
        alert = alert_from_alarm(
            alarm.source,
            alarm.name,
            alarm.target,
            alarm.detail,
            alarm.level,
            alarm.region,
            alarm.dimensions,
        )
        if alert is None:
            skipped.append(f"{alarm.source} alarm {alarm.name!r}: names no TKE workload")
            continue
        # One remediation per workload: repeats of the same alarm collapse here; another
        # alarm on it joins the first one's remediation, and is said.
        first = found.setdefault(alert.fingerprint(), alert)
        if (first.source, first.metric) != (alert.source, alert.metric):
            skipped.append(
                f"{alarm.source} alarm {alarm.name!r} on {alert.service}: joined into the "
                f"remediation of {first.source} alarm {first.metric!r} (one remediation per "
                "workload)"
            )
    return TriageAlerts(alerts=list(found.values()), skipped=skipped, window=window)
