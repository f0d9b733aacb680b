"""Tool areas: each module registers its tools; areas can be enabled or disabled by name."""

from __future__ import annotations

from collections.abc import Callable, Iterable

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
