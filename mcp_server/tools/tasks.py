"""Task tools: create and steer web monitors, threshold watches and reminders."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel, BeforeValidator, Field

from ambient.domain.numbers import WHOLE_NUMBER
from ambient.watches.configs import WebMonitorConfig
from ambient.watches.inputs import AnyConfig, ConfigPatch, TaskType, config_schema
from ambient.watches.listing import DEFAULT_PAGE_SIZE, KindFilter, StateFilter, TaskSummary
from ambient.watches.models import TaskRef, TaskStatus
from ambient.watches.reminders import ReminderConfig
from ambient.watches.threshold_config import ThresholdWatchConfig
from mcp_server.auth import Ctx, app_state, current_user
from mcp_server.tools.briefing import create_daily_briefing
from mcp_server.tools.hints import AGAIN, CHANGE, READ, WRITE

TaskId = Annotated[
    str,
    Field(description="the task_id returned by a create_* tool, e.g. web-monitor/alice/news"),
]
Name = Annotated[
    str | None,
    Field(
        description="optional short name (lowercase, digits, '-', '_', '.'); derived from the "
        "config when omitted, so creating the same task twice returns the first",
    ),
]


# Configs are taken as objects and parsed by type in TaskService (ambient.watches.inputs): the
# schema clients see is the typed model, the error a model reads names each bad field.
WebConfig = Annotated[
    dict[str, Any],
    config_schema(WebMonitorConfig),
    Field(
        description='e.g. {"urls": ["https://news.ycombinator.com"], "keywords": ["AI", '
        '"re:GPT-\\\\d"], "check_interval_minutes": 30, "notification": {"method": "email"}}'
    ),
]
ThresholdConfig = Annotated[
    dict[str, Any],
    config_schema(ThresholdWatchConfig),
    Field(
        description='e.g. {"metric": "bitcoin_price", "threshold": 50000} or {"source": {"type": '
        '"http_json", "url": "...", "json_path": "$.data.amount"}, "conditions": [{"op": "above", '
        '"value": 90}], "for_checks": 3, "hysteresis": 5, "cooldown_minutes": 60}'
    ),
]
ReminderConfigArg = Annotated[
    dict[str, Any],
    config_schema(ReminderConfig),
    Field(
        description='e.g. {"type": "daily", "hour": 8, "minute": 0, "timezone": "Asia/Shanghai", '
        '"message": "stand-up"}, {"type": "cron", "cron": "0 9 * * 1-5", ...}, or action '
        '"news_digest" with news_urls and categories'
    ),
]
UpdateConfig = Annotated[
    ConfigPatch,
    Field(
        description="only the fields to change, of the task's own type (web monitor, threshold "
        "watch, reminder; a daily briefing takes the fields of create_daily_briefing)"
    ),
]


class TaskList(BaseModel):
    tasks: list[TaskSummary]
    next_page_token: str | None = Field(
        default=None, description="pass as page_token for the next page; null at the end"
    )


async def _create(ctx: Ctx, kind: str, config: Any, name: str | None) -> TaskRef:
    return await app_state(ctx).tasks.create(current_user(ctx), kind, config, name)


async def create_web_monitor(ctx: Ctx, config: WebConfig, name: Name = None) -> TaskRef:
    """Watch web pages in the background and report keyword hits and changes."""
    return await _create(ctx, "web_monitor", config, name)


async def create_threshold_watch(ctx: Ctx, config: ThresholdConfig, name: Name = None) -> TaskRef:
    """Watch a metric and alert once when it crosses a threshold and once when it recovers."""
    return await _create(ctx, "threshold_watch", config, name)


async def create_reminder(ctx: Ctx, config: ReminderConfigArg, name: Name = None) -> TaskRef:
    """Schedule a reminder or a news digest (daily, weekly or cron, in a time zone)."""
    return await _create(ctx, "schedule", config, name)


def _not_the_briefing(value: Any) -> Any:
    # The user's one daily briefing has a tool of its own: a guess of it here is steered there.
    if isinstance(value, str) and value.lower().replace("-", "_") in ("daily_briefing", "briefing"):
        raise ValueError(f"{value!r} is not a type here: call create_daily_briefing for it")
    return value


async def create_background_task(
    ctx: Ctx,
    type: Annotated[
        TaskType,
        BeforeValidator(_not_the_briefing),
        Field(description="the kind of background task"),
    ],
    config: AnyConfig,
    name: Name = None,
) -> TaskRef:
    """Create any background task in the generic form {type, config}; config by type."""
    return await _create(ctx, type, config, name)


async def list_tasks(
    ctx: Ctx,
    kind: Annotated[KindFilter | None, Field(description="only this kind")] = None,
    state: Annotated[StateFilter | None, Field(description="only this state")] = None,
    page_size: Annotated[
        int | None,
        Field(
            ge=1,
            le=1000,
            description=f"tasks per page (1-1000); omitted: {DEFAULT_PAGE_SIZE}",
        ),
        WHOLE_NUMBER,
    ] = None,
    page_token: Annotated[
        str | None,
        Field(max_length=4096, description="next_page_token of the previous page"),
    ] = None,
) -> TaskList:
    """List your background tasks with task_id, kind, state and started_at (when each was
    created), a page at a time (running tasks first, the most recently started run first: a
    watch's run restarts every day or two, so sort by started_at for the newest task); when
    next_page_token is not null, pass it as page_token for the next page."""
    user, service = current_user(ctx), app_state(ctx).tasks
    size = page_size or DEFAULT_PAGE_SIZE
    page = await service.list(user, kind=kind, state=state, page_size=size, page_token=page_token)
    return TaskList(tasks=list(page), next_page_token=page.next_page_token)


async def get_task(ctx: Ctx, task_id: TaskId) -> TaskStatus:
    """Status of a task: state, checks done, config and per-kind detail (URLs, last values)."""
    return await app_state(ctx).tasks.get(current_user(ctx), task_id)


async def pause_task(ctx: Ctx, task_id: TaskId) -> TaskRef:
    """Pause a task: no scheduled checks until it is resumed (one asked for still runs)."""
    return await app_state(ctx).tasks.pause(current_user(ctx), task_id)


async def resume_task(ctx: Ctx, task_id: TaskId) -> TaskRef:
    """Resume a paused task (a watch checks at once)."""
    return await app_state(ctx).tasks.resume(current_user(ctx), task_id)


async def trigger_task(ctx: Ctx, task_id: TaskId) -> TaskRef:
    """Run a check (or a scheduled action) now."""
    return await app_state(ctx).tasks.trigger(current_user(ctx), task_id)


async def update_task(ctx: Ctx, task_id: TaskId, config: UpdateConfig) -> TaskStatus:
    """Change a task's config: the fields you send replace those in force and the rest stay
    (objects merge, lists and maps like dimensions replace whole, null resets a field to its
    default; a new type or action keeps the fields the two share); `changed` lists what
    changed. An invalid result is refused, naming the field, and nothing changes."""
    return await app_state(ctx).tasks.update(current_user(ctx), task_id, config)


async def delete_task(
    ctx: Ctx,
    task_id: TaskId,
    purge: Annotated[bool, Field(description="also delete stored page snapshots")] = False,
) -> TaskRef:
    """Stop a task for good (events are kept; snapshots too unless purge)."""
    return await app_state(ctx).tasks.delete(current_user(ctx), task_id, purge=purge)


def register(mcp: MCPServer[Any]) -> None:
    mcp.add_tool(list_tasks, title="List tasks", annotations=READ)
    mcp.add_tool(get_task, title="Get task", annotations=READ)
    # Creates and steering alike: a retry changes nothing more.
    mcp.add_tool(create_web_monitor, annotations=WRITE)
    mcp.add_tool(create_threshold_watch, annotations=WRITE)
    mcp.add_tool(create_reminder, annotations=WRITE)
    mcp.add_tool(create_daily_briefing, annotations=WRITE)  # a task: the briefing's own
    mcp.add_tool(create_background_task, annotations=WRITE)
    mcp.add_tool(pause_task, annotations=WRITE)
    mcp.add_tool(resume_task, annotations=WRITE)
    mcp.add_tool(update_task, annotations=CHANGE)  # changes the config
    mcp.add_tool(trigger_task, annotations=AGAIN)
    mcp.add_tool(delete_task, annotations=CHANGE)
