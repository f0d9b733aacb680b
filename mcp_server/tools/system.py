"""System tools: is everything up, what happened, what reached you, which tool fits."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import Tool
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from ambient import history
from ambient.domain.notify import ChannelType
from ambient.domain.numbers import WHOLE_NUMBER
from ambient.domain.times import IsoTime
from ambient.domain.tool_search import ToolDoc, ToolIndex
from ambient.history import (
    DeliveryPublic,
    DeliveryState,
    EventPublic,
    InboxMessagePublic,
    ScopeError,
)
from ambient.status import StatusReport, system_status
from ambient.storage.models import MAX_ID, next_before
from mcp_server.auth import Ctx, app_state, current_user_row, sees_operator_detail
from mcp_server.tools.hints import READ

User = Annotated[
    str | None,
    Field(
        max_length=63,
        description="Whose records: omit for your own; admins may name another user.",
    ),
]


BeforeId = Annotated[
    int | None,
    Field(ge=1, le=MAX_ID, description="Next page: next_before_id of the last"),
    WHOLE_NUMBER,
]


NextBeforeId = Annotated[
    int | None,
    Field(description="pass as before_id for the next (older) page; null on the last page"),
]


class Events(BaseModel):
    events: list[EventPublic]
    next_before_id: NextBeforeId = None


class Inbox(BaseModel):
    messages: list[InboxMessagePublic]
    next_before_id: NextBeforeId = None


class Deliveries(BaseModel):
    deliveries: list[DeliveryPublic]
    next_before_id: NextBeforeId


async def get_status(ctx: Ctx) -> StatusReport:
    """Report whether Temporal is reachable, how many workers poll our task queue, whether the
    database answers, and whether the LLM runs offline or against a remote endpoint; where
    each runs, to an admin."""
    state = app_state(ctx)
    report = await system_status(state.settings, state.temporal, state.db)
    return report.told(operator=await sees_operator_detail(ctx))


async def _whose(ctx: Ctx, session: AsyncSession, user: str | None) -> str:
    caller = await current_user_row(ctx)
    try:
        return await history.whose(session, caller.name, caller.is_admin, user)
    except ScopeError as exc:
        raise ToolError(f"{exc}. Omit user to read your own.") from None


async def list_events(
    ctx: Ctx,
    kind: Annotated[
        str | None,
        Field(
            max_length=64,
            description="Only this kind, e.g. watch.hit, watch.breach, delivery.failed",
        ),
    ] = None,
    task: Annotated[
        str | None, Field(max_length=255, description="Only this task_id's events")
    ] = None,
    since: Annotated[
        IsoTime | None,
        Field(
            description="Only events at or after this ISO 8601 time (one without an offset "
            "is in your time zone)"
        ),
    ] = None,
    before_id: BeforeId = None,
    limit: Annotated[int, Field(ge=1, le=500, description="At most this many"), WHOLE_NUMBER] = 50,
    user: User = None,
) -> Events:
    """What happened, newest first: watch hits and breaches, task changes, failed deliveries
    (with the error that says what to fix); next_before_id pages back."""
    async with app_state(ctx).db.session() as session:
        name = await _whose(ctx, session, user)
        me = await current_user_row(ctx)
        rows = await history.events(
            session,
            name,
            kind=kind,
            task=task,
            since=since,
            before_id=before_id,
            limit=limit + 1,
            operator=me.is_admin,
            zone=me.timezone,
        )
    return Events(events=rows[:limit], next_before_id=next_before(rows, limit))


async def read_inbox(
    ctx: Ctx,
    unread_only: Annotated[bool, Field(description="Only messages not yet marked read")] = False,
    before_id: BeforeId = None,
    limit: Annotated[int, Field(ge=1, le=500, description="At most this many"), WHOLE_NUMBER] = 20,
    user: User = None,
) -> Inbox:
    """Your inbox (the notifications stored for you), newest first; next_before_id pages
    back. Reading does not mark them read."""
    async with app_state(ctx).db.session() as session:
        name = await _whose(ctx, session, user)
        rows = await history.inbox(
            session, name, unread_only=unread_only, before_id=before_id, limit=limit + 1
        )
    return Inbox(messages=rows[:limit], next_before_id=next_before(rows, limit))


async def list_deliveries(
    ctx: Ctx,
    status: Annotated[
        DeliveryState | None,
        Field(
            description="pending (in flight), deferred (its receiver said try again later: "
            "tried again until retry_until), sent, failed or suppressed"
        ),
    ] = None,
    channel: Annotated[
        ChannelType | None, Field(description="only sends over this channel")
    ] = None,
    task: Annotated[str | None, Field(max_length=255, description="Only this task_id")] = None,
    before_id: BeforeId = None,
    limit: Annotated[int, Field(ge=1, le=500, description="At most this many"), WHOLE_NUMBER] = 50,
    user: User = None,
) -> Deliveries:
    """Every send of a notification to one target, newest first, with attempts and the error
    of a failure (e.g. "email is not configured: set AMBIENT_SMTP_HOST"). Targets are redacted."""
    async with app_state(ctx).db.session() as session:
        name = await _whose(ctx, session, user)
        rows = await history.deliveries(
            session,
            name,
            status=status,
            channel=channel,
            task=task,
            before_id=before_id,
            limit=limit + 1,  # one past the page: whether another follows
            operator=(await current_user_row(ctx)).is_admin,
        )
    return Deliveries(deliveries=rows[:limit], next_before_id=next_before(rows, limit))


class FoundTool(BaseModel):
    name: str
    description: str = Field(description="the tool's description, first sentence")
    why: list[str] = Field(description='the request\'s words it matched ("暂停→pause" via the map)')
    input_schema: dict[str, Any] | None = Field(
        default=None, description="its JSON schema, when asked for with with_schemas"
    )


class FoundTools(BaseModel):
    tools: list[FoundTool]


def first_sentence(description: str) -> str:
    text = " ".join(description.split())
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


def tool_docs(tools: list[Tool]) -> list[ToolDoc]:
    """The server's own listing as the index reads it (every tool but find_tools itself)."""
    return [
        ToolDoc(name=t.name, description=t.description or "", input_schema=t.input_schema)
        for t in tools
        if t.name != "find_tools"
    ]


