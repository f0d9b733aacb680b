"""Deliver later, the notify activity's side: a delivery whose receiver said "try again
later" handed to a deliver-later run (``DeliverLaterWorkflow``), and when that run's tries
(``notify_later``) are past its give-up (docs/notifications.md, "Deliver later").
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from ambient.domain.deliver_later import DELIVER_LATER_TYPE, LaterDelivery, later_workflow_id
from ambient.domain.notify import Delivery, NotifyRequest

HAND_OVER_RPC = timedelta(seconds=10)  # the start of a deliver-later run, well inside a heartbeat
GIVE_UP_SLACK = timedelta(seconds=5)  # see past_give_up


class HandOver:
    """Hands deliveries to a deliver-later run, with the worker's settings: the give-up and the
    backoff (seconds; no give-up: nothing is handed over)."""

    def __init__(self, give_up: float, backoff: float) -> None:
        self._give_up = give_up
        self._backoff = backoff

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


def past_give_up(info: activity.Info) -> bool:
    """Whether this retry of a deliver-later run's try started after the give-up: its
    schedule-to-close is the give-up plus one try's time (start-to-close), so that a try begun
    before the give-up has its whole time, and Temporal starts any retry due before it ends
    (the server's clock, both times; a retry due at the give-up starts a moment after it, by
    the earlier tries' own time: GIVE_UP_SLACK)."""
    if info.attempt == 1 or info.schedule_to_close_timeout is None:
        return False
    try_time = info.start_to_close_timeout or timedelta(0)
    give_up = info.scheduled_time + info.schedule_to_close_timeout - try_time
    return info.started_time > give_up + GIVE_UP_SLACK
