"""A task list's page token: the walk's first moment, its phase and its place in it, and the
filters it lists (read back as written, or refused)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from temporalio.client import WorkflowExecution

from ambient.watches.inputs import InvalidTaskError

# A list is a snapshot at its first page's moment (T0), walked in three phases whose order no
# later change can move: runs running at T0 by start (newest first; one that ended since is
# listed at its place, not again behind the cursor), runs ended before T0 by end, schedules.
PHASES = ("running", "ended", "schedules")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
STALE = "page_token: not a token from a previous list; omit it to start again"
OTHER_LIST = (
    "page_token: from a list of another kind or state; ask with the same, or omit it to start again"
)


@dataclass(frozen=True)
class Cursor:
    """Where a walk is: its T0, its phase, the last run listed (start in µs, run id) in
    ``running``, and Temporal's own token in ``ended`` and ``schedules``; ``asked``, the
    filters its walk lists (a token of another list's walk skips or ends this one)."""

    t0: int
    phase: str = "running"
    start: int | None = None
    run: str | None = None
    token: bytes | None = None
    asked: str = ""

    def text(self) -> str:
        token = base64.b64encode(self.token).decode() if self.token else None
        raw = {"v": 3, "t0": self.t0, "p": self.phase, "s": self.start, "r": self.run}
        raw |= {"t": token, "a": self.asked}
        return base64.urlsafe_b64encode(json.dumps(raw).encode()).decode()

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """The cursor ``text`` names; one of an older release (no version) is refused alike."""
        try:
            data = json.loads(base64.urlsafe_b64decode(text.encode()))
            t0, phase, start, run, token, asked = (data[k] for k in ("t0", "p", "s", "r", "t", "a"))
            valid = (
                data["v"] == 3
                and isinstance(asked, str)
                and phase in PHASES
                and in_range(t0)
                and (start is None or in_range(start))
                and (run is None or (isinstance(run, str) and RUN_ID.fullmatch(run)))
                and (start is None) == (run is None)
            )
            if not valid:
                raise ValueError(text)
            return cls(t0, phase, start, run, base64.b64decode(token) if token else None, asked)
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise InvalidTaskError(STALE) from None

    def to(self, phase: str, token: bytes | None = None) -> Cursor:
        return Cursor(self.t0, phase, token=token, asked=self.asked)


RUN_ID = re.compile(r"[0-9a-f-]{1,64}")
# A cursor's moments (µs since 1970) lie between then and the last moment a datetime holds.
LAST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


def in_range(micros: object) -> bool:
    return type(micros) is int and 0 <= micros <= to_micros(LAST)


def to_micros(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def query_moment(micros: int) -> str:
    """A visibility query's time: microseconds, as visibility keeps them."""
    return f'"{(EPOCH + timedelta(microseconds=micros)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}"'


def run_place(execution: WorkflowExecution) -> tuple[int, str]:
    """A run's place in the ``running`` phase: visibility's order (newest start, then run id)."""
    return -to_micros(execution.start_time), execution.run_id
