"""The stdio door's cancel (``notifications/cancelled``) inside a PostgreSQL read: asyncpg's
close of the connection the cancel broke leaves nothing pending and the pool whole."""

from __future__ import annotations

import asyncio
import contextlib
import gc

import anyio
import pytest
from mcp import ClientSession
from mcp.shared.memory import create_client_server_memory_streams
from sqlalchemy import text

from ambient.domain.users import UserCreate
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.migrate import upgrade_async
from ambient.storage.users import UserRepository
from ambient.wiring import AppState, StateHolder
from mcp_server.server import build_server
from tests.foundation.test_postgres import postgres_url  # noqa: F401 - the fixture
from tests.support.waits import eventually


async def test_a_stdio_call_cancelled_inside_a_postgres_read_leaves_the_pool_whole(
    settings: Settings,
    postgres_url: str,  # noqa: F811 - the fixture
    caplog: pytest.LogCaptureFixture,
) -> None:
    await upgrade_async(postgres_url)
    db = Database(postgres_url)
    async with db.session() as session:
        await UserRepository(session).create(UserCreate(name="alice"))
        await session.commit()
    state = AppState(
        settings=settings.model_copy(update={"database_url": postgres_url}),
        db=db,
        temporal=None,  # type: ignore[arg-type]  # whoami asks the database only
        channels=None,  # type: ignore[arg-type]
        stdio_user="alice",
    )
    lowlevel = build_server(state.settings, holder=StateHolder(state))._lowlevel_server
    locker = Database(postgres_url)
    try:
        async with locker.engine.connect() as lock:
            # The call's read of users waits behind this lock: the database call in flight.
            await lock.execute(text("LOCK TABLE users IN ACCESS EXCLUSIVE MODE"))

            async def waiting() -> bool:
                query = (
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
                return bool(await lock.scalar(text(query)))

            async with create_client_server_memory_streams() as (client_streams, server_streams):
                async with anyio.create_task_group() as group:
                    group.start_soon(
                        lowlevel.run, *server_streams, lowlevel.create_initialization_options()
                    )
                    async with ClientSession(*client_streams) as client:
                        await client.initialize()
                        call = asyncio.ensure_future(client.call_tool("whoami", {}))
                        await eventually(waiting, "the call's read waiting on the lock")
                        call.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await call

                        async def back() -> bool:
                            return db.engine.pool.checkedout() == 0  # type: ignore[attr-defined,no-any-return]

                        await eventually(back, "the cancelled call's connection back")
                        await lock.commit()  # the lock let go
                        after = await client.call_tool("whoami", {})
                        assert not after.is_error, after
                    group.cancel_scope.cancel()
        assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await locker.close()
        await db.close()
    gc.collect()
    assert not [r for r in caplog.records if "destroyed but it is pending" in r.getMessage()]
