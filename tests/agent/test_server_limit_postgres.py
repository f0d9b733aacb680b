"""The MCP server limit on PostgreSQL, where ids are given at insert and rows are seen at
commit: an add that inserted first and committed last was counted past its place by no one."""

from __future__ import annotations

import asyncio
import contextvars
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ambient.agent.errors import AgentError
from ambient.agent.hub import MAX_SERVERS, AgentHub, McpServerSpec
from ambient.domain.users import UserCreate
from ambient.settings import Environment, Settings
from ambient.storage import Database
from ambient.storage.migrate import upgrade_async
from ambient.storage.models import AgentServer
from ambient.storage.users import UserRepository
from ambient.wiring import AppState
from tests.conftest import unique
from tests.foundation.test_postgres import postgres_url  # noqa: F401 - the fixture

# Which add is held between its insert and its commit.
HELD: contextvars.ContextVar[bool] = contextvars.ContextVar("held", default=False)


def spec(name: str) -> McpServerSpec:
    # An IP literal: the destination check looks nothing up.
    return McpServerSpec(name=name, transport="http", url="http://93.184.216.34/mcp")


async def test_an_add_that_inserted_first_and_committed_last_is_still_counted_past_the_limit(
    postgres_url: str,  # noqa: F811 - the fixture
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await upgrade_async(postgres_url)
    settings = Settings(
        environment=Environment.TEST,
        data_dir=tmp_path,
        database_url=postgres_url,
        _env_file=None,  # type: ignore[call-arg]
    )
    databases = [Database(postgres_url) for _ in range(2)]
    hubs = [
        AgentHub(
            AppState(
                settings=settings,
                db=db,
                # Adding a server asks neither Temporal nor a channel.
                temporal=None,  # type: ignore[arg-type]
                channels=None,  # type: ignore[arg-type]
            )
        )
        for db in databases
    ]
    name = unique("pg-limit")
    try:
        async with databases[0].session() as session:
            user, _ = await UserRepository(session).create(UserCreate(name=name))
            await session.commit()
        for n in range(MAX_SERVERS - 1):
            await hubs[0].add(user, spec(f"s{n}"))

        other_done = asyncio.Event()
        commit = AsyncSession.commit

        async def held_commit(self: AsyncSession) -> None:
            if HELD.get() and any(isinstance(row, AgentServer) for row in self.new):
                await self.flush()  # its id is given now
                # Until the other add is done (or a while: adds that take turns wait on this one).
                try:
                    await asyncio.wait_for(other_done.wait(), 2)
                except TimeoutError:
                    pass
            await commit(self)

        monkeypatch.setattr(AsyncSession, "commit", held_commit)

        async def add(hub: AgentHub, server: str, held: bool) -> Any:
            HELD.set(held)
            try:
                await hub.add(user, spec(server))
                return "added"
            except AgentError as exc:
                return exc
            finally:
                if not held:
                    other_done.set()

        first = asyncio.create_task(add(hubs[0], "first", True))
        await asyncio.sleep(0.5)  # inserted, not committed
        answers = [await add(hubs[1], "second", False), await first]
        async with databases[0].session() as session:
            held = await session.scalar(
                select(func.count()).select_from(AgentServer).where(AgentServer.user == name)
            )
        assert held == MAX_SERVERS, answers
        assert sorted(map(str, answers)) == sorted(
            ["added", f"at most {MAX_SERVERS} MCP servers per user"]
        ), answers
    finally:
        for db in databases:
            await db.close()
