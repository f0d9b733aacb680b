"""Reading tasks: one task's status, whatever its kind (a watch's query, a schedule's
description, the briefing's status), with the task list of ``TaskListing``
(`ambient.watches.listing`). ``TaskService`` adds the writes."""

from __future__ import annotations

import difflib
import functools
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Concatenate, ParamSpec, TypeVar

from temporalio.client import (
    Client,
    ScheduleDescription,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
)

from ambient import no_answer
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
from ambient.domain.notify import made_here
from ambient.request_deadline import bounded, left
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.users import registered
from ambient.watches.configs import TaskKind, TaskState, task_kind
from ambient.watches.inputs import (
    InvalidTaskError,
    TaskError,
    TaskNotFoundError,
    TaskStateError,
    TaskUnavailableError,
    WorkerSilentError,
    stopped,
)
from ambient.watches.listing import TaskListing
from ambient.watches.models import TaskStatus
from ambient.watches.polling import PollProgress
from ambient.watches.reminders import ReminderConfig, ReminderRun, shown, stored_run

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R", bound="TaskReads")

# How much longer than a fetch (web.FETCH_TIMEOUT) a create waits for its first check.
PAST_FETCH = 5.0
# Longer than any task's id (kind/user/name: at most 63 characters each part).
MAX_TASK_ID = 255
# A task id not found is compared with at most this many of the caller's for a near miss.
NEAR_AMONG = 1000


def schedule_kind(config: ReminderConfig) -> TaskKind:
    return TaskKind.NEWS_DIGEST if config.action == "news_digest" else TaskKind.SCHEDULE


def no_task(task_id: str, user: str | None = None, near: Sequence[str] = ()) -> TaskNotFoundError:
    """The refusal of a task not found (``user``'s, when said), saying where its ids are and
    the ``near`` ones of the caller's."""
    whose = "" if user is None else f" for user {user!r}"
    if near:
        meant = " or ".join(repr(task) for task in near)
        then = f"did you mean {meant}? (see list_tasks)"
    else:
        then = "call list_tasks to see your task ids"
    return TaskNotFoundError(f"no task {task_id!r}{whose}; {then}")


@contextmanager
def found(task_id: str) -> Iterator[None]:
    """Temporal's refusal of a request for ``task_id`` as a task error."""
    try:
        yield
    except no_answer.QUERY_REFUSED as exc:
        if no_answer.not_found(exc):
            raise no_task(task_id) from None
        refused = no_answer.refused_request(no_answer.refusal(exc), task_id)
        raise (WorkerSilentError if no_answer.unanswered(exc) else TaskError)(refused) from None


def of_a_known_user(
    method: Callable[Concatenate[R, str, P], Awaitable[T]],
) -> Callable[Concatenate[R, str, P], Awaitable[T]]:
    """A task operation whose task is not found for a user nobody registered says that, and
    who registers it (as a create does), not "no task": the id was never what was wrong. One
    the task list has, whose run ended (a control that reached it after its delete), is said
    stopped, not "no task …; did you mean" that very id."""

    @functools.wraps(method)
    async def known(self: R, user: str, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(self, user, *args, **kwargs)
        except TaskNotFoundError:
            # Asked only then: a found task's user is registered, no read more for it.
            await registered(self.db, user, InvalidTaskError)
            asked = args[0] if args and isinstance(args[0], str) else None
            if asked is not None and (near := await self.near_ids(user, asked)):
                if asked in near:  # listed, yet its run has ended: deleted (just now, maybe)
                    raise TaskStateError(stopped(asked)) from None
                raise no_task(asked, user, near) from None
            raise

    return known


class TaskReads(TaskListing):
    """The read side of ``TaskService``: its clients, the task list (`TaskListing`) and a task's
    status."""

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

    @of_a_known_user
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
        if own_failure(status) and not (
            operator if operator is not None else await self.briefings.reads_as_operator(user)
        ):
            hide_own_failure(status)
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
            detail: dict[str, Any] = status.detail
            detail["changes_total"] = int(detail.get("changes_total") or 0) + progress.changes
            detail["hits_total"] = int(detail.get("hits_total") or 0) + progress.hits
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
        return await stored_run(self.client.data_converter, description)

    async def _schedule_status(
        self, user: str, task_id: str, description: ScheduleDescription | None = None
    ) -> TaskStatus:
        if description is None:
            with found(task_id):
                description = await self.client.get_schedule_handle(task_id).describe()
        config: dict[str, Any] = {}
        kind = TaskKind.SCHEDULE
        if (run := await self._stored_run(description)) is not None:
            config = shown(run.config)
            kind = schedule_kind(run.config)
        info = description.info
        paused = description.schedule.state.paused
        now = datetime.now(UTC)
        # A paused schedule fires nothing: Temporal keeps the times it had, falling behind.
        coming = [] if paused else [t for t in info.next_action_times if t > now][:5]
        return TaskStatus(
            task_id=task_id,
            kind=kind,
            user=user,
            state=TaskState.PAUSED if paused else TaskState.ACTIVE,
            checks=info.num_actions,
            config=config,
            detail={
                "next_runs": [t.isoformat() for t in coming],
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
            raise no_task(task_id)
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

    async def near_ids(self, user: str, task_id: str) -> list[str]:
        """The caller's task ids nearest ``task_id``, a near miss ("briefing/alice" for
        "daily-briefing/alice"); none when the list cannot be read now."""
        try:
            ids = [task.task_id for task in await self.list(user, limit=NEAR_AMONG)]
        except Exception:  # the id was not found, however the list fares: that is the answer
            return []
        return difflib.get_close_matches(task_id, ids, n=3, cutoff=0.75)

    def _owned(self, user: str, task_id: str) -> TaskKind:
        if len(task_id) > MAX_TASK_ID:  # no task's id is as long: refused, not looked up or quoted
            raise InvalidTaskError(f"task_id: at most {MAX_TASK_ID} characters")
        if (kind := task_kind(user, task_id)) is None:
            raise no_task(task_id, user)
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
    # pushed_at: its inbox copy stored; which push channels took it (none: the inbox alone).
    pushed = briefing.pushed_to
    detail["pushed_to"] = pushed.model_dump(mode="json") if pushed is not None else None
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


# What a member reads of a failure of the product's own (its database, its worker), not of
# the watch's pages or metric: its text named the database's host and port, its SQL, a path.
OWN_FAILURE = (
    "the product's own failure (its database or its worker); its text is an administrator's"
)


def own_failure(status: TaskStatus) -> bool:
    """Whether the watch's last failure outside its checks is the product's own: a poll that
    failed for good, an event not recorded, a delivery's internal error."""
    failure = status.detail.get("last_failure")
    if not isinstance(failure, dict):
        return False
    what, error = str(failure.get("what", "")), str(failure.get("error", ""))
    return what == "poll" or what.startswith("event ") or made_here(error)


def hide_own_failure(status: TaskStatus) -> None:
    """``status`` with that failure's text (and the last error that quotes it) as a member
    reads it."""
    failure = status.detail["last_failure"]
    if not isinstance(failure, dict):
        return
    what = failure.get("what")
    said = f"{what}: {failure.get('error')}"
    status.detail["last_failure"] = {**failure, "error": OWN_FAILURE}
    if status.detail.get("last_error") == said:
        status.detail["last_error"] = f"{what}: {OWN_FAILURE}"
