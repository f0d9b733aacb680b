"""A delivery left in flight: what a worker that died in the send leaves behind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ambient.storage import Database
from ambient.storage.models import Delivery


async def left_in_flight(
    db: Database, key: str, user: str, channel: str = "inbox", target: str = ""
) -> None:
    """Store the delivery ``key`` as an earlier try's, whose worker died sending it: its lease
    outlasts every retry, so each try of the notify activity finds it in flight, and none
    finishes it."""
    async with db.session() as session:
        session.add(
            Delivery(
                key=key,
                user=user,
                channel=channel,
                target=target,
                status="pending",
                attempts=1,
                lease_until=datetime.now(UTC) + timedelta(hours=1),
            )
        )
        await session.commit()
