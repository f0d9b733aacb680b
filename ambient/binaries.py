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
