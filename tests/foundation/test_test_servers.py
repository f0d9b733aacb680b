"""The servers a test process starts do not outlive it, however it ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.reaper import PROC
from tests.support.servers import HANG

pytestmark = pytest.mark.skipif(not PROC.is_dir(), reason="servers are told apart by /proc")

# Starts PostgreSQL, the Temporal dev server and a time-skipping test server as the fixtures
# do, says their pids, and waits to be killed.
CHILD = """
import asyncio, sys
from ambient.binaries import find_binary
from tests.support.reaper import serving_on
from tests.support.servers import start_dev_server, start_postgres, start_test_server

def pid(env):
    return serving_on(int(env.client.service_client.config.target_host.rsplit(":", 1)[1]))

async def main() -> None:
    postgres = start_postgres(sys.argv[1])
    dev = await start_dev_server(find_binary("temporal"))
    test = await start_test_server(find_binary("temporal-test-server"))
    print(postgres.get_pid(), pid(dev), pid(test), flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def running(pid: int, started: str) -> bool:
    """Whether ``pid`` is still the process that started at ``started``, and not a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z" and fields[19] == started


def test_a_killed_test_process_leaves_no_server_running() -> None:
    with tempfile.TemporaryDirectory() as folder:  # short: a socket path has a length limit
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, folder], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None
        pids = [int(pid) for pid in child.stdout.readline().split()]
        assert len(pids) == 3, "the child did not start its servers"
        started = {
            pid: Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19] for pid in pids
        }
        try:
            assert all(running(pid, started[pid]) for pid in pids)
            child.send_signal(signal.SIGKILL)
            child.wait()
            deadline = time.monotonic() + HANG
            while (left := [p for p in pids if running(p, started[p])]) and (
                time.monotonic() < deadline
            ):
                time.sleep(0.05)
            assert left == [], "servers outlived the killed test process"
        finally:
            for pid in pids:
                if running(pid, started[pid]):
                    os.kill(pid, signal.SIGTERM)
