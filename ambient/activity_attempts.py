"""An activity as its workflow and its worker see it: the failure a workflow catches when one
fails for good, whether an attempt is its last, and its heartbeat while it runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from temporalio import activity
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as ActivityTimeoutError

# What a workflow catches around an activity that may fail for good. A regular activity's
# failure arrives as ActivityError; a *local* activity's arrives as the ApplicationError it
# failed with (only its timeout comes as ActivityError, and replayed, as a bare TimeoutError:
# not caught, the replay failed the workflow where its run had gone on), and uncaught that fails
# the workflow.
ACTIVITY_FAILED = (ActivityError, ApplicationError, ActivityTimeoutError)


def last_attempt(most_given: int | None) -> bool:
    """Whether this activity attempt is its retry policy's last: no retry follows it.

    The policy as the server sent it with the task; where it sent none (the time-skipping test
    server does not), ``most_given``, the maximum attempts of the policy the caller gave.
    """
    info = activity.info()
    most = info.retry_policy.maximum_attempts if info.retry_policy else most_given
    return most is not None and 0 < most <= info.attempt


# Seconds at most between heartbeats (callers set heartbeat_timeout=30s).
HEARTBEAT_EVERY = 5.0


@contextlib.asynccontextmanager
async def heartbeating() -> AsyncIterator[None]:
    """Heartbeat while the block runs (when inside an activity)."""
    if not activity.in_activity():
        yield
        return

    # Well inside the caller's heartbeat timeout, whatever it is.
    timeout = activity.info().heartbeat_timeout
    every = min(HEARTBEAT_EVERY, timeout.total_seconds() / 3) if timeout else HEARTBEAT_EVERY

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(every)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
