"""The append-only audit log: who did what to which subject, with the old and new values.

Permission and role changes, cloud writes and remediation steps append here. There is no update
or delete on purpose: a record, once written, is the history.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ambient.storage.db import Repository, given
from ambient.storage.models import AuditRecord, as_utc, utcnow

# Longer than any transaction that appends to the log stays open.
UNSETTLED = timedelta(minutes=1)


class AuditRepository(Repository):
    async def append(
        self, *, actor: str, action: str, subject: str, detail: dict[str, Any] | None = None
    ) -> AuditRecord:
        """Add one record (flushed, committed with the caller's change)."""
        record = AuditRecord(actor=actor, action=action, subject=subject, detail=detail or {})
        self.session.add(record)
        await self.session.flush()
        return record

    async def list(
        self,
        *,
        subject: str | None = None,
        subject_prefix: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        not_action: str | None = None,
        limit: int = 200,
        after: int | None = None,
        settled: bool = False,
    ) -> list[AuditRecord]:
        """Records matching every given filter, oldest first; ``after`` a record's id, the
        ones after it (the next page); ``settled`` (a reader paging the log): none past an
        id still being committed."""
        query = select(AuditRecord).filter_by(**given(subject=subject, actor=actor, action=action))
        if not_action is not None:
            query = query.where(AuditRecord.action != not_action)
        if after is not None:
            query = query.where(AuditRecord.id > after)
        if subject_prefix is not None:
            query = query.where(AuditRecord.subject.startswith(subject_prefix, autoescape=True))
        query = query.order_by(AuditRecord.id.asc()).limit(limit)
        rows = list(await self.session.scalars(query))
        return await _settled(self.session, rows, after) if rows and settled else rows


async def _settled(
    session: AsyncSession, rows: list[AuditRecord], after: int | None
) -> list[AuditRecord]:
    """``rows`` up to the first id not committed yet: PostgreSQL hands ids out at insert,
    so a record after it may be read first, and a reader paging ``after`` the last id it
    read lost the one that committed later. A gap whose next record is older than
    ``UNSETTLED`` is a transaction rolled back (an append retried), never filled."""
    ids = await session.execute(
        select(AuditRecord.id, AuditRecord.created_at)
        .where(AuditRecord.id > (after or 0), AuditRecord.id <= rows[-1].id)
        .order_by(AuditRecord.id.asc())
    )
    now = utcnow()
    expected = after + 1 if after is not None else None
    for number, created in ids:
        if expected is not None and number != expected and now - as_utc(created) < UNSETTLED:
            return [row for row in rows if row.id < expected]
        expected = number + 1
    return rows
