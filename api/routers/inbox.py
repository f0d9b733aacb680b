"""The inbox channel's messages, for the calling user (admins may name another user)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status

from ambient import history
from ambient.domain.numbers import WholeNumber
from ambient.domain.users import UserName
from ambient.history import InboxMessagePublic
from ambient.storage.models import MAX_ID
from ambient.storage.repositories import InboxRepository
from api.deps import CurrentUser, SessionDep

router = APIRouter(prefix="/inbox", tags=["inbox"])


@router.get("")
async def list_inbox(
    user: CurrentUser,
    session: SessionDep,
    unread: bool = False,
    limit: Annotated[WholeNumber, Query(ge=1, le=500)] = 50,
    of: Annotated[
        UserName | None, Query(alias="user", description="another user's inbox (admins only)")
    ] = None,
) -> list[InboxMessagePublic]:
    """The caller's inbox, newest first."""
    name = await history.whose(session, user.name, user.is_admin, of)
    return await history.inbox(session, name, unread_only=unread, limit=limit)


@router.post("/{message_id}/read")
async def mark_read(
    message_id: Annotated[WholeNumber, Path(ge=1, le=MAX_ID, description="the message id")],
    user: CurrentUser,
    session: SessionDep,
) -> InboxMessagePublic:
    """Mark one of the caller's messages read (404 for anyone else's)."""
    row = await InboxRepository(session).mark_read(user.name, message_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no inbox message {message_id} for you")
    await session.commit()
    return InboxMessagePublic.model_validate(row)
