"""Benchmark: fan 1,000 notifications out over inbox, webhook, WeCom and email.

    python -m bench.notify_fanout --count 1000 --concurrency 50

Each notification goes to four targets through the real notify activity code (delivery
rows, idempotency keys, channel clients) against loopback endpoints in another process.
Reports notifications/s, deliveries/s and per-notification latency p50/p95; then sends
the same 1,000 again (same keys) to measure the duplicate-skipping path.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from pydantic import SecretStr
from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities
from ambient.clients.notify.registry import build_channels
from ambient.devstack import free_port
from ambient.domain.notify import Message, NotifyRequest, Target
from ambient.domain.users import UserCreate
from ambient.settings import Environment, Settings
from ambient.storage import Database
from ambient.storage.migrate import upgrade_async
from ambient.storage.repositories import UserRepository


async def wait_up(url: str) -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        for _ in range(100):
            try:
                await http.get(url)
                return
            except httpx.HTTPError:
                await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


async def run(count: int, concurrency: int) -> None:
    data = Path(tempfile.mkdtemp(prefix="ambient-fanout-"))
    http_port, smtp_port = free_port(), free_port()
    command = [sys.executable, "-m", "bench.push_site", str(http_port), str(smtp_port)]
    site = subprocess.Popen(command)  # noqa: ASYNC220 - one long-lived child
    base = f"http://127.0.0.1:{http_port}"
    try:
        await wait_up(f"{base}/stats")
        settings = Settings(
            environment=Environment.TEST,
            data_dir=data,
            smtp_host="127.0.0.1",
            smtp_port=smtp_port,
            smtp_tls="none",
            wecom_base_url=base,
            secrets={"bot": SecretStr("k"), "hook": SecretStr(f"{base}/hook")},
            _env_file=None,  # type: ignore[call-arg]
        )
        await upgrade_async(settings.resolved_database_url)
        db = Database(settings.resolved_database_url)
        async with db.session() as session:
            await UserRepository(session).create(UserCreate(name="bench"))
            await session.commit()
        async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
            notify = NotifyActivities(db, build_channels(settings, db, http))
            env = ActivityEnvironment()
            targets = [
                Target(type="inbox"),
                Target(type="webhook", target="secret:hook"),
                Target(type="wecom", target="secret:bot"),
                Target(type="email", target="ops@example.com"),
            ]
            gate = asyncio.Semaphore(concurrency)

            async def one(i: int) -> float:
                request = NotifyRequest(
                    user="bench",
                    message=Message(title=f"alert {i}", body=f"**value** {i}"),
                    targets=targets,
                    idempotency_key=f"bench/{i}",
                )
                async with gate:
                    start = time.perf_counter()
                    await env.run(notify.notify, request)
                    return time.perf_counter() - start

            for label in ("first send", "repeat (duplicates)"):
                started = time.perf_counter()
                latencies = await asyncio.gather(*(one(i) for i in range(count)))
                elapsed = time.perf_counter() - started
                ordered = sorted(latencies)
                rate, deliveries = count / elapsed, count * len(targets) / elapsed
                p50, p95 = statistics.median(ordered), ordered[int(0.95 * count) - 1]
                print(
                    f"| {label} | {count} | {rate:.0f} | {deliveries:.0f} | "
                    f"{1000 * p50:.0f} | {1000 * p95:.0f} |",
                    flush=True,
                )
            stats = (await http.get(f"{base}/stats")).json()
            print(f"\nreceived by the endpoints: {stats} (each exactly {count}: no duplicates)")
        await db.close()
    finally:
        site.terminate()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    print("| run | notifications | notifications/s | deliveries/s | p50 ms | p95 ms |")
    print("|---|---|---|---|---|---|")
    asyncio.run(run(args.count, args.concurrency))
