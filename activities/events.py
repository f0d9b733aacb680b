"""Recording events from workflows."""

from __future__ import annotations

from temporalio import activity

from ambient.domain.events import RecordEventInput
from ambient.storage import Database
from ambient.storage.repositories import EventRepository


class EventActivities:
    def __init__(self, db: Database) -> None:
        self._db = db

    @activity.defn
    async def record_event(self, event: RecordEventInput) -> int:
        """Append an event (once per idempotency key) and return its id."""
        # Read (the key) then write: take the write lock first, keep the transaction short.
        async with self._db.write_session() as session:
            row = await EventRepository(session).add(
                event.kind,
                user=event.user,
                task=event.task,
                payload=event.payload,
                idempotency_key=event.idempotency_key,
            )
            await session.commit()
            return row.id
