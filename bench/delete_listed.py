"""Benchmark: a watch's delete, and the task list read right after it.

    python -m bench.delete_listed --tasks 30 --busy 500

On the embedded stack (``bench_stack``: the Temporal dev server on a SQLite file, the page
server of ``bench.site``, the worker in this process), ``--busy`` web monitors check a page
every minute beside (the worker's other work), and ``--tasks`` more are created through
``TaskService`` (each answered after its first check). Each of those is then deleted through
``TaskService.delete`` and the bench user's task list (``list_tasks``, every page) read at
once. Printed: the delete's p50 / p95 / max in ms, how many lists right after a delete still
showed its task active, and how many deletes answered with a note (not confirmed in time).
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import statistics
import sys
import time

from ambient.briefing.service import BriefingService
from ambient.watches.service import TaskService
from bench.stack import QUEUE, bench_stack
from worker import build_worker

USER = "bench"


async def main(tasks: int, busy: int) -> None:
    async with bench_stack("ambient-delete-") as stack:
        client, deps, base = stack.client, stack.deps, stack.site_url
        service = TaskService(
            client,
            deps.settings,
            deps.db,
            briefings=BriefingService(client, deps.settings, deps.db),
        )
        async with build_worker(client, deps, task_queue=QUEUE):
            every_minute = {"check_interval_minutes": 1}
            for first in range(0, busy, 50):
                await asyncio.gather(
                    *(
                        service.create(
                            USER,
                            "web_monitor",
                            {"urls": [f"{base}/page/busy-{i}"], **every_minute},
                            f"busy-{i}",
                        )
                        for i in range(first, min(first + 50, busy))
                    )
                )
            made = [
                (
                    await service.create(
                        USER, "web_monitor", {"urls": [f"{base}/page/gone-{i}"]}, f"gone-{i}"
                    )
                ).task_id
                for i in range(tasks)
            ]
            seconds: list[float] = []
            shown_active = 0
            notes = 0
            for task_id in made:
                start = time.monotonic()
                answer = await service.delete(USER, task_id)
                seconds.append(time.monotonic() - start)
                notes += answer.note is not None
                listed = {t.task_id: t.state.value for t in await service.list(USER)}
                shown_active += listed.get(task_id, "stopped") != "stopped"
        ms = sorted(1000 * s for s in seconds)
        p95 = ms[max(0, round(0.95 * len(ms)) - 1)]
        print(
            f"| {tasks} deletes, {busy} busy | {statistics.median(ms):.1f} | {p95:.1f} | "
            f"{ms[-1]:.1f} | {shown_active} | {notes} |",
            flush=True,
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=30, help="watches deleted, one at a time")
    parser.add_argument("--busy", type=int, default=0, help="watches checking every minute")
    args = parser.parse_args()
    print(f"`python -m bench.delete_listed {shlex.join(sys.argv[1:])}`\n", flush=True)
    print(
        "| run | delete p50 ms | p95 ms | max ms | listed active right after | with a note |\n"
        "|---|---|---|---|---|---|",
        flush=True,
    )
    asyncio.run(main(args.tasks, args.busy))
