"""The inbox keeps a notification whatever its title's and link's length, on every database."""

from __future__ import annotations

from ambient.clients.notify.inbox import InboxChannel
from ambient.domain.users import UserCreate
from ambient.storage import Database
from ambient.storage.migrate import upgrade_async
from ambient.storage.repositories import InboxRepository, UserRepository
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
        await InboxChannel(db).send(ada, message, "", idempotency_key=unique("k"))
        async with db.session() as session:
            (stored,) = await InboxRepository(session).list(ada)
        assert stored.title == message.title[:254] + "…"
        assert url in (stored.link or "") + stored.body
    finally:
        await db.close()
