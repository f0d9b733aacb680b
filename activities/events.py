"""Recording events from workflows."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from ambient.domain.events import RecordEventInput
from ambient.storage import Database
from ambient.storage.models import Event
from ambient.storage.repositories import EventRepository
from ambient.watches.threshold_rule import ALREADY_TOLD, TOLD_ALERTS, alert_life, told_already


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
                events = EventRepository(session)
                kind, payload = event.kind, event.payload
                if (told := await self._told_before(events, event)) is not None:
                    kind = ALREADY_TOLD
                    payload = {**payload, "alert": event.kind, "told_as": told.id}
                    activity.logger.info(
                        "%s of %s not told again: event %d told it in this life of the watch "
                        "(its run was reset)",
                        event.kind,
                        event.task,
                        told.id,
                    )
                row = await events.add(
                    kind,
                    user=event.user,
                    task=event.task,
                    payload=payload,
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

    @activity.defn
    async def recorded_kinds(self, keys: list[str]) -> dict[str, str]:
        """The kind of the event recorded under each of the idempotency ``keys`` that has one
        (a breach found told before: ``watch.already_told``)."""
        async with self._db.session() as session:
            events = EventRepository(session)
            found = {key: await events.keyed(key) for key in keys}
        return {key: event.kind for key, event in found.items() if event is not None}

    @staticmethod
    async def _told_before(events: EventRepository, event: RecordEventInput) -> Event | None:
        """The event that told a threshold watch's breach (or recovery) ``event`` already: the
        last one its life told was the same (``told_already``). None: it is to be told (or
        recorded already: its key's event stays)."""
        key, task = event.idempotency_key, event.task
        if event.kind not in TOLD_ALERTS or key is None or task is None:
            return None
        life = alert_life(key)
        if life is None or await events.keyed(key) is not None:
            return None
        last = await events.last_under(task, TOLD_ALERTS, life)
        if last is None or not told_already(event.kind, last.kind):
            return None
        # Numbered by the watch (``alerts_told``): the last record told this one only if it
        # holds its number or a later one. A lower one: the alerts between were told but their
        # records failed (a recovery's), and this breach is a new one, to tell (it was kept
        # from everyone, and from its remediation).
        number, recorded = event.payload.get("told"), last.payload.get("told")
        if isinstance(number, int) and isinstance(recorded, int) and recorded < number:
            return None
        return last
