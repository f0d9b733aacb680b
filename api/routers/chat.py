"""Chat with the assistant, and the MCP servers its agent may use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import StreamingResponse
from openai import AsyncOpenAI
from pydantic import BaseModel, Field

from ambient.agent import AgentError, McpServerSpec
from ambient.agent.chat import (
    ChatAgent,
    ConversationStore,
    ToolOffer,
    chat_model,
    system_prompt,
    tool_offer,
)
from ambient.agent.digest import DigestSetting
from ambient.agent.health import ToolStats
from ambient.agent.hub import hub_of
from ambient.storage.models import User
from ambient.wiring import AppState
from api.deps import CurrentUser, StateDep

router = APIRouter(tags=["chat"])


class ChatRequest(BaseModel):
    message: Annotated[str | None, Field(max_length=4000)] = Field(
        default=None, description="what the person says; omit when only answering a confirm"
    )
    conversation_id: str | None = Field(default=None, description="continue this conversation")
    approve: bool | None = Field(
        default=None, description="answer to a confirm event: run (true) or decline (false)"
    )


class ServerView(BaseModel):
    name: str
    spec: dict[str, Any]
    health: str


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


def _model(state: AppState) -> AsyncOpenAI | None:
    """The chat endpoint's client, made once per process (None offline)."""
    if "chat_model" not in state.extras:
        state.extras["chat_model"] = chat_model(state.settings)
    model = state.extras["chat_model"]
    return model if isinstance(model, AsyncOpenAI) else None


def _offer(state: AppState) -> ToolOffer:
    """One per process: its search index over ~60 tools takes a moment to build, so it is
    kept per tool list rather than built again for every turn."""
    offer = state.extras.get("chat_tool_offer")
    if not isinstance(offer, ToolOffer):
        offer = tool_offer(state.settings)
        state.extras["chat_tool_offer"] = offer
    return offer


def _conversations(state: AppState) -> ConversationStore:
    store = state.extras.get("conversations")
    if not isinstance(store, ConversationStore):
        store = ConversationStore()
        state.extras["conversations"] = store
    return store


@router.post("/chat", response_class=StreamingResponse)
async def chat(body: ChatRequest, user: CurrentUser, state: StateDep) -> StreamingResponse:
    """One turn of a conversation, streamed as JSON lines (message, tool_call, tool_result,
    confirm, error, done). Destructive tools wait for a request with `approve`."""
    return await chat_turn(body, user, state)


async def chat_turn(body: ChatRequest, user: User, state: AppState) -> StreamingResponse:
    """The turn behind /chat and the web page's chat box."""
    if not body.message and body.approve is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [{"loc": ["body", "message"], "msg": "say something (or send approve)"}],
        )
    conversation = _conversations(state).open(user.name, body.conversation_id)
    agent = ChatAgent(
        _model(state),
        state.settings.llm_model,
        await hub_of(state).facade(user.name),
        system=system_prompt(user.name, user.assistant_name, user.timezone),
        offer=_offer(state),
        confirm=state.settings.chat_confirm,
    )

    async def lines() -> AsyncIterator[str]:
        async for event in agent.turn(conversation, body.message, approve=body.approve):
            yield event.model_dump_json(exclude_none=True) + "\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@router.get("/agent/servers", response_model=list[ServerView])
async def list_servers(user: CurrentUser, state: StateDep) -> list[ServerView]:
    """The MCP servers of the caller's agent (ours first); header values are hidden."""
    hub = hub_of(state)
    health = (await hub.facade(user.name)).health()
    views = [ServerView(name="ambient", spec={"transport": "in-process"}, health=health["ambient"])]
    for spec in await hub.specs(user.name):
        views.append(
            ServerView(name=spec.name, spec=spec.public(), health=health.get(spec.name, "active"))
        )
    return views


@router.post("/agent/servers", status_code=status.HTTP_201_CREATED, response_model=ServerView)
async def add_server(spec: McpServerSpec, user: CurrentUser, state: StateDep) -> ServerView:
    """Add an MCP server (streamable HTTP; stdio for admins) to the caller's agent."""
    try:
        await hub_of(state).add(user, spec)
    except AgentError as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, [{"loc": ["body"], "msg": str(exc)}]
        ) from None
    return ServerView(name=spec.name, spec=spec.public(), health="active")


@router.delete("/agent/servers/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_server(name: str, user: CurrentUser, state: StateDep) -> None:
    if not await hub_of(state).remove(user.name, name):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"you have no MCP server named {name!r}")


@router.get("/agent/tools", response_model=AgentTools)
async def agent_tools(user: CurrentUser, state: StateDep, refresh: bool = False) -> AgentTools:
    """Every tool the caller's agent can call, each server's health and per-tool metrics."""
    facade = await hub_of(state).facade(user.name)
    tools = await facade.tools(refresh=refresh)
    return AgentTools(
        tools=[ToolView.model_validate(t.model_dump()) for t in tools],
        health={name: state.value for name, state in facade.health().items()},
        stats=facade.stats(),
    )


@router.get("/agent/digest", response_model=DigestSetting)
async def read_digest(user: CurrentUser, state: StateDep) -> DigestSetting:
    """Whether the event-driven agent reads your events and decides what to push."""
    return await state.digests.get(user.name)


@router.put("/agent/digest", response_model=DigestSetting)
async def set_digest(setting: DigestSetting, user: CurrentUser, state: StateDep) -> DigestSetting:
    """Turn the event-driven agent on (every N minutes) or off."""
    return await state.digests.set(user.name, setting)
