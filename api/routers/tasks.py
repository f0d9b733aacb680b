"""Tasks: the same operations as the MCP task tools, for the calling user."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Response, status
from pydantic import Field

from ambient.domain.configs import UserConfig
from ambient.domain.numbers import WHOLE_NUMBER
from ambient.domain.users import NAME_RULE
from ambient.watches.inputs import (
    AnyConfig,
    ConfigError,
    ConfigPatch,
    InvalidTaskError,
    NewConfig,
    TaskError,
    TaskNotFoundError,
    TaskStateError,
    TaskType,
    TaskUnavailableError,
)
from ambient.watches.listing import DEFAULT_PAGE_SIZE, KindFilter, StateFilter, TaskSummary
from ambient.watches.models import TaskRef, TaskStatus
from ambient.watches.service import TaskService
from api.deps import CurrentUser, StateDep, created_or_found
from api.errors import answers, refusal, unprocessable

STATUSES = {TaskNotFoundError: 404, TaskStateError: 409, TaskUnavailableError: 503}

router = APIRouter(prefix="/tasks", tags=["tasks"], responses=answers(*STATUSES.values(), 502))


class TaskCreate(UserConfig):
    type: TaskType = Field(description="the kind of background task")
    # Parsed by type in TaskService (ambient.watches.inputs), published as the typed models.
    config: AnyConfig
    # Its length and characters refused by the service, as at every door, naming what it may be.
    name: str | None = Field(default=None, description=f"optional short name: {NAME_RULE}")


# The fields a route takes outside its body, whichever route the service names them for; any
# other refused field is the body's config.
OUTSIDE_BODY = {"task_id": "path", "page_token": "query"}


# The refusals no field is to blame for (stopped: no field of the request is wrong; a
# briefing's preparation that failed, to be tried again); any other TaskError is a 503
# (Temporal down) or a 502. Bad input is refused (422) before Temporal is asked, as on every
# router.


def http_error(exc: TaskError) -> Exception:
    if isinstance(exc, ConfigError):
        return unprocessable(*exc.errors, inputs=exc.inputs)
    if isinstance(exc, InvalidTaskError) and not isinstance(exc, TaskStateError):
        named = str(exc).split(": ", 1)[0]
        # The task's name (taken by another config) is the body's own field; else its config.
        field = named if named in OUTSIDE_BODY or named == "name" else "config"
        # Same shape as FastAPI's own 422s: the field, then the message.
        return unprocessable(([field], str(exc)), where=OUTSIDE_BODY.get(field, "body"))
    return refusal(exc, STATUSES)


# A create that found the same task (a repeat, a client's retry) made nothing: 200, not 201.
FOUND: dict[int | str, dict[str, Any]] = {
    200: {"description": "the same task exists already: it is answered (`created: false`)"}
}


@router.post("", status_code=status.HTTP_201_CREATED, responses=FOUND)
async def create_task(
    body: TaskCreate, user: CurrentUser, state: StateDep, response: Response
) -> TaskRef:
    """Create a background task in the generic form {type, config}."""
    ref = await state.tasks.create(user.name, body.type, body.config, body.name)
    return created_or_found(ref, response)


@router.get("")
async def list_tasks(
    user: CurrentUser,
    state: StateDep,
    response: Response,
    kind: KindFilter | None = None,
    state_: Annotated[StateFilter | None, Query(alias="state")] = None,
    page_size: Annotated[int | None, Query(ge=1, le=1000), WHOLE_NUMBER] = None,
    page_token: Annotated[str | None, Query(max_length=4096)] = None,
) -> list[TaskSummary]:
    """Your tasks a page at a time (page_size, default 50); the next page's token is in
    X-Next-Page-Token (absent on the last page)."""
    page = await state.tasks.list(
        user.name,
        kind=kind,
        state=state_,
        page_size=page_size or DEFAULT_PAGE_SIZE,
        page_token=page_token,
    )
    if page.next_page_token is not None:
        response.headers["X-Next-Page-Token"] = page.next_page_token
    return list(page)


@router.get("/{task_id:path}/status")
async def get_task(task_id: str, user: CurrentUser, state: StateDep) -> TaskStatus:
    return await state.tasks.get(user.name, task_id)


@router.post("/{task_id:path}/{action}")
async def control_task(
    task_id: str, action: Literal["pause", "resume", "trigger"], user: CurrentUser, state: StateDep
) -> TaskRef:
    """pause, resume or trigger (check now) a task."""
    operation = getattr(state.tasks, action)
    return await operation(user.name, task_id)


@router.put("/{task_id:path}/config")
async def replace_task_config(
    task_id: str,
    user: CurrentUser,
    state: StateDep,
    config: Annotated[NewConfig, Body(description="the whole new config, of the task's own type")],
) -> TaskStatus:
    """Replace a task's config whole (fields left out take their defaults)."""
    return await _updated(state.tasks, user.name, task_id, config, replace=True)


@router.patch("/{task_id:path}/config")
async def update_task(
    task_id: str,
    user: CurrentUser,
    state: StateDep,
    config: Annotated[ConfigPatch, Body(description="the fields to change (a JSON Merge Patch)")],
) -> TaskStatus:
    """Change the fields sent; the rest stay (RFC 7396: objects merge, lists replace whole, null
    resets a field to its default; a new type or action replaces the whole config)."""
    return await _updated(state.tasks, user.name, task_id, config, replace=False)


async def _updated(
    tasks: TaskService, user: str, task_id: str, config: dict[str, Any], *, replace: bool
) -> TaskStatus:
    try:
        return await tasks.update(user, task_id, config, replace=replace)
    except ConfigError as exc:
        # The body is the config itself: a field is named from the body (MCP's argument is
        # `config`, so the service names it from there).
        raise unprocessable(*exc.in_config) from None


@router.delete("/{task_id:path}")
async def delete_task(
    task_id: str, user: CurrentUser, state: StateDep, purge: bool = False
) -> TaskRef:
    return await state.tasks.delete(user.name, task_id, purge=purge)
