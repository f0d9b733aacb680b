"""Remediation outcome analytics: success rate by rung, service and alert type."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from statistics import median

from pydantic import BaseModel, Field

from ambient.remediation.runs import FINAL_STATES


class RunOutcome(BaseModel):
    state: str
    service: str
    alert_type: str
    tried: list[int] = Field(default_factory=list)
    resolved_rung: int | None = None
    budget_exhausted: bool = False
    started_at: datetime
    finished_at: datetime | None = None
    # Run as a dry run (asked, or lowered to one by its permission): it changed nothing.
    dry_run: bool = False


class RateRow(BaseModel):
    key: str
    runs: int
    resolved: int
    rate: float


class RemediationStats(BaseModel):
    total: int
    # Finished dry runs: they changed nothing, so no figure below counts them.
    dry_runs: int = 0
    finished: int
    resolved: int
    success_rate: float
    by_rung: list[RateRow]
    by_service: list[RateRow]
    by_alert_type: list[RateRow]
    median_seconds_to_resolve: float | None
    mean_seconds_to_resolve: float | None
    budgets_exhausted: int
    budget_exhausted_rate: float
    states: dict[str, int]


def _rate(runs: int, resolved: int) -> float:
    return round(resolved / runs, 4) if runs else 0.0


def _row(key: str, runs: int, resolved: int) -> RateRow:
    return RateRow(key=key, runs=runs, resolved=resolved, rate=_rate(runs, resolved))


def _rows(outcomes: list[RunOutcome], key: Callable[[RunOutcome], str]) -> list[RateRow]:
    runs = Counter(key(o) for o in outcomes)
    resolved = Counter(key(o) for o in outcomes if o.state == "resolved")
    return [_row(name, runs[name], resolved[name]) for name in sorted(runs)]


def remediation_stats(outcomes: list[RunOutcome]) -> RemediationStats:
    """Success rate by rung (of runs that tried it, how many it resolved), service, alert type,
    of the runs that changed the cluster: a dry run's "resolved" is the alert clearing alone."""
    ended = [o for o in outcomes if o.state in FINAL_STATES]
    finished = [o for o in ended if not o.dry_run]
    resolved = [o for o in finished if o.state == "resolved"]
    tried = Counter(rung for o in finished for rung in set(o.tried))
    resolved_by = Counter(o.resolved_rung for o in finished if o.resolved_rung in o.tried)
    by_rung = [_row(str(r), tried[r], resolved_by[r]) for r in range(1, 7) if tried[r]]
    durations = sorted(
        (o.finished_at - o.started_at).total_seconds() for o in resolved if o.finished_at
    )
    exhausted = sum(1 for o in finished if o.budget_exhausted)
    return RemediationStats(
        total=len(outcomes),
        dry_runs=len(ended) - len(finished),
        finished=len(finished),
        resolved=len(resolved),
        success_rate=_rate(len(finished), len(resolved)),
        by_rung=by_rung,
        by_service=_rows(finished, lambda o: o.service),
        by_alert_type=_rows(finished, lambda o: o.alert_type),
        median_seconds_to_resolve=median(durations) if durations else None,
        mean_seconds_to_resolve=sum(durations) / len(durations) if durations else None,
        budgets_exhausted=exhausted,
        budget_exhausted_rate=_rate(len(finished), exhausted),
        states=Counter(o.state for o in outcomes),
    )
