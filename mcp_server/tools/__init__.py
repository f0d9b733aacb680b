"""Tool areas: each module registers its tools; areas can be enabled or disabled by name."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
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


# What a tool the services' refusals and hints name does, as the (English, Chinese) clause said
# in place of the one naming it where the server does not serve it (an area left out,
# `--read-only`, one of the discussion servers): a client is never told to call a tool it was
# not given. A tool not here is said as UNSERVED.
UNSERVED_WORDS = {
    "create_daily_briefing": (
        "set one up from a server that can create tasks; this one cannot",
        "请在能创建任务的服务器上设置，这个服务器不能",
    ),
    "list_discussions": (
        "a server with the discussion bus's reading tools lists yours",
        "提供讨论浏览工具的服务器能列出你参与的讨论",
    ),
}
UNSERVED = ("this server does not serve the tool for that", "这个服务器没有提供做这件事的工具")
# A tool's name as a text writes it; a clause ends at these (a sentence too); an aside names a
# tool alone ("(get_remediation)", "(see list_tasks)").
_NAMED = re.compile(r"\b[a-z]+(?:_[a-z]+)+\b")
_SEPARATORS = re.compile(r"(; |: |\. |：|；|。)")
_ASIDE = re.compile(r" ?[(（](?:see )?([a-z]+(?:_[a-z]+)+)[)）]")
_QUOTED = re.compile(r"'[^']*'")
_CHINESE = re.compile(r"[\u4e00-\u9fff]")


def tools_named(text: str) -> list[str]:
    """The tools ``text`` names (``call list_tasks``, ``create_daily_briefing``), in order; a
    one-word tool name (greet) is an English word too, and is not taken for one."""
    return [name for name in _NAMED.findall(text) if name in TOOL_NAMES]


def in_served_words(text: str, served: Collection[str]) -> str:
    """``text``, a refusal or hint, naming no tool but the ``served`` ones: an aside naming one
    is left out, a clause naming one says what to do in words (``UNSERVED_WORDS``), in the
    clause's language. A quoted value (an id the caller gave) is never read as a name."""

    def unserved(name: str) -> bool:
        return name in TOOL_NAMES and name not in served

    parts = _SEPARATORS.split(text)  # clauses, each separator between two
    for i in range(0, len(parts), 2):
        clause = _ASIDE.sub(lambda aside: "" if unserved(aside[1]) else aside[0], parts[i])
        named = [n for n in tools_named(_QUOTED.sub("", clause)) if n not in served]
        if named:
            en, zh = UNSERVED_WORDS.get(named[0], UNSERVED)
            words = zh if _CHINESE.search(clause) else en
            if clause[:1].isupper():  # a sentence's first word
                words = words[:1].upper() + words[1:]
            clause = words + clause[len(clause.rstrip(".。")) :]
        parts[i] = clause
    return "".join(parts)
