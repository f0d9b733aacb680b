"""Benchmark: a test run from a fresh clone with Python's bytecode cache kept vs turned off.

    python -m bench.bytecode --rounds 2 -- tests/agent/test_chat_cli.py \
        tests/voice/test_voice_stdio.py

Where the environment sets PYTHONDONTWRITEBYTECODE (these machines do), no process writes a
``.pyc``: every process the tests start — the CLI, the worker, `ambient dev`, the MCP servers
over stdio — compiles every module it imports again. The Makefile unexports the variable. This
bench runs the given pytest selection (``-n 2``) once each way per round, A and B in turn, each
from an empty cache of its own (``PYTHONPYCACHEPREFIX`` = a new empty folder, so the venv's and
the tree's existing ``.pyc`` files are not read: the fresh clone's state):

- ``kept``: the cache is written (the Makefile's way), so the first process compiles a module
  and every later one reads it;
- ``off``: PYTHONDONTWRITEBYTECODE=1, every process compiles.

Prints each run's CPU seconds (user + sys of pytest and every process it waited for, from
``os.wait4``) and wall seconds, the medians, and the kept/off ratio of each pair.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time


def run(selection: list[str], *, keep: bool) -> tuple[float, float, int]:
    """One pytest run from an empty bytecode cache: (CPU s, wall s, exit status)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if not keep:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    with tempfile.TemporaryDirectory(prefix="pycache-") as cache:
        env["PYTHONPYCACHEPREFIX"] = cache
        command = [sys.executable, "-m", "pytest", "-q", "-n", "2", "-p", "no:cacheprovider"]
        started = time.monotonic()
        process = subprocess.Popen(
            [*command, *selection], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - started
    return usage.ru_utime + usage.ru_stime, wall, os.waitstatus_to_exitcode(status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("selection", nargs="+", help="pytest arguments (files, -k ...)")
    args = parser.parse_args()
    kept: list[tuple[float, float]] = []
    off: list[tuple[float, float]] = []
    for round_ in range(1, args.rounds + 1):
        for keep, into in ((True, kept), (False, off)):
            cpu, wall, code = run(args.selection, keep=keep)
            into.append((cpu, wall))
            name = "kept" if keep else "off"
            print(f"round {round_} {name:4}: cpu {cpu:7.1f} s  wall {wall:7.1f} s  exit {code}")
            if code != 0:
                sys.exit(f"pytest exited {code}: the figures would not be of a passing run")
    for name, runs in (("kept", kept), ("off", off)):
        cpu = statistics.median(c for c, _ in runs)
        wall = statistics.median(w for _, w in runs)
        print(f"median {name:4}: cpu {cpu:7.1f} s  wall {wall:7.1f} s")
    ratios = [k[0] / o[0] for k, o in zip(kept, off, strict=True)]
    walls = [k[1] / o[1] for k, o in zip(kept, off, strict=True)]
    print("kept/off cpu per pair: " + " ".join(f"{r:.2f}" for r in ratios))
    print("kept/off wall per pair: " + " ".join(f"{r:.2f}" for r in walls))


if __name__ == "__main__":
    main()
