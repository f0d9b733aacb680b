"""The remediation control plane: score, start, approve, abort and inspect remediations.

MCP tools, the API, the web pages, discussion replies and the CLI are thin adapters over
``RemediationService``. A remediation id is its workflow id, `remediation/{alert fingerprint}`,
which names the workload: any alert on it while one runs (the same again, or another source or
metric) is deduplicated into it instead of starting a second ladder. A run
belongs to its owner: seeing or steering it (approve, refuse, abort) needs the owner, an
admin, or an approver the policy names for its cluster (AMBIENT_REMEDIATION_APPROVERS),
checked for every door (``RemediationReads``, its reads); sending the same alert again grants
nothing. What it answers and raises is in ``ambient.remediation.views``.
"""

from __future__ import annotations

import contextlib
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from ambient import no_answer, temporal
from ambient.refusals import Refusal
from ambient.remediation.alerts import Alert, remediation_id
from ambient.remediation.intake import (
    check_reachable,
    check_verify_secret,
    cluster_identity,
    cluster_names,
)
from ambient.remediation.joins import NOT_ADDED, join, request_key, run_key_of
from ambient.remediation.ladder import Mode, Rung
from ambient.remediation.reads import refused
from ambient.remediation.runs import (
    FINAL_STATES,
    AbortInput,
    ApprovalInput,
    RemediationInput,
    RemediationStatus,
)
from ambient.remediation.safety import effective_mode, may_approve
from ambient.remediation.scorer import score_alert
from ambient.remediation.scores import AlertRule, plan
from ambient.remediation.storage import AlertRuleRepository, RemediationRepository, record_asked
from ambient.remediation.triage_schedule import TriageScheduling
from ambient.remediation.views import (
    ANSWER_TOO_EARLY,
    ANSWER_TOO_LATE,
    REFUSAL_TOO_EARLY,
    REFUSAL_TOO_LATE,
    REQUEST_ID,
    REQUEST_ID_FORM,
    RUNG_NAMES,
    VIA,
    ApprovalAnswer,
    InvalidRemediationError,
    RemediationError,
    RemediationRefusedError,
    RemediationStateError,
    ScoreView,
    StartResult,
    Via,
    accepted,
    already_finished,
    check_reason,
    step_words,
)
from ambient.storage.audit import AuditRepository
from ambient.storage.models import User
from workflows.remediation import GradedRemediationWorkflow
from workflows.remediation_records import TASK_TIMEOUT, search_attributes
from workflows.remediation_safety import STATE_CONFLICT

# The memo of a run started with a request_id: its key (request_key).
START_REQUEST = "start_request"
# How long after its run ended a start's request_id still answers as that start (a client's
# retry of an answer lost): past it, the same id starts the next run.
REQUEST_KEPT = timedelta(minutes=15)


