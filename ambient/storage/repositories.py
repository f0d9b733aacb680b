"""Repositories: the queries the product needs, one class per table, given a session: events,
the inbox, deliveries and watch snapshots here; users' in ambient/storage/users.py."""

from __future__ import annotations

import builtins
from collections.abc import Collection
from datetime import datetime
from functools import partial
from typing import Any, cast

from sqlalchemy import ColumnElement, case, delete, func, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.sql.elements import SQLCoreOperations

from ambient.domain.events import clipped
from ambient.domain.notify import Message
from ambient.render import markdown_plain
from ambient.storage.db import Repository, given
from ambient.storage.models import HAPPENED, Delivery, Event, InboxMessage
from ambient.storage.polls import WatchSnapshot, with_rounds

# The inbox's title and link columns (PostgreSQL refuses a longer value; SQLite keeps it).
INBOX_TITLE, INBOX_LINK = 255, 1024
# A delivery's provider_id column: a receiver's message id (a webhook's X-Request-Id).
PROVIDER_ID = 255
# A watch's checks turning failing and back (a web monitor's per page, a threshold watch's),
# and a page an update took out of a web monitor (failing no more: not watched).
FAILING_KINDS = ("watch.failing", "watch.recovered", "watch.url_removed")
# A watch deleted (or an earlier life of one created again), paused and resumed: whether its
# failing pages are failing now.
CONTROL_KINDS = ("watch.stopped", "watch.paused", "watch.resumed")
# A threshold watch's breach told, its recovery, and the breach left unwatched (its source
# replaced): whether it is over its line now (ambient.watches.threshold_rule.TOLD_ALERTS).
BREACH_KINDS = ("watch.breach", "watch.recovery", "watch.breach_unwatched")
# A delivery row still in flight: what give_up and hold change, and nothing settled.
_PENDING = Delivery.status == "pending"


def receivers_text(text: str, limit: int | None = None) -> str:
    """What a receiver said (its refusal's words, its message id) as a row can hold it: a NUL
    as U+FFFD (PostgreSQL's text holds none), cut to ``limit`` characters with "…"."""
    text = text.replace("\x00", "\ufffd")
    return text if limit is None else clipped(text, limit)


def _held(attempt: int) -> tuple[ColumnElement[bool], ...]:
    """The row still in flight with the try that took it as its ``attempt`` (its attempts)."""
    return _PENDING, Delivery.attempts == attempt


