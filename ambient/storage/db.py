"""The database handle: one async engine and session factory, built by an entry point."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite
from sqlalchemy import Table, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as NoConnectionInTime
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, SessionTransaction

# How long a connection waits for another's write lock before "database is locked".
BUSY_TIMEOUT_MS = 10_000
# How many busy timeouts a write turn waits out for another process's writers before it gives
# up: SQLite's busy handler sleeps between tries, so a process whose writers queue back to back
# (the worker in an alert storm) can hold the lock through one whole timeout.
WRITE_TURN_TRIES = 6
# Connections a SQLite engine keeps open, and the most it opens: SQLAlchemy's 5 kept + 10
# overflow closed each overflow connection on its return, so a burst of sessions (an alert
# storm's hundred runs reading at once) opened and closed connections back to back — a thread,
# the file, four pragmas each, a tenth of the worker's loop in the storm. The same 15 at most,
# all kept.
SQLITE_POOL_SIZE = 15
# Seconds a new PostgreSQL connection may take (asyncpg's own default is 60): a database behind
# a dead path is said unreachable while a caller still listens.
CONNECT_TIMEOUT = 5.0
# Seconds a statement on an open PostgreSQL connection may take (asyncpg's default: no bound).
# A database that stops answering on its open connections (a host hang, a partition) held
# every request on the pool's pre-ping for the whole outage; now it is said unreachable. The
# product's statements are short (retention deletes in batches; migrations have their own
# engine, with no bound).
COMMAND_TIMEOUT = 30.0
# session.info: the session holds SQLite's write lock (``Database.write_session``).
SQLITE_TURN = "sqlite-write-turn"
Row = TypeVar("Row")


def _casefold(text: object) -> object:
    return text.casefold() if isinstance(text, str) else text


class TurnConnection(aiosqlite.Connection):
    """An aiosqlite connection whose statements run in the caller's thread during a write turn:
    holding the lock they take microseconds, while aiosqlite's four thread hops a statement
    made each turn ~5-20 ms on a busy loop (an alert storm), the turns queued behind it."""

    inline = False
    # The first stop's future: the thread ends at that stop, so a second one is never answered.
    _stopping: asyncio.Future[Any] | None = None

    def stop(self) -> asyncio.Future[Any] | None:
        """Stop the thread once. A request cancelled again while SQLAlchemy closed the connection
        the first cancel broke (anyio cancels a request until it ends: an MCP stdio call's
        ``notifications/cancelled``) stopped it from ``terminate``; ``close()`` then asked again,
        behind the thread's end, and its wait was never answered ("Task was destroyed but it is
        pending! … _terminate_graceful_close")."""
        if self._stopping is None:
            self._stopping = super().stop()
        return self._stopping

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self.inline:
            return fn(*args, **kwargs)
        return await super()._execute(fn, *args, **kwargs)


def given(**filters: Any) -> dict[str, Any]:
    """The filters a caller gave (None: not given), for ``select(M).filter_by(**given(...))``."""
    return {name: value for name, value in filters.items() if value is not None}


