"""What a web monitor's poll takes and returns (sandbox-safe models shared with workflows).

A poll is one long-running activity that checks a watch's pages on a fixed-rate grid and
hands back to the workflow only when there is something the workflow must act on, or after
a bounded time: the changes, hits, failures and recoveries it reported (each already
recorded as an event and notified, once, by its sequence number within the watch's life)
travel in its result, so they are in the workflow's history.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from ambient.domain.checks import notice_said
from ambient.domain.notify import REASON, Message, NotificationKind, Target, Wording
from ambient.render import markdown_lines, markdown_literal
from ambient.watches.configs import WebMonitorConfig
from ambient.watches.models import Failure, UrlState

# The web monitor's workflow type (workflows/web_monitor.py is defined with it): what the
# visibility queries for its runs name.
WEB_MONITOR_TYPE = "WebMonitorWorkflow"


class PollEnd(StrEnum):
    """Why a poll handed back to the workflow."""

    WINDOW = "window"  # its bounded time passed
    FIRST = "first"  # it was asked for one check (the baseline or a trigger)
    FAILURE = "failure"  # a page started failing or recovered: the workflow shows it now
    FULL = "full"  # it holds as many events as one result may carry
    CONTROL = "control"  # pause, update, trigger or stop asked it to hand back
    SHUTDOWN = "shutdown"  # its worker is stopping
    CLOSED = "closed"  # its workflow run closed under it (terminated): nobody takes the result


class PollRequest(BaseModel):
    user: str
    task: str
    workflow_id: str
    life: str
    config: WebMonitorConfig
    targets: list[Target]
    urls: dict[str, UrlState] = Field(default_factory=dict)
    # The last event the workflow has recorded; events after it belong to this poll.
    seq: int = 0
    # Seconds from the poll's start to its first check: relative, so the grid holds whatever
    # the workflow's clock says (a test server skips time; a worker's clock may differ).
    # Negative: that check is overdue by as much (nobody polled the watch); it is made at once
    # and the grid goes on from its slot (the watch keeps its schedule).
    first_check_in: float = 0.0
    # That first check as an instant on Temporal's clock (the workflow's): the poll counts it
    # from its attempt's start as Temporal timed it, so the time the poll took to reach a
    # worker does not push the grid later (None: a request of a release before it).
    first_check_at: datetime | None = None
    interval_seconds: float
    window_seconds: float
    # Check once and hand back (a baseline or a check asked for), at once.
    first_only: bool = False
    # The poll's number in its workflow run: with the run, which poll a lease names.
    poll: int = 0
    # How many of the life's late delivery failures (watch_polls) the workflow has counted.
    late_failures_seen: int = 0
    # Events handed back before their deliveries settled (the last result's ``undelivered``):
    # this poll sends them again (their delivery rows keep them single).
    redeliver: list[int] = Field(default_factory=list)
    # Check nothing: send the ``redeliver`` events and wait for them to settle (a paused or
    # stopping watch has no next poll to send them).
    deliver_only: bool = False


class PollEvent(BaseModel):
    """One event a poll reported: stored (``key``), notified, and now in history."""

    seq: int
    kind: str
    key: str
    at: datetime
    payload: dict[str, Any]


class PollProgress(BaseModel):
    """What a poll heartbeats: where it is, so a retried attempt resumes there."""

    seq: int
    urls: dict[str, UrlState]
    next_due: datetime
    checks: int = 0
    changes: int = 0
    hits: int = 0


class PollResult(BaseModel):
    ended: PollEnd
    checks: int
    seq: int
    urls: dict[str, UrlState]
    # Seconds from the hand-back to the next check on the grid (never negative).
    next_check_in: float
    # That check as an instant on Temporal's clock, past if it is overdue: the workflow keeps
    # the grid however late it reads the result (None: a poll of a release before it).
    next_due: datetime | None = None
    events: list[PollEvent] = Field(default_factory=list)
    delivery_failures: int = 0
    event_failures: int = 0
    last_failure: Failure | None = None
    # The life's late delivery failures so far (those new to the workflow are counted in
    # ``delivery_failures``): the next request's ``late_failures_seen``.
    late_failures: int = 0
    # The events handed back whose deliveries had not settled (still retrying, or never
    # started): the next request's ``redeliver``, so a process that dies after the hand-back
    # loses none.
    undelivered: list[int] = Field(default_factory=list)


class EndPoll(BaseModel):
    """Ask the watch's poll to hand back now (with ``run_id`` and ``poll``: only that one)."""

    workflow_id: str
    life: str
    run_id: str | None = None
    poll: int | None = None


class PollLost(BaseModel):
    """Signal ``poll_lost``: the poll's process is dead, start the next without waiting."""

    life: str
    run_id: str
    poll: int
    process: str
    # The dead process's last beat: the lost poll checked on its grid until about then, so
    # the next poll checks at once only what fell due after it (None: not known; at once).
    silent_since: datetime | None = None
    # When the lost poll started (its lease says), by the same clock as ``silent_since``:
    # its grid's first slot was ``first_check_in`` after.
    started_at: datetime | None = None


def slot_after_beat(first: datetime, interval: timedelta, beat: datetime) -> datetime:
    """The first slot of a lost poll's grid after its process's last ``beat`` (maybe unchecked)."""
    if beat < first:
        return first
    return first + interval * (1 + (beat - first) // interval)


class LostPollCheck(BaseModel):
    """Ask (local activity ``lost_poll_alive``) whether a poll reported lost may still answer."""

    workflow_id: str
    lost: PollLost


def page_message(kind: str, payload: dict[str, Any], *, keywords: bool) -> Message | None:
    """What a web monitor's event tells people, as a watch's message (None: an event only),
    in English and in Chinese (the notify activity says it in its recipient's language)."""
    url = str(payload.get("url", ""))
    zh_body: str | None = None  # None: the same body (the page's words)
    reason: str | None = None  # the error, in the reader's words (Wording.reason)
    if kind == "watch.failing":
        failures, reason = payload.get("failures"), str(payload.get("error"))
        error = markdown_literal(reason)
        title, body = f"Failing: {url}", f"{failures} checks in a row failed. Last error: {error}"
        zh_title = f"访问失败：{url}"
        zh_body = f"连续 {failures} 次检查失败。最近一次错误：{REASON}"
    elif kind == "watch.recovered":
        title, body = f"Recovered: {url}", "The page answers again."
        zh_title, zh_body = f"已恢复：{url}", "页面已恢复正常访问。"
    elif kind == "watch.hit":
        hits: dict[str, list[str]] = payload.get("hits") or {}
        title, zh_title = f"Keyword hit on {url}", f"关键词命中：{url}"
        # The page's words, shown as written (a markdown channel renders the body).
        body, zh_body = (
            "\n".join(
                f"- **{markdown_literal(keyword)}**: {markdown_literal(notice_said(line, zh))}"
                for keyword, found in hits.items()
                for line in found
            )
            for zh in (False, True)
        )
    elif kind == "watch.change" and not keywords:
        # With keywords set, only hits are worth a message; plain changes stay events.
        lines = str(payload.get("excerpt", "")).split("\n")
        title, zh_title = f"Changed: {url}", f"页面有变化：{url}"
        body, zh_body = (
            markdown_lines([notice_said(line, zh) for line in lines]) for zh in (False, True)
        )
    else:
        return None
    zh = Wording(title=zh_title, body=zh_body, reason=reason)
    return Message(title=title, body=body, link=url, kind=NotificationKind.WATCH, zh=zh)
