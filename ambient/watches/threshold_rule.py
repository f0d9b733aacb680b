"""The threshold rule: one check of a threshold watch, a breach once, a recovery once.

Pure and deterministic (no clock, no I/O): the workflow imports it through the sandbox.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field

from ambient.watches.threshold_config import Condition, ThresholdWatchConfig

# The values a watch keeps for its status.
HISTORY_SIZE = 100


class Breach(StrEnum):
    BREACH = "breach"
    RECOVERY = "recovery"


class ThresholdState(BaseModel):
    breaching: bool = False
    # A breach inside the cooldown is silent; so is its recovery.
    silent: bool = False
    consecutive: int = 0
    last_alert_at: datetime | None = None
    values: list[tuple[datetime, float]] = Field(default_factory=list)


class Transition(BaseModel):
    kind: Breach
    value: float
    conditions: list[Condition]


def evaluate(
    config: ThresholdWatchConfig,
    state: ThresholdState,
    value: float,
    now: datetime,
) -> tuple[ThresholdState, Transition | None]:
    """One check of a threshold watch: a breach once, a recovery once, never repeats.

    A silent breach (inside the cooldown) still over the line once the cooldown has passed
    is told then."""
    state = state.model_copy(deep=True)
    state.values = [*state.values, (now, value)][-HISTORY_SIZE:]
    met = [c for c in config.conditions if c.breached(value)]
    combine = all if config.combine == "all" else any
    breaching_now = combine(c.breached(value) for c in config.conditions)
    cooldown = timedelta(minutes=config.cooldown_minutes)
    if not state.breaching:
        state.consecutive = state.consecutive + 1 if breaching_now else 0
        if state.consecutive < config.for_checks:
            return state, None
        if state.last_alert_at is not None and now - state.last_alert_at < cooldown:
            state.breaching, state.silent = True, True
            return state, None
        state.breaching, state.silent, state.last_alert_at = True, False, now
        return state, Transition(kind=Breach.BREACH, value=value, conditions=met)
    # Recovery needs the value back past the line by the hysteresis margin.
    if combine(c.breached(value, -config.hysteresis) for c in config.conditions):
        last = state.last_alert_at
        if state.silent and breaching_now and last and now - last >= cooldown:
            # The cooldown holds a second alert back; one still true when it ends is told.
            state.silent, state.last_alert_at = False, now
            return state, Transition(kind=Breach.BREACH, value=value, conditions=met)
        return state, None
    silent = state.silent
    state.breaching, state.silent, state.consecutive = False, False, 0
    if silent:
        return state, None
    return state, Transition(kind=Breach.RECOVERY, value=value, conditions=config.conditions)


# A breach and its end told by a threshold watch, alternately, once each per life of the watch
# (its end: a recovery, or its source replaced: "no longer watched").
TOLD_ALERTS = ("watch.breach", "watch.recovery", "watch.breach_unwatched")
# What a breach or recovery the life told last is recorded as instead, told to nobody.
ALREADY_TOLD = "watch.already_told"


def told_already(kind: str, last: str | None) -> bool:
    """Whether the alert ``kind`` (``watch.breach`` or ``watch.recovery``) is the one its
    watch's life told last (``last``): a run reset to its first workflow task starts its rule
    again while the life, and what it told, go on; its first breach of a metric still over the
    line is the breach told before the reset."""
    return kind in TOLD_ALERTS[:2] and kind == last


# A check in an alert's key: its number, and since 2026-12-06 its run ("12@<run id>").
_CHECK = re.compile(r"\d+(?:@[\w-]+)?")


def alert_life(key: str) -> str | None:
    """The ``{task}/{life}/`` a threshold watch's alert key (``{task}/{life}/{check}/{what}``)
    begins with: the keys of everything that life told. None: not such a key."""
    parts = key.rsplit("/", 3)
    if len(parts) != 4 or not _CHECK.fullmatch(parts[2]):
        return None
    return f"{parts[0]}/{parts[1]}/"
