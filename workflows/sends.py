"""What a workflow sends out, once per key: an event recorded, a message delivered to its
targets, and a delivery's failure as text a person can act on (watches, briefings, reminders,
remediations and the event agent all send this way).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    is_cancelled_exception,
)
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from activities.events import EventActivities
    from activities.notify import NotifyActivities
    from ambient.domain.events import RecordEventInput
    from ambient.domain.notify import (
        NOTIFY_TIMEOUT,
        NOTIFY_TRIES,
        Message,
        NotificationKind,
        NotifyRequest,
        NotifyResult,
        Target,
    )

SHORT = timedelta(seconds=30)
# Side effects: bounded retries (the default retries forever).
NOTIFY_RETRY = RetryPolicy(maximum_attempts=NOTIFY_TRIES, initial_interval=timedelta(seconds=2))
# The notify activity heartbeats: a crashed worker is noticed in 30 s, not 2 min.
NOTIFY_HEARTBEAT = timedelta(seconds=30)
A = TypeVar("A")
R = TypeVar("R")


async def short_activity(activity: Callable[[Any, A], Awaitable[R]], arg: A, summary: str) -> R:
    """A short activity with a side effect (a write, a message): SHORT a try, NOTIFY_RETRY;
    ``summary``: what the Web UI labels it with."""
    return await workflow.execute_activity_method(
        activity, arg, start_to_close_timeout=SHORT, retry_policy=NOTIFY_RETRY, summary=summary
    )


async def record_event(
    *, user: str, task: str, kind: str, key: str, payload: dict[str, Any]
) -> None:
    """Append an event once per key."""
    event = RecordEventInput(kind=kind, user=user, task=task, payload=payload, idempotency_key=key)
    await short_activity(EventActivities.record_event, event, f"record {kind}")


async def recorded_kinds(keys: list[str]) -> dict[str, str]:
    """The kind of the event recorded under each of ``keys`` that has one (a read: retried
    as a write is)."""
    said = f"read which of {len(keys)} events are recorded"
    return await short_activity(EventActivities.recorded_kinds, keys, said)


async def deliver(
    *,
    user: str,
    key: str,
    message: Message,
    targets: list[Target],
    about: str,
    kind: NotificationKind = NotificationKind.WATCH,
    task: str | None = None,
    cancellation: ActivityCancellationType = ActivityCancellationType.TRY_CANCEL,
    heartbeat: timedelta = NOTIFY_HEARTBEAT,
    give_up_cut: bool = False,
) -> NotifyResult:
    """Notify the targets once per key, as a message of ``kind`` (a watch's, unless said);
    its deliveries and failures are filed under ``task``; ``about``: what it tells, as the
    Web UI labels it ("notify alice: watch.breach"). ``cancellation``: whether a cancel
    of the caller waits for the activity to end (not unless said: its sends go on until a
    heartbeat hears the cancel, the server hearing one every 0.8 x ``heartbeat``)."""
    request = NotifyRequest(
        user=user,
        message=message.model_copy(update={"kind": kind}),
        targets=targets,
        idempotency_key=key,
        task=task,
        attempts=NOTIFY_RETRY.maximum_attempts,
    )
    said = f"notify {user}: {about}"
    try:
        return await workflow.execute_activity_method(
            NotifyActivities.notify,
            request,
            start_to_close_timeout=NOTIFY_TIMEOUT,
            heartbeat_timeout=heartbeat,
            retry_policy=NOTIFY_RETRY,
            cancellation_type=cancellation,
            summary=said,
        )
    except ActivityError as error:
        # A last try that timed out, lost its worker or met a send in flight recorded nothing;
        # nor did a try cancelled, which gives up what it left in flight itself once it hears
        # its cancel at a heartbeat (`notify`) while its run still runs. A caller waiting for
        # it (WAIT_CANCELLATION_COMPLETED) gives up once more after it ended (its rows
        # nobody's then); one that does not (``give_up_cut``: a watch's run cancelled in
        # Temporal, which would end before that heartbeat, the try then told "not found",
        # which a timed-out try is told too) gives up now, its rows left to the try until
        # their leases end (`notify_given_up`).
        cut = isinstance(error.cause, CancelledError)
        waited = cancellation is ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
        if not cut or waited or give_up_cut:
            with contextlib.suppress(ActivityError):
                ended = request.model_copy(update={"cancelled": cut})
                await short_activity(NotifyActivities.notify_given_up, ended, f"{said}: given up")
        raise


async def delivery_errors(
    *,
    user: str,
    key: str,
    message: Message,
    targets: list[Target],
    about: str,
    failed: str = "",
    task: str | None = None,
) -> list[str]:
    """Notify the targets once per key; what failed, a line each (``failed`` + the activity's
    failure for good, or each channel that refused: the others were still sent). A delivery
    cut by the caller's cancel (its run's, in Temporal) is given up and raised, not a failure
    line."""
    try:
        result = await deliver(
            user=user,
            key=key,
            message=message,
            targets=targets,
            about=about,
            task=task,
            give_up_cut=True,
        )
    except ActivityError as error:
        if is_cancelled_exception(error):
            raise
        return failure_lines(error, failed)
    return result.failure_lines()


def failure_lines(error: ActivityError, failed: str = "") -> list[str]:
    """An activity's failure for good as lines: its last try's, each, or ``failed`` + its text."""
    if isinstance(error.cause, ApplicationError) and error.cause.details:
        return [str(line) for line in error.cause.details]
    return [failed + failure_text(error)]


def failure_text(error: BaseException) -> str:
    """The innermost message of an activity failure (what a person can act on)."""
    cause: BaseException = error
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    return str(cause) or type(cause).__name__


def given_up(error: ActivityError) -> str:
    """A delivery's failure for good taken as data: its text. A cancel still ends the run
    (raised again)."""
    if isinstance(error.cause, CancelledError):
        raise error
    return failure_text(error)
