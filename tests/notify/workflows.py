"""Test workflows: one that sends one notification through the (possibly crashing) notify
activity, and a watch's run as a deliver-later try sees it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from ambient.domain.notify import NotifyRequest, NotifyResult
    from ambient.watches.configs import TaskKind, TaskState
    from ambient.watches.models import TaskStatus


@workflow.defn
class SendOnceWorkflow:
    @workflow.run
    async def run(self, request: NotifyRequest) -> NotifyResult:
        return await workflow.execute_activity(
            "notify_under_test",
            request,
            result_type=NotifyResult,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(milliseconds=100), maximum_attempts=5
            ),
        )


@workflow.defn
class SendWithHeartbeatWorkflow:
    """One attempt, a short heartbeat timeout: it completes only if the activity heartbeats."""

    @workflow.run
    async def run(self, request: NotifyRequest) -> NotifyResult:
        return await workflow.execute_activity(
            "notify",
            request,
            result_type=NotifyResult,
            start_to_close_timeout=timedelta(seconds=60),
            heartbeat_timeout=timedelta(seconds=7),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )


@workflow.defn
class StandingWatch:
    """A watch's run as a deliver-later try sees it: running (paused or not) until stopped,
    as its task's delete stops it."""

    def __init__(self) -> None:
        self.stopped = False
        self.config: dict[str, Any] | None = None  # a web monitor's, once configured

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self.stopped)

    @workflow.signal
    def stop(self) -> None:
        self.stopped = True

    @workflow.signal
    def configure(self, config: dict[str, Any]) -> None:
        """The config in force (a create's, then an update's), as its status query says it."""
        self.config = config

    @workflow.query
    def status(self) -> TaskStatus:
        if self.config is None:
            raise ValueError("no status: this run was never configured")
        info = workflow.info()
        return TaskStatus(
            task_id=info.workflow_id,
            kind=TaskKind.WEB_MONITOR,
            user="alice",
            state=TaskState.ACTIVE,
            checks=0,
            config=self.config,
        )
