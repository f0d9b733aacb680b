"""Start time of a command: wall and CPU of a few short `ambient` processes, A/B paired.

Each command runs in a process of its own, in this checkout (A) and in another (B, ``--vs``),
one after the other and in turn (A first in one pair, B first in the next), with the same
venv: the checkout's folder comes first on PYTHONPATH and is the working folder. CPU is user +
sys of the process (``resource.getrusage(RUSAGE_CHILDREN)`` before and after). The commands
end without any server:

- ``ambient --help``
- ``ambient chat --user nobody hi``: an unknown user, refused after the database is opened
- ``ambient task list --user nobody``: refused, Temporal does not answer (a closed port)
- ``python -c "import api.app"`` and ``python -c "import mcp_server.server"``

Bytecode is cached as `make` leaves it (PYTHONDONTWRITEBYTECODE unset), under a folder of the
run's own (PYTHONPYCACHEPREFIX) written by one unmeasured run of each command first. Each
checkout has a data folder of its own (made here), migrated by that first run. Prints each command's
median wall and CPU for A and B and the A/B ratio of each pair (median, min–max).

    PYTHONPATH=$PWD .venv/bin/python -m bench.startup --runs 7 --vs /path/to/other/checkout
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COMMANDS: dict[str, tuple[list[str], int]] = {  # name -> (argv, the exit status it ends with)
    "ambient --help": ([str(BIN / "ambient"), "--help"], 0),
    "ambient chat --user nobody hi": ([str(BIN / "ambient"), "chat", "--user", "nobody", "hi"], 1),
    "ambient task list --user nobody": (
        [str(BIN / "ambient"), "task", "list", "--user", "nobody"],
        1,
    ),
    "import api.app": ([sys.executable, "-c", "import api.app"], 0),
    "import mcp_server.server": ([sys.executable, "-c", "import mcp_server.server"], 0),
}


def closed_port() -> int:
    """A local port nothing listens on (bound and let go)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def environment(tree: Path, data: Path, cache: Path, temporal: str) -> dict[str, str]:
    # A command refuses a data folder that does not exist: the rows would time that refusal.
    data.mkdir(parents=True, exist_ok=True)
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AMBIENT_", "OPENAI_", "PYTHON", "TENCENTCLOUD_"))
    }
    return keep | {
        "PYTHONPATH": str(tree),
        "PYTHONPYCACHEPREFIX": str(cache),
        "AMBIENT_DATA_DIR": str(data),
        "AMBIENT_TEMPORAL_ADDRESS": temporal,
    }


def run(name: str, tree: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall s, CPU s) of one process; it must end as it does on every tree."""
    argv, status = COMMANDS[name]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(
        argv, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    if done.returncode != status:
        sys.exit(f"{name} in {tree}: exit {done.returncode}\n{done.stderr.decode()}")
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--vs", type=Path, required=True, help="the other checkout (B)")
    parser.add_argument("--only", action="append", help="a command's name (repeatable)")
    args = parser.parse_args()
    trees = {"A": HERE, "B": args.vs.resolve()}
    temporal = f"127.0.0.1:{closed_port()}"
    with tempfile.TemporaryDirectory(prefix="startup-") as scratch:
        envs = {
            name: environment(tree, Path(scratch, name), Path(scratch, "pycache"), temporal)
            for name, tree in trees.items()
        }
        names = args.only or list(COMMANDS)
        for name in names:  # the caches and the databases
            for side, tree in trees.items():
                run(name, tree, envs[side])
        print(f"A = {trees['A']}, B = {trees['B']}, {args.runs} pairs, median wall / CPU (s)")
        print(f"{'command':32} {'wall A':>6} {'B':>5} {'A/B (min–max)':>17}", end="")
        print(f" {'CPU A':>6} {'B':>5} {'A/B (min–max)':>17}")
        for name in names:
            got: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}
            for pair in range(args.runs):
                for side in "AB" if pair % 2 == 0 else "BA":
                    got[side].append(run(name, trees[side], envs[side]))
            row = f"{name:32}"
            for at in (0, 1):  # wall, CPU
                a, b = ([r[at] for r in got[side]] for side in "AB")
                ratios = [x / y for x, y in zip(a, b, strict=True)]
                row += f" {statistics.median(a):6.2f} {statistics.median(b):5.2f}"
                row += f" {statistics.median(ratios):5.2f}× ({min(ratios):.2f}–{max(ratios):.2f})"
            print(row, flush=True)


if __name__ == "__main__":
    main()
