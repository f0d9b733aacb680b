"""The writes of web monitors' polls, as few statements as one transaction allows.

A check that found something runs once per change, thousands of times an hour. The checks of
all polls in a process that found something within ``PollWriter.linger`` are written in one
transaction (group commit), each kind of row with one statement for all of them: prepared
Core statements on the session's connection, no ORM unit of work, no read-before-write where a
key is new by construction. Each check's rows — its page's snapshot, its events, their inbox
messages and the poll's mark — are in that transaction or none is.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, case, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ambient.domain.notify import Message
from ambient.storage.db import Database, dialect_insert, table_of
from ambient.storage.models import Delivery, Event, InboxMessage, utcnow
from ambient.storage.polls import WatchPoll, WatchSnapshot, round_task, with_rounds
from ambient.storage.repositories import inbox_fields

SNAPSHOTS, EVENTS, POLLS = table_of(WatchSnapshot), table_of(Event), table_of(WatchPoll)
INBOX, DELIVERIES = table_of(InboxMessage), table_of(Delivery)

PAGES_OF = select(
    SNAPSHOTS.c.id, SNAPSHOTS.c.task, SNAPSHOTS.c.url, SNAPSHOTS.c.hash, SNAPSHOTS.c.text
).where(SNAPSHOTS.c.task.in_(bindparam("b_tasks", expanding=True)))
DROP_IDS = delete(SNAPSHOTS).where(SNAPSHOTS.c.id.in_(bindparam("b_ids", expanding=True)))
TOUCH = (
    update(SNAPSHOTS)
    .where(SNAPSHOTS.c.id == bindparam("b_id"))
    .values(created_at=bindparam("b_now"))
)
ADD_INBOX = insert(INBOX).returning(INBOX.c.id, sort_by_parameter_order=True)
# Built once: a statement built per transaction cost ~0.2 ms with its cache key.
ADD_SNAPSHOTS, ADD_EVENTS, ADD_DELIVERIES = insert(SNAPSHOTS), insert(EVENTS), insert(DELIVERIES)

log = logging.getLogger("ambient.polling")

# A check of a page longer than this is compared (diff, keywords) before the transaction, in
# a thread: inside it, a 100,000-line page held the write lock (SQLite: every writer's) and
# every poll of the process for seconds. A smaller one costs less than that detour.
OFF_LOOP_CHARS = 64_000


@dataclass(frozen=True)
class PageText:
    """A page's new text; ``last_hash`` is the text it is compared with (None: a baseline)."""

    url: str
    last_hash: str | None
    new_hash: str
    text: str


@dataclass
class SnapshotWrites:
    """The writes keeping each page's snapshots its last and new texts, the new one newest."""

    now: datetime
    drop: list[int] = field(default_factory=list)
    touch: list[dict[str, Any]] = field(default_factory=list)
    texts: list[dict[str, Any]] = field(default_factory=list)

    def add(self, task: str, page: PageText, rows: list[Any]) -> None:
        """Plan ``page`` given its stored ``rows``."""
        keep = {page.new_hash, page.last_hash}
        self.drop += [r.id for r in rows if r.hash not in keep]
        same = next((r for r in rows if r.hash == page.new_hash), None)
        if same is not None:  # a text seen before becomes the newest (A -> B -> A)
            self.touch.append({"b_id": same.id, "b_now": self.now})
        else:
            self.texts.append(
                {
                    "task": task,
                    "url": page.url,
                    "hash": page.new_hash,
                    "text": page.text,
                    "created_at": self.now,
                }
            )

    async def execute(self, conn: AsyncConnection) -> None:
        if self.drop:
            await conn.execute(DROP_IDS, {"b_ids": self.drop})
        if self.touch:
            await conn.execute(TOUCH, self.touch)
        if self.texts:
            await conn.execute(ADD_SNAPSHOTS, self.texts)


async def advance_snapshot(session: AsyncSession, task: str, page: PageText) -> str | None:
    """Store ``page``'s new text in the session's transaction; its old text (see ``add``)."""
    conn = await session.connection()
    rows = await conn.execute(PAGES_OF.where(SNAPSHOTS.c.url == page.url), {"b_tasks": [task]})
    writes, stored = SnapshotWrites(utcnow()), list(rows)
    writes.add(task, page, stored)
    await writes.execute(conn)
    return old_text(page, stored)


def old_text(page: PageText, rows: list[Any]) -> str | None:
    """The text ``page`` is compared with, of its stored ``rows`` (None: no last hash; "":
    gone)."""
    if page.last_hash is None:
        return None
    return next((r.text for r in rows if r.hash == page.last_hash), "")


