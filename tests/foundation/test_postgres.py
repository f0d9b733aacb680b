"""The same migrations and repositories on a real PostgreSQL (pgserver's embedded binaries)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import pgserver
import pytest
from sqlalchemy import text

from ambient.domain.users import UserCreate, UserSettings
from ambient.storage import Database
from ambient.storage.migrate import upgrade_async
from ambient.storage.repositories import EventRepository, UserExistsError, UserRepository


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as folder:
        server = pgserver.get_server(folder, cleanup_mode="stop")
        socket_dir = parse_qs(urlparse(server.get_uri()).query)["host"][0]
        try:
            yield f"postgresql+asyncpg://postgres@/postgres?host={socket_dir}"
        finally:
            server.cleanup()


async def test_migrations_and_repositories_work_on_postgresql(postgres_url: str) -> None:
    await upgrade_async(postgres_url)
    await upgrade_async(postgres_url)
    db = Database(postgres_url)
    try:
        async with db.session() as session:
            assert db.engine.dialect.name == "postgresql"
            tables = await session.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            )
            assert {"users", "events", "deliveries", "inbox"} <= {row[0] for row in tables}

            users = UserRepository(session)
            user, token = await users.create(UserCreate(name="pg-alice", wake_words=["你好，小智"]))
            await users.update(user, UserSettings(timezone="Europe/Berlin"))
            await session.commit()
            found = await users.by_token(token)
            assert found is not None and found.timezone == "Europe/Berlin"
            assert found.wake_words == ["你好，小智"]
            with pytest.raises(UserExistsError):
                await users.create(UserCreate(name="pg-alice"))

        async with db.session() as session:
            events = EventRepository(session)
            first = await events.add(
                "watch.breach", user="pg-alice", payload={"v": 1}, idempotency_key="k1"
            )
            again = await events.add(
                "watch.breach", user="pg-alice", payload={"v": 2}, idempotency_key="k1"
            )
            await session.commit()
            assert first.id == again.id and again.payload == {"v": 1}
            assert [e.kind for e in await events.list(user="pg-alice")] == ["watch.breach"]
    finally:
        await db.close()
