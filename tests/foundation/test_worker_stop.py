"""A stop the worker's shutdown cannot finish (a run the SDK could not evict, docs/deploy.md
"Logs") ends the process after `worker.STOP_LIMIT`, saying so; a stop that finishes does not."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from ambient.settings import Settings
from tests.conftest import unique

ROOT = Path(__file__).resolve().parents[2]

# `ambient worker`'s run_worker, its limit shortened; "stuck": the SDK's shutdown never returns,
# as when a run's eviction is retried for good.
SCRIPT = """
import asyncio, logging, sys
import temporalio.worker
import worker
from ambient.settings import Settings

worker.STOP_LIMIT = 1.0
if sys.argv[1] == "stuck":
    async def never(self) -> None:
        await asyncio.Event().wait()
    temporalio.worker.Worker.shutdown = never
logging.basicConfig(level=logging.INFO)
asyncio.run(worker.run_worker(Settings()))
# A finished stop leaves no timer to end the process later (one left would fire here).
import threading
for timer in [t for t in threading.enumerate() if isinstance(t, threading.Timer)]:
    timer.join(2)
print("exited by itself", flush=True)
"""


def _start(kind: str, variables: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-c", SCRIPT, kind],
            env=variables,
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


async def _stopped(env: WorkflowEnvironment, settings: Settings, kind: str, log: Path) -> int:
    """The worker started, stopped by SIGTERM once it polls; its exit status."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith("AMBIENT_")}
    variables = {
        **keep,
        "PYTHONPATH": str(ROOT),
        "AMBIENT_DATA_DIR": str(settings.data_dir),
        "AMBIENT_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "AMBIENT_TEMPORAL_TASK_QUEUE": unique("tq"),
        "AMBIENT_METRICS_PORT": "0",
    }
    process = _start(kind, variables, log)
    try:
        deadline = time.monotonic() + 60
        while b"worker polling" not in log.read_bytes():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(process.wait, 60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def test_a_stop_the_shutdown_cannot_finish_ends_the_process_saying_why(
    dev_env: WorkflowEnvironment, settings: Settings, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    assert await _stopped(dev_env, settings, "stuck", log) == 1, log.read_text()
    said = log.read_text()
    assert "the worker did not stop within 1 s" in said, said
    assert "exited by itself" not in said


async def test_a_stop_that_finishes_exits_as_it_would(
    dev_env: WorkflowEnvironment, settings: Settings, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    assert await _stopped(dev_env, settings, "clean", log) == 0, log.read_text()
    said = log.read_text()
    assert "exited by itself" in said and "did not stop" not in said, said
