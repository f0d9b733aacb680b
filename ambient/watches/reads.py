"""Reading tasks: a user's tasks a page at a time (watches by a visibility query on our search
attributes, then schedules), and one task's status. ``TaskService`` adds the writes."""

from __future__ import annotations

import base64
import builtins
import json
from collections.abc import Awaitable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from pydantic import BaseModel
from temporalio.client import (
    Client,
    ScheduleActionStartWorkflow,
    ScheduleDescription,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
)

from ambient import no_answer, temporal
from ambient.briefing.errors import (
    BriefingError,
    BriefingNotFoundError,
    BriefingStartedError,
    BriefingUnanswered,
    BriefingUnavailableError,
    InvalidBriefingError,
)
from ambient.briefing.models import BriefingStatus
from ambient.briefing.service import BriefingService
from ambient.clients.web import FETCH_TIMEOUT
from ambient.request_deadline import bounded, left
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.users import registered
from ambient.watches.configs import PREFIXES, TaskKind, TaskState, task_kind
from ambient.watches.inputs import (
    InvalidTaskError,
    TaskError,
    TaskNotFoundError,
    TaskType,
    TaskUnavailableError,
    WorkerSilentError,
)
from ambient.watches.models import TaskStatus
from ambient.watches.polling import PollProgress
from ambient.watches.reminders import ReminderConfig, ReminderRun
from workflows.daily_briefing import DailyBriefingWorkflow
from workflows.threshold_watch import ThresholdWatchWorkflow
from workflows.web_monitor import WebMonitorWorkflow

T = TypeVar("T")

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


# How much longer than a fetch (web.FETCH_TIMEOUT) a create waits for its first check.
PAST_FETCH = 5.0
# Longer than any task's id (kind/user/name: at most 63 characters each part).
MAX_TASK_ID = 255


def schedule_kind(config: ReminderConfig) -> TaskKind:
    return TaskKind.NEWS_DIGEST if config.action == "news_digest" else TaskKind.SCHEDULE


@contextmanager
def found(task_id: str) -> Iterator[None]:
    """Temporal's refusal of a request for ``task_id`` as a task error."""
    try:
        yield
    except no_answer.QUERY_REFUSED as exc:
        if no_answer.not_found(exc):
            raise TaskNotFoundError(
                f"no task {task_id!r}; call list_tasks to see your task ids"
            ) from None
        refused = no_answer.refused_request(no_answer.refusal(exc), task_id)
        raise (WorkerSilentError if no_answer.unanswered(exc) else TaskError)(refused) from None


