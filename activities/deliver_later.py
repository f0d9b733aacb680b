"""Deliver later, the notify activity's side: a delivery whose receiver said "try again
later" handed to a deliver-later run (``DeliverLaterWorkflow``), its rows deferred until the
run's give-up; and what that run's tries (``notify_later``) ask before sending: whether they
are past its give-up, whether the task that sent it was deleted since (then its deliveries
end there). docs/notifications.md, "Deliver later".
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import NoReturn, TypeVar

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from temporalio import activity
from temporalio.client import (
    Client,
    ScheduleActionStartWorkflow,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowQueryFailedError,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError

from activities.deliveries import end_unsent, failure, what_went
from ambient import no_answer, temporal
from ambient.domain.configs import STORED
from ambient.domain.deliver_later import (
    DELIVER_LATER_KIND,
    DELIVER_LATER_TYPE,
    LaterDelivery,
    later_workflow_id,
)
from ambient.domain.notify import Delivery, NotifyRequest, Target
from ambient.storage import Database
from ambient.storage.repositories import DeliveryRepository
from ambient.watches.configs import TaskKind, TaskState, WebMonitorConfig, task_kind
from ambient.watches.models import TaskStatus
from ambient.watches.notification_spec import notification_targets
from ambient.watches.reminders import ReminderConfig, stored_run
from ambient.watches.threshold_config import ThresholdWatchConfig

D = TypeVar("D")  # what a describe answers (a workflow's, a schedule's)
HAND_OVER_RPC = timedelta(seconds=10)  # the start of a deliver-later run, well inside a heartbeat
WATCH_CONFIGS: dict[TaskKind, type[WebMonitorConfig | ThresholdWatchConfig]] = {
    TaskKind.WEB_MONITOR: WebMonitorConfig,
    TaskKind.THRESHOLD_WATCH: ThresholdWatchConfig,
}
GIVE_UP_SLACK = timedelta(seconds=5)  # see past_give_up


class HandOver:
    """Hands deliveries to a deliver-later run, with the worker's settings: the give-up and the
    backoff (seconds; no give-up: nothing is handed over); and asks Temporal what a hand-over
    and a later try need to know (a run going on, its task deleted)."""

    def __init__(self, give_up: float, backoff: float) -> None:
        self._give_up = give_up
        self._backoff = backoff

    @property
    def give_up_after(self) -> timedelta:
        """How long after the hand-over a deliver-later run tries its deliveries."""
        return timedelta(seconds=self._give_up)

    def client(self) -> Client | None:
        """The worker's Temporal client, when a delivery the receiver asked to try later can
        be handed to a deliver-later run: it is on (settings) and this send runs in an
        activity (a notify's or a poll's)."""
        if self._give_up <= 0:
            return None
        try:
            return activity.client()
        except RuntimeError:  # not in an activity, or one run without a client (tests)
            return None

    async def handed_over(self, request: NotifyRequest) -> bool:
        """Whether a deliver-later run of ``request`` is running, other than this one's."""
        workflow_id = later_workflow_id(request.user, request.idempotency_key)
        client = self.client()
        if client is None or activity.info().workflow_id == workflow_id:
            return False
        try:
            described = await client.get_workflow_handle(workflow_id).describe(
                rpc_timeout=HAND_OVER_RPC
            )
        except RPCError:  # none (NOT_FOUND), or not known now: given up as before
            return False
        return described.status == WorkflowExecutionStatus.RUNNING

    async def task_deleted(self, request: NotifyRequest, sent_at: datetime | None = None) -> bool:
        """Whether the task ``request`` is about was deleted since it sent (``sent_at``: its
        first try, when known): a watch or a daily briefing whose run has ended, is ending (its
        stop: deleted, it winds down), is gone, or is another life (deleted and created again
        under its name: `another_life`, `created_since`); a reminder whose schedule is gone or
        another life (`reminder_deleted`).
        A paused one goes on (what it sent happened before the pause); a remediation or a
        discussion is no such task; Temporal not answering now: not known, tried as before."""
        if task_kind(request.user, request.task or "") is TaskKind.SCHEDULE:
            return await reminder_deleted(request)
        if not workflow_task(request.task, request.user):
            return False
        described = await _described(
            lambda client: client.get_workflow_handle(request.task or "").describe(
                rpc_timeout=HAND_OVER_RPC
            )
        )
        if isinstance(described, bool):
            return described
        stopping = described.typed_search_attributes.get(temporal.STATE) == TaskState.STOPPED
        running = described.status is WorkflowExecutionStatus.RUNNING
        if not running or stopping or another_life(request, described):
            return True
        return sent_at is not None and await created_since(described, sent_at)

    async def task_targets(self, request: NotifyRequest) -> list[Target] | None:
        """The targets the task that sent ``request`` names now: a watch's config as its status
        query answers, a reminder's as its schedule holds it. None when not known (another kind
        of task, or one gone; Temporal or the watch's worker not answering): sent as asked."""
        kind = task_kind(request.user, request.task or "")
        config: WebMonitorConfig | ThresholdWatchConfig | ReminderConfig
        try:
            client = activity.client()
            if kind in WATCH_CONFIGS:
                status = await client.get_workflow_handle(request.task or "").query(
                    "status", result_type=TaskStatus, rpc_timeout=HAND_OVER_RPC
                )
                config = WATCH_CONFIGS[kind].model_validate(status.config, context=STORED)
            elif kind is TaskKind.SCHEDULE:
                schedule = client.get_schedule_handle(request.task or "")
                described = await schedule.describe(rpc_timeout=HAND_OVER_RPC)
                if (run := await stored_run(client.data_converter, described)) is None:
                    return None
                config = run.config
            else:
                return None
        except (RuntimeError, RPCError, WorkflowQueryFailedError, ValidationError):
            return None
        return notification_targets(config.notification, config.targets)

    def deferrable(self, delivery: Delivery) -> bool:
        """A failure whose receiver asked to be tried later, sooner than the give-up."""
        return delivery.later is not None and delivery.later < self._give_up

    async def start(
        self, client: Client, request: NotifyRequest, waiting: list[Delivery], last_try: bool
    ) -> bool:
        """Start the deliver-later run of ``request`` when its receivers asked to be tried
        later: every transient failure of this try is such and named its delay (quick retries
        would meet the same answer), or this was the last try and one is (the others go with
        it). True if it runs. A "later" that names no delay (a 503 without Retry-After, a
        proxy whose upstream restarts) may pass in seconds: the quick retries go first."""
        deferrable = [d for d in waiting if self.deferrable(d)]
        named = all(d.later for d in waiting)  # 0: the receiver named no delay
        if not deferrable or (not last_try and (len(deferrable) < len(waiting) or not named)):
            return False
        stated = [d.later for d in deferrable if d.later]
        later = LaterDelivery(
            request=request.model_copy(update={"attempts": None}),
            # The longest delay a receiver asked for (at least a second), else the backoff's.
            wait=max(max(stated), 1.0) if stated else self._backoff,
            backoff=self._backoff,
            give_up_after=self._give_up,
        )
        try:
            await client.start_workflow(
                DELIVER_LATER_TYPE,
                later,
                id=later_workflow_id(request.user, request.idempotency_key),
                task_queue=activity.info().task_queue,
                search_attributes=temporal.search_attributes(DELIVER_LATER_KIND, request.user),
                rpc_timeout=HAND_OVER_RPC,
            )
        except WorkflowAlreadyStartedError:
            pass  # an earlier try of this notification handed it over (its result was lost)
        except RPCError as exc:
            activity.logger.warning("notify %s: no deliver-later run: %s", request.task, exc)
            return False
        activity.logger.info(
            "notify %s: %d deliveries to try again in %.0f s (given up after %.0f s)",
            request.task,
            len(waiting),
            later.wait,
            later.give_up_after,
        )
        return True


