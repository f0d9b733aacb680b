"""Listing tasks: a user's tasks a page at a time (watches by a visibility query on our search
attributes, then schedules), each once, and those of given names or name starts (a voice
call's). ``TaskReads`` adds a task's status."""

from __future__ import annotations

import base64
import builtins
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel
from temporalio.client import Client, WorkflowExecutionStatus

from ambient import temporal
from ambient.storage import Database
from ambient.storage.users import registered
from ambient.watches.configs import PREFIXES, TaskKind, TaskState
from ambient.watches.inputs import InvalidTaskError, TaskType
from workflows.daily_briefing import DailyBriefingWorkflow
from workflows.threshold_watch import ThresholdWatchWorkflow
from workflows.web_monitor import WebMonitorWorkflow

# Tasks that are workflows (listed by a visibility query; the rest are schedules), each with
# its workflow type: a run of another type that carries the same attributes is not the task.
WORKFLOW_TYPES: dict[TaskKind, Any] = {
    TaskKind.WEB_MONITOR: WebMonitorWorkflow,
    TaskKind.THRESHOLD_WATCH: ThresholdWatchWorkflow,
    TaskKind.DAILY_BRIEFING: DailyBriefingWorkflow,
}
# The page a door (MCP, API) answers when the caller names no page size: bounded, so a user
# with 10,000 tasks gets a page and a cursor, not everything at once.
DEFAULT_PAGE_SIZE = 50
# What a door's task list may be narrowed to.
KindFilter = Literal[TaskType, "daily_briefing"]
StateFilter = Literal["active", "paused", "stopped"]


def checked_filters(kind: str | None, state: str | None) -> None:
    """A list's ``kind`` and ``state`` as the doors' models allow them, checked here too, so
    no door (the CLI passes what was typed) lists unfiltered tasks, or none, for a typo."""
    for field, value, allowed in (("kind", kind, KindFilter), ("state", state, StateFilter)):
        if value is not None and value not in get_args(allowed):
            known = ", ".join(get_args(allowed))
            raise InvalidTaskError(f"{field}: {value!r} is not one of {known}")


class TaskSummary(BaseModel):
    task_id: str
    kind: TaskKind
    state: TaskState
    summary: str | None = None
    started_at: datetime | None = None


class TaskPage(list[TaskSummary]):
    """One page of tasks (a plain list for callers that ignore paging) and the next cursor."""

    def __init__(self, tasks: list[TaskSummary], next_page_token: str | None = None) -> None:
        super().__init__(tasks)
        self.next_page_token = next_page_token


def _cursor(phase: str, token: bytes | None) -> str:
    raw = json.dumps({"p": phase, "t": base64.b64encode(token).decode() if token else None})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _parse_cursor(cursor: str) -> tuple[str, bytes | None]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        phase, token = data["p"], data["t"]
        if phase not in ("watches", "schedules"):
            raise ValueError(phase)
        return phase, base64.b64decode(token) if token else None
    except (ValueError, KeyError, TypeError):
        raise InvalidTaskError(
            "page_token: not a token from a previous list; omit it to start again"
        ) from None


