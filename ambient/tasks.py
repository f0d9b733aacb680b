"""The task control plane: create, list, inspect and steer watches and schedules.

MCP tools, the API and the CLI are thin adapters over ``TaskService``. Task ids are the
workflow (or schedule) ids — `web-monitor/{user}/{task}`, `threshold-watch/{user}/{task}`,
`reminder/{user}/{task}` — so a start is idempotent and an operator finds them in the Web UI.

TaskError
 ├── InvalidTaskError    bad config or arguments: nothing was changed
 └── TaskNotFoundError   no such task for this user
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Any

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
    WorkflowExecutionStatus,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from ambient import temporal
from ambient.domain.reminders import DAYS, NewsDigestConfig, ReminderConfig, ReminderRun
from ambient.domain.tasks import TaskStatus, ThresholdWatchInput, WebMonitorInput
from ambient.domain.watches import (
    DEFAULT_CATALOGUE,
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
from workflows.reminder import ReminderWorkflow
from workflows.threshold_watch import ThresholdWatchWorkflow
from workflows.web_monitor import WebMonitorWorkflow

PREFIXES = {
    TaskKind.WEB_MONITOR: "web-monitor",
    TaskKind.THRESHOLD_WATCH: "threshold-watch",
    TaskKind.SCHEDULE: "reminder",
}
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


class TaskSummary(BaseModel):
    task_id: str
    kind: TaskKind
    state: TaskState
    summary: str | None = None
    started_at: datetime | None = None


def _attrs(kind: str, user: str, state: TaskState | None = None) -> TypedSearchAttributes:
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(temporal.KIND, kind),
        SearchAttributePair(temporal.USER, user),
    ]
    if state is not None:
        pairs.append(SearchAttributePair(temporal.STATE, state.value))
    return TypedSearchAttributes(pairs)


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
    def __init__(self, client: Client, settings: Settings, db: Database) -> None:
        self.client = client
        self.settings = settings
        self.db = db

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
        if parsed_kind is TaskKind.NEWS_DIGEST:
            try:
                reminder = NewsDigestConfig.model_validate(config).as_reminder()
            except ValidationError as exc:
                raise invalid(exc) from None
            return await self.create_reminder(user, reminder.model_dump(mode="json"), name)
        return await self.create_reminder(user, config, name)

    async def create_web_monitor(
        self, user: str, config: dict[str, Any], name: str | None = None
    ) -> TaskRef:
        try:
            parsed = WebMonitorConfig.model_validate(config)
        except ValidationError as exc:
            raise invalid(exc) from None
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
            if parsed.source is None and parsed.metric is not None:
                catalogue = DEFAULT_CATALOGUE | self.settings.metric_catalogue
                source = resolve_metric(parsed.metric, catalogue)
                parsed = ThresholdWatchConfig.model_validate(
                    parsed.model_dump(mode="json") | {"source": source}
                )
        except UnknownMetricError as exc:
            raise InvalidTaskError(f"metric: {exc}") from None
        except ValidationError as exc:
            raise invalid(exc) from None
        return parsed

    async def _start(
        self, workflow: Any, arg: BaseModel, task_id: str, kind: TaskKind, user: str, summary: str
    ) -> TaskRef:
        try:
            await self.client.start_workflow(
                workflow,
                arg,
                id=task_id,
                task_queue=self.settings.temporal_task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                search_attributes=_attrs(kind.value, user, TaskState.ACTIVE),
                static_summary=summary,
            )
        except WorkflowAlreadyStartedError:
            return TaskRef(task_id=task_id, kind=kind, state=TaskState.ACTIVE, created=False)
        return TaskRef(task_id=task_id, kind=kind, state=TaskState.ACTIVE)

    async def create_reminder(
        self, user: str, config: dict[str, Any], name: str | None = None
    ) -> TaskRef:
        try:
            parsed = ReminderConfig.model_validate(config)
        except ValidationError as exc:
            raise invalid(exc) from None
        task_id = f"reminder/{user}/{_task_name(name, parsed)}"
        schedule = Schedule(
            action=ScheduleActionStartWorkflow(
                ReminderWorkflow.run,
                ReminderRun(user=user, task=task_id, config=parsed),
                id=f"{task_id}/run",
                task_queue=self.settings.temporal_task_queue,
                typed_search_attributes=_attrs("reminder_run", user),
            ),
            spec=_spec(parsed),
            state=ScheduleState(note=f"{parsed.action} for {user}"),
        )
        try:
            await self.client.create_schedule(
                task_id,
                schedule,
                search_attributes=_attrs(TaskKind.SCHEDULE.value, user, TaskState.ACTIVE),
            )
        except ScheduleAlreadyRunningError:
            return TaskRef(
                task_id=task_id, kind=TaskKind.SCHEDULE, state=TaskState.ACTIVE, created=False
            )
        return TaskRef(task_id=task_id, kind=TaskKind.SCHEDULE, state=TaskState.ACTIVE)

    # --- read -----------------------------------------------------------------------

    async def list(
        self, user: str, *, kind: str | None = None, state: str | None = None, limit: int = 200
    ) -> list[TaskSummary]:
        """The caller's tasks: a visibility query on our search attributes, plus schedules."""
        clauses = [f"{temporal.USER.name} = {json.dumps(user)}"]
        if kind is not None:
            clauses.append(f"{temporal.KIND.name} = {json.dumps(kind)}")
        else:
            kinds = ", ".join(
                json.dumps(k.value) for k in (TaskKind.WEB_MONITOR, TaskKind.THRESHOLD_WATCH)
            )
            clauses.append(f"{temporal.KIND.name} IN ({kinds})")
        if state is not None:
            clauses.append(f"{temporal.STATE.name} = {json.dumps(state)}")
        # A continued-as-new run is history; its successor is the task.
        clauses.append('ExecutionStatus != "ContinuedAsNew"')
        tasks: list[TaskSummary] = []
        if kind in (None, TaskKind.WEB_MONITOR.value, TaskKind.THRESHOLD_WATCH.value):
            async for execution in self.client.list_workflows(" AND ".join(clauses), limit=limit):
                attrs = execution.typed_search_attributes
                current = attrs.get(temporal.STATE) or TaskState.ACTIVE.value
                if execution.status is not WorkflowExecutionStatus.RUNNING:
                    current = TaskState.STOPPED.value
                if state is not None and current != state:
                    continue
                tasks.append(
                    TaskSummary(
                        task_id=execution.id,
                        kind=TaskKind(attrs.get(temporal.KIND) or TaskKind.WEB_MONITOR.value),
                        state=TaskState(current),
                        started_at=execution.start_time,
                    )
                )
        if kind in (None, TaskKind.SCHEDULE.value):
            prefix = f"reminder/{user}/"
            async for entry in await self.client.list_schedules():
                if not entry.id.startswith(prefix):
                    continue
                paused = entry.schedule.state.paused if entry.schedule else False
                current = TaskState.PAUSED if paused else TaskState.ACTIVE
                if state is None or current.value == state:
                    tasks.append(
                        TaskSummary(task_id=entry.id, kind=TaskKind.SCHEDULE, state=current)
                    )
        return tasks

    async def get(self, user: str, task_id: str) -> TaskStatus:
        kind = self._owned(user, task_id)
        if kind is TaskKind.SCHEDULE:
            return await self._schedule_status(user, task_id)
        try:
            return await self.client.get_workflow_handle(task_id).query(
                "status", result_type=TaskStatus
            )
        except RPCError as exc:
            raise self._missing(task_id, exc) from None

    async def _schedule_status(self, user: str, task_id: str) -> TaskStatus:
        try:
            description = await self.client.get_schedule_handle(task_id).describe()
        except RPCError as exc:
            raise self._missing(task_id, exc) from None
        action = description.schedule.action
        run = (
            action.args[0]
            if isinstance(action, ScheduleActionStartWorkflow) and action.args
            else None
        )
        config = run.get("config", {}) if isinstance(run, dict) else getattr(run, "config", {})
        if isinstance(config, BaseModel):
            config = config.model_dump(mode="json")
        info = description.info
        return TaskStatus(
            task_id=task_id,
            kind=TaskKind.SCHEDULE,
            user=user,
            state=TaskState.PAUSED if description.schedule.state.paused else TaskState.ACTIVE,
            checks=info.num_actions,
            config=dict(config),
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
            else:
                await self._running(task_id)
                await self.client.get_workflow_handle(task_id).signal(signal)
        except RPCError as exc:
            raise self._missing(task_id, exc) from None
        status = await self.get(user, task_id)
        return TaskRef(task_id=task_id, kind=kind, state=new_state or status.state, created=False)

    async def update(self, user: str, task_id: str, config: dict[str, Any]) -> TaskStatus:
        """Replace a task's config; invalid configs are rejected and nothing changes."""
        kind = self._owned(user, task_id)
        if kind is TaskKind.SCHEDULE:
            await self.delete(user, task_id)
            await self.create_reminder(user, config, task_id.rsplit("/", 1)[1])
            return await self.get(user, task_id)
        if kind is TaskKind.THRESHOLD_WATCH:
            payload = self._threshold_config(config).model_dump(mode="json")
        else:
            try:
                payload = WebMonitorConfig.model_validate(config).model_dump(mode="json")
            except ValidationError as exc:
                raise invalid(exc) from None
        # The same request twice is applied once: the update id derives from its content.
        update_id = (
            "update-"
            + hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
        )
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
