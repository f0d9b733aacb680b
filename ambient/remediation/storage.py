"""Repositories of graded remediation: alert rules, runs, the per-cluster ledger, breakers."""

from __future__ import annotations

import secrets
from collections.abc import Collection, Iterable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import ColumnElement, delete, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from ambient.remediation.alerts import Alert
from ambient.remediation.runs import OPEN_STATES, UNVERIFIED, AuditEntry, Keyed
from ambient.remediation.safety import Approvers, BreakerState, may_steer, named_anywhere
from ambient.remediation.scores import AlertRule
from ambient.storage.audit import AuditRepository
from ambient.storage.db import Repository, given, take_turn
from ambient.storage.models import (
    AlertRuleRow,
    AuditRecord,
    RemediationAction,
    RemediationBreaker,
    RemediationRecord,
    User,
)
from ambient.storage.users import hash_token

# The states a run ends in left to a person: handed over, or its attempts spent.
LEFT_TO_A_PERSON = ("handed_over", "budget_exhausted")


class AlertRuleRepository(Repository):
    async def all(self) -> list[AlertRule]:
        rows = await self.session.scalars(select(AlertRuleRow).order_by(AlertRuleRow.id))
        return [AlertRule.model_validate(row, from_attributes=True) for row in rows]

    async def put(self, rule: AlertRule) -> None:
        """Create or replace the rule of that name."""
        query = select(AlertRuleRow).where(AlertRuleRow.name == rule.name)
        row = await self.session.scalar(query)
        if row is None:
            row = AlertRuleRow(name=rule.name)
            self.session.add(row)
        row.cluster_id, row.namespace, row.workload = rule.cluster_id, rule.namespace, rule.workload
        row.importance, row.manual, row.note = rule.importance, rule.manual, rule.note
        await self.session.flush()


class RemediationRepository(Repository):
    async def get(self, run_key: str) -> RemediationRecord | None:
        query = select(RemediationRecord).where(RemediationRecord.run_key == run_key)
        return await self.session.scalar(query)

    async def save_run(
        self, run_key: str, alert: Alert, detail: dict[str, Any], **values: Any
    ) -> None:
        """Insert or update the run's row (a retried activity writes the same values again)."""
        values.update(
            cluster_id=alert.cluster_id,
            service=alert.service,
            alert_type=alert.metric or alert.source,
            source=alert.source,
            detail={**detail, "alert": alert.model_dump(mode="json")},
        )
        row = await self.get(run_key)
        if row is None:
            row = RemediationRecord(run_key=run_key, **values)
            row = await self._insert_once(row, partial(self.get, run_key))
        for name, value in values.items():
            setattr(row, name, value)
        await self.session.flush()

    async def handed_over(self, user: str, within: timedelta) -> list[RemediationRecord]:
        """``user``'s own runs that ended left to a person within ``within`` (handed over, or
        their attempts spent), newest first, fifty at most."""
        since = datetime.now(UTC) - within
        found = await self.session.scalars(
            select(RemediationRecord)
            .where(
                RemediationRecord.user == user,
                RemediationRecord.state.in_(LEFT_TO_A_PERSON),
                RemediationRecord.finished_at >= since,
            )
            .order_by(RemediationRecord.finished_at.desc())
            .limit(50)
        )
        return list(found)

    async def list(
        self,
        *,
        state: str | None = None,
        open_only: bool = False,
        ids: Collection[str] | None = None,
        since: datetime | None = None,
        limit: int | None = 100,
        offset: int = 0,
        before_id: int | None = None,
        seen: ColumnElement[bool] = true(),
    ) -> list[RemediationRecord]:
        """The newest runs first; ``open_only``: those not in a final state; ``ids``: those;
        ``since``: those started then or later; ``limit`` None: all of them; ``offset``: after
        that many; ``seen``: those a user sees (``seen_by``)."""
        query = select(RemediationRecord).where(seen).filter_by(**given(state=state))
        if open_only:
            query = query.where(RemediationRecord.state.in_(OPEN_STATES))
        if ids is not None:
            query = query.where(RemediationRecord.remediation_id.in_(ids))
        if since is not None:
            query = query.where(RemediationRecord.started_at >= since)
        if before_id is not None:
            query = query.where(RemediationRecord.id < before_id)
        query = query.order_by(RemediationRecord.id.desc()).offset(offset).limit(limit)
        return list(await self.session.scalars(query))

    async def seen_by(self, user: User, approvers: Approvers) -> ColumnElement[bool]:
        """``may_steer`` as a filter: the user's own runs, and all on the clusters they steer
        (an admin's: every run)."""
        if user.is_admin:
            return true()
        clusters: Iterable[str] = ()
        if named_anywhere(user.name, approvers):  # else no cluster is theirs
            clusters = await self.session.scalars(select(RemediationRecord.cluster_id).distinct())
        theirs = [c for c in clusters if may_steer(user.name, False, c, approvers)]
        return or_(RemediationRecord.user == user.name, RemediationRecord.cluster_id.in_(theirs))

    async def progress(self, run_keys: Collection[str]) -> dict[str, tuple[int, str | None]]:
        """Each run's steps acted on so far (its audit's "action" records) and the mode its
        last permission check gave, by run key."""
        if not run_keys:
            return {}
        query = (
            select(AuditRecord.subject, AuditRecord.action, AuditRecord.detail)
            .where(
                AuditRecord.subject.in_(run_keys),
                AuditRecord.action.in_(("action", "permission")),
            )
            .order_by(AuditRecord.id)
        )
        acted: dict[str, int] = {}
        modes: dict[str, str | None] = {}
        for subject, action, detail in await self.session.execute(query):
            if action == "action":
                acted[subject] = acted.get(subject, 0) + 1
            else:
                modes[subject] = detail.get("mode")
        return {key: (acted.get(key, 0), modes.get(key)) for key in acted.keys() | modes.keys()}


