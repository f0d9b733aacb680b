"""Benchmark: fan notifications out over inbox, webhook, WeCom and email, and count what arrived.

    python -m bench.notify_fanout --count 300 --concurrency 30

Each notification goes to four targets through the real notify activity code (leased
delivery rows, idempotency keys, concurrent sends, channel clients) against loopback
endpoints in another process. Three runs:
1. first send;
2. the same notifications again with the same keys (every delivery found sent and skipped);
3. new notifications while the webhook and WeCom endpoints fail every 3rd request with a 500:
   a failed activity is run again (as Temporal's retry policy would, up to 6 attempts).
Reports notifications/s, deliveries/s, per-notification latency p50/p95 (until its answer,
delivered or not) and the notifications that failed: every attempt, or one refused for good.
They are counted and the run goes on (one that meets a 500 on all six attempts is data, not
the end of the benchmark). Then, from what the endpoints recorded (by delivery key), per
channel: messages received, distinct deliveries, duplicates, deliveries given up (not
received, their notification failed and their row says not sent) and deliveries missing
(neither received nor given up: lost).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import shutil
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
from ambient.setting_types import ServerSecret
from ambient.settings import Environment, Settings
from ambient.storage import Database
from ambient.storage.migrate import upgrade_async
from ambient.storage.repositories import DeliveryRepository
from ambient.storage.users import UserRepository
from tests.support.servers import free_port

ATTEMPTS = 6
TARGETS = [
    Target(type="inbox"),
    Target(type="webhook", target="secret:hook"),
    Target(type="wecom", target="secret:bot"),
    Target(type="email", target="ops@example.com"),
]
ENDPOINTS = ("webhook", "wecom", "email")  # the targets the loopback endpoints record


async def wait_up(url: str) -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        for _ in range(100):
            try:
                await http.get(url)
                return
            except httpx.HTTPError:
                await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def endpoint_key(prefix: str, i: int, channel: str) -> str:
    """The key by which the endpoint of ``channel`` records notification ``prefix``/``i``."""
    if channel == "wecom":
        return f"### {prefix} {i}"
    target = next(t.target for t in TARGETS if t.type == channel)
    key = f"{prefix}/{i}:{channel}:{target}"
    if channel == "email":  # the Message-ID, made from the delivery key at the sender's domain
        domain = Settings.model_fields["smtp_from"].default.rpartition("@")[2]
        return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"
    return key


def expected_keys(prefix: str, count: int) -> dict[str, set[str]]:
    """What each endpoint must have received exactly once, as the endpoints key it."""
    return {
        channel: {endpoint_key(prefix, i, channel) for i in range(count)} for channel in ENDPOINTS
    }


async def given_up(db: Database, prefix: str, i: int) -> dict[str, str]:
    """The deliveries of a failed notification whose rows say not sent, by endpoint, as the
    endpoint keys them."""
    async with db.session() as session:
        rows = await DeliveryRepository(session).under("bench", f"{prefix}/{i}")
    return {
        row.channel: endpoint_key(prefix, i, row.channel)
        for row in rows
        if row.channel in ENDPOINTS and row.status != "sent"
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
            # Per endpoint, the deliveries of the notifications that failed, as it keys them.
            abandoned: dict[str, set[str]] = {name: set() for name in ENDPOINTS}
            failed: list[str] = []  # each failed notification's last error

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
                                failed.append(f"{prefix}/{i}: {exc}")
                                for name, key in (await given_up(db, prefix, i)).items():
                                    abandoned[name].add(key)
                                break
                            retries += 1
                    return time.perf_counter() - start

            runs = [
                ("first send", "alert", 0),
                ("repeat (same keys)", "alert", 0),
                ("flaky endpoints (every 3rd 500)", "flaky", 3),
            ]
            for label, prefix, fail_every in runs:
                await http.post(f"{base}/mode", json={"fail_every": fail_every})
                retries, failed = 0, []
                started = time.perf_counter()
                latencies = await asyncio.gather(*(one(prefix, i) for i in range(count)))
                elapsed = time.perf_counter() - started
                ordered = sorted(latencies)
                rate, deliveries = count / elapsed, count * len(TARGETS) / elapsed
                p50, p95 = statistics.median(ordered), ordered[int(0.95 * count) - 1]
                print(
                    f"| {label} | {count} | {rate:.0f} | {deliveries:.0f} | "
                    f"{1000 * p50:.0f} | {1000 * p95:.0f} | {retries} | {len(failed)} |",
                    flush=True,
                )
                for line in failed[:3]:
                    print(f"  failed: {line}", flush=True)
            stats = (await http.get(f"{base}/stats")).json()
            await channels.aclose()  # before the database closes, as the worker
        await db.close()
        print("\n| endpoint | received | distinct | duplicates | given up | missing |")
        print("|---|---|---|---|---|---|")
        expected = {
            name: expected_keys("alert", count)[name] | expected_keys("flaky", count)[name]
            for name in ENDPOINTS
        }
        for name, keys in stats["received"].items():
            total = sum(keys.values())
            # Given up: never arrived, its notification failed (a loss the sender knows of).
            lost = expected[name] - set(keys)
            gave_up = len(lost & abandoned[name])
            missing = len(lost - abandoned[name])
            unexpected = set(keys) - expected[name]
            print(
                f"| {name} | {total} | {len(keys)} | {total - len(keys)} | {gave_up} | {missing} |"
            )
            if unexpected:
                print(f"  unexpected keys at {name}: {sorted(unexpected)[:3]}")
        print(f"\ninjected endpoint failures: {stats['injected_failures']}")
    finally:
        site.terminate()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    logging.getLogger("temporalio.activity").setLevel(logging.ERROR)  # injected 500s are expected
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=30)
    args = parser.parse_args()
    print(
        "| run | notifications | notifications/s | deliveries/s | p50 ms | p95 ms | retries "
        "| failed |"
    )
    print("|---|---|---|---|---|---|---|---|")
    asyncio.run(run(args.count, args.concurrency))
