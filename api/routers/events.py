"""Events: what happened, for the calling user; also as a server-sent stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from sse_starlette.sse import EventSourceResponse

from ambient.storage.models import Event
from ambient.storage.repositories import EventRepository
from api.deps import CurrentUser, SessionDep, StateDep

router = APIRouter(prefix="/events", tags=["events"])
POLL_SECONDS = 1.0


class EventPublic(BaseModel):
    id: int
    kind: str
    user: str | None
    task: str | None
    payload: dict[str, Any]
    created_at: datetime


def public(event: Event) -> EventPublic:
    return EventPublic.model_validate(event, from_attributes=True)


Limit = Annotated[int, Query(ge=1, le=1000)]


@router.get("", response_model=list[EventPublic])
async def list_events(
    user: CurrentUser,
    session: SessionDep,
    task: str | None = None,
    since: datetime | None = None,
    limit: Limit = 100,
) -> list[EventPublic]:
    """The caller's events, newest first."""
    rows = await EventRepository(session).list(user=user.name, task=task, since=since, limit=limit)
    return [public(row) for row in rows]


@router.get("/stream")
async def stream_events(
    request: Request,
    user: CurrentUser,
    state: StateDep,
    after_id: Annotated[int, Query(ge=0, description="start after this event id")] = 0,
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
    kind: str, user: CurrentUser, session: SessionDep, limit: Limit = 100
) -> list[EventPublic]:
    """The caller's events of one kind (e.g. watch.breach), newest first."""
    rows = await EventRepository(session).list(user=user.name, kind=kind, limit=limit)
    return [public(row) for row in rows]