async def reminder_deleted(request: NotifyRequest) -> bool:
    """Whether the reminder (or news digest) that sent ``request`` was deleted since: its
    schedule gone, or another life of it (deleted and created again under its name). A
    reminder's key is its run's workflow id, which its schedule makes from the run id it
    keeps for its life (``{task}/run-{life}``, its updates keep it) and the time it fired
    (``-{time}``). A reminder ends by no doing of its own (daily, weekly or cron, it recurs
    until deleted): only a user's delete ends its messages. Paused: it goes on. Temporal not
    answering now, or no client: not known, tried as before."""
    described = await _described(
        lambda client: client.get_schedule_handle(request.task or "").describe(
            rpc_timeout=HAND_OVER_RPC
        )
    )
    if isinstance(described, bool):
        return described
    action = described.schedule.action
    if not isinstance(action, ScheduleActionStartWorkflow):
        return False  # no run of ours: not known
    key = request.idempotency_key
    return key != action.id and not key.startswith(f"{action.id}-")


def workflow_task(task: str | None, user: str) -> bool:
    """Whether ``task`` is one of ``user``'s tasks that are a workflow run while they exist:
    a watch (its run ends at its delete) or the daily briefing."""
    kinds = (TaskKind.DAILY_BRIEFING, TaskKind.WEB_MONITOR, TaskKind.THRESHOLD_WATCH)
    return task is not None and task_kind(user, task) in kinds


