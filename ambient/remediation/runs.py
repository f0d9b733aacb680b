"""What the remediation workflow, its activities and its callers exchange (sandbox-safe)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, Field
from temporalio.common import RetryPolicy

from ambient.domain.checks import MetricReading
from ambient.domain.configs import as_it_ran
from ambient.domain.workflow_input import WorkflowInput
from ambient.refusals import Said
from ambient.remediation.alerts import Alert, VerifySpec
from ambient.remediation.ladder import (
    Checkpoint,
    Mode,
    RolloutHealth,
    Rung,
    StepRequest,
    StepResult,
    WorkloadRef,
)
from ambient.remediation.safety import Gate, PermissionDecision, scale_target
from ambient.remediation.scores import AlertRule, PlannedStep, ScoreCard

# The triage's source (AlertTriageWorkflow's ``requested_by``); a watch's is its task id.
TRIAGE = "triage"

# Where a remediation is, as shown by get_remediation and the AmbientState search attribute.
RemediationState = Literal[
    "scoring",
    "planned",
    "checking",
    "waiting_approval",
    "waiting_gate",
    "applying",
    "settling",
    "verifying",
    "resolved",
    "handed_over",
    "budget_exhausted",
    "aborted",
    "refused",
]
FINAL_STATES = ("resolved", "handed_over", "budget_exhausted", "aborted", "refused")
# The others: a run's row is read as open by these (its state's index serves an IN, not a NOT IN).
OPEN_STATES = tuple(s for s in get_args(RemediationState) if s not in FINAL_STATES)
# The actor of what a Temporal message asked for with no door's record of that user asking
# (sent from the Web UI or a Temporal client by hand): no user name can spell it.
UNVERIFIED = "Temporal (sender not verified)"
# A step's gate when its slot was reserved already: by an earlier try of the same step (its
# opening's workflow task lost with its worker, the history holding neither).
SLOT_HELD = "slot already reserved by this step"
# Why the first rung's change may have been made when an opening the run never heard of held
# its slot and no change was recorded: its try may have written before it was lost, or never
# have run (a cancel heard as the opening answered reads the same rows).
LOST_TRY = "no record says whether its first try ran"


class RemediationPolicy(BaseModel):
    """Settings the workflow runs by, read once by an activity (history keeps them)."""

    executor: str = "dry_run"
    approval_from_rung: int = 3
    approval_timeout_seconds: float = 1800
    settle_seconds: int = 120
    max_gate_wait_seconds: float = 4 * 3600
    max_replicas: int = 20
    max_scale_step: int = 5
    step_timeout_seconds: float = 30


class RemediationInput(WorkflowInput):
    alert: Annotated[Alert, as_it_ran(Alert)]
    user: str
    mode: Mode = "dry_run"
    requested_by: str = ""


class Keyed(BaseModel):
    """An activity's input in one run: audited under ``run_key``, once per ``key``."""

    run_key: str
    key: str


class PermissionInput(Keyed):
    user: str
    asked: Mode
    executor: str
    rung: Rung


class StartPermissionInput(Keyed):
    """A start a watch asks for: its owner's permission read first (``run_key`` the run's id,
    its audit's subject; ``key`` the breach's)."""

    user: str
    asked: Mode
    requested_by: str


class GateInput(Keyed):
    cluster_id: str
    service: str
    rung: Rung
    # Workflow time: decisions (and the ledger) follow the workflow's clock, replayable.
    now: datetime


class CheckpointInput(Keyed):
    mode: Mode
    target: WorkloadRef
    # Read before the rung's approval is asked: its change (``sent_after`` this read, by the
    # run's ``policy``), planned by its executor in dry run, nothing sent (Checkpoint.planned).
    asking: StepRequest | None = None
    policy: RemediationPolicy | None = None


# The key's end of the read a rung makes before its approval is asked (one its plan would skip
# is not asked about), audited as what it is, not as the checkpoint before a change.
BEFORE_ASKING = "/checkpoint/before-asking"


