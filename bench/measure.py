"""What a bench process spends: CPU and RSS read from /proc, and a traced Python heap printed."""

from __future__ import annotations

import ctypes
import os
import tracemalloc
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
TRACE_FRAMES = 12


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def print_trace(snapshot: tracemalloc.Snapshot, n: int, top: int, grown_kb: float) -> None:
    snapshot = snapshot.filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<unknown>")]
    )
    total = sum(stat.size for stat in snapshot.statistics("filename")) / 1024
    print(
        f"\nPython heap traced: {total / n:.1f} KB a watch of the RSS increase's "
        f"{grown_kb / n:.1f} (the rest is native: Temporal core, the allocator)\n"
    )
    for key in ("lineno", "filename"):
        print(f"| KB a watch | blocks a watch | {key} |\n|---|---|---|")
        for stat in snapshot.statistics(key)[:top]:
            frame = stat.traceback[0]
            where = frame.filename.split("site-packages/")[-1]
            where = where if key == "filename" else f"{where}:{frame.lineno}"
            print(f"| {stat.size / 1024 / n:.2f} | {stat.count / n:.1f} | {where} |")
        print()
    # Who made the largest lines' blocks: their most common call paths.
    for stat in snapshot.statistics("lineno")[:5]:
        frame = stat.traceback[0]
        here = snapshot.filter_traces([tracemalloc.Filter(True, frame.filename, frame.lineno)])
        path = here.statistics("traceback")[0]
        print(f"{path.size / 1024 / n:.2f} KB a watch from:")
        for line in path.traceback.format():
            print("   ", line.split("site-packages/")[-1])


def sqlite_mb() -> float:
    """What SQLite's allocator holds in this process (the app database's page caches and
    statements, every connection): nan where the library is not found."""
    try:
        used = ctypes.CDLL("libsqlite3.so.0").sqlite3_memory_used
    except (OSError, AttributeError):
        return float("nan")
    used.restype = ctypes.c_int64
    return int(used()) / 2**20
