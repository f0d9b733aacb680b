"""The database handle: one async engine and session factory, built by an entry point."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

# How long a connection waits for another's write lock before "database is locked".
BUSY_TIMEOUT_MS = 10_000
# How many busy timeouts a write turn waits out for another process's writers before it gives
# up: SQLite's busy handler sleeps between tries, so a process whose writers queue back to back
# (the worker in an alert storm) can hold the lock through one whole timeout.
WRITE_TURN_TRIES = 6


class Database:
    """Owns the engine; hands out sessions. Close it when the entry point stops."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine: AsyncEngine = create_async_engine(url, echo=echo)
        self.sqlite = parsed.get_backend_name() == "sqlite"
        if self.sqlite:
            # Worker, API and MCP share the file: WAL and a busy timeout avoid "database is locked".
            @event.listens_for(self.engine.sync_engine, "connect")
            def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
                cursor = dbapi_conn.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                # WAL commits without a full sync; durable across process crashes.
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.close()

        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time: queue this process's writers here, in order and
        # without a deadline, instead of letting hundreds of them race for the file lock
        # (each gives up after the busy timeout with "database is locked").
        self._write_turn = asyncio.Lock()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    @asynccontextmanager
    async def write_session(self) -> AsyncIterator[AsyncSession]:
        """A session for a short read-then-write transaction.

        On SQLite it takes the write lock first (``BEGIN IMMEDIATE``, which waits out the
        busy timeout): a transaction that read first and writes later would otherwise be
        refused at once ("database is locked") when another connection wrote in between.
        Writers of this process take turns; another process's writers are waited for through
        up to ``WRITE_TURN_TRIES`` busy timeouts (nothing was done yet, so beginning again is
        safe). Keep the block short: no network calls inside it.
        """
        if not self.sqlite:
            async with self.sessions() as session:
                yield session
            return
        async with self._write_turn:
            tries = 0
            while True:
                tries += 1
                async with self.sessions() as session:
                    try:
                        await session.execute(text("BEGIN IMMEDIATE"))
                    except OperationalError as exc:
                        if tries < WRITE_TURN_TRIES and "database is locked" in str(exc.orig):
                            continue
                        raise
                    yield session
                    return

    async def ping(self) -> bool:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True

    async def close(self) -> None:
        await self.engine.dispose()
