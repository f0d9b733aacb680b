"""The floor: the cheapest periodic workflow — one no-op activity and one timer per iteration."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

COMPLETED = {"count": 0}


@activity.defn
async def noop() -> None:
    COMPLETED["count"] += 1


@workflow.defn
class FloorWorkflow:
    def __init__(self) -> None:
        self.stopped = False

    @workflow.signal
    def stop(self) -> None:
        self.stopped = True

    @workflow.run
    async def run(self, interval_seconds: float) -> None:
        await workflow.sleep(workflow.random().uniform(0, interval_seconds))
        while not self.stopped:
            await workflow.execute_activity(noop, start_to_close_timeout=timedelta(seconds=30))
            try:
                await workflow.wait_condition(lambda: self.stopped, timeout=interval_seconds)
            except TimeoutError:
                pass
