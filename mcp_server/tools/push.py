"""Push tools: where the caller's notifications go."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field, ValidationError

from ambient.domain.push import PushConfig
from ambient.storage.repositories import UserRepository
from mcp_server.auth import app_state, current_user

CHANNELS = (
    'A list of {"type": "email"|"wecom"|"dingtalk"|"webhook"|"apprise"|"sms"|"inbox", "target": '
    '..., "kinds": ["briefing", "watch", "remediation"]} (kinds: all when omitted). Targets: an '
    "email address, a WeCom robot key, DINGTALK_TOKEN#SIGN_SECRET, a webhook URL, an Apprise "
    "URL, or secret:NAME for a secret configured on the server."
)
QUIET = (
    'Optional {"start": "22:00", "end": "07:30"} in your time zone: pushes wait, inbox does not.'
)


async def _load(ctx: Context[Any, Any]) -> PushConfig:
    async with app_state(ctx).db.session() as session:
        user = await UserRepository(session).get(current_user(ctx))
    if user is None:
        raise ToolError("Your user is not registered: POST /users or `ambient user create`.")
    return PushConfig.model_validate(user.push_config)


async def get_push_config(ctx: Context[Any, Any]) -> PushConfig:
    """Your push channels and quiet hours."""
    return await _load(ctx)


async def set_push_config(
    ctx: Context[Any, Any],
    channels: Annotated[list[dict[str, Any]], Field(description=CHANNELS)],
    quiet_hours: Annotated[dict[str, Any] | None, Field(default=None, description=QUIET)] = None,
) -> PushConfig:
    """Replace your push channels (and quiet hours); invalid input changes nothing."""
    try:
        config = PushConfig.model_validate({"channels": channels, "quiet_hours": quiet_hours})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ToolError(f"push config not changed — {problems}") from None
    async with app_state(ctx).db.session() as session:
        users = UserRepository(session)
        user = await users.get(current_user(ctx))
        if user is None:
            raise ToolError("Your user is not registered: POST /users or `ambient user create`.")
        await users.set_push_config(user, config.model_dump(mode="json"))
        await session.commit()
    return config


def register(mcp: MCPServer[Any], *, read_only: bool) -> None:
    mcp.add_tool(
        get_push_config,
        annotations=ToolAnnotations(
            read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        ),
    )
    if not read_only:
        mcp.add_tool(
            set_push_config,
            annotations=ToolAnnotations(
                read_only_hint=False,
                destructive_hint=False,
                idempotent_hint=True,
                open_world_hint=False,
            ),
        )
