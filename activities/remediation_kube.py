"""Remediation activities' Kubernetes calls bounded by the activity's time; errors for Temporal."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from ambient.clients.kube_errors import KubeError, KubeUnreachableError
from ambient.remediation.dry_run import first_read_try, tried_again
from ambient.remediation.ladder import Checkpoint, RemediationExecutor, WorkloadRef
from ambient.remediation.runs import CHANGE_RETRY, CheckpointInput, sent_after

# The longest a change waits between its tries (a throttled API server may ask for more).
CHANGE_LONGEST_WAIT = CHANGE_RETRY.maximum_interval or timedelta(seconds=30)

T = TypeVar("T")

# Seconds of an activity's time left when its Kubernetes calls are given up: an API server
# answering slowly (each answer within lightkube's 10 s, several of them a checkpoint) ran the
# activity out of time first, and the run said "activity StartToClose timeout", nothing of
# which cluster did not answer; a step's time set below 10 s did so at its first slow answer.
# At most a fifth of a short activity's time (a step's may be set down to 1 s).
KUBE_CALL_MARGIN = 5.0


def kube_call_time() -> float | None:
    """How long this activity's Kubernetes calls may take (None: no bound of the activity's)."""
    limit = activity.info().start_to_close_timeout if activity.in_activity() else None
    if limit is None:
        return None
    return limit.total_seconds() - min(KUBE_CALL_MARGIN, limit.total_seconds() / 5)


async def translated(work: Awaitable[T], target: WorkloadRef, bounded: bool = True) -> T:
    """Kubernetes errors as Temporal sees them: retry what may pass later, not the rest; the
    reads ``bounded`` by the activity's time."""
    within = kube_call_time() if bounded else None
    try:
        async with asyncio.timeout(within) as bound:
            return await work
    except TimeoutError:
        if not bound.expired():
            raise
        # Retried as an unreachable server is (reads only: nothing was changed).
        raise KubeUnreachableError(
            f"cluster {target.cluster_id}: its API server did not answer within {within:.3g} s "
            "(slow or overloaded)"
        ) from None
    except KubeError as exc:
        if exc.retryable and bounded and exc.retry_after:
            # A read a throttled API server asked to wait for (a 429's Retry-After): waited,
            # as a change waits, not the policy's shorter backoff (the checkpoint read before a
            # change was tried again 2 and 4 s on, asked 20).
            wait = min(timedelta(seconds=exc.retry_after), CHANGE_LONGEST_WAIT)
            raise ApplicationError(
                str(exc), type=type(exc).__name__, next_retry_delay=wait
            ) from exc
        if exc.retryable:
            raise
        raise ApplicationError(str(exc), type="InvalidStep", non_retryable=True) from exc


async def read_before_asking(executor: RemediationExecutor, request: CheckpointInput) -> Checkpoint:
    """The workload read before a rung asks for its approval, with what the rung's change would
    do now: its own plan and answer in the run's mode, none of its writes (``unsent``; a dry run
    without a cluster: planned from the alert, as its change). A read or plan failing for good
    is what the read met (``plan_failed``): the rung asks as before."""
    assert request.asking is not None and request.policy is not None
    target, checkpoint = request.target, None
    try:
        checkpoint = await translated(executor.checkpoint(target), target)
        step = sent_after(request.asking, checkpoint, request.policy)
        unsent = executor.apply(step.model_copy(update={"unsent": True}))
        checkpoint.planned = await translated(unsent, target)
    except (KubeError, ApplicationError) as exc:
        retryable = exc.retryable if isinstance(exc, KubeError) else not exc.non_retryable
        if retryable and (first_read_try() or tried_again()):
            raise  # read again by the activity's next try
        if checkpoint is None:
            checkpoint = Checkpoint(
                target=target, revision=None, replicas=None, taken_at=datetime.now(UTC)
            )
            checkpoint.observed = False
        # Worded as the change's own failure is ("change failed: ..." once approved).
        checkpoint.plan_failed = exc.message if isinstance(exc, ApplicationError) else str(exc)
    return checkpoint
