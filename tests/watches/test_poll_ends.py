"""End requests reach the process running the poll: the cursor that reads them skips none."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, text

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


async def test_the_mailbox_read_runs_in_the_loops_thread_and_waits_for_no_writer(
    db: Database,
) -> None:
    # Every process running polls reads the mailbox twice a second: through aiosqlite's
    # thread each read cost the worker about three times its SQLite work (thread hops). In
    # the loop's thread it must not wait for a writer that holds the write lock.
    ran: list[tuple[str, int]] = []

    @event.listens_for(db.engine.sync_engine, "connect")
    def _trace(dbapi_conn: Any, _record: Any) -> None:
        sqlite = dbapi_conn.driver_connection._conn  # the sqlite3 connection
        sqlite.set_trace_callback(lambda sql: ran.append((sql, threading.get_ident())))

    cursor = EndRequestCursor(db)
    await cursor.read()
    async with db.write_session() as writer:  # another connection holds the write lock
        await add_end_requests(writer, [EndRequest("w-held", "life")])
        ran.clear()
        assert await cursor.read() == []  # not committed yet: not read, and not waited for
        reads = [sql for sql, thread in ran if "watch_poll_ends" in sql]
        assert reads, ran
        assert {thread for sql, thread in ran} == {threading.get_ident()}, ran
        await writer.commit()
    assert [r.task for r in await cursor.read()] == ["w-held"]


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


@pytest.mark.parametrize("refused", ["locked", "connection refused"])
async def test_the_mailbox_opens_only_once_its_first_read_knows_where_it_reads_from(
    db: Database, monkeypatch: pytest.MonkeyPatch, refused: str
) -> None:
    # Its first read failed (the database locked a moment) and the mailbox opened anyway:
    # polls resumed, a pause committed next, and the next read started after it: never read,
    # the watch checked on while paused. A refused connection (PostgreSQL restarting: an
    # OSError, not SQLAlchemy's) ended the reader for good, the process's pauses unread.
    from sqlalchemy.exc import OperationalError

    from activities.poll_upkeep import PollUpkeep

    upkeep = PollUpkeep(db, {("w", "life"): object()}, dead_after=30, process="p")  # type: ignore[dict-item]
    failure: Exception = (
        OperationalError("SELECT", {}, Exception("locked"))
        if refused == "locked"
        else ConnectionRefusedError(111, "Connect call failed")
    )
    reading, failures = db.reading, [failure]

    def flaky() -> Any:
        if failures:
            raise failures.pop()
        return reading()

    monkeypatch.setattr(db, "reading", flaky)
    reader = asyncio.create_task(upkeep.read_end_requests())
    try:
        for _ in range(100):  # a bound, not a timing claim
            if not failures:
                break
            await asyncio.sleep(0.01)
        assert not failures and not upkeep.mailbox_open.is_set()
        await asyncio.wait_for(upkeep.mailbox_open.wait(), 30)
    finally:
        reader.cancel()
