"""What watch activities take and return (sandbox-safe models shared with workflows)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class CheckPageInput(BaseModel):
    task: str
    url: str
    selector: str | None = None
    ignore_patterns: list[str] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)
    # What the workflow last saw: conditional GET headers and the content hash.
    etag: str | None = None
    last_modified: str | None = None
    last_hash: str | None = None
    # Without a last hash, compare with the newest stored snapshot of (task, url): runs of a
    # scheduled digest are separate workflows and share nothing else.
    since_stored: bool = False


class PageCheck(BaseModel):
    url: str
    outcome: Literal["baseline", "not_modified", "unchanged", "changed", "error"]
    hash: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    hits: dict[str, list[str]] = Field(default_factory=dict)
    excerpt: str = ""
    error: str | None = None


class ReadMetricInput(BaseModel):
    source: dict[str, Any]


class MetricReading(BaseModel):
    value: float | None = None
    error: str | None = None
