"""The app database forgets what is older than AMBIENT_RETENTION_DAYS, and only that."""

from __future__ import annotations

import asyncio
import logging
import shutil
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import event, func, insert, select
from sqlalchemy.util import await_only

from ambient.domain.notify import Message
from ambient.domain.users import UserCreate
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.event_cursor import EventCursor, read_events
from ambient.storage.migrate import upgrade_async
from ambient.storage.models import Delivery, Event, InboxMessage, utcnow
from ambient.storage.repositories import EventRepository, InboxRepository
from ambient.storage.retention import BATCH, prune, pruning
from ambient.storage.users import UserRepository
from tests.support.postgres import new_database
from tests.support.servers import free_port


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A PostgreSQL database of each test's own: a prune stops at the first recent row, and
    another test's would hide this one's old rows made after it."""
    return new_database(postgres_server)


async def test_rows_past_the_period_are_deleted_and_what_may_still_be_sent_is_kept(
    database_url: str,
) -> None:
    """A watch writes an event at every change it finds and a delivery per channel of its
    notice: nothing was ever deleted, so the tables grew by millions of rows a day at
    thousands of watches."""
    await upgrade_async(database_url)
    db = Database(database_url)
    now, old = utcnow(), utcnow() - timedelta(days=91)
    try:
        async with db.session() as session:
            await UserRepository(session).create(UserCreate(name="kept"))
            await session.commit()
        old_events = BATCH * 2 + 5  # more than one batch, and a last one that is short
        rows: list[dict[str, Any]] = [
            {"kind": "task.changed", "user": "kept", "payload": {}, "created_at": old}
        ] * old_events
        leased, gave_up = now + timedelta(minutes=5), old + timedelta(hours=1)
        deliveries = [
            # (key, status, created, updated, kept?, lease_until, retry_until)
            ("sent-old", "sent", old, old, False, None, None),
            ("failed-old", "failed", old, old, False, None, None),
            # Its try died long ago and no retry came; and one still in flight.
            ("pending-old", "pending", old, old, False, gave_up, None),
            ("pending-leased", "pending", old, old, True, leased, None),
            # Its deliver-later run gave up long ago (terminated: it never said so); one that
            # tries still; one with no give-up written.
            ("deferred-ended", "deferred", old, old, False, None, gave_up),
            ("deferred-trying", "deferred", old, old, True, None, leased),
            ("deferred-old", "deferred", old, old, True, None, None),
            ("sent-retried", "sent", old, now, True, None, None),
            ("sent-new", "sent", now, now, True, None, None),
        ]
        async with db.writing() as session:
            await session.execute(insert(Event), rows)
            await session.execute(
                insert(Event).values(kind="task.changed", user="kept", payload={}, created_at=now)
            )
            for key, status, created, updated, _, lease, until in deliveries:
                values = {"key": key, "channel": "webhook", "target": "t", "status": status}
                await session.execute(
                    insert(Delivery).values(
                        **values,
                        created_at=created,
                        updated_at=updated,
                        lease_until=lease,
                        retry_until=until,
                    )
                )
            for when in (old, now):
                await session.execute(
                    insert(InboxMessage).values(
                        user="kept", kind="k", title="t", body="b", created_at=when
                    )
                )

        removed = await prune(db, 90)

        assert removed == {"events": old_events, "deliveries": 4, "inbox": 1}
        async with db.session() as session:
            assert await session.scalar(select(func.count()).select_from(Event)) == 1
            keys = set((await session.execute(select(Delivery.key))).scalars())
            assert keys == {key for key, _, _, _, kept, *_ in deliveries if kept}
            assert await session.scalar(select(func.count()).select_from(InboxMessage)) == 1
        assert await prune(db, 90) == {"events": 0, "deliveries": 0, "inbox": 0}
    finally:
        await db.close()


async def test_a_delivery_quiet_hours_held_back_is_deleted_as_a_sent_one(database_url: str) -> None:
    """A push in the user's quiet hours is recorded ``suppressed``, never sent later: finished
    as a sent one is. Such rows were kept for ever (a row per channel of every notice at
    night), the table growing as if nothing were deleted."""
    await upgrade_async(database_url)
    db = Database(database_url)
    now, old = utcnow(), utcnow() - timedelta(days=91)
    try:
        async with db.writing() as session:
            for key, status, when in (("quiet-old", "suppressed", old), ("sent-new", "sent", now)):
                await session.execute(
                    insert(Delivery).values(
                        key=key,
                        channel="wecom",
                        target="t",
                        status=status,
                        created_at=when,
                        updated_at=when,
                    )
                )

        assert (await prune(db, 90))["deliveries"] == 1
        async with db.session() as session:
            assert list((await session.execute(select(Delivery.key))).scalars()) == ["sent-new"]
    finally:
        await db.close()


async def test_a_prune_reads_the_rows_past_the_period_not_the_whole_table(
    settings: Settings,
) -> None:
    """Each prune's last read looked for one more old row through every row made within the
    period, to the table's end: at a million rows a table, 0.25 s of index scan a read on
    PostgreSQL ("Rows Removed by Filter: 1000000"), every hour in every worker, and more as the
    tables grow. SQLite's steps count the rows a prune visits: ten times the recent rows must
    not make it ten times the work."""
    migrated = settings.data_dir / "ambient.db"

    async def steps_of_a_prune(recent: int) -> int:
        path = settings.data_dir / f"recent-{recent}.db"
        shutil.copyfile(migrated, path)
        db = Database(f"sqlite+aiosqlite:///{path}")
        steps = 0

        def step() -> int:
            nonlocal steps
            steps += 1
            return 0  # go on

        @event.listens_for(db.engine.sync_engine, "connect")
        def _count_steps(_dbapi: Any, record: Any) -> None:
            await_only(record.driver_connection.set_progress_handler(step, 100))

        now, old = utcnow(), utcnow() - timedelta(days=91)
        whens = [old] * 5 + [now] * recent
        try:
            async with db.writing() as session:
                await session.execute(
                    insert(Event),
                    [{"kind": "watch.change", "payload": {}, "created_at": w} for w in whens],
                )
                await session.execute(
                    insert(Delivery),
                    [
                        {"key": f"k{i}", "channel": "webhook", "target": "t", "status": "sent"}
                        | {"created_at": when, "updated_at": when}
                        for i, when in enumerate(whens)
                    ],
                )
            steps = 0
            assert await prune(db, 90) == {"events": 5, "deliveries": 5, "inbox": 0}
            return steps
        finally:
            await db.close()

    few, many = await steps_of_a_prune(1000), await steps_of_a_prune(10_000)
    assert many < 2 * few, (few, many)


async def test_an_id_handed_out_before_a_prune_is_never_handed_out_again(
    database_url: str,
) -> None:
    """Nothing made within the period (a quiet install, 90 days): every row went, and SQLite
    gives a new row one past the highest id left, so ids started again at 1. An events stream
    that reconnected with its Last-Event-ID (or the agent's cursor) read ``id > last`` and saw
    no new event until ids passed it again; a stale inbox page marked another message read."""
    await upgrade_async(database_url)
    db = Database(database_url)
    old = utcnow() - timedelta(days=91)
    try:
        async with db.session() as session:
            await UserRepository(session).create(UserCreate(name="quiet"))
            await session.commit()
        async with db.writing() as session:
            await session.execute(
                insert(Event), [{"kind": "task.changed", "user": "quiet", "created_at": old}] * 3
            )
            await session.execute(
                insert(InboxMessage),
                [{"user": "quiet", "kind": "k", "title": "t", "body": "b", "created_at": old}] * 3,
            )
            newest = await session.scalar(select(func.max(Event.id)))
            newest_message = await session.scalar(select(func.max(InboxMessage.id)))
        assert newest is not None and newest_message is not None

        await prune(db, 90)
        async with db.writing() as session:
            await EventRepository(session).add("task.changed", user="quiet")
            message = await InboxRepository(session).add("quiet", Message(title="new", body="b"))

        async with db.session() as session:
            rows, _ = await read_events(session, EventCursor(last=newest), user="quiet")
        assert [row.id > newest for row in rows] == [True]
        assert message.id > newest_message
    finally:
        await db.close()


async def test_a_watch_failing_for_longer_than_the_period_is_still_told_failing(
    database_url: str,
) -> None:
    """Whether a watch's page is failing now is its newest failing/recovered event, after its
    newest pause, resume and stop ("what needs me", the voice's facts, a task's status). A page
    failing for longer than the period lost its one ``watch.failing`` event: "Nothing needs
    you now. All is well." What those events answer stays; older ones of each go."""
    await upgrade_async(database_url)
    db = Database(database_url)
    now, old = utcnow(), utcnow() - timedelta(days=91)
    events = [
        # (task, kind, url, kept?)
        ("w/site", "watch.failing", "https://a.example", False),
        ("w/site", "watch.recovered", "https://a.example", False),
        ("w/site", "watch.failing", "https://a.example", True),  # failing since, still
        ("w/site", "watch.failing", "https://b.example", False),
        ("w/site", "watch.recovered", "https://b.example", True),
        ("w/site", "watch.change", "https://a.example", False),
        ("w/held", "watch.failing", "https://c.example", True),
        ("w/held", "watch.paused", None, False),
        ("w/held", "watch.resumed", None, True),
        ("w/held", "watch.paused", None, True),  # paused since: not told failing
        ("w/gone", "watch.failing", "https://d.example", True),
        ("w/gone", "watch.stopped", None, True),  # deleted since: not told failing
        ("w/gone", "watch.change", "https://d.example", False),
    ]
    try:
        async with db.writing() as session:
            for task, kind, url, _ in events:
                payload = {"url": url} if url else {}
                values = {"kind": kind, "user": "w", "task": task, "payload": payload}
                await session.execute(insert(Event).values(**values, created_at=old))
            await session.execute(insert(Event).values(kind="task.changed", created_at=now))

        async def failing() -> tuple[list[tuple[str, str | None]], ...]:
            async with db.session() as session:
                repo = EventRepository(session)
                told = await repo.failing_pages(user="w")
                return told, await repo.failing_pages(user="w", paused=True)

        before = await failing()
        assert before == (
            [("w/site", "https://a.example")],
            [("w/site", "https://a.example"), ("w/held", "https://c.example")],
        )

        removed = await prune(db, 90)

        assert await failing() == before
        assert removed["events"] == sum(not kept for *_, kept in events)
        async with db.session() as session:
            rows = (await session.execute(select(Event.task, Event.kind).order_by(Event.id))).all()
        assert rows == [(task, kind) for task, kind, _, kept in events if kept] + [
            (None, "task.changed")
        ]
    finally:
        await db.close()


class Broken(Database):
    """A database whose session fails with what no database error is (a bug's)."""

    def session(self) -> Any:  # type: ignore[override]
        raise RuntimeError("not a database error")


@pytest.mark.parametrize("broken", ["away", "a bug"])
async def test_a_prune_that_fails_is_counted_and_the_next_turn_comes(
    caplog: pytest.LogCaptureFixture, broken: str, tmp_path: Any
) -> None:
    """The database away, or an error no database raises: each turn says so and the loop goes
    on (a worker's upkeep; an error it did not expect ended it silently)."""
    away = (
        Database(f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/gone")
        if broken == "away"
        else Broken(f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")
    )
    caplog.set_level(logging.WARNING, logger="ambient.storage.retention")
    job = asyncio.create_task(pruning(away, 90, every=0.05))
    try:
        for _ in range(200):
            if sum("a prune failed" in r.message for r in caplog.records) >= 2:
                break
            await asyncio.sleep(0.05)
        assert not job.done()
        said = [r.getMessage() for r in caplog.records if "a prune failed" in r.message]
        assert said[:2] and "(1 so far)" in said[0] and "(2 so far)" in said[1], said
    finally:
        job.cancel()
        await asyncio.gather(job, return_exceptions=True)
        await away.close()


def test_a_period_shorter_than_a_week_of_retries_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 8 days"):
        Settings(_env_file=None, retention_days=3)  # type: ignore[call-arg]
    assert Settings(_env_file=None, retention_days=0).retention_days == 0  # type: ignore[call-arg]