class ActionLedger(Repository):
    """Changes per cluster, reserved before they are made (the rate limit counts these)."""

    async def reserved(self, key: str) -> RemediationAction | None:
        query = select(RemediationAction).where(RemediationAction.key == key)
        return await self.session.scalar(query)

    async def recent(
        self, cluster_id: str, since: datetime, newest: int | None = None
    ) -> tuple[list[datetime], int]:
        """When the cluster's changes after ``since`` were reserved (the ``newest`` latest
        only, if given: an hour's storm on one cluster is thousands), and how many there are."""
        query = (
            select(RemediationAction.at, func.count().over())
            .where(RemediationAction.cluster_id == cluster_id, RemediationAction.at > since)
            .order_by(RemediationAction.at.desc())
            .limit(newest)
        )
        rows = (await self.session.execute(query)).all()
        return [at for at, _ in rows], rows[0][1] if rows else 0

    async def reserve(
        self, key: str, cluster_id: str, service: str, rung: int, at: datetime
    ) -> None:
        self.session.add(
            RemediationAction(key=key, cluster_id=cluster_id, service=service, rung=rung, at=at)
        )

    async def release(self, key: str) -> None:
        """Give back a step's slot: it changed nothing on the cluster."""
        await self.session.execute(delete(RemediationAction).where(RemediationAction.key == key))


