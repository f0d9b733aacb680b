"""Workflow inputs, states and status views of watch tasks (carried across continue-as-new)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from ambient.domain.watches import (
    TaskKind,
    TaskState,
    ThresholdState,
    ThresholdWatchConfig,
    WebMonitorConfig,
)


class UrlState(BaseModel):
    hash: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    last_outcome: str | None = None
    last_error: str | None = None
    failures: int = 0
    failing: bool = False
    last_checked_at: datetime | None = None
    last_change_at: datetime | None = None


class WebMonitorState(BaseModel):
    checks: int = 0
    paused: bool = False
    urls: dict[str, UrlState] = Field(default_factory=dict)
    hits_total: int = 0
    changes_total: int = 0


class WebMonitorInput(BaseModel):
    user: str
    task: str
    config: WebMonitorConfig
    state: WebMonitorState | None = None


class ThresholdWatchState(BaseModel):
    checks: int = 0
    paused: bool = False
    rule: ThresholdState = Field(default_factory=ThresholdState)
    failures: int = 0
    failing: bool = False
    last_error: str | None = None
    last_value: float | None = None
    last_checked_at: datetime | None = None
    breaches_total: int = 0


class ThresholdWatchInput(BaseModel):
    user: str
    task: str
    config: ThresholdWatchConfig
    state: ThresholdWatchState | None = None


class TaskStatus(BaseModel):
    task_id: str
    kind: TaskKind
    user: str
    state: TaskState
    checks: int
    config: dict[str, object]
    detail: dict[str, object] = Field(default_factory=dict)
