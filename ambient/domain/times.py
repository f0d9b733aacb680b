"""Times as the doors take them: an ISO 8601 time, with its offset or without one (then the
reader's wall time, placed in their zone where it is read).

pydantic's lax datetime reads a number, or a text of digits, as seconds (or milliseconds)
since 1970: ``since: 12`` became 00:00:12 UTC on 1 January 1970 and filtered nothing out. The
published schema says a date-time string, so a number, true or any other text is refused here,
naming the forms taken (the 422 and the tool error name the field).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BeforeValidator

from ambient.refusals import N_, Refusal

ISO_TIME = N_(
    "must be an ISO 8601 time, with its offset (e.g. 2026-11-21T08:00:00+08:00) or without "
    "one, in your time zone (e.g. 2026-11-21T08:00)"
)

# A time on the first or last day of datetime's years leaves them once it is placed in a zone or
# read in UTC: an OverflowError deep in a read, said as no more than "Error executing tool".
IN_YEARS = N_("must be a time from 0001-01-02 to 9999-12-30")
EARLIEST, LATEST = datetime(1, 1, 2), datetime(9999, 12, 31)


def within_years(time: datetime) -> datetime:
    """``time``, if it is from EARLIEST up to (not on) LATEST, whatever its offset; else refused."""
    if not EARLIEST <= time.replace(tzinfo=None) < LATEST:
        raise Refusal(IN_YEARS)
    return time


def iso_time(value: Any) -> datetime | str:
    """``value`` as a time if it is one or an ISO 8601 text of one; else refused."""
    if isinstance(value, datetime):
        return within_years(value)
    if isinstance(value, str) and not value.strip().isdigit():  # "20261121" is no epoch
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            within_years(parsed)
            return value  # read by pydantic, whose offset says itself "+08:00", not "UTC+08:00"
    raise Refusal(ISO_TIME)


IsoTime = Annotated[datetime, BeforeValidator(iso_time)]
