"""DeliverLaterWorkflow — `deliver-later/{user}/{key}`: a notification whose receiver said "try
again later" (a greylisting mail server's 451, HTTP 429 or 503 with a long Retry-After),
retried by Temporal until delivered or given up.

The notify activity hands it over (activities/deliver_later.py) and its caller goes on at once: a
watch keeps checking, a briefing keeps answering. Here the first try waits as long as the
receiver asked; each try's "later" answer sets the next one's delay (``next_retry_delay``),
else the retry policy backs off; no try starts past the give-up (``schedule_to_close``).
Every try goes through the delivery rows' leases, so nothing is sent twice, however many
tries and workers there were (docs/notifications.md, "Deliver later").
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, CancelledError, RetryState
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from activities.notify import NotifyActivities
    from ambient.domain.deliver_later import (
        DELIVER_LATER_TYPE,
        LATER_MAX_WAIT,
        LaterDelivery,
        LaterOutcome,
    )
    from ambient.domain.notify import NOTIFY_TIMEOUT
    from ambient.remediation.safety import a_while

from workflows.sends import NOTIFY_HEARTBEAT, failure_lines, short_activity


@workflow.defn(name=DELIVER_LATER_TYPE)
class DeliverLaterWorkflow:
    @workflow.run
    async def run(self, later: LaterDelivery) -> LaterOutcome:
        """Wait as the receiver asked, then try until delivered or the give-up passes."""
        try:
            return await self._deliver(later)
        except (asyncio.CancelledError, ActivityError):
            # Cancelled while it waited or while a try ran (the only ActivityError let out), as
            # an operator stopping its retries: its deliveries are said given up, as a run that
            # gives up says them.
            with contextlib.suppress(ActivityError):
                await short_activity(
                    NotifyActivities.notify_given_up, later.request, _said(later, "given up")
                )
            raise

    async def _deliver(self, later: LaterDelivery) -> LaterOutcome:
        wait = timedelta(seconds=later.wait)
        workflow.set_current_details(f"waiting {later.wait:g} s, as the receiver asked")
        await workflow.sleep(wait, summary=_said(later, "the wait its receiver asked for"))
        workflow.set_current_details("trying again")
        try:
            result = await workflow.execute_activity_method(
                NotifyActivities.notify_later,
                later.request,
                start_to_close_timeout=NOTIFY_TIMEOUT,
                heartbeat_timeout=NOTIFY_HEARTBEAT,
                # Cancelled, the run says its deliveries given up once the try has ended (its
                # row settled or left in flight), not while it still sends.
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                # No try starts after the give-up; one started before it has its whole time
                # (cut off mid-send, a message taken would be said lost).
                schedule_to_close_timeout=(
                    max(timedelta(seconds=later.give_up_after) - wait, timedelta(0))
                    + NOTIFY_TIMEOUT
                ),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=later.backoff),
                    maximum_interval=LATER_MAX_WAIT,
                    maximum_attempts=0,  # bounded by the give-up instead
                ),
                summary=_said(
                    later,
                    f"tried until sent, given up {a_while(timedelta(seconds=later.give_up_after))}"
                    " after the hand-over",
                ),
            )
        except ActivityError as error:
            if isinstance(error.cause, CancelledError):
                raise
            if error.retry_state == RetryState.CANCEL_REQUESTED:
                # Cancelled while a try was at the receiver, which answered "later" before the
                # try heard the cancel: Temporal tries no more, a cancel, not a give-up.
                raise asyncio.CancelledError from error  # said given up by `run`
            # Given up: each delivery left unsettled says so once, with its last answer.
            with contextlib.suppress(ActivityError):
                await short_activity(
                    NotifyActivities.notify_given_up, later.request, _said(later, "given up")
                )
            return LaterOutcome(gave_up=True, failures=failure_lines(error))
        return LaterOutcome(failures=result.failure_lines())


def _said(later: LaterDelivery, what: str) -> str:
    """A step of the delivery as the Web UI labels it: "notify alice again: …"."""
    return f"notify {later.request.user} again: {what}"
