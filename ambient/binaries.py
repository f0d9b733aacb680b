"""The programs we run: found next to our interpreter, stopped, their logs' last lines read."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path


def find_binary(name: str) -> str | None:
    """``name`` from this environment's scripts folder, else from PATH (venv need not be active)."""
    folders = [sysconfig.get_path("scripts"), str(Path(sys.executable).parent)]
    return shutil.which(name, path=os.pathsep.join([*folders, os.environ.get("PATH", os.defpath)]))


def stop_process(*processes: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM to each at once, and SIGKILL to those not ended within ``timeout`` seconds."""
    running = [process for process in processes if process.poll() is None]
    for process in running:
        process.terminate()
    deadline = time.monotonic() + timeout
    for process in running:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def log_tail(path: Path, separator: str = "\n") -> str:
    """The last five lines of a log, joined by ``separator`` ("" when it cannot be read)."""
    try:
        return separator.join(path.read_text(errors="replace").splitlines()[-5:])
    except OSError:
        return ""


def ended_with(parent: int, command: list[str]) -> list[str]:
    """``command`` run so that the kernel sends it SIGTERM when ``ambient dev`` ends, however
    it ends (SIGKILL, the OOM killer), not only by a signal it handles: Temporal, the worker and
    the API went on running, unseen, on the data folder. Set in a process of its own that then
    becomes the command (a Popen hook in ours could deadlock on a lock another thread held)."""
    if not sys.platform.startswith("linux"):
        return command
    return [sys.executable, "-c", PDEATHSIG_EXEC, str(parent), *command]


# prctl(PR_SET_PDEATHSIG = 1, SIGTERM); a parent already gone: not started at all.
PDEATHSIG_EXEC = (
    "import ctypes, os, signal, sys; "
    "ctypes.CDLL(None).prctl(1, signal.SIGTERM, 0, 0, 0); "
    "os.getppid() == int(sys.argv[1]) or sys.exit(1); "
    "os.execvp(sys.argv[2], sys.argv[2:])"
)
