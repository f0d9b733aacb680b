"""Where an MCP server is and how to reach it: streamable HTTP, stdio, or in-process."""

from __future__ import annotations

import re
from functools import partial
from typing import Annotated, Any, Literal

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from pydantic import BaseModel, Field, field_validator, model_validator

from ambient.clients.guard import DestinationGuard, DestinationLookupError, RefusedDestinationError

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


ReadOnlyTools = Annotated[
    list[Annotated[str, Field(max_length=128)]],
    Field(
        max_length=200,
        description="tools of this server the chat may run without asking you (every other "
        "tool asks: a server's own read-only annotation is its word, not checked)",
    ),
]


class McpServerSpec(BaseModel):
    """One MCP server of a user's agent."""

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
        http = httpx2.AsyncClient(
            headers=spec.headers,
            timeout=timeout,
            trust_env=False,
            event_hooks={"request": [partial(_through_guard, guard)]},
        )
        transport = streamable_http_client(spec.url, http_client=http)
        return Client(transport, read_timeout_seconds=timeout, cache=None)
    assert spec.command is not None
    params = StdioServerParameters(command=spec.command, args=spec.args, env=spec.env or None)
    return Client(params, read_timeout_seconds=timeout, cache=None)


async def _through_guard(guard: DestinationGuard, request: httpx2.Request) -> None:
    """Every request passes the destination guard, not only the URL when it was added: the
    name may point elsewhere since. Plain HTTP goes to the address checked (no second lookup)."""
    try:
        pinned = await guard.pin(str(request.url))
    except (RefusedDestinationError, DestinationLookupError) as exc:
        # As a connection that failed: the server is shown unavailable, and retried later.
        raise httpx2.ConnectError(str(exc), request=request) from None
    request.url = httpx2.URL(pinned.url)
    request.headers.update(pinned.headers)
