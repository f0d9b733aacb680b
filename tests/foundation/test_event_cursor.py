"""Event readers (the SSE streams, the event agent) miss no event that commits late."""

# ruff: noqa: F811 - the fixture `postgres_url` is imported and used by name

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from activities.event_agent import EventAgentActivities
from ambient.clients.llm import LLMClient
from ambient.domain.users import UserCreate
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.event_cursor import (
    GAP_GRACE,
    READ_LIMIT,
    CursorTokenError,
    EventCursor,
    follow,
    read_events,
)
from ambient.storage.migrate import upgrade_async
from ambient.storage.repositories import EventRepository
from ambient.storage.users import UserRepository
from api.app import create_app
from api.routers.events import MAX_STREAMS, SURPLUS
from api.routers.pages import COOKIE
from tests.conftest import unique
from tests.foundation.test_postgres import postgres_url  # noqa: F401  (fixture)
from tests.support.servers import free_port, http_client, serve

# A bound on waiting for a stream, not a timing claim: a skipped event never comes.
STREAM_BOUND = 20.0


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request: pytest.FixtureRequest) -> Database:
    """The same test on the migrated SQLite file and on a real PostgreSQL."""
    database: Database = request.getfixturevalue("db" if request.param == "sqlite" else "pg")
    return database


async def _add(db: Database, user: str, kind: str) -> int:
    async with db.session() as session:
        event = await EventRepository(session).add(kind, user=user)
        await session.commit()
        return event.id


async def _waiting_on_a_lock_or_done(db: Database, task: asyncio.Task[int]) -> None:
    """Until ``task`` committed (PostgreSQL lets it: no lock is taken to write an event)."""
    for _ in range(300):  # a bound, not a timing claim
        if task.done():
            return
        async with db.session() as session:
            if await session.scalar(text("SELECT count(*) FROM pg_locks WHERE NOT granted")):
                return
        await asyncio.sleep(0.05)
    raise AssertionError("the second writer neither committed nor waited")


@asynccontextmanager
async def _late_commit(db: Database, user: str) -> AsyncIterator[tuple[int, asyncio.Task[int]]]:
    """An event that takes its id first and commits last: yields (its id, the later event's
    writer); the early event commits when the block ends."""
    async with db.session() as slow:
        early = await EventRepository(slow).add("watch.breach", user=user)
        later = asyncio.create_task(_add(db, user, "watch.check"))
        await _waiting_on_a_lock_or_done(db, later)
        yield early.id, later
        await slow.commit()
    await later


async def test_an_event_that_commits_after_a_later_one_is_read_on_postgresql(
    pg: Database,
) -> None:
    # (On SQLite one writer holds the write lock from its insert to its commit: ids commit in
    # order there, and a second writer cannot commit first.)
    any_db, user = pg, unique("ada")
    cursor, seen = EventCursor(), []
    async with _late_commit(any_db, user) as (early, later):
        async with any_db.session() as session:
            rows, cursor = await read_events(session, cursor, user=user)
        seen += [r.id for r in rows]
    async with any_db.session() as session:
        rows, cursor = await read_events(session, cursor, user=user)
    seen += [r.id for r in rows]
    assert sorted(seen) == sorted([early, later.result()])
    assert cursor.gaps == {}


async def test_a_gap_nobody_fills_is_given_up_after_the_grace(any_db: Database) -> None:
    # Another user's event is not a gap; an id no event holds is one, until the grace passes.
    first = await _add(any_db, "bob", "watch.check")
    mine = await _add(any_db, "ada", "watch.check")
    now = datetime.now(UTC)
    cursor = EventCursor(last=first - 1, gaps={mine + 1000: now})
    async with any_db.session() as session:
        rows, after = await read_events(session, cursor, user="ada", now=now)
        assert [r.id for r in rows] == [mine] and after.last == mine
        assert set(after.gaps) == {mine + 1000}
        _, expired = await read_events(session, after, user="ada", now=now + GAP_GRACE)
    assert expired.gaps == {} and expired.last == mine


def test_a_token_names_ids_up_to_the_largest_an_id_column_holds() -> None:
    """Ids are 64-bit on both databases: a token at 2**63 - 1 (its gaps too) reads back as
    written, one past it is refused (the 32-bit bound refused ids PostgreSQL now hands out)."""
    largest = 2**63 - 1
    token = f"{largest}~{2**31}.{largest - 1}"
    cursor = EventCursor.parse(token)
    assert (cursor.last, sorted(cursor.gaps)) == (largest, [2**31, largest - 1])
    assert cursor.token() == token
    for past in (f"{largest + 1}", f"{2**31}~{largest + 1}"):
        with pytest.raises(CursorTokenError):
            EventCursor.parse(past)


