"""The inbox channel: messages stored for the user, shown on the web page and via the API."""

from __future__ import annotations

from ambient.domain.notify import Message
from ambient.storage import Database
from ambient.storage.repositories import InboxRepository


class InboxChannel:
    """Stores the message in the user's own inbox (a target naming anyone else is refused
    before the send, by the target policy; the message still goes only to ``user``)."""

    name = "inbox"

    def __init__(self, db: Database) -> None:
        self._db = db

    async def send(
        self, user: str, message: Message, target: str, *, idempotency_key: str
    ) -> str | None:
        async with self._db.session() as session:
            row = await InboxRepository(session).add(user, message)
            await session.commit()
            return str(row.id)
