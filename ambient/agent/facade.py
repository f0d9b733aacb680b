"""The agent facade: a user's MCP servers, their tools (cached), calls, metrics and health."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import KW_ONLY, dataclass, field
from enum import StrEnum
from typing import Any

from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, TextContent, Tool, ToolAnnotations
from pydantic import BaseModel, ValidationError

from ambient.agent.connection import ServerConnection
from ambient.agent.errors import AgentError, ServerUnavailableError, UnknownToolError

OWN_SERVER = "ambient"
DEFAULT_TTL = 300.0
DEFAULT_TIMEOUT = 60.0
# What a model reads of one answer: a server that dumps megabytes would otherwise fill the
# model's context, and every later turn of the conversation would fail with it.
MAX_RESULT_CHARS = 20_000
# What a model reads of one tool, offered on every turn: our own are at most ~340 and ~12,200
# characters; another server's longer description is cut, and a tool with a longer schema
# is left out (a schema cut is no schema), saying so in the server's problem.
MAX_DESCRIPTION_CHARS = 2_000
MAX_SCHEMA_CHARS = 16_000
# A server whose listing failed is left out for this long before it is asked again: a slow
# or hung one would otherwise hold up every chat turn for its timeout (twice, reconnecting).
RELIST_AFTER = 60.0


# Per-tool metrics and per-server health states from recent outcomes.
WINDOW = 20
DEGRADED_AT = 0.2
ERROR_AT = 0.5


class Health(StrEnum):
    ACTIVE = "active"
    DEGRADED = "degraded"
    ERROR = "error"


class ToolStats(BaseModel):
    server: str
    tool: str
    calls: int
    successes: int
    failures: int
    success_rate: float | None
    mean_latency_ms: float | None


@dataclass
class ToolMetrics:
    calls: int = 0
    successes: int = 0
    total_seconds: float = 0.0

    def record(self, ok: bool, seconds: float) -> None:
        self.calls += 1
        self.successes += int(ok)
        self.total_seconds += seconds

    def view(self, server: str, tool: str) -> ToolStats:
        return ToolStats(
            server=server,
            tool=tool,
            calls=self.calls,
            successes=self.successes,
            failures=self.calls - self.successes,
            success_rate=self.successes / self.calls if self.calls else None,
            mean_latency_ms=1000 * self.total_seconds / self.calls if self.calls else None,
        )


@dataclass
class ServerHealth:
    """Active below 20 % errors in the last 20 calls, degraded below 50 %, error above (or
    while the server cannot be reached); read when asked (`GET /agent/tools`)."""

    outcomes: deque[bool] = field(default_factory=lambda: deque(maxlen=WINDOW))
    unreachable: bool = False

    def record(self, ok: bool, *, unreachable: bool = False) -> None:
        self.outcomes.append(ok)
        self.unreachable = unreachable

    @property
    def state(self) -> Health:
        rate = 1 - sum(self.outcomes) / len(self.outcomes) if self.outcomes else 0.0
        if self.unreachable or rate >= ERROR_AT:
            return Health.ERROR
        if rate >= DEGRADED_AT:
            return Health.DEGRADED
        return Health.ACTIVE


# Function names allow `[A-Za-z0-9_-]{1,64}`.
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
MAX_NAME_LENGTH = 64


class ToolNames:
    """Reversible names: (server, tool) pairs as OpenAI function names and back, a two-way
    map built from the tool listing (stable for the same listing). Our own server's tools keep
    their bare names (a model picks `create_web_monitor` more reliably than a prefixed name);
    other servers' tools are `{server}__{tool}`, sanitised, with a short hash when sanitising or
    truncating collides."""

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
        name = clean[:MAX_NAME_LENGTH]
        if name in self._to_pair or name != base:
            digest = hashlib.sha256(f"{server}\0{tool}".encode()).hexdigest()[:6]
            name = f"{clean[: MAX_NAME_LENGTH - 7]}_{digest}"
        self._to_pair[name] = pair
        self._to_name[pair] = name
        return name

    def resolve(self, function_name: str) -> tuple[str, str] | None:
        """The (server, tool) of a function name, or None if it names nothing listed."""
        return self._to_pair.get(function_name)


class ToolInfo(BaseModel):
    server: str
    tool: str
    function: str
    description: str
    input_schema: dict[str, Any]
    read_only: bool
    destructive: bool
    idempotent: bool


class ToolOutcome(BaseModel):
    """What one call returned: the text a model reads, structured content, or the error."""

    ok: bool
    text: str
    structured: dict[str, Any] | None = None


@dataclass
class _Server:
    name: str
    connection: ServerConnection
    health: ServerHealth
    # Tools allowed to run unasked (a remote server's own hints are not believed); None: ours.
    read_only: frozenset[str] | None = None
    tools: list[Tool] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # listed, with a schema too large
    listed_at: float | None = None
    failed_at: float | None = None
    problem: str | None = None  # why its last listing failed (a wrong token, a wrong URL...)


def _info(server: _Server, function: str, tool: Tool) -> ToolInfo:
    notes = tool.annotations
    if server.read_only is not None:
        # Another server's annotations are its own word (MCP: untrusted unless the server is):
        # a tool it calls read-only may delete everything. Only the tools the person who added
        # the server named run unasked (and are retried after a reconnect); the rest ask.
        notes = ToolAnnotations(read_only_hint=tool.name in server.read_only)
    read_only = bool(notes and notes.read_only_hint)
    # MCP's defaults: a tool that is not read-only is assumed destructive unless it says not.
    destructive = not read_only and (notes is None or notes.destructive_hint is not False)
    return ToolInfo(
        server=server.name,
        tool=tool.name,
        function=function,
        description=_cut(tool.description or tool.title or tool.name),
        input_schema=dict(tool.input_schema or {"type": "object"}),
        read_only=read_only,
        destructive=destructive,
        idempotent=bool(notes and notes.idempotent_hint),
    )


def _cut(description: str) -> str:
    if len(description) <= MAX_DESCRIPTION_CHARS:
        return description
    return f"{description[:MAX_DESCRIPTION_CHARS]} [… cut: {len(description):,} characters]"


@dataclass(eq=False)
class AgentFacade:
    """One user's view of their MCP servers. Build it per user; close it when done."""

    _: KW_ONLY
    ttl_seconds: float = DEFAULT_TTL
    timeout_seconds: float = DEFAULT_TIMEOUT
    clock: Callable[[], float] = time.monotonic
    _servers: dict[str, _Server] = field(default_factory=dict, init=False)
    _names: ToolNames = field(default_factory=lambda: ToolNames(OWN_SERVER), init=False)
    _metrics: dict[tuple[str, str], ToolMetrics] = field(default_factory=dict, init=False)
    list_calls: int = field(default=0, init=False)  # listings that reached a server (cache misses)
    # Each server's life (its stored row's id and time: SQLite gives a removed row's id again)
    # as the hub last read them: a confirm's yes runs nothing on a server removed, or added
    # again under its name, since it was asked.
    lives: dict[str, str] = field(default_factory=dict, init=False)

    # --- servers --------------------------------------------------------------------

    def add_server(
        self, name: str, factory: Callable[[], Client], *, read_only_tools: Iterable[str] = ()
    ) -> None:
        """Register a server; of a server not ours, only ``read_only_tools`` run unasked."""
        if name in self._servers:
            raise AgentError(f"an MCP server named {name!r} is already registered")
        read_only = None if name == OWN_SERVER else frozenset(read_only_tools)
        connection = ServerConnection(name, factory)
        self._servers[name] = _Server(name, connection, ServerHealth(), read_only)

    def life_of(self, function: str) -> tuple[str, str | None] | None:
        """The server of a listed function name and that server's life (None: no hub keeps
        this facade's servers); None: not listed."""
        pair = self._names.resolve(function)
        return None if pair is None else (pair[0], self.lives.get(pair[0]))

    def allow_unasked(self, name: str, read_only_tools: Iterable[str]) -> None:
        """Change which tools of a server not ours run unasked (its connection stays)."""
        server = self._servers.get(name)
        if server is not None and name != OWN_SERVER:
            server.read_only = frozenset(read_only_tools)

    async def remove_server(self, name: str) -> None:
        server = self._servers.pop(name, None)
        if server is not None:
            await server.connection.close()

    def health(self) -> dict[str, Health]:
        return {name: server.health.state for name, server in self._servers.items()}

    def problems(self) -> dict[str, str]:
        """Why each server's tools (or some of them) are missing, by server name."""
        return {name: s.problem for name, s in self._servers.items() if s.problem}

    async def close(self) -> None:
        for name in list(self._servers):
            await self.remove_server(name)

    # --- tools ----------------------------------------------------------------------

    async def tools(self, *, refresh: bool = False, failed_too: bool = True) -> list[ToolInfo]:
        """Every tool of every reachable server; listings are cached for ``ttl`` seconds;
        ``refresh`` lists them again, those that failed within ``RELIST_AFTER`` only if
        ``failed_too`` (a person's asking, not a model's name that no server lists)."""
        infos: list[ToolInfo] = []
        for server in list(self._servers.values()):
            failed = server.failed_at
            waits = not (refresh and failed_too)
            if waits and failed is not None and self.clock() - failed < RELIST_AFTER:
                continue
            try:
                listed = await self._listing(server, refresh)
            except AgentError as exc:
                # An unreachable server shows in health() and problems(), not as an empty agent.
                server.failed_at, server.problem = self.clock(), str(exc)
                continue
            server.failed_at = None
            problems = []
            if server.left_out:
                problems.append(
                    f"left out {', '.join(server.left_out)}: an input schema past "
                    f"{MAX_SCHEMA_CHARS:,} characters would fill the model's prompt"
                )
            named = {t.name for t in listed} | set(server.left_out)
            unknown = sorted((server.read_only or frozenset()) - named)
            if unknown:
                problems.append(
                    f"read_only_tools names {', '.join(unknown)}, which this server does not "
                    "list (a typo, or a tool it renamed)"
                )
            server.problem = "; ".join(problems) or None
            infos.extend(_info(server, self._names.add(server.name, t.name), t) for t in listed)
        return infos

    async def _listing(self, server: _Server, refresh: bool) -> list[Tool]:
        fresh = server.listed_at is not None and self.clock() - server.listed_at < self.ttl_seconds
        if fresh and not refresh:
            return server.tools

        async def list_all(client: Client) -> list[Tool]:
            tools: list[Tool] = []
            cursor: str | None = None
            while True:
                page = await client.list_tools(cursor=cursor)
                tools.extend(page.tools)
                cursor = page.next_cursor
                if not cursor:
                    return tools

        listed = await self._run(server, list_all, retry=True)
        server.tools, server.left_out = [], []
        for tool in listed:  # each schema measured once
            if len(json.dumps(tool.input_schema or {}, ensure_ascii=False)) <= MAX_SCHEMA_CHARS:
                server.tools.append(tool)
            else:
                server.left_out.append(tool.name)
        server.listed_at = self.clock()
        self.list_calls += 1
        return server.tools

    async def openai_tools(self) -> list[dict[str, Any]]:
        """The tools as OpenAI function tools (non-strict: MCP schemas are not strict-mode)."""
        return [
            {
                "type": "function",
                "function": {
                    "name": info.function,
                    "description": info.description,
                    "parameters": info.input_schema,
                    "strict": False,
                },
            }
            for info in await self.tools()
        ]

    async def describe(self, function: str) -> ToolInfo:
        pair = self._names.resolve(function)
        if pair is None:
            # A name the model made up (often, for a small one): a hung server is not asked
            # again for it within RELIST_AFTER, each unknown name stalling the turn its timeout.
            await self.tools(refresh=True, failed_too=False)
            pair = self._names.resolve(function)
        if pair is None:
            raise UnknownToolError(f"no tool named {function!r}; list the tools first")
        server = self._servers.get(pair[0])
        if server is None:
            raise UnknownToolError(f"the server of {function!r} is no longer registered")
        for tool in await self._listing(server, refresh=False):
            if tool.name == pair[1]:
                return _info(server, function, tool)
        raise UnknownToolError(f"{function!r} is no longer offered by {pair[0]!r}")

    # --- calls ----------------------------------------------------------------------

    async def call(
        self, function: str, arguments: dict[str, Any], *, timeout_seconds: float | None = None
    ) -> ToolOutcome:
        """Call a tool by function name; failures come back as an outcome with ok=False."""
        info = await self.describe(function)
        server = self._servers[info.server]
        seconds = timeout_seconds or self.timeout_seconds
        started = self.clock()

        async def invoke(client: Client) -> CallToolResult:
            return await client.call_tool(info.tool, arguments, read_timeout_seconds=seconds)

        try:
            # A retry after reconnecting is safe only for tools that say so.
            async with asyncio.timeout(seconds):
                result = await self._run(server, invoke, retry=info.read_only or info.idempotent)
        except TimeoutError:
            server.health.record(False)
            return self._outcome(info, False, f"{function} timed out after {seconds:g} s", started)
        except AgentError as exc:
            return self._outcome(info, False, str(exc), started)
        ok = not result.is_error
        server.health.record(ok)
        parts = [block.text for block in result.content if isinstance(block, TextContent)]
        text = "\n".join(parts) if parts else ("(no text)" if ok else "tool error")
        if len(text) > MAX_RESULT_CHARS:
            text = (
                f"{text[:MAX_RESULT_CHARS]}\n[… cut: {len(text):,} characters in all; "
                "ask for less (a filter, a smaller page or limit)]"
            )
        return self._outcome(info, ok, text, started, structured=result.structured_content)

    def stats(self) -> list[ToolStats]:
        return [
            metrics.view(server, tool) for (server, tool), metrics in sorted(self._metrics.items())
        ]

    def _outcome(
        self,
        info: ToolInfo,
        ok: bool,
        text: str,
        started: float,
        structured: dict[str, Any] | None = None,
    ) -> ToolOutcome:
        seconds = self.clock() - started
        self._metrics.setdefault((info.server, info.tool), ToolMetrics()).record(ok, seconds)
        return ToolOutcome(ok=ok, text=text, structured=structured)

    async def _run(self, server: _Server, operation: Any, *, retry: bool) -> Any:
        # The server may have restarted: a retry is one more try on a new connection.
        tries = 2 if retry else 1
        for tried in range(1, tries + 1):
            try:
                return await server.connection.run(operation)
            except ServerUnavailableError:
                if tried == tries:
                    server.health.record(False, unreachable=True)
                    raise
            except (MCPError, ValidationError) as exc:
                # A JSON-RPC error or a garbled answer: the request failed, not the agent.
                server.health.record(False)
                raise AgentError(
                    f"MCP server {server.name!r} answered with an error: {exc}"
                ) from None
            except RuntimeError as exc:
                # The client's check of an answer against the tool's own output schema (an
                # older server's text-only answer): the call was made. Raised, it ended the
                # whole chat turn with no answer to the model.
                server.health.record(False)
                raise AgentError(
                    f"MCP server {server.name!r} answered outside its tool's own output "
                    f"schema (the call was made): {exc}"
                ) from None
