"""Tables of the watches' polling (docs/architecture.md, "The polling machinery"): each
life's poll state, the page snapshots, the leases of running polls, the worker processes that
run them and the requests to end one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ColumnElement, Index, Integer, String, Text, UniqueConstraint, or_
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import LargeBinary

from ambient.storage.models import Base, Dated, Numbered, UTCDateTime, utcnow


class WatchSnapshot(Numbered, Dated, Base):
    __tablename__ = "watch_snapshots"
    __table_args__ = (
        UniqueConstraint("task", "url", "hash", name="uq_watch_snapshot"),
        Index("ix_watch_snapshots_task_url", "task", "url"),
    )

    task: Mapped[str] = mapped_column(String(255))
    url: Mapped[str] = mapped_column(String(2048))
    hash: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)


def round_task(task: str, round: str) -> str:
    """The task a round's texts of ``task``'s pages are stored under (a daily briefing's date:
    `poll_store.advance_round`)."""
    return f"{task}/{round}"


def with_rounds(task: str) -> ColumnElement[bool]:
    """The snapshots of ``task``, and those its rounds stored (`round_task`)."""
    return or_(
        WatchSnapshot.task == task,
        WatchSnapshot.task.startswith(round_task(task, ""), autoescape=True),
    )


class WatchPoll(Base):
    """A watch life's poll: its last event and page states, stored with the event (so a
    retried poll neither loses a state nor reports a change twice)."""

    __tablename__ = "watch_polls"

    task: Mapped[str] = mapped_column(String(255), primary_key=True)
    life: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    urls: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Deliveries of the life's events that failed after their poll had handed back: a count
    # that only grows, and the last failure. The watch's next poll reports those its
    # workflow has not seen, whichever process runs it (activities/poll_reports.py).
    late_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    late_failure: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class WatchPollEnd(Numbered, Dated, Base):
    """A control asked the poll of (task = workflow id, life) to hand back (read by its process)."""

    __tablename__ = "watch_poll_ends"
    # A poll that starts looks for a request to end it (activities/poll_session.py).
    __table_args__ = (Index("ix_watch_poll_ends_task_life", "task", "life"),)

    task: Mapped[str] = mapped_column(String(255))
    life: Mapped[str] = mapped_column(String(64))
    # Set when only one poll is to end (a lost one): its workflow run and number.
    run_id: Mapped[str | None] = mapped_column(String(64), default=None)
    poll: Mapped[int | None] = mapped_column(Integer, default=None)
    # Set when only that poll's attempt in this worker process is to end (a dead process's,
    # whose poll Temporal runs again elsewhere).
    process: Mapped[str | None] = mapped_column(String(64), default=None)


class WorkerProcess(Base):
    """A worker process running polls and its last beat; silent past ``dead_after``, it is
    dead and its polls go to other processes (activities/poll_upkeep.py)."""

    __tablename__ = "worker_processes"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    dead_after: Mapped[float] = mapped_column(default=30.0)


class WatchPollLease(Base):
    """The poll of (task = workflow id, life) runs in ``process``: the workflow run and the
    poll's number in it say which poll, so a lost one is told apart from its successor."""

    __tablename__ = "watch_poll_leases"

    task: Mapped[str] = mapped_column(String(255), primary_key=True)
    life: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(64))
    poll: Mapped[int] = mapped_column(Integer)
    process: Mapped[str] = mapped_column(String(64), index=True)
    # When the poll started (its attempt's start, the origin of its grid).
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The attempt's Temporal task token: a sweep fails a dead process's attempt by it, and the
    # server runs the poll again in a live process (no workflow task). None: written by a
    # release before it (the sweep signals the workflow then).
    task_token: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    # A released lease of a dead process's attempt: that process's last beat (a sweep writes
    # it; the attempt Temporal runs again goes on on the grid after it).
    silent_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # The poll's grid: its first check this long after ``started_at``, then every interval (a
    # sweep starts the polls of a dead process in the order their next checks fall due).
    first_check_in: Mapped[float | None] = mapped_column(default=None)
    interval_seconds: Mapped[float | None] = mapped_column(default=None)
