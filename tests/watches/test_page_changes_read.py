"""A check now's keyword hits are read by the check that found them (each page's first change
stored since its check), not from a window of the watch's newest events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ambient.storage import Database
from ambient.storage.models import Event
from ambient.storage.repositories import EventRepository
from tests.conftest import unique
from tests.foundation.test_postgres import postgres_url  # noqa: F401  (fixture)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request: pytest.FixtureRequest) -> Database:
    """The same test on the migrated SQLite file and on a real PostgreSQL."""
    database: Database = request.getfixturevalue("db" if request.param == "sqlite" else "pg")
    return database


async def test_each_page_gets_the_first_change_stored_since_its_check(any_db: Database) -> None:
    """Not an earlier check's change nor a later one's, whatever else the watch stored."""
    user, task = unique("u"), unique("web-monitor/u/t")
    a, b, c = "https://example.com/a", "https://example.com/b", "https://example.com/c"
    checked = datetime(2026, 12, 1, 8, 0, 0, 123456, tzinfo=UTC)
    just_after = checked + timedelta(microseconds=1)
    rows = [
        ("watch.hit", {"url": a, "hits": {"old": ["before the check"]}}, checked - timedelta(1)),
        ("watch.hit", {"url": a, "hits": {"outage": ["this check"]}}, just_after),
        ("watch.change", {"url": b, "excerpt": "this check"}, checked),
        *[("watch.delivery_failed", {"n": n}, just_after) for n in range(101)],
        ("watch.change", {"url": a, "excerpt": "a later check"}, just_after),
        ("watch.hit", {"url": c, "hits": {"outage": ["not changed now"]}}, just_after),
    ]
    async with any_db.writing() as session:
        for kind, payload, at in rows:
            session.add(Event(kind=kind, user=user, task=task, payload=payload, created_at=at))
            await session.flush()  # ids in the order written
        session.add(Event(kind="watch.hit", user=unique("v"), task=task, payload={"url": a}))
    async with any_db.session() as session:
        found = await EventRepository(session).page_changes(
            user=user, task=task, since={a: checked, b: checked}
        )
    assert {url: event.payload for url, event in found.items()} == {
        a: {"url": a, "hits": {"outage": ["this check"]}},
        b: {"url": b, "excerpt": "this check"},
    }
