"""Repositories: the queries the product needs, one class per table, given a session."""

from __future__ import annotations

import builtins
import hashlib
import secrets
from collections.abc import Callable, Collection
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import ColumnElement, case, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from ambient.domain.events import clipped
from ambient.domain.notify import Message, redact_target
from ambient.domain.users import (
    BRIEFING_TIMES,
    CLEARABLE_SETTINGS,
    OPERATOR,
    Grant,
    UserCreate,
    UserPublic,
    UserSettings,
    briefing_times_refused,
)
from ambient.refusals import Refusal
from ambient.render import markdown_plain
from ambient.storage.audit import AuditRepository
from ambient.storage.db import Database, Repository, given
from ambient.storage.models import (
    VOICEPRINT_INDEX,
    Delivery,
    Event,
    InboxMessage,
    User,
    WatchSnapshot,
)

TOKEN_PREFIX = "amb_"
# The inbox's title and link columns (PostgreSQL refuses a longer value; SQLite keeps it).
INBOX_TITLE, INBOX_LINK = 255, 1024
# A watch's checks turning failing and back (a web monitor's per page, a threshold watch's),
# and a page an update took out of a web monitor (failing no more: not watched).
FAILING_KINDS = ("watch.failing", "watch.recovered", "watch.url_removed")
# A delivery row still in flight: what give_up and hold change, and nothing settled.
_PENDING = Delivery.status == "pending"


class UserExistsError(Exception):
    """A user with that name is already registered."""


class SettingRefusedError(Exception):
    """A user's setting refused for the user's other settings or another user's (``field``
    names it); nothing changed."""

    def __init__(self, message: str | Refusal, field: str) -> None:
        super().__init__(message)
        self.field = field


class VoiceprintTakenError(SettingRefusedError):
    """A voiceprint id or new user name clashes with another user's (``field``: which one)."""


def _briefing_times_fit(current: dict[str, str], data: UserSettings) -> None:
    """The briefing times, as they would be stored, can make a briefing (else refused)."""
    given = data.model_dump(include=set(BRIEFING_TIMES), exclude_none=True)
    if (refused := briefing_times_refused({**current, **given}, set(given))) is not None:
        raise SettingRefusedError(refused[1], refused[0])


def new_api_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def user_subject(name: str) -> str:
    """The audit subject of a user's permissions."""
    return f"user:{name}"


def user_public(user: User) -> UserPublic:
    """A user as readers (admins' listings, grants, /users/me) see it: push targets redacted
    (their keys stay with the owner's /users/me/push)."""
    public = UserPublic.model_validate(user, from_attributes=True)
    channels = public.push_config.get("channels")
    if isinstance(channels, list):
        public.push_config["channels"] = [
            {**entry, "target": redact_target(str(entry.get("type")), entry["target"])}
            if isinstance(entry, dict) and isinstance(entry.get("target"), str)
            else entry
            for entry in channels
        ]
    return public


def _voiceprint_taken(voiceprint: str | None, field: str = "voiceprint_id") -> VoiceprintTakenError:
    return VoiceprintTakenError(
        Refusal(
            "%(voiceprint)s already names another user's voice: choose another",
            voiceprint=repr(voiceprint),
        ),
        field,
    )


def _voiceprint_clash(exc: IntegrityError) -> bool:
    """The database refused a voiceprint id another user has (uq_users_voiceprint)."""
    return VOICEPRINT_INDEX in str(exc.orig)


def speaks_as(key: str) -> ColumnElement[bool]:
    """Users a voice named ``key`` is: their voiceprint id or name, whatever its case."""
    key = key.lower()
    return or_(func.lower(User.voiceprint_id) == key, func.lower(User.name) == key)


GRANT_TRIES = 10  # reads of a field that grants at once keep changing before one is set


