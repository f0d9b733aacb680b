"""What a watch's check said, as a create's or a check now's answer shows it: its baseline
(the first check's outcome on each page, or the value read) and a threshold watch's reading."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ambient.storage import Database
from ambient.storage.repositories import EventRepository
from ambient.watches.configs import TaskKind
from ambient.watches.models import SiteWait, TaskRef, TaskStatus
from ambient.watches.threshold_config import Condition


def read_now(status: TaskStatus) -> dict[str, Any]:
    """What a threshold watch's check now read: its ``outcome`` (``breach``: the value is past
    the lines, as its conditions combine; ``within``; ``error``), the ``value``, the
    ``conditions``, whether the watch is ``breaching`` after it (a breach told, or held by
    the cooldown; ``for_checks`` may want more breaching checks) and the read's ``error``."""
    detail, lines = status.detail, status.config.get("conditions")
    conditions = [Condition.model_validate(c) for c in (lines if isinstance(lines, list) else [])]
    error, value = detail.get("last_error"), detail.get("last_value")
    if error is not None or not isinstance(value, float | int):
        outcome, value = "error", None
    else:
        combine = all if status.config.get("combine") == "all" else any
        outcome = "breach" if combine(c.breached(value) for c in conditions) else "within"
    return {
        "outcome": outcome,
        "value": value,
        "conditions": [c.model_dump(mode="json") for c in conditions],
        "breaching": detail.get("breaching"),
        "error": error,
    }


def created_ref(status: TaskStatus, *, created: bool) -> TaskRef:
    """A create's answer from the watch's status: its state now and its baseline (None: no
    check made yet)."""
    return TaskRef(
        task_id=status.task_id,
        kind=status.kind,
        state=status.state,
        created=created,
        baseline=baseline(status) if status.checks else None,
    )


def baseline(status: TaskStatus | None) -> dict[str, Any] | None:
    """What a watch's first check found, in a form a person can act on (None: not known)."""
    if status is None:
        return None
    if status.kind is TaskKind.WEB_MONITOR:
        urls = status.detail.get("urls", {})
        return {
            "urls": {
                url: {"outcome": seen.get("last_outcome"), "error": seen.get("last_error")}
                for url, seen in (urls.items() if isinstance(urls, dict) else [])
            }
        }
    return {"value": status.detail.get("last_value"), "error": status.detail.get("last_error")}


async def found_at_check(
    db: Database, user: str, status: TaskStatus, waits: list[SiteWait]
) -> dict[str, Any]:
    """What a watch's check now found: a threshold watch's reading (``read_now``), or a
    web monitor's outcome on each page it asked (those whose server asked us to wait were
    not): a change with keyword hits is a hit, with them (its event, stored before the
    check handed back)."""
    if status.kind is TaskKind.THRESHOLD_WATCH:
        return read_now(status)
    pages = (baseline(status) or {}).get("urls", {})
    found = {url: seen for url, seen in pages.items() if url not in {w.url for w in waits}}
    # A page this check changed: its event is the first change stored since the check
    # (the page's last_change_at), however many events the watch stored after it.
    urls = status.detail.get("urls")
    states = urls if isinstance(urls, dict) else {}
    since = {
        url: datetime.fromisoformat(str(changed_at))
        for url, seen in found.items()
        if seen["outcome"] == "changed"
        and (changed_at := states.get(url, {}).get("last_change_at"))
    }
    if since:
        async with db.session() as session:
            events = await EventRepository(session).page_changes(
                user=user, task=status.task_id, since=since
            )
        for url, event in events.items():
            if hits := event.payload.get("hits"):
                found[url] = {**found[url], "outcome": "hit", "hits": hits}
    return {"urls": found}
