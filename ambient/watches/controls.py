"""Steering a task: pause, resume and check now (a watch's check, a schedule's run, a
briefing's preparation), each answered with the task as the control left it. ``TaskService``
(`ambient.watches.service`) adds create, update and delete.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from datetime import UTC, datetime

from temporalio.client import (
    ScheduleOverlapPolicy,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
)

from ambient import controls_in_flight, no_answer, temporal
from ambient.briefing.errors import BriefingUnanswered
from ambient.controls_in_flight import ALREADY_SO, DELIVERED_UNCONFIRMED
from ambient.refusals import N_
from ambient.request_deadline import request_deadline
from ambient.status import temporal_down
from ambient.storage.users import registered
from ambient.watches.answers import found_at_check
from ambient.watches.configs import TaskKind, TaskState
from ambient.watches.deadline import (
    CHECK_SENT,
    CHECK_STARTED,
    CONTROL_SENT,
    NOT_SENT,
    RequestDeadline,
    in_time,
    silent,
)
from ambient.watches.inputs import (
    TaskNotFoundError,
    TaskStateError,
    WorkerSilentError,
    stopped,
)
from ambient.watches.models import TaskRef, TaskStatus
from ambient.watches.pauses import asked_since, site_waits, waits_note
from ambient.watches.reads import found, of_a_known_user


class TaskControls(RequestDeadline):
    """The controls of ``TaskService``, over its reads and deadlines."""

    # A caller's own request around these (the voice's) keeps its deadline when it is sooner.
    async def pause(self, user: str, task_id: str) -> TaskRef:
        return await self._control(user, task_id, "pause", TaskState.PAUSED)

    async def resume(self, user: str, task_id: str) -> TaskRef:
        return await self._control(user, task_id, "resume", TaskState.ACTIVE)

    async def trigger(self, user: str, task_id: str) -> TaskRef:
        return await self._control(user, task_id, "check_now", None)

    @of_a_known_user
    async def _control(
        self, user: str, task_id: str, signal: str, new_state: TaskState | None
    ) -> TaskRef:
        kind = self._owned(user, task_id)
        ref = functools.partial(TaskRef, task_id=task_id, created=False)
        # A check now waits for its check (a briefing's, its preparation) as a create does.
        with request_deadline(self._budget(checks=signal == "check_now" and kind in _ASKED_NOW)):
            before: TaskState | None = None  # a workflow's state before its control
            asked_wall: datetime | None = None  # when a watch's check now was asked
            checked: TaskStatus | None = None  # a watch's status once its check now ended
            taken = False  # a watch's check now taken by its worker, its result not in yet
            queued = False  # a schedule's run now asked while one of its runs is under way
            spent = False  # a check now no worker took in a read's budget: no read after it
            if kind is TaskKind.SCHEDULE and signal in ("pause", "resume"):
                # Its answer is the status its write was checked against: no third look.
                status, wrote = await self._update_schedule(
                    user, task_id, None, pause=signal == "pause"
                )
                return ref(kind=status.kind, state=status.state, note=None if wrote else ALREADY_SO)
            sent_words = CHECK_SENT if signal == "check_now" else CONTROL_SENT
            with found(task_id), in_time(task_id, sent_words):
                if kind is TaskKind.SCHEDULE:
                    # A run now asked while a run is under way runs after it (the schedule's
                    # own overlap policy, skip, dropped it while the answer said it was done),
                    # and the answer says so. Asked again then, the two asks are one run.
                    handle = self.client.get_schedule_handle(task_id)
                    queued = bool((await handle.describe()).info.running_actions)
                    await handle.trigger(overlap=ScheduleOverlapPolicy.BUFFER_ONE)
                elif kind in _WATCHES and signal == "check_now":
                    # Asked through an update that answers once the check ended: what it read, and
                    # a page whose server asked us to wait is not asked, and the answer says so (a
                    # status read after a signal often predates the check); its state as the
                    # controls on their way make it (a resume just sent: active).
                    before, described = await self._live(task_id)
                    seen = await controls_in_flight.state_in_flight(self.client, described, before)
                    if seen.state == TaskState.STOPPED.value:
                        raise TaskStateError(stopped(task_id))
                    before = TaskState(seen.state)
                    asked_at = asyncio.get_running_loop().time()
                    asked_wall = datetime.now(UTC)
                    checked, taken = await self._checked_now(task_id)
                    waited = asyncio.get_running_loop().time() - asked_at
                    if not taken and waited >= no_answer.QUERY_TIMEOUT.total_seconds():
                        # No worker took it in a read's budget: silent, as a read would say, and
                        # not asked again (the caller would wait out that budget twice).
                        spent = True
                elif kind is TaskKind.DAILY_BRIEFING and signal == "check_now":
                    # "Run it now" for a briefing: prepare today's briefing again at once.
                    before, _ = await self._live(task_id)
                    try:
                        await self._briefing(self.briefings.regenerate(user))
                    except BriefingUnanswered as exc:
                        if not exc.taken:
                            raise silent(
                                task_id, CHECK_SENT if exc.sent else NOT_SENT, exc.sent
                            ) from None
                        # Taken, its preparation outlasts the request: started, as a watch's.
                        return ref(kind=kind, state=before, note=CHECK_STARTED)
                else:
                    # What the controls it holds and has not taken yet make of it: a pause on its
                    # way is a paused task (a resume on its way, a running one).
                    described, seen = await controls_in_flight.read_in_flight(
                        self.client, lambda: self._live(task_id)
                    )
                    if seen.state == TaskState.STOPPED.value:  # a delete on its way
                        raise TaskStateError(stopped(task_id))
                    before = TaskState(seen.state)
                    if seen.whole and before is new_state:
                        return ref(kind=kind, state=before, note=ALREADY_SO)
                    # Requests that read the run alike send one signal (the server records a
                    # request id once); one sent while a worker holds the run's task, whose reading
                    # is not whole, is sent under an id of its own and never answered "already".
                    whole = f"{signal}/{described.run_id}/{seen.basis}"
                    request_id = whole if seen.whole else str(uuid.uuid4())
                    await controls_in_flight.signal_once(self.client, task_id, signal, request_id)
            try:
                if spent:
                    raise silent(task_id)
                status = checked or await self.get(user, task_id)
            except Exception as exc:
                if before is None or not (isinstance(exc, WorkerSilentError) or temporal_down(exc)):
                    raise
                # The control is delivered (the server holds it) and applies when the worker takes
                # it: a worker busy now (its workflow task held by a slow local activity), or
                # Temporal gone since, is no failure to report. A check now its worker took is
                # started (its result shows in the status).
                return ref(
                    kind=kind,
                    state=new_state or before,
                    note=CHECK_STARTED if taken else DELIVERED_UNCONFIRMED,
                )
            if status.state is TaskState.STOPPED:
                # A delete landed between the look above and the control: the run, stopping,
                # ignored it. Answered as a control sent after the delete is, not as applied.
                raise TaskStateError(stopped(task_id))
            waits = site_waits(status, datetime.now(UTC)) if signal == "check_now" else []
            if asked_wall is not None:
                # A page this check asked, whose server answered "wait" (429, 503 with
                # Retry-After), was checked: its error is what it found, not "not checked now".
                waits = [w for w in waits if not asked_since(status, w.url, asked_wall)]
            zone = (await registered(self.db, user, TaskNotFoundError)).timezone if waits else None
            note = RUNS_AFTER_THE_CURRENT if queued else waits_note(waits, zone)
            if kind is TaskKind.SCHEDULE and signal == "check_now" and not queued:
                note = RUNS_NOW  # said, as a run after the current one is: the note was null
            if checked is None and signal == "check_now" and kind in _WATCHES:
                # Asked, its result not in by this answer.
                note = CHECK_STARTED
            found_now = await found_at_check(self.db, user, checked, waits) if checked else None
            # The status's kind: a news digest is a schedule by its id, a digest by its config.
            return ref(
                kind=status.kind,
                state=new_state or status.state,
                note=note,
                waits=waits,
                checked=found_now,
            )

    async def _live(self, task_id: str) -> tuple[TaskState, WorkflowExecutionDescription]:
        """Refuse a watch or briefing that ended or is ending: deleted, it runs on until its
        last event is recorded (a briefing, its preparation or push), and a signal or update
        then changed nothing while the answer said it had (a briefing's update started it
        again once it had ended). Its state (the controls its worker took) and its run."""
        # Read off the run's own search attribute (the server's, no worker asked): a status
        # query first left a control under load undone, "is the worker running?" said.
        description = await self._describe(task_id)
        state = description.typed_search_attributes.get(temporal.STATE) or TaskState.ACTIVE
        if description.status is not WorkflowExecutionStatus.RUNNING or state == "stopped":
            raise TaskStateError(stopped(task_id))
        return TaskState(state), description


# A schedule's run now asked while one of its runs was under way.
RUNS_AFTER_THE_CURRENT = N_("a run is under way; this one runs once it has ended")
# One asked with none under way: the reminder is sent (the digest read) now.
RUNS_NOW = N_("it runs now")

_WATCHES = (TaskKind.WEB_MONITOR, TaskKind.THRESHOLD_WATCH)
_ASKED_NOW = (*_WATCHES, TaskKind.DAILY_BRIEFING)
