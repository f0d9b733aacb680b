"""A reminder or news digest as a Temporal Schedule: its create, its update in place, its spec
and its note. ``TaskService`` creates and updates schedules through these; ``TaskReads`` reads
a schedule's status."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from temporalio.api.workflowservice.v1 import UpdateScheduleRequest
from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
)
from temporalio.converter import encode_search_attributes

from ambient import temporal
from ambient.storage.repositories import SnapshotRepository
from ambient.watches.configs import PREFIXES, TaskKind, TaskState
from ambient.watches.inputs import ConfigOvertaken, InvalidTaskError, TaskError, task_name
from ambient.watches.models import TaskRef, TaskStatus
from ambient.watches.reads import TaskReads, found, schedule_kind
from ambient.watches.reminders import DAYS, ReminderConfig, ReminderRun, schedule_crons, shown
from ambient.watches.summaries import schedule_summary
from workflows.reminder import ReminderWorkflow

log = logging.getLogger(__name__)

# How often an update_task of a schedule looks and writes again when other changes (a pause,
# another update) overtake its write.
SCHEDULE_WRITE_TRIES = 5


class TaskSchedules(TaskReads):
    """The schedule side of ``TaskService``."""

    async def _create_schedule(
        self, user: str, parsed: ReminderConfig, name: str | None
    ) -> TaskRef:
        task_id = f"{PREFIXES[TaskKind.SCHEDULE]}/{user}/{task_name(name, parsed)}"
        kind = schedule_kind(parsed)
        life = _new_life()
        schedule = self._schedule(user, task_id, parsed, _run_id(task_id, life), life)
        try:
            await self.client.create_schedule(
                task_id,
                schedule,
                # No summary in its memo: its note is its summary, and an update could not
                # rewrite a copy (Temporal refuses a memo update of a schedule).
                memo=temporal.task_memo(None, datetime.now(UTC)),
                search_attributes=temporal.search_attributes(
                    kind.value, user, state=TaskState.ACTIVE.value
                ),
            )
        except ScheduleAlreadyRunningError:
            # The same config again: written anew, so a schedule stored before its spec's rule
            # was fixed (one cron for both day fields, say) runs as its config says now.
            status, _ = await self._update_schedule(user, task_id, parsed, same_config=True)
            return TaskRef(task_id=task_id, kind=kind, state=status.state, created=False)
        # A new life: its news pages are compared from its own first look, stored under its
        # life (`ReminderRun.pages_key`), so a deleted life's run still reading a page stores it
        # under its own. The pages deleted lives kept (and a schedule's from before lives were
        # kept, under its task id) are dropped. Its first run comes at its hour, after this.
        try:
            async with self.db.writing() as session:
                await SnapshotRepository(session).purge_rounds(task_id)
        except Exception as exc:
            # Only deleted lives' leftovers (the new life's pages are its own): the reminder
            # is made, and said so. Failing the create left its schedule running while every
            # door said it failed; deleting it undid another request's create of the same one.
            log.warning("reminder %s: its old lives' pages were not dropped: %s", task_id, exc)
        return TaskRef(task_id=task_id, kind=kind, state=TaskState.ACTIVE)

    def _schedule(
        self, user: str, task_id: str, parsed: ReminderConfig, run_id: str, life: str | None
    ) -> Schedule:
        # The note is the summary list_tasks shows; an update rewrites it. Temporal keeps it
        # in clear text: with payloads encrypted, it does not say the message.
        note = _schedule_summary(parsed, user, said=self.settings.payload_key is None)
        return Schedule(
            action=ScheduleActionStartWorkflow(
                ReminderWorkflow.run,
                ReminderRun(user=user, task=task_id, config=parsed, life=life),
                id=run_id,
                task_queue=self.settings.temporal_task_queue,
                typed_search_attributes=temporal.search_attributes("reminder_run", user),
                # Each run's Summary in the Web UI: the reminder it is a run of.
                static_summary=note,
            ),
            spec=_spec(parsed),
            state=ScheduleState(note=note),
        )

    async def _update_schedule(
        self,
        user: str,
        task_id: str,
        parsed: ReminderConfig | None,
        *,
        same_config: bool = False,
        pause: bool | None = None,
        based_on: dict[str, Any] | None = None,
    ) -> tuple[TaskStatus, bool]:
        """Write a schedule in place (validated first) and answer its status, and whether it
        was written (not: a pause or resume of one already so): a bad update
        leaves it as it was, and a pause or resume that lands while it is written is kept.
        ``parsed`` None: its stored config, written again (the spec as its config says now).
        ``pause``: paused or resumed in the same write, its AmbientState with it (a patch
        cannot set search attributes); one already so is not written, which would move its
        conflict token and make a repeated create's dropped write look landed.
        ``same_config``: only rewritten while its config is ``parsed`` (a create of a name
        already taken). ``based_on``: the config ``parsed`` was merged over; a look that
        finds another in force raises ConfigOvertaken (written, it put back the fields the
        other update changed)."""
        handle = self.client.get_schedule_handle(task_id)
        for _ in range(SCHEDULE_WRITE_TRIES):
            with found(task_id):
                current = await handle.describe()
            status = await self._schedule_status(user, task_id, current)
            if based_on is not None and status.config != based_on:
                raise ConfigOvertaken(task_id)
            wanted = shown(parsed) if parsed else status.config
            if same_config and status.config != wanted:
                raise InvalidTaskError(
                    f"name: schedule {task_id!r} already exists with another config; "
                    "call update_task to change it, or delete_task first"
                )
            marked = current.typed_search_attributes.get(temporal.STATE)
            if pause is not None and current.schedule.state.paused == pause == (
                marked == TaskState.PAUSED.value
            ):
                return status, False
            run = await self._stored_run(current)
            config = parsed or (run.config if run else None)
            # Keep the pause state the user chose and the life's run ids; replace action, spec
            # and note (a schedule with no reminder run of ours is written back as it is).
            schedule = current.schedule
            if config is not None:
                action = current.schedule.action
                if isinstance(action, ScheduleActionStartWorkflow):
                    # Its life as created (None for one created before lives were kept: its
                    # pages stay under its task id, compared as before).
                    run_id, life = action.id, run.life if run else None
                else:
                    life = _new_life()
                    run_id = _run_id(task_id, life)
                schedule = self._schedule(user, task_id, config, run_id, life)
            paused = schedule.state.paused = (
                current.schedule.state.paused if pause is None else pause
            )
            # The SDK's schedule update sends no conflict token (its own TODO says so), and a
            # pause between its look and its write was overwritten. With the look's token the
            # server drops a write that another change overtook; we then look again.
            request = UpdateScheduleRequest(
                namespace=self.client.namespace,
                schedule_id=task_id,
                schedule=await schedule._to_proto(self.client),
                conflict_token=current.raw_description.conflict_token,
                identity=self.client.identity,
                request_id=str(uuid.uuid4()),
            )
            kind = schedule_kind(config) if config else status.kind
            state = TaskState.PAUSED if paused else TaskState.ACTIVE
            encode_search_attributes(
                temporal.search_attributes(kind.value, user, state=state.value),
                request.search_attributes,
            )
            with found(task_id):
                await self.client.workflow_service.update_schedule(request, retry=True)
                after = await handle.describe()
            written = await self._schedule_status(user, task_id, after)
            # A dropped write answers as a kept one: it landed if the schedule moved on from
            # the look and holds what it wrote, pause state included (on a same-config create
            # the config alone was equal before).
            if (
                after.raw_description.conflict_token != current.raw_description.conflict_token
                and (after.schedule.state.note, after.schedule.state.paused)
                == (schedule.state.note, paused)
                and written.config == wanted
            ):
                return written, True
        # Said for what the user asked: a pause, resume or repeated create is no update_task.
        what = "create" if same_config else {None: "update", True: "pause", False: "resume"}[pause]
        raise TaskError(
            f"schedule {task_id!r} was changed by other requests during each try of this "
            f"{what}; {what} it again"
        )


def _new_life() -> str:
    return uuid.uuid4().hex[:8]


def _run_id(task_id: str, life: str) -> str:
    # Runs are named by the task's life and the second they are asked for: a run of a
    # deleted life does not take the id (and the once-only keys) of a new life's run.
    return f"{task_id}/run-{life}"


def _schedule_summary(config: ReminderConfig, user: str, *, said: bool) -> str:
    # A weekly one names its days: "every Monday" and "every Friday" were one line.
    return str(
        schedule_summary(
            config.action,
            config.type,
            user=user,
            zone=config.timezone,
            count=len(config.news_urls),
            time=f"{config.hour:02d}:{config.minute:02d}",
            days=",".join(d for d in DAYS if d in config.days),
            cron=config.cron or "",
            message=config.message if said and config.action == "reminder" else "",
        )
    )


def _spec(config: ReminderConfig) -> ScheduleSpec:
    if config.type == "cron":
        crons = schedule_crons(config.cron or "")
        return ScheduleSpec(cron_expressions=crons, time_zone_name=config.timezone)
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
