"""Controls every watch shares: pause, resume, check now, stop — as workflow state."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from ambient.domain.events import RecordEventInput
    from ambient.domain.notify import Message, NotificationKind, NotifyRequest, NotifyResult, Target
    from ambient.domain.watches import TaskState
    from ambient.temporal import STATE

SHORT = timedelta(seconds=30)
# Side effects: bounded retries (the default retries forever).
NOTIFY_RETRY = RetryPolicy(maximum_attempts=5, initial_interval=timedelta(seconds=2))


async def announce(
    *,
    user: str,
    task: str,
    kind: str,
    key: str,
    payload: dict[str, Any],
    message: Message | None = None,
    targets: list[Target] | None = None,
) -> None:
    """Record an event and, with a message, notify the targets; both once per key."""
    await workflow.execute_activity(
        "record_event",
        RecordEventInput(kind=kind, user=user, task=task, payload=payload, idempotency_key=key),
        start_to_close_timeout=SHORT,
        retry_policy=NOTIFY_RETRY,
    )
    if message is not None and targets:
        await workflow.execute_activity(
            "notify",
            NotifyRequest(
                user=user,
                message=message.model_copy(update={"kind": NotificationKind.WATCH}),
                targets=targets,
                idempotency_key=key,
            ),
            result_type=NotifyResult,
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=NOTIFY_RETRY,
        )


class WatchControls:
    """Signals that only change state; the main loop acts on them (native pause is pre-release)."""

    def __init__(self) -> None:
        self.paused = False
        self.check_requested = False
        self.stop_requested = False
        self.wake = False
        self.control_events: list[str] = []
        self.control_count = 0

    @workflow.signal
    def pause(self) -> None:
        if not self.paused and not self.stop_requested:
            self.paused, self.wake = True, True
            self.control_events.append("paused")
            workflow.upsert_search_attributes([STATE.value_set(TaskState.PAUSED.value)])

    @workflow.signal
    def resume(self) -> None:
        if self.paused and not self.stop_requested:
            # Resuming checks at once: the next check is due anyway.
            self.paused, self.wake, self.check_requested = False, True, True
            self.control_events.append("resumed")
            workflow.upsert_search_attributes([STATE.value_set(TaskState.ACTIVE.value)])

    @workflow.signal
    def check_now(self) -> None:
        self.check_requested, self.wake = True, True

    @workflow.signal
    def stop(self) -> None:
        self.stop_requested, self.wake = True, True

    async def sleep_until_next(self, interval: timedelta) -> None:
        """Wait out the interval (forever while paused) unless a signal or update wakes us."""
        self.wake = False
        try:
            await workflow.wait_condition(
                lambda: self.wake, timeout=None if self.paused else interval
            )
        except TimeoutError:
            pass

    def due(self) -> bool:
        return self.check_requested or not self.paused

    async def flush_control_events(self, user: str, task: str) -> None:
        events, self.control_events = self.control_events, []
        run_id = workflow.info().run_id
        for name in events:
            self.control_count += 1
            await announce(
                user=user,
                task=task,
                kind=f"watch.{name}",
                key=f"{task}/{run_id}/control/{self.control_count}",
                payload={},
            )
