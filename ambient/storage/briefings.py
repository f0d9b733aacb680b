"""Repositories of the daily briefing: briefings, per-user log baselines, the broadcast queue."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import select, update

from ambient.storage.db import Repository
from ambient.storage.models import Briefing, Broadcast, LogBaselineRow
from ambient.storage.repositories import EventRepository


class BroadcastRepository(Repository):
    """The broadcast queue: problems waiting for the user's next briefing (one interface)."""

    async def push(self, user: str, title: str, body: str, source: str, key: str) -> None:
        """Queue a problem for ``user``; the same ``key`` again leaves the first row unchanged."""
        if await self._by_key(key) is not None:
            return
        row = Broadcast(key=key, user=user, title=title[:255], body=body, source=source)
        await self._insert_once(row, partial(self._by_key, key))

    async def _by_key(self, key: str) -> Broadcast | None:
        return await self.session.scalar(select(Broadcast).where(Broadcast.key == key))

    async def pending(self, user: str) -> list[Broadcast]:
        """Problems not yet carried by a briefing, oldest first."""
        return await self.carried_on(user, None)

    async def carried_on(self, user: str, date: str | None) -> list[Broadcast]:
        """Problems the briefing of ``date`` carried (None: none yet), oldest first."""
        # `== None` is SQL's IS NULL.
        query = select(Broadcast).where(Broadcast.user == user, Broadcast.broadcast_on == date)
        return list(await self.session.scalars(query.order_by(Broadcast.id.asc())))

    async def mark_broadcast(self, ids: Sequence[int], date: str) -> None:
        """Record that the briefing of local ``date`` carried these problems."""
        if not ids:
            return
        await self.session.execute(
            update(Broadcast)
            .where(Broadcast.id.in_(list(ids)), Broadcast.broadcast_on.is_(None))
            .values(broadcast_on=date)
        )


class BriefingRepository(Repository):
    async def get(self, user: str, date: str) -> Briefing | None:
        query = select(Briefing).where(Briefing.user == user, Briefing.date == date)
        return await self.session.scalar(query)

    async def list(self, user: str, *, limit: int = 30) -> list[Briefing]:
        query = select(Briefing).where(Briefing.user == user).order_by(Briefing.date.desc())
        return list(await self.session.scalars(query.limit(limit)))

    async def save(
        self,
        user: str,
        date: str,
        *,
        content: dict[str, Any],
        report_markdown: str,
        generated_by: str,
        prepared_at: datetime,
        day_ended: datetime | None = None,
    ) -> Briefing:
        """Store the prepared briefing of ``date``; preparing again replaces it (version + 1).
        ``day_ended``: the end of the day it reports (its midnight in its zone). A greeting or
        push before it was of another day of that date (one in a zone ahead, before the
        briefing moved to one behind): not this day's, which is not spent by it."""
        row = await self.get(user, date)
        if row is None:
            row = Briefing(user=user, date=date, version=1)
            self.session.add(row)
        else:
            row.version = (row.version or 0) + 1
            if day_ended is not None and row.given_at is not None and row.given_at < day_ended:
                row.given_at = row.given_via = None
            if day_ended is not None and row.pushed_at is not None and row.pushed_at < day_ended:
                row.pushed_at = None
        row.content = content
        row.report_markdown = report_markdown
        row.generated_by = generated_by
        row.prepared_at = prepared_at
        if row.given_at is None and row.pushed_at is None:
            row.status = "ready"
        await self.session.flush()
        return row

    async def record_given(self, user: str, date: str, at: datetime, via: str, task: str) -> None:
        """Record the (only) time the briefing was spoken, and its `briefing.given` event; an
        earlier record is kept (once per user and date, whichever run of the task stores it)."""
        row = await self.get(user, date)
        if row is not None and row.given_at is None:
            row.given_at = at
            row.given_via = via
            row.status = "given"
            await self.session.flush()
        await EventRepository(self.session).add(
            "briefing.given",
            user=user,
            task=task,
            payload={"date": date, "given_at": at.isoformat(), "via": via},
            idempotency_key=f"{task}/{date}/given",
        )

    async def mark_pushed(self, user: str, date: str, at: datetime) -> None:
        row = await self.get(user, date)
        if row is not None and row.pushed_at is None:
            row.pushed_at = at
            if row.given_at is None:
                row.status = "pushed"
            await self.session.flush()


class BaselineRepository(Repository):
    """Per-user log baselines (the reducer's ``LogBaseline`` as JSON)."""

    async def get(self, user: str) -> LogBaselineRow | None:
        return await self.session.get(LogBaselineRow, user)

    async def save(self, user: str, date: str, data: dict[str, Any]) -> None:
        """Store ``user``'s baseline as folded up to ``date`` (a new row, or the one replaced)."""
        await self.session.merge(LogBaselineRow(user=user, last_date=date, data=data))
        await self.session.flush()