async def advance_round(
    session: AsyncSession, task: str, round: str, page: PageText
) -> tuple[str | None, str | None]:
    """Store ``page``'s text as ``round``'s (a daily briefing's date) in the session's
    transaction; the hash and text the rounds before stored last (None: none, a first look).
    The round's own earlier text is replaced and every other text but that last one dropped,
    so each check of one round (a preparation again, a retry) compares with the same text."""
    own = round_task(task, round)
    conn = await session.connection()
    rows = (
        await conn.execute(
            select(SNAPSHOTS.c.id, SNAPSHOTS.c.task, SNAPSHOTS.c.hash, SNAPSHOTS.c.text)
            .where(with_rounds(task), SNAPSHOTS.c.url == page.url)
            .order_by(SNAPSHOTS.c.created_at.desc(), SNAPSHOTS.c.id.desc())
        )
    ).all()
    earlier = next((r for r in rows if r.task != own), None)
    drop = [r.id for r in rows if r is not earlier]
    if drop:
        await conn.execute(DROP_IDS, {"b_ids": drop})
    text = {"task": own, "url": page.url, "hash": page.new_hash, "text": page.text}
    await conn.execute(ADD_SNAPSHOTS, [{**text, "created_at": utcnow()}])
    return (earlier.hash, earlier.text) if earlier else (None, None)


@dataclass(frozen=True)
class InboxCopy:
    """An event's message for the user's inbox, stored (and marked sent) with the event."""

    message: Message
    delivery_key: str
    shown_target: str


@dataclass(frozen=True)
class NewEvent:
    seq: int
    kind: str
    key: str
    payload: dict[str, Any]
    inbox: InboxCopy | None = None


@dataclass
class PollWrite:
    """What one check stores: the page's changed text, its events and the poll's new mark
    (``urls``: the page states after). ``events`` (pure: it may be called again) gets the
    page's old text (None: no last hash; "": gone) and numbers them from the poll's last."""

    poll: str
    life: str
    user: str
    task: str
    seq: int
    urls: dict[str, Any]
    events: Callable[[str | None], list[NewEvent]]
    page: PageText | None = None
    done: asyncio.Future[list[NewEvent]] | None = field(default=None, init=False)


class PollWriter:
    """Group commit for the polls of one process: ``write`` returns once the check's rows are
    committed (or raises what the database said). A batch that fails is written again one
    check at a time, so one bad check fails alone."""

    def __init__(self, db: Database, *, linger: float = 0.5) -> None:
        self.db = db
        self.linger = linger
        self._queue: list[PollWrite] = []
        self._flusher: asyncio.Task[None] | None = None
        self._nap: asyncio.Future[None] | None = None  # the linger under way, if any
        self._hurried = False  # the next batch goes without its linger

    async def write(self, item: PollWrite, *, hurry: bool = False) -> list[NewEvent]:
        """Write ``item`` with the next batch; ``hurry``: that batch goes now (see hurry)."""
        item.done = done = asyncio.get_running_loop().create_future()
        self._queue.append(item)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        if hurry:
            self.hurry()
        # A caller cancelled before its batch runs is left out of it; one cancelled while its
        # batch commits is in it (a resumed poll finds its events by the mark).
        return await done

    def hurry(self) -> None:
        """End the linger: a poll's other checks wait for the batch (one poll's checks are
        written one at a time, so each would wait a linger of its own)."""
        if not self._queue:
            return
        self._hurried = True
        if self._nap is not None:
            wake(self._nap)

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            if not self._hurried:
                # asyncio.sleep's timer, with a future hurry() can end.
                self._nap = nap = loop.create_future()
                timer = loop.call_later(self.linger, wake, nap)
                try:
                    await nap
                finally:
                    timer.cancel()
                    self._nap = None
            self._hurried = False
            batch, self._queue = [i for i in self._queue if not _over(i)], []
            try:
                await self._write(batch)
            except BaseException as exc:  # cancelled (the loop stops): no caller waits forever
                stopped = RuntimeError(f"the poll writer stopped: {exc!r}")
                for item in batch + self._queue:
                    _settle(item, error=stopped)
                self._queue = []
                raise

    async def _write(self, batch: list[PollWrite]) -> None:
        if not batch:
            return
        try:
            results = await self._commit(batch)
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0], error=exc)
                return
            log.warning("writing %d polls' checks failed (%s): one at a time", len(batch), exc)
            for item in batch:
                if not _over(item):
                    await self._write([item])
            return
        for item, result in zip(batch, results, strict=True):
            _settle(item, result)

    async def _commit(self, batch: list[PollWrite]) -> list[list[NewEvent]]:
        big = {i for i, item in enumerate(batch) if _big(item)}
        early: dict[int, tuple[set[tuple[int, str]], list[NewEvent]]] = {}
        if big:
            early = await self._compared(batch, big)
        async with self.db.writing(bulk=True) as session:
            conn = await session.connection()
            now = utcnow()
            pages: dict[tuple[str, str], list[Any]] = {}
            tasks = sorted({item.task for item in batch if item.page is not None})
            if tasks:
                pages = _by_page(await conn.execute(PAGES_OF, {"b_tasks": tasks}))
            snapshots = SnapshotWrites(now)
            events: list[dict[str, Any]] = []
            copies: list[tuple[InboxCopy, PollWrite]] = []
            marks: list[dict[str, Any]] = []
            results = []
            for i, item in enumerate(batch):
                old, rows = None, []
                if (page := item.page) is not None:
                    rows = pages.get((item.task, page.url), [])
                    snapshots.add(item.task, page, rows)
                    old = old_text(page, rows)
                # Compared before with the texts still stored, or here (another poll of the
                # watch, which its lease rules out but for a moment, may have written since).
                compared = early.get(i)
                if compared is not None and compared[0] == _same(rows):
                    found = compared[1]
                else:
                    found = item.events(old)
                results.append(found)
                for event in found:
                    events.append(
                        {
                            "kind": event.kind,
                            "user": item.user,
                            "task": item.task,
                            "payload": event.payload,
                            "idempotency_key": event.key,
                            "created_at": now,
                        }
                    )
                    if event.inbox is not None:
                        copies.append((event.inbox, item))
                marks.append(
                    {
                        "task": item.poll,
                        "life": item.life,
                        "seq": found[-1].seq if found else item.seq,
                        "urls": item.urls,
                        "updated_at": now,
                    }
                )
            await snapshots.execute(conn)
            if events:
                await conn.execute(ADD_EVENTS, events)
            if copies:
                await _store_copies(conn, copies, now)
            marked = ("seq", "urls", "updated_at")
            await conn.execute(upsert(conn.dialect.name, POLLS, ("task", "life"), marked), marks)
        return results

    async def _compared(
        self, batch: list[PollWrite], big: set[int]
    ) -> dict[int, tuple[set[tuple[int, str]], list[NewEvent]]]:
        """What the big pages' checks (``big``, by place in ``batch``) found, each with the
        stored texts it was compared with, worked out in a thread before the transaction."""
        tasks = sorted({batch[i].task for i in big})
        async with self.db.reading() as conn:
            pages = _by_page(await conn.execute(PAGES_OF, {"b_tasks": tasks}))
        compared = {}
        for i in sorted(big):
            item, page = batch[i], batch[i].page
            if page is not None:
                rows = pages.get((item.task, page.url), [])
                found = await asyncio.to_thread(item.events, old_text(page, rows))
                compared[i] = (_same(rows), found)
        return compared


