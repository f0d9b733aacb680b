"""The same migrations and repositories on a real PostgreSQL (pgserver's embedded binaries)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import text

from ambient.domain.notify import Message, NotificationKind
from ambient.domain.users import UserCreate, UserSettings
from ambient.settings import Settings
from ambient.storage import Database, polls
from ambient.storage.event_cursor import EventCursor, read_events
from ambient.storage.migrate import upgrade_async
from ambient.storage.models import MAX_ID, Base, Numbered
from ambient.storage.repositories import EventRepository, InboxRepository
from ambient.storage.users import TokenChangedError, UserExistsError, UserRepository
from tests.support.postgres import new_database
from tests.support.servers import free_port
from tests.support.waits import eventually


@pytest.fixture(scope="module")
def postgres_url(postgres_server: str) -> str:
    """An empty PostgreSQL database of the module's own, on the test process's server."""
    return new_database(postgres_server)


@asynccontextmanager
async def on_postgres(settings: Settings, url: str) -> AsyncIterator[tuple[Settings, Database]]:
    """``settings`` aimed at the migrated PostgreSQL at ``url`` (and at no Temporal), and its
    Database, closed at the end."""
    await upgrade_async(url)
    db = Database(url)
    try:
        yield (
            settings.model_copy(
                update={"database_url": url, "temporal_address": f"127.0.0.1:{free_port()}"}
            ),
            db,
        )
    finally:
        await db.close()


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


async def test_events_go_on_past_32_bit_ids_and_every_id_holds_64_bits(
    postgres_server: str,
) -> None:
    """Millions of events, deliveries and snapshots a day reach 2**31 - 1 in a few years:
    PostgreSQL's INTEGER ids then refused every insert ("nextval: reached maximum value of
    sequence"), where SQLite's 64-bit rowids go on."""
    url = new_database(postgres_server)  # its own: the sequence set far ahead
    await upgrade_async(url)
    db = Database(url)
    try:
        async with db.session() as session:
            await session.execute(text("SELECT setval('events_id_seq', 2147483647)"))
            await session.commit()
        async with db.session() as session:
            event = await EventRepository(session).add("watch.breach", user="pg-big")
            await session.commit()
        assert event.id == 2**31
        async with db.session() as session:
            rows, cursor = await read_events(session, EventCursor(last=2**31 - 1), user="pg-big")
        assert [row.id for row in rows] == [2**31]
        assert EventCursor.parse(cursor.token()).last == 2**31

        numbered = {
            mapper.local_table.name
            for mapper in Base.registry.mappers
            if issubclass(mapper.class_, Numbered)
        }
        assert {"events", "deliveries", polls.WatchSnapshot.__tablename__} <= numbered
        async with db.session() as session:
            ids = await session.execute(
                text(
                    "SELECT table_name, data_type FROM information_schema.columns"
                    " WHERE table_schema = 'public' AND column_name = 'id'"
                )
            )
            types = {table: kind for table, kind in ids if table in numbered}
            sequences = await session.execute(
                text("SELECT sequencename, data_type, max_value FROM pg_sequences")
            )
            limits = {name: (kind, top) for name, kind, top in sequences}
        assert types == dict.fromkeys(numbered, "bigint")
        assert {limits[f"{table}_id_seq"] for table in numbered} == {("bigint", MAX_ID)}
    finally:
        await db.close()


async def test_two_events_with_one_key_at_once_store_one_row_and_both_get_it(
    postgres_url: str,
) -> None:
    # A retried activity whose first try is still running (the briefing's, the deliveries'):
    # both add the same key; the second's insert waits on the first's uncommitted row.
    await upgrade_async(postgres_url)
    db = Database(postgres_url)
    try:
        async with db.session() as first, db.session() as second, db.session() as watcher:
            stored = await EventRepository(first).add("briefing.given", idempotency_key="race-1")
            racing = asyncio.create_task(
                EventRepository(second).add("briefing.given", idempotency_key="race-1")
            )

            async def waits_for_the_first() -> bool:
                blocked = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                waiting = (await watcher.execute(text(blocked))).scalar_one()
                await watcher.rollback()  # the activity view is read once per transaction
                return bool(waiting)

            await eventually(waits_for_the_first, "the second insert waits for the first")
            await first.commit()
            again = await racing
            await second.commit()
            rows = (
                await watcher.scalars(
                    text("SELECT id FROM events WHERE idempotency_key = 'race-1'")
                )
            ).all()
        assert again.id == stored.id and rows == [stored.id]
    finally:
        await db.close()


async def test_a_pooled_connection_the_server_closed_is_replaced_before_a_request_uses_it(
    postgres_url: str,
) -> None:
    # A PostgreSQL restart (or failover) closes every pooled connection: the API's and the MCP
    # server's next request took one and failed ("the database is unreachable") although the
    # database was back.
    await upgrade_async(postgres_url)
    db = Database(postgres_url)
    try:
        async with db.session() as session:
            assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
        admin = Database(postgres_url)
        async with admin.session() as session:
            await session.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        await admin.close()
        async with db.session() as session:
            assert (await session.execute(text("SELECT 2"))).scalar_one() == 2
    finally:
        await db.close()


