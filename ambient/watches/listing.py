"""Listing tasks: a user's tasks a page at a time (watches by visibility queries on our search
attributes, then schedules), each once as of the first page's moment, and those of given names
or name starts (a voice call's). ``TaskReads`` adds a task's status."""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel
from temporalio.api.workflowservice.v1 import ListSchedulesRequest, ListWorkflowExecutionsRequest
from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from ambient import temporal
from ambient.storage import Database
from ambient.storage.users import registered
from ambient.watches.configs import PREFIXES, TaskKind, TaskState
from ambient.watches.inputs import InvalidTaskError, TaskType
from ambient.watches.list_cursor import (
    OTHER_LIST,
    STALE,
    Cursor,
    query_moment,
    run_place,
    to_micros,
)
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


# How a server answers a page token it cannot read.
_UNREADABLE = (RPCStatusCode.UNKNOWN, RPCStatusCode.INTERNAL, RPCStatusCode.INVALID_ARGUMENT)


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
        asked = json.dumps([kind, state, without_stopped])
        cursor = Cursor.parse(page_token) if page_token else Cursor(to_micros(_now()), asked=asked)
        if cursor.asked != asked:
            raise InvalidTaskError(OTHER_LIST)
        watch_kinds = tuple(k.value for k in WORKFLOW_TYPES)
        schedule_kinds = (TaskKind.SCHEDULE.value, TaskKind.NEWS_DIGEST.value)
        if cursor.phase != "schedules" and kind not in (None, *watch_kinds):
            cursor = cursor.to("schedules")
        watches: builtins.list[TaskSummary] = []
        filters = _Filters(user, kind, state, without_stopped)
        if cursor.phase == "running":
            watches, cursor = await self._running_at_t0(filters, page_size, cursor)
        if cursor.phase == "ended" and len(watches) < page_size:
            ended, cursor = await self._ended_before_t0(filters, page_size - len(watches), cursor)
            watches += ended
        if cursor.phase != "schedules":
            return TaskPage(watches, cursor.text())
        if kind not in (None, *schedule_kinds):
            return TaskPage(watches)
        if len(watches) >= page_size:
            return TaskPage(watches, cursor.text())
        # Watches are done: the schedules fill the rest of the page (a caller who stops at
        # a short or empty page has still seen the start of both).
        schedules, next_token = await self._list_schedules(
            user, kind, state, page_size - len(watches), cursor.token, caller=True
        )
        more = cursor.to("schedules", next_token).text() if next_token else None
        return TaskPage([*watches, *schedules], more)

    async def _running_at_t0(
        self, filters: _Filters, size: int, cursor: Cursor
    ) -> tuple[builtins.list[TaskSummary], Cursor]:
        """The next runs that were running at T0, by start: those still running (one query,
        visibility's own order, which their start fixes) and, at their place, those that ended
        since (deleted, or continued as new), shown as their task is now."""
        t0 = query_moment(cursor.t0)
        place = [f"StartTime < {t0}"]
        if cursor.start is not None:
            at = query_moment(cursor.start)
            place.append(f'(StartTime < {at} OR (StartTime = {at} AND RunId > "{cursor.run}"))')
        running_now = [*self._watch_clauses(filters), *place, 'ExecutionStatus = "Running"']
        if filters.without_stopped:
            running_now.append(_NOT_STOPPED)
        running, _ = await self._run_page(running_now, size)
        # Of every state: a task created again is shown as its new life, left out only if that
        # is not what is asked; one continued as new since T0 was active or paused at T0 (its
        # next run started after T0, so only its ended run finds it).
        anyhow = _Filters(filters.user, filters.kind, None, filters.without_stopped)
        ended_since = [*self._watch_clauses(anyhow), *place, f"CloseTime >= {t0}"]
        if len(running) == size:  # the rest of the range is the next page's
            last = running[-1]
            at = query_moment(to_micros(last.start_time))
            ended_since.append(
                f'(StartTime > {at} OR (StartTime = {at} AND RunId <= "{last.run_id}"))'
            )
        ended = [run async for run in self.client.list_workflows(" AND ".join(ended_since))]
        # A run that ended between the two queries is in both: it is listed once, ended.
        runs = sorted({r.run_id: r for r in [*running, *ended]}.values(), key=run_place)
        tasks = await self._shown(runs[:size], filters, cursor.t0)
        if len(running) < size and len(runs) <= size:
            return tasks, cursor.to("ended")
        last = runs[:size][-1]
        start = to_micros(last.start_time)
        return tasks, Cursor(cursor.t0, "running", start, last.run_id, asked=cursor.asked)

    async def _ended_before_t0(
        self, filters: _Filters, size: int, cursor: Cursor
    ) -> tuple[builtins.list[TaskSummary], Cursor]:
        """The next runs that had ended before T0, by their end (a set and an order nothing
        later changes): each the last life its task had begun by T0, shown as it is now."""
        if filters.state in (TaskState.ACTIVE.value, TaskState.PAUSED.value):
            return [], cursor.to("schedules")  # only running runs are asked for
        clauses = [
            *self._watch_clauses(filters),
            'ExecutionStatus != "ContinuedAsNew"',
            f"CloseTime < {query_moment(cursor.t0)}",
        ]
        if filters.without_stopped:
            clauses.append(_NOT_STOPPED)
        await self._readable(" AND ".join(clauses), cursor.token)
        runs, token = await self._run_page(clauses, size, cursor.token)
        tasks = await self._shown(runs, filters, cursor.t0)
        if token:
            return tasks, cursor.to("ended", token)
        return tasks, cursor.to("schedules")

    async def _readable(self, query: str, token: bytes | None, *, schedules: bool = False) -> None:
        """A Temporal token from the caller's page token, asked of the server once without
        the client's retries: one it cannot read (changed on the way, or another deployment's)
        is the stale token's refusal at once, not a failure after some 10 s of retries of the
        server's answer (UNKNOWN "something went wrong", INTERNAL or INVALID_ARGUMENT).
        Another failure (Temporal down) is the list's own to meet as it does."""
        if token is None:
            return
        service, namespace = self.client.workflow_service, self.client.namespace
        try:
            if schedules:
                await service.list_schedules(
                    ListSchedulesRequest(
                        namespace=namespace, maximum_page_size=1, next_page_token=token, query=query
                    ),
                    retry=False,
                )
            else:
                await service.list_workflow_executions(
                    ListWorkflowExecutionsRequest(
                        namespace=namespace, page_size=1, next_page_token=token, query=query
                    ),
                    retry=False,
                )
        except RPCError as exc:
            if exc.status in _UNREADABLE:
                raise InvalidTaskError(STALE) from None

    async def _run_page(
        self, clauses: builtins.list[str], size: int, token: bytes | None = None
    ) -> tuple[builtins.list[WorkflowExecution], bytes | None]:
        """A page of the runs a visibility query finds, and the next page's token."""
        executions = self.client.list_workflows(
            " AND ".join(clauses), page_size=size, next_page_token=token
        )
        await executions.fetch_next_page()
        return builtins.list(executions.current_page or []), executions.next_page_token

    async def _shown(
        self, runs: builtins.list[WorkflowExecution], filters: _Filters, t0: int
    ) -> builtins.list[TaskSummary]:
        """``runs`` as their tasks are now: a running one as it is; an ended one as its task's
        newest life, and not at all if its task began a later life before T0 (listed there)."""
        lives = await self._lives(
            [r.id for r in runs if r.status is not WorkflowExecutionStatus.RUNNING]
        )
        tasks: builtins.list[TaskSummary] = []
        for run in runs:
            if run.status is not WorkflowExecutionStatus.RUNNING:
                others = lives.get(run.id, [])
                by_t0 = [run, *(life for life in others if to_micros(life.start_time) < t0)]
                if max(by_t0, key=_started).run_id != run.run_id:
                    continue  # an earlier life: the task is listed at its later one
                run = max([run, *others], key=_started)
            task = await _summary(run)
            stopped_by_owner = run.typed_search_attributes.get(temporal.STATE) == "stopped"
            if filters.state not in (None, task.state) or (
                filters.without_stopped and stopped_by_owner
            ):
                continue  # its newest life is not what the list asks for
            tasks.append(task)
        return tasks

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

    def _watch_clauses(self, filters: _Filters, within: str = "") -> builtins.list[str]:
        """The visibility clauses of the caller's watches, of every status (``within``: a
        clause on their ``WorkflowId``)."""
        clauses = [f"{temporal.USER.name} = {json.dumps(filters.user)}"]
        if within:
            clauses.append(within)
        # Exact: each kind is its workflow type and its kind attribute.
        kinds = [
            f"({temporal.KIND.name} = {json.dumps(k.value)} "
            f"AND WorkflowType = {json.dumps(workflow_type.__name__)})"
            for k, workflow_type in WORKFLOW_TYPES.items()
            if filters.kind in (None, k.value)
        ]
        clauses.append(f"({' OR '.join(kinds)})")
        # The state is filtered in the query, not after it: a page of 10,000 tasks filtered
        # afterwards would come back nearly empty, page after page.
        state = filters.state
        if state is not None:
            attribute = f"{temporal.STATE.name} = {json.dumps(state)}"
            if state == TaskState.ACTIVE.value:  # a run started before the attribute: active
                attribute = f"({attribute} OR {temporal.STATE.name} IS NULL)"
            if state == TaskState.STOPPED.value:  # ended, or deleted and still winding down
                clauses.append(f'(ExecutionStatus != "Running" OR {attribute})')
            else:
                clauses.append(f'ExecutionStatus = "Running" AND {attribute}')
        return clauses

    async def _list_watches(
        self,
        user: str,
        kind: str | None,
        state: str | None,
        size: int,
        token: bytes | None,
        *,
        within: str = "",
    ) -> tuple[builtins.list[TaskSummary], bytes | None]:
        """A page of the caller's watches (``within``: a clause on their ``WorkflowId``)."""
        clauses = self._watch_clauses(_Filters(user, kind, state), within)
        # A continued-as-new run is history; its successor is the task.
        clauses.append('ExecutionStatus != "ContinuedAsNew"')
        page, token = await self._run_page(clauses, size, token)
        lives = await self._lives(
            [e.id for e in page if e.status is not WorkflowExecutionStatus.RUNNING]
        )
        latest = {task: max(runs, key=_started).run_id for task, runs in lives.items()}
        tasks: list[TaskSummary] = []
        for execution in page:
            running = execution.status is WorkflowExecutionStatus.RUNNING
            if not running and latest.get(execution.id, execution.run_id) != execution.run_id:
                continue  # an earlier life of a task that was created again
            tasks.append(await _summary(execution))
        return tasks, token

    async def _lives(
        self, workflow_ids: builtins.list[str]
    ) -> dict[str, builtins.list[WorkflowExecution]]:
        """Every run of each id: one visibility query for a page, not a describe each."""
        lives: dict[str, builtins.list[WorkflowExecution]] = {}
        if workflow_ids:
            async for life in self.client.list_workflows(temporal.ids_query(workflow_ids)):
                lives.setdefault(life.id, []).append(life)
        return lives

    async def _list_schedules(
        self,
        user: str,
        kind: str | None,
        state: str | None,
        size: int,
        token: bytes | None,
        *,
        within: str = "",
        caller: bool = False,
    ) -> tuple[builtins.list[TaskSummary], bytes | None]:
        """A page of the caller's schedules (``within``: a clause on ``WorkflowId``, asked of
        their ``ScheduleId``; ``caller``: ``token`` came in the caller's page token)."""
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
        if caller:
            await self._readable(" AND ".join(clauses), token, schedules=True)
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


