"""User tools: who am I, where my notifications go (the area push), and (admins) grant roles
and rollback permission to others.

The checks are here, on the server, against the database: a tool argument never carries a role.
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field, ValidationError

from ambient import grants
from ambient.clients.notify.targets import TargetError
from ambient.domain.field_errors import field_problems
from ambient.domain.notify import MAX_TARGETS
from ambient.domain.push import (
    PushChannelSent,
    PushConfig,
    QuietHours,
    keeping,
    stored_push_config,
)
from ambient.domain.users import Grant, Granted, Role, RollbackPermission, UserPublic
from ambient.push import save_push_config
from ambient.storage.users import UserRepository, not_registered, user_public
from mcp_server.auth import Ctx, app_state, current_user, current_user_row
from mcp_server.tools.hints import READ, REPLACE


async def whoami(ctx: Ctx) -> UserPublic:
    """Your user: role, rollback permission and settings."""
    return user_public(await current_user_row(ctx))


async def grant_permission(
    ctx: Ctx,
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


CHANNELS = (
    'At most 20 of {"type": "email"|"wecom"|"dingtalk"|"webhook"|"apprise"|"sms"|"inbox", '
    '"target": ..., "kinds": ["briefing", "watch", "remediation"]} (kinds: those three when '
    "omitted). Targets: an email address, a phone number (+8613800000000), a WeCom robot key "
    "or URL, DINGTALK_TOKEN#SIGN_SECRET or the robot URL, an http(s) webhook URL on a public "
    "address, an Apprise URL, or secret:NAME for a server secret you may use; inbox: empty "
    "(your own inbox)."
)
QUIET = (
    'Optional {"start": "22:00", "end": "07:30"} in your time zone: pushes in these hours are '
    "held back (recorded as suppressed, not sent later); the inbox still receives them, and "
    'remediation still goes out unless "include_remediation": true.'
)


async def get_push_config(ctx: Ctx) -> PushConfig:
    """Your push channels and quiet hours."""
    user = await current_user_row(ctx)
    return stored_push_config(user.push_config)


async def set_push_config(
    ctx: Ctx,
    channels: Annotated[list[PushChannelSent], Field(description=CHANNELS, max_length=MAX_TARGETS)],
    quiet_hours: Annotated[QuietHours | None, Field(description=QUIET)] = None,
) -> PushConfig:
    """Replace your push channels (and quiet hours); invalid input changes nothing."""
    state = app_state(ctx)
    try:
        async with state.db.session() as session:
            name = current_user(ctx)
            user = await UserRepository(session).existing(name, ToolError(not_registered(name)))
            sent = {
                "channels": [c.model_dump(exclude_unset=True) for c in channels],
                "quiet_hours": quiet_hours,
            }
            config = PushConfig.model_validate(sent, context=keeping(user.push_config))
            await save_push_config(session, user, config, state.channels.policy)
            await session.commit()
    except (ValidationError, TargetError) as exc:  # the form, then the target rules
        why = "; ".join(field_problems(exc)) if isinstance(exc, ValidationError) else exc
        raise ToolError(f"push config not changed — {why}") from None
    return config


def register(mcp: MCPServer[Any]) -> None:
    mcp.add_tool(whoami, annotations=READ)
    mcp.add_tool(grant_permission, annotations=REPLACE)


def register_push(mcp: MCPServer[Any]) -> None:
    mcp.add_tool(get_push_config, annotations=READ)
    mcp.add_tool(set_push_config, annotations=REPLACE)
