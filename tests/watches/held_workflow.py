"""A watch's controls and status, each control followed by a slow local activity."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ambient.temporal import STATE
    from ambient.watches.models import TaskKind, TaskState, TaskStatus

HOLD_ACTIVITY = "hold_the_workflow_task"


@workflow.defn(name="HeldControlsWatch")
class HeldControlsWatch:
    """Each control is followed by a slow local activity, as a watch's own short local work,
    slow at that moment, holds the workflow task (and every query waits for it)."""

    def __init__(self) -> None:
        self.task = ""
        self.user = ""
        self.state = TaskState.ACTIVE
        self.controls: list[str] = []
        self.held = 0

    @workflow.run
    async def run(self, task: str, user: str) -> None:
        self.task, self.user = task, user
        while True:
            await workflow.wait_condition(lambda: len(self.controls) > self.held)
            self.held += 1
            await workflow.execute_local_activity(
                HOLD_ACTIVITY, start_to_close_timeout=timedelta(seconds=60)
            )

    def control(self, name: str, state: TaskState | None) -> None:
        self.controls.append(name)
        if state is not None:  # as a watch's handler does: its state is read off the run
            workflow.upsert_search_attributes([STATE.value_set(state.value)])
        self.state = state or self.state

    @workflow.signal
    def pause(self) -> None:
        self.control("pause", TaskState.PAUSED)

    @workflow.signal
    def resume(self) -> None:
        self.control("resume", TaskState.ACTIVE)

    @workflow.signal
    def check_now(self) -> None:
        self.control("check_now", None)

    @workflow.query
    def status(self) -> TaskStatus:
        return TaskStatus(
            task_id=self.task,
            kind=TaskKind.THRESHOLD_WATCH,
            user=self.user,
            state=self.state,
            checks=0,
            config={},
            detail={"controls": list(self.controls)},
        )