class Repository:
    """A table's queries over the caller's session (the caller commits)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _insert_once(self, row: Row, stored: Callable[[], Awaitable[Row | None]]) -> Row:
        """``row`` added, or the row with its unique key a concurrent insert stored first (a
        retried activity's other try): ``stored`` reads it; none there, the refusal is raised.
        The caller has just read and found none: in a SQLite write turn no other writer can
        have stored it since, and the row is flushed without a savepoint."""
        if self.session.info.get(SQLITE_TURN):
            self.session.add(row)
            await self.session.flush()
            return row
        try:
            async with self.session.begin_nested():
                self.session.add(row)
        except IntegrityError:
            if (found := await stored()) is None:
                raise
            return found
        return row


async def take_turn(session: AsyncSession, key: str) -> None:
    """Take ``key``'s turn until the transaction ends. SQLite: the caller's write transaction
    (Database.write_session) already holds the one write lock; PostgreSQL: a transaction-scoped
    advisory lock, so writers on any worker take turns."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})


def table_of(model: Any) -> Table:
    return cast(Table, model.__table__)


def dialect_insert(dialect: str, table: Any) -> Any:
    """An INSERT of ``table`` in ``dialect``'s own kind (its ON CONFLICT clauses)."""
    return (postgresql if dialect == "postgresql" else sqlite).insert(table)


def _turn_ended(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # a commit or rollback, not a savepoint's end
        session.info.pop(SQLITE_TURN, None)


def _turn_connector(url: str) -> Callable[[], Any]:
    """SQLAlchemy's async creator for ``url``: the dialect's connect arguments, our connection."""
    args, kwargs = SQLiteDialect_aiosqlite().create_connect_args(make_url(url))
    # Used from the loop's thread in a write turn, from aiosqlite's otherwise; never both at once.
    kwargs["check_same_thread"] = False

    async def connect() -> TurnConnection:
        connection = TurnConnection(partial(sqlite3.connect, *args, **kwargs), iter_chunk_size=64)
        connection._thread.daemon = True  # as SQLAlchemy's aiosqlite dialect does
        await connection  # starts its thread and opens the file there
        return connection

    return connect


# A NUL in a JSON string is written "\u0000", which PostgreSQL will not read back ("unsupported
# Unicode escape sequence" at ->>): one watch's error quoting a server's NUL failed every read
# of the events table, the hourly retention's for every user too. Written as U+FFFD, as a NUL
# in a receiver's text is (a backslash of the text, escaped "\\", is not an escape's).
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _json(value: Any) -> str:
    """A JSON column's value as stored: json.dumps, a NUL as U+FFFD."""
    return _NUL_ESCAPE.sub(r"\1\\ufffd", json.dumps(value))


class Database:
    """Owns the engine; hands out sessions. Close it when the entry point stops
    (``async with Database(url) as db:`` closes it when the block ends)."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.sqlite = parsed.get_backend_name() == "sqlite"
        if self.sqlite and parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        if self.sqlite:  # aiosqlite: SQLite's one async driver (another is refused as sync)
            in_memory = parsed.database in (None, "", ":memory:")  # one connection, no pool
            pool = {} if in_memory else {"pool_size": SQLITE_POOL_SIZE, "max_overflow": 0}
            self.engine: AsyncEngine = create_async_engine(
                url, async_creator=_turn_connector(url), json_serializer=_json, **pool
            )

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
                # SQLite's lower() folds ASCII alone: "any case" searches of other scripts
                # ("Échec", "Ölwerk") fold with Python's casefold, as PostgreSQL's ILIKE does.
                dbapi_conn.create_function("casefold", 1, _casefold, deterministic=True)
        else:
            asyncpg = parsed.get_driver_name() == "asyncpg"
            bounds = {"timeout": CONNECT_TIMEOUT, "command_timeout": COMMAND_TIMEOUT}
            connect = {"connect_args": bounds} if asyncpg else {}
            # A server restart or failover closes every pooled connection: each is tried at
            # checkout (a round trip) and replaced if closed, not handed to a request to fail.
            self.engine = create_async_engine(
                url, pool_pre_ping=True, json_serializer=_json, **connect
            )
        # ``session()``: a plain session (``write_session`` for a read-then-write transaction).
        self.session = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time: queue this process's writers here, in order and
        # without a deadline, instead of letting hundreds of them race for the file lock
        # (each gives up after the busy timeout with "database is locked").
        self._write_turn = asyncio.Lock()

    @asynccontextmanager
    async def write_session(self, *, bulk: bool = False) -> AsyncIterator[AsyncSession]:
        """A session for a short read-then-write transaction (no network calls inside it).

        On SQLite it takes the write lock first (``BEGIN IMMEDIATE``): one that read first would
        be refused at once ("database is locked") if another connection wrote in between. This
        process's writers take turns; another's are waited out through ``WRITE_TURN_TRIES``
        busy timeouts. With the lock, statements run in the loop's thread (``TurnConnection``)
        unless ``bulk`` (much SQLite work, which would stop the loop)."""
        if not self.sqlite:
            async with self.session() as session:
                yield session
            return
        async with self._write_turn:
            for tries in itertools.count(1):
                async with self.session() as session:
                    try:
                        await session.execute(text("BEGIN IMMEDIATE"))
                    except OperationalError as exc:
                        if tries < WRITE_TURN_TRIES and "database is locked" in str(exc.orig):
                            continue
                        raise
                    raw = await (await session.connection()).get_raw_connection()
                    driver = cast(TurnConnection, raw.driver_connection)
                    driver.inline = not bulk
                    session.info[SQLITE_TURN] = True  # until its transaction ends
                    event.listen(session.sync_session, "after_transaction_end", _turn_ended)
                    try:
                        yield session
                    finally:
                        driver.inline = False  # before the pool has it again
                    return

    @asynccontextmanager
    async def writing(self, *, bulk: bool = False) -> AsyncIterator[AsyncSession]:
        """A ``write_session`` committed when the block ends without an error (a return
        inside it too)."""
        async with self.write_session(bulk=bulk) as session:
            yield session
            await session.commit()

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        """A connection for a short read made often (a mailbox's, twice a second). On SQLite
        its statements run in the loop's thread: a WAL read takes no lock a writer holds, and
        aiosqlite's thread hops (four a statement) cost the worker more than the read."""
        async with self.engine.connect() as conn:
            if not self.sqlite:
                yield conn
                return
            raw = await conn.get_raw_connection()
            driver = cast(TurnConnection, raw.driver_connection)
            inline, driver.inline = driver.inline, True
            try:
                yield conn
            finally:
                driver.inline = inline  # before the pool has it again

    async def ping(self) -> bool:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True

    async def close(self) -> None:
        await self.engine.dispose()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def database_busy(exc: BaseException) -> bool:
    """Whether ``exc`` says the database could not answer now, so a retry may succeed: busy,
    unreachable, no pooled connection free in time (as in a burst of polls taken over from a
    dead worker), or the connection dropped under the statement (a PostgreSQL restart or
    failover closes every pooled connection; SQLAlchemy raises the next use of each as an
    ``InterfaceError`` it marks invalidated), or PostgreSQL asked for the transaction again."""
    busy = isinstance(exc, (OperationalError, OSError, NoConnectionInTime))
    if busy or not isinstance(exc, DBAPIError):
        return busy
    # PostgreSQL's "try the transaction again" (class 40: a serialization failure, a deadlock
    # it broke) and a lock not available: the statement was right, its moment was not.
    sqlstate = str(getattr(exc.orig, "sqlstate", None) or "")
    return exc.connection_invalidated or sqlstate.startswith("40") or sqlstate == "55P03"
