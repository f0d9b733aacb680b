"""Every stored time reads back as aware UTC, the same instant that was written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import select

from ambient.storage.db import Database
from ambient.storage.models import Event, ShareLink
from tests.conftest import unique

BEIJING = timezone(timedelta(hours=8))


async def test_a_time_written_in_another_zone_reads_back_as_the_same_instant_in_utc(
    db: Database,
) -> None:
    written = datetime(2026, 11, 21, 8, 0, tzinfo=BEIJING)
    key = unique("stored-time")
    async with db.session() as session:
        session.add(Event(kind="test", idempotency_key=key, created_at=written))
        await session.commit()
    async with db.session() as session:
        row = (
            await session.execute(select(Event).where(Event.idempotency_key == key))
        ).scalar_one()

    assert row.created_at == written
    assert row.created_at.tzinfo == UTC
    assert row.created_at.isoformat() == "2026-11-21T00:00:00+00:00"


async def test_an_optional_time_left_empty_reads_back_as_none(db: Database) -> None:
    token = unique("share")
    link = ShareLink(
        token_id=token, user="u", kind="briefing", title="t", html="", expires_at=datetime.now(UTC)
    )
    async with db.session() as session:
        session.add(link)
        await session.commit()
    async with db.session() as session:
        found = select(ShareLink).where(ShareLink.token_id == token)
        row = (await session.execute(found)).scalar_one()

    assert row.revoked_at is None
    assert row.expires_at.tzinfo == UTC
