"""The embedded stacks the benchmarks run on.

``bench_stack`` (the watch benchmarks): the Temporal dev server (SQLite file) and the page
server of ``bench.site`` in their own processes, the app database, the worker's dependencies;
the worker itself runs in the benchmark's process (its CPU is the bench's).
``process_stack`` (greeting, 小智 bridge): the stack as `ambient dev` runs it, the dev server,
`ambient worker` and `ambient api` as child processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from ambient.clients.notify.registry import build_channels
from ambient.deps import WorkerDeps
from ambient.devstack import DevOptions, free_port, wait_for_temporal
from ambient.domain.users import UserCreate
from ambient.settings import Environment, Settings
from ambient.storage import Database
from ambient.storage.migrate import upgrade_async
from ambient.storage.users import UserRepository
from bench.devserver import dev_server_command

QUEUE = "bench"


@dataclass
class BenchStack:
    client: Client
    server_pid: int
    site: httpx.AsyncClient  # the page server's own API (/stats, /fetches)
    site_url: str
    deps: WorkerDeps


async def bench_database(settings: Settings) -> Database:
    """The app database of ``settings``, migrated, with the user ``bench``."""
    await upgrade_async(settings.resolved_database_url)
    db = Database(settings.resolved_database_url)
    async with db.session() as session:
        await UserRepository(session).create(UserCreate(name="bench"))
        await session.commit()
    return db


@asynccontextmanager
async def bench_stack(prefix: str) -> AsyncIterator[BenchStack]:
    """Start everything under a new temporary directory; stop it all on exit."""
    data = Path(tempfile.mkdtemp(prefix=prefix))
    port, site_port = free_port(), free_port()
    # The server's banner and logs go to a file: stdout is the report.
    log = (data / "temporal.log").open("wb")
    server = subprocess.Popen(dev_server_command(data, port), stdout=log, stderr=log)  # noqa: ASYNC220 - long-lived children, started once
    site_proc = subprocess.Popen([sys.executable, "-m", "bench.site", str(site_port)])  # noqa: ASYNC220
    # Worker limits are the product's (AMBIENT_* variables apply), so the bench measures the
    # worker as it ships.
    settings = Settings(
        environment=Environment.TEST,
        data_dir=data,
        temporal_address=f"127.0.0.1:{port}",
        temporal_task_queue=QUEUE,
        fetch_allow_cidrs=["127.0.0.1/32"],
        log_dir=data,  # the benches' log files are in the stack's folder
        metrics_port=None,
        _env_file=None,  # type: ignore[call-arg]
    )
    try:
        opts = DevOptions(data, 0, port, 0, None, None)
        client = await wait_for_temporal(settings, opts, time.monotonic() + 60)
        db = await bench_database(settings)
        site_url = f"http://127.0.0.1:{site_port}"
        async with (
            httpx.AsyncClient(trust_env=False, timeout=30) as http,
            httpx.AsyncClient(base_url=f"{site_url}/", trust_env=False, timeout=60) as site,
        ):
            for _ in range(100):
                try:
                    await site.get("/stats")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            deps = WorkerDeps(settings, db, build_channels(settings, db, http), http)
            try:
                yield BenchStack(client, server.pid, site, site_url, deps)
            finally:
                await deps.channels.aclose()  # before the database closes, as the worker
                await deps.pages.aclose()
                await db.close()
    finally:
        site_proc.terminate()
        server.terminate()
        server.wait(30)
        log.close()
        shutil.rmtree(data, ignore_errors=True)


@dataclass
class ProcessStack:
    data: Path
    client: Client
    settings: Settings  # the children's, but no metrics port
    db: Database
    api_port: int


def spawn(name: str, args: list[str], env: dict[str, str], data: Path) -> subprocess.Popen[bytes]:
    """`ambient <args>` as a child process, its output in ``data/<name>.log``."""
    log = (data / f"{name}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "ambient.cli", *args], env=env, stdout=log, stderr=log
    )


@asynccontextmanager
async def process_stack(prefix: str, queue: str, **overrides: Any) -> AsyncIterator[ProcessStack]:
    """The dev server, a migrated app database, `ambient worker` and `ambient api` under a new
    temporary directory, all with the settings ``overrides`` (as Settings fields); stopped on
    exit."""
    data = Path(tempfile.mkdtemp(prefix=prefix))
    port, api_port = free_port(), free_port()
    values: dict[str, Any] = {
        "environment": "test",
        "data_dir": data,
        "temporal_address": f"127.0.0.1:{port}",
        "temporal_task_queue": queue,
        "api_port": api_port,
        # The benches' log files are in the stack's folder: its members' briefings read them.
        "log_dir": data,
        **overrides,
    }
    env = {**os.environ, "AMBIENT_METRICS_PORT": str(free_port())}
    for name, value in values.items():
        text = value if isinstance(value, str | int | Path) else json.dumps(value)
        env[f"AMBIENT_{name.upper()}"] = str(text)
    settings = Settings(**values, metrics_port=None, _env_file=None)
    children = [subprocess.Popen(dev_server_command(data, port))]  # noqa: ASYNC220 - long-lived child
    try:
        opts = DevOptions(data, 0, port, 0, None, None)
        client = await wait_for_temporal(settings, opts, time.monotonic() + 60)
        await upgrade_async(settings.resolved_database_url)
        children.append(spawn("worker", ["worker"], env, data))
        children.append(spawn("api", ["api"], env, data))
        db = Database(settings.resolved_database_url)
        try:
            yield ProcessStack(data, client, settings, db, api_port)
        finally:
            await db.close()
    finally:
        for child in reversed(children):
            child.terminate()
            child.wait(30)
        shutil.rmtree(data, ignore_errors=True)