def sent_after(step: StepRequest, read: Checkpoint, policy: RemediationPolicy) -> StepRequest:
    """The rung's change as the run sends it after reading the workload ``read``: from the run's
    baseline (``read`` when it has none yet), a rollback to the revision before it, a scale out
    to a count from ``read``."""
    baseline = step.checkpoint or read
    update: dict[str, Any] = {"checkpoint": baseline}
    if step.rung is Rung.SCALE_OUT:
        update["replicas"] = scale_target(read.replicas, policy.max_replicas, policy.max_scale_step)
    elif step.rung is Rung.ROLLBACK:
        update["to_revision"] = baseline.previous_revision
    return step.model_copy(update=update)


class OpenInput(BaseModel):
    """Scoring and the first rung's checks, taken in one activity (``open_remediation``)."""

    run_key: str
    remediation_id: str = ""
    alert: Alert
    user: str
    mode: Mode
    started_at: datetime | None = None
    # Workflow time, as GateInput.now: the first gate decides on the workflow's clock.
    now: datetime


class Opened(BaseModel):
    """The plan, and what was already decided for its first rung (None: not taken here)."""

    card: ScoreCard
    rule: AlertRule | None = None
    plan: list[PlannedStep]
    policy: RemediationPolicy
    permission: PermissionDecision | None = None
    # Only when the first rung needs no approval and the permission allowed it.
    gate: Gate | None = None
    # Only when that gate let the step go and the workload could be read.
    checkpoint: Checkpoint | None = None
    # The workload as read when the run opened, whatever its first rung waits for (None: not
    # read, or opened by an older release): the release before the incident, rungs 3 and 5's.
    baseline: Checkpoint | None = None
    # The first rung's change as recorded by a try made after an earlier opening of this run,
    # whose workflow task was lost (the history holds neither): the run's, not to be made again.
    made: StepResult | None = None
    # When that change's action row was written: the attempt's time, not the abort's task's.
    made_at: datetime | None = None

    @classmethod
    def recorded(cls, scored: dict[str, Any], planned: dict[str, Any]) -> Opened:
        """The score and plan an opening's ``scored`` and ``planned`` audit rows hold."""
        return cls(
            card=ScoreCard.model_validate(scored["card"]),
            rule=AlertRule.model_validate(planned["rule"]) if planned["rule"] else None,
            plan=[PlannedStep.model_validate(step) for step in planned["plan"]],
            policy=RemediationPolicy.model_validate(planned["policy"]),
        )


# How many periods of its metric a verification waits, one at a time, for a datapoint stamped
# after the change (a 300 s Cloud Monitor metric publishes the period that holds it only once
# that period is over): none by then, the change could not be verified.
AFTER_CHANGE_PERIODS = 3
# The shortest of those waits: Cloud Monitor publishes a datapoint a minute or more after its
# period ends, so a 10 s metric waited 10 s three times, 30 s, and was not verified for a
# datapoint on its way (three minutes in all, with none after the change by then).
AFTER_CHANGE_WAIT = timedelta(minutes=1)


def read_before(reading: MetricReading | None, changed_at: datetime | None) -> bool:
    """Whether ``reading`` is a datapoint stamped before the change: no word on the change."""
    return (
        changed_at is not None
        and reading is not None
        and reading.value is not None
        and reading.at is not None
        and reading.at < changed_at
    )


def before_the_change(reading: MetricReading) -> str:
    """Why a datapoint from before the change says nothing of it."""
    at = f" ({reading.at:%Y-%m-%d %H:%M:%S} UTC)" if reading.at else ""
    return f"no datapoint after the change: the newest{at} is from before it"


