"""The inbox channel: messages stored for the user, shown on the web page and via the API."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from ambient.clients.notify.base import Posts
from ambient.clients.notify.errors import TAKEN_OVER, TransientNotifyError
from ambient.domain.notify import Message
from ambient.storage import Database
from ambient.storage.repositories import DeliveryRepository, InboxRepository


@dataclass
class InboxChannel:
    """Stores the message in ``user``'s own inbox, whatever the target names."""

    # A target naming anyone else is refused before the send, by the target policy.

    name = "inbox"

    db: Database

    async def send(
        self,
        user: str,
        message: Message,
        target: str,
        *,
        idempotency_key: str,
        posts: Posts,
        **unused: object,
    ) -> str | None:
        async with self.db.session() as session:
            stored = await store(session, user, message, idempotency_key, posts.attempt)
            await session.commit()
            return stored


async def store(session: AsyncSession, user: str, message: Message, key: str, attempt: int) -> str:
    """The message in ``user``'s inbox and, for the try that took its delivery row ``key`` as
    ``attempt``, the row sent, in ``session``'s transaction (the notify activity's claim of the
    row, or a send's own): a try that dies before the commit leaves no message for the next try
    to store again. Its id."""
    row = await InboxRepository(session).add(user, message)
    if not await DeliveryRepository(session).finish(
        key, attempt, status="sent", provider_id=str(row.id)
    ):
        # This try's lease ran out and another try took the row: that one stores it.
        raise TransientNotifyError(f"{TAKEN_OVER}; not stored")
    return str(row.id)
