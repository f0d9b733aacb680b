"""What watch activities take and return (sandbox-safe models shared with workflows)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class CheckPageInput(BaseModel):
    """A news page of a digest, compared with the newest text stored for (task, url): the
    runs of a scheduled digest are separate workflows and share nothing else."""

    task: str
    url: str
    keywords: list[str] = Field(default_factory=list)
    # A daily briefing's date: every check of one round (its first preparation, a regenerate,
    # a retry) compares with the page as the last earlier round stored it, not as the
    # round's own earlier check did (`poll_store.advance_round`).
    round: str | None = None


class PageCheck(BaseModel):
    url: str
    outcome: Literal["baseline", "unchanged", "changed", "error"]
    hash: str | None = None
    hits: dict[str, list[str]] = Field(default_factory=dict)
    excerpt: str = ""
    # New lines past the excerpt's ("+" lines it has no room for): a digest says how many.
    more_added: int = 0
    error: str | None = None


# The notices a page's diff writes among its lines (``diff_pages``: a keyword's hits past
# those shown, an excerpt's changed lines past its own, lines that only moved), stored in
# English with the check, and how a Chinese reader reads them.
MORE_HITS = "… {} more lines"
MORE_CHANGED = "… {} more changed lines"
ONLY_MOVED = "(the same lines as before, in another order)"
_NOTICES = {
    re.compile(r"… (\d+) more lines"): "……另有 {} 行",
    re.compile(r"… (\d+) more changed lines"): "……另有 {} 行有变化",
    re.compile(re.escape(ONLY_MOVED)): "（与之前相同的行，只是顺序变了）",
}


def notice_said(line: str, zh: bool) -> str:
    """A line of a page's hits or excerpt in the reader's language: a notice of the diff's in
    Chinese for a Chinese reader; the page's own words as written."""
    for notice, chinese in _NOTICES.items() if zh else ():
        if found := notice.fullmatch(line):
            return chinese.format(*found.groups())
    return line


def more_new_lines(count: int, zh: bool) -> str:
    """A page's new lines past those told, said (a news digest's, a briefing's news)."""
    if zh:
        return f"……另有 {count} 行新内容"
    return f"… and {count} more new {'line' if count == 1 else 'lines'}"


class ReadMetricInput(BaseModel):
    source: dict[str, Any]
    # A failure a retry may mend (no answer, a 5xx or 429, a busy API) fails the activity
    # instead of being a reading, so the caller's retry policy reads again.
    retry_failures: bool = False
    # Whose source it is: a secret it names is checked against their rights at each read
    # (None: read as no one's, an activity an older run scheduled). A remediation's joined
    # alert: the run's user, and its ``sender`` must be able to use it too (neither's secret
    # read into the other's run).
    owner: str | None = None
    sender: str | None = None
    # Reads its caller made before this activity (a remediation's one try in its workflow
    # task): counted in the failure's "N reads failed".
    tried: int = 0


class MetricReading(BaseModel):
    value: float | None = None
    error: str | None = None
    # The time of the datapoint read, where the source says it (Cloud Monitor).
    at: datetime | None = None
