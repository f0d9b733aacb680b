"""System tools: is everything up?"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations

from ambient.status import SystemStatus, system_status
from mcp_server.auth import app_state

READ = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)


async def get_status(ctx: Context[Any, Any]) -> SystemStatus:
    """Report whether Temporal is reachable, how many workers poll our task queue, whether the
    database answers, and whether the LLM runs offline or against a remote endpoint."""
    state = app_state(ctx)
    return await system_status(state.settings, state.temporal, state.db)


def register(mcp: MCPServer[Any], *, read_only: bool) -> None:
    mcp.add_tool(get_status, title="System status", annotations=READ)
