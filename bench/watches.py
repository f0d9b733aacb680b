"""Benchmark: N web monitors against a local site on the embedded stack, and the floor.

    python -m bench.watches --sizes 100 500 2000 --interval 60 --window 120

For each N it runs three phases on the same Temporal dev server (SQLite file) and worker:
``watch`` (N web monitors, one URL each, answered with 304 after the first fetch),
``changing`` (N web monitors whose page changes on every fetch: text extraction, diff,
snapshot write, a change event and an inbox notification per check) and ``floor`` (N
workflows of one no-op *local* activity + one timer per iteration: the same activity kind
as a watch check). Per phase: checks/s sustained, schedule lag p50/p95 (timer due -> the
local-activity marker), CPU-seconds per check (worker and server) and history events per
check. Ratios to the floor are measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from ambient.clients.notify.registry import build_channels
from ambient.deps import WorkerDeps
from ambient.devstack import DevOptions, free_port, wait_for_temporal
from ambient.domain.tasks import WebMonitorInput
from ambient.domain.users import UserCreate
from ambient.domain.watches import WebMonitorConfig
from ambient.settings import Environment, Settings
from ambient.storage import Database
from ambient.storage.migrate import upgrade_async
from ambient.storage.repositories import UserRepository
from bench.devserver import dev_server_command
from bench.local_floor import COMPLETED, LocalFloorWorkflow, noop
from worker import build_worker

TICK = os.sysconf("SC_CLK_TCK")
QUEUE = "bench"


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


@dataclass
class Phase:
    kind: str
    n: int
    checks: int
    seconds: float
    worker_cpu: float
    server_cpu: float
    lags: list[float]
    events_per_check: float

    @property
    def rate(self) -> float:
        return self.checks / self.seconds

    def cpu_per_check(self, which: str) -> float:
        cpu = {"worker": self.worker_cpu, "server": self.server_cpu}.get(
            which, self.worker_cpu + self.server_cpu
        )
        return cpu / max(self.checks, 1)

    def lag(self, q: float) -> float:
        if not self.lags:
            return float("nan")
        ordered = sorted(self.lags)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def history_sample(
    client: Client, ids: list[str], t0: datetime, t1: datetime
) -> tuple[list[float], float]:
    """Schedule lags and history events per iteration inside the window, from histories."""
    lags: list[float] = []
    events = iterations = 0
    for workflow_id in ids:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        due: datetime | None = None
        for event in history.events:
            when = event.event_time.ToDatetime().replace(tzinfo=UTC)
            kind = event.event_type
            if kind == EventType.EVENT_TYPE_TIMER_STARTED:
                # Timers started before the window count too: with intervals longer than the
                # window, the check a timer schedules lands inside it.
                timeout = event.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
                due = when + timeout
            if not (t0 <= when <= t1):
                continue
            events += 1
            local = (
                kind == EventType.EVENT_TYPE_MARKER_RECORDED
                and event.marker_recorded_event_attributes.marker_name == "core_local_activity"
            )
            if local and due:
                # A local activity leaves only its marker, written once it has finished.
                lags.append((when - due).total_seconds())
                due = None
            if local:
                # One check (or floor iteration) per local-activity marker; the event and
                # notification activities of a changed page belong to its check.
                iterations += 1
    return lags, events / max(iterations, 1)


async def run_phase(
    kind: str, n: int, client: Client, server_pid: int, site: str, interval: float, window: float
) -> Phase:
    ids = [f"bench-{kind}/{n}/{i}" for i in range(n)]
    config = WebMonitorConfig.model_validate(
        {"urls": ["https://example.com"], "check_interval_minutes": 1}
    )

    async def count() -> int:
        if kind == "floor":
            return COMPLETED["count"]
        async with httpx.AsyncClient(trust_env=False) as http:
            stats = (await http.get(f"{site}/stats")).json()
        if kind == "changing":
            return int(stats["changed"])
        return int(stats["200"] + stats["304"])

    before = await count()
    # Created over half an interval, as people create watches: every watch takes its
    # baseline at once, and a burst of N sandboxed first runs is not what is measured here.
    batch_size = max(1, n // 20)
    for start in range(0, n, batch_size):
        if start:
            await asyncio.sleep(interval / 2 / 20)
        batch = []
        for i in range(start, min(n, start + batch_size)):
            if kind in ("watch", "changing"):
                path = "page" if kind == "watch" else "changing"
                # model_copy skips validation: the bench runs below the 1-minute product minimum.
                each = config.model_copy(
                    update={"urls": [f"{site}/{path}/{i}"], "check_interval_minutes": interval / 60}
                )
                arg: Any = WebMonitorInput(user="bench", task=ids[i], config=each)
                batch.append(
                    client.start_workflow("WebMonitorWorkflow", arg, id=ids[i], task_queue=QUEUE)
                )
            else:
                batch.append(
                    client.start_workflow(
                        LocalFloorWorkflow.run, interval, id=ids[i], task_queue=QUEUE
                    )
                )
        await asyncio.gather(*batch)
    started = time.monotonic()

    # Every baseline (the first check, taken at once) done, then the second checks (an
    # interval plus a spread after creation): the window measures the steady state.
    while await count() - before < n and time.monotonic() - started < 120:  # noqa: ASYNC110 - another process counts
        await asyncio.sleep(1)
    await asyncio.sleep(max(0.0, started + interval / 2 + 5 - time.monotonic()))
    c0, w0, s0 = await count(), time.process_time(), process_cpu(server_pid)
    t0, m0 = datetime.now().astimezone(), time.monotonic()
    await asyncio.sleep(window)
    c1, w1, s1 = await count(), time.process_time(), process_cpu(server_pid)
    t1, m1 = datetime.now().astimezone(), time.monotonic()
    lags, events = await history_sample(client, ids[:: max(1, n // 50)], t0, t1)
    # In batches: thousands of terminations at once time out on the SQLite dev server.
    for start in range(0, n, 100):
        handles = [client.get_workflow_handle(i) for i in ids[start : start + 100]]
        await asyncio.gather(*(h.terminate("bench done") for h in handles), return_exceptions=True)
    return Phase(kind, n, c1 - c0, m1 - m0, w1 - w0, s1 - s0, lags, events)


async def main(
    sizes: list[int],
    interval: float,
    window: float,
    kinds: tuple[str, ...] = ("watch", "changing", "floor"),
) -> list[Phase]:
    data = Path(tempfile.mkdtemp(prefix="ambient-bench-"))
    port, site_port = free_port(), free_port()
    command = dev_server_command(data, port)
    server = subprocess.Popen(command)  # noqa: ASYNC220 - long-lived children, started once
    site_proc = subprocess.Popen([sys.executable, "-m", "bench.site", str(site_port)])  # noqa: ASYNC220
    settings = Settings(
        environment=Environment.TEST,
        data_dir=data,
        temporal_address=f"127.0.0.1:{port}",
        temporal_task_queue=QUEUE,
        fetch_allow_cidrs=["127.0.0.1/32"],
        metrics_port=None,
        max_concurrent_activities=200,
        _env_file=None,  # type: ignore[call-arg]
    )
    phases: list[Phase] = []
    try:
        opts = DevOptions(data, 0, port, 0, None, None)
        client = await wait_for_temporal(settings, opts, time.monotonic() + 60)
        await upgrade_async(settings.resolved_database_url)
        db = Database(settings.resolved_database_url)
        async with db.session() as session:
            await UserRepository(session).create(UserCreate(name="bench"))
            await session.commit()
        async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
            deps = WorkerDeps(settings, db, build_channels(settings, db, http), http)
            worker = build_worker(
                client,
                deps,
                task_queue=QUEUE,
                extra_workflows=[LocalFloorWorkflow],
                extra_activities=[noop],
            )
            async with worker:
                site = f"http://127.0.0.1:{site_port}"
                for n in sizes:
                    for kind in kinds:
                        phase = await run_phase(kind, n, client, server.pid, site, interval, window)
                        phases.append(phase)
                        print(row(phase), flush=True)
        await db.close()
    finally:
        site_proc.terminate()
        server.terminate()
        server.wait(30)
    return phases


HEADER = (
    "| phase | N | checks/s | lag p50 s | lag p95 s | worker CPU ms/check | "
    "server CPU ms/check | events/check |\n|---|---|---|---|---|---|---|---|"
)


def row(p: Phase) -> str:
    return (
        f"| {p.kind} | {p.n} | {p.rate:.1f} | {p.lag(0.5):.2f} | {p.lag(0.95):.2f} | "
        f"{1000 * p.cpu_per_check('worker'):.1f} | {1000 * p.cpu_per_check('server'):.1f} | "
        f"{p.events_per_check:.1f} |"
    )


def ratios(phases: list[Phase]) -> list[str]:
    lines = []
    by = {(p.kind, p.n): p for p in phases}
    for n in sorted({p.n for p in phases}):
        floor = by.get(("floor", n))
        for kind in ("watch", "changing"):
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
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 500, 2000])
    parser.add_argument(
        "--interval", type=float, default=60.0, help="seconds between checks (product minimum 60)"
    )
    parser.add_argument("--window", type=float, default=60.0, help="measured seconds per phase")
    parser.add_argument(
        "--phases",
        nargs="+",
        default=["watch", "changing", "floor"],
        choices=["watch", "changing", "floor"],
        help="watch: 304 pages; changing: a new page every check; floor: local no-op",
    )
    parser.add_argument("--no-floor", action="store_true", help="measure the watches only")
    args = parser.parse_args()
    print(HEADER, flush=True)
    phases = tuple(p for p in args.phases if not (args.no_floor and p == "floor"))
    results = asyncio.run(main(args.sizes, args.interval, args.window, phases))
    print("\n| phase | N | worker CPU /floor | total CPU /floor | events /floor |")
    print("|---|---|---|---|---|")
    print("\n".join(ratios(results)))
    print(f"\nmedian lag p95 over phases: {statistics.median(p.lag(0.95) for p in results):.2f} s")