def _big(item: PollWrite) -> bool:
    return item.page is not None and len(item.page.text) > OFF_LOOP_CHARS


def _by_page(rows: Any) -> dict[tuple[str, str], list[Any]]:
    pages: dict[tuple[str, str], list[Any]] = {}
    for row in rows:
        pages.setdefault((row.task, row.url), []).append(row)
    return pages


def _same(rows: list[Any]) -> set[tuple[int, str]]:
    """What says a page's stored texts are unchanged: their rows' ids and hashes."""
    return {(row.id, row.hash) for row in rows}


def wake(nap: asyncio.Future[None]) -> None:
    """End a nap (a timer's future: cheaper to end early than a timeout), unless it has ended."""
    if not nap.done():
        nap.set_result(None)


def _over(item: PollWrite) -> bool:
    return item.done is None or item.done.done()


def _settle(
    item: PollWrite, result: list[NewEvent] | None = None, *, error: BaseException | None = None
) -> None:
    if item.done is None or item.done.done():
        return
    if error is not None:
        item.done.set_exception(error)
    else:
        item.done.set_result(result or [])


async def _store_copies(
    conn: AsyncConnection, copies: list[tuple[InboxCopy, PollWrite]], now: Any
) -> None:
    """The inbox messages and their (sent) delivery rows, stored with their events."""
    rows = []
    for copy, item in copies:
        title, body, link = inbox_fields(copy.message)  # as long as a watched URL may be
        rows.append(
            {
                "user": item.user,
                "kind": copy.message.kind.value,
                "title": title,
                "body": body,
                "link": link,
                "read": False,
                "created_at": now,
            }
        )
    ids = await conn.execute(ADD_INBOX, rows)
    await conn.execute(
        ADD_DELIVERIES,
        [
            {
                "key": copy.delivery_key,
                "user": item.user,
                "channel": "inbox",
                "target": copy.shown_target,
                "status": "sent",
                "attempts": 1,
                "provider_id": str(inbox_id),
                "task": item.task,
                "kind": copy.message.kind.value,
                "created_at": now,
                "updated_at": now,
            }
            for (copy, item), inbox_id in zip(copies, ids.scalars().all(), strict=True)
        ],
    )


@functools.cache
def upsert(dialect: str, table: Table, keys: tuple[str, ...], columns: tuple[str, ...]) -> Any:
    """Insert rows of ``table``, or set ``columns`` where ``keys`` are taken (one statement);
    a ``seq`` (a watch's last event number) never goes back: a poll that overlapped another
    for a moment, writing no event from an older mark, set it back, and every later event
    of the watch took a number already taken."""
    statement = dialect_insert(dialect, table)
    new = statement.excluded
    values = {column: new[column] for column in columns}
    if "seq" in values:
        values["seq"] = case((new.seq > table.c.seq, new.seq), else_=table.c.seq)
    return statement.on_conflict_do_update(
        index_elements=[table.c[key] for key in keys], set_=values
    )
