"""API replicas as an operator runs them behind a load balancer: ``ambient api`` processes on
one app database, Temporal server and task queue."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from temporalio.testing import WorkflowEnvironment

from bench.replicas import ambient, healthy, stop
from tests.support.servers import free_port
from tests.support.waits import eventually

ROOT = Path(__file__).resolve().parents[2]
# A new process imports the whole API first: 14-17 s at a load average of 10-15 on two cores,
# and past HANG (nothing in its log after a minute) with the suite beside it. The bound of the
# other tests' process starts (test_dev_stack, test_roles_codec_ui).
STARTUP_SECONDS = 120.0


def api_env(database_url: str, env: WorkflowEnvironment, queue: str, data: Path) -> dict[str, str]:
    """What an operator sets on each API replica: one app database, Temporal server and queue."""
    own = {k: v for k, v in os.environ.items() if not k.startswith("AMBIENT_")}
    return own | {
        "PYTHONPATH": str(ROOT),
        "AMBIENT_ENVIRONMENT": "test",
        "AMBIENT_DATA_DIR": str(data),
        "AMBIENT_DATABASE_URL": database_url,
        "AMBIENT_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "AMBIENT_TEMPORAL_TASK_QUEUE": queue,
        "AMBIENT_METRICS_PORT": "0",
    }


@asynccontextmanager
async def api_replica(env: dict[str, str], log: Path) -> AsyncIterator[str]:
    """An API replica, ``ambient api`` in a process of its own: its base URL until stopped."""
    port = free_port()
    process: subprocess.Popen[bytes] = ambient(env, log, "api", "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(trust_env=False, timeout=5) as http:

            async def up() -> bool:
                assert process.poll() is None, log.read_text()
                return await healthy(url, http)

            await eventually(up, f"the API replica at {url}", bound=STARTUP_SECONDS)
        yield url
    finally:
        stop(process)
