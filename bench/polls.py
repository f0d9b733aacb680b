"""Worker-side CPU of web-monitor polls, without Temporal: the check loop alone.

    python -m bench.polls --n 200 --kind page --seconds 20 --interval 2

N `poll_pages` activities (in an `ActivityEnvironment`, the real activity code) against the
bench page server in its own process: ``page`` answers 304 after the first fetch,
``changing`` sends a new ~5 KB page on every fetch (text, diff, snapshot, event, inbox
message). Each watch first takes its baseline (not measured); then every watch polls for
``--seconds`` at ``--interval``. CPU per check = process CPU over the polls / checks. The
Temporal server and the hand-backs are not in it: `bench/watches.py` measures the whole.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities
from activities.polling import PagePoller
from ambient.clients.notify.registry import build_channels
from ambient.clients.web import WebFetcher
from ambient.devstack import free_port
from ambient.domain.polling import PollRequest, PollResult
from ambient.domain.watches import WebMonitorConfig, notification_targets
from ambient.settings import Environment, Settings
from bench.stack import bench_database

PATHS = {"page": "page", "changing": "changing"}


async def main(n: int, kind: str, seconds: float, interval: float) -> None:
    data = Path(tempfile.mkdtemp(prefix="ambient-polls-"))
    port = free_port()
    site = subprocess.Popen([sys.executable, "-m", "bench.site", str(port)])  # noqa: ASYNC220 - one child, started once
    settings = Settings(
        environment=Environment.TEST,
        data_dir=data,
        fetch_allow_cidrs=["127.0.0.1/32"],
        metrics_port=None,
        _env_file=None,  # type: ignore[call-arg]
    )
    db = await bench_database(settings)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
            for _ in range(100):
                try:
                    await http.get(f"{base}/stats")
                    break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
            notifier = NotifyActivities(db, build_channels(settings, db, http))
            poller = PagePoller(db, WebFetcher(allow_cidrs=["127.0.0.1/32"]), notifier)

            async def poll(i: int, before: PollResult | None) -> PollResult:
                config = WebMonitorConfig.model_validate(
                    {"urls": [f"{base}/{PATHS[kind]}/{i}"], "check_interval_minutes": 1}
                )
                request = PollRequest(
                    user="bench",
                    task=f"bench-poll/{i}",
                    workflow_id=f"bench-poll/{i}",
                    life="bench",
                    config=config,
                    targets=notification_targets(None, []),
                    urls=before.urls if before else {},
                    seq=before.seq if before else 0,
                    first_check_in=0.0 if before is None else i * interval / n,
                    interval_seconds=interval,
                    window_seconds=seconds,
                    first_only=before is None,
                )
                return await ActivityEnvironment().run(poller.poll_pages, request)

            baselines = await asyncio.gather(*(poll(i, None) for i in range(n)))
            c0, t0 = time.process_time(), time.monotonic()
            results = await asyncio.gather(*(poll(i, baselines[i]) for i in range(n)))
            c1, t1 = time.process_time(), time.monotonic()
    finally:
        site.terminate()
        await db.close()
    checks = sum(r.checks for r in results)
    events = sum(len(r.events) for r in results)
    failures = sum(r.event_failures for r in results)
    print(
        f"| {kind} | {n} | {interval:g} | {checks / (t1 - t0):.1f} | {n / interval:.1f} | "
        f"{1000 * (c1 - c0) / max(checks, 1):.2f} | {events} | {failures} |"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--kind", choices=sorted(PATHS), default="page")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--interval", type=float, default=2.0)
    args = parser.parse_args()
    print(f"`python -m bench.polls {' '.join(sys.argv[1:])}`\n")
    print("| kind | N | interval s | checks/s | asked/s | worker CPU ms/check | events | failed |")
    print("|---|---|---|---|---|---|---|---|")
    asyncio.run(main(args.n, args.kind, args.seconds, args.interval))
