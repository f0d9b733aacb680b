"""The programs we run: found next to our interpreter, stopped, their logs' last lines read."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path


def find_binary(name: str) -> str | None:
    """``name`` from this environment's scripts folder, else from PATH (venv need not be active)."""
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(folder) / name
        if candidate.is_file():
            return str(candidate)
    return shutil.which(name)


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, and SIGKILL if it has not ended within ``timeout`` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def log_tail(path: Path, separator: str = "\n", lines: int = 5) -> str:
    """The last ``lines`` lines of a log, joined by ``separator`` ("" when it cannot be read)."""
    try:
        return separator.join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
