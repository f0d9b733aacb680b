"""Where `ambient dev`'s start goes: each stage's time from the command's start, A/B paired.

One run starts `python -m ambient.cli dev` (what `make run` runs) on free ports in a new data
dir, then again on that same data dir (a restart: migrated, the user there), and stamps, from
the command's start:

- temporal: the Temporal frontend's port accepts a connection
- spawned: `ambient dev` has started the worker and the API (its children, read from /proc)
- polling: the worker polls the task queue for workflow tasks (DescribeTaskQueue)
- health: the API's /health answers 200
- up: `ambient dev` prints "ambient-ops is up"
- stop: SIGTERM to exit, after the stack was up

and the CPU of the whole tree (`ambient dev` waits for its children, so their CPU is its
own children's by the time it exits). With ``--vs TREE`` each run is followed by the same run
with TREE's code (another checkout: its `ambient` and `worker.py` come first on the path), and
the ratio of each stage is taken pair by pair.

    PYTHONPATH=$PWD .venv/bin/python -m bench.devstart --runs 7 --vs /path/to/other/checkout
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError

from tests.support.servers import free_port

STAGES = ("temporal", "spawned", "polling", "health", "up", "stop", "cpu")
QUEUE = "ambient-ops"  # `ambient dev`'s task queue (AMBIENT_* variables are not passed)
TICK = 0.05
HANG = 180.0


@dataclass
class Start:
    """One start's stamps, seconds from the command's start (cpu: seconds of CPU)."""

    times: dict[str, float] = field(default_factory=dict)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def spawned_worker_and_api(pid: int) -> bool:
    kinds = set()
    for child in children(pid):
        try:
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        kinds |= {b"worker", b"api"} & set(argv)
    return kinds == {b"worker", b"api"}


async def polling(client: Client) -> bool:
    described = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace="default",
            task_queue=TaskQueue(name=QUEUE),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return bool(described.pollers)


async def start_once(tree: Path, data: Path) -> Start:
    """`ambient dev` of ``tree`` on ``data``: stamps until everything is up, then stopped."""
    api_port, temporal_port, ui_port = free_port(), free_port(), free_port()
    command = [
        *(sys.executable, "-m", "ambient.cli", "dev", "--data-dir", str(data)),
        *("--api-port", str(api_port), "--temporal-port", str(temporal_port)),
        *("--ui-port", str(ui_port), "--metrics-port", "0"),
    ]
    # As `make run` starts it: the bytecode cache kept (the Makefile unexports the variable).
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AMBIENT_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    env["PYTHONPATH"] = str(tree)
    result = Start()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.monotonic()
    process = subprocess.Popen(  # noqa: ASYNC220 - the bench's one child, read in a thread
        command, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            if "ambient-ops is up" in line:
                result.times.setdefault("up", time.monotonic() - began)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def stamp(stage: str) -> None:
        result.times.setdefault(stage, time.monotonic() - began)

    async def tick() -> None:
        if process.poll() is not None:
            raise RuntimeError(f"ambient dev exited early:\n{''.join(output)}")
        await asyncio.sleep(TICK)

    # Each stage is watched by a task of its own: a probe that waits (a request to the API's
    # socket, bound from the start, waits in its backlog) holds back no other stage's stamp.
    async def temporal_and_polling() -> None:
        while not port_open(temporal_port):
            await tick()
        stamp("temporal")
        client: Client | None = None
        while True:
            try:
                client = client or await Client.connect(f"127.0.0.1:{temporal_port}")
                if await polling(client):
                    return stamp("polling")
            except (RuntimeError, RPCError):  # open, still starting: not answering yet
                pass
            await tick()

    async def spawned() -> None:
        while not spawned_worker_and_api(process.pid):
            await tick()
        stamp("spawned")

    async def health() -> None:
        async with httpx.AsyncClient(trust_env=False, timeout=2) as http:
            while True:
                try:
                    if (await http.get(f"http://127.0.0.1:{api_port}/health")).is_success:
                        return stamp("health")
                except httpx.TransportError:
                    pass
                await tick()

    async def up() -> None:
        while "up" not in result.times:
            await tick()

    try:
        probes = asyncio.gather(temporal_and_polling(), spawned(), health(), up())
        try:
            await asyncio.wait_for(probes, HANG)
        except TimeoutError:
            raise RuntimeError(f"not up in {HANG} s: {result.times}\n{''.join(output)}") from None
    finally:
        stopping = time.monotonic()
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, 60)
        result.times["stop"] = time.monotonic() - stopping
        reader.join(5)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result.times["cpu"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if process.returncode != 0:
        raise RuntimeError(f"ambient dev exited {process.returncode}:\n{''.join(output)}")
    return result


async def run_pair(tree: Path) -> tuple[Start, Start]:
    """A first start on a new data dir, then a restart on it."""
    folder = Path(tempfile.mkdtemp(prefix="devstart-"))
    try:
        return await start_once(tree, folder / "data"), await start_once(tree, folder / "data")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def report(runs: dict[str, dict[str, list[Start]]]) -> None:
    """One row a stage: each tree's median (min–max), then A/B's paired ratio when there is B."""
    columns = [(kind, name) for kind in ("first", "restart") for name in runs[kind]]
    paired = "B" in runs["first"]
    header = [f"{name} {kind}" for kind, name in columns]
    header += ["A/B first", "A/B restart"] if paired else []
    print("\nmedian (min–max) seconds from the command's start; cpu: the whole tree's CPU s")
    print("| stage | " + " | ".join(header) + " |")
    print("|---|" + "---:|" * len(header))
    for stage in STAGES:
        row = [spread([run.times[stage] for run in runs[kind][name]]) for kind, name in columns]
        for kind in ("first", "restart") if paired else ():
            pairs = zip(runs[kind]["A"], runs[kind]["B"], strict=True)
            row.append(spread([a.times[stage] / b.times[stage] for a, b in pairs]))
        print(f"| {stage} | " + " | ".join(row) + " |")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tree", type=Path, default=Path.cwd(), help="A: this checkout's code")
    parser.add_argument("--vs", type=Path, default=None, help="B: another checkout's code")
    parser.add_argument(
        "--warmup", type=int, default=1, help="uncounted runs first (writes bytecode caches)"
    )
    args = parser.parse_args()
    # Ports from a slice of their own (tests.support.servers): the tests' processes (gw0, gw1,
    # ...) take theirs from the first slices, and a port of theirs made a run's Temporal exit.
    os.environ.setdefault("PYTEST_XDIST_WORKER", "gw9")
    trees = {"A": args.tree.resolve()} | ({"B": args.vs.resolve()} if args.vs else {})
    runs: dict[str, dict[str, list[Start]]] = {
        kind: {name: [] for name in trees} for kind in ("first", "restart")
    }
    load = os.getloadavg()[0]
    print(f"A = {trees['A']}" + (f", B = {trees['B']}" if args.vs else ""), flush=True)
    for _ in range(args.warmup):
        for tree in trees.values():
            await run_pair(tree)
    for run in range(args.runs):
        for name, tree in trees.items():  # A then B, pair by pair
            first, again = await run_pair(tree)
            runs["first"][name].append(first)
            runs["restart"][name].append(again)
            stamps = ", ".join(f"{k} {v:.2f}" for k, v in first.times.items())
            print(f"run {run + 1} {name} first:   {stamps}", flush=True)
            stamps = ", ".join(f"{k} {v:.2f}" for k, v in again.times.items())
            print(f"run {run + 1} {name} restart: {stamps}", flush=True)
    print(f"\nload average (1 min) {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    report(runs)


if __name__ == "__main__":
    asyncio.run(main())
