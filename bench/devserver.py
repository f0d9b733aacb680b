"""The embedded Temporal dev server as the benchmarks start it (loopback, our attributes)."""

from __future__ import annotations

from pathlib import Path

from ambient import temporal
from ambient.binaries import find_binary
from ambient.dev_temporal import temporal_settings
from tests.support.servers import free_port


def dev_server_command(data: Path, port: int) -> list[str]:
    """`temporal server start-dev` on ``port`` with a SQLite file under ``data``, as `ambient dev`
    runs it (``temporal_settings``)."""
    command = [
        find_binary("temporal") or "temporal",
        "server",
        "start-dev",
        "--headless",
        "--db-filename",
        str(data / "temporal.db"),
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--http-port",
        str(free_port()),
        "--metrics-port",
        str(free_port()),
        "--log-level",
        "error",
    ]
    command += temporal_settings()
    for key in temporal.SEARCH_ATTRIBUTES:
        command += ["--search-attribute", f"{key.name}=Keyword"]
    return command
