"""Per-tool metrics and per-server health states from recent outcomes."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import BaseModel

WINDOW = 20
DEGRADED_AT = 0.2
ERROR_AT = 0.5


class Health(StrEnum):
    ACTIVE = "active"
    DEGRADED = "degraded"
    ERROR = "error"


class ToolStats(BaseModel):
    server: str
    tool: str
    calls: int
    successes: int
    failures: int
    success_rate: float | None
    mean_latency_ms: float | None


@dataclass
class ToolMetrics:
    calls: int = 0
    successes: int = 0
    total_seconds: float = 0.0

    def record(self, ok: bool, seconds: float) -> None:
        self.calls += 1
        self.successes += int(ok)
        self.total_seconds += seconds

    def view(self, server: str, tool: str) -> ToolStats:
        return ToolStats(
            server=server,
            tool=tool,
            calls=self.calls,
            successes=self.successes,
            failures=self.calls - self.successes,
            success_rate=self.successes / self.calls if self.calls else None,
            mean_latency_ms=1000 * self.total_seconds / self.calls if self.calls else None,
        )


@dataclass
class ServerHealth:
    """Active below 20 % errors in the last 20 calls, degraded below 50 %, error above (or
    while the server cannot be reached); read when asked (`GET /agent/tools`)."""

    outcomes: deque[bool] = field(default_factory=lambda: deque(maxlen=WINDOW))
    unreachable: bool = False

    def record(self, ok: bool, *, unreachable: bool = False) -> None:
        self.outcomes.append(ok)
        self.unreachable = unreachable

    @property
    def state(self) -> Health:
        rate = 1 - sum(self.outcomes) / len(self.outcomes) if self.outcomes else 0.0
        if self.unreachable or rate >= ERROR_AT:
            return Health.ERROR
        if rate >= DEGRADED_AT:
            return Health.DEGRADED
        return Health.ACTIVE
