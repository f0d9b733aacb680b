"""Safety checks before a change: permission, change window, rate limit, breaker, blast radius."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from datetime import datetime, time, timedelta
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from ambient.refusals import N_, Refusal, Said, read_back
from ambient.remediation.ladder import Mode

# --- permission -----------------------------------------------------------------------

PERMISSION_ORDER = {"none": 0, "dry_run": 1, "execute": 2}

# A run waiting for its change window: the page shows when it opens beside it, in the reader's
# zone, and says only WAITING_FOR_WINDOW (api/routers/ops_pages.py).
OUTSIDE_WINDOWS = N_("outside change windows; next opens %(opens)s")
# The breaker's reason, a skipped attempt's (a page reads it back to say it in its language).
BREAKER_OPEN = N_(
    "breaker open: this rung failed %(failures)s times in a row on this service; "
    "closes in %(after)s"
)
# A cluster cooldown's reason, its lengths as ``a_while`` says them.
COOLDOWN = N_("cluster cooldown: last change %(since)s ago (< %(cooldown)s)")
# The wording before this release, said in the page's language for the runs of the release
# before (they replay, their reasons stored): the breaker's read back, the cooldown's a Said.
BREAKER_OPEN_BEFORE = N_(
    "breaker open: this rung failed %(failures)s times in a row on this service; "
    "closes in %(seconds)ss"
)
COOLDOWN_BEFORE = N_("cluster cooldown: last change %(since)ss ago (< %(cooldown)ss)")
# A length as people say it (``a_while``), and as a stored reason is read back.
SECONDS, MINUTES, HOURS, HOURS_MINUTES = LENGTHS = (
    N_("%(seconds)s s"),
    N_("%(minutes)s min"),
    N_("%(hours)s h"),
    N_("%(hours)s h %(minutes)s min"),
)
WAITING_FOR_WINDOW = N_("outside change windows")


# Why a user whose rollback_permission is none is refused, and its Chinese for a push from
# workflow code (which reads no catalog; the pages say it by api/locale's catalog).
NONE_GRANTED = "rollback_permission is 'none': an admin must grant dry_run or execute"
REASONS_ZH = {NONE_GRANTED: "rollback_permission 为 'none'：需要管理员授予 dry_run 或 execute"}


class PermissionDecision(BaseModel):
    mode: Mode | None
    reason: str


def effective_mode(asked: Mode, permission: str, executor: str) -> PermissionDecision:
    """The lower of what is asked, the user's rollback_permission and the global executor."""
    if permission not in PERMISSION_ORDER:
        return PermissionDecision(mode=None, reason=f"unknown rollback_permission {permission!r}")
    if permission == "none":
        return PermissionDecision(mode=None, reason=NONE_GRANTED)
    mode: Mode = "execute" if asked == "execute" and permission == "execute" else "dry_run"
    reasons = [f"asked {asked}, rollback_permission {permission}"]
    if mode == "execute" and executor == "dry_run":
        mode = "dry_run"
        reasons.append("AMBIENT_REMEDIATION_EXECUTOR is dry_run (changes are off globally)")
    return PermissionDecision(mode=mode, reason="; ".join(reasons) + f" → {mode}")


def may_approve(permission: str, mode: Mode) -> bool:
    """An approver needs at least the permission the step runs with."""
    return PERMISSION_ORDER.get(permission, 0) >= PERMISSION_ORDER[mode]


# The approvers policy (AMBIENT_REMEDIATION_APPROVERS): cluster glob → the users it names.
Approvers = Mapping[str, list[str]]


def named_anywhere(user: str, approvers: Approvers) -> bool:
    """Whether the policy names ``user`` an approver on any cluster."""
    return any(user in names for names in approvers.values())


def named_approver(user: str, cluster_id: str, approvers: Approvers) -> bool:
    """Whether the policy names ``user`` an approver of remediations on ``cluster_id`` (globs)."""
    return any(
        user in names
        for pattern, names in approvers.items()
        if fnmatch.fnmatchcase(cluster_id, pattern)
    )


