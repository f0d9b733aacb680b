"""Chat with the assistant, and the MCP servers its agent may use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, HTTPException, Path, Request, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, ValidationInfo, field_validator

from ambient.agent.chat import SAID_BY_US
from ambient.agent.digest import DigestSetting, DigestState
from ambient.agent.errors import AgentError, AgentRefusedError
from ambient.agent.facade import OWN_SERVER, AgentFacade, ToolStats
from ambient.agent.hub import ChatRuntime, McpServerSpec, ReadOnlyTools
from ambient.domain.configs import UserConfig
from ambient.refusals import read_back
from ambient.storage.models import User
from ambient.words import Words, in_words
from api.deps import CurrentUser, StateDep
from api.errors import answers, unprocessable

router = APIRouter(tags=["chat"], responses=answers(403, 404))


def get_chat(request: Request, state: StateDep) -> ChatRuntime:
    """The chat door's parts, made at the app's first chat request and kept (one per app)."""
    if getattr(request.app.state, "chat", None) is None:
        request.app.state.chat = ChatRuntime.of(state)
    return cast(ChatRuntime, request.app.state.chat)


ChatDep = Annotated[ChatRuntime, Depends(get_chat)]


class ChatRequest(UserConfig):
    message: Annotated[str | None, Field(max_length=4000)] = Field(
        default=None, description="what the person says; omit when only answering a confirm"
    )
    conversation_id: str | None = Field(default=None, description="continue this conversation")
    approve: bool | None = Field(
        default=None, description="answer to a confirm event: run (true) or decline (false)"
    )
    confirm_id: str | None = Field(
        default=None,
        max_length=64,
        validate_default=True,
        description="the confirm event's confirm_id this answer is for (required with approve "
        "true): an answer to an older confirm runs nothing",
    )

    @field_validator("confirm_id")
    @classmethod
    def _named_by_a_yes(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("approve") is True:
            raise ValueError("a yes names the confirm it answers: the confirm event's confirm_id")
        return value


class ServerView(BaseModel):
    name: str
    spec: dict[str, Any]
    health: str
    problem: str | None = Field(
        default=None, description="why its tools are missing: its last listing's error"
    )


class ToolView(BaseModel):
    function: str
    server: str
    tool: str
    read_only: bool
    destructive: bool


class AgentTools(BaseModel):
    tools: list[ToolView]
    health: dict[str, str]
    stats: list[ToolStats]


@router.post("/chat", response_class=StreamingResponse)
async def chat(body: ChatRequest, user: CurrentUser, chat: ChatDep) -> StreamingResponse:
    """One turn of a conversation, streamed as JSON lines (message, tool_call, tool_result,
    confirm, error, done). Destructive tools wait for a request with `approve`."""
    return await turn(body, user, chat)


async def turn(
    body: ChatRequest, user: User, chat: ChatRuntime, words: Words | None = None
) -> StreamingResponse:
    """POST /chat's turn; ``words``: a page's, which says the product's own words in its
    reader's language."""
    if not body.message and body.approve is None:
        raise unprocessable((["message"], "say something (or send approve)"))
    conversation = await chat.conversations.open(user.name, body.conversation_id)
    agent = await chat.agent(user)

    async def lines() -> AsyncIterator[str]:
        turn = agent.turn(
            conversation, body.message, approve=body.approve, confirm_id=body.confirm_id
        )
        # Closed here when the person's connection drops: the turn lets its conversation go
        # at once, not when the garbage collector finds it.
        async with aclosing(turn) as events:
            async for event in events:
                if words is not None and event.text and event.type in ("message", "error"):
                    # The product's own words (no model, the model failing) in the page's
                    # language; the model's are as it said them.
                    said = read_back(event.text, SAID_BY_US)
                    event.text = in_words(said, words) if said else event.text
                yield event.model_dump_json(exclude_none=True) + "\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@router.get("/agent/servers")
async def list_servers(user: CurrentUser, chat: ChatDep) -> list[ServerView]:
    """The MCP servers of the caller's agent (ours first); header values are hidden."""
    facade = await chat.hub.facade(user)
    health = facade.health()[OWN_SERVER]
    ours = ServerView(name=OWN_SERVER, spec={"transport": "in-process"}, health=health)
    # A server the facade leaves out is not run: a stdio one whose owner is no longer an admin.
    return [ours] + [_view(spec, facade) for spec in await chat.hub.specs(user.name)]


def _view(spec: McpServerSpec, facade: AgentFacade) -> ServerView:
    return ServerView(
        name=spec.name,
        spec=spec.public(),
        health=facade.health().get(spec.name, "off"),
        problem=facade.problems().get(spec.name),
    )


@router.post("/agent/servers", status_code=status.HTTP_201_CREATED)
async def add_server(spec: McpServerSpec, user: CurrentUser, chat: ChatDep) -> ServerView:
    """Add an MCP server (streamable HTTP; stdio for admins) to the caller's agent."""
    try:
        await chat.hub.add(user, spec)
    except AgentRefusedError as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    except AgentError as exc:
        # A refusal that names a field of the spec ("url: refused destination ...") is on it.
        named = str(exc).split(": ", 1)[0]
        raise unprocessable(
            ([named] if named in McpServerSpec.model_fields else [], str(exc))
        ) from None
    return ServerView(name=spec.name, spec=spec.public(), health="active")


class ServerChange(UserConfig):
    read_only_tools: ReadOnlyTools


@router.patch("/agent/servers/{name}")
async def change_server(
    name: Annotated[str, Path(max_length=32)],
    change: ServerChange,
    user: CurrentUser,
    chat: ChatDep,
) -> ServerView:
    """Change which of a server's tools run unasked; its URL, headers and env stay."""
    spec = await chat.hub.allow_unasked(user.name, name, change.read_only_tools)
    if spec is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"you have no MCP server named {name!r}")
    return _view(spec, await chat.hub.facade(user))


@router.delete("/agent/servers/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_server(
    name: Annotated[str, Path(max_length=32)], user: CurrentUser, chat: ChatDep
) -> None:
    if not await chat.hub.remove(user.name, name):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"you have no MCP server named {name!r}")


@router.get("/agent/tools")
async def agent_tools(user: CurrentUser, chat: ChatDep, refresh: bool = False) -> AgentTools:
    """Every tool the caller's agent can call, each server's health and per-tool metrics."""
    facade = await chat.hub.facade(user)
    tools = await facade.tools(refresh=refresh)
    return AgentTools(
        tools=[ToolView.model_validate(t.model_dump()) for t in tools],
        health={name: state.value for name, state in facade.health().items()},
        stats=facade.stats(),
    )


@router.get("/agent/digest")
async def read_digest(user: CurrentUser, state: StateDep) -> DigestState:
    """Whether the event-driven agent reads your events and decides what to push, and whether
    an operator paused it (in the Temporal Web UI: nothing runs then)."""
    return await state.digests.get(user.name)


@router.put("/agent/digest")
async def set_digest(setting: DigestSetting, user: CurrentUser, state: StateDep) -> DigestSetting:
    """Turn the event-driven agent on (every N minutes) or off."""
    return await state.digests.set(user.name, setting)
