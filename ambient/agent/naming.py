"""Reversible names: (server, tool) pairs as OpenAI function names and back.

Function names allow `[A-Za-z0-9_-]{1,64}`. Our own server's tools keep their bare names (a
model picks `create_web_monitor` more reliably than a prefixed name); other servers' tools are
`{server}__{tool}`, sanitised, with a short hash when sanitising or truncating collides.
"""

from __future__ import annotations

import hashlib
import re

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
MAX_LENGTH = 64


class ToolNames:
    """A two-way map, built from the tool listing; stable for the same listing."""

    def __init__(self, own_server: str) -> None:
        self.own_server = own_server
        self._to_pair: dict[str, tuple[str, str]] = {}
        self._to_name: dict[tuple[str, str], str] = {}

    def add(self, server: str, tool: str) -> str:
        pair = (server, tool)
        if pair in self._to_name:
            return self._to_name[pair]
        base = tool if server == self.own_server else f"{server}__{tool}"
        clean = _UNSAFE.sub("_", base)
        name = clean[:MAX_LENGTH]
        if name in self._to_pair or name != base:
            digest = hashlib.sha256(f"{server}\0{tool}".encode()).hexdigest()[:6]
            name = f"{clean[: MAX_LENGTH - 7]}_{digest}"
        self._to_pair[name] = pair
        self._to_name[pair] = name
        return name

    def resolve(self, function_name: str) -> tuple[str, str] | None:
        """The (server, tool) of a function name, or None if it names nothing listed."""
        return self._to_pair.get(function_name)
