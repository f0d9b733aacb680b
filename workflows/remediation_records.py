"""What a remediation run leaves behind: state, record, audit, pushes, posts.

The plumbing of ``GradedRemediationWorkflow`` (workflows/remediation.py), kept apart so the
workflow reads like the ladder (its endings: remediation_endings.py). Every call is an activity;
the record and audit rows are idempotent by key, so a replayed or retried call finds the first.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, TypedSearchAttributes
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.exceptions import TimeoutError as ActivityTimeoutError
from temporalio.types import MethodAsyncSingleParam

with workflow.unsafe.imports_passed_through():
    from activities.discussions import DiscussionActivities
    from activities.remediation_records import RemediationRecordActivities
    from ambient import temporal
    from ambient.activity_attempts import ACTIVITY_FAILED
    from ambient.discussions.rules import AgentPost, remediation_post_id
    from ambient.domain.notify import Message, NotificationKind, Target, Wording
    from ambient.refusals import Said
    from ambient.remediation.alerts import Alert
    from ambient.remediation.ladder import Checkpoint, Mode, Rung
    from ambient.remediation.runs import (
        CHANGE_RETRY,
        FINAL_STATES,
        AbortInput,
        ApprovalDecision,
        Attempt,
        AuditEntry,
        Opened,
        RecordInput,
        RemediationInput,
        RemediationPolicy,
        RemediationState,
        Waiting,
    )
    from ambient.remediation.safety import a_while
    from ambient.remediation.scores import PlannedStep, ScoreCard
    from ambient.render import markdown_literal

from workflows.sends import deliver

P = TypeVar("P")
R = TypeVar("R")

SHORT = timedelta(seconds=30)
# Reads retry a little; changes retry a little more but never forever (DESIGN §6).
READ_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=2))
ONE_TRY = RetryPolicy(maximum_attempts=1)
# A read's one try in the run's workflow task after its opening (a source that answers at once
# is read there, with no round trip through the server).
READ_FIRST_TRY = timedelta(seconds=5)
# Bookkeeping in our own database (permission, gates, audit, hand-over, record): a locked or
# restarting database delays the run for up to about an hour, it must not fail it (a failed
# run tells nobody). A bad input does not pass on a retry.
RECORD_RETRY = RetryPolicy(
    maximum_attempts=120,
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=["ValidationError", "ValueError", "TypeError"],
)
# A remediation's first workflow task runs its local activities (score, permission, gates,
# checkpoint) before the first change. Under an alert storm the worker runs a hundred of them
# at once and one task can outlast the default 10 s: the server then takes the task back and
# every local activity in it runs again, for each of them, and the storm never drains (441
# lost tasks for 100 alerts in bench/remediation_storm.py). A minute keeps the work; a worker
# that dies holding a task delays that run by at most this much. Every start gives it (the
# API's, a threshold watch's and the nightly triage's).
TASK_TIMEOUT = timedelta(minutes=1)


class RemediationRecords:
    """The run's state and its bookkeeping; the workflow climbs the ladder."""

    @workflow.init
    def __init__(self, request: RemediationInput) -> None:
        info = workflow.info()
        self.request = request
        self.alert = request.alert
        self.remediation_id = info.workflow_id
        # The run, not just the workflow id: the same alert again later is a new remediation,
        # and its step keys (stamped on objects) must not match this run's. Its first run's id:
        # a run reset in Temporal (which starts it again as a new run) keeps it, and finds the
        # changes the run made before as made (it restarted the Deployment again). A run never
        # reset is its own first run: its key is as before.
        self.run_key = f"{info.workflow_id}@{info.first_execution_run_id}"
        self.state: RemediationState = "scoring"
        self.mode: Mode | None = None
        self.card: ScoreCard | None = None
        self.plan: list[PlannedStep] = []
        self.policy = RemediationPolicy()
        self.attempts: list[Attempt] = []
        self.baseline: Checkpoint | None = None
        self.next_rung: Rung | None = None
        self.waiting: Waiting | None = None
        self.awaiting_approval: Rung | None = None
        self.decision: ApprovalDecision | None = None
        self.approvals: list[ApprovalDecision] = []
        self.answers_read = 0  # answers sent, their sender being verified (approve)
        self.aborted: AbortInput | None = None
        self.joined_by: list[str] = []
        self.joined_alerts: list[Alert] = []
        self.joined_senders: list[str] = []  # who sent each of joined_alerts
        self.opened: Opened | None = None
        # The step key whose rate-limit slot its gate reserved, until its change is tried.
        self.reserved: str | None = None
        # A post that waits for the run's next one (the plan, held until after the first change).
        self.held_post: tuple[str, str, list[str]] | None = None
        self.outcome = ""
        self.outcome_said: Said | None = None
        self.started_at = workflow.now()
        self.finished_at: datetime | None = None
        self.push_cut: str | None = None  # what a cancel cut the hand-over's push with
        self.abort_audited = False
        # An abort cut the change's retries short, the change failing on it (a hand-over).
        self.abort_stopped_change = False
        # An abort whose input is not an AbortInput stops the run too (a run from before this
        # patch dropped it, as the SDK did, and replays so).
        self.abort_read_whole = workflow.patched("abort-read-whole")
        # A rung that waited reads its alert again before its change (a run from before this
        # patch acted on an alert that had cleared while it waited, and replays so).
        self.recheck_after_wait = workflow.patched("recheck-after-wait")
        # That alert cleared meanwhile is told with the run's end (a run from before this
        # patch told it after, a cancel meanwhile cutting the push, and replays so).
        self.cleared_told_with_end = workflow.patched("cleared-told-with-end")
        # And only with a pod of the workload ready (a run from before this patch read the
        # metric alone, and replays so).
        self.cleared_with_rollout = workflow.patched("cleared-with-rollout")
        # Its metric reads as regular activities (a run from before this patch read them as
        # local ones, and replays so).
        self.reads_regular = workflow.patched("metric-reads-regular")
        # Its Kubernetes reads so too (a run from before this patch read them as local
        # activities with their retries, and replays so).
        self.cluster_reads_regular = workflow.patched("cluster-reads-regular")
        # A rung that needs approval reads its workload before asking, and skips (or hands over)
        # one its change's plan would (a run from before this patch asked, then skipped it once
        # approved, and replays so; one whose reads carried no plan skipped one paused alone).
        self.read_before_asking = workflow.patched("read-before-asking")
        # Its isolation and full rollback so too (a run from before this patch asked for them
        # unplanned, then skipped them once approved, and replays so).
        self.last_rungs_planned = workflow.patched("last-rungs-planned-before-asking")
        # A run refused by its owner's permission before any change tells its user so (a run
        # from before this patch ended "refused" telling nobody, and replays so).
        self.refusal_told = workflow.patched("refusal-told")

    async def _wait(self, duration: timedelta, until: Any = None, *, summary: str) -> None:
        """A durable timer cut short by abort (or ``until``); ``summary``: what it waits for,
        as the Web UI labels it (its length is added)."""
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self.aborted is not None or bool(until and until()),
                timeout=duration,
                timeout_summary=f"{summary}, {a_while(duration)}",
            )

    async def _wait_shown(
        self,
        state: RemediationState,
        what: Any,
        rung: Rung,
        seconds: float,
        detail: str = "",
        said: Said | None = None,
    ) -> None:
        """A durable timer cut short by abort, shown as what the run waits for (get_remediation)."""
        until = workflow.now() + timedelta(seconds=seconds)
        self.waiting = Waiting(what=what, rung=rung, until=until, detail=detail, said=said)
        await self._set_state(state)
        waited = f"{WAITS.get(what, what)} {rung_said(rung)} of {self.alert.service}"
        await self._wait(timedelta(seconds=seconds), summary=waited)
        self.waiting = None

    async def _set_state(self, state: RemediationState) -> None:
        if state == self.state and state != "scoring":
            return
        self.state = state
        workflow.upsert_search_attributes([temporal.STATE.value_set(state)])
        rung = f", next rung {int(self.next_rung)}" if self.next_rung else ""
        score = f"score {self.card.score}, budget {self.card.budget}" if self.card else "scoring"
        workflow.set_current_details(f"**{state}** — {score}{rung}. {self.outcome}".strip())

    def _run_mode(self) -> Mode:
        """The mode the run's row shows (the list, the stats): execute once any rung changed
        the cluster or may have, whatever mode a later rung took (an owner's permission lowered
        to dry_run mid-run): a list saying dry_run read as nothing was touched."""
        if any(a.mode == "execute" and (a.applied or a.maybe_applied) for a in self.attempts):
            return "execute"
        return self.mode or self.request.mode

    async def _record(self) -> None:
        resolved = [a.rung for a in self.attempts if a.resolved]
        tried = [int(a.rung) for a in self.attempts if a.skipped_reason is None]
        await self._act(
            RemediationRecordActivities.record_remediation,
            RecordInput(
                run_key=self.run_key,
                remediation_id=self.remediation_id,
                user=self.request.user,
                alert=self.alert,
                mode=self._run_mode(),
                state=self.state,
                score=self.card.score if self.card else None,
                budget=self.card.budget if self.card else None,
                attempts=len(tried),
                resolved_rung=int(resolved[0]) if resolved else None,
                budget_exhausted=self.state == "budget_exhausted",
                started_at=self.started_at,
                finished_at=self.finished_at,
                detail={
                    "outcome": self.outcome,
                    "generated_by": self.card.generated_by if self.card else None,
                    "tried": tried,
                },
            ),
            summary=f"record the run: {self.state}",
            retry=RECORD_RETRY,
        )

    async def _audit(
        self,
        key: str,
        action: str,
        detail: dict[str, Any],
        *,
        actor: str = "remediation",
        asked: str | None = None,
    ) -> AuditEntry:
        """The record as written (``actor`` as not verified when no door recorded it ``asked``)."""
        return await self._act(
            RemediationRecordActivities.audit_remediation,
            AuditEntry(
                run_key=self.run_key,
                key=key,
                actor=actor,
                action=action,
                detail=detail,
                asked=asked,
            ),
            summary=f"audit: {action}",
            retry=RECORD_RETRY,
        )

    async def _push(
        self,
        key: str,
        title: str,
        body: str,
        zh: Wording | None = None,
        deadline: datetime | None = None,
        link: str | None = None,
        no_voice: Message | None = None,
    ) -> None:
        try:
            # The common path: a push that fails for good is said once, as final, to the user.
            await deliver(
                user=self.request.user,
                key=key,
                message=Message(
                    title=title, body=body, zh=zh, deadline=deadline, link=link, no_voice=no_voice
                ),
                targets=[Target.model_validate({"channel": "inbox"})],
                about=title,
                kind=NotificationKind.REMEDIATION,
                # Its deliveries and failures are shown under the remediation.
                task=self.remediation_id,
            )
        except ActivityError as exc:
            if run_cancelled(exc):
                if self.state not in FINAL_STATES:  # not its hand-over's or its end's push
                    # The run's cancellation, not the push's failure: the run cleans up, closes.
                    raise asyncio.CancelledError(cause_of(exc)) from exc
                # Its end's push cut by the cancel (maybe sent, maybe not): no failure of it,
                # the cancel audited after its end (_hand_over).
                self.push_cut = cause_of(exc)
                return
            # A push that fails for good is recorded; the remediation goes on regardless.
            await self._audit(f"{key}/push-failed", "push_failed", {"error": cause_of(exc)})

    async def _discuss(self, key: str, content: str, tags: list[str]) -> None:
        """Post on the alert's discussion (plan, steps, outcome; replies can approve)."""
        if self.held_post is not None:
            held, self.held_post = self.held_post, None
            await self._discuss(*held)
        # The bus is a courtesy copy: the audit log and pushes are the record.
        with contextlib.suppress(*ACTIVITY_FAILED):
            await self._act(
                DiscussionActivities.post_to_discussion,
                AgentPost(
                    agent_id="remediation",
                    topic=f"Remediation of {self.alert.service}",
                    content=markdown_literal(content),  # markdown: its words shown as written
                    # The run's key: a run reset in Temporal keeps its discussion (it is still
                    # its first run's), where the activity's own run id opened another.
                    subject=self.run_key,
                    tags=tags,
                    message_id=remediation_post_id(key),
                ),
                summary=f"post to the discussion: {', '.join(tags)}",
            )

    async def _decided_or_checked(
        self, decided: R | None, check: MethodAsyncSingleParam[Any, P, R], arg: P, summary: str
    ) -> R:
        """What open_remediation already decided for the first rung, or the check's answer now."""
        if decided is not None:
            return decided
        return await self._act(check, arg, summary=summary, retry=RECORD_RETRY)

    async def _read_later(
        self,
        activity: MethodAsyncSingleParam[Any, P, R],
        arg: P,
        *,
        summary: str,
        off_task: bool,
        retry: RetryPolicy = READ_RETRY,
        again: P | None = None,
        final: bool = True,
    ) -> R:
        """A read after the opening, ``off_task`` (its patch's): tried once in the workflow task,
        READ_FIRST_TRY at most, as the first change is; what that try did not finish (its time,
        a failure that may pass), a regular activity reads again, off the task, with the rest
        of ``retry``'s tries (``again``: its argument, when it counts that try), after the wait
        a throttled server asked for (a 429's Retry-After). A failure no retry passes is
        ``final`` at once (a metric read's, patched before that, is read again all the same).
        Read as a local activity with all its retries, a slow source or API server held the
        task (the run's updates and queries) for minutes."""
        if not off_task:
            return await self._act(activity, arg, summary=summary, retry=retry)
        try:
            return await self._act(
                activity, arg, summary=summary, limit=READ_FIRST_TRY, retry=ONE_TRY
            )
        except ACTIVITY_FAILED as exc:
            if final and refused_for_good(exc, retry):
                raise
            failure = exc if isinstance(exc, ApplicationError) else exc.cause
            if isinstance(failure, ApplicationError) and failure.next_retry_delay:
                asked = f"{summary}: the wait its source asked for"
                await self._wait(failure.next_retry_delay, summary=asked)
        most = retry.maximum_attempts
        rest = dataclasses.replace(retry, maximum_attempts=most - 1 if most > 1 else most)
        return await self._act(
            activity,
            arg if again is None else again,
            summary=f"{summary} again, off the workflow task",
            retry=rest,
            regular=True,
        )

    async def _act(
        self,
        activity: MethodAsyncSingleParam[Any, P, R],
        arg: P,
        *,
        summary: str,
        limit: timedelta = SHORT,
        retry: RetryPolicy = READ_RETRY,
        regular: bool = False,
    ) -> R:
        # Reads and database bookkeeping (idempotent by key) run as local activities: no
        # round trip through the server for each, which is most of the time to first action.
        # ``regular``: a read of a source the user aimed, slow as it may be, off the run's
        # workflow task (which answers its updates and queries). ``summary``: what the Web UI
        # labels it with.
        try:
            if regular:
                return await workflow.execute_activity_method(
                    activity, arg, start_to_close_timeout=limit, retry_policy=retry, summary=summary
                )
            return await workflow.execute_local_activity_method(
                activity, arg, start_to_close_timeout=limit, retry_policy=retry, summary=summary
            )
        except ActivityError as exc:
            if run_cancelled(exc):
                # Cancelled in Temporal while this activity ran (its verification, a
                # checkpoint): its cancellation is the run's, and the run cleans up and closes
                # as Cancelled (workflows/remediation.py). Taken for the activity's failure,
                # the run would hand over ("could not be verified") or go on to the next step,
                # and close as Completed.
                raise asyncio.CancelledError(cause_of(exc)) from exc
            raise