class RemediationService(TriageScheduling):
    """Score, start, steer (approve, refuse, abort), alert rules and the nightly triage."""

    # --- score (no side effect) ------------------------------------------------------

    async def score(self, alert: dict[str, Any] | Alert) -> ScoreView:
        parsed = accepted(Alert, alert)
        async with self.db.session() as session:
            rules = await AlertRuleRepository(session).all()
        names = cluster_names(self.settings, parsed.cluster_id)
        scored = await score_alert(parsed, rules, self.llm, names)
        cluster = cluster_identity(self.settings, parsed.cluster_id)
        # The card's own fields (its dimensions as plain data), and what they lead to.
        return ScoreView(
            **scored.card.model_dump(),
            fingerprint=parsed.fingerprint(cluster),
            remediation_id=remediation_id(parsed, cluster),
            plan=plan(scored.card.score, scored.rule, self.settings.remediation_approval_from_rung),
        )

    # --- start -------------------------------------------------------------------------

    async def start(
        self,
        user: str,
        alert: dict[str, Any] | Alert,
        mode: Mode = "dry_run",
        *,
        request_id: str | None = None,
    ) -> StartResult:
        """Start the alert's remediation, or join the one already running for it; a request
        retried with its ``request_id`` is answered as the first was: the run it started, or
        the run it joined (its audit row written once)."""
        if mode not in ("dry_run", "execute"):
            raise InvalidRemediationError("mode: use 'dry_run' or 'execute'", field="mode")
        if request_id is not None and not REQUEST_ID.fullmatch(request_id):
            raise InvalidRemediationError(
                f"request_id: send {REQUEST_ID_FORM}; nothing was started",
                field="request_id",
            )
        parsed = accepted(Alert, alert)
        key = None if request_id is None else request_key(user, request_id, parsed)
        check_reachable(self.settings, parsed)
        account = await self._user(user)
        check_verify_secret(self.settings, parsed, user=user, is_admin=account.is_admin)
        decision = effective_mode(
            mode, account.rollback_permission, self.settings.remediation_executor
        )
        workflow_id = remediation_id(parsed, cluster_identity(self.settings, parsed.cluster_id))
        if decision.mode is None:
            # Audited as a cloud write's refusal is (docs/roles.md: "refused ... and audited").
            async with self.db.session() as session:
                await AuditRepository(session).append(
                    actor=user,
                    action="start_refused",
                    subject=workflow_id,
                    detail={"mode": mode, "permission": account.rollback_permission},
                )
                await session.commit()
            raise RemediationRefusedError(
                f"cannot remediate as {user}: {decision.reason}. Nothing was started."
            )
        message = f"started {workflow_id} ({decision.reason}); get_remediation shows the plan"
        started = StartResult(
            remediation_id=workflow_id,
            created=True,
            mode=decision.mode,
            message=message,
            state="scoring",
        )
        # Only with a request_id (the plain start, an alert storm's, pays no extra RPC): the
        # id's latest run, going on or ended, started by this request is its answer again.
        first = key and await self._started_by(workflow_id, key)
        if first:
            return first
        for _ in range(2):
            try:
                await self.client.start_workflow(
                    GradedRemediationWorkflow.run,
                    RemediationInput(alert=parsed, user=user, mode=mode, requested_by=user),
                    id=workflow_id,
                    task_queue=self.settings.temporal_task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                    task_timeout=TASK_TIMEOUT,
                    # The request that started it: that request sent again is answered so.
                    memo={START_REQUEST: {"key": key, **started.model_dump()}} if key else None,
                    search_attributes=search_attributes(user, parsed.cluster_id),
                    # The mode it runs in (the lower of the one asked, the owner's permission and
                    # the executor switch), not the one asked: an operator read "execute" there.
                    static_summary=(
                        f"Remediation of {parsed.service} ({parsed.metric or parsed.source}) "
                        f"for {user}, {decision.mode}"
                    ),
                )
                break
            except WorkflowAlreadyStartedError:
                first = key and await self._started_by(workflow_id, key)
                if first:
                    return first  # this request started it, its answer lost: answered as then
                repeated = await self._deduplicate(user, workflow_id, parsed, mode, key)
                if repeated is not None:
                    return repeated
                # Its run ended between the start and the repeat's signal: the alert is new
                # again, and starts the next run.
        else:
            raise RemediationError(
                f"{workflow_id} ended and started again while this alert came in; send it again"
            )
        return started

    async def _started_by(self, workflow_id: str, key: str) -> StartResult | None:
        """The answer the request ``key`` had when it started the latest run of
        ``workflow_id`` (going on, or ended within REQUEST_KEPT: a retry's answer is the
        first's); None when that run is not its, or ended before (the key is one incident's:
        an alert's fingerprint sent again hours later is a new incident, not a retry)."""
        try:
            description = await self.client.get_workflow_handle(workflow_id).describe()
        except RPCError as error:
            if no_answer.not_found(error):
                return None
            raise
        memo = await description.memo_value(START_REQUEST, None)
        if not isinstance(memo, dict) or memo.pop("key", None) != key:
            return None
        closed = description.close_time
        if closed is not None and datetime.now(UTC) - closed > REQUEST_KEPT:
            return None
        return StartResult.model_validate(memo)

    async def _deduplicate(
        self, user: str, workflow_id: str, alert: Alert, mode: Mode, key: str | None
    ) -> StartResult | None:
        """Record who sent the alert again and grant nothing (None: its run ended meanwhile)."""
        # Keyed under the run joined (join's audit subject is its run id): the same request
        # to a later run of this id is a repeat of that run's.
        joined = await join(
            self.client, self.db, self.settings, user, workflow_id, alert=alert, key=key
        )
        if joined is None:
            return None
        attributes, visible = joined
        owner, state = attributes.get(temporal.USER) or "", attributes.get(temporal.STATE)
        # The id is the alert's hash (score_alert shows it too): naming it reveals nothing.
        return StartResult(
            remediation_id=workflow_id,
            created=False,
            deduplicated=True,
            state=state if visible else None,
            message=(
                f"this workload is already being remediated: "
                f"{workflow_id} (state {state}, owner {owner})"
                if visible
                else "this workload is already being remediated by its owner: "
                f"nothing was started, and its plan and steps are the owner's to see; {NOT_ADDED}"
            )
            # The run keeps the mode it started with (a dry run stays one).
            + (
                "; the execute asked here changes nothing: the run keeps the mode it started "
                "with (a dry_run stays a dry_run)"
                if mode == "execute"
                else ""
            ),
        )

    # --- steer -------------------------------------------------------------------------

    async def approve(
        self,
        user: str,
        rid: str,
        approve: bool,
        reason: str = "",
        *,
        run_key: str | None = None,
        rung: int | None = None,
        via: Via,
    ) -> ApprovalAnswer:
        """Answer the pending approval (of ``rung``, when the caller saw which) through the door
        ``via``; the approver's permission is read here, not given."""
        check_reason(reason)
        _check_via(via)
        status, account = await self._steerer(
            user, rid, run_key, "approve" if approve else "refuse"
        )
        if status.unanswered:  # which rung waits, if any, is the run's to say
            again = "" if no_answer.FAILED_TASK in status.unanswered else "; try again in a moment"
            raise RemediationError(
                f"{rid} did not answer ({status.unanswered}): nothing was answered{again}"
            )
        if status.state != "waiting_approval" or status.waiting is None:
            raise RemediationStateError(
                Refusal(
                    "%(run)s is not waiting for approval (state %(state)s); "
                    "get_remediation shows what it waits for",
                    run=rid,
                    state=status.state,
                )
            )
        # The same answer sent twice is applied once; the other answer is another update (the
        # workflow refuses it: the rung is answered).
        # The rung checked (or the one the caller saw): the run may wait on its next by now.
        asked = Rung(rung) if rung is not None else status.waiting.rung
        answer = f"{status.run_key}/{int(asked)}/{user}/{approve}"
        update_id = "approve-" + hashlib.sha256(answer.encode()).hexdigest()[:20]
        # The answer as checked, before it is sent: the run applies an answer only with this
        # record's one-time token (a Web UI update can give any name).
        async with self.db.writing() as session:
            said = {"rung": int(asked), "approve": approve, "reason": reason, "via": via}
            token = await record_asked(session, status.run_key, user, said)
        if asked != (waits := status.waiting.rung):
            # Refused here (recorded and audited as any answer) as the run's validator refuses
            # it: the same person's same answer to a rung passed was the update of that id,
            # whose first result Temporal gave back ("approved rung 3", 200) with the run
            # waiting on rung 4.
            passed = asked < waits
            raise RemediationStateError(
                Refusal(
                    (ANSWER_TOO_LATE if passed else ANSWER_TOO_EARLY)
                    if approve
                    else (REFUSAL_TOO_LATE if passed else REFUSAL_TOO_EARLY),
                    asked=int(asked),
                    run=rid,
                    waits=int(waits),
                    rung=Refusal(RUNG_NAMES[waits]),
                )
            )
        try:
            # The run checked above, not whichever is latest now: the same alert's next run may
            # have started since, and this answer is not about it.
            handle = await _run_handle(self.client, rid, status.run_key)
            decision = await handle.execute_update(
                GradedRemediationWorkflow.approve,
                ApprovalInput(
                    approver=user,
                    approver_permission=account.rollback_permission,
                    approve=approve,
                    reason=reason,
                    rung=asked,
                    token=token,
                ),
                id=update_id,
            )
        except WorkflowUpdateFailedError as exc:
            cause = getattr(exc.cause, "message", None) or str(exc.cause)
            if getattr(exc.cause, "type", None) == STATE_CONFLICT:  # answered, or no longer waiting
                raise RemediationStateError(f"approval not accepted: {cause}") from None
            raise RemediationRefusedError(f"approval not accepted: {cause}") from None
        except RPCError as exc:
            if no_answer.not_found(exc):  # the run checked ended in between
                raise await self._ended(rid, status) from None
            raise refused(rid, exc) from None
        return ApprovalAnswer(
            **decision.model_dump(),
            remediation_id=rid,
            rung_name=RUNG_NAMES[decision.rung],
            mode=status.mode,
            dry_run=status.mode == "dry_run",
            step=step_words(decision.rung, status.mode),
        )

    async def abort(
        self, user: str, rid: str, reason: str = "", *, run_key: str | None = None, via: Via
    ) -> RemediationStatus:
        """Stop the run through the door ``via``; with ``run_key`` (a reply in a run's
        discussion), only that run."""
        check_reason(reason)
        _check_via(via)
        status, _ = await self._steerer(user, rid, run_key, "abort")
        if status.state in FINAL_STATES:  # ended, its last steps (report, notice) still running
            raise RemediationStateError(already_finished(rid, status.state))
        handle = await _run_handle(self.client, rid, status.run_key)  # the run checked
        try:
            description = await handle.describe()
            if description.status is not WorkflowExecutionStatus.RUNNING:
                raise await self._ended(rid, status)
            # The request as checked, before it is sent: the run records the name its abort
            # gives as the sender's only with this record's one-time token (a Web UI signal can
            # give any).
            async with self.db.writing() as session:
                token = await record_asked(
                    session, status.run_key, user, {"reason": reason, "via": via}, "abort"
                )
            await handle.signal(
                GradedRemediationWorkflow.abort, AbortInput(by=user, reason=reason, token=token)
            )
        except RPCError as exc:
            if no_answer.not_found(exc):  # the run checked ended in between
                raise await self._ended(rid, status) from None
            raise refused(rid, exc) from None
        return await self._status(rid, description)

    # --- alert rules -------------------------------------------------------------------

    async def put_rule(self, user: str, rule: dict[str, Any] | AlertRule) -> AlertRule:
        if not (await self._user(user)).is_admin:
            raise RemediationRefusedError(f"{user} is not an admin: only admins change alert rules")
        parsed = accepted(AlertRule, rule, "rule")
        async with self.db.session() as session:
            await AlertRuleRepository(session).put(parsed)
            await AuditRepository(session).append(
                actor=user,
                action="alert_rule",
                subject=f"alert-rule/{parsed.name}",
                detail=parsed.model_dump(),
            )
            await session.commit()
        return parsed

    async def _ended(self, rid: str, checked: RemediationStatus) -> RemediationStateError:
        """Why the run checked can no longer be answered: it ended, and maybe another is current."""
        now = await self._status(rid)
        if now.run_key != checked.run_key:
            return RemediationStateError(_earlier_run(rid))
        return RemediationStateError(already_finished(rid, now.state))

    async def _other_run(self, rid: str, run_key: str) -> Refusal:
        """Why ``run_key`` (not the current run's) is refused: an earlier run, or none at all."""
        async with self.db.session() as session:
            record = await RemediationRepository(session).get(run_key)
        if record is not None and record.remediation_id == rid:
            return _earlier_run(rid)
        return Refusal(
            "no run of %(run)s has that run_key: look at its current run (get_remediation) "
            "before answering it",
            run=rid,
        )

    async def _steerer(
        self, user: str, rid: str, run_key: str | None, act: str
    ) -> tuple[RemediationStatus, User]:
        """The run and the caller's account, if they may ``act`` on it (approve, refuse, abort)."""
        # With run_key (a reply in a run's discussion, a button on a run's page), only that run
        # is answered. Who may is
        # may_steer_run (in seen_status), with a rollback_permission at least the run's mode:
        # refusing an execute step is as much a decision about it as approving it.
        status = await self.seen_status(user, rid)
        if run_key is not None and status.run_key != run_key:
            raise RemediationStateError(await self._other_run(rid, run_key))
        account = await self._user(user)
        mode = status.mode or "dry_run"
        if not may_approve(account.rollback_permission, mode):
            raise RemediationRefusedError(
                f"cannot {act} {status.remediation_id}: {user} has rollback_permission "
                f"{account.rollback_permission!r}, and this run changes in {mode} mode "
                f"(it needs {mode!r} or higher; an admin grants it)"
            )
        return status, account


def _check_via(via: str) -> None:
    # A door misnamed would be written so in the audit: refused before anything is.
    if via not in VIA:
        raise ValueError(f"via: one of {', '.join(VIA)}, not {via!r}")


def _earlier_run(rid: str) -> Refusal:
    return Refusal(
        "this is about an earlier run of %(run)s, which has ended; the same alert's "
        "current run is another: look at it (get_remediation) before answering it",
        run=rid,
    )


async def _run_handle(client: Client, rid: str, run_key: str | None) -> Any:
    """The run of ``run_key``, not whichever is latest when the call arrives (None: the latest):
    its first run, or the run a reset in Temporal went on as (its latest, keeping the key; an
    answer sent to the first run, which the reset ended, was refused "already finished")."""
    if run_key is None:
        return client.get_workflow_handle(rid)
    run_id = run_key.partition("@")[2]
    with contextlib.suppress(RPCError):
        latest = await client.get_workflow_handle(rid).describe()
        if run_key_of(latest) == run_key:
            run_id = latest.run_id
    return client.get_workflow_handle(rid, run_id=run_id)
