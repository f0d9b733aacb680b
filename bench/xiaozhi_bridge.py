"""Benchmark: every voice tool over the xiaozhi.me endpoint bridge, and the context provider,
on the embedded stack.

    python -m bench.xiaozhi_bridge --requests 20

As `ambient dev` runs it, in one temporary folder: the Temporal dev server (SQLite file),
`ambient worker` and `ambient api` as child processes (SQLite app database); the API process
runs the bridge. This process plays xiaozhi.me (the broker emulator of
tests/standins/xiaozhi_broker.py, official mode: id 0, newline-ended frames, the broker's extra
params on every tools/call) and serves the error-rate page the remediations verify against.

Prepared before timing, for the user ``bench`` (rollback permission dry_run):
- today's briefing, prepared from a log file (``greet``: the first call speaks it, the rest
  answer "already given"),
- one remediation waiting for approval on ``checkout`` (``what_needs_me``), and before each
  round one to approve (``alpha-NN``) and one to refuse (``bravo-NN``), by name (the voice
  lookup considers the 20 newest open runs, so they cannot all be started up front),
- a web monitor ``shop-home`` (``task_status``, ``pause_task``, ``resume_task`` alternate),
- a registered device (``context``: `GET /xiaozhi/context`, over HTTP, not the bridge).

Each tool is called N times one after another through the broker connection (the time from
the broker sending ``tools/call`` to the answer frame) and every answer is checked. Prints
p50/p95/max per tool in milliseconds and whether each meets the issue's target (voice tools
p95 ≤ 3 s, context p95 ≤ 100 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx

from ambient.briefing.service import BriefingService
from ambient.domain.users import UserCreate
from ambient.remediation.runs import FINAL_STATES
from ambient.remediation.service import RemediationService
from ambient.storage import Database
from ambient.storage.users import UserRepository
from ambient.watches.service import TaskService
from ambient.xiaozhi import DeviceService
from ambient.xiaozhi_context import waiting_for
from ambient.xiaozhi_views import DeviceAdded
from bench.greeting import ZONES, api_ready, pct, prepared, write_logs
from bench.stack import process_stack
from tests.remediation.support import alert, error_rate
from tests.standins.xiaozhi_broker import ToolConnection, running_broker

QUEUE = "bench-xiaozhi"
USER = "bench"
TARGET_MS = {"context": 100.0}
VOICE_TARGET_MS = 3000.0


def line(name: str, ms: list[float], target: float | None = None) -> str:
    target = target or TARGET_MS.get(name, VOICE_TARGET_MS)
    p95 = pct(ms, 0.95)
    verdict = "ok" if p95 <= target else f"MISSES {target:.0f} ms"
    return (
        f"{name:20} n={len(ms):3}  p50={statistics.median(ms):7.1f} ms  "
        f"p95={p95:7.1f} ms  max={max(ms):7.1f} ms  {verdict}"
    )


async def waiting(service: RemediationService, workloads: set[str]) -> None:
    """Until a remediation of each of ``workloads`` waits for ``USER``'s approval."""
    for _ in range(2400):
        found = {r.service.rsplit("/", 1)[-1] for r in await waiting_for(service, USER)}
        if workloads <= found:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{workloads} never all reached waiting_approval")


async def main(requests: int) -> None:
    zone = next(z for z in ZONES if 1 <= datetime.now(UTC).astimezone(ZoneInfo(z)).hour <= 22)
    async with process_stack(
        "ambient-bench-xiaozhi-",
        QUEUE,
        # the broker emulator and the error-rate page listen on loopback
        fetch_allow_cidrs=["127.0.0.1/32"],
        remediation_approval_from_rung=1,
        remediation_cluster_cooldown_seconds=0,
        remediation_rate_limit_per_hour=0,
    ) as stack:
        client, settings, db, api_port = stack.client, stack.settings, stack.db, stack.api_port
        async with db.session() as session:
            user, token = await UserRepository(session).create(UserCreate(name=USER))
            user.rollback_permission = "dry_run"
            await session.commit()
        device = await DeviceService(db).add(USER, USER, "aa:bb:cc:dd:ee:ff")

        logs = stack.data / "app.log"
        write_logs(logs, zone)
        briefings = BriefingService(client, settings, db)
        await briefings.create(
            USER,
            {
                "log_source": {"type": "file", "path": str(logs)},
                "timezone": zone,
                "prepare_at": "00:00",
                "window_start": "00:00",
                "window_end": "23:59",
                "language": "zh",
                "push_if_not_greeted": False,
            },
        )
        async with error_rate(healthy_from=None) as (_, url):
            remediations = RemediationService(client, settings, db)
            await remediations.start(USER, alert(url, workload="checkout"), "dry_run")
            await TaskService(
                client, settings, db, briefings=BriefingService(client, settings, db)
            ).create(
                USER, "web_monitor", {"urls": [url], "check_interval_minutes": 60}, "shop-home"
            )
            await prepared(briefings, USER)
            await waiting(remediations, {"checkout"})
            print(f"prepared: briefing ({zone}), checkout waiting, a web monitor", flush=True)

            async def next_round(i: int) -> None:
                # One to approve and one to refuse per round, started before the round's
                # timing: the voice lookup asks about the 20 newest open runs only.
                for workload in (f"alpha-{i:02d}", f"bravo-{i:02d}"):
                    await remediations.start(USER, alert(url, workload=workload), "dry_run")
                await waiting(remediations, {f"alpha-{i:02d}", f"bravo-{i:02d}"})

            await api_ready(api_port)
            await measure(api_port, token, device, requests, next_round)
            await lookup(remediations, db)


