"""End requests: how a control reaches a poll that runs in another worker process.

A control (pause, update, trigger, stop) or a sweep of a dead process's polls writes a row
in ``watch_poll_ends``; every process running polls reads the rows written since it started
with an ``EndRequestCursor`` every ``END_POLL_READ`` seconds (activities/polling.py). The
cursor reads only ``id > n``, which skips nothing because the writers hand ids out in commit
order and never again (docs/polling.md, §4): every request goes through
``add_end_requests``, which takes the table's lock on PostgreSQL, and a writer that skipped
it could be skipped by the readers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import bindparam, delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from ambient.storage.db import Database, table_of
from ambient.storage.models import utcnow
from ambient.storage.polls import WatchPollEnd

ENDS = table_of(WatchPollEnd)
# The requests after a cursor's last (the columns a request needs: not created_at, converted
# per row for nothing), built once: every process running polls reads it twice a second.
SINCE = (
    select(*[column for column in ENDS.c if column.name != "created_at"])
    .where(ENDS.c.id > bindparam("last"))
    .order_by(ENDS.c.id)
)


@dataclass(frozen=True)
class EndRequest:
    """Hand back the poll of (task = workflow id, life); with ``run_id`` and ``poll`` only
    that poll (a lost one), not its successor; with ``process`` only its attempt there."""

    task: str
    life: str
    run_id: str | None = None
    poll: int | None = None
    process: str | None = None


async def add_end_requests(session: AsyncSession, requests: list[EndRequest]) -> None:
    """Write ``requests`` in the session's transaction (the caller commits it soon)."""
    if not requests:
        return
    if session.get_bind().dialect.name == "postgresql":
        # Held to the commit: the ids are taken, and committed, one transaction at a time.
        await session.execute(text(f"LOCK TABLE {ENDS.name} IN SHARE ROW EXCLUSIVE MODE"))
    now = utcnow()
    rows = [{**asdict(r), "created_at": now} for r in requests]
    await session.execute(insert(WatchPollEnd), rows)


async def end_requested(session: AsyncSession, request: EndRequest) -> bool:
    """Whether this poll was asked to end (asked at its start: a request made before the
    process's reader began is not read). A request naming a process is for the attempt that
    ran there when it was made (a sweep's, failing it by its token), not this one: Temporal's
    retry of it in that same process was ended at its start."""
    fields = asdict(request)
    fields.pop("process")
    query = select(WatchPollEnd.id).filter_by(**fields).where(WatchPollEnd.process.is_(None))
    return await session.scalar(query.limit(1)) is not None


async def request_ends(db: Database, requests: list[EndRequest]) -> None:
    """Write ``requests`` in one transaction of their own."""
    async with db.writing() as session:
        await add_end_requests(session, requests)


async def drop_end_requests(db: Database, before: datetime) -> None:
    """Drop the requests written before ``before`` but the newest (SQLite counts ids on)."""
    newest = select(func.max(ENDS.c.id)).scalar_subquery()
    async with db.writing(bulk=True) as session:
        await session.execute(
            delete(ENDS).where((ENDS.c.created_at < before) & (ENDS.c.id < newest))
        )


class EndRequestCursor:
    """One process's reader of end requests: each ``read`` those committed since the last."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.last: int | None = None  # the highest id read

    async def read(self) -> list[EndRequest]:
        async with self.db.reading() as conn:
            if self.last is None:  # requests written before this reader are not for it
                self.last = await conn.scalar(select(func.max(ENDS.c.id))) or 0
            rows = (await conn.execute(SINCE, {"last": self.last})).all()
        if rows:
            self.last = rows[-1].id
        return [EndRequest(row.task, row.life, row.run_id, row.poll, row.process) for row in rows]
