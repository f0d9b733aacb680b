"""Two writers of one keyed audit row at once on PostgreSQL (ambient/remediation/storage.py
``append_entry``): each looked the key up, found none and wrote its own. SQLite's write lock
(``BEGIN IMMEDIATE``) makes them take turns; PostgreSQL has none and audit_log no unique key,
so two joins of one alert at once (two workers) audited it twice."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select, text

from ambient.remediation.runs import Keyed
from ambient.remediation.storage import append_entry
from ambient.storage import Database
from ambient.storage.models import AuditRecord
from tests.conftest import unique
from tests.foundation.test_postgres import postgres_url  # noqa: F401  (fixture)
from tests.support.waits import eventually


async def test_two_writers_of_one_key_at_once_write_one_row(pg: Database) -> None:
    """Each holds its transaction open after its append until the other has appended too or
    waits for its turn: without one, both looked the key up before either committed."""
    keyed = Keyed(run_key=unique("remediation/r@run"), key="one-alert")
    appended: list[int] = []

    async def other_went_or_waits() -> bool:
        if len(appended) == 2:
            return True
        async with pg.session() as session:
            waiting = (
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND "
                "database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
            return bool(await session.scalar(text(waiting)))

    async def write() -> None:
        async with pg.writing() as session:
            await append_entry(session, keyed, "deduplicated", {"user": "u"}, "u")
            appended.append(1)
            await eventually(other_went_or_waits, "the other writer's append or its wait")

    await asyncio.gather(write(), write())

    async with pg.session() as session:
        query = select(func.count()).where(AuditRecord.subject == keyed.run_key)
        assert await session.scalar(query) == 1
