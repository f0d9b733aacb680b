"""Tool areas: each module registers its tools; areas can be enabled or disabled by name."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

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

# Area name -> register(mcp). Add one line per area module. The groups of DESIGN.md §4.
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


# An area that another holds whole: served once when both are chosen (`push` alone serves the
# push settings; `briefing` holds them, as DESIGN.md's briefing group).
WITHIN = {"push": "briefing"}


def served_areas(areas: Iterable[str]) -> list[str]:
    """``areas`` without one that a chosen other holds, each once."""
    chosen = list(dict.fromkeys(areas))
    return [area for area in chosen if WITHIN.get(area) not in chosen]


def unknown_areas(areas: Iterable[str]) -> str | None:
    """What is wrong with ``areas`` (names no area), or None."""
    unknown = sorted(set(areas) - set(AREAS))
    return f"no area {', '.join(unknown)}; one of {', '.join(AREAS)}" if unknown else None


class _Names:
    """Stands in for the server an area registers its tools on, keeping only their names
    (``add_tool``'s: the function's name, unless one is given)."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def add_tool(self, fn: Callable[..., Any], name: str | None = None, **_: object) -> None:
        self.names.add(name or fn.__name__)


def _tool_names() -> frozenset[str]:
    names = _Names()
    for register in AREAS.values():
        register(names)
    return frozenset(names.names)


# The name of every tool of every area (the services' errors name some to MCP callers), read
# once at import: building a server for them validated every tool's schema (about 1 s).
TOOL_NAMES = _tool_names()
