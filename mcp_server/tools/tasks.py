"""Task tools: create and steer web monitors, threshold watches and reminders."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any, Literal, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from ambient.domain.tasks import TaskStatus
from ambient.tasks import TaskError, TaskRef, TaskService, TaskSummary
from mcp_server.auth import app_state, current_user

T = TypeVar("T")

TaskId = Annotated[
    str,
    Field(description="the task_id returned by a create_* tool, e.g. web-monitor/alice/news"),
]
Name = Annotated[
    str | None,
    Field(
        default=None,
        description="optional short name (lowercase, digits, '-', '_', '.'); derived from the "
        "config when omitted, so creating the same task twice returns the first",
    ),
]
WEB_CONFIG = (
    'Web monitor config, e.g. {"urls": ["https://news.ycombinator.com"], "keywords": ["AI", '
    '"re:GPT-\\\\d"], "check_interval_minutes": 30, "notification": {"method": "email"}}. '
    "Fields: urls (1-50), keywords (case-insensitive; 're:' prefix for a regex), selectors "
    "(URL -> CSS selector), ignore_patterns (regexes), check_interval_minutes (>= 1), "
    "failure_threshold, notification {method: inbox|email|send_sms|wecom|dingtalk|webhook|"
    "apprise, target|email|phone_number}, targets [{channel, target}]."
)
THRESHOLD_CONFIG = (
    'Threshold watch config, e.g. {"metric": "bitcoin_price", "threshold": 50000, '
    '"check_interval_minutes": 15} or {"source": {"type": "http_json", "url": "...", '
    '"json_path": "$.data.amount"}, "conditions": [{"op": "above", "value": 90}], '
    '"for_checks": 3, "hysteresis": 5, "cooldown_minutes": 60}. Sources: http_json, '
    "prometheus {url, query}, tencent_monitor {namespace, metric, dimensions}."
)
REMINDER_CONFIG = (
    'Reminder config, e.g. {"type": "daily", "hour": 8, "minute": 0, "timezone": '
    '"Asia/Shanghai", "message": "stand-up"} or {"type": "weekly", "days": ["mon"], ...} or '
    '{"type": "cron", "cron": "0 9 * * 1-5", ...}; action "news_digest" with news_urls and '
    "categories sends a digest of what is new on those pages."
)


class TaskList(BaseModel):
    tasks: list[TaskSummary]


def _annotations(
    *, read_only: bool, destructive: bool = False, idempotent: bool = True
) -> ToolAnnotations:
    return ToolAnnotations(
        read_only_hint=read_only,
        destructive_hint=destructive,
        idempotent_hint=idempotent,
        open_world_hint=not read_only,
    )


async def _call(work: Awaitable[T]) -> T:
    try:
        return await work
    except TaskError as exc:
        raise ToolError(str(exc)) from None


def _service(ctx: Context[Any, Any]) -> TaskService:
    state = app_state(ctx)
    return TaskService(state.temporal, state.settings, state.db)


async def create_web_monitor(
    ctx: Context[Any, Any],
    config: Annotated[dict[str, Any], Field(description=WEB_CONFIG)],
    name: Name = None,
) -> TaskRef:
    """Watch web pages in the background and report keyword hits and changes."""
    return await _call(_service(ctx).create_web_monitor(current_user(ctx), config, name))


async def create_threshold_watch(
    ctx: Context[Any, Any],
    config: Annotated[dict[str, Any], Field(description=THRESHOLD_CONFIG)],
    name: Name = None,
) -> TaskRef:
    """Watch a metric and alert once when it crosses a threshold and once when it recovers."""
    return await _call(_service(ctx).create_threshold_watch(current_user(ctx), config, name))


async def create_reminder(
    ctx: Context[Any, Any],
    config: Annotated[dict[str, Any], Field(description=REMINDER_CONFIG)],
    name: Name = None,
) -> TaskRef:
    """Schedule a reminder or a news digest (daily, weekly or cron, in a time zone)."""
    return await _call(_service(ctx).create_reminder(current_user(ctx), config, name))


async def create_background_task(
    ctx: Context[Any, Any],
    type: Annotated[
        Literal["web_monitor", "threshold_watch", "schedule", "news_digest"],
        Field(description="the kind of background task"),
    ],
    config: Annotated[
        dict[str, Any], Field(description="the config of that kind (see the create_* tools)")
    ],
    name: Name = None,
) -> TaskRef:
    """Create any background task in the generic form {type, config}."""
    return await _call(_service(ctx).create(current_user(ctx), type, config, name))


async def list_tasks(
    ctx: Context[Any, Any],
    kind: Annotated[
        Literal["web_monitor", "threshold_watch", "schedule"] | None,
        Field(default=None, description="only this kind"),
    ] = None,
    state: Annotated[
        Literal["active", "paused", "stopped"] | None,
        Field(default=None, description="only this state"),
    ] = None,
) -> TaskList:
    """List your background tasks with task_id, kind and state."""
    user = current_user(ctx)
    return TaskList(tasks=await _call(_service(ctx).list(user, kind=kind, state=state)))


async def get_task(ctx: Context[Any, Any], task_id: TaskId) -> TaskStatus:
    """Status of a task: state, checks done, config and per-kind detail (URLs, last values)."""
    return await _call(_service(ctx).get(current_user(ctx), task_id))


async def pause_task(ctx: Context[Any, Any], task_id: TaskId) -> TaskRef:
    """Pause a task: no checks until it is resumed."""
    return await _call(_service(ctx).pause(current_user(ctx), task_id))


async def resume_task(ctx: Context[Any, Any], task_id: TaskId) -> TaskRef:
    """Resume a paused task (a watch checks at once)."""
    return await _call(_service(ctx).resume(current_user(ctx), task_id))


async def trigger_task(ctx: Context[Any, Any], task_id: TaskId) -> TaskRef:
    """Run a check (or a scheduled action) now."""
    return await _call(_service(ctx).trigger(current_user(ctx), task_id))


async def update_task(
    ctx: Context[Any, Any],
    task_id: TaskId,
    config: Annotated[dict[str, Any], Field(description="the whole new config of the task")],
) -> TaskStatus:
    """Replace a task's config; an invalid config is rejected and nothing changes."""
    return await _call(_service(ctx).update(current_user(ctx), task_id, config))


async def delete_task(
    ctx: Context[Any, Any],
    task_id: TaskId,
    purge: Annotated[
        bool, Field(default=False, description="also delete stored page snapshots")
    ] = False,
) -> TaskRef:
    """Stop a task for good (events are kept; snapshots too unless purge)."""
    return await _call(_service(ctx).delete(current_user(ctx), task_id, purge=purge))


def register(mcp: MCPServer[Any], *, read_only: bool) -> None:
    read = _annotations(read_only=True)
    mcp.add_tool(list_tasks, title="List tasks", annotations=read)
    mcp.add_tool(get_task, title="Get task", annotations=read)
    if read_only:
        return
    create = _annotations(read_only=False)
    mcp.add_tool(create_web_monitor, annotations=create)
    mcp.add_tool(create_threshold_watch, annotations=create)
    mcp.add_tool(create_reminder, annotations=create)
    mcp.add_tool(create_background_task, annotations=create)
    steer = _annotations(read_only=False)
    mcp.add_tool(pause_task, annotations=steer)
    mcp.add_tool(resume_task, annotations=steer)
    mcp.add_tool(update_task, annotations=steer)
    mcp.add_tool(trigger_task, annotations=_annotations(read_only=False, idempotent=False))
    mcp.add_tool(delete_task, annotations=_annotations(read_only=False, destructive=True))
