"""Reading remediations: who may see a run (for every door), its view, a user's runs and where
each is now, their outcome analytics, a shared report. ``RemediationService`` adds the writes."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowQueryFailedError,
)
from temporalio.service import RPCError

from ambient import no_answer, temporal
from ambient.clients.llm import LLMClient
from ambient.domain.configs import read_stored
from ambient.remediation.alerts import Alert
from ambient.remediation.intake import cluster_approvers
from ambient.remediation.joins import REPEATED, may_steer_run, run_key_of
from ambient.remediation.outcomes import of_a_dry_run
from ambient.remediation.runs import FINAL_STATES, RemediationState, RemediationStatus
from ambient.remediation.stats import RemediationStats, RunOutcome, remediation_stats
from ambient.remediation.storage import RemediationRepository
from ambient.remediation.views import (
    AuditLine,
    InvalidRemediationError,
    RemediationError,
    RemediationPage,
    RemediationRefusedError,
    RemediationSummary,
    RemediationView,
    check_id,
    not_found,
    report_markdown,
)
from ambient.settings import Settings
from ambient.sharing import ReportLink, share_report
from ambient.status import temporal_down, temporal_problem
from ambient.storage import Database
from ambient.storage.audit import AuditRepository
from ambient.storage.models import MAX_ID, User
from ambient.storage.users import registered
from workflows.remediation import GradedRemediationWorkflow

log = logging.getLogger(__name__)

MAX_STATS_DAYS = 365
# How many repeats of its alert a run's view shows (joined_by names everyone who sent it).
REPEATS_SHOWN = 100


class RemediationReads:
    def __init__(
        self, client: Client, settings: Settings, db: Database, llm: LLMClient | None = None
    ) -> None:
        self.client, self.settings, self.db, self.llm = client, settings, db, llm

    async def get(self, user: str, rid: str, run_id: str | None = None) -> RemediationView:
        """The remediation's latest run, or its run ``run_id`` (an earlier one of its alert)."""
        status = await self.seen_status(user, rid, run_id)
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

    async def seen_status(
        self, user: str, rid: str, run_id: str | None = None
    ) -> RemediationStatus:
        """The run's status, queried only once the caller may see it (without its audit)."""
        # Who may see it is read from the run's search attributes, not a query: a query waits
        # for the run's worker, and a stranger's look at a run that exists took that time (or
        # its timeout) where one at no run was refused at once, telling them the run existed.
        check_id(rid)
        try:
            description = await self.client.get_workflow_handle(rid, run_id=run_id).describe()
        except RPCError as exc:
            raise refused(rid, exc) from None
        if run_id is not None and (later := await self._reset_into(description)) is not None:
            # A run a reset ended goes on in the run the reset started (one life, one key):
            # that one's, waiting and answerable, not "aborted" (an approval push's link).
            description = later
        is_admin = (await self._user(user)).is_admin
        attributes = description.typed_search_attributes
        if not may_steer_run(user, is_admin, attributes, cluster_approvers(self.settings)):
            raise not_found(rid)
        return await self._status(rid, description)

    async def _status(
        self, rid: str, description: WorkflowExecutionDescription | None = None
    ) -> RemediationStatus:
        """The run's status; one closed without its own end (terminated, timed out) is aborted.
        With ``description``, of the run it describes (whose owner was checked), not whichever
        run of ``rid`` is the latest by the time it is asked."""
        run_id = description.run_id if description is not None else None
        handle = self.client.get_workflow_handle(rid, run_id=run_id)
        status, silent = None, ""
        try:
            status = await no_answer.queried(
                lambda left: handle.query(GradedRemediationWorkflow.status, rpc_timeout=left),
                no_answer.QUERY_TIMEOUT,
            )
        except no_answer.QUERY_REFUSED as exc:
            # A busy or stopped worker: what the database holds is shown, not "unavailable".
            if not no_answer.unanswered(exc):
                raise refused(rid, exc) from None
            silent = no_answer.refusal(exc)
        except TimeoutError:  # no try answered within the budget, nor refused as busy
            silent = no_answer.silent_worker()
        try:
            if status is not None and status.state in FINAL_STATES:
                return status
            description = description or await handle.describe()
        except RPCError as exc:
            raise refused(rid, exc) from None
        if status is None:
            return await self._recorded(description, silent)
        if _closed_by_temporal(description) and status.run_key == run_key_of(description):
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

    async def _recorded(self, run: WorkflowExecution, silent: str) -> RemediationStatus:
        """The run as recorded, for a run that did not answer (``silent`` says why): its state
        the server's (what the run last set) or, once it ended, its row's; its alert, score,
        plan, modes and approvals from its row and audit. What only the run holds (what it
        waits for, its next rung, its attempts) is left out: ``unanswered`` says so."""
        if _closed_by_temporal(run):
            await self._record_closed(run)
        run_key = run_key_of(run)
        async with self.db.session() as session:
            row = await RemediationRepository(session).get(run_key)
            audit = await AuditRepository(session).list(
                subject=run_key, not_action=REPEATED, limit=1000
            )
        if row is None:  # its first task has not stored it: nothing to show yet
            raise RemediationError(no_answer.refused_request(silent, run.id))
        said: dict[str, list[dict[str, Any]]] = {}
        for record in audit:
            said.setdefault(record.action, []).append(record.detail)
        permitted = said.get("permission") or [{"asked": row.mode, "mode": None}]
        state = run.typed_search_attributes.get(temporal.STATE)
        return RemediationStatus.model_validate(
            {
                "remediation_id": row.remediation_id,
                "run_key": run_key,
                "user": row.user,
                "alert": read_stored(Alert, row.detail["alert"]),
                "fingerprint": row.remediation_id.removeprefix("remediation/"),
                "state": row.state if row.state in FINAL_STATES or not state else state,
                "mode_asked": permitted[0]["asked"],
                "mode": permitted[-1]["mode"],
                "score": row.score,
                "budget": row.budget,
                "card": next(iter(said.get("scored", [])), {}).get("card"),
                "plan": next(iter(said.get("planned", [])), {}).get("plan", []),
                "approvals": said.get("approval", []),
                "outcome": row.detail.get("outcome") or "",
                "started_at": row.started_at,
                "finished_at": row.finished_at,
                "unanswered": silent,
            }
        )

    async def _reset_into(self, run: WorkflowExecution) -> WorkflowExecutionDescription | None:
        """The run a reset in Temporal went on as, if ``run`` was terminated by one: its
        workflow's newest run, carrying its key."""
        if run.status is not WorkflowExecutionStatus.TERMINATED:
            return None
        try:
            latest = await self.client.get_workflow_handle(run.id).describe()
        except RPCError:
            return None
        same = latest.run_id != run.run_id and run_key_of(latest) == run_key_of(run)
        return latest if same else None

    async def _record_closed(self, run: WorkflowExecution) -> tuple[str, datetime | None]:
        """Write the row of a run Temporal closed before its own end as aborted, its outcome
        and close time (never written by the run): the same values whoever sees it first."""
        if (later := await self._reset_into(run)) is not None:
            # Terminated by a reset, its key's run goes on in the run the reset started: the
            # row is that run's (it had been written aborted, the run's changes then refused).
            return f"reset in Temporal: it goes on as run {later.run_id}", run.close_time
        return await self._write_closed(run)

    async def _write_closed(self, run: WorkflowExecution) -> tuple[str, datetime | None]:
        """``_record_closed`` of a run known not to be one a reset went on from."""
        outcome = f"{_closed_by_temporal(run)} in Temporal before its own end"
        key = run_key_of(run)
        async with self.db.writing() as session:
            repository = RemediationRepository(session)
            row = await repository.get(key)
            if row is not None and row.state not in FINAL_STATES:
                # Its steps acted on, as its audit holds them (the run wrote them at its end,
                # which never came): the list said 0 of a run that had restarted and scaled.
                acted, _ = (await repository.progress([key])).get(key, (0, None))
                row.attempts = max(row.attempts, acted)
            if row is not None and row.mode == "dry_run":
                # A dry run's end says it was one, as the run's own ends do (of_a_dry_run).
                outcome = str(of_a_dry_run(outcome, [], "dry_run"))
            if row is not None and row.state not in FINAL_STATES:
                row.state, row.finished_at = "aborted", run.close_time
                row.detail = {**row.detail, "outcome": outcome}
        return outcome, run.close_time

    async def list_page(
        self,
        user: str,
        *,
        state: RemediationState | str | None = None,
        open_only: bool = False,
        limit: int = 50,
        offset: int = 0,
        before_id: int | None = None,
    ) -> RemediationPage:
        """The runs the caller may see (``may_steer``), newest first: ``limit`` of them after
        the first ``offset``, or before the run ``before_id`` (a list's next page: one that
        no run started, ended or moved between the pages shifts); and why their running runs'
        states are as stored when Temporal's list could not be had (a terminal says so; a door
        may)."""
        # A state no remediation can be in is a mistake to say, not a filter that finds none.
        if state is not None and state not in get_args(RemediationState):
            states = ", ".join(get_args(RemediationState))
            raise InvalidRemediationError(f"state: use one of {states}", field="state")
        if not 0 <= offset <= MAX_ID:  # a larger one overflows the database's integer
            raise InvalidRemediationError(f"offset: 0 to {MAX_ID}", field="offset")
        if offset and before_id is not None:
            # Both pages a list at once: the offset was counted after before_id's, and a page
            # of runs was skipped unsaid.
            raise InvalidRemediationError(
                "offset: give before_id (the next page) or offset, not both", field="offset"
            )
        if before_id is not None and not 1 <= before_id <= MAX_ID:
            raise InvalidRemediationError(f"before_id: 1 to {MAX_ID}", field="before_id")
        account = await self._user(user)
        # A running run's row holds where it was planned: a state it may be in now is asked of
        # every open row, then kept where the run is in it. Runs Temporal closed are written
        # aborted first, so each filter finds them where they are.
        now = state is not None and state not in FINAL_STATES
        async with self.db.session() as session:
            repository = RemediationRepository(session)
            seen = await repository.seen_by(account, cluster_approvers(self.settings))
            open_rows = await repository.list(seen=seen, open_only=True, limit=None)
        places, as_stored = await self.states_now([row.remediation_id for row in open_rows])
        if now and as_stored:
            # The rows hold where each running run was planned: a list of those waiting for
            # approval read empty while runs waited, the approver's list.
            raise RemediationError(
                f"state {state}: where the running runs are now could not be read "
                f"({as_stored}); try again, or list without a state"
            )
        async with self.db.session() as session:
            repository = RemediationRepository(session)
            rows = await repository.list(
                seen=seen,
                state=None if now else state,
                open_only=open_only or now,
                limit=None if now else limit,
                offset=0 if now else offset,
                before_id=before_id,
            )
            runs = [RemediationSummary.model_validate(row) for row in rows]
            running = [r for r in runs if r.state not in FINAL_STATES]
            progress = await repository.progress([r.run_key for r in running])
        for run in running:
            acted, mode = progress.get(run.run_key, (0, None))
            run.state = places.get(run.run_key, run.state)
            run.attempts, run.mode = max(run.attempts, acted), mode or run.mode
        listed = [r for r in runs if r.state == state][offset : offset + limit] if now else runs
        return RemediationPage(runs=listed, as_stored=as_stored)

    async def states_now(self, remediation_ids: list[str]) -> tuple[dict[str, str], str | None]:
        """Where each running run is now, by run key: its row is written when the run is
        planned and when it ends; in between, the server's list holds its AmbientState (the
        workflow keeps it current). A list that cannot be had (Temporal down or slow) leaves
        the rows' own (the list is the database's, as it was before it asked) and says why."""
        if not remediation_ids:
            return {}, None
        query = temporal.ids_query(remediation_ids)
        try:
            found = [
                e
                async for e in self.client.list_workflows(
                    query, rpc_timeout=no_answer.QUERY_TIMEOUT
                )
                if e.typed_search_attributes.get(temporal.STATE) is not None
                and e.status is not WorkflowExecutionStatus.COMPLETED
            ]
        except (RPCError, RuntimeError) as exc:  # RuntimeError: the SDK's failed connect
            if not isinstance(exc, RPCError) and not temporal_down(exc):
                raise
            log.warning("remediations: the server's list failed (%s); rows as stored", exc)
            return {}, temporal_problem(exc, self.settings) or f"Temporal's list failed ({exc})"
        places: dict[str, str] = {}
        for e in found:
            key = f"{e.id}@{e.run_id}"
            if not _closed_by_temporal(e):
                places[key] = e.typed_search_attributes.get(temporal.STATE) or ""
            elif (later := await self._reset_into(e)) is not None:
                # Reset in Temporal: its key goes on in the run the reset started (the list
                # names no first run: that run is told by a description), closed too maybe.
                if _closed_by_temporal(later):
                    await self._write_closed(later)  # its workflow's newest: no reset since
                    places[key] = "aborted"
                else:
                    places[key] = later.typed_search_attributes.get(temporal.STATE) or ""
            else:
                # A run closed without its own end (terminated) never writes its row: written here.
                await self._write_closed(e)
                places[key] = "aborted"
        return places, None

    async def stats(self, user: str, *, days: int = 30) -> RemediationStats:
        """Outcome analytics of the remediations the caller sees (``may_steer``: theirs, those
        on clusters they approve for; an admin's: all), as ``list_page`` lists them."""
        # The bounds of the API and MCP, for every door (the CLI passed 0 or 10**8 through).
        if not 1 <= days <= MAX_STATS_DAYS:
            raise InvalidRemediationError(
                f"days: look back 1 to {MAX_STATS_DAYS} days, not {days}", field="days"
            )
        account = await self._user(user)
        since = datetime.now(UTC) - timedelta(days=days)
        async with self.db.session() as session:
            repository = RemediationRepository(session)
            seen = await repository.seen_by(account, cluster_approvers(self.settings))
            rows = await repository.list(seen=seen, since=since, limit=None)
            # The mode its last permission check gave (a run asked to execute may be lowered).
            given = await repository.progress([row.run_key for row in rows])
        # The row's own fields, the rungs tried from its detail, and whether it was a dry run.
        outcomes = [
            RunOutcome.model_validate(row, from_attributes=True).model_copy(
                update={
                    "tried": list(row.detail.get("tried") or []),
                    "dry_run": (given.get(row.run_key, (0, None))[1] or row.mode) == "dry_run",
                }
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

    async def _user(self, name: str) -> User:
        return await registered(self.db, name, RemediationRefusedError)


def _closed_by_temporal(run: WorkflowExecution) -> str:
    """How Temporal closed a run before its own end ("terminated", "timed out", "failed");
    "" while it runs or once it ended by itself."""
    done = (None, WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.COMPLETED)
    return "" if run.status in done else str(run.status.name).lower().replace("_", " ")


def refused(rid: str, exc: RPCError | WorkflowQueryFailedError) -> RemediationError:
    """What Temporal's refusal of a request about ``rid`` means to the caller."""
    if no_answer.not_found(exc):
        return not_found(rid)
    return RemediationError(no_answer.refused_request(no_answer.refusal(exc), rid))
