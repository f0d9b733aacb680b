"""Benchmark: how fast one worker process's polls take their watches at once (lease claims).

    python -m bench.claims --claims 2000 --concurrency 64 --rounds 5

A killed worker's polls are all started again in the live process within seconds of the sweep
(docs/polling.md, invariant 2); before a poll fetches, it claims its watch in one transaction
(``LeaseBook.claim``). This bench does what those starts do to the app database: ``--claims``
claims of distinct watches by one process, ``--concurrency`` at a time, on a real PostgreSQL
(pgserver's embedded binaries, as the tests and bench.replicas use) migrated to head, and on
the SQLite file with ``--sqlite``. Each round uses new watches; it prints claims a second per
round and their median, measured here.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from ambient.storage.db import Database
from ambient.storage.migrate import upgrade_async
from ambient.watches.leases import Lease, LeaseBook


async def one_round(book: LeaseBook, tag: str, claims: int, concurrency: int) -> float:
    """Claims a second for ``claims`` new watches, ``concurrency`` at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def claim(n: int) -> bool:
        async with gate:
            lease = Lease(f"web-monitor/bench/{tag}-{n}", "life", "run", 1)
            return await book.claim(lease) is not None

    started = time.perf_counter()
    taken = await asyncio.gather(*(claim(n) for n in range(claims)))
    seconds = time.perf_counter() - started
    if not all(taken):
        raise SystemExit(f"round {tag}: {taken.count(False)} claims refused")
    return claims / seconds


async def run(args: argparse.Namespace, url: str) -> None:
    await upgrade_async(url)
    db = Database(url)
    try:
        book = LeaseBook(db, "bench-process", dead_after=30.0)
        await one_round(book, "warm", min(args.claims, 100), args.concurrency)
        rates = []
        for number in range(args.rounds):
            rate = await one_round(book, f"r{number}", args.claims, args.concurrency)
            rates.append(rate)
            print(f"round {number + 1}: {rate:.0f} claims/s")
        print(
            f"claims/s over {args.rounds} rounds of {args.claims} ({args.concurrency} at a time, "
            f"{db.engine.dialect.name}): median {statistics.median(rates):.0f}, "
            f"min {min(rates):.0f}, max {max(rates):.0f}"
        )
    finally:
        await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--claims", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sqlite", action="store_true", help="the SQLite file, not PostgreSQL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ambient-bench-claims-") as folder:
        if args.sqlite:
            asyncio.run(run(args, f"sqlite+aiosqlite:///{Path(folder) / 'app.db'}"))
            return
        import pgserver  # the embedded PostgreSQL (the dev extra), as the tests use it

        server = pgserver.get_server(Path(folder) / "pg", cleanup_mode="stop")
        try:
            socket_dir = parse_qs(urlparse(server.get_uri()).query)["host"][0]
            asyncio.run(run(args, f"postgresql+asyncpg://postgres@/postgres?host={socket_dir}"))
        finally:
            server.cleanup()


if __name__ == "__main__":
    main()
