"""User tools: who am I, and (admins) grant roles and rollback permission to others.

The checks are here, on the server, against the database: a tool argument never carries a role.
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field, ValidationError

from ambient import grants
from ambient.domain.users import Grant, Granted, Role, RollbackPermission, UserPublic
from ambient.storage.repositories import user_public
from mcp_server.auth import app_state, current_user_row
from mcp_server.tools.hints import READ, hints


async def whoami(ctx: Context[Any, Any]) -> UserPublic:
    """Your user: role, rollback permission and settings."""
    return user_public(await current_user_row(ctx))


async def grant_permission(
    ctx: Context[Any, Any],
    user_name: Annotated[
        str, Field(max_length=63, description="the user to change (not yourself)")
    ],
    rollback_permission: Annotated[
        RollbackPermission | None,
        Field(description="none, dry_run or execute"),
    ] = None,
    role: Annotated[Role | None, Field(description="admin or member")] = None,
) -> Granted:
    """Grant another user a role and/or rollback permission (admins only; audited)."""
    caller = await current_user_row(ctx)
    try:
        change = Grant(role=role, rollback_permission=rollback_permission)
    except ValidationError:
        raise ToolError("Nothing to grant: give rollback_permission and/or role.") from None
    # Who may grant is decided (and a refusal audited) by the service, as for every door.
    async with app_state(ctx).db.session() as session:
        return await grants.grant(session, caller, user_name, change)


def register(mcp: MCPServer[Any]) -> None:
    mcp.add_tool(whoami, annotations=READ)
    # Destructive: a chat agent asks the person before a permission change a model calls.
    mcp.add_tool(
        grant_permission, annotations=hints(read_only=False, open_world=False, destructive=True)
    )
