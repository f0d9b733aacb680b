"""The writes of a web monitor's poll, as few statements as one transaction allows.

A check that found something runs once per change, thousands of times an hour: prepared Core
statements on the session's connection (no ORM unit of work, no statement built per call, no
read-before-write where a key is new by construction) keep its database work to a handful of
statements in one transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ambient.domain.notify import Message
from ambient.storage.models import Delivery, Event, InboxMessage, WatchPoll, WatchSnapshot, utcnow


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


SNAPSHOTS, EVENTS, POLLS = _table(WatchSnapshot), _table(Event), _table(WatchPoll)
INBOX, DELIVERIES = _table(InboxMessage), _table(Delivery)

_SAME_PAGE = (SNAPSHOTS.c.task == bindparam("b_task")) & (SNAPSHOTS.c.url == bindparam("b_url"))
OLD_TEXT = select(SNAPSHOTS.c.text).where(_SAME_PAGE & (SNAPSHOTS.c.hash == bindparam("b_old")))
DROP_OTHERS = delete(SNAPSHOTS).where(
    _SAME_PAGE & SNAPSHOTS.c.hash.not_in(bindparam("b_keep", expanding=True))
)
TOUCH = (
    update(SNAPSHOTS)
    .where(_SAME_PAGE & (SNAPSHOTS.c.hash == bindparam("b_new")))
    .values(created_at=bindparam("b_now"))
)
MOVE_MARK = (
    update(POLLS)
    .where((POLLS.c.task == bindparam("b_t")) & (POLLS.c.life == bindparam("b_l")))
    .values(seq=bindparam("b_seq"), urls=bindparam("b_urls"), updated_at=bindparam("b_now"))
)


async def _connection(session: AsyncSession) -> AsyncConnection:
    return await session.connection()


async def advance_snapshot(
    session: AsyncSession, task: str, url: str, last_hash: str | None, new_hash: str, text: str
) -> str | None:
    """Keep the texts of ``last_hash`` and ``new_hash`` (the new one newest) and return the
    old text (None without a last hash, "" when it is gone). A page's snapshots are these two
    (polls and the news digest's checks alike)."""
    conn = await _connection(session)
    old = None
    keep = [new_hash]
    if last_hash is not None:
        found = (
            await conn.execute(OLD_TEXT, {"b_task": task, "b_url": url, "b_old": last_hash})
        ).scalar()
        old = found or ""
        keep.append(last_hash)
    await conn.execute(DROP_OTHERS, {"b_task": task, "b_url": url, "b_keep": keep})
    now = utcnow()
    # A text seen before becomes the newest again (A -> B -> A).
    touched = await conn.execute(
        TOUCH, {"b_task": task, "b_url": url, "b_new": new_hash, "b_now": now}
    )
    if not touched.rowcount:
        await conn.execute(
            insert(SNAPSHOTS),
            {"task": task, "url": url, "hash": new_hash, "text": text, "created_at": now},
        )
    return old


async def add_event(
    session: AsyncSession, kind: str, *, user: str, task: str, payload: dict[str, Any], key: str
) -> None:
    """Append an event whose key is new (a poll numbers its events; a clash raises)."""
    conn = await _connection(session)
    await conn.execute(
        insert(EVENTS),
        {
            "kind": kind,
            "user": user,
            "task": task,
            "payload": payload,
            "idempotency_key": key,
            "created_at": utcnow(),
        },
    )


async def move_mark(
    session: AsyncSession, task: str, life: str, seq: int, urls: dict[str, Any]
) -> None:
    """Where the poll of (task, life) stands: its last event and the page states."""
    conn = await _connection(session)
    now = utcnow()
    moved = await conn.execute(
        MOVE_MARK, {"b_t": task, "b_l": life, "b_seq": seq, "b_urls": urls, "b_now": now}
    )
    if not moved.rowcount:
        await conn.execute(
            insert(POLLS),
            {"task": task, "life": life, "seq": seq, "urls": urls, "updated_at": now},
        )


async def deliver_to_inbox(
    session: AsyncSession,
    *,
    user: str,
    message: Message,
    delivery_key: str,
    shown_target: str,
    task: str,
) -> None:
    """The inbox message and its delivery row (sent), in the caller's transaction: stored
    with the event, so it exists exactly when the event does."""
    conn = await _connection(session)
    now = utcnow()
    row = await conn.execute(
        insert(INBOX).returning(INBOX.c.id),
        {
            "user": user,
            "kind": message.kind.value,
            "title": message.title[:255],
            "body": message.body,
            "link": message.link,
            "read": False,
            "created_at": now,
        },
    )
    await conn.execute(
        insert(DELIVERIES),
        {
            "key": delivery_key,
            "user": user,
            "channel": "inbox",
            "target": shown_target,
            "status": "sent",
            "attempts": 1,
            "provider_id": str(row.scalar_one()),
            "task": task,
            "kind": message.kind.value,
            "created_at": now,
            "updated_at": now,
        },
    )