class EventRepository(Repository):
    async def add(
        self,
        kind: str,
        *,
        user: str | None = None,
        task: str | None = None,
        payload: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Event:
        """Append an event; with a key, a second call returns the first event unchanged."""
        if (found := await self.keyed(idempotency_key)) is not None:
            return found
        event = Event(
            kind=kind, user=user, task=task, payload=payload or {}, idempotency_key=idempotency_key
        )
        return await self._insert_once(event, partial(self.keyed, idempotency_key))

    async def keyed(self, key: str | None) -> Event | None:
        """The event recorded under ``key``, if any (None without one)."""
        if key is None:
            return None
        return await self.session.scalar(select(Event).where(Event.idempotency_key == key))

    async def last_under(self, task: str, kinds: Collection[str], prefix: str) -> Event | None:
        """The newest event of ``task`` of one of ``kinds`` whose key begins with ``prefix``."""
        query = (
            select(Event)
            .where(Event.task == task, Event.kind.in_(kinds))
            .where(Event.idempotency_key.startswith(prefix, autoescape=True))
            .order_by(Event.id.desc())
            .limit(1)
        )
        return await self.session.scalar(query)

    async def list(
        self,
        *,
        user: str | None = None,
        kind: str | None = None,
        task: str | None = None,
        since: datetime | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[Event]:
        """Newest first; ``before_id``: older than that event (the next page). Without a
        ``kind``, only events that happened (no conversation's own state)."""
        query = select(Event).filter_by(**given(user=user, kind=kind, task=task))
        if kind is None:
            query = query.where(HAPPENED)
        if since is not None:
            query = query.where(Event.created_at >= since)
        if before_id is not None:
            query = query.where(Event.id < before_id)
        return list(await self.session.scalars(query.order_by(Event.id.desc()).limit(limit)))

    async def page_changes(
        self, *, user: str, task: str, since: dict[str, datetime]
    ) -> dict[str, Event]:
        """Each page's first change (``watch.change`` or ``watch.hit``) stored at or after its
        time in ``since`` (the check's that changed it: a check stores its events once it has
        read the page, and the page's next check starts after), by page URL."""
        if not since:
            return {}
        query = (
            select(Event)
            .where(Event.user == user, Event.task == task)
            .where(Event.kind.in_(("watch.change", "watch.hit")))
            .where(Event.created_at >= min(since.values()))
            .order_by(Event.id)
        )
        first: dict[str, Event] = {}
        for event in await self.session.scalars(query):
            url = event.payload.get("url")
            if url in since and url not in first and event.created_at >= since[url]:
                first[url] = event
        return first

    async def count_by_task(
        self, *, user: str, kinds: Collection[str], since: datetime
    ) -> dict[str | None, int]:
        """How many of the user's events of ``kinds`` since ``since``, by task (all, unpaged)."""
        query = (
            select(Event.task, func.count())
            .where(Event.user == user, Event.kind.in_(kinds), Event.created_at >= since)
            .group_by(Event.task)
        )
        return {task: count for task, count in (await self.session.execute(query)).tuples()}

    async def failing_pages(
        self, *, user: str, task: str | None = None, paused: bool = False
    ) -> builtins.list[tuple[str, str | None]]:
        """`failing` as (task, url)."""
        told = await self.failing(user=user, task=task, paused=paused)
        return [(watch, url) for watch, url, _ in told]

    async def failing(
        self, *, user: str, task: str | None = None, paused: bool = False
    ) -> builtins.list[tuple[str, str | None, int]]:
        """The user's watches failing now (or this ``task``'s), as (task, url, failures: the
        checks failed in a row its ``watch.failing`` told, at least that many now; 0 when it
        told none) longest failing first: a web monitor's page (its ``url``) or a threshold
        watch's metric (no ``url``)
        whose last of ``FAILING_KINDS`` is ``watch.failing``, told after the task's last
        ``watch.stopped`` (a deleted task, or an earlier life of one created again, is not),
        of a task not paused now (its last ``watch.paused`` after its last ``watch.resumed``
        and stop: it is not checked, so not "failing its checks") unless ``paused``."""
        # One statement: the newest of those kinds per (task, url), the newest stop, pause
        # and resume per task.
        page = Event.payload["url"].as_string()
        mine = [Event.user == user, Event.task.is_not(None) if task is None else Event.task == task]
        newest = (
            select(func.max(Event.id).label("id"))
            .where(*mine, Event.kind.in_(FAILING_KINDS))
            .group_by(Event.task, page)
            .subquery()
        )

        controls = _controls(mine)
        stop, pause, resume = controls.c.stopped, controls.c.paused, controls.c.resumed
        not_paused = or_(pause.is_(None), pause < resume, pause < stop)
        query = (
            select(Event.task, page, Event.payload)
            .join(newest, Event.id == newest.c.id)
            .outerjoin(controls, controls.c.task == Event.task)
            .where(
                Event.kind == "watch.failing",
                or_(stop.is_(None), stop < Event.id),
                *([] if paused else [not_paused]),
            )
            .order_by(Event.id)
        )
        rows = (await self.session.execute(query)).tuples()
        return [
            (watch, url, failures if isinstance(failures := told.get("failures"), int) else 0)
            for watch, url, told in rows
            if watch is not None
        ]

    async def breaching(self, *, user: str) -> builtins.list[str]:
        """The user's threshold watches over their line now, breached longest first: the
        newest of ``BREACH_KINDS`` a ``watch.breach``, told after the task's last
        ``watch.stopped``, the task not paused now (as `failing`)."""
        mine = [Event.user == user, Event.task.is_not(None)]
        newest = (
            select(func.max(Event.id).label("id"))
            .where(*mine, Event.kind.in_(BREACH_KINDS))
            .group_by(Event.task)
            .subquery()
        )
        controls = _controls(mine)
        stop, pause, resume = controls.c.stopped, controls.c.paused, controls.c.resumed
        query = (
            select(Event.task)
            .join(newest, Event.id == newest.c.id)
            .outerjoin(controls, controls.c.task == Event.task)
            .where(
                Event.kind == "watch.breach",
                or_(stop.is_(None), stop < Event.id),
                or_(pause.is_(None), pause < resume, pause < stop),
            )
            .order_by(Event.id)
        )
        return [task for task in await self.session.scalars(query) if task is not None]

    async def standing(self) -> set[int]:
        """The events `failing_pages` and `breaching` answer from, kept whatever their age: the
        newest of ``FAILING_KINDS`` of each task's page, of ``BREACH_KINDS`` of each task and of
        each of ``CONTROL_KINDS`` of each task (a page failing for months is failing still).
        Every older one is superseded."""
        page = Event.payload["url"].as_string()
        newest = func.max(Event.id)
        pages = select(newest).where(Event.kind.in_(FAILING_KINDS))
        controls = select(newest).where(Event.kind.in_(CONTROL_KINDS))
        breaches = select(newest).where(Event.kind.in_(BREACH_KINDS))
        ids = await self.session.scalars(pages.group_by(Event.user, Event.task, page))
        more = await self.session.scalars(controls.group_by(Event.user, Event.task, Event.kind))
        over = await self.session.scalars(breaches.group_by(Event.user, Event.task))
        return {*ids, *more, *over}


def _controls(mine: list[Any]) -> Any:
    """Each task's newest ``watch.stopped``, ``watch.paused`` and ``watch.resumed`` (NULL:
    none) among the events ``mine`` selects."""

    def last(kind: str) -> Any:
        return func.max(case((Event.kind == f"watch.{kind}", Event.id))).label(kind)

    return (
        select(Event.task, last("stopped"), last("paused"), last("resumed"))
        .where(*mine, Event.kind.in_(CONTROL_KINDS))
        .group_by(Event.task)
        .subquery()
    )


def inbox_fields(message: Message) -> tuple[str, str, str | None]:
    """A message's (title, body, link) as the inbox stores them: a title or link longer than
    its column (a watched URL may be 2048 characters) is kept, not refused: the title cut with
    an ellipsis, the link in the body. The body is shown as plain text (``markdown_plain``)."""
    title, link = clipped(receivers_text(message.title), INBOX_TITLE), message.link
    body = receivers_text(markdown_plain(message.body))  # PostgreSQL's text holds no NUL
    if link is not None and len(link) > INBOX_LINK:
        body, link = f"{body}\n\n{link}", None
    return title, body, link


class InboxRepository(Repository):
    async def add(self, user: str, message: Message) -> InboxMessage:
        """Store a message (``inbox_fields``: never refused for its title's or link's length)."""
        title, body, link = inbox_fields(message)
        row = InboxMessage(user=user, kind=message.kind.value, title=title, body=body, link=link)
        self.session.add(row)
        await self.session.flush()
        return row

    async def list(
        self, user: str, *, limit: int = 50, unread_only: bool = False, before_id: int | None = None
    ) -> list[InboxMessage]:
        query = select(InboxMessage).where(InboxMessage.user == user)
        if unread_only:
            query = query.where(InboxMessage.read.is_(False))
        if before_id is not None:  # the next (older) page
            query = query.where(InboxMessage.id < before_id)
        return list(await self.session.scalars(query.order_by(InboxMessage.id.desc()).limit(limit)))

    async def mark_read(self, user: str, message_id: int) -> InboxMessage | None:
        row = await self.session.get(InboxMessage, message_id)
        if row is None or row.user != user:
            return None
        row.read = True
        await self.session.flush()
        return row


class DeliveryRepository(Repository):
    """Delivery rows, one per (request key, channel, target), as leases: `pending` with
    `lease_until` ahead is a send in flight, left alone until the lease expires."""

    async def get(self, key: str) -> Delivery | None:
        return await self.session.scalar(select(Delivery).where(Delivery.key == key))

    async def acquire(
        self,
        key: str,
        *,
        user: str,
        channel: str,
        target: str,
        now: datetime,
        lease_until: datetime,
        task: str | None = None,
        kind: str | None = None,
    ) -> tuple[Delivery, bool]:
        """(row, True): this attempt holds the lease and sends; (row, False): sent, failed for
        good or in flight elsewhere. One conditional UPDATE takes it: never two holders."""
        if (row := await self.get(key)) is None:
            row = Delivery(
                key=key,
                user=user,
                channel=channel,
                target=target,
                status="pending",
                attempts=1,
                lease_until=lease_until,
                task=task,
                kind=kind,
            )
            # Another attempt may have created it just now: then that row, not ours.
            stored = await self._insert_once(row, partial(self.get, key))
            return stored, stored is row
        if not row.takeable(now):
            return row, False  # sent, failed for good, or in flight: nothing to take
        taken = await self.session.execute(
            update(Delivery)
            .where(Delivery.id == row.id, Delivery.takeable(now))
            .values(
                status="pending",
                lease_until=lease_until,
                attempts=Delivery.attempts + 1,
                updated_at=now,
            )
            # SQLite returns naive datetimes: let the database compare, then reload the row.
            .execution_options(synchronize_session=False)
        )
        await self.session.refresh(row)
        return row, bool(getattr(taken, "rowcount", 0))

    async def finish(
        self,
        key: str,
        attempt: int,
        *,
        status: str,
        error: str | None = None,
        provider_id: str | None = None,
        retry_until: datetime | None = None,
    ) -> bool:
        """Record the outcome of the send that took the row as its ``attempt`` (its attempts
        then; ``retry_until``: deferred, a deliver-later run tries it again until then). False:
        its lease ran out and a later try took the row over, which records its own outcome, or
        the row was ended meanwhile (given up, its task deleted), which said how."""
        until = {"retry_until": retry_until} if retry_until is not None else {}
        values = {"status": status, "error": error, "provider_id": provider_id, **until}
        return await self._set(key, *_held(attempt), lease_until=None, **values) > 0

    async def defer(self, user: str, request_key: str, until: datetime) -> None:
        """``user``'s notification ``request_key`` was handed to a deliver-later run: each of
        its deliveries that failed transiently is deferred, tried again until ``until``."""
        keys = Delivery.key.between(f"{request_key}:", f"{request_key};")
        failed = (Delivery.status == "failed") & Delivery.error.startswith("transient:")
        deferred = update(Delivery).where(keys, Delivery.user == user, failed)
        await self.session.execute(
            deferred.values(status="deferred", retry_until=until).execution_options(
                synchronize_session=False
            )
        )

    async def end(self, key: str, error: str, now: datetime) -> bool:
        """A delivery not to be sent any more: failed for good (``error``), unless it was sent,
        settled or taken by a send in flight meanwhile (False then: its holder has the last
        word, and nothing is to be said)."""
        ended = {"status": "failed", "error": error, "lease_until": None, "updated_at": now}
        return await self._set(key, Delivery.takeable(now), **ended) > 0

    async def retries_ended(self, key: str) -> bool:
        """A deferred delivery's deliver-later run is over: failed, with its last answer
        (False: not deferred any more, a try settled it meanwhile)."""
        return await self._set(key, Delivery.status == "deferred", status="failed") > 0

    async def give_up(self, key: str, error: str, now: datetime | None = None) -> bool:
        """A send left in flight that no try will finish: failed (``error``), unless its
        holder finished it meanwhile (False then: nothing to say); with ``now``, unless a live
        lease holds it then (a try, this row's or one that took it since, may be sending)."""
        only = [_PENDING] if now is None else [_PENDING, Delivery.takeable(now)]
        return await self._set(key, *only, status="failed", error=error, lease_until=None) > 0

    async def hold(self, key: str, attempt: int, lease_until: datetime) -> int:
        """The send under way (the try that took the row as its ``attempt``) keeps its row
        (still in flight) until ``lease_until``; 0 once another try took it over, or it was
        ended: the row is not this try's any more."""
        return await self._set(key, *_held(attempt), lease_until=lease_until)

    async def posted(self, key: str, attempt: int, provider_id: str | None) -> int:
        """Record progress of the send that holds the row (a message sent in several posts);
        0 as ``hold``'s."""
        return await self._set(key, *_held(attempt), provider_id=provider_id)

    async def _set(self, key: str, *only: SQLCoreOperations[bool], **values: Any) -> int:
        """The rows changed: 0 when ``only`` no longer holds (another try settled it)."""
        # A receiver's words and id, as stored on both databases: on PostgreSQL a NUL in them
        # or an id past its column failed the write after the message was sent (the row left
        # in flight: a retry of its key would send it again).
        if values.get("error") is not None:
            values["error"] = receivers_text(values["error"])
        if values.get("provider_id") is not None:
            values["provider_id"] = receivers_text(values["provider_id"], PROVIDER_ID)
        update_row = update(Delivery).where(Delivery.key == key, *only).values(**values)
        done = await self.session.execute(update_row.execution_options(synchronize_session=False))
        return cast(CursorResult[Any], done).rowcount

    async def under(self, user: str, request_key: str) -> list[Delivery]:
        """The deliveries of ``user``'s notification ``request_key``: the keys from
        ``request_key:`` up to ``request_key;``, a range of the key's index (keys compare bytewise;
        by the user and the key's LIKE, it read all of the user's rows: deliveries are kept)."""
        keys = (Delivery.key >= f"{request_key}:") & (Delivery.key < f"{request_key};")
        rows = await self.session.scalars(select(Delivery).where(keys))
        return [row for row in rows if row.user == user]

    async def list(
        self,
        *,
        user: str | None = None,
        status: str | None = None,
        channel: str | None = None,
        task: str | None = None,
        before_id: int | None = None,
        limit: int = 50,
        ended_before: datetime | None = None,
    ) -> list[Delivery]:
        """Newest first; page with ``before_id`` (the last id of the previous page). With
        ``ended_before``, a deferred row whose give-up fell before it is failed to ``status``
        (its retries are over: `Delivery.retries_ended`)."""
        query = select(Delivery).filter_by(**given(user=user, channel=channel, task=task))
        if ended_before is not None and status == "failed":
            query = query.where((Delivery.status == status) | Delivery.retries_ended(ended_before))
        elif ended_before is not None and status == "deferred":
            query = query.where(Delivery.status == status, ~Delivery.retries_ended(ended_before))
        elif status is not None:
            query = query.where(Delivery.status == status)
        if before_id is not None:
            query = query.where(Delivery.id < before_id)
        return list(await self.session.scalars(query.order_by(Delivery.id.desc()).limit(limit)))


class SnapshotRepository(Repository):
    """Web monitors' last two page texts per (task, url) (`poll_store.advance_snapshot`)."""

    async def purge_rounds(self, task: str) -> None:
        """``task``'s snapshots and its rounds' (a daily briefing's news, kept per date; a news
        digest's, kept per life: `ReminderRun.pages_key`)."""
        await self.session.execute(delete(WatchSnapshot).where(with_rounds(task)))