class VerifyInput(Keyed):
    mode: Mode
    target: WorkloadRef
    service: str
    rung: Rung
    verify: VerifySpec | None = None
    reading: MetricReading | None = None
    now: datetime
    # When the step's change was made: a reading stamped before it is no verdict (None: a run
    # started before this was known, its reading judged whatever its time).
    changed_at: datetime | None = None

    def stale(self) -> bool:
        return read_before(self.reading, self.changed_at)

    def unknown(self, health: RolloutHealth) -> str | None:
        """Why no verdict can be given (metric unread or from before the change, rollout not
        failed), or None."""
        # Not resolved is a finding; an unreadable metric is none, nor a value from before.
        reading = self.reading
        if self.verify is None or (
            reading is not None and reading.value is not None and not self.stale()
        ):
            return None
        if health.observed and not health.available:
            return None
        if reading is not None and self.stale():
            return before_the_change(reading)
        error = reading.error if reading else "no reading"
        return f"metric unreadable: {error}"

    def judge(self, health: RolloutHealth) -> Verification:
        """The verdict: the metric's condition on the reading, and the rollout's health."""
        metric_ok: bool | None = None
        value: float | None = None
        parts: list[str] = []
        if self.verify is not None:
            reading = self.reading
            if reading is None or reading.value is None:
                metric_ok = False
                parts.append(f"metric unreadable: {reading.error if reading else 'no reading'}")
            elif self.stale():
                # Only a failed rollout gets here: it decides, the value of before says nothing.
                parts.append(f"metric: {before_the_change(reading)}")
            else:
                value = reading.value
                metric_ok = self.verify.holds(value)
                parts.append(
                    f"metric {value:.15g} {'is' if metric_ok else 'is not'} healthy "
                    f"({self.verify.said()})"
                )
        if health.observed:
            parts.append(
                f"rollout {'available' if health.available else 'not available'}: {health.detail}"
            )
            rollout_ok = health.available
        else:
            parts.append(f"rollout not observed ({health.detail})")
            # Nothing to observe (dry run without a cluster): the metric alone decides.
            rollout_ok = metric_ok is not None
        resolved = bool(rollout_ok and metric_ok is not False)
        if self.mode == "dry_run" and self.verify is None:
            # A rollout available says a change came back, and a dry run made none: with no
            # metric read, nothing tells whether the alert is over. The preview climbs on.
            parts.append(
                "a dry run changes nothing, and no verify metric tells if the alert cleared"
            )
            resolved = False
        return Verification(
            resolved=resolved,
            metric_ok=metric_ok,
            value=value,
            rollout=health,
            detail="; ".join(parts),
        )


class Verification(BaseModel):
    resolved: bool
    metric_ok: bool | None = None
    value: float | None = None
    rollout: RolloutHealth
    detail: str


class AuditEntry(Keyed):
    actor: str
    action: str
    detail: dict[str, Any] = Field(default_factory=dict)
    # What a person asked for through a Temporal message, whose name the message only claims
    # (a Web UI signal carries no identity): the action under which a door recorded that user
    # asking, in this run. None: the actor is the product's own.
    asked: str | None = None


class HandOverInput(Keyed):
    user: str
    title: str
    body: str
    reason: str


class RecordInput(BaseModel):
    """The remediation's row in the app database (lists and stats outlive workflow history)."""

    run_key: str
    remediation_id: str
    user: str
    alert: Alert
    mode: Mode
    state: RemediationState
    score: int | None = None
    budget: int | None = None
    attempts: int = 0
    resolved_rung: int | None = None
    budget_exhausted: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class Attempt(BaseModel):
    attempt: int
    rung: Rung
    key: str
    mode: Mode
    applied: bool = False
    already_applied: bool = False
    skipped_reason: str | None = None
    # Given up (an abort, a cancel) after a try whose answer was lost: its write may have been
    # made (``detail`` says how to know).
    maybe_applied: bool = False
    detail: str = ""
    patch: dict[str, Any] | None = None
    verified: bool | None = None
    resolved: bool | None = None
    verification: str | None = None
    at: datetime | None = None


class ApprovalInput(BaseModel):
    """A person's answer to an approval request; permission is filled in server-side."""

    approver: str
    approver_permission: str
    approve: bool
    reason: str = Field(default="", max_length=1000)
    # The rung the answer was given on (None: the one waiting): not the next rung's answer.
    rung: Rung | None = None
    # The one-time token of the door's record of this answer (storage.record_asked): the run
    # takes no answer without an unspent one. None: sent by hand, or by an older release.
    token: str | None = None


