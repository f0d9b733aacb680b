"""Recording events from workflows."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from ambient.domain.events import RecordEventInput
from ambient.storage import Database
from ambient.storage.repositories import EventRepository


class EventActivities:
    def __init__(self, db: Database) -> None:
        self._db = db

    @activity.defn
    async def record_event(self, event: RecordEventInput) -> int:
        """Append an event (once per idempotency key) and return its id.

        A database that is busy or away raises and Temporal retries; a row the database
        refuses for good (a constraint other than the key) is a non-retryable
        ``EventRejected``: retrying would only fail again.
        """
        try:
            # Read (the key) then write: take the write lock first, keep it short.
            async with self._db.writing() as session:
                row = await EventRepository(session).add(
                    event.kind,
                    user=event.user,
                    task=event.task,
                    payload=event.payload,
                    idempotency_key=event.idempotency_key,
                )
            return row.id
        except IntegrityError as exc:
            # A key another process recorded first is that event (EventRepository.add finds
            # it): a refusal here is another constraint's.
            raise ApplicationError(
                f"the event store refused {event.kind!r}: {exc.orig}",
                type="EventRejected",
                non_retryable=True,
            ) from None