def another_life(request: NotifyRequest, described: WorkflowExecutionDescription) -> bool:
    """Whether the task's run is another life than the one that sent ``request``: the watch
    was deleted and created again under its name meanwhile. A watch's key names its life (the
    first run of its chain: ``{task}/{life}/...``); the old life's message is not the new
    watch's. A key naming no life, or a server not saying the first run: not known, as before."""
    life = (request.idempotency_key.removeprefix(f"{request.task}/")).split("/", 1)[0]
    first = described.raw_description.workflow_execution_info.first_run_id
    try:
        uuid.UUID(life)
    except ValueError:
        return False
    return bool(first) and first != life


async def created_since(described: WorkflowExecutionDescription, sent_at: datetime) -> bool:
    """Whether the task's running life was created after ``sent_at``: for a key that names no
    life (a daily briefing's names its day), the creation its memo keeps tells lives apart.
    A new config's run keeps its briefing's creation, a create writes its own; a memo without
    one: not known, as before."""
    created = temporal.created_at(await described.memo())
    return created is not None and created > sent_at


def give_up_time(info: activity.Info) -> datetime | None:
    """When the deliver-later run of this try gives up: no try starts after it. The try's
    schedule-to-close is the give-up plus one try's time (start-to-close), so that a try
    begun before the give-up has its whole time (the server's clock)."""
    if info.schedule_to_close_timeout is None:
        return None
    try_time = info.start_to_close_timeout or timedelta(0)
    return info.scheduled_time + info.schedule_to_close_timeout - try_time


def past_give_up(info: activity.Info) -> bool:
    """Whether this retry of a deliver-later run's try started after the give-up (Temporal
    starts any retry due before the schedule-to-close; a retry due at the give-up starts a
    moment after it, by the earlier tries' own time: GIVE_UP_SLACK)."""
    give_up = give_up_time(info)
    if info.attempt == 1 or give_up is None:
        return False
    return info.started_time > give_up + GIVE_UP_SLACK


async def defer_rows(db: Database, request: NotifyRequest, until: datetime) -> None:
    """Each transient failure of ``request``, handed over, deferred until ``until`` (its
    deliver-later run's give-up). Left failed if the database cannot take it now: the run's
    first try defers them again."""
    try:
        async with db.writing() as session:
            await DeliveryRepository(session).defer(request.user, request.idempotency_key, until)
    except SQLAlchemyError as exc:
        activity.logger.warning("notify %s: rows not marked deferred: %s", request.task, exc)


async def end_for_deleted_task(db: Database, request: NotifyRequest) -> NoReturn:
    """A deliver-later run's deliveries whose task was deleted end at once, each failed for
    good and said once (not retrying), and the run with them: not sent an hour on."""
    reminder = task_kind(request.user, request.task or "") is TaskKind.SCHEDULE
    what = f"its {'reminder' if reminder else 'task'} {request.task}"
    reason = f"permanent: {what} was deleted"
    now = datetime.now(UTC)
    ended: list[tuple[str, str]] = []
    async with db.writing() as session:
        rows = await DeliveryRepository(session).under(request.user, request.idempotency_key)
        for row in rows:
            # A row whose last try ended in flight may have reached its receiver: said so.
            error = f"{reason}{what_went(row)}"
            if row.takeable(now) and await end_unsent(session, request, row, error, now):
                ended.append((row.channel, error))
    raise ApplicationError(
        f"given up: {what} was deleted",
        *(f"{channel}: {error}" for channel, error in ended),
        type="PermanentNotifyError",
        non_retryable=True,
    )


async def end_for_removed_targets(
    db: Database, request: NotifyRequest, keys: set[str]
) -> list[Delivery]:
    """A deliver-later run's deliveries (``keys``) to targets taken out of their task since it
    sent end at once, each failed for good and said once: the user changed where it goes. Those
    an earlier try ended are given too (that try may have failed on another target after it):
    the run's outcome lists them whichever try ends it."""
    reason = f"permanent: its target was taken out of its task {request.task}"
    now = datetime.now(UTC)
    ended: list[Delivery] = []
    async with db.writing() as session:
        rows = await DeliveryRepository(session).under(request.user, request.idempotency_key)
        for row in rows:
            error = f"{reason}{what_went(row)}"
            if row.key not in keys:
                continue
            if row.takeable(now):
                if await end_unsent(session, request, row, error, now):
                    ended.append(failure(row.channel, row.target, error))
            elif (row.error or "").startswith(reason):
                ended.append(failure(row.channel, row.target, row.error or error))
    return ended


async def _described(describe: Callable[[Client], Awaitable[D]]) -> D | bool:
    """A task's description through this activity's client; when there is none, whether the
    task is gone (Temporal does not know it: True; no client, or no answer: not known)."""
    try:
        return await describe(activity.client())
    except RuntimeError:  # no client (an activity run without one)
        return False
    except RPCError as exc:
        return no_answer.not_found(exc)
