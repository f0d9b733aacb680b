"""End requests reach the process running the poll: the cursor that reads them skips none."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import text

from ambient.storage import Database
from ambient.storage.models import utcnow
from ambient.watches.poll_ends import (
    EndRequest,
    EndRequestCursor,
    add_end_requests,
    drop_end_requests,
    request_ends,
)
from tests.foundation.test_postgres import postgres_url  # noqa: F401  (fixture)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request: pytest.FixtureRequest) -> Database:
    """The same test on the migrated SQLite file and on a real PostgreSQL."""
    fixture = "db" if request.param == "sqlite" else "pg"
    database: Database = request.getfixturevalue(fixture)
    return database


async def test_a_request_written_after_the_sweep_emptied_the_table_is_read(
    any_db: Database,
) -> None:
    # SQLite hands out max(id) + 1: once the sweep drops the newest row, a new request could
    # get an id the cursor has already passed.
    cursor = EndRequestCursor(any_db)
    await cursor.read()
    await request_ends(any_db, [EndRequest("w1", "life")])
    await request_ends(any_db, [EndRequest("w2", "life")])
    assert [r.task for r in await cursor.read()] == ["w1", "w2"]
    await drop_end_requests(any_db, utcnow() + timedelta(days=1))  # every request is old
    await request_ends(any_db, [EndRequest("w3", "life", "run", 4)])
    assert [(r.task, r.run_id, r.poll) for r in await cursor.read()] == [("w3", "run", 4)]
    assert await cursor.read() == []


async def _waiting_on_a_lock(db: Database) -> bool:
    async with db.session() as session:
        waiting = await session.scalar(text("SELECT count(*) FROM pg_locks WHERE NOT granted"))
    return bool(waiting)


async def test_a_request_that_commits_after_a_later_one_is_read_on_postgresql(
    pg: Database,
) -> None:
    # Two controls write at once: the first takes its id, the second takes the next one and
    # commits first. A cursor that read the second must still read the first when it commits.
    cursor = EndRequestCursor(pg)
    await cursor.read()
    seen = []
    async with pg.write_session() as slow:
        await add_end_requests(slow, [EndRequest("w-first", "life")])
        fast = asyncio.create_task(request_ends(pg, [EndRequest("w-second", "life")]))
        for _ in range(300):  # a bound, not a timing claim
            if fast.done() or await _waiting_on_a_lock(pg):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the second writer neither committed nor waited")
        seen += await cursor.read()
        await slow.commit()
    await fast
    seen += await cursor.read()
    seen += await cursor.read()
    assert sorted(r.task for r in seen) == ["w-first", "w-second"]
