"""Briefing tools: set up the daily briefing, greet (the voice trigger), read, regenerate, send."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel, Field

from ambient.briefing.config import ClsLogSpec, FileLogSpec
from ambient.briefing.greeting_answers import GreetResult
from ambient.briefing.models import (
    MAX_REQUEST_ID,
    BriefingListItem,
    BriefingRef,
    BriefingView,
    LogAnalysis,
    PreparedBriefing,
)
from ambient.briefing.sent import BriefingSent
from ambient.domain.numbers import WHOLE_NUMBER
from ambient.domain.times import IsoTime
from ambient.domain.users import MAX_USER_NAME
from ambient.watches.inputs import config_schema
from mcp_server.auth import Ctx, app_state, current_user
from mcp_server.tools.hints import AGAIN, LOOK, READ, WRITE
from mcp_server.tools.users import register_push

SOURCE_SHAPE = (
    '{"type": "file", "path": "/var/log/app"} (a file or a folder of rotated files; under '
    'AMBIENT_LOG_DIR when that is set; optional "timezone": the IANA zone of its times without '
    'an offset, default the briefing\'s) or {"type": "cls", "topic_id": "..."} (Tencent CLS; '
    'optional "region", "query").'
)
LOG_SOURCE = f"Where yesterday's logs come from: {SOURCE_SHAPE} Omit for no logs."
# analyze_logs reads any time range, and needs a source.
ANALYZED = f"Where the logs to reduce come from: {SOURCE_SHAPE}"
# Taken as an object, checked by the briefing config; published as its two shapes.
LogSource = Annotated[dict[str, Any], config_schema(FileLogSpec, ClsLogSpec)]
HHMM = "HH:MM, 24-hour, in the briefing's time zone"
YOURS = "default: your user settings (05:00, 06:00-10:00, Asia/Shanghai unless changed)"
Date = Annotated[
    str | None,
    Field(description="the local date YYYY-MM-DD; the latest when omitted"),
]
RequestId = Annotated[
    str | None,
    Field(
        min_length=1,
        max_length=MAX_REQUEST_ID,
        description="retry-safe id: the same id is done once, answered alike",
    ),
]


class BriefingList(BaseModel):
    briefings: list[BriefingListItem]


async def create_daily_briefing(
    ctx: Ctx,
    log_source: Annotated[LogSource | None, Field(description=LOG_SOURCE)] = None,
    timezone: Annotated[str | None, Field(description=f"IANA time zone; {YOURS}")] = None,
    prepare_at: Annotated[
        str | None, Field(description=f"when to prepare; {HHMM}; {YOURS}")
    ] = None,
    window_start: Annotated[
        str | None, Field(description=f"greeting window start; {HHMM}; {YOURS}")
    ] = None,
    window_end: Annotated[
        str | None, Field(description=f"greeting window end; {HHMM}; {YOURS}")
    ] = None,
    language: Annotated[
        Literal["zh", "en"] | None,
        Field(description="spoken language; default: your language setting, else zh"),
    ] = None,
    push_if_not_greeted: Annotated[
        bool, Field(description="push through your channels when nobody greets by window end")
    ] = True,
    news_urls: Annotated[
        list[str] | None, Field(description="optional news pages / RSS feeds")
    ] = None,
    categories: Annotated[list[str] | None, Field(description="news keywords / categories")] = None,
) -> BriefingRef:
    """Set up your daily briefing: prepared before you arrive, spoken at your first greeting.
    One runs already: the same config finds it (created false); another is refused, as
    update_task changes it (the fields sent; the others are kept)."""
    config = {
        "log_source": log_source,
        "timezone": timezone,
        "prepare_at": prepare_at,
        "window_start": window_start,
        "window_end": window_end,
        "language": language,
        "push_if_not_greeted": push_if_not_greeted,
        "news_urls": news_urls or [],
        "categories": categories or [],
    }
    return await app_state(ctx).briefings.create(current_user(ctx), config, replace=False)


async def greet(
    ctx: Ctx,
    user_id: Annotated[
        str | None,
        Field(
            max_length=MAX_USER_NAME,
            description="whose briefing (default: you; others: admins only)",
        ),
    ] = None,
    request_id: RequestId = None,
) -> GreetResult:
    """The voice trigger ("你好，小智"): the briefing at the day's first greeting in the window;
    later greetings say when it was given."""
    caller = current_user(ctx)
    return await app_state(ctx).briefings.greet(
        user_id or caller, via="mcp", request_id=request_id, audio=False, caller=caller
    )


async def get_briefing(ctx: Ctx, date: Date = None) -> BriefingView:
    """A briefing with its full report (templates, anomalies, alarms, sources)."""
    return await app_state(ctx).briefings.get_briefing(current_user(ctx), date)


async def list_briefings(
    ctx: Ctx,
    limit: Annotated[int, Field(ge=1, le=366, description="most recent first"), WHOLE_NUMBER] = 30,
) -> BriefingList:
    """Your briefings by date: headline, whether given (when) or pushed."""
    items = await app_state(ctx).briefings.list_briefings(current_user(ctx), limit)
    return BriefingList(briefings=items)


async def regenerate_briefing(ctx: Ctx, request_id: RequestId = None) -> PreparedBriefing:
    """Prepare today's briefing again now (new version; it is not spoken again)."""
    return await app_state(ctx).briefings.regenerate(current_user(ctx), request_id)


async def send_briefing(
    ctx: Ctx,
    date: Date = None,
    request_id: RequestId = None,
) -> BriefingSent:
    """Send a briefing through your push channels now ("send today's briefing to my email");
    `said` tells which channels took it, which did not and why, and what to do."""
    return await app_state(ctx).briefings.send(current_user(ctx), date, request_id)


async def analyze_logs(
    ctx: Ctx,
    log_source: Annotated[LogSource, Field(description=ANALYZED)],
    start: Annotated[IsoTime, Field(description="ISO 8601 with offset")],
    end: Annotated[IsoTime, Field(description="ISO 8601 with offset")],
) -> LogAnalysis:
    """Reduce logs of any time range: templates with counts, trend, anomalies, keywords."""
    return await app_state(ctx).briefings.analyze_logs(current_user(ctx), log_source, start, end)


def register(mcp: MCPServer[Any]) -> None:
    mcp.add_tool(get_briefing, annotations=READ)
    mcp.add_tool(list_briefings, annotations=READ)
    # A CLS source is read from Tencent Cloud, as search_logs reads it.
    mcp.add_tool(analyze_logs, annotations=LOOK)
    mcp.add_tool(greet, annotations=WRITE)
    mcp.add_tool(regenerate_briefing, annotations=AGAIN)
    mcp.add_tool(send_briefing, annotations=AGAIN)
    register_push(mcp)  # where the briefing (and every message) is pushed
