"""The audit log over HTTP: admins read all of it, members the records about themselves."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from ambient import history
from ambient.domain.numbers import WHOLE_NUMBER
from ambient.storage.models import MAX_ID
from api.deps import CurrentUser, SessionDep
from api.errors import answers

router = APIRouter(prefix="/audit", tags=["audit"], responses=answers(403))


class AuditEntry(BaseModel):
    id: int
    created_at: datetime
    actor: str
    action: str
    subject: str
    detail: dict[str, Any]


@router.get("")
async def read_audit(
    user: CurrentUser,
    session: SessionDep,
    subject: Annotated[str | None, Query(max_length=512, description="e.g. user:bob")] = None,
    subject_prefix: Annotated[
        str | None, Query(max_length=512, description="e.g. tke:cls-1/ or remediation/")
    ] = None,
    actor: Annotated[str | None, Query(max_length=255)] = None,
    action: Annotated[str | None, Query(max_length=64, description="e.g. user.grant")] = None,
    limit: Annotated[int, Query(ge=1, le=1000), WHOLE_NUMBER] = 200,
    after: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_ID,
            description="the id of the last record read: the next page starts after it",
        ),
        WHOLE_NUMBER,
    ] = None,
) -> list[AuditEntry]:
    """Audit records, oldest first, ``limit`` a page (the next: ``after`` the last one's id).
    Members see only records about their own user."""
    records = await history.audit_records(
        session,
        user.name,
        user.is_admin,
        subject=subject,
        subject_prefix=subject_prefix,
        actor=actor,
        action=action,
        limit=limit,
        after=after,
    )
    return [AuditEntry.model_validate(r, from_attributes=True) for r in records]
