"""A remediation run's records: audit entries, approval tokens, its hand-over and its row."""

from __future__ import annotations

from temporalio import activity

from ambient.remediation.runs import AuditEntry, HandOverInput, RecordInput
from ambient.remediation.storage import (
    RemediationRepository,
    answer_verified,
    append_entry,
    as_asked,
)
from ambient.storage import Database
from ambient.storage.briefings import BroadcastRepository


class RemediationRecordActivities:
    """The run's records; RemediationActivities scores, changes and verifies."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @activity.defn
    async def audit_remediation(self, entry: AuditEntry) -> AuditEntry:
        """The entry as written: a name only a Temporal message gave, as not verified."""
        async with self._db.writing() as session:
            entry = await as_asked(session, entry)
            await append_entry(session, entry, entry.action, entry.detail, entry.actor)
        return entry

    @activity.defn
    async def verify_approval(self, entry: AuditEntry) -> bool:
        """Whether a Temporal update's answer carried the token of a door's record of it (else
        audited as not verified); the token is spent, once."""
        async with self._db.writing() as session:
            return await answer_verified(session, entry)

    @activity.defn
    async def hand_over_remediation(self, request: HandOverInput) -> AuditEntry:
        """Queue the problem for the user's next briefing and audit the hand-over."""
        entry = AuditEntry(
            run_key=request.run_key,
            key=request.key,
            actor="remediation",
            action="hand_over",
            detail={"reason": request.reason, "title": request.title, "body": request.body},
        )
        async with self._db.writing() as session:
            await BroadcastRepository(session).push(
                request.user, request.title, request.body, "remediation", request.key
            )
            await append_entry(session, entry, entry.action, entry.detail)
        return entry

    @activity.defn
    async def record_remediation(self, request: RecordInput) -> AuditEntry:
        """The run's row for lists and stats (same values on a retry)."""
        # An unknown start leaves the row's own (set when the run was planned).
        skip = {"run_key", "alert", "detail"} | (set() if request.started_at else {"started_at"})
        async with self._db.writing() as session:
            await RemediationRepository(session).save_run(
                request.run_key, request.alert, request.detail, **request.model_dump(exclude=skip)
            )
        return AuditEntry(
            run_key=request.run_key, key="record", actor="remediation", action="record"
        )
