"""Servers a test process started, stopped even when the process is killed: pgserver's
PostgreSQL runs daemonized and the Temporal dev server outlives the process that spawned it, so
a test process killed by a signal (or crashed) left both running."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

PROC = Path("/proc")

# Its own process in its own session (a Ctrl-C to the run's process group must not end it
# first), reading the servers to stop from a pipe until the test process's end closes it,
# however the process ends; then it stops each that is still the process it was (its start
# time: a pid can be reused).
_WATCHDOG = """
import os, signal, sys
servers = [line.split() for line in sys.stdin]
for pid, started in servers:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().rsplit(")", 1)[1].split()[19] == started:
                os.kill(int(pid), signal.SIGTERM)
    except (OSError, IndexError):
        pass
"""


def _started(pid: int) -> str:
    """When ``pid`` started (clock ticks after boot: /proc/PID/stat's 22nd field)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]


@functools.cache
def _watchdog() -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-I", "-c", _WATCHDOG],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        text=True,
    )


def stop_at_exit(pid: int | None) -> None:
    """Have the server ``pid`` sent SIGTERM when this process ends, however it ends (where
    there is a /proc to tell it is still that server: Linux)."""
    if pid is None or not PROC.is_dir():
        return
    pipe = _watchdog().stdin
    assert pipe is not None
    pipe.write(f"{pid} {_started(pid)}\n")
    pipe.flush()


def _parent(proc: str) -> int | None:
    try:  # /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces and brackets
        return int(Path(proc, "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def serving_on(port: int) -> int | None:
    """The pid of this process's child started with ``port`` among its arguments (a Temporal
    server, which ``WorkflowEnvironment`` does not tell); None without /proc. Another user's
    or session's process naming the same number is never taken."""
    if not PROC.is_dir():
        return None
    wanted = str(port).encode()
    for entry in os.scandir(PROC):
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                args = Path(entry.path, "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue  # ended meanwhile
            if wanted in args and _parent(entry.path) == os.getpid():  # ours alone
                return int(entry.name)
    raise LookupError(f"no process serves on port {port}")
