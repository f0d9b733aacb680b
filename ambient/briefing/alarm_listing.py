"""Which of a day's alarms a briefing lists (prompt, report), and what it says of the rest."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from ambient.clients.tencent.alarms import AlarmRecord

LISTED = 50  # alarms listed at most; the counts are of them all


def still_open(alarms: list[AlarmRecord]) -> list[AlarmRecord]:
    """The alarms not recovered (Monitor's ALARM, 未恢复; CLS's status 0): an OK, resolved,
    expired (NO_CONF) or no-data (NO_DATA) one is not open, as the nightly triage reads them."""
    return [a for a in alarms if _open(a)]


def no_data(alarms: list[AlarmRecord]) -> list[AlarmRecord]:
    """The alarms whose metric had too little data to tell (Monitor's NO_DATA, 数据不足): not
    firing, not recovered either (a stopped instance, a broken reporter), said apart."""
    return [a for a in alarms if _no_data(a)]


def _open(alarm: AlarmRecord) -> bool:
    return alarm.status.lower() not in ("ok", "resolved", "no_conf", "no_data")


def _no_data(alarm: AlarmRecord) -> bool:
    return alarm.status.lower() == "no_data"


def since(alarm: AlarmRecord, zone: ZoneInfo, zh: bool) -> str:
    """ "（自 … 起）" for an alarm firing since before the day (``ongoing``), else nothing."""
    if not alarm.ongoing:
        return ""
    at = alarm.time.astimezone(zone)
    return f"（自 {at:%Y-%m-%d %H:%M} 起）" if zh else f" (since {at:%Y-%m-%d %H:%M})"


def listed(alarms: list[AlarmRecord]) -> list[AlarmRecord]:
    """The alarms a briefing lists: the open ones first, then those with no data, each newest
    first, at most LISTED."""
    return sorted(alarms, key=_rank, reverse=True)[:LISTED]  # sorted is stable, reversed too


def _rank(alarm: AlarmRecord) -> tuple[bool, bool]:
    return _open(alarm), _no_data(alarm)


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
