"""A request cancelled while its database work is under way (an MCP client's
``notifications/cancelled``, a dropped connection): anyio cancels the handler again and again
until it ends, also while SQLAlchemy closes the connection the first cancel broke."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sqlite3
import threading
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.memory import create_client_server_memory_streams
from sqlalchemy import event
from temporalio.testing import WorkflowEnvironment

from ambient.domain.users import UserCreate
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.users import UserRepository
from ambient.wiring import AppState, StateHolder
from api.app import create_app
from mcp_server.server import build_server
from tests.foundation.test_mcp import state
from tests.support.admins import admin_headers
from tests.support.servers import HANG, http_client, serve
from tests.support.waits import eventually

__all__ = ["state"]


class Hold:
    """Holds the next SQLite statement run in aiosqlite's thread inside SQLite (a progress
    handler on every connection checked out) until released: the database call in flight."""

    def __init__(self, db: Database) -> None:
        self.loop = asyncio.get_running_loop()
        self.entered = asyncio.Event()
        self.release = threading.Event()
        self.armed = False
        self.held: Any = None  # the aiosqlite connection held
        self.db = db
        event.listen(db.engine.sync_engine, "checkout", self._checkout)

    def _checkout(self, dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        driver = dbapi_conn.driver_connection
        raw: sqlite3.Connection = driver._connection

        def progress() -> int:
            if self.armed and threading.current_thread() is driver._thread:
                self.armed = False
                self.held = driver
                self.loop.call_soon_threadsafe(self.entered.set)
                self.release.wait()
            return 0

        raw.set_progress_handler(progress, 1)

    async def closing(self) -> bool:
        """The held connection's close waits behind the held statement (or it was stopped)."""
        return self.held is not None and (not self.held._running or not self.held._tx.empty())

    def close(self) -> None:
        self.release.set()
        self.held = None  # the connection, left to the garbage collector
        event.remove(self.db.engine.sync_engine, "checkout", self._checkout)


async def test_an_http_mcp_call_given_up_inside_a_sqlite_read_leaves_the_pool_whole(
    settings: Settings, dev_env: WorkflowEnvironment, caplog: pytest.LogCaptureFixture
) -> None:
    address = dev_env.client.service_client.config.target_host
    settings = settings.model_copy(update={"temporal_address": address})
    app = create_app(settings)
    async with serve(app) as base:
        async with http_client(base) as http:
            made = await http.post(
                "/users", json={"name": "alice"}, headers=await admin_headers(settings)
            )
        db: Database = app.state.holder.get().db
        hold = Hold(db)
        headers = {"Authorization": f"Bearer {made.json()['token']}"}
        try:
            async with httpx2.AsyncClient(headers=headers, trust_env=False, timeout=HANG) as http2:
                async with Client(
                    streamable_http_client(f"{base}/mcp", http_client=http2)
                ) as client:
                    hold.armed = True
                    call = asyncio.ensure_future(client.call_tool("whoami", {}))
                    await hold.entered.wait()
                    call.cancel()  # the client gives up: notifications/cancelled
                    with contextlib.suppress(asyncio.CancelledError):
                        await call
                    # Over HTTP the server does not cancel the tool: no close is queued behind
                    # the held read. It is let go and the call runs to its end, unheard.
                    hold.release.set()
                    after = await client.call_tool("whoami", {})
                    assert not after.is_error, after
        finally:
            hold.close()

        async def whole() -> bool:
            # The given-up call's connection goes back when its run ends, which may be just
            # after the next call's answer (a race in the wait, not a leak).
            return db.engine.pool.checkedout() == 0  # type: ignore[attr-defined,no-any-return]

        await eventually(whole, "the pool whole")
    gc.collect()
    assert not [r for r in caplog.records if "destroyed but it is pending" in r.getMessage()]


async def test_a_stdio_call_cancelled_inside_a_sqlite_read_closes_its_connection_undisturbed(
    state: AppState, caplog: pytest.LogCaptureFixture
) -> None:
    async with state.db.session() as session:
        await UserRepository(session).create(UserCreate(name="alice"))
        await session.commit()
    server = build_server(state.settings, holder=StateHolder(state))
    lowlevel = server._lowlevel_server
    hold = Hold(state.db)
    try:
        async with create_client_server_memory_streams() as (client_streams, server_streams):
            async with anyio.create_task_group() as group:
                group.start_soon(
                    lowlevel.run, *server_streams, lowlevel.create_initialization_options()
                )
                async with ClientSession(*client_streams) as client:
                    await client.initialize()
                    hold.armed = True
                    call = asyncio.ensure_future(client.call_tool("whoami", {}))
                    await hold.entered.wait()
                    call.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await call
                    await eventually(hold.closing, "the held connection closing")
                    hold.release.set()
                    after = await client.call_tool("whoami", {})
                    assert not after.is_error, after
                group.cancel_scope.cancel()
    finally:
        hold.close()
    assert state.db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    await state.db.close()
    gc.collect()
    assert not [r for r in caplog.records if "destroyed but it is pending" in r.getMessage()]
