"""Each user's agent: our MCP server in-process (as that user) plus the servers they added."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

import httpcore2
import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from pydantic import Field, ValidationInfo, field_validator, model_validator
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from ambient.agent.chat import ChatAgent, ToolOffer, system_prompt, tool_offer
from ambient.agent.conversations import ConversationStore
from ambient.agent.errors import AgentError, AgentRefusedError
from ambient.agent.facade import DEFAULT_TIMEOUT, OWN_SERVER, AgentFacade
from ambient.clients.guard import (
    DestinationGuard,
    DestinationLookupError,
    GuardedConnections,
    RefusedDestinationError,
)
from ambient.clients.llm import openai_client
from ambient.domain.configs import STORED, UserConfig, reading_stored
from ambient.storage.db import take_turn
from ambient.storage.models import AgentServer, User
from ambient.wiring import AppState, StateHolder

if TYPE_CHECKING:
    from openai import AsyncOpenAI  # imported with the first model client (clients/llm.py)

MAX_SERVERS = 10


# Where an MCP server is and how to reach it: streamable HTTP, stdio, or in-process.
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


ReadOnlyTools = Annotated[
    list[Annotated[str, Field(max_length=128)]],
    Field(
        max_length=200,
        description="tools of this server the chat may run without asking you (every other "
        "tool asks: a server's own read-only annotation is its word, not checked)",
    ),
]


# A transport's own fields: the other's are refused, not kept unused (a `command` on an http
# server, a token in `headers` of a stdio one).
TRANSPORT_FIELDS = {"http": ("url", "headers"), "stdio": ("command", "args", "env")}
# The longest URL, command or argument and the longest header or env value taken (a 200,000
# character URL was stored and sent with every connection).
LONGEST_TEXT, LONGEST_VALUE = 2048, 8192


class McpServerSpec(UserConfig):
    """One MCP server of a user's agent (unknown fields refused by name: a typo `header`
    dropped the token silently)."""

    name: str = Field(description="short name, e.g. 'github' (tools appear as github__TOOL)")
    transport: Literal["http", "stdio"] = Field(description="streamable HTTP URL or a command")
    url: str | None = Field(default=None, description="http(s) URL of the MCP endpoint")
    headers: dict[str, str] = Field(
        default_factory=dict, description="extra HTTP headers, e.g. Authorization"
    )
    command: str | None = Field(default=None, description="stdio: the program to run")
    args: list[str] = Field(default_factory=list, max_length=50)
    env: dict[str, str] = Field(default_factory=dict)
    read_only_tools: ReadOnlyTools = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError("1-32 characters of lowercase letters, digits, '_' or '-'")
        return value

    @field_validator("url", "headers", "command", "args", "env")
    @classmethod
    def _fits(cls, value: Any, info: ValidationInfo) -> Any:
        if reading_stored(info) or not value:
            return value
        transport = info.data.get("transport")
        if transport is not None and info.field_name not in TRANSPORT_FIELDS[transport]:
            theirs = ", ".join(TRANSPORT_FIELDS[transport])
            raise ValueError(f"the {transport} transport takes {theirs}, not {info.field_name}")
        if isinstance(value, dict):  # headers, env: their values
            texts, most = list(value.values()), LONGEST_VALUE
        else:  # url, command, args
            texts, most = [value] if isinstance(value, str) else value, LONGEST_TEXT
        if any(len(text) > most for text in texts):
            raise ValueError(f"at most {most} characters")
        return value

    @model_validator(mode="after")
    def _shape(self) -> McpServerSpec:
        if self.transport == "http":
            if not self.url or not self.url.startswith(("http://", "https://")):
                raise ValueError("url: an http(s) URL is required for the http transport")
        elif not self.command:
            raise ValueError("command: a program is required for the stdio transport")
        return self

    def public(self) -> dict[str, Any]:
        """The spec without header values and env values (they may hold credentials)."""
        data = self.model_dump()
        data["headers"] = {key: "***" for key in self.headers}
        data["env"] = {key: "***" for key in self.env}
        return data


def client_for(spec: McpServerSpec, *, timeout: float, guard: DestinationGuard) -> Client:
    """A not-yet-entered MCP client for the spec (our own response cache; the SDK's is off)."""
    if spec.transport == "http":
        assert spec.url is not None
        # Every connection passes the guard, not only the URL when it was added: the name may
        # point elsewhere since.
        connections = httpx2.AsyncHTTPTransport(trust_env=False)
        guarded = GuardedConnections(guard, httpcore2.AnyIOBackend(), httpcore2.ConnectError)
        connections._pool._network_backend = cast(httpcore2.AsyncNetworkBackend, guarded)
        http = httpx2.AsyncClient(
            headers=spec.headers, timeout=timeout, trust_env=False, transport=connections
        )
        transport = streamable_http_client(spec.url, http_client=http)
        return Client(transport, read_timeout_seconds=timeout, cache=None)
    assert spec.command is not None
    params = StdioServerParameters(command=spec.command, args=spec.args, env=spec.env or None)
    return Client(params, read_timeout_seconds=timeout, cache=None)


class AgentHub:
    """Facades per user, built on first use and kept (tool listings stay cached), each
    following the user's stored servers at every use."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self.guard = DestinationGuard(state.settings.fetch_allow_cidrs)
        # Per user: the facade, and the stored servers it was last made to follow.
        self._facades: dict[str, tuple[AgentFacade, dict[str, McpServerSpec]]] = {}

    async def facade(self, user: User) -> AgentFacade:
        """``user``'s facade as their servers are stored now, whichever API replica changed
        them (a server added, removed, or with other tools to run unasked); stdio servers
        (programs run on this host) only while they are an admin, so taking the role away
        stops them at the next use."""
        stored = [
            (life, spec)
            for life, spec in await self._stored(user.name)
            if spec.transport != "stdio" or user.is_admin
        ]
        wanted = {spec.name: spec for _, spec in stored}
        if (found := self._facades.get(user.name)) is None:
            found = self._facades[user.name] = (AgentFacade(), {})
            found[0].add_server(OWN_SERVER, self._own_client(user.name))
        facade, built = found
        for name, before in list(built.items()):
            spec = wanted.get(name)
            unasked = {"read_only_tools": spec.read_only_tools} if spec else {}
            if spec is not None and before.model_copy(update=unasked) == spec:
                facade.allow_unasked(name, spec.read_only_tools)  # its connection stays
                continue
            # Popped, not deleted: a request of the same user may have taken it off while
            # this one awaited the removal before (both following another replica's change).
            built.pop(name, None)
            await facade.remove_server(name)
        for name in wanted.keys() - built.keys():
            facade.add_server(
                name, self._client(wanted[name]), read_only_tools=wanted[name].read_only_tools
            )
        built.clear()
        built.update(wanted)
        facade.lives = {OWN_SERVER: OWN_SERVER} | {spec.name: life for life, spec in stored}
        return facade

    def _client(self, spec: McpServerSpec) -> Callable[[], Client]:
        # Through this process's guard: every request, as it is sent, not only the URL added.
        return partial(client_for, spec, timeout=DEFAULT_TIMEOUT, guard=self.guard)

    def _own_client(self, user: str) -> Callable[[], Client]:
        # Imported here: the MCP server imports the tool modules, which import this package.
        from mcp_server.server import build_server

        # In-process, acting as the user: the same tools, checks and permissions as over HTTP.
        holder = StateHolder(dataclasses.replace(self.state, stdio_user=user))
        server = build_server(self.state.settings, holder=holder)
        return lambda: Client(server, cache=None, read_timeout_seconds=DEFAULT_TIMEOUT)

    async def specs(self, user: str) -> list[McpServerSpec]:
        return [spec for _, spec in await self._stored(user)]

    async def _stored(self, user: str) -> list[tuple[str, McpServerSpec]]:
        """``user``'s servers as stored, each with its life: its row's id and time (SQLite
        gives the id of a row removed last to the next one)."""
        async with self.state.db.session() as session:
            rows = await session.execute(
                select(AgentServer).where(AgentServer.user == user).order_by(AgentServer.id)
            )
            # Read as stored: a spec added before a rule of today's still loads.
            return [
                (
                    f"{row.id}@{row.created_at.isoformat()}",
                    McpServerSpec.model_validate(row.spec, context=STORED),
                )
                for row in rows.scalars()
            ]

    async def add(self, user: User, spec: McpServerSpec) -> None:
        """Add a server for ``user``: HTTP URLs pass the destination guard; stdio is admin-only."""
        if spec.name == OWN_SERVER:
            raise AgentError(f"{OWN_SERVER!r} is the built-in server; choose another name")
        if spec.transport == "stdio" and not user.is_admin:
            raise AgentRefusedError("only an admin may add stdio servers (they run a program here)")
        if spec.transport == "http":
            assert spec.url is not None
            try:
                await self.guard.check_url(spec.url)
            except (RefusedDestinationError, DestinationLookupError) as exc:
                raise AgentError(f"url: {exc}") from None
        async with self.state.db.session() as session:
            # One add of the user's at a time until its commit (PostgreSQL): ids are given at
            # insert and rows seen at commit, so an add that inserted first and committed last
            # was counted below by neither (SQLite's one writer already takes turns).
            await take_turn(session, f"agent-servers/{user.name}")
            row = AgentServer(user=user.name, name=spec.name, spec=spec.model_dump())
            session.add(row)
            try:
                await session.commit()
            except IntegrityError:
                # The name is taken: stored before, or by a request at once (a form sent twice).
                if all(s.name != spec.name for s in await self.specs(user.name)):
                    raise
                taken = f"name: you already have an MCP server named {spec.name!r}"
                raise AgentError(taken) from None
            # Counted once stored, so that two adds at once cannot both take the last place:
            # the servers stored first keep their places; one past the limit is taken back.
            first = await session.scalars(
                select(AgentServer.id)
                .where(AgentServer.user == user.name)
                .order_by(AgentServer.id)
                .limit(MAX_SERVERS)
            )
            if row.id not in set(first):
                await session.delete(row)
                await session.commit()
                raise AgentError(f"at most {MAX_SERVERS} MCP servers per user")
        # The facades (this replica's and every other's) take it up at their next use.

    async def allow_unasked(
        self, user: str, name: str, read_only_tools: list[str]
    ) -> McpServerSpec | None:
        """Change the tools of ``user``'s server ``name`` that run unasked; the rest of its spec
        (its header and env values: secrets) stays as stored. None: no such server."""
        async with self.state.db.session() as session:
            row = await session.scalar(
                select(AgentServer).where(AgentServer.user == user, AgentServer.name == name)
            )
            if row is None:
                return None
            spec = McpServerSpec.model_validate(
                {**row.spec, "read_only_tools": read_only_tools}, context=STORED
            )
            row.spec = spec.model_dump()
            await session.commit()
        return spec

    async def remove(self, user: str, name: str) -> bool:
        async with self.state.db.session() as session:
            result = await session.execute(
                delete(AgentServer).where(AgentServer.user == user, AgentServer.name == name)
            )
            await session.commit()
        if (found := self._facades.get(user)) is not None:
            # Closed now (a stdio program stops); other replicas at their facade's next use.
            found[1].pop(name, None)
            await found[0].remove_server(name)
        return bool(getattr(result, "rowcount", 0))

    async def close(self) -> None:
        for facade, _ in self._facades.values():
            await facade.close()
        self._facades.clear()


@dataclasses.dataclass
class ChatRuntime:
    """What a chat door keeps (the API: one per app; `ambient chat`: one per run): the agents,
    the model, the tool offer (its search index over ~60 tools takes a moment to build) and
    the conversations (in the app database: any replica continues any of them)."""

    hub: AgentHub
    model: AsyncOpenAI | None
    offer: ToolOffer
    conversations: ConversationStore

    @classmethod
    def of(cls, state: AppState) -> ChatRuntime:
        """The parts as the settings ask for them (AMBIENT_CHAT_TOOLS, the LLM endpoint; no
        model in offline mode)."""
        model = openai_client(state.settings, max_retries=1)
        return cls(AgentHub(state), model, tool_offer(state.settings), ConversationStore(state.db))

    async def agent(self, user: User) -> ChatAgent:
        """``user``'s chat agent: their MCP tools, the model, a prompt in their assistant's name."""
        settings = self.hub.state.settings
        return ChatAgent(
            self.model,
            settings.llm_model,
            await self.hub.facade(user),
            system=system_prompt(user.name, user.assistant_name, user.timezone),
            offer=self.offer,
            confirm=settings.chat_confirm,
            history_chars=settings.chat_history_chars,
        )