class TaskReads:
    """The read side of ``TaskService``: its clients, the task list and a task's status."""

    def __init__(
        self,
        client: Client,
        settings: Settings,
        db: Database,
        *,
        briefings: BriefingService,
        baseline_wait: float = FETCH_TIMEOUT + PAST_FETCH,
    ) -> None:
        self.client = client
        self.settings = settings
        self.db = db
        # The daily briefing is a task kind too: its create, update and delete go through it.
        self.briefings = briefings
        # How long create waits for the first check before answering without a baseline: past
        # the fetch's deadline (its own "timed out" is the answer), within the 30 s a
        # self-hosted xiaozhi-server waits for a tool call.
        self.baseline_wait = baseline_wait

    async def list(
        self,
        user: str,
        *,
        kind: str | None = None,
        state: str | None = None,
        limit: int | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> TaskPage:
        """The caller's tasks (a visibility query on our search attributes, then schedules),
        each once: with ``page_size`` a page and its token, without every task to ``limit``."""
        if page_size is None:
            tasks: list[TaskSummary] = []
            token: str | None = None
            while True:
                page = await self.list(
                    user, kind=kind, state=state, page_size=200, page_token=token
                )
                tasks.extend(page)
                token = page.next_page_token
                if token is None or (limit is not None and len(tasks) >= limit):
                    return TaskPage(tasks[:limit])
        if not 1 <= page_size <= 1000:
            raise InvalidTaskError("page_size: between 1 and 1000")
        page = await self._page(user, kind, state, page_size, page_token)
        if not page and page_token is None:
            # Nothing at all: a name nobody registered (`task list` defaults to dev) is refused
            # as a create is, not answered "no tasks". Asked after Temporal, which may be down.
            await registered(self.db, user, InvalidTaskError)
        return page

    async def _page(
        self, user: str, kind: str | None, state: str | None, page_size: int, page_token: str | None
    ) -> TaskPage:
        phase, token_bytes = _parse_cursor(page_token) if page_token else ("watches", None)
        watch_kinds = tuple(k.value for k in WORKFLOW_TYPES)
        schedule_kinds = (TaskKind.SCHEDULE.value, TaskKind.NEWS_DIGEST.value)
        if phase == "watches" and kind not in (None, *watch_kinds):
            phase, token_bytes = "schedules", None
        watches: builtins.list[TaskSummary] = []
        if phase == "watches":
            watches, next_token = await self._list_watches(
                user, kind, state, page_size, token_bytes
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

    async def get(self, user: str, task_id: str, *, operator: bool | None = None) -> TaskStatus:
        """The task's status, within QUERY_TIMEOUT and what is left of a request around it (the
        voice's: a silent worker said as such); ``operator``: a briefing's failures as an admin
        reads them (None: as ``user`` may)."""
        kind = self._owned(user, task_id)
        if kind is TaskKind.SCHEDULE:
            return await self._schedule_status(user, task_id)
        status = await self._workflow_status(user, kind, task_id, operator=operator)
        # Described after the query: a poll still pending then had not handed back when the
        # query answered, so its heartbeat is not in the recorded checks (described first, a
        # poll handing back in between was counted twice). Within what the query left.
        try:
            description = await self._describe(task_id)
        except no_answer.OutOfTime:  # its worker took the read's time: silent, as a read says
            raise WorkerSilentError(
                no_answer.refused_request(no_answer.silent_worker(), task_id)
            ) from None
        if description.status is not WorkflowExecutionStatus.RUNNING:
            # The same answer list_tasks gives: a task whose run has ended is stopped.
            status.state = TaskState.STOPPED
        else:
            await self._show_poll_progress(status, description)
        return status

    async def _show_poll_progress(
        self, status: TaskStatus, description: WorkflowExecutionDescription
    ) -> None:
        """Add what a running poll has heartbeated since it last handed back."""
        for pending in description.raw_description.pending_activities:
            if pending.activity_type.name != "poll_pages" or not pending.heartbeat_details.payloads:
                continue
            try:
                (progress,) = await self.client.data_converter.decode(
                    pending.heartbeat_details.payloads, [PollProgress]
                )
            except Exception:  # an older or foreign heartbeat: the recorded status stands
                return
            status.checks += progress.checks
            for field, more in (
                ("changes_total", progress.changes),
                ("hits_total", progress.hits),
            ):
                recorded: Any = status.detail.get(field) or 0
                status.detail[field] = int(recorded) + more
            # A poll that began before an update carries the pages it took out: not shown.
            watched = status.config.get("urls")
            status.detail["urls"] = {
                url: state.shown()
                for url, state in progress.urls.items()
                if not isinstance(watched, list) or url in watched
            }
            return

    async def _stored_run(self, description: ScheduleDescription) -> ReminderRun | None:
        """The reminder run a schedule starts, read as stored (None: no such action)."""
        action = description.schedule.action
        if not (isinstance(action, ScheduleActionStartWorkflow) and action.args):
            return None
        # A described schedule carries raw payloads: decoded with our converter.
        (run,) = await self.client.data_converter.decode(action.args[:1], [ReminderRun])
        return run

    async def _schedule_status(
        self, user: str, task_id: str, description: ScheduleDescription | None = None
    ) -> TaskStatus:
        if description is None:
            with found(task_id):
                description = await self.client.get_schedule_handle(task_id).describe()
        config: dict[str, Any] = {}
        kind = TaskKind.SCHEDULE
        if (run := await self._stored_run(description)) is not None:
            config = run.config.model_dump(mode="json")
            kind = schedule_kind(run.config)
        info = description.info
        return TaskStatus(
            task_id=task_id,
            kind=kind,
            user=user,
            state=TaskState.PAUSED if description.schedule.state.paused else TaskState.ACTIVE,
            checks=info.num_actions,
            config=config,
            detail={
                "next_runs": [t.isoformat() for t in info.next_action_times[:5]],
                "recent_runs": [a.scheduled_at.isoformat() for a in info.recent_actions[-5:]],
            },
        )

    async def _workflow_status(
        self, user: str, kind: TaskKind, task_id: str, *, operator: bool | None = True
    ) -> TaskStatus:
        """A watch's status query or the briefing's status read, as every task answers (a
        briefing's failures as ``BriefingService.told`` says them to ``operator``), within
        QUERY_TIMEOUT and what is left of the request."""
        if left() == 0:  # the request's time spent: not asked
            raise WorkerSilentError(no_answer.refused_request(no_answer.silent_worker(), task_id))
        timeout = timedelta(seconds=bounded(no_answer.QUERY_TIMEOUT.total_seconds()))
        briefing = kind is TaskKind.DAILY_BRIEFING
        try:
            if not briefing:
                # `queried` keeps the budget by its own timer (a loaded machine's RPC deadline
                # came back late, after a voice call's budget) and hears a busy worker's refusal
                # through it: another timer here would race it at the same instant.
                handle = self.client.get_workflow_handle(task_id)
                with found(task_id):
                    return await no_answer.queried(
                        lambda left: handle.query(
                            "status", result_type=TaskStatus, rpc_timeout=left
                        ),
                        timeout,
                    )
            # The one read every door makes; an ended run's as it ended (get: STOPPED).
            status = await self._briefing(self.briefings.read_status(user, ended=True))
        except TimeoutError:
            # A silent worker, one that keeps failing the run, or Temporal.
            why, down = await no_answer.out_of_time(self.client, task_id)
            error = TaskError if down else WorkerSilentError
            raise error(no_answer.refused_request(why, task_id)) from down
        if status is None:
            raise TaskNotFoundError(f"no task {task_id!r}; call list_tasks to see your task ids")
        return briefing_task_status(await self.briefings.told(user, status, operator=operator))

    async def _describe(self, task_id: str) -> WorkflowExecutionDescription:
        """The run's description, within what is left of the request."""
        handle = self.client.get_workflow_handle(task_id)
        with found(task_id), no_answer.by():
            return await handle.describe(rpc_timeout=no_answer.time_left())

    @staticmethod
    async def _briefing(work: Awaitable[T]) -> T:
        """A briefing operation, its errors as task errors (the field named, nothing changed)."""
        try:
            return await work
        except BriefingUnanswered:  # what it did is the caller's to say (a check now's words)
            raise
        except InvalidBriefingError as exc:
            raise InvalidTaskError(str(exc)) from None
        except BriefingNotFoundError as exc:
            raise TaskNotFoundError(str(exc)) from None
        except BriefingUnavailableError as exc:
            raise TaskUnavailableError(str(exc)) from None
        except BriefingError as exc:
            if no_answer.SILENT_WORKER not in str(exc):
                raise TaskError(str(exc)) from None
            # A new config running is applied (a read's, else: a control sent is delivered).
            sent = True if isinstance(exc, BriefingStartedError) else None
            raise WorkerSilentError(str(exc), sent=sent) from None

    def _owned(self, user: str, task_id: str) -> TaskKind:
        if len(task_id) > MAX_TASK_ID:  # no task's id is as long: refused, not looked up or quoted
            raise InvalidTaskError(f"task_id: at most {MAX_TASK_ID} characters")
        if (kind := task_kind(user, task_id)) is None:
            raise TaskNotFoundError(
                f"no task {task_id!r} for user {user!r}; call list_tasks to see your task ids"
            )
        return kind


def briefing_task_status(briefing: BriefingStatus) -> TaskStatus:
    """A briefing's status in the shape every task answers with (the day's facts in detail)."""
    day = briefing.day
    detail: dict[str, object] = {"phase": briefing.phase, "date": day.date if day else None}
    facts = (
        *("prepared_at", "preparation_error", "given_at", "given_via", "pushed_at"),
        *("push_error", "record_error", "last_date"),
    )
    for name in facts:  # times in ISO 8601
        value = getattr(briefing, name)
        detail[name] = value.isoformat() if isinstance(value, datetime) else value
    return TaskStatus(
        task_id=briefing.task_id,
        kind=TaskKind.DAILY_BRIEFING,
        user=briefing.user,
        # Deleted, its run ends once its step under way (a preparation, a push) has: stopped.
        state=(
            TaskState.STOPPED
            if briefing.stopping
            else TaskState.PAUSED
            if briefing.paused
            else TaskState.ACTIVE
        ),
        checks=briefing.days_completed,
        config=briefing.config.model_dump(mode="json"),
        detail=detail,
    )