# A timed wait of the ladder as the Web UI labels it ("settle after rung 1 (restart) of cart").
WAITS = {
    "settle": "settle after",
    "change_window": "the change window before",
    "rate_limit": "the rate limit before",
}


def rung_said(rung: Rung) -> str:
    """A rung as the Web UI's labels say it: "rung 2 (scale out)"."""
    return f"rung {int(rung)} ({rung.name.lower().replace('_', ' ')})"


def run_cancelled(error: ActivityError) -> bool:
    """Whether an activity failed as cancelled because the run was cancelled in Temporal."""
    return isinstance(error.cause, CancelledError) and workflow.cancellation_reason() is not None


def refused_for_good(error: BaseException, retry: RetryPolicy = CHANGE_RETRY) -> bool:
    """Whether a local activity's failure is one no retry of ``retry`` would pass."""
    return isinstance(error, ApplicationError) and (
        error.non_retryable or error.type in (retry.non_retryable_error_types or ())
    )


def cause_of(error: ActivityError | ApplicationError | ActivityTimeoutError) -> str:
    """The message of the error an activity failed with (what the audit row keeps)."""
    # A local activity's failure, as it was raised (its timeout, replayed, as the timeout).
    if isinstance(error, ApplicationError | ActivityTimeoutError):
        return error.message
    cause = error.cause
    return str(cause.message if cause is not None and hasattr(cause, "message") else error)


def search_attributes(user: str, cluster: str) -> TypedSearchAttributes:
    """What a remediation starts with: found in the Web UI by kind, user, cluster and state."""
    return temporal.search_attributes("remediation", user, cluster=cluster, state="scoring")
