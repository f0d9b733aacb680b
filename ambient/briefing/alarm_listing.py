"""Which of a day's alarms a briefing lists (prompt, report), and what it says of the rest."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from ambient.clients.tencent.alarms import AlarmRecord

LISTED = 50  # alarms listed at most; the counts are of them all


def still_open(alarms: list[AlarmRecord]) -> list[AlarmRecord]:
    """The alarms not recovered: an OK, resolved or expired (NO_CONF) one is not open."""
    return [a for a in alarms if _open(a)]


def _open(alarm: AlarmRecord) -> bool:
    return alarm.status.lower() not in ("ok", "resolved", "no_conf")


def since(alarm: AlarmRecord, zone: ZoneInfo, zh: bool) -> str:
    """ "（自 … 起）" for an alarm firing since before the day (``ongoing``), else nothing."""
    if not alarm.ongoing:
        return ""
    at = alarm.time.astimezone(zone)
    return f"（自 {at:%Y-%m-%d %H:%M} 起）" if zh else f" (since {at:%Y-%m-%d %H:%M})"


def listed(alarms: list[AlarmRecord]) -> list[AlarmRecord]:
    """The alarms a briefing lists: the open ones first, each newest first, at most LISTED."""
    return sorted(alarms, key=_open, reverse=True)[:LISTED]  # sorted is stable, reversed too


def left_out(alarms: list[AlarmRecord], zh: bool) -> str | None:
    """What ``listed`` leaves out, said (None: nothing), so the rows are not read as the day."""
    more = len(alarms) - len(listed(alarms))
    if not more:
        return None
    if zh:
        return f"另有 {more} 条告警未列出"
    if more == 1:
        return "1 more alarm not listed"
    return f"{more} more alarms not listed"
