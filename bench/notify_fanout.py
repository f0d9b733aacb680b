"""Benchmark: fan notifications out over inbox, webhook, WeCom and email, and count what arrived.

    python -m bench.notify_fanout --count 300 --concurrency 30

Each notification goes to four targets through the real notify activity code (leased
delivery rows, idempotency keys, concurrent sends, channel clients) against loopback
endpoints in another process. Three runs:
1. first send;
2. the same notifications again with the same keys (every delivery found sent and skipped);
3. new notifications while the webhook and WeCom endpoints fail every 3rd request with a 500:
   a failed activity is run again (as Temporal's retry policy would, up to 6 attempts).
Reports notifications/s, deliveries/s and per-notification latency p50/p95 of each run;
then, from what the endpoints recorded (by delivery key), per channel: messages received,
distinct deliveries, duplicates and deliveries missing.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from pydantic import SecretStr
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities
from ambient.clients.notify.registry import build_channels
from ambient.clients.notify.robots import RateLimiter
from ambient.clients.notify.wecom import WeComChannel
from ambient.domain.notify import Message, NotifyRequest, Target
from ambient.domain.users import UserCreate
from ambient.settings import Environment, ServerSecret, Settings
from ambient.storage import Database
from ambient.storage.migrate import upgrade_async
from ambient.storage.users import UserRepository
from tests.support.servers import free_port

ATTEMPTS = 6
TARGETS = [
    Target(type="inbox"),
    Target(type="webhook", target="secret:hook"),
    Target(type="wecom", target="secret:bot"),
    Target(type="email", target="ops@example.com"),
]


async def wait_up(url: str) -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        for _ in range(100):
            try:
                await http.get(url)
                return
            except httpx.HTTPError:
                await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def expected_keys(prefix: str, count: int) -> dict[str, set[str]]:
    """What each endpoint must have received exactly once, as the endpoints key it."""
    import hashlib

    def message_id(key: str) -> str:
        return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@ambient-ops>"

    return {
        "webhook": {f"{prefix}/{i}:webhook:secret:hook" for i in range(count)},
        "wecom": {f"### {prefix} {i}" for i in range(count)},
        "email": {message_id(f"{prefix}/{i}:email:ops@example.com") for i in range(count)},
    }


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
            fetch_allow_cidrs=["127.0.0.1/32"],
            secrets={
                "bot": ServerSecret(value=SecretStr("k"), users=["bench"]),
                "hook": ServerSecret(value=SecretStr(f"{base}/hook"), users=["bench"]),
            },
            _env_file=None,  # type: ignore[call-arg]
        )
        await upgrade_async(settings.resolved_database_url)
        db = Database(settings.resolved_database_url)
        async with db.session() as session:
            await UserRepository(session).create(UserCreate(name="bench"))
            await session.commit()
        async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
            channels = build_channels(settings, db, http)
            # One loopback "robot" takes every message: lift the 20-a-minute limit a real
            # robot has (robots.RateLimiter), or the run measures the limiter.
            wecom = channels.get("wecom")
            assert isinstance(wecom, WeComChannel)
            wecom.limiter = RateLimiter(per_minute=10**9)
            notify = NotifyActivities(db, channels)
            env = ActivityEnvironment()
            gate = asyncio.Semaphore(concurrency)
            retries = 0

            async def one(prefix: str, i: int) -> float:
                nonlocal retries
                request = NotifyRequest(
                    user="bench",
                    message=Message(title=f"{prefix} {i}", body=f"**value** {i}"),
                    targets=TARGETS,
                    idempotency_key=f"{prefix}/{i}",
                )
                async with gate:
                    start = time.perf_counter()
                    for attempt in range(1, ATTEMPTS + 1):
                        try:
                            await env.run(notify.notify, request)
                            break
                        except ApplicationError as exc:
                            if exc.non_retryable or attempt == ATTEMPTS:
                                raise
                            retries += 1
                    return time.perf_counter() - start

            runs = [
                ("first send", "alert", 0),
                ("repeat (same keys)", "alert", 0),
                ("flaky endpoints (every 3rd 500)", "flaky", 3),
            ]
            for label, prefix, fail_every in runs:
                await http.post(f"{base}/mode", json={"fail_every": fail_every})
                retries = 0
                started = time.perf_counter()
                latencies = await asyncio.gather(*(one(prefix, i) for i in range(count)))
                elapsed = time.perf_counter() - started
                ordered = sorted(latencies)
                rate, deliveries = count / elapsed, count * len(TARGETS) / elapsed
                p50, p95 = statistics.median(ordered), ordered[int(0.95 * count) - 1]
                print(
                    f"| {label} | {count} | {rate:.0f} | {deliveries:.0f} | "
                    f"{1000 * p50:.0f} | {1000 * p95:.0f} | {retries} |",
                    flush=True,
                )
            stats = (await http.get(f"{base}/stats")).json()
        await db.close()
        print("\n| endpoint | received | distinct | duplicates | missing |")
        print("|---|---|---|---|---|")
        expected = {
            name: expected_keys("alert", count)[name] | expected_keys("flaky", count)[name]
            for name in ("webhook", "wecom", "email")
        }
        for name, keys in stats["received"].items():
            total = sum(keys.values())
            missing = len(expected[name] - set(keys))
            unexpected = set(keys) - expected[name]
            print(f"| {name} | {total} | {len(keys)} | {total - len(keys)} | {missing} |")
            if unexpected:
                print(f"  unexpected keys at {name}: {sorted(unexpected)[:3]}")
        print(f"\ninjected endpoint failures: {stats['injected_failures']}")
    finally:
        site.terminate()


if __name__ == "__main__":
    logging.getLogger("temporalio.activity").setLevel(logging.ERROR)  # injected 500s are expected
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=30)
    args = parser.parse_args()
    print("| run | notifications | notifications/s | deliveries/s | p50 ms | p95 ms | retries |")
    print("|---|---|---|---|---|---|---|")
    asyncio.run(run(args.count, args.concurrency))
