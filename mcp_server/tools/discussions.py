"""Discussion tools, in three areas: signing (writes), annotate (analysis), bus (browse/set-up).

Each area is also served alone (`ambient mcp --server signing|annotate|bus`) so a client can
enable them one by one.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field, ValidationError

from ambient.discussions.reading import PAGE
from ambient.discussions.rules import MessageIn, SourceType
from ambient.discussions.views import (
    AnnotationReport,
    AnomalyReport,
    Closed,
    DiscussionList,
    DiscussionRead,
    Found,
    Posted,
    Projects,
    Stats,
    StoreInit,
)
from ambient.domain.field_errors import field_problems
from ambient.domain.numbers import WHOLE_NUMBER, DecimalNumber, WholeNumber
from mcp_server.auth import Ctx, app_state, current_user
from mcp_server.tools.hints import AGAIN, DECIDE, READ, RECORD

FromId = Annotated[
    str, Field(description="who signs: your user name, an agent you own, or (admins) xiaozhi")
]
Content = Annotated[str, Field(description="the message text (markdown)", max_length=20_000)]
ReplyTo = Annotated[str | None, Field(description="id of the message this answers")]
Tags = Annotated[
    list[str] | None,
    Field(description="short labels, e.g. approve, abort, question, auto_reply", max_length=20),
]
Source = Annotated[
    SourceType, Field(description="real (you wrote it), inferred (machine-written), unverifiable")
]
MessageId = Annotated[
    str | None,
    Field(description="your own id for the message (yours alone): a retry with it posts nothing"),
]
DiscussionId = Annotated[str, Field(description="a discussion id, e.g. disc_20261122081500_ab12")]
Offset = Annotated[
    WholeNumber,
    Field(description="where the page starts: 0, or the next_offset of the previous page"),
]


Limit = Annotated[
    int,
    Field(ge=1, le=PAGE, description=f"at most this many messages (1-{PAGE})"),
    WHOLE_NUMBER,
]


def _message(
    from_id: str,
    content: str,
    reply_to: str | None,
    tags: list[str] | None,
    source_type: SourceType,
    message_id: str | None,
) -> MessageIn:
    try:
        return MessageIn(
            from_id=from_id,
            content=content,
            reply_to=reply_to,
            tags=tags or [],
            source_type=source_type,
            message_id=message_id,
        )
    except ValidationError as exc:
        raise ToolError("nothing posted — " + "; ".join(field_problems(exc))) from None


# --- signing -----------------------------------------------------------------------------


async def send_message(
    ctx: Ctx,
    from_id: FromId,
    topic: Annotated[str, Field(description="what it is about; same topic joins the open one")],
    content: Content,
    reply_to: ReplyTo = None,
    tags: Tags = None,
    source_type: Source = "real",
    message_id: MessageId = None,
) -> Posted:
    """Post on the team's discussion bus: joins the open discussion on the same topic or opens
    one, and notifies the other people in it."""
    message = _message(from_id, content, reply_to, tags, source_type, message_id)
    return await app_state(ctx).discussions.send_message(current_user(ctx), topic, message)


async def reply_message(
    ctx: Ctx,
    discussion_id: DiscussionId,
    from_id: FromId,
    content: Content,
    reply_to: ReplyTo = None,
    tags: Tags = None,
    source_type: Source = "real",
    message_id: MessageId = None,
) -> Posted:
    """Reply in an open discussion. In a remediation's discussion, a real reply tagged approve,
    refuse or abort acts on the remediation (an inferred one is refused)."""
    message = _message(from_id, content, reply_to, tags, source_type, message_id)
    return await app_state(ctx).discussions.reply_message(current_user(ctx), discussion_id, message)


async def close_discussion(ctx: Ctx, discussion_id: DiscussionId) -> Closed:
    """Close a discussion (idempotent); later posts on its topic open a new one."""
    return await app_state(ctx).discussions.close_discussion(current_user(ctx), discussion_id)


# --- annotate ----------------------------------------------------------------------------


async def search_messages(
    ctx: Ctx,
    keyword: Annotated[str, Field(description="a word or phrase, any case", max_length=200)],
    offset: Offset = 0,
    limit: Limit = PAGE,
) -> Found:
    """Messages containing the keyword (any case; % and _ are plain characters) in the
    discussions you take part in, newest first: query, total_matches, next_offset, results
    (limit a page, fewer when they are long)."""
    return await app_state(ctx).discussions.search_messages(
        current_user(ctx), keyword, offset, limit
    )


async def detect_anomalies(
    ctx: Ctx,
    discussion_id: DiscussionId,
    threshold_seconds: Annotated[
        DecimalNumber,
        Field(description="a reply within this many seconds after what it answers is suspicious"),
    ] = 2.0,
) -> AnomalyReport:
    """Messages sent within threshold_seconds after what they answer (the message replied to,
    our agents' posts): likely machine-written."""
    return await app_state(ctx).discussions.detect_anomalies(
        current_user(ctx), discussion_id, threshold_seconds
    )


async def annotate_discussion(ctx: Ctx, discussion_id: DiscussionId) -> AnnotationReport:
    """Mark messages inferred (anomalies, auto_reply tags) or unverifiable (unknown senders);
    returns what changed."""
    return await app_state(ctx).discussions.annotate_discussion(current_user(ctx), discussion_id)


# --- bus ---------------------------------------------------------------------------------


async def list_discussions(
    ctx: Ctx,
    status: Annotated[
        Literal["open", "closed"] | None, Field(description="only open or only closed")
    ] = None,
    offset: Offset = 0,
) -> DiscussionList:
    """The discussions you take part in (admins: all), newest activity first, with the open
    and closed counts; 100 at a time (next_offset says where the next page starts)."""
    return await app_state(ctx).discussions.list_discussions(
        current_user(ctx), status, offset=offset
    )


async def read_discussion(
    ctx: Ctx, discussion_id: DiscussionId, offset: Offset = 0, limit: Limit = PAGE
) -> DiscussionRead:
    """A discussion and its messages, oldest first, limit at a time and fewer when they are
    long (next_offset says where the next page starts; discussion.messages is the total)."""
    return await app_state(ctx).discussions.read_discussion(
        current_user(ctx), discussion_id, offset, limit
    )


async def init_store(ctx: Ctx) -> StoreInit:
    """Make sure the bus is ready (the product's agents exist); idempotent; returns counts."""
    return await app_state(ctx).discussions.init_store(current_user(ctx))


async def list_projects(ctx: Ctx) -> Projects:
    """Projects of your discussions with their discussion and message counts."""
    return await app_state(ctx).discussions.list_projects(current_user(ctx))


async def get_stats(ctx: Ctx) -> Stats:
    """Totals over your discussions: messages per participant, latest activity, size."""
    return await app_state(ctx).discussions.get_stats(current_user(ctx))


def register_signing(mcp: MCPServer[Any]) -> None:
    mcp.add_tool(send_message, title="Send a message", annotations=AGAIN)
    # A reply can approve or abort a remediation as the person: asked first, like approving.
    mcp.add_tool(reply_message, title="Reply in a discussion", annotations=DECIDE)
    mcp.add_tool(close_discussion, title="Close a discussion", annotations=RECORD)


def register_annotate(mcp: MCPServer[Any]) -> None:
    mcp.add_tool(search_messages, title="Search messages", annotations=READ)
    mcp.add_tool(detect_anomalies, title="Detect inferred replies", annotations=READ)
    mcp.add_tool(annotate_discussion, title="Annotate a discussion", annotations=RECORD)


def register_bus(mcp: MCPServer[Any]) -> None:
    mcp.add_tool(list_discussions, title="List discussions", annotations=READ)
    mcp.add_tool(read_discussion, title="Read a discussion", annotations=READ)
    mcp.add_tool(list_projects, title="List projects", annotations=READ)
    mcp.add_tool(get_stats, title="Bus statistics", annotations=READ)
    mcp.add_tool(init_store, title="Initialise the bus", annotations=RECORD)
