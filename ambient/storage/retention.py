"""What the app database forgets: events, finished deliveries and inbox messages older than
``AMBIENT_RETENTION_DAYS`` (0 keeps everything).

A watch writes an event at every change it finds and a delivery row per channel of each
notice: at thousands of watches that is millions of rows a day, which every list, the
dashboard and the briefing's reads would wade through. Each worker prunes once an hour, the
oldest rows first, a thousand to a short write transaction (found by a read before it), so
other writers take their turns in between; two workers pruning at once delete disjoint or no
rows. Kept whatever their age: a delivery that may still be sent (pending within its lease,
deferred before its give-up, or changed within the period), the events a watch's state is
read from (its page failing for months is failing still), the newest row of each table (its
id is never handed out again), audit records, remediation records, briefings, users and
their settings.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, false, func, select
from sqlalchemy.exc import SQLAlchemyError

from ambient.storage import Database
from ambient.storage.models import Delivery, Event, InboxMessage, utcnow
from ambient.storage.repositories import EventRepository

log = logging.getLogger(__name__)

BATCH = 1000  # rows a write transaction deletes
PRUNE_EVERY = 3600.0  # seconds between a worker's prunes
# A delivery's ends: sent, failed, or held back by quiet hours (never sent later).
FINISHED = ("sent", "failed", "suppressed")


def _old(table: type[Event | Delivery | InboxMessage], cutoff: datetime) -> ColumnElement[bool]:
    if table is Delivery:  # nothing will send it again, and not changed since
        # Besides the finished: a deferred row whose deliver-later run gave up before the
        # cutoff (the run terminated, it never said so), and a pending row whose lease ran out
        # before it (its try died and no retry came): both were kept for ever.
        done = (
            Delivery.status.in_(FINISHED)
            | Delivery.retries_ended(cutoff)
            | ((Delivery.status == "pending") & (Delivery.lease_until < cutoff))
        )
        return done & (Delivery.updated_at < cutoff) & (Delivery.created_at < cutoff)
    return table.created_at < cutoff


async def _bound(
    db: Database, table: type[Event | Delivery | InboxMessage], cutoff: datetime
) -> ColumnElement[bool]:
    """The rows below the first one (by id) made within the period. Rows are made in id order,
    so those past the period lie there: a prune reads them, not the whole table (an old row
    made out of order above it waits for a later prune). None made within the period: below
    the newest row, kept whatever its age, since SQLite gives a new row one past the highest
    id left and would hand the ids of deleted rows out again (an events stream resumed with its
    Last-Event-ID would skip new events until they passed it)."""
    first = select(table.id).where(table.created_at >= cutoff).order_by(table.id).limit(1)
    async with db.session() as session:
        bound = await session.scalar(first) or await session.scalar(select(func.max(table.id)))
    return false() if bound is None else table.id < bound


async def _standing(db: Database) -> set[int]:
    """The events a watch's state is read from (`EventRepository.standing`), read once a
    prune: an event written meanwhile can only supersede one of them, deleted by the next."""
    async with db.session() as session:
        return await EventRepository(session).standing()


async def prune(db: Database, days: int, now: datetime | None = None) -> dict[str, int]:
    """Delete what is older than ``days`` days: the rows removed, by table."""
    cutoff = (now or utcnow()) - timedelta(days=days)
    removed: dict[str, int] = {}
    for table in (Event, Delivery, InboxMessage):
        total, after, below = 0, 0, await _bound(db, table, cutoff)
        kept: set[int] | None = None if table is Event else set()
        while True:
            # Found by a read, oldest first from where the last batch ended (one pass over the
            # rows past the period however many batches), then deleted in a short write
            # transaction: SQLite's one write lock is not held while the table is scanned.
            found = (
                select(table.id)
                .where(table.id > after, below, _old(table, cutoff))
                .order_by(table.id)
                .limit(BATCH)
            )
            async with db.session() as session:
                ids = list((await session.execute(found)).scalars())
            if not ids:
                break
            if kept is None:  # read only once there is an old event to delete
                kept = await _standing(db)
            if doomed := [row_id for row_id in ids if row_id not in kept]:
                async with db.writing() as session:
                    # Checked again: a delivery tried once more since the read is kept.
                    gone = delete(table).where(table.id.in_(doomed), _old(table, cutoff))
                    total += (await session.execute(gone)).rowcount or 0  # type: ignore[attr-defined]
            if len(ids) < BATCH:
                break
            after = ids[-1]
            await asyncio.sleep(0)  # the next batch queues behind the writers waiting now
        removed[str(table.__tablename__)] = total
    return removed


async def pruning(db: Database, days: int, every: float = PRUNE_EVERY) -> None:
    """Prune about every ``every`` seconds while the worker runs; a prune that fails (the
    database away or locked) is logged with its count and tried at the next turn. The first
    within five minutes of the start and each turn a tenth either side of ``every``, at random:
    workers started together (a deploy) would otherwise prune at once, hour after hour."""
    failures = 0
    await asyncio.sleep(random.uniform(0, min(every, 300.0)))
    while True:
        try:
            removed = await prune(db, days)
        except Exception as exc:  # the database away or locked, or a bug: the next turn comes
            failures += 1
            log.warning(
                "retention: a prune failed (%d so far), tried again later: %s",
                failures,
                exc,
                exc_info=not isinstance(exc, (SQLAlchemyError, OSError)),
            )
        else:
            if any(removed.values()):
                log.info("retention: removed rows older than %d days: %s", days, removed)
        await asyncio.sleep(every * random.uniform(0.9, 1.1))
