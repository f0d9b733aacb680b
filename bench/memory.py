"""Benchmark: worker memory a watch, and CPU per check, with the polls open.

    python -m bench.memory --watches 3000 --interval 300 --window 300 --against main

On the embedded stack (bench/stack.py: Temporal dev server on a SQLite file, the page server
of ``bench.site``; the worker in the measuring process, with the product's settings and any
``AMBIENT_*`` variables), one run:

1. measures the worker's RSS with no watch (after a collection);
2. creates ``--watches`` web monitors at ``--interval`` in awaited batches of 20 and waits
   until every page was fetched once (its baseline), then ``--settle`` seconds, so the
   baseline polls have handed back and the long polls are open (printed: the seconds from
   the first start to the last baseline, the starts that failed, the watches given up);
3. measures RSS again ("running") and, over ``--window`` seconds, the CPU of the worker
   (``time.process_time``) and of the server (``/proc``) per check (fetches the page server
   saw). A 5-minute watch hands back once an hour and its first poll lasts a random part of
   that (the workflow spreads them), so any window sees about one hand-back per 12 checks:
   the replay a workflow that is not cached needs is in the figure.

``--against REF`` runs the same command on a temporary git worktree of REF (the baseline)
and on this tree at the same time, each in its own process (so both see the machine's same
load), and prints both rows and the ratio. Creation is paced by ``--in-flight`` watches
awaiting their baseline; one that never takes it is given up after ``--stall`` seconds.
``--pages changing`` gives every watch a page that changes at every fetch (``bench.site``'s
``/changing/``: every check extracts, diffs, stores a snapshot and reports a change; the
default ``page`` answers 304 after the first fetch), and ``--keywords WORD ...`` a keyword
filter on every watch ("update" hits every changing page: a hit and an inbox message a check).
``--trace K`` runs one tree under ``tracemalloc`` (slow; nothing is traced by default) and
prints the K largest allocation sites, by line and by file, in KB a watch, and the Python
heap against the RSS increase (what is left is native: Temporal core, the allocator).
The RSS before is read after glibc's ``malloc_trim(0)`` (as the worker's trim every minute
leaves it: what starting freed is not the worker's); the running RSS after a full collection
(Python's garbage collected: a little under what the worker holds between its collections)
and after a trim ("trimmed": what the C allocator held free, not live, given back): the
worker's RSS is between the two.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import httpx

RESULT = "RESULT "
CREATE_BATCH = 20
HEADER = (
    "| tree | watches | RSS MB before → running (trimmed) | KB a watch | KB trimmed | "
    "checks/s (asked) | worker ms/check | server ms/check | all-in ms/check |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


def malloc_trim() -> None:
    """What the C allocator holds free, given back (glibc; the worker does it every minute)."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)


