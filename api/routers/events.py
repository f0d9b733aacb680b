"""Events: what happened, for the calling user; also as a server-sent stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from sse_starlette.sse import EventSourceResponse

from ambient import history
from ambient.domain.users import UserName
from ambient.history import MAX_ID, EventPublic, ScopeError
from ambient.storage.repositories import EventRepository
from api.deps import CurrentUser, SessionDep, StateDep

router = APIRouter(prefix="/events", tags=["events"])
POLL_SECONDS = 1.0


public = history.event_public
Limit = Annotated[int, Query(ge=1, le=1000)]
Of = Annotated[
    UserName | None, Query(alias="user", description="another user's events (admins only)")
]


@router.get("", response_model=list[EventPublic])
async def list_events(
    user: CurrentUser,
    session: SessionDep,
    task: Annotated[str | None, Query(max_length=255)] = None,
    kind: Annotated[str | None, Query(max_length=64, description="e.g. delivery.failed")] = None,
    since: datetime | None = None,
    limit: Limit = 100,
    of: Of = None,
) -> list[EventPublic]:
    """The caller's events, newest first."""
    name = _whose(user.name, user.role == "admin", of)
    return await history.events(session, name, kind=kind, task=task, since=since, limit=limit)


def _whose(caller: str, is_admin: bool, of: str | None) -> str:
    try:
        return history.whose(caller, is_admin, of)
    except ScopeError as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None


@router.get("/stream")
async def stream_events(
    request: Request,
    user: CurrentUser,
    state: StateDep,
    after_id: Annotated[int, Query(ge=0, le=MAX_ID, description="start after this event id")] = 0,
) -> EventSourceResponse:
    """Server-sent events: every new event of the caller as it is recorded."""
    name = user.name

    async def events() -> AsyncIterator[dict[str, str]]:
        last = after_id
        while not await request.is_disconnected():
            async with state.db.session() as session:
                rows = await EventRepository(session).list(user=name, after_id=last, limit=100)
            for row in rows:
                last = row.id
                yield {
                    "id": str(row.id),
                    "event": row.kind,
                    "data": json.dumps(public(row).model_dump(mode="json"), ensure_ascii=False),
                }
            if not rows:
                await asyncio.sleep(POLL_SECONDS)

    return EventSourceResponse(events())


@router.get("/{kind}", response_model=list[EventPublic])
async def list_events_of_kind(
    kind: str, user: CurrentUser, session: SessionDep, limit: Limit = 100, of: Of = None
) -> list[EventPublic]:
    """The caller's events of one kind (e.g. watch.breach), newest first."""
    name = _whose(user.name, user.role == "admin", of)
    return await history.events(session, name, kind=kind, limit=limit)