class UserRepository(Repository):
    async def create(
        self, data: UserCreate, *, actor: str = OPERATOR, token: str | None = None
    ) -> tuple[User, str]:
        """Register a user, audited as ``actor``; its row and API token (shown once, hashed):
        ``token``, else a new one."""
        _briefing_times_fit(BRIEFING_TIMES, data)
        await self._voiceprint_free(data.voiceprint_id, data.name)
        # The name speaks for the user too: not if it is already someone else's voiceprint.
        await self._voiceprint_free(data.name, data.name, "name")
        token = token or new_api_token()
        fields = data.model_dump(exclude_none=True)
        user = User(api_token_hash=hash_token(token), push_config={}, **fields)
        self.session.add(user)
        try:
            await self.session.flush()
        except IntegrityError as exc:
            await self.session.rollback()
            if _voiceprint_clash(exc):  # taken by another registration or update meanwhile
                raise _voiceprint_taken(data.voiceprint_id) from exc
            raise UserExistsError(data.name) from exc
        await AuditRepository(self.session).append(
            actor=actor,
            action="user.register",
            subject=user_subject(user.name),
            detail={"role": user.role, "rollback_permission": user.rollback_permission},
        )
        return user, token

    async def list_all(self) -> list[User]:
        return list(await self.session.scalars(select(User).order_by(User.name)))

    async def grant(self, user: User, grant: Grant, *, actor: str) -> dict[str, dict[str, str]]:
        """Change role and/or rollback permission (who may is ambient/grants.py's decision);
        the changes made, each audited old -> new ({}, nothing audited: already so)."""
        changes: dict[str, dict[str, str]] = {}
        for field, value in grant.model_dump(exclude_none=True).items():
            column = getattr(User, field)
            # Set only over the value read (compare and set): two grants at once each read the
            # same old value and audited "dry_run -> execute" twice, or answered "already so"
            # over a value another grant had just changed.
            for _ in range(GRANT_TRIES):
                old = await self.session.scalar(select(column).where(User.name == user.name))
                if old is None or old == value:
                    break
                done = await self.session.execute(
                    update(User)
                    .where(User.name == user.name, column == old)
                    .values({field: value})
                    .execution_options(synchronize_session=False)
                )
                if done.rowcount == 1:  # type: ignore[attr-defined]
                    changes[field] = {"old": old, "new": value}
                    break
        await self.session.refresh(user)
        if changes:
            await AuditRepository(self.session).append(
                actor=actor, action="user.grant", subject=user_subject(user.name), detail=changes
            )
        return changes

    async def get(self, name: str) -> User | None:
        return await self.session.scalar(select(User).where(User.name == name))

    async def existing(self, name: str, refusal: Exception) -> User:
        """The user named ``name``; without one, ``refusal`` is raised."""
        if (user := await self.get(name)) is None:
            raise refusal
        return user

    async def by_voiceprint(self, voiceprint: str) -> User | None:
        """The user with this voiceprint id or name (kept apart from every other user's, and
        unique whatever its case, so matched so), as a voice tool's speaker is found."""
        return await self.session.scalar(select(User).where(speaks_as(voiceprint.strip())))

    async def by_token(self, token: str) -> User | None:
        query = select(User).where(User.api_token_hash == hash_token(token))
        return await self.session.scalar(query)

    async def update(self, user: User, data: UserSettings) -> None:
        """Change ``user``'s own settings (SettingRefusedError: nothing changed, rolled back)."""
        _briefing_times_fit({field: getattr(user, field) for field in BRIEFING_TIMES}, data)
        await self._voiceprint_free(data.voiceprint_id, user.name)
        for field, value in data.model_dump(exclude_unset=True).items():
            if value is not None or field in CLEARABLE_SETTINGS:
                setattr(user, field, value)
        try:
            await self.session.flush()
        except IntegrityError as exc:
            # Not a savepoint: on SQLite releasing one that began the transaction commits it.
            await self.session.rollback()
            await self.session.refresh(user)  # its stored values, not the refused ones
            if _voiceprint_clash(exc):  # another update took it after the check above
                raise _voiceprint_taken(data.voiceprint_id) from exc
            raise

    async def _voiceprint_free(
        self, voiceprint: str | None, name: str, field: str = "voiceprint_id"
    ) -> None:
        # A speaker is found by voiceprint id or user name, case-insensitively
        # (ambient.speakers.resolve_speaker): one voice named twice answers to nobody.
        if voiceprint is None:
            return
        query = select(User.id).where(User.name != name, speaks_as(voiceprint))
        if await self.session.scalar(query.limit(1)) is not None:
            raise _voiceprint_taken(voiceprint, field)

    async def rotate_token(self, user: User) -> str:
        token = new_api_token()
        await self.set_token(user, token)
        return token

    async def set_token(self, user: User, token: str) -> None:
        user.api_token_hash = hash_token(token)
        await self.session.flush()

    async def set_push_config(self, user: User, config: dict[str, Any]) -> None:
        user.push_config = config
        await self.session.flush()


async def user_named(db: Database, name: str) -> User | None:
    """The user named ``name`` (None: no such user), read in a session of its own."""
    async with db.session() as session:
        return await UserRepository(session).get(name)


def not_registered(name: str) -> str:
    """The one refusal of a name no user has, in every door's words."""
    return f"no user {name!r}: an admin registers it (ambient user create {name})"


