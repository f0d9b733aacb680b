"""Remediation activities: scoring, permission, safety gates, checkpoints, changes, verification.

``RemediationActivities`` extends ``RemediationSafetyActivities``
(activities/remediation_safety.py), which holds the permission and the safety gates.

Each activity that decides or changes something appends its audit record in the same
transaction, keyed so a retried activity finds the first record instead of writing twice.
Those transactions are ``Database.write_session``s: on SQLite the worker's writers take turns
in order instead of racing for the file lock (a storm of alerts made them sleep in SQLite's
busy handler and fail with "database is locked"), and a read-then-write (the rate-limit
ledger, the breaker) is one atomic step.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.remediation_kube import CHANGE_LONGEST_WAIT, read_before_asking, translated
from activities.remediation_safety import RemediationSafetyActivities, take_recorded_change
from ambient import activity_attempts
from ambient.clients.kube_errors import KubeError
from ambient.clients.llm import LLMClient
from ambient.clients.tencent.client import TencentCloud
from ambient.remediation.dry_run import tried_again
from ambient.remediation.intake import cluster_identity, cluster_names, cluster_service
from ambient.remediation.joins import NAME_ONLY, NAME_ONLY_WHY, TRIAGE, join
from ambient.remediation.ladder import (
    Checkpoint,
    RemediationExecutor,
    RolloutHealth,
    Rung,
    StepRequest,
    StepResult,
    step_key,
)
from ambient.remediation.runs import (
    BEFORE_ASKING,
    CheckpointInput,
    GateInput,
    JoinRequest,
    Keyed,
    Opened,
    OpenInput,
    PermissionInput,
    RemediationPolicy,
    Verification,
    VerifyInput,
)
from ambient.remediation.safety import breaker_after, effective_mode
from ambient.remediation.scorer import score_alert
from ambient.remediation.scores import plan
from ambient.remediation.storage import (
    ActionLedger,
    AlertRuleRepository,
    BreakerRepository,
    RemediationRepository,
    append_entry,
    breaker_state,
    find_entry,
    read_audit_keys,
    run_ended,
)
from ambient.remediation.triage import TRIAGE_RETRY, CollectInput, TriageAlerts, unresolved_alarms
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.models import AuditRecord
from ambient.storage.repositories import EventRepository
from ambient.storage.users import UserRepository

# The audit action of a run's baseline: its workload as read when the run opened.
BASELINE = "baseline"

RUN_ENDED = "the remediation ended (aborted, cancelled or finished) before this try: nothing sent"


class RemediationActivities(RemediationSafetyActivities):
    def __init__(
        self,
        db: Database,
        settings: Settings,
        llm: LLMClient | None,
        executors: dict[str, RemediationExecutor],
        tencent: TencentCloud | None = None,
    ) -> None:
        super().__init__(db, settings)
        self._llm, self._executors = llm, executors
        self._tencent = tencent

    def _executor(self, mode: str) -> RemediationExecutor:
        name = "dry_run" if mode == "dry_run" else self._settings.remediation_executor
        executor = self._executors.get(name)
        if executor is None:
            raise ApplicationError(
                f"remediation executor {name!r} is not available on this worker "
                f"(known: {', '.join(sorted(self._executors))})",
                type="RemediationRefused",
                non_retryable=True,
            )
        return executor

    @activity.defn
    async def open_remediation(self, request: OpenInput) -> Opened:
        """Score and plan, then the first rung's permission, gates and checkpoint, at once."""
        # The same decisions and audit rows as scoring and the permission, gate and checkpoint
        # activities in turn, in one write transaction instead of five: in an alert storm every
        # run's transactions queued for the one SQLite writer before its first change. What is
        # not decided here (approval first, a closed gate, an unreadable workload) the workflow
        # takes through those activities.
        async with self._db.session() as session:
            rules = await AlertRuleRepository(session).all()
            user = await UserRepository(session).get(request.user)
        # The remediation rules of the settings, as the run carries them.
        settings = self._settings
        policy = RemediationPolicy(
            executor=settings.remediation_executor,
            approval_from_rung=settings.remediation_approval_from_rung,
            approval_timeout_seconds=settings.remediation_approval_timeout_minutes * 60,
            settle_seconds=settings.remediation_settle_seconds,
            max_gate_wait_seconds=settings.remediation_max_gate_wait_minutes * 60,
            max_replicas=settings.remediation_max_replicas,
            max_scale_step=settings.remediation_max_scale_step,
            step_timeout_seconds=settings.remediation_step_timeout_seconds,
        )
        names = cluster_names(settings, request.alert.cluster_id)
        scored = await score_alert(request.alert, rules, self._llm, names)
        steps = plan(scored.card.score, scored.rule, policy.approval_from_rung)
        opened = Opened(card=scored.card, rule=scored.rule, plan=steps, policy=policy)
        first = steps[0] if steps and steps[0].rung is not Rung.HAND_OVER else None
        # The workload is read before the write turn (no network call may hold it), with the
        # mode the permission gives now: the run's baseline, the release before the incident
        # whatever the first rung then waits for (an approval, a closed gate: a release shipped
        # meanwhile is not the one to go back from); and the first change's checkpoint, kept
        # by the turn only for the same mode and a gate that lets the step go.
        read_mode = None
        checkpoint: Checkpoint | None = None
        if first is not None and user is not None:
            read_mode = effective_mode(request.mode, user.rollback_permission, policy.executor).mode
        if read_mode is not None:
            # A failed read leaves None: take_remediation_checkpoint reads it again, with its
            # retries and its "checkpoint failed" ending: one path for every way a read fails.
            with contextlib.suppress(Exception):
                checkpoint = await self._executor(read_mode).checkpoint(request.alert.target())
        # A return inside the write turn commits it (``Database.writing``).
        async with self._db.writing() as session:
            # Up to five audit records (scored, planned, permission, gate, checkpoint), each
            # appended once per key: the run's records read once, not five times, and inserted
            # together at the commit (no query in the turn reads them before it).
            await read_audit_keys(session, request.run_key)
            session.autoflush = False
            # Every answer is its audit row's: an opening run again (its workflow task lost
            # with its worker, perhaps after the first rung's change that followed it) gives
            # the score, plan, permission, gate and checkpoint that change was made on, not
            # new ones (a score of the LLM, a permission revoked since, the changed workload).
            opened = await self._save_prepared(session, request, opened)
            if opened.plan is not steps:
                first = next((s for s in opened.plan[:1] if s.rung is not Rung.HAND_OVER), None)
            if first is None:
                return opened
            key = step_key(request.run_key, first.rung)
            saved = Keyed(run_key=request.run_key, key=f"{key}/checkpoint")
            first_saved = await find_entry(session, saved, "checkpoint")
            opened.baseline = await _baseline(session, request.run_key, first_saved, checkpoint)
            opened.permission = await self._permission(
                session,
                PermissionInput(
                    run_key=request.run_key,
                    key=f"{key}/permission",
                    user=request.user,
                    asked=request.mode,
                    executor=policy.executor,
                    rung=first.rung,
                ),
            )
            if opened.permission.mode is None or first.needs_approval:
                return opened
            opened.gate = await self._gate(
                session,
                GateInput(
                    run_key=request.run_key,
                    key=f"{key}/gate/1",
                    cluster_id=request.alert.cluster_id,
                    service=request.alert.service,
                    rung=first.rung,
                    now=request.now,
                ),
            )
            if first_saved is not None:
                opened.checkpoint = Checkpoint.model_validate(first_saved.detail)
            elif (
                opened.gate.allowed
                and checkpoint is not None
                and opened.permission.mode == read_mode
            ):
                detail = checkpoint.model_dump(mode="json")
                await append_entry(session, saved, "checkpoint", detail)
                opened.checkpoint = checkpoint
            if opened.gate.allowed:
                # Run again after its task was lost: the first try that followed may have made
                # the change, its marker lost with the task (an abort read first ends the run).
                await take_recorded_change(session, Keyed(run_key=request.run_key, key=key), opened)
        return opened

    async def _save_prepared(
        self, session: AsyncSession, request: OpenInput, prepared: Opened
    ) -> Opened:
        """The run's row and its scored and planned records; the plan those records hold."""
        card, run_key = prepared.card, request.run_key
        scored = {
            "alert": request.alert.model_dump(mode="json"),
            "user": request.user,
            "card": card.model_dump(mode="json"),
        }
        planned = {
            "plan": [s.model_dump(mode="json") for s in prepared.plan],
            "policy": prepared.policy.model_dump(),
            "rule": prepared.rule.model_dump() if prepared.rule else None,
        }
        await RemediationRepository(session).save_run(
            run_key,
            request.alert,
            {"tried": []},
            remediation_id=request.remediation_id or run_key.split("@")[0],
            user=request.user,
            # The mode the permission decided when it was read here (a user of dry_run asking
            # to execute runs a dry run: listed, counted and spoken as one), else the one asked.
            mode=(prepared.permission.mode if prepared.permission else None) or request.mode,
            score=card.score,
            budget=card.budget,
            state="planned",
            attempts=0,
            **({"started_at": request.started_at} if request.started_at else {}),
        )
        # After the run's row: its insert's savepoint would flush them on their own.
        kept: list[dict[str, Any]] = []
        for action, detail in (("scored", scored), ("planned", planned)):
            entry = Keyed(run_key=run_key, key=f"{run_key}/{action}")
            kept.append((await append_entry(session, entry, action, detail)).detail)
        if kept[0]["card"] == scored["card"] and kept[1]["plan"] == planned["plan"]:
            return prepared  # the records are this opening's own
        opened = Opened.recorded(kept[0], kept[1])
        row = await RemediationRepository(session).get(run_key)
        if row is not None:
            row.score, row.budget = opened.card.score, opened.card.budget
        return opened

    @activity.defn
    async def take_remediation_checkpoint(self, request: CheckpointInput) -> Checkpoint:
        """The workload's spec and revision before a change, saved in the audit log; read
        before asking, with what the rung's change would do now (its own plan, nothing sent)."""
        executor = self._executor(request.mode)
        if request.asking is not None and request.policy is not None:
            checkpoint = await read_before_asking(executor, request)
        else:
            checkpoint = await translated(executor.checkpoint(request.target), request.target)
        async with self._db.writing() as session:
            action = "read_before_asking" if request.key.endswith(BEFORE_ASKING) else "checkpoint"
            await append_entry(session, request, action, checkpoint.model_dump(mode="json"))
        return checkpoint

    @activity.defn
    async def read_rollout(self, request: CheckpointInput) -> RolloutHealth:
        """The workload's rollout health now (an alert that cleared while its rung waited)."""
        return await translated(
            self._executor(request.mode).rollout_health(request.target), request.target
        )

    @activity.defn
    async def apply_remediation_step(self, step: StepRequest) -> StepResult:
        """One rung's change through the mode's executor (idempotent by the step key)."""
        if step.mode == "execute":
            async with self._db.session() as session:
                if await run_ended(session, step.remediation_id):
                    # A try of a run that ended without it (a stalled worker's, woken after
                    # the run was aborted or cancelled): said as not sent, nothing sent.
                    raise ApplicationError(RUN_ENDED, False, type="RunEnded", non_retryable=True)
        try:
            # Not bounded: a write cut off may have been made, and the run must hear so (the
            # activity's timeout: "change failed", its slot kept), not a refusal (nothing
            # written: its slot given back, an abort said "before its change").
            result = await translated(
                self._executor(step.mode).apply(step), step.target, bounded=False
            )
        except ApplicationError as exc:
            cause = exc.__cause__
            if (
                step.mode == "dry_run"
                or exc.type == "RemediationRefused"  # no executor on this worker: none sent
                or (
                    isinstance(cause, KubeError)
                    and cause.changed is False
                    and activity.info().attempt == 1
                    and not step.after_lost_try
                )
            ):
                # Refused for good before anything was changed (a 403 on the first write, or
                # any dry run): the step's slot counted a change nobody made (the run hands over).
                # Not on a retry: the try before may have written before its answer was lost.
                async with self._db.writing() as session:
                    await ActionLedger(session).release(step.key)
            raise
        except KubeError as exc:
            if exc.unread and activity.info().attempt > 1:
                # Refused at its reads on a retry: the try before may have written, its answer
                # lost, and this one, the step's stamps unread, cannot tell (on attempt 1 after
                # the first try, a local one of its own numbering, the run's `earlier` can).
                exc.changed = None
            if exc.changed is False and not exc.unread and not tried_again():
                # Retried until the retries were spent (503s for minutes) without a change:
                # the run hands over, and the slot must not count a change nobody made. Not
                # when this try was refused at its reads: an earlier try may have written.
                async with self._db.writing() as session:
                    await ActionLedger(session).release(step.key)
            # Whether it changed anything (False, True, None: not known), for the run that
            # gives up on it (a cancel, an abort): only a change known unmade is said unmade.
            raise ApplicationError(
                str(exc),
                exc.changed,
                type=type(exc).__name__,
                # A throttled API server's asked wait, not the policy's shorter backoff (capped
                # at the policy's longest: past it a local activity's backoff is a timer).
                next_retry_delay=(
                    min(timedelta(seconds=exc.retry_after), CHANGE_LONGEST_WAIT)
                    if exc.retry_after
                    else None
                ),
            ) from exc
        async with self._db.writing() as session:
            await append_entry(
                session,
                Keyed(run_key=step.remediation_id, key=f"{step.key}/action"),
                "action",
                {
                    "rung": int(step.rung),
                    "mode": step.mode,
                    "target": str(step.target),
                    "request": step.model_dump(mode="json", exclude={"checkpoint"}),
                    **result.model_dump(mode="json"),
                },
            )
            if step.mode == "dry_run" or (result.skipped_reason is not None and not result.applied):
                # Nothing was sent (a dry run; paused, autoscaled, already so): the slot its gate
                # reserved is no change, and counted it held the cluster's next steps at the
                # rate limit (a dry run's own next rung waited out the cooldown).
                await ActionLedger(session).release(step.key)
        return result

    @activity.defn
    async def join_remediation(self, request: JoinRequest) -> bool:
        """Join the alert's running remediation as the API does; False: it ended, start anew.
        Joined as a name only (another's run), the sender's events say so: the watch's
        ``watch.remediation_started`` says only that it joined."""
        info = activity.info()
        # One alert's join, however often tried or asked (its starter's key), stored hashed:
        # the owner reads the row's detail whole, and a sender's key is text it made.
        given = request.key or f"{info.workflow_run_id}/{info.activity_id}"
        key = hashlib.sha256(given.encode()).hexdigest()[:32]
        joined = await join(
            activity.client(),
            self._db,
            self._settings,
            request.user,
            request.remediation_id,
            request.source,
            request.alert,
            key=key,
        )
        if joined is not None and not joined.steers:
            async with self._db.writing() as session:
                await EventRepository(session).add(
                    NAME_ONLY,
                    user=request.user,
                    task=None if request.source == TRIAGE else request.source,
                    payload={"remediation_id": request.remediation_id, "reason": NAME_ONLY_WHY},
                    # The sender's own event: keyed as the release before keyed it (not
                    # hashed), so a retry across the upgrade finds it.
                    idempotency_key=f"{given}/{NAME_ONLY}",
                )
        return joined is not None

    @activity.defn
    async def verify_remediation(self, request: VerifyInput) -> Verification:
        """Metric condition (read by read_metric) and rollout health; updates the breaker."""
        health = await translated(
            self._executor(request.mode).rollout_health(request.target), request.target
        )
        unknown = request.unknown(health)
        if unknown is not None:
            # No verdict: neither counted against the rung (breaker) nor returned as "not
            # resolved", which would buy the next, stronger rung. The workflow hands over.
            async with self._db.writing() as session:
                detail = {"rung": int(request.rung), "unknown": unknown}
                await append_entry(session, request, "verification", detail)
            raise ApplicationError(unknown, type="Unverified", non_retryable=True)
        verification = request.judge(health)
        execute = request.mode == "execute"
        # One service's breaker however its alerts name its cluster (a context, the TKE id).
        _, service = cluster_service(self._settings, request.target.cluster_id, request.service)
        async with self._db.writing() as session:
            breakers = BreakerRepository(session)
            # A dry run changed nothing: whether the alert cleared says nothing of the rung (its
            # failures opened the breaker on a service the rung was never tried on).
            row = await breakers.turn(service, int(request.rung)) if execute else None
            if execute and (row is None or row.last_key != request.key):
                after = breaker_after(
                    breaker_state(row),
                    verification.resolved,
                    request.now,
                    self._settings.remediation_breaker_failures,
                )
                await breakers.save(row, service, int(request.rung), after, request.key)
            detail = {"rung": int(request.rung), **verification.model_dump(mode="json")}
            await append_entry(session, request, "verification", detail)
        return verification

    @activity.defn
    async def collect_unresolved_alarms(self, request: CollectInput) -> TriageAlerts:
        """Yesterday's (team time zone) unresolved Monitor and CLS alarms on TKE workloads.

        A source failing for now fails an attempt that is not the last: the next reads both
        sources again, rather than the night going without one (no later night reads this day).
        """
        zone = ZoneInfo(self._settings.remediation_timezone)
        return await unresolved_alarms(
            self._tencent,
            zone,
            request.now,
            request.days,
            fail_fast=not activity_attempts.last_attempt(TRIAGE_RETRY.maximum_attempts),
            asked=activity.info().attempt,
            identity=functools.partial(cluster_identity, self._settings),
        )


async def _baseline(
    session: AsyncSession,
    run_key: str,
    first_saved: AuditRecord | None,
    read: Checkpoint | None,
) -> Checkpoint | None:
    """The run's baseline as recorded (``BASELINE``), else the first change's checkpoint of an
    opening by a release that kept none, else the workload ``read`` now, recorded."""
    based = Keyed(run_key=run_key, key=f"{run_key}/{BASELINE}")
    if (recorded := await find_entry(session, based, BASELINE)) is not None:
        return Checkpoint.model_validate(recorded.detail)
    if first_saved is not None:
        return Checkpoint.model_validate(first_saved.detail)
    if read is not None:
        await append_entry(session, based, BASELINE, read.model_dump(mode="json"))
    return read
