"""The remediation control plane: score, start, approve, abort and inspect remediations.

MCP tools, the API, the web pages, discussion replies and the CLI are thin adapters over
``RemediationService``. A remediation id is its workflow id, `remediation/{alert fingerprint}`,
which names the workload: any alert on it while one runs (the same again, or another source or
metric) is deduplicated into it instead of starting a second ladder. A run
belongs to its owner: seeing or steering it (approve, refuse, abort) needs the owner, an
admin, or an approver the policy names for its cluster (AMBIENT_REMEDIATION_APPROVERS),
checked here for every door; sending the same alert again grants nothing. What it answers
and raises is in ``ambient.remediation.views``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleRange,
    ScheduleSpec,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowUpdateFailedError,
)
from temporalio.common import TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from ambient import temporal
from ambient.clients.llm import LLMClient
from ambient.refusals import Refusal
from ambient.remediation.alerts import Alert, legacy_remediation_id, remediation_id
from ambient.remediation.intake import check_reachable
from ambient.remediation.joins import REPEATED, join
from ambient.remediation.ladder import Mode, Rung
from ambient.remediation.runs import (
    FINAL_STATES,
    AbortInput,
    ApprovalDecision,
    ApprovalInput,
    RemediationInput,
    RemediationState,
    RemediationStats,
    RemediationStatus,
    RunOutcome,
    TriageInput,
    remediation_stats,
)
from ambient.remediation.safety import effective_mode, may_approve, named_approver
from ambient.remediation.scorer import score_alert
from ambient.remediation.scores import AlertRule, plan
from ambient.remediation.storage import AlertRuleRepository, RemediationRepository
from ambient.remediation.views import (
    AuditLine,
    InvalidRemediationError,
    RemediationError,
    RemediationRefusedError,
    RemediationStateError,
    RemediationSummary,
    RemediationView,
    ScoreView,
    StartResult,
    accepted,
    already_finished,
    check_id,
    check_reason,
    not_found,
    report_markdown,
)
from ambient.settings import Settings
from ambient.sharing import ReportLink, share_report
from ambient.status import temporal_down
from ambient.storage import Database
from ambient.storage.audit import AuditRepository
from ambient.storage.models import MAX_ID, User
from ambient.storage.repositories import registered
from workflows.remediation import GradedRemediationWorkflow
from workflows.remediation_records import TASK_TIMEOUT, search_attributes
from workflows.remediation_safety import STATE_CONFLICT
from workflows.remediation_triage import AlertTriageWorkflow

log = logging.getLogger(__name__)

TRIAGE_SCHEDULE = "alert-triage"
MAX_STATS_DAYS = 365
# How many repeats of its alert a run's view shows (joined_by names everyone who sent it).
REPEATS_SHOWN = 100


class RemediationService:
    def __init__(
        self, client: Client, settings: Settings, db: Database, llm: LLMClient | None = None
    ) -> None:
        self.client = client
        self.settings = settings
        self.db = db
        self.llm = llm

    # --- score (no side effect) ------------------------------------------------------

    async def score(self, alert: dict[str, Any] | Alert) -> ScoreView:
        parsed = accepted(Alert, alert)
        async with self.db.session() as session:
            rules = await AlertRuleRepository(session).all()
        scored = await score_alert(parsed, rules, self.llm)
        # The card's own fields (its dimensions as plain data), and what they lead to.
        return ScoreView(
            **scored.card.model_dump(),
            fingerprint=parsed.fingerprint(),
            remediation_id=remediation_id(parsed),
            plan=plan(scored.card.score, scored.rule, self.settings.remediation_approval_from_rung),
        )

    # --- start -------------------------------------------------------------------------

    async def start(
        self,
        user: str,
        alert: dict[str, Any] | Alert,
        mode: Mode = "dry_run",
    ) -> StartResult:
        """Start the alert's remediation, or join the one already running for it."""
        if mode not in ("dry_run", "execute"):
            raise InvalidRemediationError("mode: use 'dry_run' or 'execute'", field="mode")
        parsed = accepted(Alert, alert)
        check_reachable(self.settings, parsed)
        account = await self._user(user)
        decision = effective_mode(
            mode, account.rollback_permission, self.settings.remediation_executor
        )
        if decision.mode is None:
            raise RemediationRefusedError(
                f"cannot remediate as {user}: {decision.reason}. Nothing was started."
            )
        # A run started before the upgrade under the alert's older id is joined, not doubled.
        legacy = await self._deduplicate(user, legacy_remediation_id(parsed), parsed, mode)
        if legacy is not None:
            return legacy
        workflow_id = remediation_id(parsed)
        for _ in range(2):
            try:
                await self.client.start_workflow(
                    GradedRemediationWorkflow.run,
                    RemediationInput(alert=parsed, user=user, mode=mode, requested_by=user),
                    id=workflow_id,
                    task_queue=self.settings.temporal_task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                    task_timeout=TASK_TIMEOUT,
                    search_attributes=search_attributes(user, parsed.cluster_id),
                    static_summary=(
                        f"Remediation of {parsed.service} ({parsed.metric or parsed.source}) "
                        f"for {user}, {mode}"
                    ),
                )
                break
            except WorkflowAlreadyStartedError:
                repeated = await self._deduplicate(user, workflow_id, parsed, mode)
                if repeated is not None:
                    return repeated
                # Its run ended between the start and the repeat's signal: the alert is new
                # again, and starts the next run.
        else:
            raise RemediationError(
                f"{workflow_id} ended and started again while this alert came in; send it again"
            )
        return StartResult(
            remediation_id=workflow_id,
            created=True,
            mode=decision.mode,
            message=f"started {workflow_id} ({decision.reason}); get_remediation shows the plan",
            state="scoring",
        )

    async def _deduplicate(
        self, user: str, workflow_id: str, alert: Alert, mode: Mode
    ) -> StartResult | None:
        """Record who sent the alert again and grant nothing (None: its run ended meanwhile)."""
        attributes = await join(self.client, self.db, user, workflow_id, alert=alert)
        if attributes is None:
            return None
        owner, state = attributes.get(temporal.USER) or "", attributes.get(temporal.STATE)
        visible = await self._may_steer(user, attributes)
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
                "nothing was started, and its plan and steps are the owner's to see"
            )
            # The run keeps the mode it started with (a dry run stays one).
            + (
                "; the execute asked here changes nothing: the run keeps the mode it started "
                "with (a dry_run stays a dry_run)"
                if mode == "execute"
                else ""
            ),
        )

    # --- read --------------------------------------------------------------------------

    async def get(self, user: str, rid: str) -> RemediationView:
        status = await self._seen_status(user, rid)
        # The run's own rows whole; of the repeats of its alert (anyone may send it, any number
        # of times) the first REPEATS_SHOWN: a thousand of them hid its approvals and its end.
        async with self.db.session() as session:
            rows = AuditRepository(session)
            own = await rows.list(subject=status.run_key, not_action=REPEATED, limit=1000)
            repeats = await rows.list(subject=status.run_key, action=REPEATED, limit=REPEATS_SHOWN)
        audit = [
            AuditLine(at=r.created_at, actor=r.actor, action=r.action, detail=r.detail)
            for r in sorted([*own, *repeats], key=lambda r: r.id)
        ]
        return RemediationView(**status.model_dump(), audit=audit)

    async def _seen_status(self, user: str, rid: str) -> RemediationStatus:
        """The run's status, queried only once the caller may see it."""
        # Who may see it is read from the run's search attributes, not a query: a query waits
        # for the run's worker, and a stranger's look at a run that exists took that time (or
        # its timeout) where one at no run was refused at once, telling them the run existed.
        check_id(rid)
        try:
            description = await self.client.get_workflow_handle(rid).describe()
        except RPCError as exc:
            raise _refused(rid, exc) from None
        if not await self._may_steer(user, description.typed_search_attributes):
            raise not_found(rid)
        return await self._status(rid, description)

    async def _status(
        self, rid: str, description: WorkflowExecutionDescription | None = None
    ) -> RemediationStatus:
        """The run's status; one closed without its own end (terminated, timed out) is aborted."""
        handle = self.client.get_workflow_handle(rid)
        try:
            status = await handle.query(
                GradedRemediationWorkflow.status, rpc_timeout=temporal.QUERY_TIMEOUT
            )
            if status.state in FINAL_STATES:
                return status
            description = description or await handle.describe()
        except RPCError as exc:
            raise _refused(rid, exc) from None
        if _closed_by_temporal(description) and status.run_key == f"{rid}@{description.run_id}":
            # Its query answers from its history, which stops where Temporal closed it.
            outcome, at = await self._record_closed(description)
            return status.model_copy(
                update={
                    "state": "aborted",
                    "waiting": None,
                    "next_rung": None,
                    "outcome": outcome,
                    "finished_at": at,
                }
            )
        return status

    async def _record_closed(self, run: WorkflowExecution) -> tuple[str, datetime | None]:
        """Write the row of a run Temporal closed before its own end as aborted, its outcome
        and close time (never written by the run): the same values whoever sees it first."""
        outcome = f"{_closed_by_temporal(run)} in Temporal before its own end"
        async with self.db.writing() as session:
            row = await RemediationRepository(session).get(f"{run.id}@{run.run_id}")
            if row is not None and row.state not in FINAL_STATES:
                row.state, row.finished_at = "aborted", run.close_time
                row.detail = {**row.detail, "outcome": outcome}
        return outcome, run.close_time

    async def list_runs(
        self,
        user: str,
        *,
        state: RemediationState | str | None = None,
        open_only: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> list[RemediationSummary]:
        """The caller's runs (an admin's: everyone's), newest first: ``limit`` of them after
        the first ``offset`` (a list's next page)."""
        # A state no remediation can be in is a mistake to say, not a filter that finds none.
        if state is not None and state not in get_args(RemediationState):
            states = ", ".join(get_args(RemediationState))
            raise InvalidRemediationError(f"state: use one of {states}", field="state")
        if not 0 <= offset <= MAX_ID:  # a larger one overflows the database's integer
            raise InvalidRemediationError(f"offset: 0 to {MAX_ID}", field="offset")
        owner = None if (await self._user(user)).is_admin else user
        # A running run's row holds where it was planned: a state it may be in now is asked of
        # every open row, then kept where the run is in it. Runs Temporal closed are written
        # aborted first, so each filter finds them where they are.
        now = state is not None and state not in FINAL_STATES
        async with self.db.session() as session:
            open_rows = await RemediationRepository(session).list(
                user=owner, open_only=True, limit=None
            )
        places = await self.states_now(
            [RemediationSummary.model_validate(row) for row in open_rows]
        )
        async with self.db.session() as session:
            repository = RemediationRepository(session)
            rows = await repository.list(
                user=owner,
                state=None if now else state,
                open_only=open_only or now,
                limit=None if now else limit,
                offset=0 if now else offset,
            )
            runs = [RemediationSummary.model_validate(row) for row in rows]
            running = [r for r in runs if r.state not in FINAL_STATES]
            progress = await repository.progress([r.run_key for r in running])
        for run in running:
            acted, mode = progress.get(run.run_key, (0, None))
            run.state = places.get(run.run_key, run.state)
            run.attempts, run.mode = max(run.attempts, acted), mode or run.mode
        return [r for r in runs if r.state == state][offset : offset + limit] if now else runs

    async def states_now(self, runs: list[RemediationSummary]) -> dict[str, str]:
        """Where each running run is now, by run key: its row is written when the run is
        planned and when it ends; in between, the server's list holds its AmbientState (the
        workflow keeps it current). A list that cannot be had (Temporal down or slow) leaves
        the rows' own: the list is the database's, as it was before it asked."""
        if not runs:
            return {}
        ids = ", ".join(json.dumps(i) for i in sorted({r.remediation_id for r in runs}))
        query = f"WorkflowId IN ({ids})"
        try:
            found = [
                e
                async for e in self.client.list_workflows(query, rpc_timeout=temporal.QUERY_TIMEOUT)
                if e.typed_search_attributes.get(temporal.STATE) is not None
                and e.status is not WorkflowExecutionStatus.COMPLETED
            ]
        except (RPCError, RuntimeError) as exc:  # RuntimeError: the SDK's failed connect
            if not isinstance(exc, RPCError) and not temporal_down(exc):
                raise
            log.warning("remediations: the server's list failed (%s); rows as stored", exc)
            return {}
        # A run closed without its own end (terminated) never writes its row: it is written here.
        for e in found:
            if _closed_by_temporal(e):
                await self._record_closed(e)
        return {
            f"{e.id}@{e.run_id}": "aborted"
            if _closed_by_temporal(e)
            else e.typed_search_attributes.get(temporal.STATE) or ""
            for e in found
        }

    async def stats(self, user: str, *, days: int = 30) -> RemediationStats:
        """Outcome analytics of the caller's remediations (all of them for an admin)."""
        # The bounds of the API and MCP, for every door (the CLI passed 0 or 10**8 through).
        if not 1 <= days <= MAX_STATS_DAYS:
            raise InvalidRemediationError(
                f"days: look back 1 to {MAX_STATS_DAYS} days, not {days}", field="days"
            )
        owner = None if (await self._user(user)).is_admin else user
        since = datetime.now(UTC) - timedelta(days=days)
        async with self.db.session() as session:
            rows = await RemediationRepository(session).list(user=owner, since=since, limit=None)
        # The row's own fields, and the rungs tried from its detail.
        outcomes = [
            RunOutcome.model_validate(row, from_attributes=True).model_copy(
                update={"tried": list(row.detail.get("tried") or [])}
            )
            for row in rows
        ]
        return remediation_stats(outcomes)

    async def share(self, user: str, rid: str) -> ReportLink:
        """A signed, expiring link to the remediation's report page (the audit included)."""
        view = await self.get(user, rid)
        # Same run and same audit length: the same link (a retry does not make another).
        key = f"{view.run_key}/report/{user}/{len(view.audit)}"
        title = f"Remediation of {view.alert.service}"
        return await share_report(
            self.db, self.settings, user, "remediation", title, report_markdown(view), key
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
    ) -> ApprovalDecision:
        """Answer the pending approval (of ``rung``, when the caller saw which); the approver's
        permission is read here, not given."""
        check_reason(reason)
        status, account = await self._steerer(
            user, rid, run_key, "approve" if approve else "refuse"
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
        try:
            # The run checked above, not whichever is latest now: the same alert's next run may
            # have started since, and this answer is not about it.
            return await _run_handle(self.client, rid, status.run_key).execute_update(
                GradedRemediationWorkflow.approve,
                ApprovalInput(
                    approver=user,
                    approver_permission=account.rollback_permission,
                    approve=approve,
                    reason=reason,
                    rung=asked,
                ),
                id=update_id,
            )
        except WorkflowUpdateFailedError as exc:
            cause = getattr(exc.cause, "message", None) or str(exc.cause)
            if getattr(exc.cause, "type", None) == STATE_CONFLICT:  # answered, or no longer waiting
                raise RemediationStateError(f"approval not accepted: {cause}") from None
            raise RemediationRefusedError(f"approval not accepted: {cause}") from None
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:  # the run checked ended in between
                raise await self._ended(rid, status) from None
            raise _refused(rid, exc) from None

    async def abort(
        self, user: str, rid: str, reason: str = "", *, run_key: str | None = None
    ) -> RemediationStatus:
        """Stop the run; with ``run_key`` (a reply in a run's discussion), only that run."""
        check_reason(reason)
        status, _ = await self._steerer(user, rid, run_key, "abort")
        if status.state in FINAL_STATES:  # ended, its last steps (report, notice) still running
            raise RemediationStateError(already_finished(rid, status.state))
        handle = _run_handle(self.client, rid, status.run_key)  # the run checked, not the latest
        description = await handle.describe()
        if description.status is not WorkflowExecutionStatus.RUNNING:
            raise await self._ended(rid, status)
        # The request as checked, before it is sent: the run records the name its abort gives
        # as the sender's only when it finds this (a Web UI signal can give any name).
        async with self.db.session() as session:
            await AuditRepository(session).append(
                actor=user, action="abort", subject=status.run_key, detail={"reason": reason}
            )
            await session.commit()
        await handle.signal(GradedRemediationWorkflow.abort, AbortInput(by=user, reason=reason))
        return await self._status(rid, description)

    # --- alert rules and the nightly triage --------------------------------------------

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

    async def schedule_triage(self, user: str | None = None) -> str:
        """The nightly triage Schedule (idempotent): 05:00 in the team's time zone by default."""
        triage_user = user or self.settings.remediation_triage_user
        if not triage_user:
            raise InvalidRemediationError(
                "no triage user: set AMBIENT_REMEDIATION_TRIAGE_USER (its permission applies)"
            )
        hour, minute = (int(part) for part in self.settings.remediation_triage_at.split(":"))
        schedule = Schedule(
            action=ScheduleActionStartWorkflow(
                AlertTriageWorkflow.run,
                TriageInput(user=triage_user),
                id=f"{TRIAGE_SCHEDULE}/run",
                task_queue=self.settings.temporal_task_queue,
            ),
            spec=ScheduleSpec(
                calendars=[
                    ScheduleCalendarSpec(hour=[ScheduleRange(hour)], minute=[ScheduleRange(minute)])
                ],
                time_zone_name=self.settings.remediation_timezone,
            ),
        )
        with contextlib.suppress(ScheduleAlreadyRunningError):
            await self.client.create_schedule(TRIAGE_SCHEDULE, schedule)
        return TRIAGE_SCHEDULE

    # --- helpers -----------------------------------------------------------------------

    async def _user(self, name: str) -> User:
        return await registered(self.db, name, RemediationRefusedError)

    async def _may_steer(self, user: str, run: TypedSearchAttributes) -> bool:
        """Owner, admin, or an approver the policy names for the run's cluster."""
        # Not who sent the same alert again (joined_by): an alert's fields are no secret, so
        # sending it proves nothing about whose cluster it is.
        cluster_id = run.get(temporal.CLUSTER) or ""
        return (
            user == (run.get(temporal.USER) or "")
            or named_approver(user, cluster_id, self.settings.remediation_approvers)
            or (await self._user(user)).is_admin
        )

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
        # _may_steer (in _seen_status), with a rollback_permission at least the run's mode:
        # refusing an execute step is as much a decision about it as approving it.
        status = await self._seen_status(user, rid)
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


def _closed_by_temporal(run: WorkflowExecution) -> str:
    """How Temporal closed a run before its own end ("terminated", "timed out", "failed");
    "" while it runs or once it ended by itself."""
    done = (None, WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.COMPLETED)
    return "" if run.status in done else str(run.status.name).lower().replace("_", " ")


def _earlier_run(rid: str) -> Refusal:
    return Refusal(
        "this is about an earlier run of %(run)s, which has ended; the same alert's "
        "current run is another: look at it (get_remediation) before answering it",
        run=rid,
    )


def _run_handle(client: Client, rid: str, run_key: str | None) -> Any:
    # The run named, not whichever is latest when the call arrives (None: the latest).
    return client.get_workflow_handle(rid, run_id=run_key.partition("@")[2] if run_key else None)


def _refused(rid: str, exc: RPCError) -> RemediationError:
    """What Temporal's refusal of a request about ``rid`` means to the caller."""
    if exc.status is RPCStatusCode.NOT_FOUND:
        return not_found(rid)
    return RemediationError(f"Temporal refused the request for {rid!r}: {temporal.refusal(exc)}")
