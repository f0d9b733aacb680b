"""Benchmark: N web monitors against a local site on the embedded stack, and the floor.

    python -m bench.watches --sizes 1000 --interval 60 --window 120 --phases watch changing

For each N the phases run one after the other on the same Temporal dev server (SQLite file)
and worker (the worker runs in this process):

- ``watch``: N web monitors, one URL each, answered with 304 after the first fetch;
- ``same``: the same body every time and no validators (unchanged by hash);
- ``changing``: a ~5 KB page whose text changes on every fetch (text extraction, diff,
  snapshot write, a change event and an inbox notification per check);
- ``floor``: N workflows of one no-op local activity + one timer per iteration.

``--keywords WORD ...`` gives every watch that keyword filter (the issue's case is a filter on
each watch: ``--phases changing same --keywords update`` matches "update" in the changing
page's new headlines, so every changed check is a keyword hit and an inbox message, and the
``same`` phase is the unchanged page with the same filter).

Everything about the watches is measured from outside the workflows, so the figures hold for
any check design. The page server stamps every fetch per path; inside the window:

- checks/s: fetches of the phase's pages / window seconds, against N / interval asked;
- CPU per check: worker (``time.process_time`` of this process) and Temporal server
  (``/proc/<pid>/stat``) over the window, divided by the checks; the API serves no check;
- schedule lag: per page, its fetches after the first (the baseline taken at creation) are
  laid on a fixed-rate grid, anchor = min_j (t_j - j * interval); the lag of the j-th fetch
  is t_j - (anchor + j * interval): a check that drifts or comes late shows as lag;
- history events per check: events inside the window in the histories of ~50 sampled watches
  (all their runs), divided by the fetches of those watches' pages inside the window. On the
  changing page every fetch is a change, so there it is events per reported change;
- worker memory: VmRSS of this process before the phase creates its watches and at the end of
  the window, and the increase per watch; then again after ``gc.collect()`` and glibc's
  ``malloc_trim(0)`` (a note: what is left once the allocator gives back what it holds free,
  as the product's worker does every minute; the next phase starts from there), and what
  SQLite's own allocator holds (the app database's page caches: native, fixed in size per
  connection, part of the RSS).

``--trace K`` traces the Python heap (tracemalloc) from a phase's creation to its window's end
and prints its K largest lines a watch (slow: the CPU figures of a traced run mean nothing).

``--py-spy PY_SPY PREFIX`` samples the worker (this process, every thread) with that py-spy
over each phase's window into ``PREFIX-PHASE-N.txt`` (raw collapsed stacks; py-spy is not a
dependency of the project).

Before the first phase, 15 s with no watches give the stack's idle CPU (worker and server
ms/s): at small N it is a large share of each check, and each phase's notes give its CPU per
check net of it (window CPU minus idle rate x window seconds, over the checks). Results that
come back to the workflow in batches land in history later than their fetches: give the
window several batch periods.
Watches are created in batches of 100 spread over ``--create-over`` seconds (default half an
interval), each batch awaited; stopped (then terminated) in batches of 100 after the window.

The floor has no pages: its checks are counted by the no-op activity, its lag and events come
from its histories (timer due -> local-activity marker), as before.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import math
import os
import shlex
import statistics
import sys
import time
import tracemalloc
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import ValidationError
from sqlalchemy import func, select
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError

from ambient.storage.db import Database
from ambient.storage.models import Event
from ambient.watches.configs import WebMonitorConfig
from ambient.watches.models import WebMonitorInput
from bench.local_floor import COMPLETED, LocalFloorWorkflow, noop
from bench.measure import TRACE_FRAMES, print_trace, process_cpu, rss_mb, sqlite_mb
from bench.stack import QUEUE, bench_stack
from worker import build_worker

PAGES = {"watch": "page", "same": "same", "changing": "changing"}
SAMPLED = 50
BATCH = 100
IDLE_SECONDS = 15.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def grid_lags(stamps: list[float], interval: float, t0: float, t1: float) -> list[float]:
    """Lags of one page's fetches inside [t0, t1) against a fixed-rate grid.

    The first fetch is the baseline taken at creation and is left out; the grid is anchored
    where it lets no later fetch be early: anchor = min_j (t_j - j * interval).
    """
    steady = sorted(stamps)[1:]
    if not steady:
        return []
    anchor = min(t - j * interval for j, t in enumerate(steady))
    return [t - (anchor + j * interval) for j, t in enumerate(steady) if t0 <= t < t1]


@dataclass
class Phase:
    kind: str
    n: int
    interval: float
    seconds: float
    checks: int
    worker_cpu: float
    server_cpu: float
    lags: list[float]
    events_per_check: float
    rss_before: float
    rss_running: float
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.checks / self.seconds

    @property
    def asked(self) -> float:
        return self.n / self.interval

    def cpu_per_check(self, which: str) -> float:
        if not self.checks:
            return float("nan")
        cpu = {"worker": self.worker_cpu, "server": self.server_cpu}.get(
            which, self.worker_cpu + self.server_cpu
        )
        return cpu / self.checks

    def lag(self, q: float) -> float:
        return percentile(self.lags, q)


@dataclass
class Bench:
    client: Client
    server_pid: int
    site: httpx.AsyncClient
    interval: float
    window: float
    create_over: float
    settle: float = 0.0
    keywords: list[str] = field(default_factory=list)
    db: Database | None = None
    idle: tuple[float, float] = (0.0, 0.0)  # the stack's CPU s/s with no watches (worker, server)
    py_spy: list[str] | None = None  # py-spy and the path prefix of its samples (--py-spy)
    trace: int = 0  # print the K largest Python allocations of a phase (--trace)

    async def event_kinds(self, task_prefix: str, t0: datetime, t1: datetime) -> dict[str, int]:
        """Events the watches stored inside the window, by kind (hits show the filter works)."""
        if self.db is None:
            return {}
        query = (
            select(Event.kind, func.count())
            .where(Event.task.startswith(task_prefix), Event.created_at >= t0)
            .where(Event.created_at < t1)
            .group_by(Event.kind)
        )
        async with self.db.session() as session:
            return {kind: count for kind, count in (await session.execute(query)).all()}

    async def stats(self, prefix: str, since: float = -math.inf, until: float = math.inf) -> Any:
        params = {"prefix": prefix, "since": str(since), "until": str(until)}
        return (await self.site.get("/stats", params=params)).json()

    async def fetches(self, prefix: str, until: float) -> dict[str, list[float]]:
        params = {"prefix": prefix, "until": str(until)}
        found: dict[str, list[float]] = (await self.site.get("/fetches", params=params)).json()
        return found


def window_events(events: list[HistoryEvent], t0: datetime, t1: datetime) -> list[HistoryEvent]:
    return [e for e in events if t0 <= e.event_time.ToDatetime().replace(tzinfo=UTC) <= t1]


async def run_events(client: Client, workflow_id: str, t0: datetime) -> list[HistoryEvent]:
    """Events of all runs of a workflow that may reach into the window (newest run first,
    then back along continue-as-new until a run started before the window)."""
    events: list[HistoryEvent] = []
    run_id: str | None = None
    for _ in range(100):
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        events += history.events
        first = history.events[0]
        started = first.event_time.ToDatetime().replace(tzinfo=UTC)
        previous = first.workflow_execution_started_event_attributes.continued_execution_run_id
        if not previous or started <= t0:
            break
        run_id = previous
    return events


async def floor_sample(
    client: Client, ids: list[str], t0: datetime, t1: datetime
) -> tuple[list[float], float]:
    """The floor's schedule lags and history events per iteration, from its histories."""
    lags: list[float] = []
    events = iterations = 0
    for workflow_id in ids:
        due: datetime | None = None
        for event in await run_events(client, workflow_id, t0):
            when = event.event_time.ToDatetime().replace(tzinfo=UTC)
            kind = event.event_type
            if kind == EventType.EVENT_TYPE_TIMER_STARTED:
                timeout = event.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
                due = when + timeout
            if not (t0 <= when <= t1):
                continue
            events += 1
            if (
                kind == EventType.EVENT_TYPE_MARKER_RECORDED
                and event.marker_recorded_event_attributes.marker_name == "core_local_activity"
            ):
                iterations += 1
                if due:
                    lags.append((when - due).total_seconds())
                    due = None
    return lags, events / max(iterations, 1)


