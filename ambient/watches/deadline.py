"""A task request's one deadline (a check now, an update, a pause, a resume): its budget,
set at its top (`ambient.request_deadline`) and read by every call it makes to Temporal: each
bounded alone, a worker that answered one and then fell silent made the caller wait their sum.
What the answer says when the time runs out: the silent-worker words and what the request did
(sent or not)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator

from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateStage
from temporalio.exceptions import ApplicationError

from ambient import controls_in_flight, no_answer, updates
from ambient.refusals import N_
from ambient.request_deadline import deadline
from ambient.watches.inputs import TaskStateError, WorkerSilentError, stopped
from ambient.watches.models import TaskStatus
from ambient.watches.schedules import TaskSchedules
from workflows.watch_controls import STOPPED

# A check now asked whose result was not in by the answer: the status (get_task) shows it once
# made.
CHECK_STARTED = N_("started; its result will show in the task's status once the check is made")

# What an update whose worker did not answer did, after the silent-worker words.
NOT_SENT = "nothing was sent, the task is unchanged"
SENT_UNANSWERED = (
    "the update was sent and may still apply when its worker takes it: call get_task later "
    "to see the config in force"
)
CHECK_SENT = (
    "the check now was sent and may still run when its worker takes it: call get_task later "
    "to see its result"
)
RETRY_UNSENT = (
    "this request sent nothing (an update an earlier try with the same request_id sent may "
    "still apply: call get_task later to see the config in force)"
)
CONTROL_SENT = (
    "it was sent and may still apply when its worker takes it: call get_task later to see "
    "the task's state"
)
APPLIED_UNREAD = "the update was applied; call get_task later to see the task's status"
# Of a request's deadline: kept for the signal that asks a check not taken in time (the
# server's, at once), and for the status read after an update's wait for its pages' check.
SIGNAL_ROOM = 1.0
READ_ROOM = 2.0


class RequestDeadline(TaskSchedules):
    """A task service's one deadline for a request, its check now and its status read."""

    def _budget(self, *, checks: bool = False) -> float:
        """The seconds in which a control or an update answers, all its calls together (its
        `request_deadline`): each bounded alone, a worker gone silent part-way made the caller
        wait their sum (an update, for good). QUERY_TIMEOUT, ``baseline_wait`` for a request
        that waits for a check (``checks``)."""
        budget = no_answer.QUERY_TIMEOUT.total_seconds()
        if checks:
            budget = max(budget, self.baseline_wait)
        return budget

    async def _checked_now(self, task_id: str) -> tuple[TaskStatus | None, bool]:
        """Ask a watch to check now and wait, up to ``baseline_wait`` and the request's
        deadline (less SIGNAL_ROOM), for the status once that check ended, and whether its
        worker took the ask (None, True: not in time). A worker of a release before the
        ``checked_now`` update refuses it: the signal asks. Not taken in time, the signal asks
        too: an update no worker accepted yet lives in the server's memory alone (a restart
        loses it), a signal is in the history at once (asked twice, the check is still one).
        A run stopping (a delete after the caller's look) refuses it as stopped: said at once,
        no signal (the run would ignore it, and once ended it would be told "no task")."""
        handle = self.client.get_workflow_handle(task_id)
        loop, until = asyncio.get_running_loop(), deadline() or float("inf")
        update_id, taken = f"check-now-{uuid.uuid4().hex}", False
        try:
            async with asyncio.timeout_at(
                min(until - SIGNAL_ROOM, loop.time() + self.baseline_wait)
            ):
                asked = await handle.start_update(
                    "checked_now",
                    id=update_id,
                    wait_for_stage=WorkflowUpdateStage.ACCEPTED,
                    result_type=TaskStatus,
                )
                taken = True
                return await asked.result(), True
        except WorkflowUpdateFailedError as exc:
            if isinstance(exc.cause, ApplicationError) and exc.cause.message == STOPPED:
                raise TaskStateError(stopped(task_id)) from None
        except no_answer.CUT_SHORT:
            # In the run's history (its acceptance's answer maybe cut on its way): the check
            # is made without a signal, which would make a second.
            if taken or await updates.accepted(self.client, task_id, update_id):
                return None, True
        # Sent as every control of a task is (a request id of its own: each asks a check).
        try:
            await controls_in_flight.signal_once(
                self.client, task_id, "check_now", str(uuid.uuid4())
            )
        except no_answer.OutOfTime:  # the update before it was sent
            raise no_answer.OutOfTime(sent=True) from None
        return None, False


def silent(task_id: str, did: str | None = None, sent: bool | None = None) -> WorkerSilentError:
    """The silent-worker words every door says (a page, the voice), and what the request did
    (``did`` in words, ``sent`` as data)."""
    said = no_answer.refused_request(no_answer.silent_worker(), task_id)
    return WorkerSilentError(said if did is None else f"{said}; {did}", sent=sent)


@contextlib.contextmanager
def in_time(task_id: str, sent: str) -> Iterator[None]:
    """A request's deadline reached at a call (`no_answer.OutOfTime`): the silent-worker words,
    and ``sent`` when that call (or one before it) may have reached the server, else that
    nothing was sent."""
    try:
        yield
    except no_answer.OutOfTime as exc:
        raise silent(task_id, sent if exc.sent else NOT_SENT, exc.sent) from None


@contextlib.contextmanager
def nothing_sent(task_id: str, unsent: str) -> Iterator[None]:
    """A request that sent nothing yet whose worker was silent or whose time ran out: said
    so (``unsent``, after the silent-worker words)."""
    try:
        yield
    except WorkerSilentError as exc:
        raise WorkerSilentError(f"{exc}; {unsent}", sent=False) from None
    except no_answer.OutOfTime:
        raise silent(task_id, unsent, False) from None