async def measure(
    api_port: int,
    token: str,
    device: DeviceAdded,
    requests: int,
    next_round: Callable[[int], Awaitable[None]],
) -> None:
    jwt = "bench-endpoint-jwt"
    timings: dict[str, list[float]] = {}
    said: dict[str, str] = {}  # the first answer of each tool, printed as a sample
    async with (
        running_broker({jwt}, ping_every=5) as broker,
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{api_port}", trust_env=False, timeout=30
        ) as http,
    ):
        began = time.perf_counter()
        added = await http.post(
            "/xiaozhi/endpoints",
            json={"user": USER, "url": broker.url(jwt)},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert added.status_code == 201, added.text
        connection = await asyncio.wait_for(broker.wait_ready(jwt), 30)
        print(
            f"endpoint registered -> tools listed over the bridge: "
            f"{(time.perf_counter() - began) * 1000:.0f} ms, {len(connection.tools)} tools",
            flush=True,
        )

        async def timed(name: str, tool: str, arguments: dict[str, str], check: str) -> None:
            spoken = await call(connection, tool, arguments, timings.setdefault(name, []))
            assert check in spoken, (name, spoken)
            said.setdefault(name, spoken)

        await call(connection, "recent_errors", {}, [])  # warm the path (not counted)
        for i in range(requests):
            await next_round(i)
            await timed("greet", "greet", {}, "简报")
            await timed("what_needs_me", "what_needs_me", {}, "等你审批")
            # An approval by voice is asked back first, then said again to confirm.
            which = {"which": f"alpha {i:02d}"}
            await timed("approve (asked back)", "approve_remediation", which, "确认")
            await timed("approve_remediation", "approve_remediation", which, "已批准")
            await timed("refuse_remediation", "refuse_remediation", {"which": f"bravo {i:02d}"}, "")
            await timed("task_status", "task_status", {"name": "shop home"}, "shop home")
            await timed("pause_task", "pause_task", {"name": "shop home"}, "暂停")
            await timed("resume_task", "resume_task", {"name": "shop home"}, "")
            await timed("cluster_health", "cluster_health", {}, "")
            await timed("recent_errors", "recent_errors", {}, "")
        wake = {"device-id": device.device_id, "Authorization": f"Bearer {device.token}"}
        context = timings.setdefault("context", [])
        for _ in range(max(requests, 100)):
            start = time.perf_counter()
            answer = await http.get("/xiaozhi/context", headers=wake)
            context.append((time.perf_counter() - start) * 1000)
            assert answer.json()["code"] == 0, answer.text
    for name, text in said.items():
        print(f"{name} said: {text}", flush=True)
    for name, ms in timings.items():
        print(line(name, ms), flush=True)


async def lookup(service: RemediationService, db: Database) -> None:
    """Where the context's time goes: the approvals-waiting lookup, in this process, now
    (the server's list narrows the open runs to those waiting, then a query each) and as it
    was (a full view of each of the 20 newest open runs), and the bare queries of those."""
    from ambient.remediation.storage import RemediationRepository

    async with db.session() as session:
        rows = await RemediationRepository(session).list(limit=500)
    candidates = [r.remediation_id for r in rows if r.state not in FINAL_STATES][:20]
    parts: dict[str, list[float]] = {"lookup now": [], "lookup before": [], "queries only": []}
    for _ in range(30):
        start = time.perf_counter()
        await waiting_for(service, USER)
        parts["lookup now"].append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        async with db.session() as session:
            await RemediationRepository(session).list(limit=500)
        await asyncio.gather(*(service.get(USER, rid) for rid in candidates))
        parts["lookup before"].append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        await asyncio.gather(*(service._status(rid) for rid in candidates))
        parts["queries only"].append((time.perf_counter() - start) * 1000)
    waiting = len(await waiting_for(service, USER))
    print(
        f"approvals lookup, {len(candidates)} newest open runs, {waiting} waiting "
        "(in this process; the context's target for reference):",
        flush=True,
    )
    for name, ms in parts.items():
        print(line(name, ms, TARGET_MS["context"]), flush=True)


async def call(
    connection: ToolConnection, tool: str, arguments: dict[str, str], into: list[float]
) -> str:
    start = time.perf_counter()
    answer = await connection.call_tool(tool, arguments)
    into.append((time.perf_counter() - start) * 1000)
    result = answer["result"]
    assert not result.get("isError"), result
    text: str = result["content"][0]["text"]
    return text


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    for noisy in ("httpx", "tests.standins.xiaozhi_broker"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    asyncio.run(main(args.requests))
