"""Where the suite's CPU goes: `pytest -p tests.support.cpu` records each test's CPU seconds.

Opt-in (nothing loads it by default). Each test's figure is the test process's own CPU plus
that of every process it started: live descendants (the session's Temporal dev server, the
browser, `ambient dev` stacks) read from /proc, children already reaped from getrusage. A
session server's CPU in a test's window counts for that test, which is the work the test asked
of it. Each process (xdist worker or the only one) appends JSON lines to
``$AMBIENT_CPU_DIR/<worker>.jsonl``; ``python -m tests.support.cpu DIR`` sums them per file.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections import defaultdict
from collections.abc import Generator
from pathlib import Path

import pytest

_TICK = os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    stack = [pid]
    while stack:
        parent = stack.pop()
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except FileNotFoundError:
                continue
            found += children
            stack += children
    return found


def _live_cpu(pid: int) -> float:
    """utime + stime of ``pid`` and of the children it has waited for (cutime + cstime)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return sum(int(f) for f in fields[11:15]) / _TICK


def _cpu() -> float:
    own = time.process_time()
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (
        own
        + reaped.ru_utime
        + reaped.ru_stime
        + sum(_live_cpu(child) for child in _descendants(os.getpid()))
    )


def _out() -> Path | None:
    folder = os.environ.get("AMBIENT_CPU_DIR")
    if not folder:
        return None
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    Path(folder).mkdir(parents=True, exist_ok=True)
    return Path(folder) / f"{worker}.jsonl"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, None, None]:
    # Setup, call and teardown together: a session fixture started by this test counts here.
    cpu, wall = _cpu(), time.monotonic()
    yield
    out = _out()
    if out is not None:
        line = {
            "test": item.nodeid,
            "cpu": round(_cpu() - cpu, 3),
            "wall": round(time.monotonic() - wall, 3),
        }
        with out.open("a") as file:
            file.write(json.dumps(line) + "\n")


def _summarise(folder: Path, top: int = 40) -> None:
    tests = [
        json.loads(line)
        for f in folder.glob("*.jsonl")
        for line in f.read_text().split("\n")
        if line
    ]
    per_file: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    for test in tests:
        row = per_file[test["test"].split("::")[0]]
        row[0] += test["cpu"]
        row[1] += test["wall"]
        row[2] += 1
    total_cpu = sum(t["cpu"] for t in tests)
    total_wall = sum(t["wall"] for t in tests)
    print(f"{len(tests)} tests, CPU {total_cpu:.0f} s, wall summed {total_wall:.0f} s")
    print(f"\n{'cpu s':>8} {'wall s':>8} {'tests':>5}  file")
    for name, (cpu, wall, count) in sorted(per_file.items(), key=lambda kv: -kv[1][0])[:top]:
        print(f"{cpu:8.1f} {wall:8.1f} {count:5d}  {name}")
    print(f"\n{'cpu s':>8} {'wall s':>8}  test")
    for test in sorted(tests, key=lambda t: -t["cpu"])[:top]:
        print(f"{test['cpu']:8.1f} {test['wall']:8.1f}  {test['test']}")


if __name__ == "__main__":
    _summarise(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 40)
