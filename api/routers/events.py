"""What happened and what was sent, for the calling user (admins may name another user):
events, also as a server-sent stream; the inbox channel's messages; deliveries, every send of
a notification to one target with its outcome and error."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Path, Query, Request, status
from sqlalchemy import select
from sse_starlette.sse import EventSourceResponse

from ambient import history
from ambient.domain.notify import ChannelType
from ambient.domain.numbers import WHOLE_NUMBER
from ambient.domain.times import IsoTime
from ambient.domain.users import UserName
from ambient.history import (
    DeliveryPublic,
    DeliveryState,
    EventPublic,
    FilterError,
    InboxMessagePublic,
    ScopeError,
)
from ambient.storage.db import Database
from ambient.storage.event_cursor import CursorTokenError, EventCursor, follow
from ambient.storage.models import MAX_ID, User
from ambient.storage.repositories import InboxRepository
from api.deps import CurrentUser, SessionDep, StateDep
from api.errors import answers, unprocessable

# Another user's history asked for by a member: 403 (``http_error``).
router = APIRouter(prefix="/events", tags=["events"], responses=answers(403))
inbox_router = APIRouter(prefix="/inbox", tags=["inbox"], responses=answers(403))
deliveries_router = APIRouter(prefix="/deliveries", tags=["deliveries"], responses=answers(403))
POLL_SECONDS = 1.0
# Streams one user keeps open at once on an API process (a newer one ends the oldest): each
# reads the database every poll, and a member holding hundreds took the connection pool every
# other request waits on.
MAX_STREAMS = 5
SURPLUS = 60_000  # ms a stream ended for a newer one tells its client to wait before another


def http_error(exc: ScopeError) -> Exception:
    """Another user's events, inbox or deliveries asked for by a member: 403."""
    return HTTPException(status.HTTP_403_FORBIDDEN, str(exc))


def filter_error(exc: FilterError) -> Exception:
    """A filter no record can match (the filters are query parameters): 422 naming it."""
    return unprocessable(([exc.field], str(exc)), where="query")


Limit = Annotated[int, Query(ge=1, le=1000), WHOLE_NUMBER]
# The next page: the last id seen (the pages MCP's list_events and read_inbox give).
BeforeId = Annotated[
    int | None, Query(ge=1, le=MAX_ID, description="next page: the last id seen"), WHOLE_NUMBER
]


def Of(what: str) -> Any:
    """The ``user`` query parameter: whose ``what`` an admin reads (the caller's by default)."""
    return Query(alias="user", description=f"another user's {what} (admins only)")


@router.get("")
async def list_events(
    user: CurrentUser,
    session: SessionDep,
    task: Annotated[str | None, Query(max_length=255)] = None,
    kind: Annotated[str | None, Query(max_length=64, description="e.g. delivery.failed")] = None,
    since: Annotated[
        IsoTime | None, Query(description="ISO 8601; without an offset, in your time zone")
    ] = None,
    before_id: BeforeId = None,
    limit: Limit = 100,
    of: Annotated[UserName | None, Of("events")] = None,
) -> list[EventPublic]:
    """The caller's events, newest first; older ones page by page with ``before_id``."""
    name = await history.whose(session, user.name, user.is_admin, of)
    return await history.events(
        session,
        name,
        kind=kind,
        task=task,
        since=since,
        before_id=before_id,
        limit=limit,
        operator=user.is_admin,
        zone=user.timezone,  # a since without an offset: the caller's wall time
    )


LastEventId = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        max_length=30_000,
        description="the id of the last event received (sent by EventSource on reconnect)",
    ),
]


