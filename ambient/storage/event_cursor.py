"""Reading events as they are committed, without skipping one that commits late.

On PostgreSQL a sequence hands ids out at insert, not at commit, so a reader that keeps only
the highest id it read (``id > last``) loses an event that commits after a higher one. An
``EventCursor`` is that high-water mark ``last`` and the **gaps** below it (ids no committed
event of any user had when read); each read asks for them again, and a gap is given up after
``GAP_GRACE`` (far longer than an event's one-insert transaction), at most ``MAX_GAPS`` kept.
No lock is taken to write an event (docs/watches.md, "Events"). On SQLite ids commit in order
and the same reader works unchanged.

A cursor travels as a token: the SSE ``id`` (sent back as ``Last-Event-ID``) and the event
agent's payload. ``"42"`` is "everything up to 42"; ``"42~17.40"`` adds that 17 and 40 were
not read yet.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ambient.storage.db import Database
from ambient.storage.models import HAPPENED, MAX_ID, Event, as_utc

# Longer than any event transaction stays open (one insert, committed at once).
GAP_GRACE = timedelta(minutes=10)
MAX_GAPS = 256
# A token names the gaps and, mid-batch, the batch's events not sent yet.
MAX_TOKEN_IDS = MAX_GAPS + 1000
_ID = r"\d{1,19}"
_TOKEN = re.compile(rf"^({_ID})(?:~({_ID}(?:\.{_ID})*))?$")


class CursorTokenError(ValueError):
    """A token that is not one this module wrote."""


@dataclass
class EventCursor:
    last: int = 0
    # gap id -> when the reader first missed it (UTC)
    gaps: dict[int, datetime] = field(default_factory=dict)

    # --- tokens ---------------------------------------------------------------------------
    def token(self, also: list[int] | None = None) -> str:
        """The cursor as text; ``also`` are ids to read again (events not yet delivered)."""
        pending = sorted({*self.gaps, *(also or [])})
        return f"{self.last}~{'.'.join(map(str, pending))}" if pending else str(self.last)

    @classmethod
    def parse(cls, token: str, *, now: datetime | None = None) -> EventCursor:
        """The cursor a token names; its gaps' grace starts again at ``now``."""
        if (match := _TOKEN.match(token.strip())) is None:
            raise CursorTokenError("an event id, or an id and '~' and dot-separated ids")
        last = int(match.group(1))
        pending = [int(x) for x in match.group(2).split(".")] if match.group(2) else []
        if last > MAX_ID or any(g > MAX_ID for g in pending) or len(pending) > MAX_TOKEN_IDS:
            raise CursorTokenError(f"ids up to {MAX_ID}, at most {MAX_TOKEN_IDS} of them")
        moment = now or datetime.now(UTC)
        return cls(last=last, gaps={g: moment for g in pending if g <= last})

    # --- the event agent keeps its cursor in its decisions' payload -----------------------
    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> EventCursor:
        gaps = {
            int(gap): as_utc(datetime.fromisoformat(at)) for gap, at in payload.get("gaps") or []
        }
        return cls(last=int(payload.get("last_event_id", 0)), gaps=gaps)


READ_LIMIT = 100  # events of every user a read looks at above its high-water mark


async def newest_id(session: AsyncSession) -> int:
    """The newest event's id, anyone's: where a stream of events from now on starts."""
    return await session.scalar(select(func.max(Event.id))) or 0


async def read_events(
    session: AsyncSession,
    cursor: EventCursor,
    *,
    user: str | None = None,
    limit: int = READ_LIMIT,
    now: datetime | None = None,
) -> tuple[list[Event], EventCursor]:
    """``user``'s events committed since ``cursor`` (late commits included), in id order,
    and the cursor after them. At most ``limit`` events above the high-water mark, those that
    happened only (no conversation's own state)."""
    moment = now or datetime.now(UTC)
    gaps = {g: at for g, at in cursor.gaps.items() if moment - at < GAP_GRACE}
    # Ids and owners of every user's events: only an id nobody's event holds is a gap.
    seen = (
        await session.execute(
            select(Event.id, Event.user)
            .where(or_(Event.id > cursor.last, Event.id.in_(list(gaps))))
            .order_by(Event.id)
            .limit(limit + len(gaps))
        )
    ).all()
    present = {row_id for row_id, _ in seen}
    high = max((row_id for row_id in present if row_id > cursor.last), default=cursor.last)
    gaps = {g: at for g, at in gaps.items() if g not in present}
    # Only the newest MAX_GAPS missing ids are kept: look no further down than that.
    for missing in range(max(cursor.last + 1, high - MAX_GAPS - len(present)), high):
        if missing not in present:
            gaps[missing] = moment
    gaps = {g: gaps[g] for g in sorted(gaps)[-MAX_GAPS:]}
    mine = [row_id for row_id, owner in seen if row_id <= high and (user is None or owner == user)]
    rows: list[Event] = []
    if mine:
        query = select(Event).where(Event.id.in_(mine), HAPPENED).order_by(Event.id)
        rows = list(await session.scalars(query))
    return rows, EventCursor(last=high, gaps=gaps)


async def follow(
    db: Database,
    cursor: EventCursor,
    *,
    user: str,
    stopped: Callable[[], Awaitable[bool]],
    poll_seconds: float,
) -> AsyncIterator[tuple[Event, str]]:
    """``user``'s events as they commit until ``stopped``, each with the token to resume after
    it (naming its batch's events not yet sent, so a client dropped mid-batch gets them)."""
    while True:
        before = cursor.last
        async with db.session() as session:
            rows, cursor = await read_events(session, cursor, user=user, limit=READ_LIMIT)
        # Looked at after the read: every event sent was committed before the look, so none
        # committed after the stream's token was rotated reaches what the old one opened.
        if await stopped():
            return
        for index, row in enumerate(rows):
            yield row, cursor.token(also=[r.id for r in rows[index + 1 :]])
        # A batch of others' events as long as a read takes: more may follow at once (a new
        # stream far behind the newest id crawled READ_LIMIT ids a poll, hours behind).
        if not rows and cursor.last - before < READ_LIMIT:
            await asyncio.sleep(poll_seconds)
