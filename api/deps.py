"""Dependency aliases for routers: the app's state (settings, Temporal...), a database session,
the calling user."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Protocol, TypeVar, cast

from fastapi import Depends, HTTPException, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from ambient.storage.models import User
from ambient.storage.users import VOICE_TOKEN_PREFIX, UserRepository
from ambient.wiring import AppState
from ambient.xiaozhi import DEVICE_TOKEN_PREFIX
from api.errors import unauthorized

bearer = HTTPBearer(auto_error=False, description="The API token printed at registration")


def get_state(request: Request) -> AppState:
    return cast(AppState, request.app.state.holder.get())


StateDep = Annotated[AppState, Depends(get_state)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with state.db.session() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


class Created(Protocol):
    created: bool


R = TypeVar("R", bound=Created)


def created_or_found(ref: R, response: Response) -> R:
    """``ref`` as a create answers it: 201 when it made the thing, 200 when it found it (a
    repeat, a client's retry, an alert joined to its workload's live run): nothing was made."""
    if not ref.created:
        response.status_code = status.HTTP_200_OK
    return ref


# The refusals of every door that takes an API token (the MCP paths say them too, api.app).
INVALID_TOKEN = "invalid token"
MISSING_TOKEN = "missing bearer token: send 'Authorization: Bearer <token>'"
# ASCII only: it is said in a WWW-Authenticate header too (latin-1).
VOICE_TOKEN_ONLY = "a voice token (ambv_) opens /mcp/voice only: send your API token here"


# Both tokens sit in xiaozhi-server's settings: the one swapped for the other is said so.
DEVICE_TOKEN_ONLY = (
    "a device token (xzd_) opens /xiaozhi/context only: send a voice token (ambv_) to "
    "/mcp/voice, your API token to the other doors"
)


def invalid_token(token: str, *, voice: bool = False) -> str:
    """Why ``token`` opens nothing here (``voice``: the voice door): a voice or device token is
    said as one (a settings file's token copied to the wrong door), any other as invalid."""
    if token.strip().startswith(DEVICE_TOKEN_PREFIX):
        return DEVICE_TOKEN_ONLY
    if token.strip().startswith(VOICE_TOKEN_PREFIX) and not voice:
        return VOICE_TOKEN_ONLY
    return INVALID_TOKEN


async def get_optional_user(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> User | None:
    """The caller if a token was sent (401 when it is not valid), None without one."""
    if credentials is None:
        return None
    user = await UserRepository(session).by_token(credentials.credentials)
    # End the read transaction: the session would otherwise hold a pooled connection for the
    # whole request, Temporal round trips included, and a burst of requests (an alert storm
    # on POST /remediations) queues for the pool and times out. Objects stay loaded
    # (expire_on_commit=False) and attached; a handler's later query opens a new transaction.
    await session.commit()
    if user is None:
        raise unauthorized(invalid_token(credentials.credentials))
    # An admin is told where a part that is down runs (api.errors); anyone else what it means.
    request.state.operator = user.is_admin
    return user


OptionalUser = Annotated[User | None, Depends(get_optional_user)]


async def get_current_user(user: OptionalUser) -> User:
    if user is None:
        raise unauthorized(MISSING_TOKEN)
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_admin(user: CurrentUser) -> User:
    if not user.is_admin:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "only an admin may do this; ask an admin of this server"
        )
    return user


AdminUser = Annotated[User, Depends(get_admin)]
