"""Benchmark: what waits for a user's approval, read from many kept remediation runs, A/B.

    python -m bench.remediation_reads --runs 100000 --open 30 --repeat 15

Two SQLite databases hold the same ``--runs`` rows (``--open`` of them open, the rest
finished, each with a ~1.5 KB detail as a run's audit summary), one at the migration before
0031 (no index on a run's state or cluster), one at the head. Three variants take turns
(A B C, C B A, ...) reading what ``what_needs_me`` and the context provider read first: an
approver's clusters (``seen_by``) and the open runs they may see: A, the release before (no
index, the open runs as ``state NOT IN`` the final states); B, this one (the indexes, ``state
IN`` the open states, as ``list(open_only=True)`` reads them); C, the indexes with the
release before's ``NOT IN``. For a member who approves on the newest run's cluster (one of 40)
and for an admin. Printed: each variant's median and max in ms, the open rows found (the
same in all), and the ratios B/A and C/A of medians.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select

from ambient.remediation.runs import FINAL_STATES, OPEN_STATES
from ambient.remediation.storage import RemediationRepository
from ambient.storage import Database
from ambient.storage.migrate import upgrade_async
from ambient.storage.models import RemediationRecord, User

BEFORE = "0030_ids_64_bit"
CLUSTERS = 40


def rows(runs: int, open_: int) -> list[dict[str, object]]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    detail = {"summary": "x" * 1500}
    return [
        {
            "run_key": f"remediation/r{i}@run-{i}",
            "remediation_id": f"remediation/r{i}",
            "user": f"u{i % 50}",
            "cluster_id": f"cls-{i % CLUSTERS:08d}",
            "service": f"cls-{i % CLUSTERS:08d}/prod/app-{i}",
            "alert_type": "error_rate",
            "source": "webhook",
            "mode": "execute",
            "state": OPEN_STATES[i % len(OPEN_STATES)]
            if i >= runs - open_
            else FINAL_STATES[i % len(FINAL_STATES)],
            "detail": detail,
            "started_at": start + timedelta(seconds=i),
        }
        for i in range(runs)
    ]


async def fill(url: str, runs: int, open_: int) -> None:
    async with Database(url) as db, db.writing() as session:
        batch = rows(runs, open_)
        for at in range(0, len(batch), 5000):
            await session.execute(insert(RemediationRecord), batch[at : at + 5000])


async def read(db: Database, user: User, cluster: str, not_in: bool) -> tuple[float, int]:
    """The reads, the open runs as ``state NOT IN`` the final states (the release before's
    query, ``not_in``) or as the repository reads them now (``state IN`` the open states)."""
    approvers = {cluster: ["ann"]}
    began = time.perf_counter()
    async with db.session() as session:
        repository = RemediationRepository(session)
        seen = await repository.seen_by(user, approvers)
        if not_in:
            query = select(RemediationRecord).where(seen)
            query = query.where(RemediationRecord.state.not_in(FINAL_STATES))
            found = list(await session.scalars(query.order_by(RemediationRecord.id.desc())))
        else:
            found = await repository.list(open_only=True, seen=seen, limit=None)
    return (time.perf_counter() - began) * 1000, len(found)


async def main(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="remediation-reads-"))
    try:
        urls = {name: f"sqlite+aiosqlite:///{folder / name}.db" for name in "AB"}
        await upgrade_async(urls["A"], BEFORE)
        await fill(urls["A"], args.runs, args.open)
        shutil.copy(folder / "A.db", folder / "B.db")
        await upgrade_async(urls["B"])
        users = {
            "approver": User(name="ann", role="member"),
            "admin": User(name="root", role="admin"),
        }
        cluster = f"cls-{(args.runs - 1) % CLUSTERS:08d}"  # the newest run's: some are open
        # Each variant: its database and whether the open runs are read as NOT IN.
        variants = {"A": ("A", True), "B": ("B", False), "C": ("B", True)}
        for label, user in users.items():
            times: dict[str, list[float]] = {name: [] for name in variants}
            found: dict[str, set[int]] = {name: set() for name in variants}
            async with Database(urls["A"]) as a, Database(urls["B"]) as b:
                dbs = {"A": a, "B": b}
                for turn in range(args.repeat):
                    for name in "ABC" if turn % 2 == 0 else "CBA":
                        db, not_in = variants[name]
                        ms, count = await read(dbs[db], user, cluster, not_in)
                        times[name].append(ms)
                        found[name].add(count)
            medians = {name: statistics.median(times[name]) for name in variants}
            print(
                f"{label}: {args.runs} runs, {args.open} open; open rows read "
                + ", ".join(f"{name} {sorted(found[name])}" for name in variants)
                + "; "
                + ", ".join(
                    f"{name} median {medians[name]:.1f} ms (max {max(times[name]):.1f})"
                    for name in variants
                )
                + f"; B/A {medians['B'] / medians['A']:.3f}, C/A {medians['C'] / medians['A']:.3f}"
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--open", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=15)
    asyncio.run(main(parser.parse_args()))
