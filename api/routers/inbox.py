"""The inbox channel's messages, for the calling user."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel

from ambient.storage.repositories import InboxRepository
from api.deps import CurrentUser, SessionDep

router = APIRouter(prefix="/inbox", tags=["inbox"])


class InboxMessagePublic(BaseModel):
    id: int
    kind: str
    title: str
    body: str
    link: str | None
    read: bool
    created_at: datetime


@router.get("", response_model=list[InboxMessagePublic])
async def list_inbox(
    user: CurrentUser,
    session: SessionDep,
    unread: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[InboxMessagePublic]:
    """The caller's inbox, newest first."""
    rows = await InboxRepository(session).list(user.name, limit=limit, unread_only=unread)
    return [InboxMessagePublic.model_validate(row, from_attributes=True) for row in rows]


@router.post("/{message_id}/read", response_model=InboxMessagePublic)
async def mark_read(message_id: int, user: CurrentUser, session: SessionDep) -> InboxMessagePublic:
    row = await InboxRepository(session).mark_read(user.name, message_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no inbox message {message_id} for you")
    await session.commit()
    return InboxMessagePublic.model_validate(row, from_attributes=True)
