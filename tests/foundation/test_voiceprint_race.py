"""Two users taking the same voiceprint id at once: one has it, the other is refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import event

from ambient.domain.users import UserCreate, UserSettings
from ambient.storage import Database
from ambient.storage.migrate import upgrade_async
from ambient.storage.users import UserRepository, VoiceprintTakenError, user_public
from tests.conftest import unique
from tests.foundation.test_postgres import postgres_url  # noqa: F401 - the fixture


@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def database(
    request: pytest.FixtureRequest,
    db: Database,
) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        yield db
        return
    url = request.getfixturevalue("postgres_url")
    await upgrade_async(url)
    database = Database(url)
    try:
        yield database
    finally:
        await database.close()


async def _waits_its_turn(database: Database) -> None:
    """Until a session waits on another's lock (PostgreSQL; never on SQLite)."""
    from tests.watches.test_poll_ends import _waiting_on_a_lock

    if database.engine.dialect.name != "postgresql":
        await asyncio.Event().wait()
    for _ in range(600):  # a bound, not a timing claim
        if await _waiting_on_a_lock(database):
            return
        await asyncio.sleep(0.05)


async def test_two_users_taking_one_voiceprint_at_once_the_second_is_refused(
    database: Database,
) -> None:
    first, second, voice = unique("vp-a"), unique("vp-b"), unique("voice")
    async with database.session() as session:
        for name in (first, second):
            await UserRepository(session).create(UserCreate(name=name))
        await session.commit()
    async with database.session() as one, database.session() as other:
        a, b = await UserRepository(one).get(first), await UserRepository(other).get(second)
        assert a is not None and b is not None
        # Both check before either commits: the check alone lets both take it.
        await UserRepository(one).update(a, UserSettings(voiceprint_id=voice))
        checked = asyncio.Event()

        def writing(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
            if statement.startswith("UPDATE users"):  # the second update passed its check
                checked.set()

        event.listen(database.engine.sync_engine, "before_cursor_execute", writing)
        try:
            later = asyncio.create_task(
                UserRepository(other).update(
                    b, UserSettings(voiceprint_id=voice.upper(), email="b@example.com")
                )
            )
            # (Or it ended first: it fails below rather than hanging here; on PostgreSQL it
            # waits for the first's turn, its check then made after the first's commit.)
            writes = asyncio.ensure_future(checked.wait())
            waits = asyncio.ensure_future(_waits_its_turn(database))
            await asyncio.wait({later, writes, waits}, return_when=asyncio.FIRST_COMPLETED)
            writes.cancel()
            waits.cancel()
        finally:
            event.remove(database.engine.sync_engine, "before_cursor_execute", writing)
        await one.commit()
        with pytest.raises(VoiceprintTakenError, match="cannot be used as a voiceprint id"):
            await later
        # Refused: nothing of that update changed, and the session is still usable.
        assert (b.voiceprint_id, b.email) == (None, None)
        await other.commit()
    async with database.session() as session:
        stored = {
            user.name: user_public(user).voiceprint_id
            for user in await UserRepository(session).list_all()
            if user.name in (first, second)
        }
    assert stored == {first: voice, second: None}


async def test_a_name_registered_as_another_takes_it_as_a_voiceprint_is_refused_on_postgresql(
    postgres_url: str,  # noqa: F811
) -> None:
    # Two API replicas: one registers "bob" while on the other a user takes "bob" as a
    # voiceprint id. No index covers a name against a voiceprint: both checks passed, both
    # committed, and "bob" answered to nobody.
    from tests.watches.test_poll_ends import _waiting_on_a_lock

    await upgrade_async(postgres_url)
    database = Database(postgres_url)
    holder, bob = unique("holder"), unique("bob")
    try:
        async with database.session() as session:
            await UserRepository(session).create(UserCreate(name=holder))
            await session.commit()
        async with database.session() as one, database.session() as other:
            await UserRepository(one).create(UserCreate(name=bob))  # not committed yet
            them = await UserRepository(other).get(holder)
            assert them is not None
            later = asyncio.create_task(
                UserRepository(other).update(them, UserSettings(voiceprint_id=bob))
            )
            for _ in range(300):  # a bound, not a timing claim
                if later.done() or await _waiting_on_a_lock(database):
                    break
                await asyncio.sleep(0.05)
            await one.commit()
            with pytest.raises(VoiceprintTakenError):
                await later
    finally:
        await database.close()
