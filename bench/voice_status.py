"""Benchmark: the voice tools that name tasks, with many tasks, A/B in one run.

    python -m bench.voice_status --baseline 200 --tasks 2000 --repeat 15 --checkout A=PATH ...

Starts ``ambient dev`` and the page server as ``bench.mcp_scale`` does, seeds ``--baseline`` web
monitors with 63-character names (parked on a queue no worker polls, as there), one web monitor
the worker runs, the one asked about, and two parked web monitors created without a name,
failing (a ``watch.failing`` event each: said apart by their labels). At ``--baseline`` tasks
and again at ``--tasks``, each ``--checkout`` (default: this one) measures ``--repeat`` calls of
each ``--tool`` in a process of its own whose imports are that checkout's: the voice
server in-process (the MCP SDK's in-memory client, the voice profile's tools, ``open_state`` as
the API's), over the stack's Temporal server and database. Checkouts take turns (A B B A).
Tools: ``status``, ``task_status`` by the name as written; ``needs``, ``what_needs_me``;
``errors``, ``recent_errors``; ``control``, ``pause_task`` and ``resume_task`` in turn, the
name said otherwise ("shop 99999xxx…" for ``shop-99999-xxx…``).

Then ``--at-once`` calls together (a speaker's turns overlapping), timed to the last answer.
Printed: each checkout's median and max in ms at each size, each turn's together time, and
the load average.
``--profile FILE`` (with one checkout) writes a cProfile of the calls instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NAME_LENGTH = 63  # a task name's longest


def long_name(index: int) -> str:
    return f"shop-{index:05d}-".ljust(NAME_LENGTH, "x")


async def measure_here(args: argparse.Namespace) -> None:
    """One checkout's calls (this process's imports), printed as JSON: ms per call."""
    from ambient.settings import Settings
    from ambient.wiring import open_state
    from tests.support.mcp_as import mcp_as

    settings = Settings(
        data_dir=Path(args.data),
        temporal_address=args.temporal,
        _env_file=None,  # type: ignore[call-arg]
    )
    async with open_state(settings) as state, mcp_as(state, "dev", voice=True) as voice:
        calls = 0

        async def one() -> str:
            nonlocal calls
            calls += 1
            tool, arguments = {
                "status": ("task_status", {"name": args.name}),
                "needs": ("what_needs_me", {}),
                "errors": ("recent_errors", {}),
                "control": (
                    "pause_task" if calls % 2 else "resume_task",
                    {"name": args.name.replace("-", " ", 1).replace("-", "")},
                ),
            }[args.tool[-1] if isinstance(args.tool, list) else args.tool]
            result = await voice.call_tool(tool, arguments)
            return str(getattr(result.content[0], "text", ""))

        said = await one()  # warm: imports, connections
        if args.profile:
            import cProfile

            profile = cProfile.Profile()
            profile.enable()
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            await one()
            times.append((time.perf_counter() - started) * 1000)
        if args.profile:
            profile.disable()
            profile.dump_stats(args.profile)
        # ``--at-once`` calls together, as a speaker's turns overlap: when the last one answers.
        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(args.at_once)))
        together = (time.perf_counter() - started) * 1000
    print(json.dumps({"said": said, "ms": times, "together": together}))


def measured(
    checkout: Path, data: Path, temporal: str, name: str, args: argparse.Namespace
) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMBIENT_")}
    env["PYTHONPATH"] = str(checkout)
    # Run as a file from the checkout's root (its ``bench`` may not have this module): the
    # imports are that checkout's.
    here = str(Path(__file__).resolve())
    run = f"import runpy; runpy.run_path({here!r}, run_name='__main__')"
    command = [sys.executable, "-c", run, "--measure", "--data", str(data)]
    command += ["--temporal", temporal, "--name", name, "--repeat", str(args.repeat)]
    command += ["--tool", args.tool]
    command += ["--at-once", str(args.at_once)]
    if args.profile:
        command += ["--profile", args.profile]
    done = subprocess.run(command, env=env, cwd=checkout, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{checkout}: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


async def seed(service: object, site: str, first: int, last: int) -> None:
    from bench.mcp_scale import BATCH, web_config

    for batch in range(first, last, BATCH):
        await asyncio.gather(
            *(
                service.create(  # type: ignore[attr-defined]
                    "dev", "web_monitor", web_config(site, f"s{i}"), long_name(i)
                )
                for i in range(batch, min(batch + BATCH, last))
            )
        )


async def main(args: argparse.Namespace) -> None:
    from ambient import temporal
    from ambient.briefing.service import BriefingService
    from ambient.settings import Settings
    from ambient.storage import Database
    from ambient.storage.repositories import EventRepository
    from ambient.watches.service import TaskService
    from bench.mcp_scale import dev_stack, load, web_config

    checkouts = dict(c.split("=", 1) for c in args.checkout) or {"this": "."}
    data = Path(tempfile.mkdtemp(prefix="voice-status-"))
    results: dict[tuple[str, int], tuple[dict[str, list[float]], dict[str, list[float]]]] = {}
    try:
        async with dev_stack(data) as (_, _, site, temporal_port):
            address = f"127.0.0.1:{temporal_port}"
            settings = Settings(
                data_dir=data,
                temporal_address=address,
                fetch_allow_cidrs=["127.0.0.1/32"],
                temporal_task_queue="bench-parked",
                _env_file=None,  # type: ignore[call-arg]
            )
            db = Database(settings.resolved_database_url)
            client = await temporal.connect(settings)
            briefings = BriefingService(client, settings, db)
            parked = TaskService(client, settings, db, briefings=briefings, baseline_wait=0)
            queue = Settings.model_fields["temporal_task_queue"].default
            worked = settings.model_copy(update={"temporal_task_queue": queue})
            running = TaskService(client, worked, db, briefings=BriefingService(client, worked, db))
            name = long_name(99999)  # the one the worker runs: a query answers
            await running.create("dev", "web_monitor", web_config(site, "probe"), name)
            async with db.session() as session:  # two unnamed ones failing: said by labels
                for page in ("unnamed-1", "unnamed-2"):
                    ref = await parked.create("dev", "web_monitor", web_config(site, page))
                    url = web_config(site, page)["urls"][0]
                    await EventRepository(session).add(
                        "watch.failing", user="dev", task=ref.task_id, payload={"url": url}
                    )
                await session.commit()
            seeded = 0
            for size in (args.baseline, args.tasks):
                await seed(parked, site, seeded, size)
                seeded = size
                print(f"seeded {size}; load {load()}", flush=True)
                order = [*checkouts, *reversed(checkouts)]
                for tool in args.tool or ["status"]:
                    times: dict[str, list[float]] = {label: [] for label in checkouts}
                    together: dict[str, list[float]] = {label: [] for label in checkouts}
                    for label in order:
                        out = await asyncio.to_thread(
                            measured,
                            Path(checkouts[label]),
                            data,
                            address,
                            name,
                            argparse.Namespace(**{**vars(args), "tool": tool}),
                        )
                        times[label] += out["ms"]
                        together[label].append(out["together"])
                        print(f"  {label} {tool} at {size}: {out['said']}", flush=True)
                    results[tool, size] = (times, together)
                print(f"measured at {size}; load {load()}", flush=True)
            await db.close()
    finally:
        shutil.rmtree(data, ignore_errors=True)
    print(
        f"{'tool':<8} {'checkout':<10} {'tasks':>6} {'calls':>6} {'median ms':>10} {'max ms':>8}"
        f" {f'{args.at_once} at once, last ms (each turn)':>36}"
    )
    for (tool, size), (times, together) in sorted(results.items()):
        for label, values in times.items():
            last = " ".join(f"{t:.0f}" for t in together[label])
            print(
                f"{tool:<8} {label:<10} {size:>6} {len(values):>6} "
                f"{statistics.median(values):>10.1f} {max(values):>8.1f} {last:>36}"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=15, help="calls per checkout per turn")
    parser.add_argument(
        "--checkout", action="append", default=[], help="LABEL=PATH of a checkout to measure"
    )
    parser.add_argument("--at-once", type=int, default=12, help="calls made together")
    parser.add_argument("--profile", help="write a cProfile of the calls to this file")
    parser.add_argument(
        "--tool",
        action="append",
        choices=["status", "needs", "errors", "control"],
        help="a tool to measure (repeated: each in turn; default status)",
    )
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--temporal", help=argparse.SUPPRESS)
    parser.add_argument("--name", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    asyncio.run(measure_here(arguments) if arguments.measure else main(arguments))
