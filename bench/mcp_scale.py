"""Benchmark: the MCP task tools at size, through the official MCP client over HTTP.

    python -m bench.mcp_scale --tasks 10000 --baseline 100 --repeat 30

Starts the whole product as ``make run`` does (``ambient dev``: Temporal dev server on a SQLite
file, worker, API with MCP at /mcp, each its own process) on free ports under a temporary data
directory, plus the page server of ``bench.site`` for the watches' pages. Every call goes
through ``mcp.Client`` over streamable HTTP with the dev user's bearer token.

Seeding (the fast path): the bench's own ``TaskService`` on the stack's Temporal server and app
database (the rules, task ids, search attributes and memo of every door) creates web monitors
(every 50th task a reminder) in concurrent batches of 100, on a task queue no worker polls and
without waiting for a first check. To ``list_tasks`` they are the same visibility rows as tasks
created through MCP; they cost the machine no checks (the dev server spends ~60 ms of CPU on a
watch's first check, see ``bench/creation.py``: 10,000 real first checks take 15 minutes on a
quiet machine). ``get_task`` and the creates are measured on tasks the worker runs.

At ``--baseline`` tasks and again at ``--tasks`` tasks, ``--repeat`` calls each of:

- ``list first``: ``list_tasks`` with no arguments (its default page);
- ``list later``: ``list_tasks`` with the cursor of the page ``--later`` pages in;
- ``list filtered``: ``list_tasks(kind="schedule")`` (the reminders, 1 in 50);
- ``get_task`` of a seeded web monitor;
- ``create web``: ``create_web_monitor`` of a new page (it answers with the first check);
- ``create reminder``: ``create_reminder``;
- ``svc web, start`` / ``svc web, +check``: a web monitor created by the bench's own
  ``TaskService`` on the worker's queue, without MCP: told not to wait for the first check,
  then waiting for it as the tools do (where ``create web``'s time goes).

Printed: p50 / p95 / max in ms at each size, the ratio of the p95s, and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from ambient import temporal
from ambient.briefing.service import BriefingService
from ambient.settings import Settings
from ambient.storage import Database
from ambient.watches.service import TaskService
from tests.support.servers import free_port

REMINDER_EVERY = 50
BATCH = 100
STARTUP_SECONDS = 180


@asynccontextmanager
async def dev_stack(data: Path) -> AsyncIterator[tuple[str, str, str, int]]:
    """``ambient dev`` and the page server; yields the API URL, the dev token, the page
    server's URL and Temporal's port."""
    api_port, site_port, temporal_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMBIENT_")}
    env["AMBIENT_FETCH_ALLOW_CIDRS"] = '["127.0.0.1/32"]'
    log = (data / "dev.log").open("wb")
    dev = subprocess.Popen(  # noqa: ASYNC220 - long-lived children, started once
        [
            *(sys.executable, "-m", "ambient.cli", "dev", "--data-dir", str(data)),
            *("--api-port", str(api_port), "--temporal-port", str(temporal_port)),
            *("--ui-port", str(free_port()), "--metrics-port", "0"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    site = subprocess.Popen([sys.executable, "-m", "bench.site", str(site_port)])  # noqa: ASYNC220
    api = f"http://127.0.0.1:{api_port}"
    try:
        async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
            deadline = time.monotonic() + STARTUP_SECONDS
            while True:
                if dev.poll() is not None:
                    raise RuntimeError(f"ambient dev exited: see {data / 'dev.log'}")
                try:
                    if (await http.get(f"{api}/health")).status_code < 500 and (
                        data / "dev-token"
                    ).exists():
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError("ambient dev did not come up")
                await asyncio.sleep(0.5)
        token = (data / "dev-token").read_text().strip()
        yield api, token, f"http://127.0.0.1:{site_port}", temporal_port
    finally:
        site.terminate()
        dev.send_signal(signal.SIGTERM)
        dev.wait(60)
        log.close()


@asynccontextmanager
async def sessions(
    api: str, token: str, count: int, mode: str = "auto"
) -> AsyncIterator[list[Client]]:
    async with AsyncExitStack() as stack:
        clients = []
        for _ in range(count):
            http = await stack.enter_async_context(
                httpx2.AsyncClient(
                    headers={"Authorization": f"Bearer {token}"}, trust_env=False, timeout=120
                )
            )
            clients.append(
                await stack.enter_async_context(
                    Client(streamable_http_client(f"{api}/mcp", http_client=http), mode=mode)
                )
            )
        yield clients


async def call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    if result.is_error or result.structured_content is None:
        text = " ".join(getattr(part, "text", "") for part in result.content)
        raise RuntimeError(f"{tool}: {text}")
    return result.structured_content


def web_config(site: str, page: str) -> dict[str, Any]:
    return {"urls": [f"{site}/page/{page}"], "check_interval_minutes": 1440}


def reminder_config(index: int) -> dict[str, Any]:
    return {
        "type": "daily",
        "hour": index % 24,
        "minute": index % 60,
        "timezone": "UTC",
        "message": f"bench {index}",
    }


async def seed(service: TaskService, site: str, first: int, last: int) -> float:
    """Create tasks ``first``..``last`` in concurrent batches; the seconds it took."""
    started = time.monotonic()
    for batch in range(first, last, BATCH):
        creates = []
        for index in range(batch, min(batch + BATCH, last)):
            if index % REMINDER_EVERY == REMINDER_EVERY - 1:
                creates.append(
                    service.create("dev", "schedule", reminder_config(index), f"r{index}")
                )
            else:
                config = web_config(site, f"s{index}")
                creates.append(service.create("dev", "web_monitor", config, f"s{index}"))
        await asyncio.gather(*creates)
        if batch % 1000 == 0:
            print(f"  created {batch} ({time.monotonic() - started:.0f} s)", flush=True)
    return time.monotonic() - started


async def timed(work: Callable[[int], Awaitable[object]], repeat: int) -> list[float]:
    times = []
    for index in range(repeat):
        started = time.perf_counter()
        await work(index)
        times.append((time.perf_counter() - started) * 1000)
    return times


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(
    client: Client,
    services: tuple[TaskService, TaskService],
    site: str,
    size: int,
    repeat: int,
    later: int,
) -> dict[str, list[float]]:
    starter, checker = services
    first = await call(client, "list_tasks")
    token = first.get("next_page_token")
    for _ in range(later - 1):
        if token is None:
            break
        token = (await call(client, "list_tasks", page_token=token)).get("next_page_token")
    later_args = {"page_token": token} if token else {}
    # A watch the worker runs (the seeded ones are parked: a query would wait for a worker).
    probe = await call(
        client, "create_web_monitor", config=web_config(site, f"probe-{size}"), name=f"p{size}"
    )
    some_watch = probe["task_id"]

    async def list_first(_: int) -> object:
        return await call(client, "list_tasks")

    async def list_later(_: int) -> object:
        return await call(client, "list_tasks", **later_args)

    async def list_filtered(_: int) -> object:
        return await call(client, "list_tasks", kind="schedule")

    async def get_task(_: int) -> object:
        return await call(client, "get_task", task_id=some_watch)

    async def create_web(index: int) -> object:
        page = f"new-{size}-{index}"
        return await call(client, "create_web_monitor", config=web_config(site, page), name=page)

    async def create_reminder(index: int) -> object:
        config = reminder_config(index) | {"message": f"new {size} {index}"}
        return await call(client, "create_reminder", config=config, name=f"new-{size}-{index}")

    async def start_only(index: int) -> object:
        page = f"svc-{size}-{index}"
        return await starter.create("dev", "web_monitor", web_config(site, page), page)

    async def start_and_check(index: int) -> object:
        page = f"svc-check-{size}-{index}"
        ref = await checker.create("dev", "web_monitor", web_config(site, page), page)
        if ref.baseline is None:
            raise RuntimeError(f"{page}: no first check in time")
        return ref

    return {
        "list first": await timed(list_first, repeat),
        f"list page {later}": await timed(list_later, repeat),
        "list filtered": await timed(list_filtered, repeat),
        "get_task": await timed(get_task, repeat),
        "create web": await timed(create_web, repeat),
        "create reminder": await timed(create_reminder, repeat),
        # Where a web monitor's create goes, without MCP: the start alone (the service told not
        # to wait for the first check), and the start with the wait for the first check.
        "svc web, start": await timed(start_only, repeat),
        "svc web, +check": await timed(start_and_check, repeat),
    }


def report(
    base: int, small: dict[str, list[float]], size: int, big: dict[str, list[float]]
) -> None:
    print(
        f"{'call':<16} {'p50 ' + str(base):>10} {'p95 ' + str(base):>10} "
        f"{'p50 ' + str(size):>11} {'p95 ' + str(size):>11} {'max ' + str(size):>11} "
        f"{'p95 ratio':>9}"
    )
    for name, values in big.items():
        ref = small[name]
        ratio = percentile(values, 0.95) / percentile(ref, 0.95)
        print(
            f"{name:<16} {percentile(ref, 0.5):>10.1f} {percentile(ref, 0.95):>10.1f} "
            f"{percentile(values, 0.5):>11.1f} {percentile(values, 0.95):>11.1f} "
            f"{max(values):>11.1f} {ratio:>8.2f}x"
        )


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def main(args: argparse.Namespace) -> None:
    data = Path(tempfile.mkdtemp(prefix="mcp-scale-"))
    print(f"# bench.mcp_scale --tasks {args.tasks} --baseline {args.baseline}", flush=True)
    try:
        small, big = await measured(args, data)
    finally:
        shutil.rmtree(data, ignore_errors=True)  # the stack's Temporal file and databases
    report(args.baseline, small, args.tasks, big)


async def measured(
    args: argparse.Namespace, data: Path
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Both sizes' calls timed on one stack in ``data``."""
    async with (
        dev_stack(data) as (api, token, site, temporal_port),
        sessions(api, token, 1, args.mode) as (client,),
    ):
        settings = Settings(
            data_dir=data,
            temporal_address=f"127.0.0.1:{temporal_port}",
            fetch_allow_cidrs=["127.0.0.1/32"],
            temporal_task_queue="bench-parked",
            _env_file=None,  # type: ignore[call-arg]
        )
        db = Database(settings.resolved_database_url)
        # baseline_wait=0: start the task, do not wait for a first check (none will come).
        client_of_stack = await temporal.connect(settings)
        service = TaskService(
            client_of_stack,
            settings,
            db,
            briefings=BriefingService(client_of_stack, settings, db),
            baseline_wait=0,
        )
        # On the queue the stack's worker polls, as the API's service is.
        queue = Settings.model_fields["temporal_task_queue"].default
        worked = settings.model_copy(update={"temporal_task_queue": queue})
        services = (
            TaskService(
                client_of_stack,
                worked,
                db,
                briefings=BriefingService(client_of_stack, worked, db),
                baseline_wait=0,
            ),
            TaskService(
                client_of_stack, worked, db, briefings=BriefingService(client_of_stack, worked, db)
            ),
        )
        print(f"load average at start: {load()}", flush=True)
        seconds = await seed(service, site, 0, args.baseline)
        print(f"seeded {args.baseline} in {seconds:.1f} s; load {load()}", flush=True)
        small = await measure(client, services, site, args.baseline, args.repeat, args.later)
        print(f"measured at {args.baseline}; load {load()}", flush=True)
        seconds = await seed(service, site, args.baseline, args.tasks)
        rate = (args.tasks - args.baseline) / seconds
        print(f"seeded to {args.tasks} in {seconds:.0f} s ({rate:.1f}/s); load {load()}")
        big = await measure(client, services, site, args.tasks, args.repeat, args.later)
        print(f"measured at {args.tasks}; load {load()}", flush=True)
        await db.close()
    return small, big


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10000)
    parser.add_argument("--baseline", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=30, help="calls of each kind per size")
    parser.add_argument("--later", type=int, default=5, help="which page is the later one")
    parser.add_argument(
        "--mode",
        default="auto",
        help="the clients' protocol: auto (the current one) or legacy (the initialize "
        "handshake of every client but mcp 2.x)",
    )
    asyncio.run(main(parser.parse_args()))