async def start_all(bench: Bench, starts: list[tuple[str, Any, Any]]) -> int:
    """Start workflows in batches paced over ``create_over`` seconds; returns the failures.

    Each batch is awaited before the next, so a slow server slows creation down instead of
    piling up requests; a start that timed out is tried again (already started counts).
    """
    batches = max(1, math.ceil(len(starts) / BATCH))
    size = math.ceil(len(starts) / batches)
    began = time.monotonic()
    failures = 0
    for b in range(batches):
        await asyncio.sleep(max(0.0, began + b * bench.create_over / batches - time.monotonic()))
        pending = starts[b * size : (b + 1) * size]
        for _attempt in range(3):
            results = await asyncio.gather(
                *(
                    bench.client.start_workflow(workflow, arg, id=wid, task_queue=QUEUE)
                    for wid, workflow, arg in pending
                ),
                return_exceptions=True,
            )
            pending = [
                start
                for start, result in zip(pending, results, strict=True)
                if isinstance(result, BaseException)
                and not isinstance(result, WorkflowAlreadyStartedError)
            ]
            if not pending:
                break
        failures += len(pending)
    return failures


CONTROLLED = 20  # watches paused at the end of a phase to time the control


async def pause_latency(client: Client, ids: list[str]) -> list[float]:
    """Seconds from each watch's pause signal to its running poll handing back (history)."""
    await asyncio.gather(*(client.get_workflow_handle(i).signal("pause") for i in ids))
    await asyncio.sleep(5)
    latencies = []
    for workflow_id in ids:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        signaled = None
        for event in history.events:
            kind = event.event_type
            if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
                if event.workflow_execution_signaled_event_attributes.signal_name == "pause":
                    signaled = event.event_time.ToDatetime()
            elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED and signaled is not None:
                latencies.append((event.event_time.ToDatetime() - signaled).total_seconds())
                break
    return latencies