class TaskListing:
    """The task list of ``TaskReads`` (and so ``TaskService``), whose clients it uses."""

    client: Client
    db: Database

    async def list(
        self,
        user: str,
        *,
        kind: str | None = None,
        state: str | None = None,
        limit: int | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
        without_stopped: bool = False,
    ) -> TaskPage:
        """The caller's tasks (a visibility query on our search attributes, then schedules),
        each once: with ``page_size`` a page and its token, without every task to ``limit``;
        ``without_stopped``: not those their owner stopped (the dashboard's, where a delete
        unlists a task)."""
        checked_filters(kind, state)
        if page_size is None:
            tasks: list[TaskSummary] = []
            token: str | None = None
            while True:
                page = await self.list(
                    user,
                    kind=kind,
                    state=state,
                    page_size=200,
                    page_token=token,
                    without_stopped=without_stopped,
                )
                tasks.extend(page)
                token = page.next_page_token
                if token is None or (limit is not None and len(tasks) >= limit):
                    return TaskPage(tasks[:limit])
        if not 1 <= page_size <= 1000:
            raise InvalidTaskError("page_size: between 1 and 1000")
        page = await self._page(user, kind, state, page_size, page_token, without_stopped)
        if not page and page_token is None:
            # Nothing at all: a name nobody registered (`task list` defaults to dev) is refused
            # as a create is, not answered "no tasks". Asked after Temporal, which may be down.
            await registered(self.db, user, InvalidTaskError)
        return page

    async def _page(
        self,
        user: str,
        kind: str | None,
        state: str | None,
        page_size: int,
        page_token: str | None,
        without_stopped: bool,
    ) -> TaskPage:
        phase, token_bytes = _parse_cursor(page_token) if page_token else ("watches", None)
        watch_kinds = tuple(k.value for k in WORKFLOW_TYPES)
        schedule_kinds = (TaskKind.SCHEDULE.value, TaskKind.NEWS_DIGEST.value)
        if phase == "watches" and kind not in (None, *watch_kinds):
            phase, token_bytes = "schedules", None
        watches: builtins.list[TaskSummary] = []
        if phase == "watches":
            watches, next_token = await self._list_watches(
                user, kind, state, page_size, token_bytes, without_stopped=without_stopped
            )
            if next_token is not None:
                return TaskPage(watches, _cursor("watches", next_token))
            if kind not in (None, *schedule_kinds):
                return TaskPage(watches)
            if len(watches) >= page_size:
                return TaskPage(watches, _cursor("schedules", None))
            # Watches are done: the schedules fill the rest of the page (a caller who stops at
            # a short or empty page has still seen the start of both).
            token_bytes = None
        schedules, next_token = await self._list_schedules(
            user, kind, state, page_size - len(watches), token_bytes
        )
        more = _cursor("schedules", next_token) if next_token else None
        return TaskPage([*watches, *schedules], more)

    async def named(self, user: str, names: Iterable[str]) -> builtins.list[TaskSummary]:
        """The caller's tasks of these exact names, each kind's (a voice call's name said as
        written): one visibility query each for watches and schedules, not every task."""
        names = set(names)
        ids = temporal.ids_query(f"{PREFIXES[k]}/{user}/{n}" for k in PREFIXES for n in names)
        watches, _ = await self._list_watches(user, None, None, 100, None, within=ids)
        schedules, _ = await self._list_schedules(user, None, None, 100, None, within=ids)
        return [*watches, *schedules]

    async def starting(self, user: str, starts: Iterable[str]) -> builtins.list[TaskSummary]:
        """The caller's tasks, each kind's, whose names start with one of ``starts`` (a voice
        call's few candidates): every page of one visibility query for watches and one for
        schedules on how their ids begin, not every task."""
        begins = {f"{PREFIXES[k]}/{user}/{s}" for k in PREFIXES for s in starts}
        within = temporal.starts_query(begins)
        tasks: builtins.list[TaskSummary] = []
        for read in (self._list_watches, self._list_schedules):
            token: bytes | None = None
            while True:
                page, token = await read(user, None, None, 1000, token, within=within)
                tasks.extend(page)
                if not token:
                    break
        return tasks

    async def _list_watches(
        self,
        user: str,
        kind: str | None,
        state: str | None,
        size: int,
        token: bytes | None,
        *,
        within: str = "",
        without_stopped: bool = False,
    ) -> tuple[builtins.list[TaskSummary], bytes | None]:
        """A page of the caller's watches (``within``: a clause on their ``WorkflowId``)."""
        clauses = [f"{temporal.USER.name} = {json.dumps(user)}"]
        if within:
            clauses.append(within)
        # Exact: each kind is its workflow type and its kind attribute.
        kinds = [
            f"({temporal.KIND.name} = {json.dumps(k.value)} "
            f"AND WorkflowType = {json.dumps(workflow_type.__name__)})"
            for k, workflow_type in WORKFLOW_TYPES.items()
            if kind in (None, k.value)
        ]
        clauses.append(f"({' OR '.join(kinds)})")
        # A continued-as-new run is history; its successor is the task.
        clauses.append('ExecutionStatus != "ContinuedAsNew"')
        # The state is filtered in the query, not after it: a page of 10,000 tasks filtered
        # afterwards would come back nearly empty, page after page.
        if state is not None:
            attribute = f"{temporal.STATE.name} = {json.dumps(state)}"
            if state == TaskState.ACTIVE.value:  # a run started before the attribute: active
                attribute = f"({attribute} OR {temporal.STATE.name} IS NULL)"
            if state == TaskState.STOPPED.value:  # ended, or deleted and still winding down
                clauses.append(f'(ExecutionStatus != "Running" OR {attribute})')
            else:
                clauses.append(f'ExecutionStatus = "Running" AND {attribute}')
        if without_stopped:
            # Not deleted or stopped by its owner (winding down, or ended so): one that ended
            # otherwise (failed, terminated in the Web UI) is still shown, stopped.
            name, stopped = temporal.STATE.name, json.dumps(TaskState.STOPPED.value)
            clauses.append(f"({name} != {stopped} OR {name} IS NULL)")
        executions = self.client.list_workflows(
            " AND ".join(clauses), page_size=size, next_page_token=token
        )
        await executions.fetch_next_page()
        page = executions.current_page or []
        latest = await self._latest_runs(
            [e.id for e in page if e.status is not WorkflowExecutionStatus.RUNNING]
        )
        tasks: list[TaskSummary] = []
        for execution in page:
            running = execution.status is WorkflowExecutionStatus.RUNNING
            if not running and latest.get(execution.id, execution.run_id) != execution.run_id:
                continue  # an earlier life of a task that was created again
            attrs = execution.typed_search_attributes
            current = attrs.get(temporal.STATE) or TaskState.ACTIVE.value
            if not running:
                current = TaskState.STOPPED.value
            memo = await execution.memo()
            tasks.append(
                TaskSummary(
                    task_id=execution.id,
                    kind=TaskKind(attrs.get(temporal.KIND) or TaskKind.WEB_MONITOR.value),
                    state=TaskState(current),
                    summary=memo.get("summary") if isinstance(memo.get("summary"), str) else None,
                    started_at=temporal.created_at(memo) or execution.start_time,
                )
            )
        return tasks, executions.next_page_token

    async def _latest_runs(self, workflow_ids: builtins.list[str]) -> dict[str, str]:
        """The newest run of each id: one visibility query for a page, not a describe each."""
        if not workflow_ids:
            return {}
        query = temporal.ids_query(workflow_ids)
        runs = [run async for run in self.client.list_workflows(query)]
        # Oldest first: each id's newest run is the one its key keeps.
        return {run.id: run.run_id for run in sorted(runs, key=lambda run: run.start_time)}

    async def _list_schedules(
        self,
        user: str,
        kind: str | None,
        state: str | None,
        size: int,
        token: bytes | None,
        *,
        within: str = "",
    ) -> tuple[builtins.list[TaskSummary], bytes | None]:
        """A page of the caller's schedules (``within``: a clause on ``WorkflowId``, asked of
        their ``ScheduleId``)."""
        if state == TaskState.STOPPED.value:  # a schedule is active or paused, never stopped
            return [], None
        # Filtered in the query, as watches are: filtered after each page, a page came back
        # short or empty with a cursor still on it.
        clauses = [
            f"{temporal.USER.name} = {json.dumps(user)}",
            f"ScheduleId STARTS_WITH {json.dumps(f'{PREFIXES[TaskKind.SCHEDULE]}/{user}/')}",
        ]
        # A digest is a schedule too: "schedule" lists both, "news_digest" digests only.
        if kind not in (None, TaskKind.SCHEDULE.value):
            clauses.append(f"{temporal.KIND.name} = {json.dumps(kind)}")
        if within:
            clauses.append(within.replace("WorkflowId", "ScheduleId"))
        if state is not None:  # the server's own flag: a pause by any door or an older release
            clauses.append(f"TemporalSchedulePaused = {json.dumps(state == TaskState.PAUSED)}")
        schedules = await self.client.list_schedules(
            " AND ".join(clauses), page_size=size, next_page_token=token
        )
        await schedules.fetch_next_page()
        tasks: list[TaskSummary] = []
        for entry in schedules.current_page or []:
            entry_kind = entry.typed_search_attributes.get(temporal.KIND) or "schedule"
            paused = entry.schedule.state.paused if entry.schedule else False
            tasks.append(
                TaskSummary(
                    task_id=entry.id,
                    kind=TaskKind(entry_kind),
                    state=TaskState.PAUSED if paused else TaskState.ACTIVE,
                    summary=(entry.schedule.state.note or None) if entry.schedule else None,
                    started_at=temporal.created_at(await entry.memo()),
                )
            )
        return tasks, schedules.next_page_token