class ApprovalDecision(BaseModel):
    rung: Rung
    approver: str
    approve: bool
    reason: str = ""
    at: datetime | None = None


class AbortInput(BaseModel):
    # A user's name at most (a longer one, sent by hand in Temporal, is cut: abort_as_given).
    by: str = Field(max_length=63)
    reason: str = Field(default="", max_length=1000)
    token: str | None = None  # as ApprovalInput.token: the name is verified only with it


def abort_as_given(given: object) -> AbortInput:
    """An abort sent in Temporal whose input is not an AbortInput (none, ``{}``, a reason
    alone, a string): the name and reason it gave as text, cut to their bounds; no token, so
    never taken as a user's."""
    fields = given if isinstance(given, dict) else {"reason": given}
    by, reason = fields.get("by"), fields.get("reason")
    return AbortInput(
        by=by[:63] if isinstance(by, str) else "",
        reason=reason[:1000] if isinstance(reason, str) else "",
    )


# A change and its checkpoint read wait out an API server that is down, throttling or
# overtaken by other writers for about two minutes (2, 4, 8, 16, then 30 s apart); then the run
# goes to a person. 30 s at most: a local activity's longer backoff would become a timer. The
# workflow gives it; the activity knows a change's last try by it.
CHANGE_RETRY = RetryPolicy(
    maximum_attempts=8,
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=["RemediationRefused", "InvalidStep"],
)

# The run's signal that its alert came again (sent by releases before the update below).
JOINED = "joined"
# The run's update that its alert came again (ambient/remediation/joins.py sends it by name):
# refused once the run's outcome is decided, when it would look at the alert no more.
JOIN = "join"
JOIN_TOO_LATE = "JoinTooLate"  # its refusal's type


def _name_cut(given: object) -> object:
    """A name given as text, cut to a user name's 63 characters."""
    return given[:63] if isinstance(given, str) else given


class JoinInput(BaseModel):
    # A user's name at most (the run keeps it in joined_by): a longer one sent by hand in
    # Temporal is cut, as an abort's name is.
    user: Annotated[str, BeforeValidator(_name_cut)]
    # The alert that joined (another source or metric on the workload): the run checks it too
    # before it calls itself resolved. None in signals sent before it was carried.
    alert: Alert | None = None


class JoinRequest(BaseModel):
    """A watch's or the triage's alert found its remediation's id taken by a run."""

    remediation_id: str
    user: str
    source: str
    alert: Alert | None = None
    # The joining alert's own key, the same for each ask of it (its starter's re-ask after a
    # cancel too): its ``deduplicated`` row is written once. None: the nightly triage's join, or
    # one of a run from before `join-keyed-by-check`, keyed by its activity.
    key: str | None = None


class Waiting(BaseModel):
    what: Literal["approval", "change_window", "rate_limit", "settle"]
    rung: Rung
    until: datetime | None = None
    detail: str = ""
    # The detail as a page says it in its reader's language (a gate's reason), when it has one.
    said: Said | None = None


class RemediationStatus(BaseModel):
    remediation_id: str
    run_key: str
    user: str
    alert: Alert
    fingerprint: str
    state: RemediationState
    mode_asked: Mode
    mode: Mode | None = None
    score: int | None = None
    budget: int | None = None
    card: ScoreCard | None = None
    plan: list[PlannedStep] = Field(default_factory=list)
    attempts: list[Attempt] = Field(default_factory=list)
    next_rung: Rung | None = None
    waiting: Waiting | None = None
    approvals: list[ApprovalDecision] = Field(default_factory=list)
    joined_by: list[str] = Field(default_factory=list)
    # Alerts of another source or metric on the workload that joined the run.
    joined_alerts: list[Alert] = Field(default_factory=list)
    outcome: str = ""
    # The outcome as a page says it in its reader's language, when it has those words.
    outcome_said: Said | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # Why the run did not answer (its worker busy or stopped): the status is then as recorded,
    # without what only the run holds (waiting, next_rung, attempts, joined_by). "": it did.
    unanswered: str = ""