class BreakerRepository(Repository):
    async def row(self, service: str, rung: int) -> RemediationBreaker | None:
        return await self.session.get(RemediationBreaker, (service, rung))

    async def state(self, service: str, rung: int) -> BreakerState:
        return breaker_state(await self.row(service, rung))

    async def turn(self, service: str, rung: int) -> RemediationBreaker | None:
        """The row, read in its breaker's turn, held until the transaction ends (to ``save``
        the outcome): two runs on one service verifying at once on PostgreSQL (no write lock)
        both read 1 failure and both wrote 2, and the breaker stayed closed; a first row
        written by both was refused to one."""
        await take_turn(self.session, f"remediation-breaker/{service}/{rung}")
        return await self.row(service, rung)

    async def save(
        self, row: RemediationBreaker | None, service: str, rung: int, state: BreakerState, key: str
    ) -> None:
        """``state`` on ``row``, the one just read in this session (None: a new row); a row
        found absent is not remembered by the session, and asked again it was read again."""
        if row is None:
            row = RemediationBreaker(service=service, rung=rung)
            self.session.add(row)
        row.failures, row.opened_at, row.last_key = state.failures, state.opened_at, key
        await self.session.flush()


def breaker_state(row: RemediationBreaker | None) -> BreakerState:
    """The breaker a row holds (None: no failure yet)."""
    return BreakerState() if row is None else BreakerState.model_validate(row, from_attributes=True)


async def run_ended(session: AsyncSession, run_key: str) -> bool:
    """Whether the run recorded its end (aborted, cancelled, finished): a try of its that a
    stalled worker makes after it (its workflow task lost, the run gone on without it) must
    send nothing."""
    ended = AuditRecord.action.in_(("aborted", "cancelled", "finished"))
    query = select(AuditRecord.id).where(AuditRecord.subject == run_key, ended).limit(1)
    return await session.scalar(query) is not None


async def find_entry(session: AsyncSession, keyed: Keyed, action: str) -> AuditRecord | None:
    """``keyed``'s audit record under its run key, if one was appended."""
    subject, key = keyed.run_key, keyed.key
    read: dict[tuple[str, Any], AuditRecord] | None = session.info.get(_READ, {}).get(subject)
    if read is not None:
        return read.get((action, key))
    # The key looked up in the query: a run joined a thousand times read every repeat's row.
    query = select(AuditRecord).where(
        AuditRecord.subject == subject,
        AuditRecord.action == action,
        AuditRecord.detail["key"].as_string() == key,
    )
    return await session.scalar(query.order_by(AuditRecord.id).limit(1))


async def append_entry(
    session: AsyncSession,
    keyed: Keyed,
    action: str,
    detail: dict[str, Any],
    actor: str = "remediation",
) -> AuditRecord:
    """Append ``keyed``'s audit record under its run key unless one with its key exists (a
    retried activity finds it); the record either way."""
    # Looked up, then written: two joins of one key at once on PostgreSQL (no write lock, no
    # unique key) both found none and wrote two rows. The run's audit takes turns.
    await take_turn(session, f"{keyed.run_key}/audit")
    if (found := await find_entry(session, keyed, action)) is not None:
        return found
    subject, key = keyed.run_key, keyed.key
    read = session.info.get(_READ, {}).get(subject)
    if read is None:
        return await AuditRepository(session).append(
            actor=actor, action=action, subject=subject, detail={**detail, "key": key}
        )
    # Added, not flushed: the turn's records are inserted together, in order, when it commits.
    record = AuditRecord(actor=actor, action=action, subject=subject, detail={**detail, "key": key})
    session.add(record)
    read[(action, key)] = record
    return record


# session.info: a subject's audit records by (action, key), read once (read_audit_keys).
_READ = "audit-records-read"


async def read_audit_keys(session: AsyncSession, subject: str) -> None:
    """Read the subject's audit records once for a transaction that appends several of them:
    append_entry then looks there (and adds what it appends, unflushed) instead of asking each
    time. For one session, inside one write turn: no other writer adds the subject's records
    meanwhile."""
    await take_turn(session, f"{subject}/audit")
    query = select(AuditRecord).where(AuditRecord.subject == subject).order_by(AuditRecord.id)
    read: dict[tuple[str, Any], AuditRecord] = {}
    for record in await session.scalars(query):
        read.setdefault((record.action, record.detail.get("key")), record)
    session.info.setdefault(_READ, {})[subject] = read