# Built at the first call, every area has registered by then.
class ToolFinder:
    """find_tools for one server, its index built from the server's list when that changes."""

    def __init__(self, mcp: MCPServer[Any]) -> None:
        self._mcp = mcp
        self._index: ToolIndex | None = None
        self._names: tuple[str, ...] = ()

    async def index(self) -> ToolIndex:
        tools = await self._mcp.list_tools()
        names = tuple(t.name for t in tools)
        if self._index is None or names != self._names:
            self._index = ToolIndex(tool_docs(tools))
            self._names = names
        return self._index

    async def find_tools(
        self,
        query: Annotated[
            str,
            Field(
                min_length=1,
                max_length=4000,
                description="The user's request in their words, Chinese or English "
                '(e.g. "把比特币的监控暂停一下", "which node pools does cls-1 have?")',
            ),
        ],
        limit: Annotated[
            int, Field(ge=1, le=20, description="How many tools, best first"), WHOLE_NUMBER
        ] = 5,
        with_schemas: Annotated[
            bool, Field(description="Also answer each tool's input JSON schema")
        ] = False,
    ) -> FoundTools:
        """The tools that fit a request, best first, with the words that matched: search the
        full tool list instead of reading it all. No model runs; an empty list means no tool
        shares a word with the request."""
        hits = (await self.index()).search(query, limit)
        return FoundTools(
            tools=[
                FoundTool(
                    name=h.tool.name,
                    description=first_sentence(h.tool.description),
                    why=h.why,
                    input_schema=h.tool.input_schema if with_schemas else None,
                )
                for h in hits
            ]
        )


def register(mcp: MCPServer[Any]) -> None:
    mcp.add_tool(get_status, title="System status", annotations=READ)
    mcp.add_tool(ToolFinder(mcp).find_tools, title="Find tools", annotations=READ)
    mcp.add_tool(list_events, title="List events", annotations=READ)
    mcp.add_tool(read_inbox, title="Read inbox", annotations=READ)
    mcp.add_tool(list_deliveries, title="List deliveries", annotations=READ)