def pymalloc_mb() -> tuple[float, float]:
    """Python's small-object allocator: MB of its arenas (in the RSS once touched) and MB of
    them in live blocks (the rest is held free, among live ones: an arena goes back to the
    system only when all of it is free). Read from ``sys._debugmallocstats`` (stderr)."""
    stats: dict[str, int] = {}
    with tempfile.TemporaryFile() as out:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(out.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        for line in out.read().decode(errors="replace").splitlines():
            if line.startswith("# ") and "=" in line:
                name, value = line[2:].split("=", 1)
                stats[name.strip()] = int(value.strip().replace(",", ""))
    arenas = stats.get("arenas allocated current", 0) * 2**20  # 1 MiB arenas (3.10+)
    return arenas / 2**20, stats.get("bytes in allocated blocks", 0) / 2**20


def heap_line(tree: str, r: dict[str, Any]) -> str:
    """Where the running RSS's growth is: Python's arenas (live blocks), SQLite, the rest."""
    if "arenas_running" not in r:
        return f"{tree}: (no heap split)"
    n = r["watches"]
    arenas = r["arenas_running"] - r["arenas_before"]
    live = r["blocks_running"] - r["blocks_before"]
    sqlite = r["sqlite_running"] - r["sqlite_before"]
    rest = r["rss_trimmed"] - r["rss_before"] - arenas - sqlite
    return (
        f"{tree}: KB a watch of the trimmed growth: Python arenas {1024 * arenas / n:.1f} "
        f"(live blocks {1024 * live / n:.1f}, held free {1024 * (arenas - live) / n:.1f}), "
        f"SQLite {1024 * sqlite / n:.1f}, the rest (native: Temporal core, glibc) "
        f"{1024 * rest / n:.1f}"
    )


def row(tree: str, r: dict[str, Any]) -> str:
    n = r["watches"]
    return (
        f"| {tree} | {n} | {r['rss_before']:.0f} → {r['rss_running']:.0f} "
        f"({r['rss_trimmed']:.0f}) | {r['kb_per_watch']:.1f} | {r['kb_trimmed']:.1f} | "
        f"{r['checks'] / r['seconds']:.2f} "
        f"({n / r['interval']:.2f}) | {r['worker_ms']:.2f} | {r['server_ms']:.2f} | "
        f"{r['worker_ms'] + r['server_ms']:.2f} |"
    )


def creation(tree: str, r: dict[str, Any]) -> str:
    """How the run's watches came up: seconds from the first start to the last baseline."""
    return (
        f"{tree}: {r['watches']} baselines in {r['created_s']:.0f} s "
        f"({r['watches'] / r['created_s']:.1f} watches/s), {r['failed']} failed starts, "
        f"{r['no_baseline']} without a baseline"
    )


async def site_stats(site: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    """The page server's counts; a loaded machine may drop a kept-alive connection: again."""
    for attempt in range(5):
        try:
            found: dict[str, Any] = (await site.get("/stats", params=params)).json()
            return found
        except httpx.TransportError:
            if attempt == 4:
                raise
            await asyncio.sleep(1)
    raise AssertionError("unreachable")


def pages_prefix(args: argparse.Namespace) -> str:
    """The path prefix of the run's pages on the page server."""
    return f"/{args.pages}/c-"


async def start_watches(
    client: Any, base: str, first: int, count: int, args: argparse.Namespace
) -> int:
    """Start watches ``first``..``first + count`` at once; the starts that failed. (Here, not
    ``bench.creation``'s: with ``--against`` the baseline tree's modules are imported.)"""
    from temporalio.exceptions import WorkflowAlreadyStartedError

    from ambient.watches.configs import WebMonitorConfig
    from ambient.watches.models import WebMonitorInput
    from bench.stack import QUEUE

    prefix = f"{base}{pages_prefix(args)}"
    config = WebMonitorConfig.model_validate(
        {
            "urls": [f"{prefix}{first}"],
            "check_interval_minutes": args.interval / 60,
            "keywords": args.keywords,
        }
    )
    results = await asyncio.gather(
        *(
            client.start_workflow(
                "WebMonitorWorkflow",
                WebMonitorInput(
                    user="bench",
                    task=f"bench-create/{i}",
                    config=config.model_copy(update={"urls": [f"{prefix}{i}"]}),
                ),
                id=f"bench-create/{i}",
                task_queue=QUEUE,
            )
            for i in range(first, first + count)
        ),
        return_exceptions=True,
    )
    return sum(
        isinstance(r, BaseException) and not isinstance(r, WorkflowAlreadyStartedError)
        for r in results
    )


async def create(
    client: Any, site: httpx.AsyncClient, base: str, args: argparse.Namespace
) -> tuple[int, int]:
    """Start the watches in small batches, at most ``--in-flight`` of them waiting for their
    baseline (on a loaded machine a burst of new workflows makes their first tasks time out
    and retry, and creation stalls); returns the failed starts and the baselines taken. A
    watch whose baseline does not come within ``--stall`` seconds of the last one is given up
    (counted), so one stuck workflow does not hold the run."""
    started = failed = 0
    last, progress = -1, time.monotonic()
    while True:
        baselines = (await site_stats(site, prefix=pages_prefix(args)))["paths"]
        if baselines != last:
            last, progress = baselines, time.monotonic()
        done = started == args.watches
        if done and (baselines >= started - failed or time.monotonic() - progress > args.stall):
            return failed, baselines
        if not done and started - failed - baselines < args.in_flight:
            count = min(CREATE_BATCH, args.watches - started)
            failed += await start_watches(client, base, started, count, args)
            started += count
        else:
            await asyncio.sleep(0.5)


async def one_run(args: argparse.Namespace) -> dict[str, Any]:
    # Imported here: with --against, the baseline's process imports them from its own tree.
    import worker
    from bench.measure import TRACE_FRAMES, print_trace, process_cpu, rss_mb, sqlite_mb
    from bench.stack import QUEUE, bench_stack
    from worker import build_worker

    # What run_worker starts beside the worker (a baseline tree may not have it).
    release = getattr(worker, "release_free_memory", None)
    async with bench_stack("ambient-memory-") as stack:
        async with build_worker(stack.client, stack.deps, task_queue=QUEUE):
            trimmer = asyncio.create_task(release()) if release is not None else None
            await asyncio.sleep(5)  # the worker's pollers and caches up
            # Measured as the worker's own trim leaves it: what starting freed (tens of MB
            # after an import spike) is not the worker's, and the polls would reuse it.
            gc.collect()
            malloc_trim()
            before = rss_mb()
            arenas_before, blocks_before = pymalloc_mb()
            sqlite_before = sqlite_mb()
            if args.trace:
                tracemalloc.start(TRACE_FRAMES)
            c0 = time.monotonic()
            failed, baselines = await create(stack.client, stack.site, stack.site_url, args)
            created_s = time.monotonic() - c0
            await asyncio.sleep(args.settle)
            gc.collect()
            running = rss_mb()
            malloc_trim()  # every minute in the worker: between this and ``running``
            trimmed = rss_mb()
            arenas_running, blocks_running = pymalloc_mb()
            sqlite_running = sqlite_mb()
            snapshot = tracemalloc.take_snapshot() if args.trace else None
            tracemalloc.stop()
            w0, s0, t0 = time.process_time(), process_cpu(stack.server_pid), time.time()
            await asyncio.sleep(args.window)
            w1, s1, t1 = time.process_time(), process_cpu(stack.server_pid), time.time()
            if trimmer is not None:
                trimmer.cancel()
            window = await site_stats(
                stack.site, prefix=pages_prefix(args), since=str(t0), until=str(t1)
            )
            checks = window["fetches"]
            n = baselines  # the watches running: past their baseline
            if snapshot is not None:
                print_trace(snapshot, n, args.trace, 1024 * (running - before))
            return {
                "watches": n,
                "failed": failed,
                "no_baseline": args.watches - failed - baselines,
                "created_s": created_s,
                "interval": args.interval,
                "rss_before": before,
                "rss_running": running,
                "rss_trimmed": trimmed,
                "arenas_before": arenas_before,
                "blocks_before": blocks_before,
                "sqlite_before": sqlite_before,
                "arenas_running": arenas_running,
                "blocks_running": blocks_running,
                "sqlite_running": sqlite_running,
                "kb_per_watch": 1024 * (running - before) / n,
                "kb_trimmed": 1024 * (trimmed - before) / n,
                "seconds": t1 - t0,
                "checks": checks,
                "worker_ms": 1000 * (w1 - w0) / checks if checks else float("nan"),
                "server_ms": 1000 * (s1 - s0) / checks if checks else float("nan"),
            }


def start_in(tree: Path, argv: list[str], log: Path) -> subprocess.Popen[str]:
    """This file's run, in its own process, importing the product from ``tree``."""
    code = (
        "import runpy, sys; sys.argv = sys.argv[1:]; "
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, "-c", code, __file__, *argv, "--one"]
    # Its output (with Temporal core's warnings) goes to a file: read once it is done.
    out = log.open("w")
    return subprocess.Popen(command, cwd=tree, env=env, stdout=out, stderr=out, text=True)


def result_of(run: subprocess.Popen[str], tree: Path, log: Path) -> dict[str, Any]:
    run.wait()
    result = None
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith(RESULT):
            result = json.loads(line.removeprefix(RESULT))
    if result is None:
        tail = log.read_text()[-4000:]
        raise RuntimeError(f"the run in {tree} failed:\n{tail}")
    return dict(result)


def compare(ref: str, argv: list[str]) -> None:
    """Both trees at once, so both see the machine's same load."""
    here = Path(__file__).resolve().parents[1]
    scratch = Path(tempfile.mkdtemp(prefix="ambient-memory-base-"))
    base, logs = scratch / "tree", (scratch / "base.log", scratch / "this.log")
    git = ["git", "-C", str(here), "worktree"]
    subprocess.run([*git, "add", "--detach", str(base), ref], check=True)
    try:
        runs = [start_in(base, argv, logs[0]), start_in(here, argv, logs[1])]
        before, after = result_of(runs[0], base, logs[0]), result_of(runs[1], here, logs[1])
    finally:
        for run in runs:
            run.kill()
        subprocess.run([*git, "remove", "--force", str(base)], check=False)
        shutil.rmtree(scratch, ignore_errors=True)
    print(HEADER)
    print(row(ref, before))
    print(row("this tree", after))
    ratio = {
        key: after[key] / before[key] if before[key] else float("nan")
        for key in ("kb_per_watch", "kb_trimmed", "worker_ms", "server_ms")
    }
    all_in = (after["worker_ms"] + after["server_ms"]) / (before["worker_ms"] + before["server_ms"])
    print(
        f"| ratio | | | {ratio['kb_per_watch']:.2f} | {ratio['kb_trimmed']:.2f} | | "
        f"{ratio['worker_ms']:.2f} | "
        f"{ratio['server_ms']:.2f} | {all_in:.2f} |"
    )
    print(f"\n{creation(ref, before)}\n{creation('this tree', after)}")
    print(f"\n{heap_line(ref, before)}\n{heap_line('this tree', after)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--watches", type=int, default=3000)
    parser.add_argument("--interval", type=float, default=300.0, help="the watches' interval, s")
    parser.add_argument("--settle", type=float, default=60.0, help="s after the last baseline")
    parser.add_argument("--stall", type=float, default=300.0, help="s without a baseline")
    parser.add_argument("--in-flight", type=int, default=100, help="watches awaiting baseline")
    parser.add_argument("--window", type=float, default=300.0, help="s of CPU measured")
    parser.add_argument(
        "--pages",
        choices=["page", "changing", "same"],
        default="page",
        help="page: 304 after the first fetch; changing: a new page every fetch; same: the "
        "same body, no validators",
    )
    parser.add_argument(
        "--keywords", nargs="+", default=[], help="a keyword filter on every watch (e.g. update)"
    )
    parser.add_argument("--trace", type=int, default=0, help="print the K largest allocations")
    parser.add_argument("--against", help="a git ref measured beside this tree, as the baseline")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    argv = [a for a in sys.argv[1:] if a != "--one"]
    if args.against:
        at = argv.index("--against")
        print(f"`python -m bench.memory {shlex.join(argv)}`\n", flush=True)
        compare(args.against, argv[:at] + argv[at + 2 :])
        return
    result = asyncio.run(one_run(args))
    if args.one:
        print(RESULT + json.dumps(result), flush=True)
    else:
        print(f"`python -m bench.memory {shlex.join(argv)}`\n\n{HEADER}")
        print(row("this tree", result))
        print(f"\n{creation('this tree', result)}")
        print(f"\n{heap_line('this tree', result)}")


if __name__ == "__main__":
    main()
