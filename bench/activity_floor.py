"""Benchmark: what one open activity costs the worker with nothing of ours in it.

    python -m bench.activity_floor --activities 800 --input-bytes 20
    python -m bench.activity_floor --activities 800 --input-bytes 1500 --heartbeat

A web monitor's poll is one long-running activity; this measures the part of its RSS that is
the SDK's and Temporal core's, not the poll's: ``--activities`` workflows (none of them kept
in the sticky cache) each start one activity that takes a dict with a string of
``--input-bytes`` characters, heartbeats once (``--heartbeat``, as a poll does with its
progress) and then waits for good. RSS before (after ``malloc_trim(0)``) and once every
activity runs, also after a trim; KB an activity (docs/benchmarks.md, "Worker memory", round 3).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import shutil
import subprocess
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from bench.devserver import dev_server_command
from bench.measure import rss_mb
from tests.support.servers import free_port

QUEUE = "activity-floor"
BATCH = 50


class Holder:
    """The activity: counts its starts and never ends (the worker's stop cancels it)."""

    def __init__(self) -> None:
        self.started = 0
        self.counted = asyncio.Condition()

    async def until(self, started: int) -> None:
        async with self.counted:
            await self.counted.wait_for(lambda: self.started >= started)

    @activity.defn(name="hold")
    async def hold(self, data: dict[str, Any]) -> None:
        async with self.counted:
            self.started += 1
            self.counted.notify_all()
        if data["heartbeat"]:
            activity.heartbeat({"seq": 1, "urls": {"u": {"hash": "0" * 64}}})
        await asyncio.get_running_loop().create_future()


@workflow.defn(name="Hold")
class HoldWorkflow:
    @workflow.run
    async def run(self, data: dict[str, Any]) -> None:
        await workflow.execute_activity(
            "hold",
            data,
            start_to_close_timeout=timedelta(hours=2),
            heartbeat_timeout=timedelta(hours=1),
        )


def trimmed_rss() -> float:
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    return rss_mb()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    data = Path(tempfile.mkdtemp(prefix="ambient-floor-"))
    port = free_port()
    log = (data / "temporal.log").open("wb")
    server = subprocess.Popen(dev_server_command(data, port), stdout=log, stderr=log)  # noqa: ASYNC220 - one child, started once
    try:
        for _ in range(200):
            try:
                client = await Client.connect(f"127.0.0.1:{port}")
                break
            except RuntimeError:
                await asyncio.sleep(0.3)
        holder = Holder()
        async with Worker(
            client,
            task_queue=QUEUE,
            workflows=[HoldWorkflow],
            activities=[holder.hold],
            workflow_runner=UnsandboxedWorkflowRunner(),
            max_cached_workflows=1,
            max_concurrent_activities=args.activities + 10,
            max_heartbeat_throttle_interval=timedelta(hours=1),
        ):
            await asyncio.sleep(3)
            before = trimmed_rss()
            payload = {"blob": "x" * args.input_bytes, "heartbeat": args.heartbeat}
            for first in range(0, args.activities, BATCH):
                count = min(BATCH, args.activities - first)
                await asyncio.gather(
                    *(
                        client.start_workflow(
                            "Hold", payload, id=f"floor-{uuid.uuid4().hex}", task_queue=QUEUE
                        )
                        for _ in range(count)
                    )
                )
                await holder.until(first + count // 2)
            await holder.until(args.activities)
            await asyncio.sleep(10)  # heartbeats sent, tasks settled
            gc.collect()
            running = rss_mb()
            trimmed = trimmed_rss()
            n = args.activities
            return {
                "activities": n,
                "input_bytes": args.input_bytes,
                "heartbeat": args.heartbeat,
                "rss_before": before,
                "rss_running": running,
                "kb_an_activity": 1024 * (running - before) / n,
                "kb_trimmed": 1024 * (trimmed - before) / n,
            }
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--activities", type=int, default=800)
    parser.add_argument("--input-bytes", type=int, default=20)
    parser.add_argument("--heartbeat", action="store_true")
    print(json.dumps(asyncio.run(run(parser.parse_args()))), flush=True)


if __name__ == "__main__":
    main()
