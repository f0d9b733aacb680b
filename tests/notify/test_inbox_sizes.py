"""The inbox keeps a notification whatever its title's and link's length, on every database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from ambient.domain.notify import Message
from ambient.domain.users import UserCreate
from ambient.storage import Database
from ambient.storage.migrate import upgrade_async
from ambient.storage.repositories import InboxRepository
from ambient.storage.users import UserRepository
from ambient.watches.poll_store import InboxCopy, NewEvent, PollWrite, PollWriter
from ambient.watches.polling import page_message
from tests.conftest import unique
from tests.foundation.test_postgres import postgres_url  # noqa: F401  (fixture)

# A watched URL may be 2048 characters (a search page's query string).
LONG_URL = "https://shop.example/search?q=" + "显卡" * 10 + "&f=" + "x" * 1700


async def by_the_inbox_send(db: Database, user: str, message: Message) -> None:
    async with db.session() as session:  # as the inbox's send stores it
        await InboxRepository(session).add(user, message)
        await session.commit()


async def with_its_poll(db: Database, user: str, message: Message) -> None:
    """A poll writes the inbox copy of a change with its event (the group commit): on
    PostgreSQL a watched URL over the link column's 1,024 characters failed the whole write,
    so the change was never stored nor told, and the next check failed the same way."""
    key = unique(f"web-monitor/{user}/w") + "/life/poll/1"
    copy = InboxCopy(message=message, delivery_key=f"{key}:inbox:", shown_target="inbox")
    event = NewEvent(seq=1, kind="watch.change", key=key, payload={"url": LONG_URL}, inbox=copy)
    write = PollWrite(
        poll=key, life="life", user=user, task=key, seq=0, urls={}, events=lambda _: [event]
    )
    stored = await PollWriter(db, linger=0.0).write(write)
    assert [e.key for e in stored] == [key]


@pytest.mark.parametrize("store", [by_the_inbox_send, with_its_poll])
async def test_a_change_on_a_watched_page_with_a_long_url_reaches_the_inbox(
    database_url: str, store: Callable[[Database, str, Message], Awaitable[None]]
) -> None:
    await upgrade_async(database_url)
    async with Database(database_url) as db:
        ada = unique("ada")
        async with db.session() as session:
            await UserRepository(session).create(UserCreate(name=ada))
            await session.commit()
        message = page_message("watch.change", {"url": LONG_URL, "excerpt": "RTX"}, keywords=False)
        assert message is not None
        await store(db, ada, message)
        async with db.session() as session:
            (kept,) = await InboxRepository(session).list(ada)
    assert kept.title == message.title[:254] + "…"
    assert LONG_URL in (kept.link or "") + kept.body
