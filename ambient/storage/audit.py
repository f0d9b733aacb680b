"""The append-only audit log: who did what to which subject, with the old and new values.

Permission and role changes, cloud writes and remediation steps append here. There is no update
or delete on purpose: a record, once written, is the history.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ambient.storage.db import Repository, given
from ambient.storage.models import AuditRecord


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
    ) -> list[AuditRecord]:
        """Records matching every given filter, oldest first; ``after`` a record's id, the
        ones after it (the next page: ids only grow)."""
        query = select(AuditRecord).filter_by(**given(subject=subject, actor=actor, action=action))
        if not_action is not None:
            query = query.where(AuditRecord.action != not_action)
        if after is not None:
            query = query.where(AuditRecord.id > after)
        if subject_prefix is not None:
            query = query.where(AuditRecord.subject.startswith(subject_prefix, autoescape=True))
        query = query.order_by(AuditRecord.id.asc()).limit(limit)
        return list(await self.session.scalars(query))
