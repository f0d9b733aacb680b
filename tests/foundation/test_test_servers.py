"""The servers a test process starts do not outlive it, however it ends."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from temporalio.client import Client

from ambient.binaries import find_binary
from tests.support import servers
from tests.support.reaper import PROC, listens_on, serving_on
from tests.support.servers import HANG
from tests.support.waits import eventually

pytestmark = pytest.mark.skipif(not PROC.is_dir(), reason="servers are told apart by /proc")

# Starts PostgreSQL, the Temporal dev server, a time-skipping test server as the fixtures do,
# and a server that ignores SIGTERM, says their pids, and waits to be killed.
CHILD = """
import asyncio, os, subprocess, sys
from ambient.binaries import find_binary
from tests.support.reaper import serving_on, stop_at_exit
from tests.support.servers import start_dev_server, start_postgres, start_test_server

DEAF = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
    " print(flush=True); time.sleep(3600)"
)

def pid(env):
    return serving_on(int(env.client.service_client.config.target_host.rsplit(":", 1)[1]))

async def main() -> None:
    postgres = start_postgres(sys.argv[1])
    dev = await start_dev_server(find_binary("temporal"))
    test = await start_test_server(find_binary("temporal-test-server"))
    deaf = subprocess.Popen([sys.executable, "-c", DEAF], stdout=subprocess.PIPE)
    deaf.stdout.readline()  # SIGTERM is ignored from here on
    stop_at_exit(deaf.pid)
    said = f"{postgres.get_pid()} {pid(dev)} {pid(test)} {deaf.pid}"
    with open(sys.argv[2] + ".part", "w") as out:  # renamed whole: never read half written
        out.write(said)
    os.rename(sys.argv[2] + ".part", sys.argv[2])
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


def test_a_killed_test_process_leaves_no_server_running_nor_its_folders() -> None:
    folder = tempfile.mkdtemp()  # short: a socket path has a length limit
    # The child says its servers' pids in a file: its stdout is theirs too (the Temporal dev
    # server printed a line of its own there first on a loaded machine).
    said = Path(tempfile.mkdtemp()) / "pids"
    child = subprocess.Popen([sys.executable, "-c", CHILD, folder, str(said)])
    pids: list[int] = []
    started: dict[int, str] = {}
    try:
        # Three servers started one after another (PostgreSQL's initdb first): a guard each.
        deadline = time.monotonic() + 3 * HANG
        while not said.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert said.exists(), "the child said nothing"
        pids = [int(pid) for pid in said.read_text().split()]
        assert len(pids) == 4, "the child did not start its servers"
        started.update(
            (pid, Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
            for pid in pids
        )
        assert all(running(pid, started[pid]) for pid in pids)
        child.send_signal(signal.SIGKILL)
        child.wait()
        deadline = time.monotonic() + HANG
        while (
            (left := [p for p in pids if running(p, started[p])]) or Path(folder).exists()
        ) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert left == [], "servers outlived the killed test process"
        assert not Path(folder).exists(), "PostgreSQL's data directory was left behind"
    finally:
        child.kill()
        child.wait()
        for pid in pids:
            if running(pid, started[pid]):  # the watchdog failed
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(said.parent, ignore_errors=True)


# Another process's Temporal server, started through a shell: its child, not this process's.
OTHERS = (
    "{binary} server start-dev --headless --ip 127.0.0.1 --port {port} --http-port {http} "
    "--metrics-port {metrics} --log-level error"
)


async def test_a_temporal_server_whose_port_another_process_took_starts_on_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A second test run beside this one (its ports from the same slice) takes the port between
    # the look and the bind: the server started on it exits, and the environment, which only
    # waits for the port to answer, used the other run's server (the start failed at once).
    binary = find_binary("temporal")
    assert binary is not None
    free_port = servers.free_port
    taken = free_port()
    command = OTHERS.format(binary=binary, port=taken, http=free_port(), metrics=free_port())
    others = subprocess.Popen(["sh", "-c", command], start_new_session=True)  # noqa: ASYNC220

    async def serving() -> bool:
        try:
            await Client.connect(f"127.0.0.1:{taken}")
        except Exception:  # not up yet
            return False
        return True

    try:
        await eventually(serving, "the other process's server")
        looks = iter([taken])
        monkeypatch.setattr(servers, "free_port", lambda: next(looks, 0) or free_port())
        env = await servers.start_dev_server(binary)
        try:
            port = int(env.client.service_client.config.target_host.rsplit(":", 1)[1])
            assert port != taken
            pid = serving_on(port)
            assert pid is not None and listens_on(pid, port)  # this process's own
        finally:
            await env.shutdown()
    finally:
        os.killpg(others.pid, signal.SIGKILL)
        others.wait()
