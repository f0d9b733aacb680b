"""Benchmark: greeting -> spoken text through the API on the embedded stack.

    python -m bench.greeting --users 50 --rounds 3

Brings up the embedded stack in one temporary folder, as `ambient dev` does: the Temporal dev
server (SQLite file), `ambient worker` and `ambient api` as child processes (SQLite app
database); this process is only the HTTP client. Creates one daily
briefing per user with a window covering the whole local day and waits until every briefing
is prepared (offline writer, a small log file per user). Then times `POST /voice/greeting`
(device token + user id) end to end from an HTTP client:

- ``first``: each user's first greeting of the day (the prepared text is returned: SPOKEN),
  back to back for half the users,
- ``spaced``: the same for the other half, 0.5 s apart (the previous greeting's recording
  activity has finished: no queueing behind it),
- ``again``: later greetings the same day (ALREADY_GIVEN, "given at HH:MM"),
- ``burst``: 10 concurrent greetings of one user (exactly one SPOKEN is checked).

Prints p50/p95/max per kind and the outcome counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from temporalio.client import Client

from ambient.briefing.config import BriefingConfig, plan_for
from ambient.briefing.errors import BriefingError
from ambient.briefing.service import BriefingService
from ambient.domain.users import UserCreate
from ambient.storage.users import UserRepository
from bench.stack import process_stack

QUEUE = "bench-greeting"
SPACING = 0.5  # seconds between "spaced" first greetings
DEVICE = "bench-device-token"
ZONES = ("UTC", "Asia/Shanghai", "America/New_York", "Asia/Tokyo", "Europe/Berlin")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(name: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    if not ms:  # a kind too few users made (--users 2: no "first" half)
        return f"{name:6} n=   0"
    return (
        f"{name:6} n={len(ms):4}  p50={statistics.median(ms):6.1f} ms  "
        f"p95={pct(ms, 0.95):6.1f} ms  max={max(ms):6.1f} ms"
    )


def write_logs(path: Path, zone: str) -> None:
    day = plan_for(datetime.now(ZoneInfo(zone)).date(), BriefingConfig(timezone=zone))
    lines = []
    for i in range(2000):
        when = day.logs_from + timedelta(seconds=40 * i)
        level = "ERROR" if i % 50 == 0 else "INFO"
        message = (
            f"GET /api/orders/{i} 200 in {i % 97} ms"
            if level == "INFO"
            else (f"order-service timeout after {1000 + i} ms to db-{i % 3}")
        )
        lines.append(json.dumps({"time": when.isoformat(), "level": level, "message": message}))
    path.write_text("\n".join(lines) + "\n")


async def prepared(service: BriefingService, name: str) -> None:
    for _ in range(2400):
        try:
            if (await service.status(name)).prepared is not None:
                return
        except BriefingError:  # a query timing out while the machine is busy: ask again
            pass
        await asyncio.sleep(0.05)
    raise TimeoutError(f"briefing of {name} never prepared")


async def main(users: int, rounds: int) -> None:
    now = datetime.now(UTC)
    zone = next(z for z in ZONES if 1 <= now.astimezone(ZoneInfo(z)).hour <= 22)
    tokens = {"bench": DEVICE}
    async with process_stack("ambient-bench-greeting-", QUEUE, voice_device_tokens=tokens) as stack:
        names = [f"u{i:04d}" for i in range(users)]
        async with stack.db.session() as session:
            for name in names:
                await UserRepository(session).create(UserCreate(name=name))
            await session.commit()
        logs = stack.data / "app.log"
        write_logs(logs, zone)
        config = {
            "log_source": {"type": "file", "path": str(logs)},
            "timezone": zone,
            "prepare_at": "00:00",
            "window_start": "00:00",
            "window_end": "23:59",
            "language": "en",
            "push_if_not_greeted": False,
        }
        service = BriefingService(stack.client, stack.settings, stack.db)
        started = time.monotonic()
        await asyncio.gather(*(service.create(n, config) for n in names))
        for name in names:
            await prepared(service, name)
        print(
            f"{users} briefings prepared in {time.monotonic() - started:.1f} s (zone {zone})",
            flush=True,
        )
        await api_ready(stack.api_port)
        await measure(stack.api_port, names, rounds)
        await direct(stack.client, names)
        for name in names:
            await stack.client.get_workflow_handle(f"daily-briefing/{name}").signal("stop")


async def direct(client: Client, names: list[str]) -> None:
    """The Temporal round trips alone, from this process (no HTTP, no API): query, update."""
    from ambient.briefing.greeting_answers import GreetRequest
    from workflows.daily_briefing import DailyBriefingWorkflow

    query: list[float] = []
    update: list[float] = []
    for name in names[1:]:
        handle = client.get_workflow_handle(f"daily-briefing/{name}")
        began = time.perf_counter()
        await handle.query(DailyBriefingWorkflow.already_given, "x")
        query.append(time.perf_counter() - began)
        began = time.perf_counter()
        await handle.execute_update(
            DailyBriefingWorkflow.greet, GreetRequest(request_id=f"direct-{name}"), id=f"d-{name}"
        )
        update.append(time.perf_counter() - began)
    print(summary("query", query), flush=True)
    print(summary("update", update), flush=True)


async def api_ready(api_port: int) -> None:
    async with httpx.AsyncClient(trust_env=False, timeout=2) as http:
        for _ in range(600):
            try:
                if (await http.get(f"http://127.0.0.1:{api_port}/health")).status_code < 500:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError("the API did not start")


async def measure(api_port: int, names: list[str], rounds: int) -> None:
    base = f"http://127.0.0.1:{api_port}"
    headers = {"X-Device-Token": DEVICE}
    timings: dict[str, list[float]] = {"first": [], "spaced": [], "again": [], "burst": []}
    outcomes: dict[str, dict[str, int]] = {k: {} for k in timings}
    async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=30) as http:

        async def greet(kind: str, name: str, request_id: str) -> str:
            began = time.perf_counter()
            answer = await http.post(
                "/voice/greeting",
                json={"user_id": name, "request_id": request_id, "audio": False},
                headers=headers,
            )
            timings[kind].append(time.perf_counter() - began)
            answer.raise_for_status()
            outcome: str = answer.json()["outcome"]
            outcomes[kind][outcome] = outcomes[kind].get(outcome, 0) + 1
            return outcome

        # Warm the connection and the API (not counted): a greeting of an unknown user.
        await http.post("/voice/greeting", json={"user_id": "nobody"}, headers=headers)
        burst_user, sequential = names[0], names[1:]
        half = len(sequential) // 2
        for name in sequential[:half]:
            await greet("first", name, f"{name}-first")
        # Spaced: the previous greeting's follow-up work (recording it) has finished.
        for name in sequential[half:]:
            await asyncio.sleep(SPACING)
            await greet("spaced", name, f"{name}-first")
        for r in range(rounds):
            for name in sequential:
                await greet("again", name, f"{name}-again-{r}")
        for r in range(max(1, rounds)):
            results = await asyncio.gather(
                *(greet("burst", burst_user, f"burst-{r}-{i}") for i in range(10))
            )
            spoken = results.count("spoken")
            assert spoken == (1 if r == 0 else 0), f"burst {r}: {spoken} spoken"
    for kind, values in timings.items():
        print(summary(kind, values), outcomes[kind], flush=True)
    every = timings["first"] + timings["spaced"] + timings["again"]
    print(summary("all", every), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asyncio.run(main(args.users, args.rounds))
