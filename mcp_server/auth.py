"""Bearer tokens to users: the caller's identity decides whose tasks and permissions apply."""

from __future__ import annotations

from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from sqlalchemy.exc import SQLAlchemyError

from ambient.storage.models import User
from ambient.storage.users import UserRepository, registered, user_named
from ambient.wiring import AppState, StateHolder

# A tool's context: the SDK passes it to the parameter so annotated (found by type hints).
Ctx = Context[Any, Any]

# The audit actor of a call that has no user (a stdio session started without --user).
ANONYMOUS = "(no user)"


class UserTokenVerifier:
    """Accepts the API tokens users get at registration (stored hashed); with ``voice``, a
    user's voice token too (the voice profile's server: a 小智 server's settings file holds
    one that opens nothing else)."""

    def __init__(self, holder: StateHolder, *, voice: bool = False) -> None:
        self._holder = holder
        self._voice = voice

    async def verify_token(self, token: str) -> AccessToken | None:
        async with self._holder.get().db.session() as session:
            users = UserRepository(session)
            user, scope = await users.by_token(token), "user"
            if user is None and self._voice:
                user, scope = await users.by_voice_token(token), "voice"
        if user is None:
            return None
        return AccessToken(token=token, client_id=user.name, scopes=[scope], subject=user.name)


def app_state(ctx: Context[AppState, Any]) -> AppState:
    return ctx.request_context.lifespan_context


def caller(ctx: Ctx) -> str | None:
    """The calling user: the bearer token's owner over HTTP, `--user` over stdio, else None."""
    token = get_access_token()
    return token.client_id if token is not None else app_state(ctx).stdio_user


def current_user(ctx: Ctx) -> str:
    """The calling user; a session without one is refused."""
    user = caller(ctx)
    if user is None:
        raise ToolError(
            "No user for this session: start the server with `ambient mcp --user NAME`."
        )
    return user


async def sees_operator_detail(ctx: Ctx, *, database_answers: bool = True) -> bool:
    """Whether the caller may see where things run and their errors as said: an admin, or a
    stdio session started without a user (whoever runs it has the settings already). With the
    database down nobody is known: a user hears it in their terms."""
    name = caller(ctx)
    if name is None:
        return True
    if not database_answers:
        return False
    try:
        row = await user_named(app_state(ctx).db, name)
    except (SQLAlchemyError, OSError):
        return False
    return row is not None and row.is_admin


async def current_user_row(ctx: Ctx) -> User:
    """The caller's row, read now: roles and permissions come from the database, never the call."""
    return await registered(app_state(ctx).db, current_user(ctx), ToolError)
