"""Controls every watch shares: pause, resume, check now, stop — as workflow state."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from ambient.domain.events import RecordEventInput
    from ambient.domain.notify import Message, NotificationKind, NotifyRequest, NotifyResult, Target
    from ambient.domain.watches import TaskKind, TaskState
    from ambient.temporal import KIND, STATE, USER

SHORT = timedelta(seconds=30)
FIRST_CHECK_JITTER = timedelta(seconds=60)
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
    """The loop every watch runs, and the signals that steer it.

    Signals only change state; the loop acts on them (native pause is pre-release).
    Subclasses set KIND, user, task, config (with `interval`), state (with `checks`,
    `paused`) and implement `check()` and `continued()`.
    """

    KIND: TaskKind
    user: str
    task: str
    config: Any
    state: Any

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

    def current_state(self) -> TaskState:
        if self.stop_requested:
            return TaskState.STOPPED
        return TaskState.PAUSED if self.paused else TaskState.ACTIVE

    async def check(self) -> None:
        raise NotImplementedError

    def continued(self) -> BaseModel:
        """The input of the next run after continue-as-new, carrying the state."""
        raise NotImplementedError

    async def run_watch(self) -> None:
        """Check every interval until stopped; continue-as-new when Temporal suggests it."""
        workflow.upsert_search_attributes(
            [
                KIND.value_set(self.KIND.value),
                USER.value_set(self.user),
                STATE.value_set(self.current_state().value),
            ]
        )
        if self.state.checks == 0:
            # Spread first checks so a burst of new (or restarted) watches does not fire at once.
            jitter = workflow.random().uniform(0, FIRST_CHECK_JITTER.total_seconds())
            jitter = min(jitter, self.config.interval.total_seconds())
            await self.sleep_until_next(timedelta(seconds=jitter))
        while not self.stop_requested:
            if self.due():
                self.check_requested = False
                await self.check()
            await self.flush_control_events(self.user, self.task)
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                self.state.paused = self.paused
                workflow.continue_as_new(self.continued())
            if not self.stop_requested:
                await self.sleep_until_next(self.config.interval)
        await self.flush_control_events(self.user, self.task)
        workflow.upsert_search_attributes([STATE.value_set(TaskState.STOPPED.value)])
        await announce(
            user=self.user,
            task=self.task,
            kind="watch.stopped",
            key=f"{self.task}/stopped",
            payload={"checks": self.state.checks},
        )

    async def record_failure(
        self,
        counters: Any,
        error: str | None,
        threshold: int,
        key: str,
        payload: dict[str, Any],
        message: Message,
        targets: list[Target],
    ) -> None:
        """Count a failed check; after ``threshold`` in a row say "failing", once."""
        counters.failures += 1
        counters.last_error = error
        if counters.failures >= threshold and not counters.failing:
            counters.failing = True
            await announce(
                user=self.user,
                task=self.task,
                kind="watch.failing",
                key=f"{key}/failing",
                payload=payload,
                message=message,
                targets=targets,
            )

    async def record_success(
        self,
        counters: Any,
        key: str,
        payload: dict[str, Any],
        message: Message,
        targets: list[Target],
    ) -> None:
        """A check worked: say "recovered" once if it was failing, and reset the count."""
        if counters.failing:
            await announce(
                user=self.user,
                task=self.task,
                kind="watch.recovered",
                key=f"{key}/recovered",
                payload=payload,
                message=message,
                targets=targets,
            )
        counters.failures, counters.failing, counters.last_error = 0, False, None

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
