"""The threshold rule: one check of a threshold watch, a breach once, a recovery once.

Pure and deterministic (no clock, no I/O): the workflow imports it through the sandbox.
"""

from __future__ import annotations

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