async def test_the_event_agent_reads_an_event_that_committed_after_its_last_run_on_postgresql(
    pg: Database, settings: Settings
) -> None:
    any_db, user = pg, unique("ada")
    agent = EventAgentActivities(any_db, LLMClient(settings))
    async with _late_commit(any_db, user) as (early, later):
        first = await agent.collect_unseen_events(user)
        # What EventDigestWorkflow records as its decision (and next run's cursor).
        async with any_db.session() as session:
            await EventRepository(session).add(
                "agent.held",
                user=user,
                payload={"last_event_id": first.last_id, "gaps": [list(g) for g in first.gaps]},
            )
            await session.commit()
    second = await agent.collect_unseen_events(user)
    read = [e.id for e in first.events] + [e.id for e in second.events]
    assert sorted(read) == sorted([early, later.result()])
    assert second.mark != first.mark  # a batch of late events has a key of its own


async def _stream(
    base: str,
    headers: dict[str, str],
    into: asyncio.Queue[tuple[str, int]],
    *,
    path: str = "/events/stream",
    lines: list[str] | None = None,
) -> None:
    """Put each event of a stream into ``into`` as (SSE id, event id), until cancelled or the
    stream ends; ``lines``: every line of it too."""
    async with http_client(base, timeout=30) as http:
        async with http.stream("GET", path, headers=headers) as response:
            assert response.status_code == 200, await response.aread()
            sse_id = ""
            async for line in response.aiter_lines():
                if lines is not None:
                    lines.append(line)
                if line.startswith("id:"):
                    sse_id = line[3:].strip()
                elif line.startswith("data:"):
                    await into.put((sse_id, json.loads(line[5:])["id"]))


async def _first(
    base: str, headers: dict[str, str], count: int, *, path: str = "/events/stream"
) -> list[tuple[str, int]]:
    into: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
    reading = asyncio.create_task(_stream(base, headers, into, path=path))
    try:
        return [await asyncio.wait_for(into.get(), STREAM_BOUND) for _ in range(count)]
    finally:
        reading.cancel()


async def _api(settings: Settings, db_url: str) -> tuple[Settings, dict[str, str]]:
    settings = settings.model_copy(
        update={"database_url": db_url, "temporal_address": f"127.0.0.1:{free_port()}"}
    )
    await upgrade_async(db_url)
    db = Database(db_url)
    try:
        async with db.session() as session:
            users = UserRepository(session)
            found = await users.get("ada")
            if found is None:
                _, token = await users.create(UserCreate(name="ada"))
            else:
                token = await users.rotate_token(found)
            await session.commit()
    finally:
        await db.close()
    return settings, {"Authorization": f"Bearer {token}"}


async def test_the_event_stream_sends_an_event_that_commits_late_on_postgresql(
    pg: Database, postgres_url: str, settings: Settings
) -> None:
    settings, ada = await _api(settings, postgres_url)
    start = await _add(pg, "ada", "watch.check")
    into: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
    async with serve(create_app(settings)) as base:
        reading = asyncio.create_task(_stream(base, {**ada, "Last-Event-ID": str(start)}, into))
        try:
            async with _late_commit(pg, "ada") as (early, later):
                await later  # committed, while the early one is not
                passed = await asyncio.wait_for(into.get(), STREAM_BOUND)
                assert passed[1] == later.result()
                assert early in EventCursor.parse(passed[0]).gaps
            late = await asyncio.wait_for(into.get(), STREAM_BOUND)
        finally:
            reading.cancel()
    assert late[1] == early


async def test_a_reconnecting_client_resumes_from_its_last_event_id_and_gets_the_gaps(
    db: Database, settings: Settings
) -> None:
    settings, ada = await _api(settings, settings.resolved_database_url)
    ids = [await _add(db, "ada", "watch.check") for _ in range(6)]
    # The client had everything up to ids[4] except ids[2] (a late commit it was told of).
    resume = EventCursor.parse(f"{ids[4]}~{ids[2]}").token()
    async with serve(create_app(settings)) as base:
        got = await _first(base, {**ada, "Last-Event-ID": resume}, 2)
        cookie = {"Cookie": f"{COOKIE}={ada['Authorization'].removeprefix('Bearer ')}"}
        pages = await _first(
            base, {**cookie, "Last-Event-ID": resume}, 2, path="/app/events/stream"
        )
        async with http_client(base) as http:
            bad = await http.get("/events/stream", headers={**ada, "Last-Event-ID": "x; drop"})
    assert [event for _, event in got] == [ids[2], ids[5]]
    # Mid-batch, an id names what is still to come: resuming from it loses nothing.
    assert EventCursor.parse(got[0][0]).gaps.keys() == {ids[5]}
    assert [event for _, event in pages] == [ids[2], ids[5]]
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["header", "Last-Event-ID"]