def may_steer(
    user: str, is_admin: bool, cluster_id: str, approvers: Approvers, owner: str | None = None
) -> bool:
    """Who may see and steer (approve, refuse, abort) a run: its owner, an admin, an approver."""
    # ``owner`` None: whether ``user`` may steer another's run on the cluster. Not who sent
    # the same alert again (joined_by): an alert's fields are no secret, so sending it proves
    # nothing about whose cluster it is.
    return user == owner or is_admin or named_approver(user, cluster_id, approvers)


# --- safety decisions -----------------------------------------------------------------


GateName = Literal["change_window", "rate_limit", "breaker"]


class Gate(BaseModel):
    """The answer of one safety check before a change (``gate``: which one closed, if any)."""

    allowed: bool
    reason: str
    gate: GateName | None = None
    # When not allowed: wait this long and ask again (None: do not wait, skip or hand over).
    retry_after_seconds: float | None = None
    # The reason a page says in its reader's language (a wait's; ``reason`` is its English).
    said: Said | None = None


def _closed(reason: Refusal, retry_after_seconds: float | None = None) -> Gate:
    return Gate(
        allowed=False,
        reason=str(reason),
        retry_after_seconds=retry_after_seconds,
        said=Said.of(reason),
    )


class ChangeWindow(BaseModel):
    """Local times when changes may run; ``days`` are ISO weekdays (1 = Monday)."""

    days: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5, 6, 7])
    start: str = Field(default="00:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    end: str = Field(default="24:00", pattern=r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$")

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[int]) -> list[int]:
        if not value or any(day < 1 or day > 7 for day in value):
            raise ValueError("days are ISO weekdays 1 (Monday) to 7 (Sunday)")
        return value

    def _bounds(self, day: datetime) -> tuple[datetime, datetime]:
        start = datetime.combine(day.date(), time.fromisoformat(self.start), tzinfo=day.tzinfo)
        # 24:00 is the midnight that ends the day: as 00:00 it crosses midnight below.
        until = time() if self.end == "24:00" else time.fromisoformat(self.end)
        end = datetime.combine(day.date(), until, tzinfo=day.tzinfo)
        if end <= start:  # crosses midnight
            end += timedelta(days=1)
        return start, end


def change_window_gate(local_now: datetime, windows: list[ChangeWindow]) -> Gate:
    """Inside a window (or no windows configured) → allowed; else wait for the next opening."""
    if not windows:
        return Gate(allowed=True, reason="no change windows configured")
    openings: list[datetime] = []
    for offset in (-1, 0, 1, 2, 3, 4, 5, 6, 7):
        day = local_now + timedelta(days=offset)
        for window in windows:
            if day.isoweekday() not in window.days:
                continue
            start, end = window._bounds(day)
            if start <= local_now < end:
                return Gate(
                    allowed=True, reason=f"inside change window {window.start}-{window.end}"
                )
            if start > local_now:
                openings.append(start)
    if not openings:
        return _closed(Refusal("no change window opens within a week"))
    opens = min(openings)
    return _closed(
        Refusal(OUTSIDE_WINDOWS, opens=opens.isoformat()),
        # In real seconds (a durable timer sleeps them): two times of one zone subtract as wall
        # clocks, an hour off across a clock change.
        opens.timestamp() - local_now.timestamp(),
    )


