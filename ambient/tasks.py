"""The task control plane: create, list, inspect and steer watches and schedules.

MCP tools, the API and the CLI are thin adapters over ``TaskService``. Task ids are the
workflow (or schedule) ids — `web-monitor/{user}/{task}`, `threshold-watch/{user}/{task}`,
`reminder/{user}/{task}`, and the user's one `daily-briefing/{user}` — so a start is
idempotent and an operator finds them in the Web UI. Every long-running workflow a user owns
is reachable here by the id its create call returned (the briefing's own service,
``BriefingService``, does the briefing-specific work: greet, read, send).

TaskError
 ├── InvalidTaskError    bad config or arguments: nothing was changed
 └── TaskNotFoundError   no such task for this user
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import hashlib
import json
import re
import uuid
from collections.abc import Awaitable
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from ambient import temporal
from ambient.briefing import (
    BriefingError,
    BriefingNotFoundError,
    BriefingService,
    InvalidBriefingError,
)
from ambient.clients.guard import DestinationGuard, RefusedDestinationError
from ambient.domain.briefing import BriefingStatus
from ambient.domain.polling import PollProgress
from ambient.domain.reminders import DAYS, NewsDigestConfig, ReminderConfig, ReminderRun
from ambient.domain.tasks import TaskStatus, ThresholdWatchInput, WebMonitorInput
from ambient.domain.watches import (
    DEFAULT_CATALOGUE,
    HttpJsonSource,
    PrometheusSource,
    TaskKind,
    TaskState,
    ThresholdWatchConfig,
    UnknownMetricError,
    WebMonitorConfig,
    resolve_metric,
)
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.repositories import SnapshotRepository
from workflows.daily_briefing import DailyBriefingWorkflow
from workflows.reminder import ReminderWorkflow
from workflows.threshold_watch import ThresholdWatchWorkflow
from workflows.web_monitor import WebMonitorWorkflow

T = TypeVar("T")

PREFIXES = {
    TaskKind.WEB_MONITOR: "web-monitor",
    TaskKind.THRESHOLD_WATCH: "threshold-watch",
    TaskKind.SCHEDULE: "reminder",
}
# Tasks that are workflows (listed by a visibility query; the rest are schedules), each with
# its workflow type: a run of another type that carries the same attributes is not the task.
WORKFLOW_TYPES: dict[TaskKind, type] = {
    TaskKind.WEB_MONITOR: WebMonitorWorkflow,
    TaskKind.THRESHOLD_WATCH: ThresholdWatchWorkflow,
    TaskKind.DAILY_BRIEFING: DailyBriefingWorkflow,
}
WORKFLOW_KINDS = tuple(WORKFLOW_TYPES)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


class TaskError(Exception):
    """A task operation failed; the message says what to do."""


class InvalidTaskError(TaskError):
    """The request was invalid; nothing changed."""


class TaskNotFoundError(TaskError):
    """No task with that id belongs to the caller."""


class TaskRef(BaseModel):
    task_id: str
    kind: TaskKind
    state: TaskState
    created: bool = True
    # What the first check found (per URL outcome and error, or the first value), so a
    # wrong URL is reported at creation; None when it did not finish in time.
    baseline: dict[str, Any] | None = None


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


def _attrs(kind: str, user: str, state: TaskState | None = None) -> TypedSearchAttributes:
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(temporal.KIND, kind),
        SearchAttributePair(temporal.USER, user),
    ]
    if state is not None:
        pairs.append(SearchAttributePair(temporal.STATE, state.value))
    return TypedSearchAttributes(pairs)


Location = tuple[str | int, ...]


class ConfigError(InvalidTaskError):
    """A config was refused; ``errors`` holds (location inside the config, message) pairs."""

    def __init__(self, errors: list[tuple[Location, str]], prefix: Location = ("config",)) -> None:
        self.errors = [(prefix + loc, message) for loc, message in errors]
        parts = [f"{'.'.join(str(p) for p in loc)}: {message}" for loc, message in self.errors]
        super().__init__("invalid config — " + "; ".join(parts))


def aimed_urls(config: BaseModel) -> list[tuple[Location, str]]:
    """Every URL of a config that the worker will call, with where it sits in the config."""
    urls: list[tuple[Location, str]] = []
    if isinstance(config, WebMonitorConfig):
        urls += [(("urls", i), str(url)) for i, url in enumerate(config.urls)]
    if isinstance(config, ReminderConfig | NewsDigestConfig):
        urls += [(("news_urls", i), str(url)) for i, url in enumerate(config.news_urls)]
    if isinstance(config, ThresholdWatchConfig) and isinstance(
        config.source, HttpJsonSource | PrometheusSource
    ):
        urls.append((("source", "url"), str(config.source.url)))
    return urls


def check_destinations(config: BaseModel, settings: Settings) -> None:
    """The guard's static check (no DNS) on every aimed URL; ConfigError naming the field."""
    guard = DestinationGuard(settings.fetch_allow_cidrs)
    refused: list[tuple[Location, str]] = []
    for location, url in aimed_urls(config):
        try:
            guard.check_url_static(url)
        except RefusedDestinationError as exc:
            refused.append((location, str(exc)))
    if refused:
        raise ConfigError(refused)


