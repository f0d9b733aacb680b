"""The inbox keeps a notification whatever its title's and link's length, on every database."""

from __future__ import annotations

from ambient.domain.users import UserCreate
from ambient.storage import Database
from ambient.storage.migrate import upgrade_async
from ambient.storage.repositories import InboxRepository
from ambient.storage.users import UserRepository
from ambient.watches.poll_store import InboxCopy, NewEvent, PollWrite, PollWriter
from ambient.watches.polling import page_message
from tests.conftest import unique
from tests.foundation.test_postgres import postgres_url  # noqa: F401  (fixture)


async def test_a_change_on_a_watched_page_with_a_long_url_reaches_the_inbox(
    database_url: str,
) -> None:
    await upgrade_async(database_url)
    db = Database(database_url)
    try:
        ada = unique("ada")
        async with db.session() as session:
            await UserRepository(session).create(UserCreate(name=ada))
            await session.commit()
        # A watched URL may be 2048 characters (a search page's query string).
        url = "https://shop.example/search?q=" + "显卡" * 10 + "&f=" + "x" * 1700
        message = page_message("watch.change", {"url": url, "excerpt": "RTX"}, keywords=False)
        assert message is not None
        async with db.session() as session:  # as the inbox's send stores it
            await InboxRepository(session).add(ada, message)
            await session.commit()
        async with db.session() as session:
            (stored,) = await InboxRepository(session).list(ada)
        assert stored.title == message.title[:254] + "…"
        assert url in (stored.link or "") + stored.body
    finally:
        await db.close()


async def test_a_change_a_poll_stores_with_its_inbox_copy_keeps_a_long_url(
    database_url: str,
) -> None:
    """A poll writes the inbox copy of a change with its event (the group commit): on
    PostgreSQL a watched URL over the link column's 1,024 characters failed the whole write,
    so the change was never stored nor told, and the next check failed the same way."""
    await upgrade_async(database_url)
    db = Database(database_url)
    try:
        ada = unique("ada")
        async with db.session() as session:
            await UserRepository(session).create(UserCreate(name=ada))
            await session.commit()
        url = "https://shop.example/search?q=" + "显卡" * 10 + "&f=" + "x" * 1700
        message = page_message("watch.change", {"url": url, "excerpt": "RTX"}, keywords=False)
        assert message is not None
        key = unique("web-monitor/ada/w") + "/life/poll/1"
        copy = InboxCopy(message=message, delivery_key=f"{key}:inbox:", shown_target="inbox")
        event = NewEvent(seq=1, kind="watch.change", key=key, payload={"url": url}, inbox=copy)
        write = PollWrite(
            poll=key, life="life", user=ada, task=key, seq=0, urls={}, events=lambda _: [event]
        )
        stored = await PollWriter(db, linger=0.0).write(write)
        assert [e.key for e in stored] == [key]
        async with db.session() as session:
            (kept,) = await InboxRepository(session).list(ada)
        assert kept.title == message.title[:254] + "…"
        assert url in (kept.link or "") + kept.body
    finally:
        await db.close()