async def test_a_users_streams_carry_none_of_another_users_events(
    db: Database, settings: Settings
) -> None:
    """The API's stream and the page's stream send the caller's events alone, whatever the
    query asks (neither takes a user: the API's refuses one, 422 naming it, as any parameter a
    route does not take), among another user's written before and between."""
    settings, ada = await _api(settings, settings.resolved_database_url)
    ids = [await _add(db, user, "watch.hit") for user in ("bob", "ada", "bob", "bob", "ada")]
    cookie = {"Cookie": f"{COOKIE}={ada['Authorization'].removeprefix('Bearer ')}"}
    async with serve(create_app(settings)) as base:
        api = await _first(base, ada, 2, path="/events/stream")
        page = await _first(base, cookie, 2, path="/app/events/stream?user=bob")
        async with http_client(base) as http:
            refused = await http.get("/events/stream", params={"user": "bob"}, headers=ada)
    assert [event for _, event in api] == [event for _, event in page] == [ids[1], ids[4]]
    assert refused.status_code == 422, refused.text
    assert [e["loc"] for e in refused.json()["detail"]] == [["query", "user"]]


async def test_a_stream_far_behind_the_newest_event_catches_up_without_a_poll_between(
    db: Database,
) -> None:
    """A stream started from an old id (a user whose last event is old, the API's default of
    0) read a hundred of everyone's ids a poll and waited a poll after each batch that held
    none of its user's: a million events behind, hours before a new one of its own came."""
    for _ in range(3 * READ_LIMIT + 50):
        await _add(db, "bob", "watch.hit")
    mine = await _add(db, "ada", "watch.hit")

    async def never() -> bool:
        return False

    # Polls an hour apart: only reading on at once reaches ada's event within the bound.
    stream = follow(db, EventCursor(last=0), user="ada", stopped=never, poll_seconds=3600)
    row, _ = await asyncio.wait_for(anext(stream), STREAM_BOUND)
    await stream.aclose()  # type: ignore[attr-defined]
    assert row.id == mine


async def test_the_dashboards_live_feed_starts_near_the_newest_event_not_the_readers_own(
    db: Database, settings: Settings
) -> None:
    settings, ada = await _api(settings, settings.resolved_database_url)
    own = await _add(db, "ada", "watch.hit")
    newest = [await _add(db, "bob", "watch.hit") for _ in range(READ_LIMIT + 20)][-1]
    cookie = {"Cookie": f"{COOKIE}={ada['Authorization'].removeprefix('Bearer ')}"}
    async with serve(create_app(settings)) as base, http_client(base) as http:
        page = (await http.get("/app", headers=cookie)).text
    # A read's worth below the newest: a late commit of the reader's below it still comes.
    assert f'data-after="{newest - READ_LIMIT}"' in page and own < newest - READ_LIMIT


async def test_a_users_newest_event_stream_ends_their_oldest_past_a_few(
    db: Database, settings: Settings
) -> None:
    """Each open stream reads the database every poll: a member opening hundreds held the
    connection pool that every other request waits on. Past MAX_STREAMS a new stream ends the
    oldest (a tab whose connection died unseen would hold its place for minutes, and a
    browser's EventSource does not open again after a refusal); the others go on."""
    settings, ada = await _api(settings, settings.resolved_database_url)
    first = await _add(db, "ada", "watch.hit")
    async with serve(create_app(settings)) as base:
        queues = [asyncio.Queue[tuple[str, int]]() for _ in range(MAX_STREAMS + 1)]
        readers: list[asyncio.Task[None]] = []
        try:
            ended_lines: list[str] = []
            for into in queues:  # one after another, each running (its first event read)
                lines = None if readers else ended_lines
                readers.append(asyncio.create_task(_stream(base, ada, into, lines=lines)))
                assert (await asyncio.wait_for(into.get(), STREAM_BOUND))[1] == first
            # The oldest ended (its response over), the rest still running.
            await asyncio.wait_for(asyncio.shield(readers[0]), STREAM_BOUND)
            assert not any(reader.done() for reader in readers[1:])
            # ...its client told to wait a minute before opening another (a browser's
            # EventSource opened it again at once, ending the next oldest, round every tab).
            assert f"retry: {SURPLUS}" in ended_lines, ended_lines
            later = await _add(db, "ada", "watch.hit")
            for into in queues[1:]:
                assert (await asyncio.wait_for(into.get(), STREAM_BOUND))[1] == later
        finally:
            for reader in readers:
                reader.cancel()
