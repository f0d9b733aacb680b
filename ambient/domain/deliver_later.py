"""Deliver later: a receiver that says "try again later" (an SMTP 4xx such as greylisting,
HTTP 429 or 503, a robot's rate limit) is tried again after the delay it asked for. Here: the
delays an answer states.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def retry_after_seconds(value: str, now: datetime) -> float | None:
    """An HTTP ``Retry-After`` (RFC 9110 10.2.3) as seconds from ``now``: delay-seconds or an
    HTTP-date (one already past: 0); None if it is neither."""
    value = value.strip()
    if value.isascii() and value.isdigit():  # not '²', a digit to isdigit() alone
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, said without a zone
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


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
        return float(int(count) * _UNIT[unit])
    return None
