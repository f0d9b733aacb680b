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

# How long a server is given to stop on SIGTERM before it is sent SIGKILL (a Temporal server
# stops in a second or two, PostgreSQL at once): a server ignoring SIGTERM does not outlive it.
GRACE = 10.0

# Its own process in its own session (a Ctrl-C to the run's process group must not end it
# first), reading the servers to stop and the folders to remove from a pipe until the test
# process's end closes it, however the process ends; then it stops each server that is still
# the process it was (its start time: a pid can be reused), SIGKILL after GRACE, and removes
# the folders once the servers are gone (PostgreSQL's data directory is in one).
_WATCHDOG = """
import os, shutil, signal, sys, time
servers, folders = [], []
for line in sys.stdin:
    kind, _, rest = line.rstrip("\\n").partition(" ")
    (servers if kind == "server" else folders).append(rest)

def running(server):
    pid, started = server.split()
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z" and fields[19] == started

def send(signum):
    for server in [s for s in servers if running(s)]:
        try:
            os.kill(int(server.split()[0]), signum)
        except OSError:
            pass

def wait(seconds):
    deadline = time.monotonic() + seconds
    while any(running(s) for s in servers) and time.monotonic() < deadline:
        time.sleep(0.05)

send(signal.SIGTERM)
wait(float(sys.argv[1]))
send(signal.SIGKILL)
wait(float(sys.argv[1]))
for folder in folders:
    shutil.rmtree(folder, ignore_errors=True)
"""


def _started(pid: int) -> str:
    """When ``pid`` started (clock ticks after boot: /proc/PID/stat's 22nd field)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]


@functools.cache
def _watchdog() -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-I", "-c", _WATCHDOG, str(GRACE)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        text=True,
    )


def _tell(line: str) -> None:
    pipe = _watchdog().stdin
    assert pipe is not None
    pipe.write(f"{line}\n")
    pipe.flush()


def stop_at_exit(pid: int | None) -> None:
    """Have the server ``pid`` stopped when this process ends, however it ends: SIGTERM, then
    SIGKILL after GRACE (where there is a /proc to tell it is still that server: Linux)."""
    if pid is not None and PROC.is_dir():
        _tell(f"server {pid} {_started(pid)}")


def remove_at_exit(folder: str) -> None:
    """Have ``folder`` removed when this process ends, however it ends, after its servers."""
    if PROC.is_dir():
        _tell(f"folder {folder}")


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


def _listeners(port: int) -> set[str]:
    """The sockets listening on loopback ``port`` (/proc/net/tcp: hex port, state 0A)."""
    found = set()
    for table in ("tcp", "tcp6"):
        try:
            rows = Path(PROC, "net", table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                found.add(f"socket:[{fields[9]}]")
    return found


def listens_on(pid: int, port: int) -> bool:
    """Whether the process ``pid`` holds the socket listening on ``port`` (True without
    /proc: nothing to tell it by)."""
    if not PROC.is_dir():
        return True
    wanted = _listeners(port)
    try:
        with os.scandir(Path(PROC, str(pid), "fd")) as fds:
            return any(_link(fd.path) in wanted for fd in fds)
    except OSError:
        return False  # ended


def _link(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""
