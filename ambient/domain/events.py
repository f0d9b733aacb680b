"""Events: every outcome worth seeing, appended by workflows and read by people."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


def clipped(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, a cut one ending in "…"."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class RecordEventInput(BaseModel):
    kind: str = Field(description="e.g. watch.change, watch.breach, briefing.spoken")
    user: str | None = None
    task: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    # Workflow id + step: a retried activity records the event once.
    idempotency_key: str | None = None
