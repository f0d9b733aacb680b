"""The checks before a remediation's change: a person's approval and the gates.

Part of ``GradedRemediationWorkflow`` (workflows/remediation.py): approval waits for an answer
on the configured rung (the ``approve`` update takes it), the gates (change window, breaker,
rate limit) wait while one opens later.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal
from urllib.parse import quote

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from workflows.remediation_endings import RemediationEndings
from workflows.remediation_records import RECORD_RETRY, rung_said

with workflow.unsafe.imports_passed_through():
    from activities.remediation import RemediationActivities
    from activities.remediation_records import RemediationRecordActivities
    from ambient.domain.notify import DEADLINE, Message, Wording
    from ambient.remediation.ladder import MODES_ZH, Rung, rung_zh, step_key
    from ambient.remediation.outcomes import a_while, gate_closed, not_approved, refused
    from ambient.remediation.runs import (
        FINAL_STATES,
        ApprovalDecision,
        ApprovalInput,
        Attempt,
        AuditEntry,
        GateInput,
        Waiting,
    )
    from ambient.remediation.safety import Gate, may_approve
    from ambient.remediation.scores import PlannedStep

# The type of an update's refusal that is about the run's state, not the caller's rights.
STATE_CONFLICT = "StateConflict"


class RemediationSafety(RemediationEndings):
    """Approval and gates."""

    async def _approval(self, step: PlannedStep, key: str) -> bool:
        timeout = timedelta(seconds=self.policy.approval_timeout_seconds)
        self.awaiting_approval = step.rung
        self.waiting = Waiting(
            what="approval",
            rung=step.rung,
            until=workflow.now() + timeout,
            detail=f"approve_remediation({self.remediation_id!r}, approve=true|false)",
        )
        await self._set_state("waiting_approval")
        # The deadline is said in the reader's time zone by the notify activity (DEADLINE).
        # Where a person answers: its page (the link), a voice, its discussion. The MCP tool's
        # name was all an e-mail or a group robot's reader was told. "By voice" only to a
        # reader with a 小智 device, 接入点 or voice token (the notify activity knows): it was
        # told to one who had no way to speak to the product.
        title = f"Approval needed: {step.action} of {self.alert.service}"
        zh_title = f"待审批：{self.alert.service} {rung_zh(step.rung)}"
        wants = (
            f"Remediation `{self.remediation_id}` wants rung {int(step.rung)} ({step.action}) in "
            f"{self.mode} mode."
        )
        wants_zh = (
            f"修复 `{self.remediation_id}` 要执行{rung_zh(step.rung)}，模式："
            f"{MODES_ZH.get(str(self.mode), str(self.mode))}。"
        )
        link = f"/app/remediation?id={quote(self.remediation_id)}&run={workflow.info().run_id}"
        no_voice = Message(
            title=title,
            body=f"{wants} Approve or refuse it on its page or in its discussion before "
            f"{DEADLINE}, or it goes to a person.",
            zh=Wording(
                title=zh_title,
                body=f"{wants_zh}请在 {DEADLINE}前在它的页面或它的讨论里批准或拒绝，"
                "超时将转人工处理。",
            ),
            deadline=self.waiting.until,
            link=link,
        )
        await self._push(
            f"{key}/approval-request",
            title,
            f"{wants} Approve or refuse it on its page, by voice or in its discussion before "
            f"{DEADLINE}, or it goes to a person.",
            Wording(
                title=zh_title,
                body=f"{wants_zh}请在 {DEADLINE}前在它的页面、用语音或在它的讨论里批准或拒绝，"
                "超时将转人工处理。",
            ),
            deadline=self.waiting.until,
            link=link,
            no_voice=no_voice,
        )
        await self._discuss(
            f"{key}/approval-request",
            f"Rung {int(step.rung)} ({step.action}) needs approval. Reply here tagged approve "
            "or refuse (typed by you: a machine-inferred reply does not count).",
            ["approval"],
        )
        await self._wait(
            timeout,
            lambda: self.decision is not None,
            summary=f"approval of {rung_said(step.rung)} of {self.alert.service}",
        )
        if self.answers_read:  # an answer that came by its timeout is taken when verified
            await workflow.wait_condition(lambda: not self.answers_read)
        self.awaiting_approval, self.waiting = None, None
        if self.aborted:
            return False
        # An answer taken in the task its timer fired in was told "approved": it stands.
        if self.decision is None:
            # "45 min", not a timedelta's "0:45:00" (only the activity's input: replay holds).
            await self._audit(
                f"{key}/approval",
                "approval_timeout",
                {"rung": int(step.rung), "after": str(a_while(timeout))},
            )
            await self._hand_over(not_approved(step.rung, timeout))
            return False
        decision, self.decision = self.decision, None
        await self._audit(
            f"{key}/approval",
            "approval",
            decision.model_dump(mode="json"),
            actor=decision.approver,
        )
        if not decision.approve:
            await self._hand_over(refused(decision.approver, step.rung, decision.reason))
            return False
        return True

    async def _gates(
        self, step: PlannedStep, key: str, decided: Gate | None = None
    ) -> Literal["go", "skip", "stop"]:
        """Change window, breaker, rate limit: wait when it opens later, skip an open breaker."""
        # decided: the first check, already taken (by open_remediation).
        waited = 0.0
        check = 0
        while True:
            check += 1
            gate = await self._decided_or_checked(
                decided if check == 1 else None,
                RemediationActivities.check_remediation_gates,
                GateInput(
                    run_key=self.run_key,
                    key=f"{key}/gate/{check}",
                    cluster_id=self.alert.cluster_id,
                    service=self.alert.service,
                    rung=step.rung,
                    now=workflow.now(),
                ),
                f"the gates before {rung_said(step.rung)}, check {check}",
            )
            if gate.allowed:
                return "go"
            if gate.gate == "breaker":
                self.attempts.append(
                    Attempt(
                        attempt=step.attempt,
                        rung=step.rung,
                        key=key,
                        mode=self.mode or "dry_run",
                        skipped_reason=gate.reason,
                    )
                )
                return "skip"
            retry = gate.retry_after_seconds
            # A closed gate that names no window or limit to wait for is not waited for either.
            if (
                gate.gate is None
                or retry is None
                or waited + retry > self.policy.max_gate_wait_seconds
            ):
                await self._hand_over(gate_closed(gate))
                return "stop"
            await self._wait_shown(
                "waiting_gate", gate.gate, step.rung, retry, gate.reason, gate.said
            )
            waited += retry
            if self.aborted:
                return "stop"

    @workflow.update
    async def approve(self, answer: ApprovalInput) -> ApprovalDecision:
        """A person's answer to the pending approval (validated: waiting, permission), applied
        only where a door checked that user and recorded the answer (verify_approval)."""
        rung = self._awaited_rung()
        # The name an update gives is not taken as the approver's, whoever sent it in Temporal.
        await self._verified(answer, rung)
        decision = ApprovalDecision(
            rung=rung,
            approver=answer.approver,
            approve=answer.approve,
            reason=answer.reason,
            at=workflow.now(),
        )
        self.decision = decision
        self.approvals.append(decision)
        return decision

    async def _verified(self, answer: ApprovalInput, rung: Rung) -> None:
        """Refuse an answer no door recorded (anyone with the Temporal Web UI can send this
        update in any name), and one the run no longer takes once it was read."""
        update = workflow.current_update_info()
        self.answers_read += 1
        try:
            verified = await self._act(
                RemediationRecordActivities.verify_approval,
                AuditEntry(
                    run_key=self.run_key,
                    key=f"{step_key(self.run_key, rung)}/unverified/{update.id if update else ''}",
                    actor=answer.approver,
                    action="approval_unverified",
                    detail={
                        "rung": int(rung),
                        "approve": answer.approve,
                        "reason": answer.reason,
                        "token": answer.token,  # checked and dropped, never written
                    },
                ),
                # Its sender's name as given: the token is in the input alone.
                summary=f"verify the {'approval' if answer.approve else 'refusal'} of "
                f"{rung_said(rung)} sent as {answer.approver}",
                retry=RECORD_RETRY,
            )
        finally:
            self.answers_read -= 1
        if not verified:
            raise ApplicationError(
                f"{'approval' if answer.approve else 'refusal'} sent in Temporal, not through "
                "ambient-ops: the sender is not verified "
                f"(it gave the name {answer.approver!r})",
                non_retryable=True,
            )
        if self.aborted is not None:  # its sender is known once the abort is recorded
            await workflow.wait_condition(lambda: self.state in FINAL_STATES)
            raise _conflict(
                f"{self.remediation_id} has ended ({self.outcome}): rung {int(rung)} will not "
                "be applied"
            )
        self._validate_approve(answer.model_copy(update={"rung": rung}))

    @approve.validator
    def _validate_approve(self, answer: ApprovalInput) -> None:
        rung = self._awaited_rung()
        if answer.rung is not None and answer.rung != rung:
            when = "no longer waits for approval" if answer.rung < rung else "has not come yet"
            raise _conflict(
                f"rung {int(answer.rung)} of {self.remediation_id} {when}: rung {int(rung)} "
                f"({rung.name.lower()}) waits for approval; look at it before answering"
            )
        # Two answers can reach one workflow task before the ladder takes the first: the
        # second would overwrite the first after both callers were told theirs was taken.
        if self.decision is not None:
            taken = "approved" if self.decision.approve else "refused"
            raise _conflict(
                f"rung {int(rung)} of {self.remediation_id} was already answered: "
                f"{self.decision.approver} {taken} it"
            )
        mode = self.mode or "dry_run"
        # A refusal decides about the step as much as an approval does: the same bar.
        if not may_approve(answer.approver_permission, mode):
            verb = "approving" if answer.approve else "refusing"
            raise ValueError(
                f"{answer.approver} has rollback_permission {answer.approver_permission!r}; "
                f"{verb} a {mode} step needs {mode!r} or higher (an admin grants it)"
            )

    def _awaited_rung(self) -> Rung:
        # An update failed with an ApplicationError is refused without failing the task.
        if self.awaiting_approval is None:
            raise _conflict(
                f"remediation {self.remediation_id} is not waiting for approval "
                f"(state {self.state}); get_remediation shows what it waits for"
            )
        return self.awaiting_approval


def _conflict(message: str) -> ApplicationError:
    return ApplicationError(message, type=STATE_CONFLICT, non_retryable=True)