def a_while(length: timedelta, passed: bool = False) -> Refusal:
    """``length`` as people say it: 45 s, 30 min, 2 h, 1 h 30 min (not 0:30:00); ``passed``:
    the whole units gone by, not the nearest (a time since said under its limit: 4 min 50 s is
    "4 min ago (< 5 min)", not "5 min ago (< 5 min)")."""
    seconds = int(length.total_seconds()) if passed else round(length.total_seconds())
    if seconds < 60:
        return Refusal(SECONDS, seconds=seconds)
    hours, minutes = divmod(seconds // 60 if passed else round(seconds / 60), 60)
    if not hours:
        return Refusal(MINUTES, minutes=minutes)
    if not minutes:
        return Refusal(HOURS, hours=hours)
    return Refusal(HOURS_MINUTES, hours=hours, minutes=minutes)


def skipped_said(reason: str) -> str | Refusal:
    """A skipped attempt's reason as a page says it: the breaker's as its Refusal (its wait
    too), any other (the executor's) as written."""
    # The old wording first: the new one's wait (any words) would read "3000s" as a length.
    said = read_back(reason, (BREAKER_OPEN_BEFORE, BREAKER_OPEN))
    if said is None or said.msgid == BREAKER_OPEN_BEFORE:
        return said or reason
    after = said.values["after"]
    return Refusal(BREAKER_OPEN, **{**said.values, "after": read_back(after, LENGTHS) or after})


def rate_limit_gate(
    recent: list[datetime],
    now: datetime,
    per_hour: int,
    cooldown_seconds: float,
    changes: int | None = None,
) -> Gate:
    """Per-cluster limit: at most ``per_hour`` changes an hour, ``cooldown`` between two.
    ``changes``: how many there were in the hour, ``recent`` holding at least the newest
    ``per_hour`` of them (default: ``recent`` holds them all)."""
    hour_ago = now - timedelta(hours=1)
    in_hour = sorted(at for at in recent if at > hour_ago)
    changes = len(in_hour) if changes is None else changes
    if in_hour and cooldown_seconds > 0:
        since = (now - in_hour[-1]).total_seconds()
        if since < cooldown_seconds:
            return _closed(
                Refusal(
                    COOLDOWN,
                    since=a_while(timedelta(seconds=since), passed=True),
                    cooldown=a_while(timedelta(seconds=cooldown_seconds)),
                ),
                cooldown_seconds - since,
            )
    if per_hour > 0 and changes >= per_hour:
        frees = in_hour[len(in_hour) - per_hour] + timedelta(hours=1)
        return _closed(
            Refusal(
                "cluster rate limit: %(changes)s changes in the last hour (max %(max)s)",
                changes=changes,
                max=per_hour,
            ),
            max(1.0, (frees - now).total_seconds()),
        )
    return Gate(allowed=True, reason=f"{changes} changes on this cluster in the last hour")


class BreakerState(BaseModel):
    """Consecutive failures of one rung on one service."""

    failures: int = 0
    opened_at: datetime | None = None


def breaker_gate(state: BreakerState, now: datetime, threshold: int, open_seconds: float) -> Gate:
    """Open after ``threshold`` failures in a row, for ``open_seconds``; then half-open."""
    if threshold <= 0 or state.opened_at is None:
        return Gate(allowed=True, reason=f"breaker closed ({state.failures} recent failures)")
    open_for = (now - state.opened_at).total_seconds()
    if open_for >= open_seconds:
        return Gate(allowed=True, reason="breaker half-open: one trial allowed")
    left = timedelta(seconds=open_seconds - open_for)
    return _closed(Refusal(BREAKER_OPEN, failures=state.failures, after=a_while(left)))


def breaker_after(
    state: BreakerState, resolved: bool, now: datetime, threshold: int
) -> BreakerState:
    """The breaker after an outcome: success closes it, the threshold-th failure opens it."""
    if resolved:
        return BreakerState()
    failures = state.failures + 1
    opened = now if threshold > 0 and failures >= threshold else None
    return BreakerState(failures=failures, opened_at=opened)


def scale_target(current: int | None, max_replicas: int, max_step: int) -> int:
    """Scale out by doubling, at most ``max_step`` more pods and never past ``max_replicas``.
    ``current`` None (not read): from 1. A Deployment at 0 is left alone by the step's plan."""
    base = max(1, current or 1)
    wanted = min(base * 2, base + max(1, max_step))
    return max(base, min(wanted, max_replicas))
