"""Deliveries: every send of a notification to one target, with its outcome and error."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ambient import history
from ambient.domain.notify import ChannelType
from ambient.domain.numbers import WholeNumber
from ambient.domain.users import UserName
from ambient.history import DeliveryPublic, DeliveryState
from ambient.storage.models import MAX_ID
from api.deps import CurrentUser, SessionDep

router = APIRouter(prefix="/deliveries", tags=["deliveries"])


@router.get("")
async def list_deliveries(
    user: CurrentUser,
    session: SessionDep,
    state: Annotated[
        DeliveryState | None, Query(alias="status", description="pending, sent, failed, suppressed")
    ] = None,
    channel: ChannelType | None = None,
    task: Annotated[str | None, Query(max_length=255)] = None,
    before_id: Annotated[
        WholeNumber | None, Query(ge=1, le=MAX_ID, description="next page: the last id seen")
    ] = None,
    limit: Annotated[WholeNumber, Query(ge=1, le=500)] = 50,
    of: Annotated[
        UserName | None, Query(alias="user", description="another user's deliveries (admins only)")
    ] = None,
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
    )
