"""The change of a remediation step: its one try in the opening's workflow task, the regular
activity, an abort or a cancellation in Temporal while it is on the wire, and the rate-limit
slot it holds. Mixed into GradedRemediationWorkflow (workflows/remediation.py).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.exceptions import TimeoutError as ActivityTimeoutError
from temporalio.workflow import ActivityCancellationType

from workflows.remediation_records import ONE_TRY, RECORD_RETRY, cause_of, rung_said
from workflows.remediation_safety import RemediationSafety

with workflow.unsafe.imports_passed_through():
    from activities.remediation import RemediationActivities
    from ambient.activity_attempts import ACTIVITY_FAILED
    from ambient.refusals import Refusal
    from ambient.remediation.ladder import (
        PLANNED_BEFORE_ASKING,
        Mode,
        Rung,
        StepRequest,
        StepResult,
        skipped_as_paused,
        step_key,
    )
    from ambient.remediation.outcomes import CANCELLED, PREVIEW_LOST, maybe_applied
    from ambient.remediation.runs import (
        BEFORE_ASKING,
        CHANGE_RETRY,
        LOST_TRY,
        Attempt,
        CheckpointInput,
        Keyed,
        Opened,
    )
    from ambient.remediation.scores import PlannedStep

# The type of the failure a change given up after a try that may have written raises.
GIVEN_UP = "MaybeApplied"
# A run cancelled in Temporal (the Web UI's "Request Cancellation", `temporal workflow cancel`)
# cleans up before it closes as Cancelled: a change on the wire is cancelled and its answer
# taken, the rate-limit slot a step reserved and did not use is given back, the audit says it
# was cancelled and the run ends "aborted": its row is not left running, its slot counted and
# its audit silent. CANCELLED is its outcome.


class RemediationChange(RemediationSafety):
    """A step's change and what stops it."""

    def _asking(self, step: PlannedStep, key: str, mode: Mode, at: datetime) -> StepRequest:
        """The rung's change before its workload is read (``sent_after`` fills in the rest)."""
        restarted_at = at.isoformat() if step.rung is Rung.RESTART else None
        return StepRequest(
            remediation_id=self.run_key,
            rung=step.rung,
            target=self.alert.target(),
            mode=mode,
            key=key,
            checkpoint=self.baseline,
            restarted_at=restarted_at,
        )

    def _change_said(self, request: StepRequest) -> str:
        """A step's change as the Web UI labels it: "apply rung 1 (restart) to cart (execute)"."""
        return f"apply {rung_said(request.rung)} to {self.alert.service} ({request.mode})"

    def _plans_before_asking(self, rung: Rung) -> bool:
        """Whether the rung's change is planned before its approval is asked (by the patches
        this run was started under)."""
        if rung in (Rung.ISOLATE, Rung.FULL_ROLLBACK) and not self.last_rungs_planned:
            return False
        return rung in PLANNED_BEFORE_ASKING and self.read_before_asking

    async def _planned_before_asking(self, step: PlannedStep, key: str) -> StepResult | None:
        """What the rung's change would do now, its own plan run by its executor on a fresh read
        and nothing sent, before anyone is asked; None when the read failed (asked as before:
        the change reads again)."""
        mode = self.mode or "dry_run"
        try:
            read = await self._read_later(
                RemediationActivities.take_remediation_checkpoint,
                CheckpointInput(
                    run_key=self.run_key,
                    key=f"{key}{BEFORE_ASKING}",
                    mode=mode,
                    target=self.alert.target(),
                    asking=self._asking(step, key, mode, workflow.now()),
                    policy=self.policy,
                ),
                summary=f"plan {rung_said(step.rung)} of {self.alert.service} before asking",
                off_task=self.cluster_reads_regular,
            )
        except ACTIVITY_FAILED:
            return None
        if read.plan_failed is not None:
            return None
        if read.planned is None:  # a read recorded before reads carried it: paused alone
            paused = skipped_as_paused(read, step.rung)
            return StepResult(applied=False, detail="", skipped_reason=paused) if paused else None
        return read.planned

    async def _first_try(self, request: StepRequest, limit: timedelta) -> StepResult:
        """The change's one try as a local activity in the opening's workflow task.

        Shielded from the run's cancellation: cancelled, the try under way would be cut off
        mid-write, its answer (written or not) lost. It is let finish (``limit`` at most) and
        its answer is the attempt's before the run closes as Cancelled."""
        first = workflow.start_local_activity_method(
            RemediationActivities.apply_remediation_step,
            request,
            start_to_close_timeout=limit,
            retry_policy=ONE_TRY,
            summary=f"{self._change_said(request)}: its first try",
        )
        try:
            return await asyncio.shield(first)
        except asyncio.CancelledError:
            await self._change_cancelled(first, retried=False)
            raise

    async def _change(
        self,
        request: StepRequest,
        limit: timedelta,
        earlier: Refusal | None = None,
    ) -> StepResult | None:
        """The change as a regular activity; None when an abort stopped it before it was made.

        An abort while the change is still tried (an API server answering 503 for minutes)
        cancels its retries: it used to be made after the abort, the run then ending "aborted".
        An attempt under way is let finish (it sends no heartbeat to be told): a write made is
        reported as made; one the API server answered with a refusal was not made, and the
        server tries it no more. An attempt that ran out of time may have written (its answer
        lost): that stays a change that could not be applied, for a person to look at. So is a
        change given up after ``earlier``, what the first try that may have written says."""
        change = workflow.start_activity_method(
            RemediationActivities.apply_remediation_step,
            request,
            start_to_close_timeout=limit,
            retry_policy=CHANGE_RETRY,
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary=self._change_said(request),
        )
        try:
            await workflow.wait_condition(lambda: change.done() or self.aborted is not None)
        except asyncio.CancelledError:
            # The change's completion and the cancel in one workflow task: its answer is read
            # too (a write made was said not made, its slot given back, the audit's `written`
            # empty); cancelling a handle already done sends nothing.
            await self._change_cancelled(change, earlier=earlier)
            raise
        if change.done():
            return await change
        # Aborted while the change is still tried (retries on a busy API server): they are
        # cancelled, so the change is not made after the abort, once the API server answers.
        change.cancel()
        try:
            # Cancelled in Temporal meanwhile, the run reads the try's answer and closes
            # Cancelled: the cancel went unheard (the handle's task takes it) and the run
            # ended as the abort ends it, or, with the answer in one workflow task, the
            # answer went unread (a write made said not made, its slot given back).
            await workflow.wait_condition(change.done)
        except asyncio.CancelledError:
            await self._change_cancelled(change, retried=False, earlier=earlier)
            raise
        try:
            return await change
        except ActivityError as exc:
            # Cancelled between tries, or the try under way failed (a cancelled activity is
            # not tried again) with nothing written; one that may have written is the change
            # failing, for a person to look at. Handed over on it, the abort stopped the run.
            self.abort_stopped_change = True
            if wrote(exc) is False:
                if earlier is None:
                    return None
                # This try wrote nothing, the one before may have: the change failed as it.
                raise ApplicationError(str(earlier), type=GIVEN_UP) from exc
            raise

    async def _change_cancelled(
        self,
        change: workflow.ActivityHandle[StepResult],
        *,
        retried: bool = True,
        earlier: Refusal | None = None,
    ) -> None:
        """The run was cancelled while its change was tried: its retries are cancelled and the
        try under way let finish (as for an abort, ``_change``). A write made is the attempt's
        and uses the step's slot; one not made gives it back (``_cancelled``), unless a try
        before it may have written (``earlier``)."""
        attempt = self.attempts[-1]
        if retried:
            change.cancel()
        # The first try, a local activity, fails with its own error (not an ActivityError): a
        # refusal then escaped here and replaced the run's cancellation, and the run went on
        # to the regular change and up the ladder as if it had never been cancelled.
        try:
            result = await change
        except ACTIVITY_FAILED as exc:
            cause = exc.cause if isinstance(exc, ActivityError) else exc
            refused_for_good = isinstance(cause, ApplicationError) and cause.non_retryable
            if wrote(exc) is False and earlier is None and not refused_for_good:
                # Its retries cancelled after a try the API server refused (a 503): unwritten.
                attempt.skipped_reason = "cancelled before its change"
            elif earlier is not None and wrote(exc) is not True:
                self._maybe_applied(attempt, earlier)  # after a try that may have written
            else:
                # Refused for good (the activity gave the slot back if nothing was written; a
                # step refused halfway says what it wrote) or out of time (it may have written):
                # the activity's answer stands, and the slot is not the run's to give back.
                attempt.skipped_reason = f"change failed: {cause_of(exc)}"
                self.reserved = None
            return
        self._took(attempt, result)

    async def _cancelled(self) -> None:
        """Clean up after a cancellation requested in Temporal, before the run closes as
        Cancelled: the slot a step reserved and did not use, the audit (who asked is not known
        to the run: Temporal's history holds the identity its client gave), the run's end."""
        if not self.plan:
            # Cancelled before the run read its opening's answer: that opening may have been
            # made before, its workflow task lost after its first try (its slot, its change).
            await self._cancel_wrote(self._opening_read(), "its opening read")
        if self.reserved is not None:
            await self._cancel_wrote(self._free_slot(self.reserved), "its slot given back")
        cancelled = self._cancel_audit(
            {
                "state": self.state,
                "rung": int(self.next_rung) if self.next_rung else None,
                "waiting": self.waiting.what if self.waiting else None,
                # What the run changed before it was cancelled: a person may have to undo it.
                "written": [
                    f"rung {int(a.rung)} ({a.rung.name.lower()}): {a.detail}"
                    for a in self.attempts
                    if a.applied or a.maybe_applied
                ],
            }
        )
        await self._cancel_wrote(cancelled, "its cancel audited")
        self.awaiting_approval = None
        self._ended(CANCELLED)
        await self._cancel_wrote(self._finish("aborted"), "its end recorded")

    async def _opening_read(self) -> None:
        """What an opening the run never heard of recorded: its plan and the change its first
        try made (kept). A slot held with no change recorded stays counted: its try may not
        have run, or may have written with its answer lost, and no row tells them apart."""
        opened = await self._act(
            RemediationActivities.read_remediation_opening,
            Keyed(run_key=self.run_key, key=self.run_key),
            summary="read what the run's opening recorded",
            retry=RECORD_RETRY,
        )
        if opened is None:
            return
        self.card, self.plan, self.policy = opened.card, opened.plan, opened.policy
        if opened.made is not None:
            self._made_before(opened, opened.made)
        elif opened.gate is not None:
            if self._maybe_made_before(opened) is None:  # a dry run's: nothing sent
                self.reserved = step_key(self.run_key, self.plan[0].rung)

    def _made_before(self, opened: Opened, made: StepResult) -> Attempt:
        """The first rung's attempt, its change ``made`` by the try that followed an opening of
        this run whose workflow task was lost: as the try's answer, its slot counted."""
        attempt = self._first_attempt(opened)
        self._took(attempt, made)
        attempt.at = opened.made_at or attempt.at  # the change's time, not this task's
        unsent = self.mode == "dry_run" or (made.skipped_reason is not None and not made.applied)
        held = opened.gate is not None and opened.gate.allowed
        if unsent and held:
            # Nothing was sent (a dry run, a step already so): its try gave the slot back, and
            # the opening run again reserved it anew. The caller gives it back again.
            self.reserved = attempt.key
        return attempt

    def _maybe_made_before(self, opened: Opened) -> Attempt | None:
        """The first rung's attempt when a lost opening of this run held its slot and no change
        was recorded: its try may have written (its answer lost with the task) or never have
        run, and no row tells which. Said so, as a change whose answer was lost is, and its
        slot kept counted: a stalled worker's try may still write after the run ended. None
        for a dry run, which sends nothing (its slot is the caller's to give back)."""
        if self._first_mode(opened) == "dry_run":
            return None
        attempt = self._first_attempt(opened)
        attempt.at = workflow.now()
        target = self.alert.target()
        self._maybe_applied(attempt, maybe_applied(attempt.rung, LOST_TRY, target))
        return attempt

    def _first_mode(self, opened: Opened) -> Mode:
        permission = opened.permission
        return permission.mode if permission and permission.mode else self.request.mode

    def _first_attempt(self, opened: Opened) -> Attempt:
        """The first rung's attempt, in the mode its recorded permission gave."""
        step, self.mode = self.plan[0], self._first_mode(opened)
        self.baseline = opened.baseline or opened.checkpoint
        key = step_key(self.run_key, step.rung)
        attempt = Attempt(attempt=step.attempt, rung=step.rung, key=key, mode=self.mode)
        self.attempts.append(attempt)
        return attempt

    def _took(self, attempt: Attempt, result: StepResult) -> None:
        """The change's answer is the attempt's; the step's slot is the change's."""
        attempt.applied, attempt.already_applied = result.applied, result.already_applied
        attempt.detail, attempt.patch = result.detail, result.patch
        attempt.skipped_reason = result.skipped_reason
        attempt.at = workflow.now()
        self.reserved = None

    async def _post_step(self, attempt: Attempt) -> None:
        """The step's outcome on the alert's discussion."""
        await self._discuss(
            f"{attempt.key}/step",
            f"Rung {int(attempt.rung)} ({attempt.rung.name.lower()}, {attempt.mode}): "
            + (attempt.skipped_reason or attempt.detail or "applied"),
            ["step"],
        )

    def _maybe_applied(self, attempt: Attempt, given_up: Refusal) -> None:
        """A change given up after a try that may have written (``given_up``, what to check):
        said so, not "could not be applied", and its slot kept for a person to look at."""
        attempt.skipped_reason = f"change failed: {given_up}"
        attempt.maybe_applied = True
        attempt.detail = (
            "previewed, its answer lost ({why}): nothing was sent"
            if given_up.msgid == PREVIEW_LOST
            else "may have been made ({why}): check {object}"
        ).format(**given_up.values)
        self.reserved = None

    async def _free_slot(self, key: str) -> None:
        """Give back the rate-limit slot the step's gate reserved: it changed nothing."""
        await self._act(
            RemediationActivities.release_remediation_slot,
            Keyed(run_key=self.run_key, key=key),
            summary="give back the step's rate-limit slot",
            retry=RECORD_RETRY,
        )
        # Given back, not before: a cancel that cuts the giving back short (a database that
        # refuses the write, retried) gives it back as the run closes (``_cancelled``).
        self.reserved = None


def wrote(failure: ActivityError | ApplicationError | ActivityTimeoutError) -> bool | None:
    """Whether a change's try that failed wrote: False when cancelled before it sent anything,
    or refused saying so (the activity's ``changed``); True when it says it did (a step refused
    halfway names what it wrote); None when it may have (its answer lost: out of time, a
    dropped connection), which is no "before its change"."""
    cause = failure.cause if isinstance(failure, ActivityError) else failure
    if isinstance(cause, CancelledError):
        return False
    if isinstance(cause, ApplicationError) and tuple(cause.details[:1]) in ((False,), (True,)):
        return bool(cause.details[0])
    return None


def answer_lost(
    failure: ActivityError | ApplicationError | ActivityTimeoutError, limit: timedelta
) -> str:
    """Why a try that failed may have written, as a person reads it."""
    cause = failure.cause if isinstance(failure, ActivityError) else failure
    if isinstance(cause, ActivityTimeoutError):
        return f"its answer was lost after {limit.total_seconds():g} s"
    return cause_of(failure)