@dataclass(frozen=True)
class _Filters:
    """What a list asks for: whose tasks, of which kind and state, and whether those their
    owner stopped are left out."""

    user: str
    kind: str | None = None
    state: str | None = None
    without_stopped: bool = False


# Not deleted or stopped by its owner (winding down, or ended so): one that ended otherwise
# (failed, terminated in the Web UI) is still shown, stopped.
_NOT_STOPPED = temporal.NOT_STOPPED


def _now() -> datetime:
    return datetime.now(UTC)


def _started(execution: WorkflowExecution) -> tuple[datetime, str]:
    return execution.start_time, execution.run_id


async def _summary(execution: WorkflowExecution) -> TaskSummary:
    """A watch's run as the list shows it: an ended run (continued as new aside) is stopped."""
    attrs = execution.typed_search_attributes
    current = attrs.get(temporal.STATE) or TaskState.ACTIVE.value
    if execution.status not in (
        WorkflowExecutionStatus.RUNNING,
        WorkflowExecutionStatus.CONTINUED_AS_NEW,
    ):
        current = TaskState.STOPPED.value
    memo = await execution.memo()
    return TaskSummary(
        task_id=execution.id,
        kind=TaskKind(attrs.get(temporal.KIND) or TaskKind.WEB_MONITOR.value),
        state=TaskState(current),
        summary=memo.get("summary") if isinstance(memo.get("summary"), str) else None,
        started_at=temporal.created_at(memo) or execution.start_time,
    )