async def registered(db: Database, name: str, refusal: Callable[[str], Exception]) -> User:
    """The user named ``name``; without one, ``refusal`` saying how to register: work made for
    nobody would run unseen, delivered to no one."""
    if (user := await user_named(db, name)) is None:
        raise refusal(not_registered(name))
    return user


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
        if (found := await self._keyed(idempotency_key)) is not None:
            return found
        event = Event(
            kind=kind, user=user, task=task, payload=payload or {}, idempotency_key=idempotency_key
        )
        return await self._insert_once(event, partial(self._keyed, idempotency_key))

    async def _keyed(self, key: str | None) -> Event | None:
        if key is None:
            return None
        return await self.session.scalar(select(Event).where(Event.idempotency_key == key))

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
        """Newest first; ``before_id``: older than that event (the next page)."""
        query = select(Event).filter_by(**given(user=user, kind=kind, task=task))
        if since is not None:
            query = query.where(Event.created_at >= since)
        if before_id is not None:
            query = query.where(Event.id < before_id)
        return list(await self.session.scalars(query.order_by(Event.id.desc()).limit(limit)))

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
        """The user's watches failing now (or this ``task``'s), as (task, url) longest failing
        first: a web monitor's page (its ``url``) or a threshold watch's metric (no ``url``)
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

        def last(kind: str) -> Any:  # the task's newest event of ``kind``; none: NULL
            return func.max(case((Event.kind == f"watch.{kind}", Event.id))).label(kind)

        controls = (
            select(Event.task, last("stopped"), last("paused"), last("resumed"))
            .where(*mine, Event.kind.in_(("watch.stopped", "watch.paused", "watch.resumed")))
            .group_by(Event.task)
            .subquery()
        )
        stop, pause, resume = controls.c.stopped, controls.c.paused, controls.c.resumed
        not_paused = or_(pause.is_(None), pause < resume, pause < stop)
        query = (
            select(Event.task, page)
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
        return [(task, url) for task, url in rows if task is not None]


def inbox_fields(message: Message) -> tuple[str, str, str | None]:
    """A message's (title, body, link) as the inbox stores them: a title or link longer than
    its column (a watched URL may be 2048 characters) is kept, not refused: the title cut with
    an ellipsis, the link in the body. The body is shown as plain text (``markdown_plain``)."""
    title, link = clipped(message.title, INBOX_TITLE), message.link
    body = markdown_plain(message.body)
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
        *,
        status: str,
        error: str | None = None,
        provider_id: str | None = None,
        retry_until: datetime | None = None,
    ) -> None:
        """Record the outcome of the send that held the lease (``retry_until``: deferred, a
        deliver-later run tries it again until then)."""
        until = {"retry_until": retry_until} if retry_until is not None else {}
        await self._set(
            key, status=status, error=error, provider_id=provider_id, lease_until=None, **until
        )

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

    async def end(self, key: str, error: str, now: datetime) -> None:
        """A delivery not to be sent any more: failed for good (``error``), unless it was sent,
        settled or taken by a send in flight meanwhile."""
        ended = update(Delivery).where(Delivery.key == key, Delivery.takeable(now))
        ended = ended.values(status="failed", error=error, lease_until=None, updated_at=now)
        await self.session.execute(ended.execution_options(synchronize_session=False))

    async def retries_ended(self, key: str) -> None:
        """A deferred delivery's deliver-later run is over: failed, with its last answer."""
        await self._set(key, Delivery.status == "deferred", status="failed")

    async def give_up(self, key: str, error: str) -> None:
        """A send left in flight that no try will finish: failed (``error``), unless its
        holder finished it meanwhile."""
        await self._set(key, _PENDING, status="failed", error=error, lease_until=None)

    async def hold(self, key: str, lease_until: datetime) -> None:
        """The send under way keeps its row (still in flight) until ``lease_until``."""
        await self._set(key, _PENDING, lease_until=lease_until)

    async def posted(self, key: str, provider_id: str) -> None:
        """Record progress of the send that holds the lease (a message sent in several posts)."""
        await self._set(key, provider_id=provider_id)

    async def _set(self, key: str, *only: ColumnElement[bool], **values: Any) -> None:
        update_row = update(Delivery).where(Delivery.key == key, *only).values(**values)
        await self.session.execute(update_row.execution_options(synchronize_session=False))

    async def under(self, user: str, request_key: str) -> list[Delivery]:
        """The deliveries of ``user``'s notification ``request_key``: the keys from
        ``request_key:`` to ``request_key;``, a range of the key's index (keys compare bytewise;
        by the user and the key's LIKE, it read all of the user's rows: deliveries are kept)."""
        keys = Delivery.key.between(f"{request_key}:", f"{request_key};")
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

    async def purge(self, task: str) -> None:
        await self.session.execute(delete(WatchSnapshot).where(WatchSnapshot.task == task))
