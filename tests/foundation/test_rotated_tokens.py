"""A rotated token stops working at every door, the connections it opened included."""

from __future__ import annotations

import asyncio

from sqlalchemy import update

from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.event_cursor import EventCursor, follow
from ambient.storage.models import User
from api.app import create_app
from api.routers.pages import COOKIE
from tests.foundation.test_event_cursor import STREAM_BOUND, _add, _api, _stream
from tests.support.servers import http_client, serve


async def test_an_event_stream_ends_when_its_token_is_rotated(
    db: Database, settings: Settings
) -> None:
    settings, ada = await _api(settings, settings.resolved_database_url)
    cookie = {"Cookie": f"{COOKIE}={ada['Authorization'].removeprefix('Bearer ')}"}
    api_events: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
    page_events: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
    async with serve(create_app(settings)) as base:
        readers = [
            asyncio.create_task(_stream(base, ada, api_events)),
            asyncio.create_task(_stream(base, cookie, page_events, path="/app/events/stream")),
        ]
        try:
            before = await _add(db, "ada", "watch.check")
            assert (await asyncio.wait_for(api_events.get(), STREAM_BOUND))[1] == before
            assert (await asyncio.wait_for(page_events.get(), STREAM_BOUND))[1] == before
            # Ada thinks her token leaked: she rotates it. Whoever holds a stream opened
            # with the old one hears nothing more.
            async with http_client(base) as http:
                rotated = await http.post("/users/me/token", headers=ada)
            assert rotated.status_code == 200
            after = await _add(db, "ada", "watch.breach")
            done, _ = await asyncio.wait(readers, timeout=STREAM_BOUND)
        finally:
            for reader in readers:
                reader.cancel()
    assert api_events.empty() and page_events.empty(), f"event {after} reached an old token"
    assert len(done) == 2, "a stream opened with the rotated token is still open"


async def test_an_event_committed_after_the_rotation_is_not_sent_on_the_old_tokens_stream(
    db: Database,
) -> None:
    """The stream looked at the token, then read the events: a rotation and an event committed
    between the two reached whoever held the old token (a busy server widens the gap). The
    token is looked at after the read now, so every event sent was committed before it."""
    rotated = False

    async def stopped() -> bool:
        nonlocal rotated
        if rotated:
            return True
        # The token is still the one the stream was opened with; right after this look, it
        # is rotated and an event commits.
        rotated = True
        await _add(db, "ada", "watch.breach")
        return False

    sent = [
        row.id
        async for row, _ in follow(db, EventCursor(), user="ada", stopped=stopped, poll_seconds=0)
    ]
    assert sent == [], f"events {sent} reached a rotated token's stream"


async def test_an_event_stream_opened_by_an_admin_ends_when_they_are_made_a_member(
    db: Database, settings: Settings
) -> None:
    """The stream read events as its opener's role was when it opened: an admin made a member
    went on reading them as an operator does (internal errors unmasked) until reconnecting."""
    settings, ada = await _api(settings, settings.resolved_database_url)
    async with db.session() as session:
        await session.execute(update(User).where(User.name == "ada").values(role="admin"))
        await session.commit()
    events: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
    async with serve(create_app(settings)) as base:
        reader = asyncio.create_task(_stream(base, ada, events))
        try:
            before = await _add(db, "ada", "watch.check")
            assert (await asyncio.wait_for(events.get(), STREAM_BOUND))[1] == before
            async with db.session() as session:
                await session.execute(update(User).where(User.name == "ada").values(role="member"))
                await session.commit()
            after = await _add(db, "ada", "watch.breach")
            done, _ = await asyncio.wait([reader], timeout=STREAM_BOUND)
        finally:
            reader.cancel()
    assert events.empty(), f"event {after} reached a stream opened as an admin"
    assert done, "the stream opened as an admin is still open"
