"""The task control plane: create, steer, update and delete watches and schedules.

MCP tools, the API, the web form, the CLI and voice are thin adapters over ``TaskService``,
which applies every rule of a task's input (ambient/watches/inputs.py), so no door can skip one.
Task ids are the workflow (or schedule) ids — `web-monitor/{user}/{task}`,
`threshold-watch/{user}/{task}`, `reminder/{user}/{task}`, the user's one
`daily-briefing/{user}` (its own ``BriefingService`` greets, reads and sends) — so a start is
idempotent and an operator finds them in the Web UI. The reads are ``TaskReads``, the
schedules' writes ``TaskSchedules``, the controls (pause, resume, check now) ``TaskControls``.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError

from ambient import no_answer, temporal, updates
from ambient.briefing.models import MAX_REQUEST_ID, BriefingRef
from ambient.controls_in_flight import DELIVERED_FAILING, DELIVERED_UNCONFIRMED
from ambient.domain.configs import read_stored
from ambient.domain.workflow_input import NOT_ITS_ARGUMENTS
from ambient.refusals import N_, Refusal
from ambient.request_deadline import bounded, request_deadline
from ambient.storage.repositories import EventRepository, SnapshotRepository
from ambient.watches import summaries
from ambient.watches.answers import created_ref
from ambient.watches.config_patch import changed, merged
from ambient.watches.configs import PREFIXES, TaskKind, TaskState, WebMonitorConfig
from ambient.watches.controls import TaskControls
from ambient.watches.deadline import (
    APPLIED_UNREAD,
    NOT_SENT,
    READ_ROOM,
    RETRY_UNSENT,
    SENT_UNANSWERED,
    nothing_sent,
    silent,
)
from ambient.watches.inputs import (
    ConfigError,
    ConfigOvertaken,
    InvalidTaskError,
    TaskError,
    TaskNotFoundError,
    TaskStateError,
    WorkerSilentError,
    checked_config,
    stopped,
    task_name,
)
from ambient.watches.listing import WORKFLOW_TYPES
from ambient.watches.models import (
    TaskRef,
    TaskStatus,
    ThresholdWatchInput,
    WebMonitorInput,
)
from ambient.watches.reads import briefing_task_status, found, of_a_known_user
from ambient.watches.reminders import NewsDigestConfig, ReminderConfig, retyped
from ambient.watches.threshold_config import SAID_BY_OTHER
from workflows.watch_controls import OVERTAKEN as CONFIG_OVERTAKEN

# How often update_task reads the config in force and merges over it again when another
# update replaced that config between its read and its write.
MERGE_TRIES = 5

# An update applied, then replaced by another one of the task (another request at once): the
# workflow applies updates one at a time in the order the server took them, the later in force.
OVERTAKEN = N_(
    "applied, then replaced by another update of this task made at the same time: the config "
    "shown is the one in force now"
)


class TaskService(TaskControls):
    # --- create ---------------------------------------------------------------------

    async def create(
        self, user: str, kind: str, config: dict[str, Any], name: str | None = None
    ) -> TaskRef:
        """The generic form: {type: web_monitor|threshold_watch|schedule|news_digest, config}."""
        if kind == TaskKind.DAILY_BRIEFING.value:
            # The user's one briefing, under the same id the briefing tools use.
            # Another config of a running one is refused, as for every kind (update changes it).
            ref = await self._briefing(self.briefings.create(user, config, replace=False))
            return TaskRef.model_validate(ref, from_attributes=True)
        parsed = await checked_config(kind, config, user, self.settings, self.db)
        if isinstance(parsed, NewsDigestConfig):
            parsed = parsed.as_reminder()
        if isinstance(parsed, ReminderConfig):
            return await self._create_schedule(user, parsed, name)
        web = isinstance(parsed, WebMonitorConfig)
        watch = TaskKind.WEB_MONITOR if web else TaskKind.THRESHOLD_WATCH
        task_id = f"{PREFIXES[watch]}/{user}/{task_name(name, parsed)}"
        arg = (WebMonitorInput if web else ThresholdWatchInput)(
            user=user, task=task_id, config=parsed
        )
        return await self._start(watch, arg, summaries.watch_summary(parsed, user))

    async def _start(
        self,
        kind: TaskKind,
        arg: WebMonitorInput | ThresholdWatchInput,
        summary: str,
        *,
        again: bool = False,
    ) -> TaskRef:
        """Start a new life of the task, or find the running one with the same config, in one
        ``baseline_wait`` for the whole create (``again``: its old life, stopping, let end)."""
        task_id, user = arg.task, arg.user
        if not again:
            await self._ended_otherwise(user, task_id, "created again")
        with request_deadline(self.baseline_wait):  # started again: the first start's
            try:
                handle = await self.client.start_workflow(
                    WORKFLOW_TYPES[kind].run,
                    arg,
                    id=task_id,
                    task_queue=self.settings.temporal_task_queue,
                    # A stopped task's id may start again: a new life with its own keys.
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                    search_attributes=temporal.search_attributes(
                        kind.value, user, state=TaskState.ACTIVE.value
                    ),
                    static_summary=summary,
                    memo=temporal.task_memo(summary, datetime.now(UTC)),
                )
            except WorkflowAlreadyStartedError:
                running = await self._workflow_status(user, kind, task_id)
                if running.state is TaskState.STOPPED and not again:
                    # Deleted a moment ago and still winding down: let it end, then start anew.
                    # However the old life ended (or not yet), the new one starts.
                    # Within the create's deadline, less a read's room for the start again.
                    await temporal.ended_within(
                        self.client.get_workflow_handle(task_id),
                        bounded(self.baseline_wait) - READ_ROOM,
                    )
                    return await self._start(kind, arg, summary, again=True)
                if running.state is TaskState.STOPPED:
                    # Its last event or delivery is still under way: it is neither this create's
                    # task nor one to update.
                    raise InvalidTaskError(
                        f"name: task {task_id!r} is still stopping after its delete (its last "
                        "event or alert is being sent); create it again in a moment"
                    ) from None
                if running.config != _as_stored(arg.config):
                    raise InvalidTaskError(
                        Refusal(
                            "name: task %(task)s already runs with another config; "
                            "call update_task to change it, or delete_task first to start it anew",
                            task=repr(task_id),
                        )
                    ) from None
                if not running.checks and running.state is TaskState.ACTIVE:
                    # Created a moment ago by a concurrent request: its first check is running.
                    handle = self.client.get_workflow_handle(task_id)
                    running = await self._waited_check(handle, "baseline") or running
                return created_ref(running, created=False)
            # The state the first check's answer shows (a pause that landed during it: paused).
            first = await self._waited_check(handle, "baseline")
            if first is None:
                return TaskRef(task_id=task_id, kind=kind, state=TaskState.ACTIVE)
            return created_ref(first, created=True)

    async def _waited_check(
        self, handle: WorkflowHandle[Any, Any], update: str
    ) -> TaskStatus | None:
        """A check the watch's ``update`` waits for, up to ``baseline_wait`` and the request's
        deadline; None: not in time (the task still runs, no worker may be polling yet:
        get_task shows it once it ends)."""
        with contextlib.suppress(*no_answer.CUT_SHORT, WorkflowUpdateFailedError, RPCError):
            async with asyncio.timeout(bounded(self.baseline_wait)):
                return await handle.execute_update(update, result_type=TaskStatus)
        return None

    async def follow_zone(self, user: str, old: str, new: str) -> list[str]:
        """The user's reminders and digests in zone ``old`` (their profile's until now) moved to
        ``new`` (the profile's now), as their daily briefing is: "08:00" stays 08:00 where they
        live. One in another zone was given it and stays. The ids of those moved."""
        moved = []
        for task in await self.list(user, without_stopped=True):
            if task.kind not in (TaskKind.SCHEDULE, TaskKind.NEWS_DIGEST):
                continue
            config = (await self.get(user, task.task_id)).config
            if config.get("timezone") == old:
                await self.update(user, task.task_id, {**config, "timezone": new}, replace=True)
                moved.append(task.task_id)
        return moved

    @of_a_known_user
    async def update(
        self,
        user: str,
        task_id: str,
        config: dict[str, Any],
        request_id: str | None = None,
        *,
        replace: bool = False,
    ) -> TaskStatus:
        """A task's new config: ``config`` merged over the one in force (a JSON Merge Patch,
        ambient/watches/config_patch.py; the answer's ``changed`` names the fields it changed),
        or the whole config when ``replace``. An invalid one is refused and nothing changes.

        ``request_id`` makes a retried request apply once; without it each call is a new
        update (so A -> B -> A ends at A).
        """
        if request_id is not None and not 1 <= len(request_id) <= MAX_REQUEST_ID:
            raise InvalidTaskError(f"request_id: 1-{MAX_REQUEST_ID} characters")
        if replace:
            return await self._replace(user, task_id, config, request_id)
        with request_deadline(self._budget(checks=True)):
            for tries in range(MERGE_TRIES):
                try:
                    with nothing_sent(task_id, NOT_SENT if request_id is None else RETRY_UNSENT):
                        before = (await self.get(user, task_id)).config
                except (TaskNotFoundError, TaskStateError, WorkerSilentError):
                    raise
                except Exception:  # Temporal not answering: a field sent wrong is said all the same
                    await self._sent_fields_checked(user, task_id, config)
                    raise
                kind = self._owned(user, task_id)
                whole = merged(
                    before, config, SAID_BY_OTHER if kind is TaskKind.THRESHOLD_WATCH else None
                )
                if kind in (TaskKind.SCHEDULE, TaskKind.NEWS_DIGEST):
                    whole = retyped(config, whole)
                # Each try its own update id: a retried request's (its request_id) finds the
                # try that applied, not a refused one.
                again = request_id if request_id is None or not tries else f"{request_id}/{tries}"
                try:
                    # Written only over the config it was merged over (compare-and-set): two
                    # updates at once each kept the other's field out, the later one's write
                    # putting back what the earlier changed.
                    status = await self._replace(user, task_id, whole, again, based_on=before)
                except ConfigOvertaken:
                    continue  # another update landed since the read: merged over it again
                status.changed = changed(before, status.config)
                return status
        raise TaskError(
            f"task {task_id!r} was changed by other updates during each of {MERGE_TRIES} tries "
            "of this update, and none of it applied; send it again"
        )

    async def _sent_fields_checked(self, user: str, task_id: str, patch: dict[str, Any]) -> None:
        """The refusals of the fields of ``patch`` that no config takes, with no config in force
        read to merge it over (a briefing's are its service's to say)."""
        kind = self._owned(user, task_id)
        if kind is TaskKind.DAILY_BRIEFING:
            return
        try:
            await checked_config(kind.value, patch, user, self.settings, self.db)
        except ConfigError as bad:
            sent = [i for i, (at, _) in enumerate(bad.errors) if at[1:2] and at[1] in patch]
            if sent:
                errors, inputs = [bad.errors[i] for i in sent], [bad.inputs[i] for i in sent]
                raise ConfigError(errors, prefix=(), inputs=inputs) from None

    async def _replace(
        self,
        user: str,
        task_id: str,
        config: dict[str, Any],
        request_id: str | None,
        *,
        based_on: dict[str, Any] | None = None,
    ) -> TaskStatus:
        """Write ``config`` whole; ``based_on``: only while the config in force is that one
        (ConfigOvertaken if another update replaced it)."""
        kind = self._owned(user, task_id)
        # One deadline for every call below (a web monitor's waits for the pages it added).
        with request_deadline(self._budget(checks=True)):
            # Not sent: a retry (its request_id reused) says this try sent nothing, as the first
            # try's update may still apply.
            unsent = NOT_SENT if request_id is None else RETRY_UNSENT
            if kind is TaskKind.DAILY_BRIEFING:
                # The briefing takes a new config as a new run that carries the day and the pause
                # (a deleted one still finishing would be started again: refused).
                with nothing_sent(task_id, unsent):
                    await self._answering(user, task_id)
                try:
                    ref = await self._briefing(
                        self.briefings.create(user, config, replace_only=True, based_on=based_on)
                    )
                except TaskNotFoundError:  # deleted since the look above: stopped, as it says
                    raise TaskStateError(stopped(task_id)) from None
                try:  # its new run started: applied
                    return await self._briefing_applied(user, task_id, ref)
                except WorkerSilentError as exc:
                    raise WorkerSilentError(f"{exc}; {APPLIED_UNREAD}", sent=True) from None

            async def in_force() -> dict[str, Any] | None:
                """The config this update replaces: merged over, or (a replace) read now; None
                for a task not there (its rules apply whole). A worker silent or out of time is
                said as such, nothing sent: not a refusal of a config the task already has."""
                if based_on is not None:
                    return based_on
                with nothing_sent(task_id, unsent):
                    try:
                        return (await self.get(user, task_id)).config
                    except TaskNotFoundError:
                        return None

            # The same rules as create, for the task's own type (a digest is a schedule config).
            try:
                parsed = await checked_config(
                    kind.value, config, user, self.settings, self.db, in_force=in_force
                )
            except ConfigError as bad:
                # A task that is not there (or stopped) is said first: its config is no matter. Any
                # other answer of that look (Temporal down, out of time) leaves the config's.
                try:
                    if kind is TaskKind.SCHEDULE:
                        schedule = self.client.get_schedule_handle(task_id)
                        with found(task_id), no_answer.by():
                            await schedule.describe(rpc_timeout=no_answer.time_left())
                    else:
                        # A deleted watch too (ended or ending): it cannot take any config, and
                        # a config fixed was then told "is stopped".
                        await self._live(task_id)
                except (TaskNotFoundError, TaskStateError):
                    raise
                except Exception:
                    raise bad from None
                raise
            if isinstance(parsed, ReminderConfig):
                return (await self._update_schedule(user, task_id, parsed, based_on=based_on))[0]
            payload = parsed.model_dump(mode="json")
            update_id = f"update-{request_id or uuid.uuid4().hex}"
            # An update waits for a worker to take it, with no end: with none running it hung for
            # good. A query answers within QUERY_TIMEOUT or says the worker is silent, and then
            # nothing was sent (a change sent could still apply when a worker came back).
            with nothing_sent(task_id, unsent):
                await self._answering(user, task_id)
            handle = self.client.get_workflow_handle(task_id)
            # A merge sends the config it was merged over (the workflow's validator compares);
            # a replace (PUT, --replace) sends the config alone, as before.
            args = (payload,) if based_on is None else (payload, based_on)
            try:
                # Taken within QUERY_TIMEOUT (its worker has just answered a query), answered by
                # the deadline; nothing left by now: not sent.
                with found(task_id):
                    try:
                        applied = await updates.answered(
                            handle, "update_config", *args, id=update_id
                        )
                    except WorkflowUpdateFailedError as exc:
                        if len(args) == 1 or not _arguments_refused(exc):
                            raise
                        # A worker of a release before the compare (its handler takes the
                        # config alone) refused it, nothing applied: sent as that release
                        # takes it, with no compare, as every update was then.
                        applied = await updates.answered(
                            handle, "update_config", payload, id=f"{update_id}/alone"
                        )
            except TaskNotFoundError:
                # Live at the look above, its run gone now: a delete ended it in between (one
                # answered once the list shows it stopped may end it first). Stopped, not "no
                # task": get_task shows it stopped.
                raise TaskStateError(stopped(task_id)) from None
            except updates.Unanswered as exc:
                raise silent(task_id, SENT_UNANSWERED if exc.sent else unsent, exc.sent) from None
            except WorkflowUpdateFailedError as exc:
                cause = exc.cause
                if isinstance(cause, ApplicationError) and cause.type == CONFIG_OVERTAKEN:
                    raise ConfigOvertaken(task_id) from None
                if (await self.get(user, task_id)).state is TaskState.STOPPED:
                    # A delete landed after our look: the task is stopped, the config is not wrong.
                    raise TaskStateError(stopped(task_id)) from None
                raise InvalidTaskError(f"update rejected: {exc.cause}") from None
            if isinstance(parsed, WebMonitorConfig):
                await self._pages_removed(user, task_id, {str(url) for url in parsed.urls})
                # A page the update added is checked at once: its outcome (a wrong URL) is in the
                # answer, as a create's baseline is; not in time, get_task shows it later. The
                # status read after it keeps a read's time.
                with request_deadline(bounded(self._budget(checks=True)) - READ_ROOM):
                    await self._waited_check(handle, "pages_checked")
            try:
                status = await self.get(user, task_id)
            except WorkerSilentError as exc:
                raise WorkerSilentError(f"{exc}; {APPLIED_UNREAD}", sent=True) from None
            if status.config != applied:
                # Another request's update was applied after this one (the workflow takes them one
                # at a time, in the order the server took them): said, not answered as in force.
                status.note = OVERTAKEN
            return status

    async def _briefing_applied(self, user: str, task_id: str, ref: BriefingRef) -> TaskStatus:
        """The briefing's status after its new config: the run this update started, read by its
        id. Another update's run replaced it meanwhile (or a delete ended it): the run in force,
        its config said to be another's when it is (`OVERTAKEN`, as a watch's update says)."""
        status = None
        if ref.run_id is not None:
            read = self.briefings.read_status(user, run_id=ref.run_id)
            if (briefing := await self._briefing(read)) is not None:
                status = briefing_task_status(await self.briefings.told(user, briefing))
        if status is None:  # the running one found (the same config), or ended since
            status = await self.get(user, task_id)
        if status.config != ref.config.model_dump(mode="json"):
            status.note = OVERTAKEN
        return status

    async def _pages_removed(self, user: str, task_id: str, watched: set[str]) -> None:
        """A page an update took out of a web monitor while it failed is failing no more (the
        status no longer shows it, and no watch.recovered will come): said with an event."""
        failing = await self._failing(user, task_id)
        removed = [url for _, url in failing if url is not None and url not in watched]
        await self._tell(user, task_id, [("watch.url_removed", {"url": url}) for url in removed])

    @of_a_known_user
    async def delete(self, user: str, task_id: str, *, purge: bool = False) -> TaskRef:
        """Stop a task gracefully (schedules are deleted); ``purge`` also drops its snapshots.
        Answered once the task list shows it stopped (``temporal.listed_stopped``), so a list
        right after it, at any door, agrees; not in time, said so."""
        kind = self._owned(user, task_id)
        failing = signalled = False
        with found(task_id):
            if kind is TaskKind.SCHEDULE:
                kind = (await self._schedule_status(user, task_id)).kind  # a digest says so
                await self.client.get_schedule_handle(task_id).delete()
            elif (described := await self._describe(task_id)).status is _RUNNING:
                await self.client.get_workflow_handle(task_id).signal("stop")
                task = described.raw_description.pending_workflow_task
                failing = task.attempt >= no_answer.FAILING_ATTEMPT
                signalled = True
            else:
                await self._ended_otherwise(user, task_id, "deleted", running=False)
        if purge:
            async with self.db.writing() as session:
                # Its own, and a digest's lives' (`ReminderRun.pages_key`).
                await SnapshotRepository(session).purge_rounds(task_id)
        # A schedule leaves the list as it is deleted; a run shows stopped once its worker has
        # taken the stop and visibility has recorded it (a moment; a worker failing its run,
        # never by waiting). Waited for here, not by each door (the web page alone waited).
        within = bounded(temporal.LISTED_STOPPED_WITHIN)
        if (
            signalled
            and not failing
            and not await temporal.listed_stopped(self.client, task_id, within)
        ):
            # Delivered: it stops when its worker takes it (none running, or busy); the list
            # shows it active until then, and the answer says so.
            return TaskRef(
                task_id=task_id,
                kind=kind,
                state=TaskState.STOPPED,
                created=False,
                note=DELIVERED_UNCONFIRMED,
            )
        if failing:
            # Held until its worker's cause is mended: it was answered "stopped" while it ran
            # on, every later control refused as of a stopped task.
            return TaskRef(
                task_id=task_id,
                kind=kind,
                state=TaskState.ACTIVE,
                created=False,
                note=DELIVERED_FAILING,
            )
        return TaskRef(task_id=task_id, kind=kind, state=TaskState.STOPPED, created=False)

    # --- helpers --------------------------------------------------------------------

    async def _ended_otherwise(
        self, user: str, task_id: str, then: str, *, running: bool | None = None
    ) -> None:
        """A run that ended without its stop (terminated in the Web UI, failed) said no
        watch.stopped: said now (``then``: deleted, or created again), or its last failing is
        told ("what needs me") for good; a new life's failing pages are its own, from a
        baseline. ``running`` not known: looked up, only when something of the name is failing
        (one read for the usual create)."""
        if not await self._failing(user, task_id):
            return
        if running is None:
            running = False  # gone from Temporal's retention: ended all the same
            with contextlib.suppress(TaskNotFoundError):
                running = (await self._describe(task_id)).status is WorkflowExecutionStatus.RUNNING
        if not running:
            stopped = ("watch.stopped", {"ended": f"without its stop; {then}"})
            await self._tell(user, task_id, [stopped])

    async def _failing(self, user: str, task_id: str) -> list[tuple[str, str | None]]:
        async with self.db.session() as session:
            # Paused ones too: a page removed, or a run ended, while paused is settled here.
            return await EventRepository(session).failing_pages(
                user=user, task=task_id, paused=True
            )

    async def _tell(
        self, user: str, task_id: str, events: list[tuple[str, dict[str, Any]]]
    ) -> None:
        """Record the task's events in one write turn; none: no write turn taken."""
        if not events:
            return
        async with self.db.writing() as session:
            for kind, payload in events:
                await EventRepository(session).add(kind, user=user, task=task_id, payload=payload)

    async def _answering(self, user: str, task_id: str) -> TaskState:
        """``_live``, and its worker answering within QUERY_TIMEOUT and the request's deadline
        (WorkerSilentError if not): an update or a new run waits for a worker, with none
        running for good."""
        await self._live(task_id)
        status = await self._workflow_status(user, self._owned(user, task_id), task_id)
        if status.state is TaskState.STOPPED:
            raise TaskStateError(stopped(task_id))
        return status.state


def _arguments_refused(exc: WorkflowUpdateFailedError) -> bool:
    """Whether the update was refused for its arguments (a handler that takes fewer)."""
    return isinstance(exc.cause, ApplicationError) and exc.cause.type == NOT_ITS_ARGUMENTS


_RUNNING = WorkflowExecutionStatus.RUNNING


def _as_stored(config: BaseModel) -> dict[str, Any]:
    """A config as its workflow holds it (its input is read back as stored: a threshold is its
    condition), to compare with the config a running task answers."""
    return read_stored(type(config), config.model_dump(mode="json")).model_dump(mode="json")
