"""GradedRemediationWorkflow — `remediation/{alert fingerprint}`: score, budget, the ladder.

One rung per attempt, lowest first. Before each change: permission (re-read), approval from
the configured rung, change window, per-cluster rate limit, breaker, checkpoint. After it: a
durable settle timer, then verification. Resolved stops the ladder; a spent budget goes to
the broadcast queue and is pushed now. Every decision lands in the audit log (activities).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, Literal

from pydantic import ValidationError
from temporalio import workflow
from temporalio.exceptions import ApplicationError

from workflows.remediation_change import answer_lost, wrote
from workflows.remediation_records import RECORD_RETRY, cause_of, refused_for_good, rung_said
from workflows.remediation_verify import RemediationVerify

with workflow.unsafe.imports_passed_through():
    from activities.remediation import RemediationActivities
    from ambient.activity_attempts import ACTIVITY_FAILED
    from ambient.refusals import Refusal
    from ambient.remediation.ladder import (
        Checkpoint,
        Rung,
        StepResult,
        step_key,
    )
    from ambient.remediation.outcomes import (
        aborted_by,
        budget_spent,
        cleared_isolated,
        cleared_isolated_before,
        cleared_joined_open,
        ladder_top,
        left_isolated,
        maybe_applied,
        not_applied,
        not_checkpointed,
        not_verified,
        resolved_at,
        stopped_on_purpose,
    )
    from ambient.remediation.runs import (
        CHANGE_RETRY,
        FINAL_STATES,
        JOIN,
        JOIN_TOO_LATE,
        JOINED,
        SLOT_HELD,
        AbortInput,
        Attempt,
        CheckpointInput,
        JoinInput,
        OpenInput,
        PermissionInput,
        RemediationInput,
        RemediationStatus,
        abort_as_given,
        sent_after,
    )
    from ambient.remediation.safety import PermissionDecision
    from ambient.remediation.scores import PlannedStep

Outcome = Literal["resolved", "next", "stop"]
# An abort that came while a rung's checkpoint was read stops that rung's change: _apply's
# answer then.
ABORTED_BEFORE_CHANGE = "aborted before its change"
# The first rung's change, when open_remediation decided everything before it, is a local
# activity in the opening's workflow task: a regular activity, made once that task completed,
# cost a round trip through the server before the first change and a workflow task more after
# it (in an alert storm, the change also waited behind every local activity the worker had
# pending). That change is tried once there, for this long at most: the server holds the run's
# queries while its task is open, and a slow or failing cluster (a change is tried for minutes)
# must not keep get_remediation silent. What it did not finish, the regular activity finishes.
FIRST_TRY = timedelta(seconds=5)
NOTHING_TO_ROLL_BACK = (
    "the running release is not a Deployment revision with an earlier ReplicaSet: nothing to "
    "roll back to; moving on"
)


# Outside the sandbox: in an alert storm the sandbox's per-activation guard cost ~13 % of the
# worker's CPU (0.87 paired, docs/benchmarks.md, "Alert storm, eighth round"). The guard
# it gives up is small here (our workflow modules are passed through, so their own clock or
# randomness was never checked at run time: tests/foundation/test_sandbox_guard.py); the
# static check of tests/foundation/test_workflow_code.py and the replay tests stand for it.
@workflow.defn(sandboxed=False)
class GradedRemediationWorkflow(RemediationVerify):
    # Its state is set up by RemediationRecords.__init__ (workflows/remediation_records.py).
    @workflow.run
    async def run(self, request: RemediationInput) -> RemediationStatus:
        try:
            return await self._ladder(request)
        except asyncio.CancelledError:
            if self.state in FINAL_STATES:
                raise
            await self._cancelled()
            raise

    async def _ladder(self, request: RemediationInput) -> RemediationStatus:
        self.opened = opened = await self._act(
            RemediationActivities.open_remediation,
            OpenInput(
                run_key=self.run_key,
                remediation_id=self.remediation_id,
                alert=self.alert,
                user=request.user,
                mode=request.mode,
                started_at=self.started_at,
                now=workflow.now(),
            ),
            summary=f"open the remediation of {self.alert.service}: score, plan, first checks",
            limit=timedelta(minutes=2),
            retry=RECORD_RETRY,
        )
        self.card, self.plan, self.policy = opened.card, opened.plan, opened.policy
        # The release before the incident, read as the run opened: a release shipped while its
        # first rung waits (an approval, a closed gate) is not the one rung 3 goes back from.
        self.baseline = opened.baseline
        await self._set_state("planned")
        steps = "\n".join(
            f"{s.attempt}. {s.rung.name.lower()} — {s.action}"
            + (" (needs approval)" if s.needs_approval else "")
            for s in self.plan
        )
        # A courtesy copy: it goes out before the run's next post, after the first change.
        self.held_post = (
            f"{self.run_key}/plan",
            f"Score {opened.card.score}, budget {len(self.plan)}. "
            f"Plan for {self.alert.service}:\n{steps}",
            ["plan"],
        )
        for step in self.plan:
            if self.aborted:
                break
            self.next_rung = step.rung
            if step.rung is Rung.HAND_OVER:
                await self._hand_over(ladder_top())
                return self.status()
            outcome = await self._climb(step)
            if outcome != "next":
                return self.status()
        if self.aborted:
            first = self.opened
            if first is not None and first.gate is not None and first.gate.allowed:
                # Aborted before its first climb: open_remediation reserved that rung's slot
                # (the run's until given back, a cancel meanwhile gives it back).
                self.reserved = step_key(self.run_key, self.plan[0].rung)
                if first.made is not None:
                    # Made by the first try of an opening whose task was lost (the abort came
                    # before the task was run again): the run's change, as made after it.
                    await self._post_step(self._made_before(first, first.made))
                    if self.reserved is not None:  # nothing sent: a dry run's, a step already so
                        await self._free_slot(self.reserved)
                elif (
                    first.gate.reason == SLOT_HELD
                    and (maybe := self._maybe_made_before(first)) is not None
                ):
                    # Held by that lost opening, no change recorded: its try may have written.
                    await self._post_step(maybe)
                else:
                    await self._free_slot(self.reserved)
            await self._abort(self.aborted)
        else:
            await self._hand_over(budget_spent(len(self.plan)), "budget_exhausted")
        return self.status()

    # --- one rung -----------------------------------------------------------------------

    async def _climb(self, step: PlannedStep) -> Outcome:
        key = step_key(self.run_key, step.rung)
        # The first climb takes what open_remediation already decided for it.
        opened, self.opened = self.opened, None
        await self._set_state("checking")
        if not await self._permitted(step, key, opened.permission if opened else None):
            return "stop"
        skipped, planned = None, None
        if (
            step.rung is Rung.ROLLBACK
            and self.baseline is not None
            and self.baseline.observed
            and self.baseline.previous_revision is None
        ):
            # Known from the first checkpoint: nobody is asked to approve a rollback to nothing.
            skipped = NOTHING_TO_ROLL_BACK
        elif step.needs_approval and self._plans_before_asking(step.rung):
            # Nor a change its own plan would skip or stop (planned again once approved).
            planned = await self._planned_before_asking(step, key)
            if self.aborted:
                return await self._abort(self.aborted)
            skipped = planned.skipped_reason if planned else None
        if skipped is not None:
            attempt = Attempt(attempt=step.attempt, rung=step.rung, key=key, mode=self.mode)
            self.attempts.append(attempt)
            if planned is not None:  # what its plan found, shown as a skip once approved is
                attempt.detail, attempt.at = planned.detail, workflow.now()
            await self._skipped(attempt, key, skipped)
            await self._post_step(attempt)
            if planned is not None and planned.stopped:  # as when its change says so
                await self._hand_over(stopped_on_purpose(step.rung, skipped))
                return "stop"
            return "next"
        asked_at = workflow.now()  # what a reading after a wait must be newer than
        if step.needs_approval and not await self._approval(step, key):
            return await self._abort(self.aborted) if self.aborted else "stop"
        gate = await self._gates(step, key, opened.gate if opened else None)
        if gate == "go":
            self.reserved = key  # given back if the run is cancelled before its change
        if self.aborted:
            if gate == "go":
                await self._free_slot(key)
            return await self._abort(self.aborted)
        if gate != "go":
            return "next" if gate == "skip" else "stop"
        # Read before an approval or a gate's wait (minutes, hours; the state shows the wait): a
        # revocation meanwhile must stop this change too, not only the next rung's.
        if self.state != "checking":
            if not await self._permitted(step, key, again=True):
                return "stop"
            if self.recheck_after_wait and await self._cleared_meanwhile(step, key, asked_at):
                return "resolved"
        attempt = Attempt(attempt=step.attempt, rung=step.rung, key=key, mode=self.mode)
        self.attempts.append(attempt)
        await self._set_state("applying")
        result = await self._apply(step, key, attempt, opened.checkpoint if opened else None)
        changed_at = workflow.now()
        if result == ABORTED_BEFORE_CHANGE and self.aborted:
            return await self._abort(self.aborted)
        await self._post_step(attempt)
        if isinstance(result, Refusal):
            # A change that could not be made is no evidence that a stronger one is needed.
            await self._hand_over(result)
            return "stop"
        if isinstance(result, StepResult) and result.stopped:
            await self._hand_over(stopped_on_purpose(step.rung, result.skipped_reason or ""))
            return "stop"
        if not isinstance(result, StepResult) or result.skipped_reason:
            return "next"
        seconds = self.alert.settle_seconds
        if seconds is None:
            seconds = self.policy.settle_seconds
        await self._wait_shown("settling", "settle", step.rung, seconds)
        if self.aborted:
            return await self._abort(self.aborted)
        try:
            verification = await self._verify(step, key, attempt.mode, changed_at)
        except ACTIVITY_FAILED as exc:
            # Whether the change worked is unknown: climbing to a stronger rung blind is not
            # safe, and a failed run would tell nobody. A person takes it from here.
            attempt.verified = False
            attempt.verification = f"verification failed: {cause_of(exc)}"
            await self._hand_over(not_verified(step.rung, cause_of(exc)))
            return "stop"
        if verification is None:  # aborted while it waited for a datapoint after the change
            return await self._abort(self.aborted) if self.aborted else "stop"
        attempt.verified = True
        attempt.resolved = verification.resolved
        attempt.verification = verification.detail
        if verification.resolved:
            if left_isolated(self.attempts):
                await self._hand_over(cleared_isolated(step.rung))
                return "stop"
            isolated = cleared_isolated_before(step.rung, self.baseline)
            if isolated is not None:
                # Isolated by an earlier run (its Services select no pods since before this
                # run): no more resolved than behind this run's own isolation.
                await self._hand_over(isolated)
                return "stop"
            still = await self._joined_still_open()
            if still:
                await self._hand_over(cleared_joined_open(step.rung, still))
                return "stop"
            self._ended(resolved_at(step.rung))
            await self._finish("resolved", resolved=step.rung)
            return "resolved"
        return "next"

    async def _permitted(
        self,
        step: PlannedStep,
        key: str,
        decided: PermissionDecision | None = None,
        again: bool = False,
    ) -> bool:
        """The owner's rollback_permission (re-read unless ``decided``) allows the rung: its mode
        is the run's; read ``again`` after a wait, it can only lower it (an approval given for a
        dry run never executes). Refused: the run ends, its slot given back."""
        permission = await self._decided_or_checked(
            decided,
            RemediationActivities.check_remediation_permission,
            PermissionInput(
                run_key=self.run_key,
                key=f"{key}/permission" + ("/again" if again else ""),
                user=self.request.user,
                asked=self.request.mode,
                executor=self.policy.executor,
                rung=step.rung,
            ),
            f"{self.request.user}'s permission for {rung_said(step.rung)}"
            + (", read again" if again else ""),
        )
        if permission.mode is None:
            if again:
                await self._free_slot(key)
            refused = f"refused: {permission.reason}"
            if any(a.applied for a in self.attempts):
                # Revoked after changes were made: a person is told what was changed and what
                # to undo (an isolation left in place), as when the budget is spent.
                await self._hand_over(refused, "refused")
                return False
            self._ended(refused)
            told = self._refused(permission.reason) if self.refusal_told else None
            await self._finish("refused", told=told)
            return False
        self.mode = "dry_run" if again and self.mode == "dry_run" else permission.mode
        return True

    async def _apply(
        self, step: PlannedStep, key: str, attempt: Attempt, checkpoint: Checkpoint | None
    ) -> StepResult | Refusal | str | None:
        """The rung's change; None when it has nothing to do, a Refusal when it could not be
        made (ABORTED_BEFORE_CHANGE: an abort stopped it)."""
        opened = checkpoint is not None  # read by open_remediation, just before
        try:
            if checkpoint is None:
                checkpoint = await self._read_later(
                    RemediationActivities.take_remediation_checkpoint,
                    CheckpointInput(
                        run_key=self.run_key,
                        key=f"{key}/checkpoint",
                        mode=attempt.mode,
                        target=self.alert.target(),
                    ),
                    summary=f"checkpoint {self.alert.service} before {rung_said(step.rung)}",
                    off_task=self.cluster_reads_regular,
                    retry=CHANGE_RETRY,
                )
        except ACTIVITY_FAILED as exc:
            attempt.skipped_reason = f"checkpoint failed: {cause_of(exc)}"
            await self._free_slot(key)
            return not_checkpointed(step.rung, cause_of(exc))
        if self.aborted:
            # Aborted while the checkpoint was read (a slow cluster, retried for minutes): the
            # change it was read for is not made.
            attempt.skipped_reason = "aborted before its change"
            await self._free_slot(key)
            return ABORTED_BEFORE_CHANGE
        if self.baseline is None:
            # The first checkpoint is the release before the incident: rung 3 and 5 go back to it.
            self.baseline = checkpoint
        # A retried change sends the same restart. In the opening's task, the time the workload
        # was read (the checkpoint it saved): that task run again has another.
        at = checkpoint.taken_at if opened else workflow.now()
        request = sent_after(self._asking(step, key, attempt.mode, at), checkpoint, self.policy)
        if step.rung is Rung.ROLLBACK and self.baseline.observed and request.to_revision is None:
            await self._skipped(attempt, key, NOTHING_TO_ROLL_BACK)
            await self._free_slot(key)
            return None
        limit = timedelta(seconds=self.policy.step_timeout_seconds)
        try:
            # The one step with an effect outside, retried a bounded number of times and
            # idempotent by the step key stamped on the object: a regular activity. Right
            # after the opening, first one try as a local activity in the opening's workflow
            # task (FIRST_TRY). A task lost with its worker runs both again: the opening
            # answers as its audit rows did, and the change finds its stamp.
            result, earlier = None, None
            if opened:
                first = min(limit, FIRST_TRY)
                try:
                    result = await self._first_try(request, first)
                except ACTIVITY_FAILED as exc:
                    if refused_for_good(exc):
                        raise
                    if wrote(exc) is not False:
                        # Out of time, its answer lost: a retry given up says it may be made.
                        why = answer_lost(exc, first)
                        dry = attempt.mode == "dry_run"  # said as sending nothing
                        earlier = maybe_applied(step.rung, why, request.target, dry_run=dry)
            if result is None:
                if earlier is not None:
                    request = request.model_copy(update={"after_lost_try": True})
                result = await self._change(request, limit, earlier)
                if result is None:
                    attempt.skipped_reason = ABORTED_BEFORE_CHANGE
                    await self._free_slot(key)
                    return ABORTED_BEFORE_CHANGE
        except ACTIVITY_FAILED as exc:
            self.reserved = None  # it may have written: the slot stays counted
            if earlier is not None and wrote(exc) is not True:
                # Given up, refused until spent or for good, a retry not knowing what it wrote
                # (refused at its read): the first try may have written, and it is said so.
                self._maybe_applied(attempt, earlier)
                return earlier
            attempt.skipped_reason = f"change failed: {cause_of(exc)}"
            return not_applied(step.rung, cause_of(exc))
        self._took(attempt, result)
        return result

    async def _skipped(self, attempt: Attempt, key: str, reason: str) -> None:
        attempt.skipped_reason = reason
        await self._audit(f"{key}/skipped", "skipped", {"reason": reason})

    # --- endings ------------------------------------------------------------------------

    async def _abort(self, aborted: AbortInput) -> Outcome:
        entry = await self._audit_abort(aborted)
        self._ended(aborted_by(aborted, verified="given_by" not in entry.detail))
        await self._finish("aborted")
        return "stop"

    # --- messages -----------------------------------------------------------------------

    @workflow.signal
    def abort(self, request: Any = None) -> None:
        # Any input: an abort sent by hand in Temporal (the Web UI's "Send a signal") with no
        # input, {}, a reason alone or a string was dropped by the SDK, undecodable, and the
        # run went on changing the cluster. Now it stops the run, unverified, as it was given.
        if self.aborted is not None or self.state in FINAL_STATES:
            return
        try:
            self.aborted = AbortInput.model_validate(request)
        except ValidationError:
            if self.abort_read_whole:
                self.aborted = abort_as_given(request)

    @workflow.update(name=JOIN)
    def join(self, request: JoinInput) -> None:
        self.joined(request)

    @join.validator
    def _join_before_the_outcome(self, request: JoinInput) -> None:
        # Past its outcome (decided in the workflow task that took its last reads, maybe
        # before this update came) the run reads no alert again: the alert is the next run's.
        if self.outcome or self.aborted is not None or self.state in FINAL_STATES:
            raise ApplicationError(
                f"{self.remediation_id} has decided its outcome", type=JOIN_TOO_LATE
            )

    @workflow.signal(name=JOINED)
    def joined(self, request: JoinInput) -> None:
        if request.user not in self.joined_by:
            self.joined_by.append(request.user)
        joined = request.alert
        if joined is not None and all(
            (a.source, a.metric) != (joined.source, joined.metric)
            for a in [self.alert, *self.joined_alerts]
        ):
            self.joined_alerts.append(joined)
            self.joined_senders.append(request.user)

    @workflow.query
    def status(self) -> RemediationStatus:
        # The run's own fields by their names (the rest of it ignored), and what comes of them.
        return RemediationStatus.model_validate(
            {
                **vars(self),
                "user": self.request.user,
                # Its own id's: a run started under an older id hash keeps it.
                "fingerprint": self.remediation_id.removeprefix("remediation/"),
                "mode_asked": self.request.mode,
                "score": self.card.score if self.card else None,
                "budget": self.card.budget if self.card else None,
            }
        )