async def test_an_id_past_postgresqls_bigint_is_out_of_range_not_an_internal_error(
    settings: Settings, postgres_url: str
) -> None:
    """asyncpg wraps its OverflowError a few causes deep under SQLAlchemy's error: the
    catch-all looked one deep and answered such a number 500 (the settings page's remove
    form, a link edited by hand), where SQLite's answered 422."""
    from sqlalchemy.exc import DBAPIError

    from api.errors import out_of_range
    from tests.support.pages import signed_in

    async with on_postgres(settings, postgres_url) as (pg_settings, db):
        with pytest.raises(DBAPIError) as raised:
            async with db.session() as session:
                await session.execute(text("SELECT id FROM events WHERE id = :id"), {"id": 2**63})
        assert out_of_range(raised.value)
        async with db.session() as session:
            _, token = await UserRepository(session).create(UserCreate(name="epuser"))
            await session.commit()
        async with signed_in(pg_settings, token, "/app/settings") as http:
            answer = await http.post("/app/xiaozhi/endpoints/remove", data={"endpoint": str(2**63)})
    assert answer.status_code == 422, (answer.status_code, answer.text[:300])


async def test_a_nul_in_an_event_or_a_message_is_stored_as_a_replacement_on_postgresql(
    postgres_url: str,
) -> None:
    """A member's watch whose server answered a NUL ("query answered abc\\x00def") stored it in
    the event's payload as "\\u0000", which PostgreSQL will not read back: every read of the
    events table failed from then on (the failing watches, the hourly retention of everyone's
    rows), and its inbox copy failed for good ("invalid byte sequence ... 0x00")."""
    await upgrade_async(postgres_url)
    db = Database(postgres_url)
    said = "query answered abc\x00def, not a number"
    try:
        async with db.session() as session:
            await UserRepository(session).create(UserCreate(name="pg-nul"))
            events = EventRepository(session)
            task = "threshold-watch/pg-nul/x"
            payload = {"error": said, "failures": 3, "text": "a literal \\u0000 stays"}
            await events.add("watch.failing", user="pg-nul", task=task, payload=payload)
            await InboxRepository(session).add(
                "pg-nul", Message(title=f"Failing: {said}", body=said, kind=NotificationKind.WATCH)
            )
            await session.commit()
        async with db.session() as session:
            events = EventRepository(session)
            assert await events.failing(user="pg-nul") == [(task, None, 3)]
            assert await events.standing()
            [stored] = await events.list(user="pg-nul")
            [message] = await InboxRepository(session).list("pg-nul")
    finally:
        await db.close()
    assert stored.payload["error"] == "query answered abc\ufffddef, not a number"
    assert stored.payload["text"] == "a literal \\u0000 stays"
    assert message.body == "query answered abc\ufffddef, not a number"


async def test_a_token_issued_as_its_owner_rotates_at_once_is_refused_not_left_working(
    postgres_url: str,
) -> None:
    """Two API replicas: a leaked token's request for a voice token, read before its owner's
    rotation and written after it, left a voice token that worked on (the rotation "ends
    both"); of two rotations at once both answered a token, one of them dead."""
    await upgrade_async(postgres_url)
    db = Database(postgres_url)
    try:
        async with db.session() as session:
            _, leaked = await UserRepository(session).create(UserCreate(name="pg-rotor"))
            await session.commit()
        async with db.session() as thief, db.session() as owner:
            stolen = await UserRepository(thief).by_token(leaked)
            mine = await UserRepository(owner).by_token(leaked)
            assert stolen is not None and mine is not None
            new = await UserRepository(owner).rotate_token(mine)
            await owner.commit()
            with pytest.raises(TokenChangedError):
                await UserRepository(thief).rotate_voice_token(stolen)
            with pytest.raises(TokenChangedError):  # a second rotation read the same token
                await UserRepository(thief).rotate_token(stolen)
            await thief.rollback()
        async with db.session() as session:
            users = UserRepository(session)
            now = await users.get("pg-rotor")
            assert now is not None and now.voice_token_hash is None
            assert await users.by_token(new) is not None and await users.by_token(leaked) is None
            voice = await users.rotate_voice_token(now)  # with the current token read: issued
            await session.commit()
            assert await users.by_voice_token(voice) is not None
    finally:
        await db.close()


async def test_rows_stored_with_a_nul_before_are_rewritten_by_the_migration(
    postgres_server: str,
) -> None:
    """A database the release before poisoned kept failing every read of its events table:
    only new values were written with U+FFFD."""
    url = new_database(postgres_server)
    await upgrade_async(url, "0033_confirm_lives")
    db = Database(url)
    said = json.dumps({"error": "abc\x00def", "failures": 3, "text": "a literal \\u0000"})
    try:
        async with db.session() as session:
            await UserRepository(session).create(UserCreate(name="pg-old"))
            await session.execute(
                text(
                    'INSERT INTO events (kind, "user", task, payload, created_at) VALUES '
                    "('watch.failing', 'pg-old', 'threshold-watch/pg-old/x', CAST(:p AS json), "
                    "now())"
                ),
                {"p": said},
            )
            await session.commit()
        await upgrade_async(url)
        async with db.session() as session:
            events = EventRepository(session)
            assert await events.failing(user="pg-old") == [("threshold-watch/pg-old/x", None, 3)]
            assert await events.standing()
            [stored] = await events.list(user="pg-old")
    finally:
        await db.close()
    assert stored.payload == {"error": "abc\ufffddef", "failures": 3, "text": "a literal \\u0000"}
