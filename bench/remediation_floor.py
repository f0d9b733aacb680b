"""The floor for alert → first action: the same command shape as a remediation's way to its
first change (four local activities, then one regular activity) with no work in any of them."""

from __future__ import annotations

import time
from datetime import timedelta

from temporalio import activity, workflow

ACTED: dict[str, float] = {}


@activity.defn(name="floor_noop")
async def noop(name: str) -> None:
    return None


@activity.defn(name="floor_action")
async def action(name: str) -> None:
    ACTED.setdefault(name, time.monotonic())


@workflow.defn
class RemediationFloorWorkflow:
    @workflow.run
    async def run(self, name: str) -> None:
        for _ in range(4):  # prepare, permission, gates, checkpoint
            await workflow.execute_local_activity(
                noop, name, start_to_close_timeout=timedelta(seconds=30)
            )
        await workflow.execute_activity(action, name, start_to_close_timeout=timedelta(seconds=30))
