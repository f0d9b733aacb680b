"""Benchmark: what storing the change of a very big page costs the other writers and the
event loop of its worker process (the polls' group commit, ambient/watches/poll_store.py).

    python -m bench.big_page_write --lines 100000 --keywords 10 --rounds 5

A page of ``--lines`` lines, every other line changing each round, is written by a
``PollWriter`` whose check compares it with the stored text (``diff_pages``, ``--keywords``
keyword filters), as a poll's changed check is. Meanwhile, in the same process, another
writer writes one row every 10 ms (a user's settings saved, another poll's check) and a
ticker sleeps 5 ms at a time. Printed per round, from what was measured: the write's time,
the other writer's longest wait and the ticker's longest stall beyond its sleep (the event
loop held). The first round (a baseline: nothing to compare) is not printed. SQLite file
database, as `make run` uses.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

from ambient.domain.users import UserCreate
from ambient.storage import Database
from ambient.storage.migrate import upgrade_async
from ambient.storage.users import UserRepository
from ambient.watches.page_changes import diff_pages
from ambient.watches.poll_store import NewEvent, PageText, PollWrite, PollWriter


def page(lines: int, version: int) -> list[str]:
    return [f"line {i} version {version if i % 2 else 0} of a status page" for i in range(lines)]


async def one_round(
    db: Database, lines: int, keywords: list[str], version: int
) -> tuple[float, float, float]:
    new = page(lines, version)

    def events(old: str | None) -> list[NewEvent]:
        diff = diff_pages(old.split("\n") if old else None, new, keywords)
        key = f"bench/big/{version}"
        return [NewEvent(seq=version, kind="watch.change", key=key, payload={"n": len(diff.added)})]

    last = f"h{version - 1}" if version > 1 else None
    item = PollWrite(
        poll="bench-big",
        life="life",
        user="bench",
        task="bench-big",
        seq=version - 1,
        urls={},
        events=events,
        page=PageText("https://example.com/", last, f"h{version}", "\n".join(new)),
    )
    waits: list[float] = []
    stalls: list[float] = []
    done = asyncio.Event()

    async def other_writer() -> None:
        while not done.is_set():
            started = time.perf_counter()
            async with db.writing() as session:
                await session.execute(text("UPDATE users SET language = language"))
            waits.append(time.perf_counter() - started)
            await asyncio.sleep(0.01)

    async def ticker() -> None:
        while not done.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0.005)
            stalls.append(time.perf_counter() - started - 0.005)

    beside = [asyncio.create_task(other_writer()), asyncio.create_task(ticker())]
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    await PollWriter(db, linger=0.0).write(item)
    took = time.perf_counter() - started
    done.set()
    await asyncio.gather(*beside)
    return took, max(waits), max(stalls)


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        await upgrade_async(url)
        db = Database(url)
        async with db.session() as session:
            await UserRepository(session).create(UserCreate(name="bench"))
            await session.commit()
        keywords = [f"keyword{i}" for i in range(args.keywords)]
        rows = [await one_round(db, args.lines, keywords, v) for v in range(1, args.rounds + 2)]
        await db.close()
    print(f"{args.lines:,} lines, {args.keywords} keywords, {args.rounds} rounds (ms)")
    for (took, wait, stall), version in zip(rows[1:], range(2, args.rounds + 2), strict=True):
        print(
            f"round {version}: write {took * 1000:.0f}, other writer's longest wait "
            f"{wait * 1000:.0f}, longest loop stall {stall * 1000:.0f}"
        )
    medians = [statistics.median(r[k] for r in rows[1:]) * 1000 for k in range(3)]
    print(
        "median: write {:.0f}, other writer's longest wait {:.0f}, loop stall {:.0f}".format(
            *medians
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--keywords", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(main(parser.parse_args()))
