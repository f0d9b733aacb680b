"""Xiaozhi endpoints: the xiaozhi.me 接入点 the bridge dials (owner or admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status

from ambient.bridge.endpoints import (
    EndpointCreate,
    EndpointInputError,
    EndpointNotFoundError,
    EndpointPermissionError,
    EndpointPublic,
    Endpoints,
)
from ambient.domain.numbers import WholeNumber
from ambient.storage.models import MAX_ID
from api.deps import CurrentUser, SessionDep, StateDep
from api.errors import unprocessable

router = APIRouter(prefix="/xiaozhi/endpoints", tags=["xiaozhi"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def add_endpoint(
    body: EndpointCreate, user: CurrentUser, session: SessionDep, state: StateDep
) -> EndpointPublic:
    """Register a 接入点 URL for ``user`` (yourself, or anyone as an admin); dialed within 5 s."""
    try:
        return await Endpoints.of(session, state.settings).add(user, body)
    except EndpointInputError as exc:
        raise unprocessable(([exc.field], exc.message)) from None
    except EndpointPermissionError as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None


@router.get("")
async def list_endpoints(
    user: CurrentUser, session: SessionDep, state: StateDep
) -> list[EndpointPublic]:
    """Your endpoints (an admin sees all) with their state; tokens masked."""
    return await Endpoints.of(session, state.settings).list(user)


@router.delete("/{endpoint_id}")
async def remove_endpoint(
    endpoint_id: Annotated[WholeNumber, Path(ge=1, le=MAX_ID)],
    user: CurrentUser,
    session: SessionDep,
    state: StateDep,
) -> EndpointPublic:
    """Remove an endpoint; its connection is closed within 5 s."""
    try:
        return await Endpoints.of(session, state.settings).remove(user, endpoint_id)
    except EndpointNotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