def stream(
    request: Request,
    db: Database,
    user: User,
    after_id: int,
    last_event_id: str | None,
    frame: Callable[[EventPublic], tuple[str, Any]],
) -> EventSourceResponse:
    """``user``'s new events as server-sent events, ``frame(event)`` naming each one's event:
    each as ``user`` may read it (``event_public``: a failure's internal error masked for a
    member), whatever the door."""
    # From the Last-Event-ID a reconnecting client sends, else after ``after_id``; until the
    # client leaves or the token it was opened with is rotated.
    if last_event_id is None:
        cursor = EventCursor(last=after_id)
    else:
        try:
            cursor = EventCursor.parse(last_event_id)
        except CursorTokenError as exc:
            message = f"must be an event id from this stream: {exc}"
            raise unprocessable(
                (["Last-Event-ID"], message), where="header", given=last_event_id[:100]
            ) from None

    opened_with = user.api_token_hash, user.role
    # This user's streams on this process, oldest first, each by the flag that ends it.
    streams: dict[str, deque[asyncio.Event]] = request.app.state.__dict__.setdefault(
        "event_streams", {}
    )
    ended = asyncio.Event()

    async def stopped() -> bool:
        # A stream lasts no longer than its token and its role: rotating a token that leaked
        # must also end what was opened with it, and an admin made a member stops reading
        # events as an operator reads them (the errors unmasked).
        if ended.is_set() or await request.is_disconnected():
            return True
        async with db.session() as session:
            query = select(User.api_token_hash, User.role).where(User.name == user.name)
            return tuple((await session.execute(query)).one_or_none() or ()) != opened_with

    async def events() -> AsyncIterator[dict[str, str | int]]:
        # Past MAX_STREAMS the oldest ends at its next poll, not the newest refused: a tab
        # whose connection died unseen (a laptop asleep) held its place for minutes, and a
        # browser's EventSource never opens again after a refusal.
        mine = streams.setdefault(user.name, deque())
        mine.append(ended)
        while len(mine) > MAX_STREAMS:
            mine.popleft().set()
        try:
            async for row, token in follow(
                db, cursor, user=user.name, stopped=stopped, poll_seconds=POLL_SECONDS
            ):
                event, data = frame(history.event_public(row, operator=user.is_admin))
                yield {
                    "id": token,
                    "event": event,
                    "data": json.dumps(data, ensure_ascii=False, default=str),
                }
            if ended.is_set():
                # Its client (a browser's EventSource) would open it again at once, ending
                # the next oldest, and so on around every tab: a surplus one waits a minute.
                yield {"comment": "a newer stream of yours took its place", "retry": SURPLUS}
        finally:
            with contextlib.suppress(ValueError):  # ended as the oldest: taken out already
                mine.remove(ended)
            if not mine and streams.get(user.name) is mine:
                del streams[user.name]

    return EventSourceResponse(events())


@router.get("/stream")
async def stream_events(
    request: Request,
    user: CurrentUser,
    state: StateDep,
    after_id: Annotated[
        int, Query(ge=0, le=MAX_ID, description="start after this event id"), WHOLE_NUMBER
    ] = 0,
    last_event_id: LastEventId = None,
) -> EventSourceResponse:
    """Server-sent events: every new event of the caller as it is committed.

    Each event's ``id`` is a cursor; a client that reconnects sends the last one back as
    ``Last-Event-ID`` (EventSource does) and misses nothing, late commits included.
    """

    def frame(event: EventPublic) -> tuple[str, Any]:
        return event.kind, event.model_dump(mode="json")

    return stream(request, state.db, user, after_id, last_event_id, frame)


@router.get("/{kind}")
async def list_events_of_kind(
    kind: str,
    user: CurrentUser,
    session: SessionDep,
    before_id: BeforeId = None,
    limit: Limit = 100,
    of: Annotated[UserName | None, Of("events")] = None,
) -> list[EventPublic]:
    """The caller's events of one kind (e.g. watch.breach), newest first."""
    try:
        return await list_events(user, session, kind=kind, before_id=before_id, limit=limit, of=of)
    except FilterError as exc:
        if exc.field != "kind":
            raise
        raise unprocessable((["kind"], str(exc)), where="path") from None  # not a query here


@inbox_router.get("")
async def list_inbox(
    user: CurrentUser,
    session: SessionDep,
    unread: bool = False,
    before_id: BeforeId = None,
    limit: Annotated[int, Query(ge=1, le=500), WHOLE_NUMBER] = 50,
    of: Annotated[UserName | None, Of("inbox")] = None,
) -> list[InboxMessagePublic]:
    """The caller's inbox, newest first; older messages page by page with ``before_id``."""
    name = await history.whose(session, user.name, user.is_admin, of)
    return await history.inbox(session, name, unread_only=unread, before_id=before_id, limit=limit)


@inbox_router.post("/{message_id}/read")
async def mark_read(
    message_id: Annotated[int, Path(ge=1, le=MAX_ID, description="the message id"), WHOLE_NUMBER],
    user: CurrentUser,
    session: SessionDep,
) -> InboxMessagePublic:
    """Mark one of the caller's messages read (404 for anyone else's)."""
    row = await InboxRepository(session).mark_read(user.name, message_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no inbox message {message_id} for you")
    await session.commit()
    return InboxMessagePublic.model_validate(row)


@deliveries_router.get("")
async def list_deliveries(
    user: CurrentUser,
    session: SessionDep,
    state: Annotated[
        DeliveryState | None,
        Query(alias="status", description="pending, deferred, sent, failed, suppressed"),
    ] = None,
    channel: ChannelType | None = None,
    task: Annotated[str | None, Query(max_length=255)] = None,
    before_id: BeforeId = None,
    limit: Annotated[int, Query(ge=1, le=500), WHOLE_NUMBER] = 50,
    of: Annotated[UserName | None, Of("deliveries")] = None,
) -> list[DeliveryPublic]:
    """The caller's deliveries, newest first; failures carry the error that says what to fix."""
    name = await history.whose(session, user.name, user.is_admin, of)
    return await history.deliveries(
        session,
        name,
        status=state,
        channel=channel,
        task=task,
        before_id=before_id,
        limit=limit,
        operator=user.is_admin,
    )