async def as_asked(session: AsyncSession, entry: AuditEntry) -> AuditEntry:
    """``entry`` under the user it names if its message carried the token of a door's record of
    that user asking for it in this run (with the same reason), else under UNVERIFIED, the name
    it gave kept as ``given_by``."""
    entry, token = _token_taken(entry)
    if entry.asked is None or await _sent_by_door(
        session, entry, entry.asked, {"reason": entry.detail.get("reason")}, token
    ):
        return entry
    return unverified(entry)


def unverified(entry: AuditEntry) -> AuditEntry:
    """``entry`` under UNVERIFIED, the name it gave kept as ``given_by``."""
    said = {**entry.detail, "given_by": entry.actor, "sender": "not verified: sent in Temporal"}
    return entry.model_copy(update={"actor": UNVERIFIED, "detail": said})


# The audit action under which a door records a checked user's answer before sending it.
ANSWER = "approve"
# A door's record holds the SHA-256 of the one-time token its message carries, never the token
# (members read the audit); the run spends it once, recorded under SPENT.
SENT, SPENT = "token_sha256", "token_spent"


# The records of a user's requests read at a time, looking for the one a message names.
PAGE = 200


async def record_asked(
    session: AsyncSession, run_key: str, user: str, detail: dict[str, Any], asked: str = ANSWER
) -> str:
    """``user``'s request (``asked``: an answer, "abort") in this run as a door checked it,
    before it sends it; returns the token its message carries (a Web UI one gives any name)."""
    token = secrets.token_urlsafe()
    await AuditRepository(session).append(
        actor=user, action=asked, subject=run_key, detail={**detail, SENT: hash_token(token)}
    )
    return token


async def answer_verified(session: AsyncSession, entry: AuditEntry) -> bool:
    """Whether the answer ``entry`` claims carried the token of a door's record of it (its
    actor's, rung, yes or no, reason); if not, it is audited under UNVERIFIED, the name it gave
    kept as ``given_by``."""
    entry, token = _token_taken(entry)
    claim = {k: entry.detail[k] for k in ("rung", "approve", "reason")}
    if await _sent_by_door(session, entry, ANSWER, claim, token):
        return True
    entry = unverified(entry)
    await append_entry(session, entry, entry.action, entry.detail, entry.actor)
    return False


def _token_taken(entry: AuditEntry) -> tuple[AuditEntry, Any]:
    """``entry`` without the token its message carried (never written), and that token."""
    detail = dict(entry.detail)
    token = detail.pop("token", None)
    return entry.model_copy(update={"detail": detail}), token


async def _sent_by_door(
    session: AsyncSession, entry: AuditEntry, asked: str, claim: dict[str, Any], token: Any
) -> bool:
    """Whether ``entry``'s message carried the token of a door's record of its actor asking
    ``asked`` for ``claim`` in this run, unspent or spent by this message (a retried activity):
    it is spent here. A door's record of a message that never arrived verifies no other."""
    if not isinstance(token, str):
        return False
    sent = hash_token(token)
    # Every record of the actor's requests in the run, a page at a time: a script retrying
    # on timeouts may have sent hundreds (the first page alone left its newest unverified).
    after: int | None = None
    while True:
        rows = await AuditRepository(session).list(
            subject=entry.run_key, action=asked, actor=entry.actor, after=after, limit=PAGE
        )
        if any({**row.detail, SENT: sent, **claim} == row.detail for row in rows):
            break
        if len(rows) < PAGE:
            return False
        after = rows[-1].id
    # Two copies verified at once: one spends it.
    await take_turn(session, f"remediation-token/{sent}")
    spending = Keyed(run_key=entry.run_key, key=f"{asked}/{sent}")
    spent = await append_entry(session, spending, SPENT, {"message": entry.key}, entry.actor)
    return bool(spent.detail["message"] == entry.key)
