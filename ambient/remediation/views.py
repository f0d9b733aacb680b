"""What the remediation service answers and raises: views, summaries, the report, errors, and
the checks of what it is given (an alert or rule, a reason, an id).

RemediationError
 ├── InvalidRemediationError     bad alert or arguments: nothing was changed
 ├── RemediationRefusedError     the caller's permission does not allow it
 └── RemediationNotFoundError    no such remediation for this caller
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ambient.domain.field_errors import field_problems
from ambient.refusals import N_, Refusal
from ambient.remediation.ladder import Mode, Rung
from ambient.remediation.runs import ApprovalDecision, RemediationStatus
from ambient.remediation.scores import PlannedStep
from ambient.render import markdown_literal

M = TypeVar("M", bound=BaseModel)
# What a step's verification found, as the report and the CLI show it (None: not verified).
VERDICTS = {True: "resolved", False: "not resolved", None: ""}

# What an audit line of a run records, as its page, `ambient remediation show` and the report
# name it (with its time and actor); the detail is the API's and the MCP tool's.
AUDIT_ACTIONS = {
    "scored": N_("scored"),
    "planned": N_("planned"),
    "baseline": N_("baseline"),
    "permission": N_("permission"),
    "gate": N_("gate"),
    "checkpoint": N_("checkpoint"),
    "read_before_asking": N_("workload read before asking"),
    "action": N_("action"),
    "verification": N_("verification"),
    "cleared_waiting": N_("cleared while waiting"),
    "skipped": N_("skipped"),
    "abort": N_("abort"),
    "token_spent": N_("token spent"),
    "approval_unverified": N_("approval unverified"),
    "approval_timeout": N_("approval timeout"),
    "aborted": N_("aborted"),
    "cancelled": N_("cancelled"),
    "hand_over": N_("hand over"),
    "push_failed": N_("push failed"),
    "finished": N_("finished"),
    "deduplicated": N_("alert sent again"),
    "start_refused": N_("refused to start"),
}
# The door a person's answer or abort came through, named by the door itself (never guessed),
# kept in the door's audit record (`via`); as the page, `ambient remediation show` and the
# report say it after the record's action ("approval sent by voice").
Via = Literal["api", "web", "mcp", "cli", "voice", "discussion"]
VIA: dict[str, str] = {
    "api": N_("through the API"),
    "web": N_("on the web page"),
    "mcp": N_("through MCP"),
    "cli": N_("with the CLI"),
    "voice": N_("by voice"),
    "discussion": N_("by a reply in its discussion"),
}
# An answer's two records say which answer it was: the door's, sent, and the run's, taken.
ANSWERED = {
    "approve": (N_("approval sent"), N_("refusal sent")),
    "approval": (N_("approved"), N_("refused")),
}


# An abort the run heard as it ended otherwise (its detail's `ended`: resolved, refused, handed
# over by itself, `stopped_it` false): it stopped nothing. One that cut the change short and
# handed the run over (its change may have written) did stop it.
TOO_LATE = N_("aborted too late to stop it")
# A cancel that came as the run recorded its end (its detail's `after`): the run had ended.
CANCELLED_AFTER = N_("cancelled after the run ended")


def audit_via(detail: dict[str, Any]) -> str | None:
    """The msgid of the door an audit line's request came through (None: it names none)."""
    via = detail.get("via")
    return VIA.get(via, via) if isinstance(via, str) else None


def action_said(action: str, detail: dict[str, Any]) -> str:
    """An audit line's action and the door it came through, as the CLI and the report say it
    ("approval sent by voice")."""
    return " ".join(filter(None, (audit_action(action, detail), audit_via(detail))))


def audit_action(action: str, detail: dict[str, Any]) -> str:
    """The msgid an audit line's action is named by (an unknown action as written)."""
    if action == "aborted" and (
        detail.get("ended") not in (None, "aborted", "handed_over")
        or detail.get("stopped_it") is False
    ):
        return TOO_LATE
    if action == "cancelled" and detail.get("after"):
        return CANCELLED_AFTER
    if action in ANSWERED:
        return ANSWERED[action][0 if detail.get("approve") else 1]
    return AUDIT_ACTIONS.get(action, action)


class RemediationError(Exception):
    """A remediation operation failed; the message says what to do."""


# A start's retry-safe id, one rule and one wording at every door (API, MCP, CLI).
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
REQUEST_ID_FORM = "1-128 of A-Z a-z 0-9 . _ : - (a UUID will do)"
RETRY_SAFE = (
    f"optional retry-safe id, {REQUEST_ID_FORM}: the same request sent again is answered as "
    "the first was (started, or joined once)"
)


class InvalidRemediationError(RemediationError):
    """The request was invalid; nothing changed. ``field`` names what to fix, when one does."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class RemediationRefusedError(RemediationError):
    """The caller's permission does not allow this."""


class RemediationStateError(RemediationError):
    """The run is not in a state that allows this (finished, not waiting, answered)."""


