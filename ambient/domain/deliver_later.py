"""Deliver later: a notification whose receiver said "try again later" (an SMTP 4xx such as
greylisting, HTTP 429 or 503, a robot's rate limit) is handed to ``DeliverLaterWorkflow`` and
retried by Temporal after the delay the receiver asked for, until delivered or given up
(docs/notifications.md, "Deliver later"). Here: the delays an answer states, and the
workflow's input and id.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from pydantic import BaseModel, Field

from ambient.domain.notify import NOTIFY_TIMEOUT, NotifyRequest
from ambient.domain.workflow_input import WorkflowInput

DELIVER_LATER_TYPE = "DeliverLaterWorkflow"
# A deliver-later run's AmbientKind (with AmbientUser, its user's): an operator finds a user's
# waiting deliveries in the Web UI by them. No task kind: task lists never take it for a task.
DELIVER_LATER_KIND = "deliver_later"
# Tries whose receiver stated no delay back off from AMBIENT_NOTIFY_LATER_SECONDS, doubling,
# to at most this: a greylisting server's delay is commonly 1–5 minutes, seldom over 15.
LATER_MAX_WAIT = timedelta(minutes=15)
# The longest delay an answer is taken to ask (ten years): far past any give-up (a week at
# most), so one asking longer asks past the give-up all the same, and its seconds are always
# a timedelta (Temporal's next retry delay: 10^20 s overflowed it).
LONGEST_ASKED = 10 * 365 * 86400.0


class LaterDelivery(WorkflowInput):
    """DeliverLaterWorkflow's input: the notification, and its waits as the worker's settings
    and the receiver's answer give them (seconds)."""

    request: NotifyRequest
    wait: float  # before the first try: the delay the receiver asked for, else ``backoff``
    backoff: float  # after a try whose receiver stated no delay; doubling to LATER_MAX_WAIT
    give_up_after: float  # from the hand-over: no try starts after it


class LaterOutcome(BaseModel):
    """How a delivery handed over ended: each delivery's failure for good, if any
    (``channel: error``, the receiver's last answer), and whether it was given up."""

    gave_up: bool = False
    failures: list[str] = Field(default_factory=list)


def retries_ended_before(now: datetime) -> datetime:
    """The give-ups before which a deferred delivery's retries are over at ``now``: its
    deliver-later run's last try started by its give-up and ended within one try's time. A
    run terminated (the Web UI) runs no code that could say so: its rows read ended from then,
    with no sweep and no question to Temporal."""
    return now - NOTIFY_TIMEOUT


def later_workflow_id(user: str, key: str) -> str:
    """The deliver-later run of ``user``'s notification ``key`` (its idempotency key): one at a
    time, so a second hand-over of it finds the first."""
    return f"deliver-later/{user}/{key}"


def retry_after_seconds(value: str, now: datetime) -> float | None:
    """An HTTP ``Retry-After`` (RFC 9110 10.2.3) as seconds from ``now``: delay-seconds or an
    HTTP-date (one already past: 0), at most LONGEST_ASKED; None if it is neither."""
    value = value.strip()
    if value.isascii() and value.isdigit():  # not '²', a digit to isdigit() alone
        return min(float(value), LONGEST_ASKED)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, said without a zone
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - now).total_seconds()), LONGEST_ASKED)


_UNIT = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}
# "try again in 300 s", "Greylisted for 5 minutes", "retry after 60s", "please wait 2 min"
_ASKED = re.compile(
    r"\b(?:in|after|for|wait)\s+(\d{1,6})\s*(s|secs?|seconds?|m|mins?|minutes?|h|hours?)\b",
    re.IGNORECASE,
)
# milter-greylist: "Greylisting in action, please come back in 00:05:00"
_CLOCK = re.compile(r"\b(?:in|after|for)\s+(\d{1,2}):([0-5]\d):([0-5]\d)\b", re.IGNORECASE)


def smtp_asked_delay(reply: str) -> float | None:
    """The delay an SMTP "try again later" reply states, in seconds; None if it states none
    (postgrey's "Greylisted, see http://...", "Please try again later")."""
    if (clock := _CLOCK.search(reply)) is not None:
        hours, minutes, seconds = (int(part) for part in clock.groups())
        return float(hours * 3600 + minutes * 60 + seconds)
    if (asked := _ASKED.search(reply)) is not None:
        count, unit = asked.groups()
        unit = unit.lower().rstrip("s") or "s"  # "s" itself, and plurals ("mins", "hours")
        return min(float(int(count) * _UNIT[unit]), LONGEST_ASKED)
    return None
