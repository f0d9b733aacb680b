"""The floor for watches: the cheapest periodic workflow with the same activity kind as a
watch check — one no-op *local* activity and one timer per iteration."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

COMPLETED = {"count": 0}


@activity.defn(name="local_floor_noop")
async def noop() -> None:
    COMPLETED["count"] += 1


@workflow.defn
class LocalFloorWorkflow:
    def __init__(self) -> None:
        self.stopped = False

    @workflow.signal
    def stop(self) -> None:
        self.stopped = True

    @workflow.run
    async def run(self, interval_seconds: float) -> None:
        # Like a watch: the first iteration at once, the second spread over half an interval.
        spread = workflow.random().uniform(0, min(60.0, interval_seconds / 2))
        first = True
        while not self.stopped:
            await workflow.execute_local_activity(
                noop, start_to_close_timeout=timedelta(seconds=30)
            )
            wait = interval_seconds + (spread if first else 0.0)
            first = False
            try:
                await workflow.wait_condition(lambda: self.stopped, timeout=wait)
            except TimeoutError:
                pass
