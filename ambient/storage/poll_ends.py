"""End requests: how a control reaches a poll that runs in another worker process.

A control (pause, update, trigger, stop) or a sweep of a dead process's polls writes a row
in ``watch_poll_ends``; every process running polls reads the rows written since it started
with an ``EndRequestCursor`` every ``END_POLL_READ`` seconds (activities/polling.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from ambient.storage.db import Database
from ambient.storage.models import WatchPollEnd, utcnow


@dataclass(frozen=True)
class EndRequest:
    """Hand back the poll of (task = workflow id, life); with ``run_id`` and ``poll`` only
    that poll (a lost one), not its successor."""

    task: str
    life: str
    run_id: str | None = None
    poll: int | None = None


@dataclass(frozen=True)
class ReadRequest(EndRequest):
    id: int = 0


async def add_end_requests(session: AsyncSession, requests: list[EndRequest]) -> None:
    """Write ``requests`` in the session's transaction (the caller commits)."""
    if not requests:
        return
    now = utcnow()
    await session.execute(
        insert(WatchPollEnd),
        [
            {"task": r.task, "life": r.life, "run_id": r.run_id, "poll": r.poll, "created_at": now}
            for r in requests
        ],
    )


async def request_ends(db: Database, requests: list[EndRequest]) -> None:
    """Write ``requests`` in one transaction of their own."""
    async with db.write_session() as session:
        await add_end_requests(session, requests)
        await session.commit()


async def drop_end_requests(db: Database, before: datetime) -> None:
    """Drop the requests written before ``before`` (nobody acts on them any more)."""
    async with db.write_session() as session:
        await session.execute(delete(WatchPollEnd).where(WatchPollEnd.created_at < before))
        await session.commit()


class EndRequestCursor:
    """One process's reader of end requests: each ``read`` returns those not read before."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.last: int | None = None  # the highest id read

    async def read(self) -> list[ReadRequest]:
        async with self.db.session() as session:
            if self.last is None:  # requests written before this reader are not for it
                self.last = await session.scalar(select(func.max(WatchPollEnd.id))) or 0
            rows = (
                await session.execute(
                    select(
                        WatchPollEnd.id,
                        WatchPollEnd.task,
                        WatchPollEnd.life,
                        WatchPollEnd.run_id,
                        WatchPollEnd.poll,
                    )
                    .where(WatchPollEnd.id > self.last)
                    .order_by(WatchPollEnd.id)
                )
            ).all()
        found = [ReadRequest(task, life, run, poll, id=row) for row, task, life, run, poll in rows]
        if found:
            self.last = found[-1].id
        return found