def invalid(error: ValidationError | ValueError) -> InvalidTaskError:
    if isinstance(error, ValidationError):
        parts = [
            f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in error.errors()
        ]
        return InvalidTaskError("invalid config — " + "; ".join(parts))
    return InvalidTaskError(str(error))


def _task_name(name: str | None, config: BaseModel) -> str:
    if name is None:
        # Derived from the config: creating the same task twice finds the first one.
        digest = hashlib.sha256(config.model_dump_json().encode()).hexdigest()
        return digest[:12]
    if not _NAME.match(name):
        raise InvalidTaskError("name: 1-63 characters of lowercase letters, digits, '_', '.', '-'")
    return name


class TaskService:
    def __init__(
        self, client: Client, settings: Settings, db: Database, *, baseline_wait: float = 20.0
    ) -> None:
        self.client = client
        self.settings = settings
        self.db = db
        # How long create waits for the first check before answering without a baseline.
        self.baseline_wait = baseline_wait

    # --- create ---------------------------------------------------------------------

    async def create(
        self, user: str, kind: str, config: dict[str, Any], name: str | None = None
    ) -> TaskRef:
        """The generic form: {type: web_monitor|threshold_watch|schedule|news_digest, config}."""
        try:
            parsed_kind = TaskKind(kind)
        except ValueError:
            known = ", ".join(k.value for k in TaskKind)
            raise InvalidTaskError(
                f"type: unknown task type {kind!r}; use one of {known}"
            ) from None
        if parsed_kind is TaskKind.WEB_MONITOR:
            return await self.create_web_monitor(user, config, name)
        if parsed_kind is TaskKind.THRESHOLD_WATCH:
            return await self.create_threshold_watch(user, config, name)
        if parsed_kind is TaskKind.DAILY_BRIEFING:
            return await self.create_daily_briefing(user, config)
        if parsed_kind is TaskKind.NEWS_DIGEST:
            try:
                reminder = NewsDigestConfig.model_validate(config).as_reminder()
            except ValidationError as exc:
                raise invalid(exc) from None
            return await self.create_reminder(user, reminder.model_dump(mode="json"), name)
        return await self.create_reminder(user, config, name)

    async def create_daily_briefing(self, user: str, config: dict[str, Any]) -> TaskRef:
        """The user's daily briefing (one per user); the same id the briefing tools use."""
        ref = await self._briefing(self._briefings().create(user, config))
        return TaskRef(
            task_id=ref.task_id,
            kind=TaskKind.DAILY_BRIEFING,
            state=TaskState(ref.state),
            created=ref.created,
        )

    def _briefings(self) -> BriefingService:
        return BriefingService(self.client, self.settings, self.db)

    @staticmethod
    async def _briefing(work: Awaitable[T]) -> T:
        """A briefing operation, its errors as task errors (the field named, nothing changed)."""
        try:
            return await work
        except InvalidBriefingError as exc:
            raise InvalidTaskError(str(exc)) from None
        except BriefingNotFoundError as exc:
            raise TaskNotFoundError(str(exc)) from None
        except BriefingError as exc:
            raise TaskError(str(exc)) from None

    async def create_web_monitor(
        self, user: str, config: dict[str, Any], name: str | None = None
    ) -> TaskRef:
        try:
            parsed = WebMonitorConfig.model_validate(config)
        except ValidationError as exc:
            raise invalid(exc) from None
        check_destinations(parsed, self.settings)
        task_id = f"web-monitor/{user}/{_task_name(name, parsed)}"
        summary = (
            f"Web monitor of {len(parsed.urls)} URL(s) every "
            f"{parsed.check_interval_minutes:g} min for {user}"
        )
        return await self._start(
            WebMonitorWorkflow.run,
            WebMonitorInput(user=user, task=task_id, config=parsed),
            task_id,
            TaskKind.WEB_MONITOR,
            user,
            summary,
        )

    async def create_threshold_watch(
        self, user: str, config: dict[str, Any], name: str | None = None
    ) -> TaskRef:
        parsed = self._threshold_config(config)
        task_id = f"threshold-watch/{user}/{_task_name(name, parsed)}"
        rules = f" {parsed.combine} ".join(f"{c.op} {c.value:g}" for c in parsed.conditions)
        summary = f"Threshold watch {parsed.metric or parsed.source.type}: {rules}"  # type: ignore[union-attr]
        return await self._start(
            ThresholdWatchWorkflow.run,
            ThresholdWatchInput(user=user, task=task_id, config=parsed),
            task_id,
            TaskKind.THRESHOLD_WATCH,
            user,
            summary,
        )

    def _threshold_config(self, config: dict[str, Any]) -> ThresholdWatchConfig:
        try:
            parsed = ThresholdWatchConfig.model_validate(config)
            catalogue = DEFAULT_CATALOGUE | self.settings.metric_catalogue
            if parsed.source is None and parsed.metric is not None:
                source = resolve_metric(parsed.metric, catalogue)
                parsed = ThresholdWatchConfig.model_validate(
                    parsed.model_dump(mode="json") | {"source": source}
                )
            elif parsed.source is not None and parsed.metric in catalogue:
                # A named metric beside a source that is not its own: the name was ignored
                # (the source was watched, under the name). The pair read back is the same.
                named = ThresholdWatchConfig.model_validate(
                    parsed.model_dump(mode="json") | {"source": catalogue[parsed.metric]}
                )
                if named.source != parsed.source:
                    raise InvalidTaskError(
                        f"metric: {parsed.metric!r} is a named metric with its own source, "
                        "but a different source was given too; give metric or source, not both"
                    )
        except UnknownMetricError as exc:
            raise InvalidTaskError(f"metric: {exc}") from None
        except ValidationError as exc:
            raise invalid(exc) from None
        check_destinations(parsed, self.settings)
        return parsed

    async def _start(
        self,
        workflow: Any,
        arg: Any,
        task_id: str,
        kind: TaskKind,
        user: str,
        summary: str,
        *,
        retried: bool = False,
    ) -> TaskRef:
        """Start a new life of the task, or find the running one with the same config."""
        try:
            handle = await self.client.start_workflow(
                workflow,
                arg,
                id=task_id,
                task_queue=self.settings.temporal_task_queue,
                # A stopped task's id may start again: a new life with its own keys.
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                search_attributes=_attrs(kind.value, user, TaskState.ACTIVE),
                static_summary=summary,
                memo={"summary": summary},
            )
        except WorkflowAlreadyStartedError:
            running = await self._query_status(task_id)
            if running.state is TaskState.STOPPED and not retried:
                # Deleted a moment ago and still winding down: let it end, then start anew.
                try:
                    await asyncio.wait_for(
                        self.client.get_workflow_handle(task_id).result(),
                        timeout=self.baseline_wait,
                    )
                except Exception:  # however the old life ended (or not yet), start the new one
                    pass
                return await self._start(workflow, arg, task_id, kind, user, summary, retried=True)
            if running.config != arg.config.model_dump(mode="json"):
                raise InvalidTaskError(
                    f"name: task {task_id!r} already runs with another config; "
                    "call update_task to change it, or delete_task first to start it anew"
                ) from None
            return TaskRef(
                task_id=task_id,
                kind=kind,
                state=running.state,
                created=False,
                baseline=_baseline(running),
            )
        baseline = None
        try:
            first = await asyncio.wait_for(
                handle.execute_update("baseline", result_type=TaskStatus),
                timeout=self.baseline_wait,
            )
            baseline = _baseline(first)
        except (
            TimeoutError,
            WorkflowUpdateFailedError,
            WorkflowUpdateRPCTimeoutOrCancelledError,
            RPCError,
        ):
            # The task runs (no worker may be polling yet): its baseline shows in get_task
            # once the first check ends.
            pass
        return TaskRef(task_id=task_id, kind=kind, state=TaskState.ACTIVE, baseline=baseline)

    async def _query_status(self, task_id: str) -> TaskStatus:
        try:
            status: TaskStatus = await self.client.get_workflow_handle(task_id).query(
                "status", result_type=TaskStatus
            )
        except RPCError as exc:
            raise self._missing(task_id, exc) from None
        return status

    async def create_reminder(
        self, user: str, config: dict[str, Any], name: str | None = None
    ) -> TaskRef:
        parsed = self._reminder_config(config)
        task_id = f"reminder/{user}/{_task_name(name, parsed)}"
        kind = _schedule_kind(parsed)
        try:
            await self.client.create_schedule(
                task_id,
                self._schedule(user, task_id, parsed),
                search_attributes=_attrs(kind.value, user, TaskState.ACTIVE),
            )
        except ScheduleAlreadyRunningError:
            current = await self._schedule_status(user, task_id)
            if current.config != parsed.model_dump(mode="json"):
                raise InvalidTaskError(
                    f"name: schedule {task_id!r} already exists with another config; "
                    "call update_task to change it, or delete_task first"
                ) from None
            return TaskRef(task_id=task_id, kind=kind, state=current.state, created=False)
        return TaskRef(task_id=task_id, kind=kind, state=TaskState.ACTIVE)

    def _reminder_config(self, config: dict[str, Any]) -> ReminderConfig:
        try:
            parsed = ReminderConfig.model_validate(config)
        except ValidationError as exc:
            raise invalid(exc) from None
        check_destinations(parsed, self.settings)
        return parsed

    def _schedule(self, user: str, task_id: str, parsed: ReminderConfig) -> Schedule:
        return Schedule(
            action=ScheduleActionStartWorkflow(
                ReminderWorkflow.run,
                ReminderRun(user=user, task=task_id, config=parsed),
                id=f"{task_id}/run",
                task_queue=self.settings.temporal_task_queue,
                typed_search_attributes=_attrs("reminder_run", user),
            ),
            spec=_spec(parsed),
            # The note is the summary list_tasks shows; an update rewrites it.
            state=ScheduleState(note=_schedule_summary(parsed, user)),
        )

    # --- read -----------------------------------------------------------------------

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
        """The caller's tasks: a visibility query on our search attributes, plus schedules.

        With ``page_size`` one page and ``next_page_token`` (None at the end); without, every
        task (up to ``limit``). Each task appears once: its current run.
        """
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
                    return TaskPage(tasks[:limit] if limit is not None else tasks)
        if not 1 <= page_size <= 1000:
            raise InvalidTaskError("page_size: between 1 and 1000")
        phase, token_bytes = _parse_cursor(page_token) if page_token else ("watches", None)
        watch_kinds = tuple(k.value for k in WORKFLOW_KINDS)
        schedule_kinds = (TaskKind.SCHEDULE.value, TaskKind.NEWS_DIGEST.value)
        if phase == "watches" and kind not in (None, *watch_kinds):
            phase, token_bytes = "schedules", None
        if phase == "watches":
            watches, next_token = await self._list_watches(
                user, kind, state, page_size, token_bytes
            )
            if next_token is not None:
                return TaskPage(watches, _cursor("watches", next_token))
            if kind not in (None, *schedule_kinds):
                return TaskPage(watches)
            # Watches are done; the next page starts the schedules.
            return TaskPage(watches, _cursor("schedules", None))
        schedules, next_token = await self._list_schedules(
            user, kind, state, page_size, token_bytes
        )
        return TaskPage(schedules, _cursor("schedules", next_token) if next_token else None)

    async def _list_watches(
        self, user: str, kind: str | None, state: str | None, size: int, token: bytes | None
    ) -> tuple[builtins.list[TaskSummary], bytes | None]:
        clauses = [f"{temporal.USER.name} = {json.dumps(user)}"]
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
        executions = self.client.list_workflows(
            " AND ".join(clauses), page_size=size, next_page_token=token
        )
        await executions.fetch_next_page()
        tasks: list[TaskSummary] = []
        for execution in executions.current_page or []:
            running = execution.status is WorkflowExecutionStatus.RUNNING
            if not running and not await self._is_current_run(execution):
                continue  # an earlier life of a task that was created again
            attrs = execution.typed_search_attributes
            current = attrs.get(temporal.STATE) or TaskState.ACTIVE.value
            if not running:
                current = TaskState.STOPPED.value
            if state is not None and current != state:
                continue
            memo = await execution.memo()
            tasks.append(
                TaskSummary(
                    task_id=execution.id,
                    kind=TaskKind(attrs.get(temporal.KIND) or TaskKind.WEB_MONITOR.value),
                    state=TaskState(current),
                    summary=memo.get("summary") if isinstance(memo.get("summary"), str) else None,
                    started_at=execution.start_time,
                )
            )
        return tasks, executions.next_page_token

    async def _is_current_run(self, execution: WorkflowExecution) -> bool:
        try:
            latest = await self.client.get_workflow_handle(execution.id).describe()
        except RPCError:
            return True
        return latest.run_id == execution.run_id

    async def _list_schedules(
        self, user: str, kind: str | None, state: str | None, size: int, token: bytes | None
    ) -> tuple[builtins.list[TaskSummary], bytes | None]:
        schedules = await self.client.list_schedules(
            f"{temporal.USER.name} = {json.dumps(user)}", page_size=size, next_page_token=token
        )
        await schedules.fetch_next_page()
        prefix = f"reminder/{user}/"
        tasks: list[TaskSummary] = []
        for entry in schedules.current_page or []:
            if not entry.id.startswith(prefix):
                continue
            entry_kind = entry.typed_search_attributes.get(temporal.KIND) or "schedule"
            # A digest is a schedule too: "schedule" lists both, "news_digest" digests only.
            if kind not in (None, TaskKind.SCHEDULE.value) and entry_kind != kind:
                continue
            paused = entry.schedule.state.paused if entry.schedule else False
            current = TaskState.PAUSED if paused else TaskState.ACTIVE
            if state is not None and current.value != state:
                continue
            tasks.append(
                TaskSummary(
                    task_id=entry.id,
                    kind=TaskKind(entry_kind),
                    state=current,
                    summary=(entry.schedule.state.note or None) if entry.schedule else None,
                )
            )
        return tasks, schedules.next_page_token

    async def get(self, user: str, task_id: str) -> TaskStatus:
        kind = self._owned(user, task_id)
        if kind is TaskKind.SCHEDULE:
            return await self._schedule_status(user, task_id)
        handle = self.client.get_workflow_handle(task_id)
        try:
            description = await handle.describe()
        except RPCError as exc:
            raise self._missing(task_id, exc) from None
        if kind is TaskKind.DAILY_BRIEFING:
            status = await self._briefing_status(task_id)
        else:
            status = await self._query_status(task_id)
        if description.status is not WorkflowExecutionStatus.RUNNING:
            # The same answer list_tasks gives: a task whose run has ended is stopped.
            status.state = TaskState.STOPPED
        else:
            await self._show_poll_progress(status, description)
        return status

    async def _briefing_status(self, task_id: str) -> TaskStatus:
        try:
            briefing: BriefingStatus = await self.client.get_workflow_handle(task_id).query(
                "status", result_type=BriefingStatus
            )
        except RPCError as exc:
            raise self._missing(task_id, exc) from None
        return _briefing_task_status(briefing)

    async def _show_poll_progress(
        self, status: TaskStatus, description: WorkflowExecutionDescription
    ) -> None:
        """Add what a running poll has heartbeated since it last handed back (web monitors
        record their checks when a poll ends; its heartbeats say where it stands now)."""
        for pending in description.raw_description.pending_activities:
            if pending.activity_type.name != "poll_pages" or not pending.heartbeat_details.payloads:
                continue
            try:
                (progress,) = await self.client.data_converter.decode(
                    pending.heartbeat_details.payloads, [PollProgress]
                )
            except Exception:  # an older or foreign heartbeat: the recorded status stands
                return
            if isinstance(progress, PollProgress):
                status.checks += progress.checks
                for field, more in (
                    ("changes_total", progress.changes),
                    ("hits_total", progress.hits),
                ):
                    recorded: Any = status.detail.get(field) or 0
                    status.detail[field] = int(recorded) + more
                status.detail["urls"] = {
                    url: state.model_dump(mode="json") for url, state in progress.urls.items()
                }
            return

    async def _schedule_status(self, user: str, task_id: str) -> TaskStatus:
        try:
            description = await self.client.get_schedule_handle(task_id).describe()
        except RPCError as exc:
            raise self._missing(task_id, exc) from None
        config: dict[str, Any] = {}
        action = description.schedule.action
        if isinstance(action, ScheduleActionStartWorkflow) and action.args:
            run = action.args[0]
            if not isinstance(run, ReminderRun):
                # Described schedules carry raw payloads: decode them with our converter.
                (run,) = await self.client.data_converter.decode([run], [ReminderRun])  # type: ignore[list-item]
            config = run.config.model_dump(mode="json")
        info = description.info
        return TaskStatus(
            task_id=task_id,
            kind=TaskKind.NEWS_DIGEST
            if config.get("action") == "news_digest"
            else TaskKind.SCHEDULE,
            user=user,
            state=TaskState.PAUSED if description.schedule.state.paused else TaskState.ACTIVE,
            checks=info.num_actions,
            config=config,
            detail={
                "next_runs": [t.isoformat() for t in info.next_action_times[:5]],
                "recent_runs": [a.scheduled_at.isoformat() for a in info.recent_actions[-5:]],
            },
        )

    # --- steer ----------------------------------------------------------------------

    async def pause(self, user: str, task_id: str) -> TaskRef:
        return await self._control(user, task_id, "pause", TaskState.PAUSED)

    async def resume(self, user: str, task_id: str) -> TaskRef:
        return await self._control(user, task_id, "resume", TaskState.ACTIVE)

    async def trigger(self, user: str, task_id: str) -> TaskRef:
        return await self._control(user, task_id, "check_now", None)

    async def _control(
        self, user: str, task_id: str, signal: str, new_state: TaskState | None
    ) -> TaskRef:
        kind = self._owned(user, task_id)
        try:
            if kind is TaskKind.SCHEDULE:
                handle = self.client.get_schedule_handle(task_id)
                if signal == "pause":
                    await handle.pause(note=f"paused by {user}")
                elif signal == "resume":
                    await handle.unpause(note=f"resumed by {user}")
                else:
                    await handle.trigger()
            elif kind is TaskKind.DAILY_BRIEFING and signal == "check_now":
                # "Run it now" for a briefing: prepare today's briefing again at once.
                await self._running(task_id)
                await self._briefing(self._briefings().regenerate(user))
            else:
                await self._running(task_id)
                await self.client.get_workflow_handle(task_id).signal(signal)
        except RPCError as exc:
            raise self._missing(task_id, exc) from None
        status = await self.get(user, task_id)
        return TaskRef(task_id=task_id, kind=kind, state=new_state or status.state, created=False)

    async def update(
        self,
        user: str,
        task_id: str,
        config: dict[str, Any],
        request_id: str | None = None,
    ) -> TaskStatus:
        """Replace a task's config; invalid configs are rejected and nothing changes.

        ``request_id`` makes a retried request apply once; without it each call is a new
        update (so A -> B -> A ends at A).
        """
        kind = self._owned(user, task_id)
        if kind is TaskKind.SCHEDULE:
            await self._update_schedule(user, task_id, self._reminder_config(config))
            return await self.get(user, task_id)
        if kind is TaskKind.DAILY_BRIEFING:
            # The briefing takes a new config as a new run that carries the day and the pause.
            await self._running(task_id)
            await self._briefing(self._briefings().create(user, config))
            return await self.get(user, task_id)
        if kind is TaskKind.THRESHOLD_WATCH:
            payload = self._threshold_config(config).model_dump(mode="json")
        else:
            try:
                parsed_web = WebMonitorConfig.model_validate(config)
            except ValidationError as exc:
                raise invalid(exc) from None
            check_destinations(parsed_web, self.settings)
            payload = parsed_web.model_dump(mode="json")
        if request_id is not None and not 1 <= len(request_id) <= 200:
            raise InvalidTaskError("request_id: 1-200 characters")
        update_id = f"update-{request_id or uuid.uuid4().hex}"
        await self._running(task_id)
        try:
            await self.client.get_workflow_handle(task_id).execute_update(
                "update_config", payload, id=update_id
            )
        except WorkflowUpdateFailedError as exc:
            raise InvalidTaskError(f"update rejected: {exc.cause}") from None
        except RPCError as exc:
            raise self._missing(task_id, exc) from None
        return await self.get(user, task_id)

    async def _update_schedule(self, user: str, task_id: str, parsed: ReminderConfig) -> None:
        """Change a schedule in place (validated first): a bad update leaves it as it was."""
        schedule = self._schedule(user, task_id, parsed)
        kind = _schedule_kind(parsed)

        def change(current: ScheduleUpdateInput) -> ScheduleUpdate:
            # Keep the pause state the user chose; replace action, spec and note.
            paused = current.description.schedule.state.paused
            schedule.state.paused = paused
            return ScheduleUpdate(
                schedule=schedule,
                search_attributes=_attrs(
                    kind.value, user, TaskState.PAUSED if paused else TaskState.ACTIVE
                ),
            )

        try:
            await self.client.get_schedule_handle(task_id).update(change)
        except RPCError as exc:
            raise self._missing(task_id, exc) from None

    async def delete(self, user: str, task_id: str, *, purge: bool = False) -> TaskRef:
        """Stop a task gracefully (schedules are deleted); ``purge`` also drops its snapshots."""
        kind = self._owned(user, task_id)
        try:
            if kind is TaskKind.SCHEDULE:
                await self.client.get_schedule_handle(task_id).delete()
            else:
                handle = self.client.get_workflow_handle(task_id)
                description = await handle.describe()
                if description.status is WorkflowExecutionStatus.RUNNING:
                    await handle.signal("stop")
        except RPCError as exc:
            raise self._missing(task_id, exc) from None
        if purge:
            async with self.db.session() as session:
                await SnapshotRepository(session).purge(task_id)
                await session.commit()
        return TaskRef(task_id=task_id, kind=kind, state=TaskState.STOPPED, created=False)

    # --- helpers --------------------------------------------------------------------

    def _owned(self, user: str, task_id: str) -> TaskKind:
        if task_id == f"daily-briefing/{user}":
            return TaskKind.DAILY_BRIEFING
        for kind, prefix in PREFIXES.items():
            if task_id.startswith(f"{prefix}/{user}/"):
                return kind
        raise TaskNotFoundError(
            f"no task {task_id!r} for user {user!r}; call list_tasks to see your task ids"
        )

    async def _running(self, task_id: str) -> None:
        try:
            description = await self.client.get_workflow_handle(task_id).describe()
        except RPCError as exc:
            raise self._missing(task_id, exc) from None
        if description.status is not WorkflowExecutionStatus.RUNNING:
            raise InvalidTaskError(f"task {task_id!r} is stopped; create it again to restart it")

    @staticmethod
    def _missing(task_id: str, exc: RPCError) -> TaskError:
        if exc.status is RPCStatusCode.NOT_FOUND:
            return TaskNotFoundError(f"no task {task_id!r}; call list_tasks to see your task ids")
        return TaskError(f"Temporal refused the request for {task_id!r}: {exc.message}")