async def terminate_all(client: Client, ids: list[str]) -> None:
    """Stop every watch (a stop ends its poll at once; a terminated workflow's poll would go
    on fetching until its next heartbeat tells it), then terminate what is left."""
    # In batches: thousands of requests at once time out on the SQLite dev server.
    for start in range(0, len(ids), BATCH):
        handles = [client.get_workflow_handle(i) for i in ids[start : start + BATCH]]
        await asyncio.gather(*(h.signal("stop") for h in handles), return_exceptions=True)
    await asyncio.sleep(5)
    for start in range(0, len(ids), BATCH):
        handles = [client.get_workflow_handle(i) for i in ids[start : start + BATCH]]
        await asyncio.gather(*(h.terminate("bench done") for h in handles), return_exceptions=True)


def progress(kind: str, n: int, step: str) -> None:
    """One line on stderr a step of a phase: a run that stops shows where it stopped."""
    print(f"{datetime.now(UTC):%H:%M:%S} {kind} N={n}: {step}", file=sys.stderr, flush=True)


async def run_phase(bench: Bench, kind: str, n: int, seq: int) -> Phase:
    interval, client = bench.interval, bench.client
    ids = [f"bench-{kind}/{seq}/{i}" for i in range(n)]
    prefix = f"/{PAGES.get(kind, 'none')}/{seq}-"
    notes: list[str] = []
    starts: list[tuple[str, Any, Any]] = []
    for i, wid in enumerate(ids):
        if kind == "floor":
            starts.append((wid, LocalFloorWorkflow.run, interval))
            continue
        # Validated like a user's config: the worker decodes it with the same model.
        url = f"{bench.site.base_url}{prefix.lstrip('/')}{i}"
        each = WebMonitorConfig.model_validate(
            {"urls": [url], "check_interval_minutes": interval / 60, "keywords": bench.keywords}
        )
        arg = WebMonitorInput(user="bench", task=wid, config=each)
        starts.append((wid, "WebMonitorWorkflow", arg))

    rss_before = rss_mb()
    sqlite_before = sqlite_mb()
    if bench.trace:
        tracemalloc.start(TRACE_FRAMES)
    floor_before = COMPLETED["count"]
    created_at = time.monotonic()
    failed = await start_all(bench, starts)
    created = time.monotonic()
    notes.append(f"created {n - failed} of {n} in {created - created_at:.0f} s")
    progress(kind, n, notes[-1])

    # Steady state: every page past its baseline, i.e. fetched at least twice (the floor:
    # every first iteration done, then half an interval for the spread second ones).
    deadline = created + 2 * interval + 60
    if kind == "floor":
        while COMPLETED["count"] - floor_before < n and time.monotonic() < deadline:  # noqa: ASYNC110 - the worker counts
            await asyncio.sleep(1)
        await asyncio.sleep(max(0.0, created + min(60.0, interval / 2) + 5 - time.monotonic()))
    else:
        while True:
            twice = (await bench.stats(prefix))["paths_fetched_twice"]
            if twice >= n or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        if twice < n:
            notes.append(f"only {twice} of {n} pages fetched twice before the window")
        notes.append(f"steady {time.monotonic() - created:.0f} s after creation")
        progress(kind, n, notes[-1])
    if bench.settle:
        # Polls hand back and heartbeat on a cycle of a whole window: a window measured
        # right after creation sees the first polls' cycle, not the steady one.
        await asyncio.sleep(bench.settle)
        notes.append(f"then settled {bench.settle:.0f} s")

    spy = None
    if bench.py_spy is not None and kind != "floor":
        # Samples of the worker (this process, every thread) over the window: where its CPU
        # per check goes. Raw (collapsed) stacks, one line per stack with its sample count.
        exe, out = bench.py_spy
        spy = await asyncio.create_subprocess_exec(
            *(exe, "record", "--pid", str(os.getpid()), "--duration", f"{bench.window:.0f}"),
            *("--rate", "200", "--threads", "--format", "raw", "--nonblocking"),
            *("--output", f"{out}-{kind}-{n}.txt"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
    progress(kind, n, f"window of {bench.window:.0f} s")
    t0, m0 = time.time(), time.monotonic()
    w0, s0, c0 = time.process_time(), process_cpu(bench.server_pid), COMPLETED["count"]
    await asyncio.sleep(bench.window)
    w1, s1, c1 = time.process_time(), process_cpu(bench.server_pid), COMPLETED["count"]
    t1, m1 = time.time(), time.monotonic()
    rss_running = rss_mb()
    notes.append(f"SQLite holds {sqlite_mb():.1f} MB at the window's end (was {sqlite_before:.1f})")
    snapshot = tracemalloc.take_snapshot() if bench.trace else None
    tracemalloc.stop()
    # What glibc held free, given back (the product's worker does it every minute): the part
    # of the running RSS that is no live object.
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    trimmed = rss_mb()
    notes.append(
        f"RSS after gc and malloc_trim {trimmed:.0f} MB: "
        f"{1024 * (trimmed - rss_before) / max(n, 1):.1f} KB a watch"
    )
    if snapshot is not None:
        print(f"\n{kind} N={n}:", flush=True)
        print_trace(snapshot, n, bench.trace, 1024 * (rss_running - rss_before))
        del snapshot
    progress(kind, n, "window over; reading fetches and histories")
    if spy is not None:
        await spy.wait()
        notes.append(f"py-spy samples in {bench.py_spy[1] if bench.py_spy else ''}-{kind}-{n}.txt")
    d0, d1 = datetime.fromtimestamp(t0, UTC), datetime.fromtimestamp(t1, UTC)
    sample = list(range(0, n, max(1, n // SAMPLED)))

    if kind == "floor":
        lags, events_per_check = await floor_sample(client, [ids[i] for i in sample], d0, d1)
        checks = c1 - c0
    else:
        stray = (await bench.stats(prefix, t0, t1))["other_fetches"]
        if stray:
            notes.append(f"{stray} fetches of other phases' pages inside the window")
        stamps = await bench.fetches(prefix, until=t1)
        checks = sum(1 for times in stamps.values() for t in times if t >= t0)
        lags = [lag for times in stamps.values() for lag in grid_lags(times, interval, t0, t1)]
        events = sampled_fetches = 0
        for i in sample:
            events += len(window_events(await run_events(client, ids[i], d0), d0, d1))
            sampled_fetches += sum(1 for t in stamps.get(f"{prefix}{i}", []) if t >= t0)
        events_per_check = events / sampled_fetches if sampled_fetches else float("nan")
        kinds = await bench.event_kinds(f"bench-{kind}/{seq}/", d0, d1)
        notes.append(
            "stored events in the window: "
            + (", ".join(f"{k} {c}" for k, c in sorted(kinds.items())) or "none")
        )
    if kind != "floor":
        progress(kind, n, f"pausing {CONTROLLED} watches")
        latency = await pause_latency(client, [ids[i] for i in sample[:CONTROLLED]])
        if latency:
            notes.append(
                f"pause → poll handed back (history, {len(latency)} watches): "
                f"p50 {statistics.median(latency):.2f} s, max {max(latency):.2f} s"
            )
    if checks:
        # What the checks add to a stack that idles: at a few checks a second the idle
        # stack (timers, pollers, the server's own loops) is a large share of each check.
        worker = (w1 - w0 - bench.idle[0] * (m1 - m0)) / checks
        server = (s1 - s0 - bench.idle[1] * (m1 - m0)) / checks
        notes.append(
            f"net of the idle stack: worker {1000 * worker:.2f}, server {1000 * server:.2f}, "
            f"all-in {1000 * (worker + server):.2f} ms CPU/check"
        )
    progress(kind, n, "stopping the watches")
    await terminate_all(client, ids)
    return Phase(
        kind,
        n,
        interval,
        m1 - m0,
        checks,
        w1 - w0,
        s1 - s0,
        lags,
        events_per_check,
        rss_before,
        rss_running,
        notes,
    )


async def main(
    sizes: list[int],
    interval: float,
    window: float,
    kinds: tuple[str, ...] = ("watch", "changing", "floor"),
    create_over: float | None = None,
    settle: float = 0.0,
    keywords: list[str] | None = None,
    py_spy: list[str] | None = None,
    trace: int = 0,
) -> list[Phase]:
    phases: list[Phase] = []
    async with bench_stack("ambient-bench-") as stack:
        client, server_pid = stack.client, stack.server_pid
        worker = build_worker(
            client,
            stack.deps,
            task_queue=QUEUE,
            extra_workflows=[LocalFloorWorkflow],
            extra_activities=[noop],
        )
        bench = Bench(
            client,
            server_pid,
            stack.site,
            interval,
            window,
            create_over or interval / 2,
            settle,
            keywords or [],
            stack.deps.db,
            py_spy=py_spy,
            trace=trace,
        )
        async with worker:
            # What runs beside the worker in the product (the poll leases' upkeep).
            upkeep = [asyncio.ensure_future(job(client)) for job in stack.deps.upkeep]
            # What the stack costs with nothing to check: at small N it is a large part
            # of each check's share.
            w0, s0, m0 = time.process_time(), process_cpu(server_pid), time.monotonic()
            await asyncio.sleep(IDLE_SECONDS)
            seconds = time.monotonic() - m0
            bench.idle = (
                (time.process_time() - w0) / seconds,
                (process_cpu(server_pid) - s0) / seconds,
            )
            print(
                f"idle, no watches ({seconds:.0f} s): worker {1000 * bench.idle[0]:.1f} ms "
                f"CPU/s, server {1000 * bench.idle[1]:.1f} ms CPU/s\n",
                flush=True,
            )
            print(HEADER, flush=True)
            seq = 0
            try:
                for n in sizes:
                    for kind in kinds:
                        seq += 1
                        phase = await run_phase(bench, kind, n, seq)
                        phases.append(phase)
                        print(row(phase), flush=True)
            finally:
                for task in upkeep:
                    task.cancel()
                await asyncio.gather(*upkeep, return_exceptions=True)
    return phases


HEADER = (
    "| phase | N | interval s | checks/s | asked/s | lag p50 s | lag p95 s | "
    "worker CPU ms/check | server CPU ms/check | API CPU | all-in CPU ms/check | "
    "events/check | worker RSS MB before → running | RSS KB/watch |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def row(p: Phase) -> str:
    return (
        f"| {p.kind} | {p.n} | {p.interval:g} | {p.rate:.2f} | {p.asked:.2f} | "
        f"{p.lag(0.5):.2f} | {p.lag(0.95):.2f} | "
        f"{1000 * p.cpu_per_check('worker'):.1f} | {1000 * p.cpu_per_check('server'):.1f} | "
        f"not in checks | {1000 * p.cpu_per_check('all'):.1f} | {p.events_per_check:.1f} | "
        f"{p.rss_before:.0f} → {p.rss_running:.0f} | "
        f"{1024 * (p.rss_running - p.rss_before) / max(p.n, 1):.1f} |"
    )


def ratios(phases: list[Phase]) -> list[str]:
    lines = []
    by = {(p.kind, p.n): p for p in phases}
    for n in sorted({p.n for p in phases}):
        floor = by.get(("floor", n))
        for kind in PAGES:
            watch = by.get((kind, n))
            if watch and floor:
                lines.append(
                    f"| {kind} | {n} | "
                    f"{watch.cpu_per_check('worker') / floor.cpu_per_check('worker'):.2f} | "
                    f"{watch.cpu_per_check('all') / floor.cpu_per_check('all'):.2f} | "
                    f"{watch.events_per_check / floor.events_per_check:.2f} |"
                )
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 500, 2000])
    parser.add_argument(
        "--interval", type=float, default=60.0, help="seconds between checks (product minimum 60)"
    )
    parser.add_argument(
        "--window",
        type=float,
        default=60.0,
        help="measured seconds per phase (a whole number of intervals counts evenly)",
    )
    parser.add_argument(
        "--phases",
        nargs="+",
        default=["watch", "changing", "floor"],
        choices=["watch", "same", "changing", "floor"],
        help="watch: 304 pages; same: same body, no validators; changing: a new page every "
        "check; floor: local no-op",
    )
    parser.add_argument("--no-floor", action="store_true", help="measure the watches only")
    parser.add_argument(
        "--create-over",
        type=float,
        default=None,
        help="seconds over which a phase creates its watches, in batches of 100 (default: "
        "half an interval; creation is never faster than the server accepts the batches)",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=0.0,
        help="seconds to wait once every page is past its baseline, before the window (give "
        "the polls' hand-back and heartbeat cycle time to reach its steady state)",
    )
    parser.add_argument(
        "--keywords",
        nargs="+",
        default=[],
        help="a keyword filter on every watch (e.g. 'update' hits every changing page)",
    )
    parser.add_argument(
        "--py-spy",
        nargs=2,
        metavar=("PY_SPY", "PREFIX"),
        help="sample the worker with this py-spy over each window into PREFIX-PHASE-N.txt "
        "(raw collapsed stacks, every thread; py-spy is not a dependency: give its path)",
    )
    parser.add_argument(
        "--trace",
        type=int,
        default=0,
        metavar="K",
        help="trace the Python heap from each phase's creation to its window's end "
        "(tracemalloc: slow) and print its K largest lines a watch",
    )
    args = parser.parse_args()
    try:
        WebMonitorConfig.model_validate(
            {
                "urls": ["https://example.com"],
                "check_interval_minutes": args.interval / 60,
                "keywords": args.keywords,
            }
        )
    except ValidationError as error:
        problem = error.errors()[0]
        field_name = ".".join(str(part) for part in problem["loc"])
        parser.error(f"{field_name}: {problem['msg']}")
    print(f"`python -m bench.watches {shlex.join(sys.argv[1:])}`\n", flush=True)
    phases = tuple(p for p in args.phases if not (args.no_floor and p == "floor"))
    results = asyncio.run(
        main(
            args.sizes,
            args.interval,
            args.window,
            phases,
            create_over=args.create_over,
            settle=args.settle,
            keywords=args.keywords,
            py_spy=args.py_spy,
            trace=args.trace,
        )
    )
    print()
    for p in results:
        print(f"- {p.kind} N={p.n}: " + "; ".join(p.notes))
    print(
        "\nchecks = page fetches inside the window (floor: no-op activities); CPU over the "
        "window / checks; all-in = worker + Temporal server (the API serves no check); lag "
        "against each page's fixed-rate grid; events/check = history events of sampled "
        "watches inside the window / their page fetches (changing: every check is a change, "
        "so events per reported change)."
    )
    floor_lines = ratios(results)
    if floor_lines:
        print("\n| phase | N | worker CPU /floor | total CPU /floor | events /floor |")
        print("|---|---|---|---|---|")
        print("\n".join(floor_lines))
    if results:
        median = statistics.median(p.lag(0.95) for p in results)
        print(f"\nmedian lag p95 over phases: {median:.2f} s")
