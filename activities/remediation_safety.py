"""The checks before a remediation's change: the owner's permission and the gates.

Part of ``RemediationActivities`` (activities/remediation.py), whose ``open_remediation``
decides the first rung's permission and gates with these same methods, in its one write turn.
"""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity

from ambient.remediation.intake import cluster_service
from ambient.remediation.ladder import Rung, StepResult, step_key
from ambient.remediation.runs import (
    SLOT_HELD,
    GateInput,
    Keyed,
    Opened,
    PermissionInput,
    StartPermissionInput,
)
from ambient.remediation.safety import (
    ChangeWindow,
    Gate,
    GateName,
    PermissionDecision,
    breaker_gate,
    change_window_gate,
    effective_mode,
    rate_limit_gate,
)
from ambient.remediation.storage import ActionLedger, BreakerRepository, append_entry, find_entry
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.db import take_turn
from ambient.storage.users import UserRepository


class RemediationSafetyActivities:
    """Permission and gates; RemediationActivities scores, changes and verifies."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self._db, self._settings = db, settings
        self._windows = [
            ChangeWindow.model_validate(w) for w in settings.remediation_change_windows
        ]

    @activity.defn
    async def check_remediation_permission(self, request: PermissionInput) -> PermissionDecision:
        """The user's rollback_permission, re-read now; the lower of it and what was asked."""
        async with self._db.writing() as session:
            return await self._permission(session, request)

    async def _permission(
        self, session: AsyncSession, request: PermissionInput
    ) -> PermissionDecision:
        user = await UserRepository(session).get(request.user)
        permission = user.rollback_permission if user else "none"
        decision = effective_mode(request.asked, permission, request.executor)
        if user is None:
            decision = PermissionDecision(mode=None, reason=f"no user {request.user!r}")
        # The decision its record holds: a check run again (its task lost with its worker,
        # perhaps after the change it allowed) answers as it did, not as the user is now.
        record = await append_entry(
            session,
            request,
            "permission",
            {
                "user": request.user,
                "rollback_permission": permission,
                "asked": request.asked,
                "rung": int(request.rung),
                "mode": decision.mode,
                "reason": decision.reason,
            },
        )
        return PermissionDecision.model_validate(record.detail)  # its mode and reason

    @activity.defn
    async def check_start_permission(self, request: StartPermissionInput) -> PermissionDecision:
        """Whether ``request.user`` may start a remediation now, read before a watch starts one
        (the run reads it again at each rung); a refusal audited as the API's start is
        (``start_refused``, under the run's id), once per key."""
        async with self._db.writing() as session:
            user = await UserRepository(session).get(request.user)
            permission = user.rollback_permission if user else "none"
            decision = effective_mode(
                request.asked, permission, self._settings.remediation_executor
            )
            if user is None:
                decision = PermissionDecision(mode=None, reason=f"no user {request.user!r}")
            if decision.mode is None:
                detail = {"mode": request.asked, "permission": permission}
                by = {"requested_by": request.requested_by, "reason": decision.reason}
                await append_entry(session, request, "start_refused", detail | by, request.user)
            return decision

    @activity.defn
    async def check_remediation_gates(self, request: GateInput) -> Gate:
        """Change window, breaker, per-cluster rate limit; an allowed step reserves its slot."""
        # Read the ledger and reserve in one write transaction: two steps on one cluster
        # checked at once (an alert storm) must not both see the last free slot.
        async with self._db.writing() as session:
            return await self._gate(session, request)

    @activity.defn
    async def read_remediation_opening(self, run: Keyed) -> Opened | None:
        """What the run's opening recorded, read only (None: no plan recorded): the run was
        cancelled in Temporal before it read open_remediation's answer (the opening's workflow
        task lost after its first try, run again with the cancel). The first rung's slot is
        given as its gate's only while it is still held; its change, from its action row.
        Read in the run's write turn: an opening cancelled mid-write has committed or rolled
        back by then, not left half seen."""
        run_key = run.run_key
        async with self._db.writing() as session:
            await take_turn(session, f"{run_key}/audit")
            rows = [
                await find_entry(session, Keyed(run_key=run_key, key=f"{run_key}/{a}"), a)
                for a in ("scored", "planned")
            ]
            if rows[0] is None or rows[1] is None:
                return None
            opened = Opened.recorded(rows[0].detail, rows[1].detail)
            first = next((s for s in opened.plan[:1] if s.rung is not Rung.HAND_OVER), None)
            if first is None:
                return opened
            key = step_key(run_key, first.rung)
            asked = Keyed(run_key=run_key, key=f"{key}/permission")
            if (permission := await find_entry(session, asked, "permission")) is not None:
                opened.permission = PermissionDecision.model_validate(permission.detail)
            if await ActionLedger(session).reserved(key) is not None:
                opened.gate = Gate(allowed=True, reason=SLOT_HELD)
            await take_recorded_change(session, Keyed(run_key=run_key, key=key), opened)
        return opened

    async def _gate(self, session: AsyncSession, request: GateInput) -> Gate:
        now = request.now
        settings = self._settings
        step = request.key.rsplit("/gate/", 1)[0]
        ledger = ActionLedger(session)
        # The run's audit turn before the cluster's, as the opening takes them: the other order
        # deadlocked with a run's opening still under way (append_entry takes it below).
        await take_turn(session, f"{request.run_key}/audit")
        # One cluster's ledger and one service's breaker however alerts name the cluster (a
        # kubeconfig context, the TKE id it reaches): two names were two rate limits.
        cluster, service = cluster_service(settings, request.cluster_id, request.service)
        # The cluster's turn until the transaction ends: count, then reserve, atomically (steps
        # checked at once on any worker cannot all see the last free slot).
        await take_turn(session, f"remediation-ledger/{cluster}")
        if await ledger.reserved(step) is not None:
            return Gate(allowed=True, reason=SLOT_HELD)
        recorded = await find_entry(session, request, "gate")
        if recorded is not None and recorded.detail["allowed"]:
            # A check run again (its task lost with its worker) after its step gave the slot
            # back (a dry run, a skipped change): that step may be made already and runs again
            # on the gate it was let go by, holding the slot again.
            await ledger.reserve(step, cluster, service, int(request.rung), now)
            return Gate(allowed=True, reason=recorded.detail["reason"])
        local = now.astimezone(ZoneInfo(settings.remediation_timezone))
        decision = _decided(change_window_gate(local, self._windows), "change_window")
        if decision.allowed:
            breaker = breaker_gate(
                await BreakerRepository(session).state(service, int(request.rung)),
                now,
                settings.remediation_breaker_failures,
                settings.remediation_breaker_open_minutes * 60,
            )
            if not breaker.allowed:
                decision = _decided(breaker, "breaker")
        if decision.allowed:
            per_hour = settings.remediation_rate_limit_per_hour
            recent, changes = await ledger.recent(
                cluster, now - timedelta(hours=1), newest=max(per_hour, 1)
            )
            limit = rate_limit_gate(
                recent, now, per_hour, settings.remediation_cluster_cooldown_seconds, changes
            )
            decision = _decided(limit, "rate_limit")
            if limit.allowed:
                await ledger.reserve(step, cluster, service, int(request.rung), now)
        detail = {"rung": int(request.rung), **decision.model_dump(exclude={"said"})}
        await append_entry(session, request, "gate", detail)
        return decision

    @activity.defn
    async def release_remediation_slot(self, step: Keyed) -> None:
        """Give back the rate-limit slot a step's gate reserved: the step changed nothing."""
        async with self._db.writing() as session:
            await ActionLedger(session).release(step.key)


async def take_recorded_change(session: AsyncSession, step: Keyed, opened: Opened) -> None:
    """The first rung's change as its try's action row recorded it (``Opened.made``), if a try
    made after an earlier opening of the run (its workflow task lost) wrote one."""
    made = Keyed(run_key=step.run_key, key=f"{step.key}/action")
    if (recorded := await find_entry(session, made, "action")) is not None:
        opened.made = StepResult.model_validate(recorded.detail)
        opened.made_at = recorded.created_at


def _decided(result: Gate, gate: GateName) -> Gate:
    """A gate's answer as the workflow reads it: which gate closed, and when to ask again."""
    return result if result.allowed else result.model_copy(update={"gate": gate})
