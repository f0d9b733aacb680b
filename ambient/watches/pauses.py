"""What a check now says of pages whose server asked us to wait (pure).

A page that answered 429 or 503 with Retry-After is not asked again before its
``not_before`` (activities/poll_session.py): asking anyway would get another 429, count as a
failure and lengthen the pause, and the pause keeps the worker's address welcome for every
watch of that host. A check now during the pause is not made; these say so, and when.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ambient.refusals import N_, Refusal
from ambient.watches.models import SiteWait, TaskStatus

# One page's wait, said at every door (the pages look it up in their catalog).
WAIT_SAID = N_(
    "%(site)s asked us to wait, so it was not checked now: checked again after %(time)s (%(zone)s)"
)


def site_waits(status: TaskStatus, now: datetime) -> list[SiteWait]:
    """The pages of a web monitor's ``status`` whose server's pause has not ended at ``now``."""
    urls = status.detail.get("urls")
    waits: list[SiteWait] = []
    for url, seen in urls.items() if isinstance(urls, dict) else []:
        until = seen.get("not_before") if isinstance(seen, dict) else None
        if until is None:
            continue
        at = datetime.fromisoformat(until) if isinstance(until, str) else until
        if isinstance(at, datetime) and at.astimezone(UTC) > now:
            waits.append(SiteWait(url=url, site=urlsplit(url).hostname or url, until=at))
    return waits


def asked_since(status: TaskStatus, url: str, since: datetime) -> bool:
    """Whether a web monitor's check asked ``url`` at ``since`` or later (its last check's time,
    the worker's clock; one behind the caller's reads as not asked)."""
    urls = status.detail.get("urls")
    seen = urls.get(url) if isinstance(urls, dict) else None
    at = seen.get("last_checked_at") if isinstance(seen, dict) else None
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    return isinstance(at, datetime) and at.astimezone(UTC) >= since


def wait_said(wait: SiteWait, zone: str | None) -> Refusal:
    """One page's wait as a sentence: its time in the reader's zone (UTC without one)."""
    name = zone or "UTC"
    try:
        local = wait.until.astimezone(ZoneInfo(name))
    except (ZoneInfoNotFoundError, ValueError):
        name, local = "UTC", wait.until.astimezone(UTC)
    return Refusal(WAIT_SAID, site=wait.site, time=f"{local:%H:%M}", zone=name)


def waits_note(waits: list[SiteWait], zone: str | None) -> str | None:
    """Every page's wait in one line (English), or None when there is none."""
    return "; ".join(str(wait_said(wait, zone)) for wait in waits) or None