class RemediationNotFoundError(RemediationError):
    """No remediation with that id is visible to the caller."""


class ScoreView(BaseModel):
    """What score_alert returns: the card, the budget and the plan it buys (nothing runs)."""

    score: int
    budget: int
    dimensions: dict[str, Any]
    reasons: list[str]
    generated_by: str
    manual: bool
    rule: str | None
    fingerprint: str
    remediation_id: str
    plan: list[PlannedStep]


class StartResult(BaseModel):
    remediation_id: str
    created: bool
    # The alert already had a live run: nothing started. Its state and mode are shown only to
    # those who may see that run (owner, admin, named approver).
    deduplicated: bool = False
    mode: Mode | None = None
    message: str
    state: str | None = None


class ApprovalAnswer(ApprovalDecision):
    """What every door answers to an approval or refusal: the run's decision, and the step it
    was about, named as the voice names it."""

    remediation_id: str
    rung_name: str
    mode: Mode | None
    dry_run: bool
    step: str

    def said(self) -> str:
        """One line: "approved step 3 (roll back, a dry run)"."""
        return f"{'approved' if self.approve else 'refused'} {self.step}"


class TriageSchedule(BaseModel):
    """The nightly triage Schedule as ``schedule_triage`` left it, created or updated."""

    schedule: str
    created: bool
    user: str
    at: str
    time_zone: str
    # Paused by an operator in the Temporal Web UI: a restart or an update keeps the pause.
    paused: bool

    def said(self) -> str:
        done = "created" if self.created else "updated"
        line = (
            f"schedule {self.schedule} {done}: nightly at {self.at} {self.time_zone} as {self.user}"
        )
        if self.paused:
            line += " (paused in the Temporal Web UI: it runs nothing until resumed there)"
        return line


class AuditLine(BaseModel):
    at: datetime
    actor: str
    action: str
    detail: dict[str, Any]


class RemediationView(RemediationStatus):
    audit: list[AuditLine] = Field(default_factory=list)


def report_markdown(view: RemediationView) -> str:
    """The remediation as a report page: alert, score, plan, attempts, the audit trail."""
    alert = view.alert

    def cell(value: object) -> str:
        # Alert text is shown as written: its images and links would load (or lead) from the
        # page anyone with the link opens, telling the alert's sender when it was read.
        return markdown_literal(str(value)).replace("|", "\\|").replace("\n", " ")

    lines = [
        f"# Remediation of {cell(alert.service)}",
        "",
        f"**{view.state}** — {cell(view.outcome or 'in progress')}",
        "",
        f"- alert: {cell(alert.metric or alert.source)} = {alert.value} "
        f"(threshold {alert.threshold}), source {cell(alert.source)}",
        f"- message: {cell(alert.message) or '—'}",
        f"- score {view.score}, budget {view.budget}, mode {view.mode or view.mode_asked}, "
        f"owner {view.user}",
        "",
        "## Plan and attempts",
        "",
        "| # | rung | result | verified |",
        "|---|---|---|---|",
    ]
    done = {a.attempt: a for a in view.attempts}
    for step in view.plan:
        attempt = done.get(step.attempt)
        result = (attempt.skipped_reason or attempt.detail) if attempt else "not reached"
        verified = VERDICTS[attempt.resolved] if attempt else ""
        lines.append(
            f"| {step.attempt} | {int(step.rung)} {step.rung.name.lower()} | "
            f"{cell(result)} | {verified} |"
        )
    if view.card is not None:
        lines += ["", "## Score", ""]
        lines += [f"- {cell(reason)}" for reason in view.card.reasons]
    lines += ["", "## Audit", "", "| time (UTC) | actor | action |", "|---|---|---|"]
    for line in view.audit:
        action = action_said(line.action, line.detail)
        lines.append(f"| {line.at:%Y-%m-%d %H:%M:%S} | {cell(line.actor)} | {action} |")
    return "\n".join(lines) + "\n"


class RemediationSummary(BaseModel):
    # The list row of one stored remediation (its RemediationRecord); a running one's state, mode
    # and attempts are where it is now (RemediationReads.list_page).
    model_config = ConfigDict(from_attributes=True)
    # Its row's number: the next page is the runs before the last one's (`before_id`).
    id: int
    remediation_id: str
    run_key: str
    user: str
    service: str
    alert_type: str
    mode: str
    state: str
    score: int | None
    budget: int | None
    attempts: int
    resolved_rung: int | None
    started_at: datetime
    finished_at: datetime | None


class RemediationPage(BaseModel):
    """A page of the remediation list (``RemediationReads.list_page``)."""

    runs: list[RemediationSummary]
    # Why a running run's state is as its row last stored it, not where the run is now
    # (Temporal's list could not be had); None: each is where it is.
    as_stored: str | None = None


def accepted(model: type[M], value: dict[str, Any] | M, what: str = "alert") -> M:
    """An alert (or rule) as given, or validated; else refused, field by field."""
    if isinstance(value, model):
        return value
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(field_problems(exc, what))
        raise InvalidRemediationError(f"invalid {what} — {problems}") from None


