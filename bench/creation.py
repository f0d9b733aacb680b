"""Benchmark: how fast web monitors are created as more of them run, and where it goes.

    python -m bench.creation --total 20000 --step 2500 --interval 300

On the embedded stack (Temporal dev server on a SQLite file, the worker in this process, the
page server of ``bench.site`` in its own), watches are created in steps of ``--step``. Each
step first measures ``--steady`` seconds of the watches already running (CPU per second of
the worker and the server: the polling the step's figures must not be charged with), then
starts the step's watches in batches of 100 (each batch awaited, so a slow server slows
creation instead of piling up requests) and waits until every one of them has fetched its
page once (its baseline, seen by the page server). Per step:

- watches/s: the step's watches / seconds from its first start to its last baseline;
- server and worker CPU per created watch: CPU over the step minus the steady rate times the
  step's seconds, divided by the step's watches;
- worker RSS after the step (and per running watch).
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import time

import httpx
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError

from ambient.watches.configs import WebMonitorConfig
from ambient.watches.models import WebMonitorInput
from bench.measure import process_cpu, rss_mb
from bench.stack import QUEUE, bench_stack
from bench.watches import BATCH
from worker import build_worker


async def start_step(client: Client, base: str, first: int, count: int, interval: float) -> int:
    """Start watches ``first``..``first + count`` in awaited batches; the starts that failed."""
    config = WebMonitorConfig.model_validate(
        {"urls": [f"{base}/page/c-0"], "check_interval_minutes": interval / 60}
    )
    failed = 0
    for batch in range(first, first + count, BATCH):
        ids = range(batch, min(batch + BATCH, first + count))
        results = await asyncio.gather(
            *(
                client.start_workflow(
                    "WebMonitorWorkflow",
                    WebMonitorInput(
                        user="bench",
                        task=f"bench-create/{i}",
                        config=config.model_copy(update={"urls": [f"{base}/page/c-{i}"]}),
                    ),
                    id=f"bench-create/{i}",
                    task_queue=QUEUE,
                )
                for i in ids
            ),
            return_exceptions=True,
        )
        failed += sum(
            isinstance(r, BaseException) and not isinstance(r, WorkflowAlreadyStartedError)
            for r in results
        )
    return failed


async def baselines(site: httpx.AsyncClient) -> int:
    """How many of the bench's pages were fetched at least once."""
    stats = (await site.get("/stats", params={"prefix": "/page/c-"})).json()
    return int(stats["paths"])


async def until_baselines(site: httpx.AsyncClient, n: int, seconds: float = 3600.0) -> None:
    for _ in range(int(seconds / 0.5)):
        if await baselines(site) >= n:
            return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"{n} baselines not taken in {seconds:g} s")


async def main(total: int, step: int, interval: float, steady: float) -> None:
    async with bench_stack("ambient-creation-") as stack:
        client, server_pid, site, base = stack.client, stack.server_pid, stack.site, stack.site_url
        async with build_worker(client, stack.deps, task_queue=QUEUE):
            print(
                "| running before → after | seconds | watches/s | steady server / worker "
                "ms CPU/s | server ms/watch | worker ms/watch | failed starts | worker "
                "RSS MB (KB/watch) |\n|---|---|---|---|---|---|---|---|",
                flush=True,
            )
            for first in range(0, total, step):
                count = min(step, total - first)
                s0, w0, t0 = process_cpu(server_pid), time.process_time(), time.monotonic()
                await asyncio.sleep(steady)
                span = time.monotonic() - t0
                server_rate = (process_cpu(server_pid) - s0) / span
                worker_rate = (time.process_time() - w0) / span
                s0, w0, t0 = process_cpu(server_pid), time.process_time(), time.monotonic()
                failed = await start_step(client, base, first, count, interval)
                await until_baselines(site, first + count - failed)
                seconds = time.monotonic() - t0
                server_ms = process_cpu(server_pid) - s0 - server_rate * seconds
                worker_ms = time.process_time() - w0 - worker_rate * seconds
                rss = rss_mb()
                print(
                    f"| {first} → {first + count} | {seconds:.1f} | {count / seconds:.1f} | "
                    f"{1000 * server_rate:.0f} / {1000 * worker_rate:.0f} | "
                    f"{1000 * server_ms / count:.1f} | {1000 * worker_ms / count:.1f} | "
                    f"{failed} | {rss:.0f} ({1024 * rss / (first + count):.0f}) |",
                    flush=True,
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--total", type=int, default=20_000)
    parser.add_argument("--step", type=int, default=2_500)
    parser.add_argument("--interval", type=float, default=300.0, help="the watches' interval, s")
    parser.add_argument("--steady", type=float, default=20.0, help="seconds of steady state")
    args = parser.parse_args()
    print(f"`python -m bench.creation {shlex.join(sys.argv[1:])}`\n", flush=True)
    asyncio.run(main(args.total, args.step, args.interval, args.steady))
