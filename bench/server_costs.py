"""Benchmark: what one heartbeat and one hand-back cost the Temporal dev server.

    python -m bench.server_costs --n 500 --seconds 60

A watch's long poll costs the server two things while it runs: the heartbeats it takes
(one every 0.8 x the heartbeat timeout) and the hand-back at the end of each poll (the
activity's completion, a workflow task, the next poll's schedule and start). Both are
measured here with activities that do nothing else, on the embedded dev server (SQLite
file), each phase against the idle server measured just before it:

- ``heartbeat``: N workflows each run one activity that heartbeats every 0.2 s with a
  2.5 s timeout (the server takes one every 2 s: N / 2 per second);
- ``hold``: the same with a 10-minute timeout: no heartbeat reaches the server inside the
  window, so this is what N open activities cost it (per activity, over the window);
- ``handback``: N workflows each run activities of 2 s one after the other (N / 2
  hand-backs per second).

Server ms per operation = (server CPU over the window - idle rate x window) / operations;
the operations: activities completed, counted by the workers; heartbeats the server answered,
worked out from the heartbeat throttle over the window (no counter counts them).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    from bench.measure import process_cpu
    from bench.stack import QUEUE, bench_stack

BEAT_EVERY = 0.2
BEAT_TIMEOUT = 2.5  # the server takes one heartbeat every 0.8 x 2.5 = 2 s
HOLD_TIMEOUT = 600.0
HANDBACK_SECONDS = 2.0
IDLE_SECONDS = 15.0
COUNT = {"beats": 0, "handbacks": 0}


@activity.defn(name="bench_beat")
async def beat(seconds: float) -> None:
    """Heartbeat all along (the SDK sends one every 0.8 x the timeout)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        activity.heartbeat()
        await asyncio.sleep(BEAT_EVERY)


@activity.defn(name="bench_handback")
async def handback(seconds: float) -> None:
    await asyncio.sleep(seconds)
    COUNT["handbacks"] += 1


@workflow.defn(name="BenchServerCost")
class ServerCostWorkflow:
    @workflow.run
    async def run(self, kind: str, seconds: float) -> None:
        if kind in ("heartbeat", "hold"):
            # hold: a 10-minute timeout, so inside the window the server takes no heartbeat
            # and only keeps the activities open.
            timeout = BEAT_TIMEOUT if kind == "heartbeat" else HOLD_TIMEOUT
            await workflow.execute_activity(
                beat,
                seconds,
                start_to_close_timeout=timedelta(seconds=seconds + 60),
                heartbeat_timeout=timedelta(seconds=timeout),
            )
            return
        end = workflow.now() + timedelta(seconds=seconds)
        while workflow.now() < end:
            await workflow.execute_activity(
                handback, HANDBACK_SECONDS, start_to_close_timeout=timedelta(seconds=60)
            )


async def phase(
    client: Client, server_pid: int, kind: str, n: int, seconds: float, ramp: float
) -> str:
    idle0, t0 = process_cpu(server_pid), time.monotonic()
    await asyncio.sleep(IDLE_SECONDS)
    idle = (process_cpu(server_pid) - idle0) / (time.monotonic() - t0)
    run = seconds + ramp + 10  # ramp-up and ramp-down fall outside the measured window
    run_id = uuid.uuid4().hex[:8]
    handles = await asyncio.gather(
        *(
            client.start_workflow(
                ServerCostWorkflow.run, args=[kind, run], id=f"cost-{run_id}-{i}", task_queue=QUEUE
            )
            for i in range(n)
        )
    )
    await asyncio.sleep(ramp)
    c0, t0, h0 = process_cpu(server_pid), time.monotonic(), COUNT["handbacks"]
    await asyncio.sleep(seconds)
    c1, t1, h1 = process_cpu(server_pid), time.monotonic(), COUNT["handbacks"]
    await asyncio.gather(*(h.result() for h in handles), return_exceptions=True)
    window = t1 - t0
    # Heartbeats the server took: one per activity every 0.8 x timeout (the SDK's throttle).
    operations = {
        "heartbeat": n * window / (0.8 * BEAT_TIMEOUT),
        "hold": n,  # per open activity, over the window
        "handback": h1 - h0,
    }[kind]
    ms = 1000 * (c1 - c0 - idle * window) / max(operations, 1)
    return (
        f"| {kind} | {n} | {window:.0f} | {operations / window:.1f} | {1000 * idle:.1f} | "
        f"{1000 * (c1 - c0) / window:.1f} | **{ms:.2f}** |"
    )


async def main(n: int, seconds: float, ramp: float, kinds: list[str]) -> None:
    async with bench_stack("ambient-server-costs-") as stack:
        async with Worker(
            stack.client,
            task_queue=QUEUE,
            workflows=[ServerCostWorkflow],
            activities=[beat, handback],
            max_concurrent_activities=n + 10,
            max_heartbeat_throttle_interval=timedelta(hours=1),
        ):
            for kind in kinds:
                print(
                    await phase(stack.client, stack.server_pid, kind, n, seconds, ramp), flush=True
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--ramp", type=float, default=30.0, help="seconds before the window")
    parser.add_argument("--kinds", nargs="+", default=["heartbeat", "hold", "handback"])
    args = parser.parse_args()
    print(f"`python -m bench.server_costs {' '.join(sys.argv[1:])}`\n")
    print("| operation | N | window s | per s | idle server ms/s | server ms/s | server ms each |")
    print("|---|---|---|---|---|---|---|")
    asyncio.run(main(args.n, args.seconds, args.ramp, args.kinds))
