"""Benchmark: what the embedded Temporal server's queue reads cost a workflow's hops.

    python -m bench.temporal_hops --rounds 2

The dev server as ``ambient dev`` starts it (its SQLite file, our pragmas and search attributes),
once with Temporal's default queue reads (each history queue read at most 20 times a second)
and once with ours (``ambient.dev_temporal.TEMPORAL_DYNAMIC_CONFIG``), alternated A B, B A, … so
neither side always runs second. On each server, one worker (no sandbox, nothing of ours):

- ``sequential N``: a workflow of N activities, one after another, started and awaited one at a
  time (``--sequential`` workflows): the median round trip, start to result, in ms;
- ``concurrent``: ``--concurrent`` workflows of three activities, ``--in-flight`` at a time: the
  wall time, and the server's and this process's CPU (user + system) a workflow.

Printed: each side's figures a round, and ours/default as the ratio of the medians over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import psutil
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from ambient.dev_temporal import TEMPORAL_DYNAMIC_CONFIG
from bench.devserver import dev_server_command
from tests.support.servers import free_port

SIDES = ("default", "ours")


@activity.defn
async def hop(n: int) -> int:
    return n + 1


@workflow.defn(sandboxed=False)
class Hops:
    @workflow.run
    async def run(self, activities: int) -> int:
        for n in range(activities):
            await workflow.execute_activity(hop, n, start_to_close_timeout=timedelta(seconds=30))
        return activities


def server_command(data: Path, port: int, side: str) -> list[str]:
    command = dev_server_command(data, port)
    if side == "ours":
        return command
    # Temporal's defaults: the command without our queue reads.
    kept: list[str] = []
    for flag in command:
        if flag in TEMPORAL_DYNAMIC_CONFIG:
            kept.pop()  # its "--dynamic-config-value"
        else:
            kept.append(flag)
    return kept


async def connected(port: int) -> Client:
    deadline = time.monotonic() + 60
    while True:
        try:
            return await Client.connect(f"127.0.0.1:{port}")
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def measure(side: str, args: argparse.Namespace) -> dict[str, float]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="ambient-bench-hops-") as data:
        server = await asyncio.create_subprocess_exec(*server_command(Path(data), port, side))
        try:
            client = await connected(port)
            queue = f"hops-{uuid.uuid4().hex}"
            figures: dict[str, float] = {}
            async with Worker(
                client,
                task_queue=queue,
                workflows=[Hops],
                activities=[hop],
                workflow_runner=UnsandboxedWorkflowRunner(),
            ):

                async def once(activities: int) -> float:
                    start = time.perf_counter()
                    await client.execute_workflow(
                        Hops.run, activities, id=f"hops-{uuid.uuid4().hex}", task_queue=queue
                    )
                    return time.perf_counter() - start

                for _ in range(5):  # warm: the first workflows of a server pay its start
                    await once(1)
                for activities in (0, 1, 3):
                    took = [await once(activities) for _ in range(args.sequential)]
                    figures[f"sequential {activities}"] = 1000 * statistics.median(took)
                process, me = psutil.Process(server.pid), psutil.Process()
                server_before, me_before = cpu(process), cpu(me)
                start = time.perf_counter()
                gate = asyncio.Semaphore(args.in_flight)

                async def gated() -> float:
                    async with gate:
                        return await once(3)

                await asyncio.gather(*(gated() for _ in range(args.concurrent)))
                figures["concurrent wall s"] = time.perf_counter() - start
                figures["server CPU ms a workflow"] = (
                    1000 * (cpu(process) - server_before) / args.concurrent
                )
                figures["worker+client CPU ms a workflow"] = (
                    1000 * (cpu(me) - me_before) / args.concurrent
                )
            return figures
        finally:
            server.terminate()
            await asyncio.wait_for(server.wait(), 30)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="A B then B A pairs, each a round")
    parser.add_argument("--sequential", type=int, default=30)
    parser.add_argument("--concurrent", type=int, default=200)
    parser.add_argument("--in-flight", type=int, default=20)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {side: [] for side in SIDES}
    for round_ in range(args.rounds):
        order = SIDES if round_ % 2 == 0 else tuple(reversed(SIDES))
        for side in order:
            figures = await measure(side, args)
            runs[side].append(figures)
            load = psutil.getloadavg()[0]
            shown = ", ".join(f"{name} {value:.1f}" for name, value in figures.items())
            print(f"round {round_ + 1} {side} (load {load:.1f}): {shown}", flush=True)
    print("\nmedian over the rounds: default | ours | ours/default")
    for name in runs["default"][0]:
        a = statistics.median(run[name] for run in runs["default"])
        b = statistics.median(run[name] for run in runs["ours"])
        print(f"  {name}: {a:.1f} | {b:.1f} | {b / a:.2f}×")


if __name__ == "__main__":
    asyncio.run(main())
