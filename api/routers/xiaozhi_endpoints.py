"""Xiaozhi endpoints: the xiaozhi.me 接入点 the bridge dials (owner or admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from ambient.bridge.endpoints import (
    EndpointCreate,
    EndpointError,
    EndpointInputError,
    EndpointNotFoundError,
    EndpointPermissionError,
    EndpointPublic,
    Endpoints,
)
from ambient.domain.numbers import WholeNumber
from ambient.storage.models import MAX_ID
from api.deps import CurrentUser, SessionDep, StateDep
from api.errors import refusal, unprocessable

router = APIRouter(prefix="/xiaozhi/endpoints", tags=["xiaozhi"])

# The refusals no field is to blame for (every EndpointError is one of these or a field's).
STATUSES = {EndpointPermissionError: 403, EndpointNotFoundError: 404}


def http_error(exc: EndpointError) -> Exception:
    if isinstance(exc, EndpointInputError):
        return unprocessable(([exc.field], exc.message))
    return refusal(exc, STATUSES)


@router.post("", status_code=status.HTTP_201_CREATED)
async def add_endpoint(
    body: EndpointCreate, user: CurrentUser, session: SessionDep, state: StateDep
) -> EndpointPublic:
    """Register a 接入点 URL for ``user`` (yourself, or anyone as an admin); dialed within 5 s."""
    return await Endpoints.of(session, state.settings).add(user, body)


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
    return await Endpoints.of(session, state.settings).remove(user, endpoint_id)
