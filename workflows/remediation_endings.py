"""How a remediation run ends: hand-over, its end recorded and pushed, a cancel's writes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any

from temporalio import workflow

from workflows import remediation_records
from workflows.remediation_records import RemediationRecords, cause_of

with workflow.unsafe.imports_passed_through():
    from activities.remediation_records import RemediationRecordActivities
    from ambient.activity_attempts import ACTIVITY_FAILED
    from ambient.domain.notify import Wording
    from ambient.refusals import Refusal, Said
    from ambient.remediation.ladder import Rung, rung_zh
    from ambient.remediation.outcomes import (
        A_DRY_RUN,
        alerts_joined,
        changes_made,
        in_chinese,
        left_isolated,
        of_a_dry_run,
        rungs_tried,
    )
    from ambient.remediation.runs import (
        UNVERIFIED,
        AbortInput,
        AuditEntry,
        HandOverInput,
        RemediationState,
    )
    from ambient.remediation.safety import REASONS_ZH
    from ambient.render import markdown_literal


class RemediationEndings(RemediationRecords):
    """The run's endings; RemediationRecords keeps its state and bookkeeping."""

    def _ended(self, outcome: str | Refusal) -> None:
        """How the run ended, in English and as a page says it (the same words): a dry run's
        end says it was one (``of_a_dry_run``)."""
        outcome = self._as_run(outcome)
        said = Said.of(outcome) if isinstance(outcome, Refusal) else None
        self.outcome, self.outcome_said = str(outcome), said

    def _as_run(self, reason: str | Refusal) -> str | Refusal:
        """An end as this run says it: a dry run's, said to be one that changed nothing."""
        return of_a_dry_run(reason, self.attempts, self.mode or self.request.mode)

    async def _hand_over(
        self, reason: str | Refusal, state: RemediationState = "handed_over"
    ) -> None:
        """Budget spent or stopped: the broadcast queue for the next briefing, and a push now
        (``reason`` a Refusal where the run built it: said in its reader's language)."""
        reason = self._as_run(reason)
        self._ended(reason)
        key = f"{self.run_key}/hand-over"
        title = f"Needs a person: {self.alert.service}"
        tried = rungs_tried(self.attempts, metric=self.alert.verify is not None)
        lead = f"Remediation `{self.remediation_id}` stopped: "
        said = (  # plain text, names from the alert's JSON in it (the briefing speaks it)
            f"{reason}. Alert: {self.alert.metric or 'alert'} on {self.alert.service} "
            f"(score {self.card.score if self.card else '?'}). Tried: {tried or 'nothing'}."
            + left_isolated(self.attempts)
            + alerts_joined(self.joined_alerts)
        )
        await self._act(
            RemediationRecordActivities.hand_over_remediation,
            HandOverInput(
                run_key=self.run_key,
                key=key,
                user=self.request.user,
                title=title,
                body=lead + said,
                reason=str(reason),
            ),
            summary=f"hand {self.remediation_id} over to a person",
            retry=remediation_records.RECORD_RETRY,  # read where tests set it
        )
        self.next_rung, self.waiting = None, None
        await self._set_state(state)
        # In Chinese, to whoever reads it: the isolation to undo first, then the reason and
        # the alerts' names as written (the rungs tried and the run's own reasons in Chinese).
        zh_tried = rungs_tried(self.attempts, zh=True, metric=self.alert.verify is not None)
        zh_said = (
            left_isolated(self.attempts, zh=True)
            + f"{in_chinese(reason)}。告警：{self.alert.service} 的 {self.alert.metric or '告警'}"
            f"（评分 {self.card.score if self.card else '?'}）。已尝试：{zh_tried or '无'}。"
            + alerts_joined(self.joined_alerts, zh=True)
        )
        zh = Wording(
            title=f"需要人工处理：{self.alert.service}",
            body=f"修复 `{self.remediation_id}` 已停止：" + markdown_literal(zh_said),
        )
        await self._push(key, title, lead + markdown_literal(said), zh)  # shown as written
        if self.push_cut is None:
            await self._finish(state)
            return
        # Cancelled as it pushed: its end recorded, then the cancel audited after it, and it
        # closes Cancelled, as a cancel during its end's writes does (_finish).
        # Each on its own: an end that failed for good skipped the cancel's audit.
        await self._cancel_wrote(self._finish(state), "its end recorded")
        detail = {"state": state, "after": "its end", "push": key}
        await self._cancel_wrote(self._cancel_audit(detail), "its cancel audited")
        raise asyncio.CancelledError(self.push_cut)

    def _refused(self, reason: str) -> tuple[str, str, Wording]:
        """What a run refused by its owner's permission before any change tells its user
        (title, body, its Chinese): a watch's breach, the nightly triage or a door started it,
        and it ended at once."""
        rid, service = self.remediation_id, self.alert.service
        colon = ":" if self.outcome_said and self.outcome_said.msgid == A_DRY_RUN else ""
        said = f"Remediation `{rid}`{colon} {self.outcome}. Nothing was changed."
        zh = Wording(
            title=f"修复被拒绝：{service}",
            body=f"修复 `{rid}` 被拒绝：{REASONS_ZH.get(reason, reason)}。未做任何改动。",
        )
        return f"Remediation refused: {service}", said, zh

    async def _cancel_audit(self, detail: dict[str, Any]) -> AuditEntry:
        """The run's cancel audited (no door recorded it: Temporal's own cancel)."""
        return await self._audit(f"{self.run_key}/cancelled", "cancelled", detail, actor=UNVERIFIED)

    async def _cancel_wrote(self, write: Awaitable[object], what: str) -> None:
        """One of a cancel's writes. Failed for good (after RECORD_RETRY's hour), the next are
        made all the same and the run closes Cancelled, not Failed by the write's error
        (cancel-closes-cancelled); a read of a run Temporal closed writes its row."""
        try:
            await write
        except ACTIVITY_FAILED as exc:
            workflow.logger.warning(
                "%s cancelled, %s failed: %s", self.run_key, what, cause_of(exc)
            )

    async def _finish(
        self,
        state: RemediationState,
        *,
        resolved: Rung | None = None,
        told: tuple[str, str, Wording] | None = None,
    ) -> None:
        """The run's end recorded; pushed to its user too when it was ``resolved`` at a rung,
        or as ``told`` (title, body, its Chinese).
        A cancel that comes meanwhile waits for these writes (retried for RECORD_RETRY's hour
        at most; a terminate closes the run at once), is audited, and closes it Cancelled."""
        ending = asyncio.create_task(self._finished(state, resolved, told))
        try:
            await asyncio.shield(ending)
        except asyncio.CancelledError:
            # Cancelled all the same where a write failed for good: a read of a run Temporal
            # closed writes its row (ambient/remediation/reads.py, _record_closed).
            with contextlib.suppress(*ACTIVITY_FAILED):
                await ending
                await self._cancel_audit({"state": state, "after": "its end"})
            raise

    async def _finished(
        self,
        state: RemediationState,
        resolved: Rung | None,
        told: tuple[str, str, Wording] | None = None,
    ) -> None:
        self.finished_at = workflow.now()
        self.next_rung, self.waiting = None, None
        await self._set_state(state)
        if self.aborted is not None and not self.abort_audited:
            await self._audit_abort(self.aborted, state)  # heard, and the run ended otherwise
        await self._audit(
            f"{self.run_key}/finished", "finished", {"state": state, "outcome": self.outcome}
        )
        await self._discuss(f"{self.run_key}/finished", f"{state}: {self.outcome}", ["outcome"])
        await self._record()
        if told is not None:
            await self._push(f"{self.run_key}/finished", *told)
            return
        if resolved is None:
            return
        rid, service, rung = self.remediation_id, self.alert.service, rung_zh(resolved)
        changed = [a for a in self.attempts if a.applied or a.already_applied]
        if not changed:
            # Nothing was changed (dry runs, steps with nothing to change): the alert cleared
            # on its own, not by the rung. A change made, at any rung, is said fixed.
            dry = all(a.mode == "dry_run" for a in self.attempts)
            title = f"Alert cleared: {service}"
            # A dry run's outcome says so itself ("a dry run, nothing was changed: the alert
            # cleared at rung 1 (restart)").
            body = "" if dry else "; nothing was changed"
            zh = Wording(
                title=f"告警已恢复：{service}",
                body=f"修复 `{rid}`（{'演练，' if dry else ''}未做改动）：告警在{rung}后恢复。",
            )
        elif changed[-1] is not self.attempts[-1]:
            # Cleared at a rung that changed nothing (a dry run after a change made for real,
            # the owner's permission lowered meanwhile): it names the rungs that changed it.
            dry = self.attempts[-1].mode == "dry_run"
            made, made_zh = changes_made(changed) or ("", "")
            title = f"Remediated: {service}"
            nothing = "a dry run that changed nothing" if dry else "which changed nothing"
            body = f", {nothing}; {made}"
            zh = Wording(
                title=f"已修复：{service}",
                body=f"修复 `{rid}`：告警在{rung}后恢复，该级{'是演练，' if dry else ''}未做改动；"
                f"做过的改动是{made_zh}。",
            )
        else:
            title, body = f"Remediated: {service}", ""
            zh = Wording(title=f"已修复：{service}", body=f"修复 `{rid}` 已在{rung}解决。")
        colon = ":" if self.outcome_said and self.outcome_said.msgid == A_DRY_RUN else ""
        said = f"Remediation `{rid}`{colon} {self.outcome}{body}."
        await self._push(f"{self.run_key}/finished", title, said, zh)

    async def _audit_abort(self, aborted: AbortInput, ended: str | None = None) -> AuditEntry:
        """The abort the run heard, audited once by the run's key (a retry or a replay finds
        it): under the name its signal gave only where a door checked that user and recorded
        the request ("abort"); anyone with the Temporal Web UI can signal one in any name.
        ``ended``: how the run ended where the abort did not end it (resolved, refused...)."""
        said: dict[str, object] = {"ended": ended} if ended else {}
        if ended == "handed_over":
            said["stopped_it"] = self.abort_stopped_change
        entry = await self._audit(
            f"{self.run_key}/abort",
            "aborted",
            aborted.model_dump() | said,
            actor=aborted.by,
            asked="abort",
        )
        self.abort_audited = True
        return entry