def _baseline(status: TaskStatus) -> dict[str, Any]:
    """What a watch's first check found, in a form a person can act on."""
    if status.kind is TaskKind.WEB_MONITOR:
        urls = status.detail.get("urls", {})
        return {
            "urls": {
                url: {"outcome": seen.get("last_outcome"), "error": seen.get("last_error")}
                for url, seen in (urls.items() if isinstance(urls, dict) else [])
            }
        }
    return {"value": status.detail.get("last_value"), "error": status.detail.get("last_error")}


def _briefing_task_status(briefing: BriefingStatus) -> TaskStatus:
    """A briefing's status in the shape every task answers with (the day's facts in detail)."""
    day = briefing.day
    detail: dict[str, object] = {
        "phase": briefing.phase,
        "date": day.date if day else None,
        "prepared_at": briefing.prepared_at.isoformat() if briefing.prepared_at else None,
        "preparation_error": briefing.preparation_error,
        "given_at": briefing.given_at.isoformat() if briefing.given_at else None,
        "given_via": briefing.given_via,
        "pushed_at": briefing.pushed_at.isoformat() if briefing.pushed_at else None,
        "last_date": briefing.last_date,
    }
    return TaskStatus(
        task_id=briefing.task_id,
        kind=TaskKind.DAILY_BRIEFING,
        user=briefing.user,
        state=TaskState.PAUSED if briefing.paused else TaskState.ACTIVE,
        checks=briefing.days_completed,
        config=briefing.config.model_dump(mode="json"),
        detail=detail,
    )


def _schedule_kind(config: ReminderConfig) -> TaskKind:
    return TaskKind.NEWS_DIGEST if config.action == "news_digest" else TaskKind.SCHEDULE


def _schedule_summary(config: ReminderConfig, user: str) -> str:
    when = (
        f"cron {config.cron}"
        if config.type == "cron"
        else (f"{config.type} at {config.hour:02d}:{config.minute:02d}")
    )
    what = (
        f"News digest of {len(config.news_urls)} page(s)"
        if config.action == "news_digest"
        else "Reminder"
    )
    return f"{what}, {when} {config.timezone}, for {user}"


def _spec(config: ReminderConfig) -> ScheduleSpec:
    if config.type == "cron":
        return ScheduleSpec(cron_expressions=[config.cron or ""], time_zone_name=config.timezone)
    days = [ScheduleRange(DAYS.index(day) + 1 if day != "sun" else 0) for day in config.days]
    return ScheduleSpec(
        calendars=[
            ScheduleCalendarSpec(
                hour=[ScheduleRange(config.hour)],
                minute=[ScheduleRange(config.minute)],
                day_of_week=days or [ScheduleRange(0, 6)],
            )
        ],
        time_zone_name=config.timezone,
    )