# What the run's inputs hold (ApprovalInput, AbortInput): the API and MCP bound it too.
MAX_REASON = 1000


def check_reason(reason: str) -> None:
    # The web form and the CLI pass any text: past the bound the run's input refused it with a
    # ValidationError (a 500 on the web form) after the run was looked up.
    if len(reason) > MAX_REASON:
        raise InvalidRemediationError(
            f"reason: at most {MAX_REASON} characters, not {len(reason)}", field="reason"
        )


# Longer than any run's id (remediation/ and the alert's fingerprint).
MAX_REMEDIATION_ID = 255


def check_id(rid: str) -> None:
    if len(rid) > MAX_REMEDIATION_ID:  # refused, not looked up or quoted back
        raise InvalidRemediationError(
            f"remediation_id: at most {MAX_REMEDIATION_ID} characters", field="remediation_id"
        )
    if not rid.startswith("remediation/"):
        raise RemediationNotFoundError(
            f"no remediation {rid!r}: ids look like remediation/<fingerprint>; "
            "call list_remediations"
        )


def not_found(rid: str) -> RemediationNotFoundError:
    # Someone else's run and no run at all in the same words: the id is a hash of the alert's
    # fields, and different words told a stranger which alerts were (or had been) remediated.
    return RemediationNotFoundError(
        f"no remediation {rid!r} among yours; call list_remediations to see yours"
    )


# A run's state and mode as the pages name them (the values stay the API's).
REMEDIATION_STATES = {
    "scoring": N_("scoring"),
    "planned": N_("planned"),
    "checking": N_("checking"),
    "waiting_approval": N_("waiting for approval"),
    "waiting_gate": N_("waiting for a gate"),
    "applying": N_("applying"),
    "settling": N_("settling"),
    "verifying": N_("verifying"),
    "resolved": N_("resolved"),
    "handed_over": N_("handed over"),
    "budget_exhausted": N_("budget exhausted"),
    "aborted": N_("aborted"),
    "refused": N_("refused"),
    "dry_run": N_("dry run"),
    "execute": N_("execute"),
}
# Each rung as the pages name it (its id, RESTART..., stays the API's).
RUNG_NAMES = {
    Rung.RESTART: N_("restart"),
    Rung.SCALE_OUT: N_("scale out"),
    Rung.ROLLBACK: N_("roll back"),
    Rung.ISOLATE: N_("isolate"),
    Rung.FULL_ROLLBACK: N_("full rollback"),
    Rung.HAND_OVER: N_("hand over"),
}


# What a page says an answer did, as every door names the step: "Approved" alone left the
# person to find which step it was.
APPROVED_STEP = N_("Approved step %(rung)s (%(action)s)")
REFUSED_STEP = N_("Refused step %(rung)s (%(action)s)")
A_DRY_RUN = N_("%(action)s, a dry run")


def answer_said(approve: bool, rung: int, mode: str | None) -> Refusal:
    """An answer as a page says it: "Approved step 1 (restart, a dry run)"."""
    action = Refusal(RUNG_NAMES[Rung(rung)])
    if mode == "dry_run":
        action = Refusal(A_DRY_RUN, action=action)
    return Refusal(APPROVED_STEP if approve else REFUSED_STEP, rung=rung, action=action)


def step_words(rung: Rung, mode: str | None) -> str:
    """A step as the voice and the approval's answer name it: "step 4 (isolate)",
    "step 1 (restart, a dry run)"."""
    dry = ", a dry run" if mode == "dry_run" else ""
    return f"step {int(rung)} ({RUNG_NAMES[Rung(rung)]}{dry})"


# An answer to a rung the run is not waiting on (a page left open while the run moved on).
ANSWER_TOO_LATE = N_(
    "approval not accepted: rung %(asked)s of %(run)s no longer waits for approval: rung "
    "%(waits)s (%(rung)s) waits for it now; look at it before answering"
)
ANSWER_TOO_EARLY = N_(
    "approval not accepted: rung %(asked)s of %(run)s has not come yet: rung %(waits)s "
    "(%(rung)s) waits for approval; look at it before answering"
)
REFUSAL_TOO_LATE = N_(
    "refusal not accepted: rung %(asked)s of %(run)s no longer waits for approval: rung "
    "%(waits)s (%(rung)s) waits for it now; look at it before answering"
)
REFUSAL_TOO_EARLY = N_(
    "refusal not accepted: rung %(asked)s of %(run)s has not come yet: rung %(waits)s "
    "(%(rung)s) waits for approval; look at it before answering"
)


def already_finished(rid: str, state: str) -> Refusal:
    # A Refusal, so a page says it in its reader's language, its state too.
    said = REMEDIATION_STATES.get(state)
    return Refusal(
        "%(run)s already finished (state %(state)s)",
        run=rid,
        state=Refusal(said) if said is not None else state,
    )
