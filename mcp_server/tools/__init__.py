"""Tool areas: each module registers its tools; areas can be enabled or disabled by name."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

from mcp.server.mcpserver import MCPServer

from mcp_server.tools import (
    briefing,
    cloud,
    cloud_write,
    discussions,
    remediation,
    system,
    tasks,
    users,
)

# Area name -> register(mcp). Add one line per area module.
AREAS: dict[str, Callable[..., None]] = {
    "system": system.register,
    "tasks": tasks.register,
    "briefing": briefing.register,
    "push": users.register_push,
    "cloud": cloud.register,
    "cloud_write": cloud_write.register,
    "users": users.register,
    "remediation": remediation.register,
    "signing": discussions.register_signing,
    "annotate": discussions.register_annotate,
    "bus": discussions.register_bus,
}


def unknown_areas(areas: Iterable[str]) -> str | None:
    """What is wrong with ``areas`` (names no area), or None."""
    unknown = sorted(set(areas) - set(AREAS))
    return f"no area {', '.join(unknown)}; one of {', '.join(AREAS)}" if unknown else None


@cache
def tool_names() -> frozenset[str]:
    """The name of every tool of every area (the services' errors name some to MCP callers)."""
    server: MCPServer[Any] = MCPServer("tool names")
    for register in AREAS.values():
        register(server)
    return frozenset(tool.name for tool in server._tool_manager.list_tools())
