"""A remediation's verification: the metric its alert's verify block reads, read after the
change (the next period's datapoint when the one read is older than the change), and the
verdict; the alerts joined to the run read each by its own block."""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

from workflows.remediation_change import RemediationChange
from workflows.remediation_records import cause_of, rung_said

with workflow.unsafe.imports_passed_through():
    from activities.remediation import RemediationActivities
    from activities.watches import WatchActivities
    from ambient.activity_attempts import ACTIVITY_FAILED
    from ambient.domain.checks import MetricReading, ReadMetricInput
    from ambient.domain.notify import Wording
    from ambient.remediation.alerts import VerifySpec
    from ambient.remediation.ladder import Mode, rung_zh
    from ambient.remediation.outcomes import (
        A_DRY_RUN,
        alert_named,
        changes_made,
        cleared_isolated_before,
        cleared_waiting,
        left_isolated,
    )
    from ambient.remediation.runs import (
        AFTER_CHANGE_PERIODS,
        AFTER_CHANGE_WAIT,
        CHANGE_RETRY,
        CheckpointInput,
        Verification,
        VerifyInput,
        read_before,
    )
    from ambient.remediation.scores import PlannedStep


class RemediationVerify(RemediationChange):
    """The verify block's reads and the step's verdict."""

    async def _joined_still_open(self) -> str:
        """The joined alerts (another source or metric on the workload) not known to be over,
        each read by its own verify block; "" when all are healthy, or none joined."""
        if not self.joined_alerts:
            return ""
        open_ones: list[str] = []
        for joined, sender in zip(self.joined_alerts, self.joined_senders, strict=True):
            name = alert_named(joined)
            if joined.verify is None:
                open_ones.append(f"{name} (no verify block: nothing tells it is over)")
                continue
            # Read with the rights of both the run's user and its sender (a signal names any
            # sender): a secret either may not use is refused, as at the run's own verify.
            reading = await self._read(joined.verify, name, self.request.user, sender)
            if reading.value is None:
                open_ones.append(f"{name} (unreadable: {reading.error or 'no value'})")
            elif not joined.verify.holds(reading.value):
                open_ones.append(f"{name} ({reading.value:.15g}: not healthy)")
        return ", ".join(open_ones)

    async def _read(
        self, verify: VerifySpec, name: str, owner: str, sender: str | None = None
    ) -> MetricReading:
        """The metric a verify block reads (of the alert ``name``, as the Web UI labels the
        read); a failed read is its error, not the run's."""
        source = verify.source.model_dump(mode="json")
        read = ReadMetricInput(source=source, retry_failures=True, owner=owner, sender=sender)
        try:
            # A read that fails in a way that may pass is read again (READ_RETRY): one 503
            # must not hand the run over. A slow source held the task for 48 s: off it. The
            # try in the task is one of READ_RETRY's reads, said in the count of those failed.
            again = read.model_copy(update={"tried": 1})
            return await self._read_later(
                WatchActivities.read_metric,
                read,
                summary=f"read the verify metric of {name}",
                off_task=self.reads_regular,
                again=again,
                final=False,
            )
        except ACTIVITY_FAILED as exc:
            return MetricReading(error=cause_of(exc))

    async def _cleared_meanwhile(self, step: PlannedStep, key: str, asked_at: datetime) -> bool:
        """After a rung's wait (an approval, a change window: minutes, hours), whether its
        alert is over by a reading newer than the wait, its joined alerts too: then the run
        ends resolved with no change made, its slot given back, its user told, crediting no
        rung (an approval given after the alert cleared rolled back a release all the same,
        counted as the rung's success). Not with the service isolated, by this run or one
        before: no traffic reaches it, which clears any error rate (the rung goes on)."""
        verify = self.alert.verify
        if verify is None or left_isolated(self.attempts):
            return False
        if cleared_isolated_before(step.rung, self.baseline) is not None:
            return False
        reading = await self._read(verify, self.alert.service, self.request.user)
        if reading.value is None or read_before(reading, asked_at):
            return False
        if not verify.holds(reading.value) or await self._joined_still_open():
            return False
        if self.cleared_with_rollout and not await self._rollout_serves(key):
            return False
        await self._audit(
            f"{key}/cleared-waiting",
            "cleared_waiting",
            {"rung": int(step.rung), "value": reading.value},
        )
        if self.reserved == key:  # the gate's slot, for a change not made
            await self._free_slot(key)
        self._ended(cleared_waiting(step.rung))
        rid, service = self.remediation_id, self.alert.service
        waited = f"告警在{rung_zh(step.rung)}等待审批或变更窗口时、该级变更之前已恢复"
        if made := changes_made(self.attempts):  # by an earlier rung: named, as `_finished` does
            title, tail = f"Remediated: {service}", f"; {made[0]}"
            zh = Wording(
                title=f"已修复：{service}", body=f"修复 `{rid}`：{waited}；做过的改动是{made[1]}。"
            )
        else:  # a dry run's outcome says it changed nothing itself ("a dry run, nothing …")
            dry = self.outcome_said is not None and self.outcome_said.msgid == A_DRY_RUN
            title, tail = f"Alert cleared: {service}", "" if dry else "; nothing was changed"
            zh = Wording(title=f"告警已恢复：{service}", body=f"修复 `{rid}`：{waited}，未做改动。")
        said = f"Remediation `{rid}`: {self.outcome}{tail}."
        if self.cleared_told_with_end:
            # Told with its end, as a run resolved at a rung is: a cancel meanwhile waits for
            # it, is audited, and closes the run Cancelled.
            await self._finish("resolved", told=(title, said, zh))
        else:  # pushed after its end: a cancel meanwhile cut the push, the run Completed
            await self._finish("resolved")
            await self._push(f"{self.run_key}/finished", title, said, zh)
        return True

    async def _rollout_serves(self, key: str) -> bool:
        """Whether a pod of the workload serves now: an error rate reads healthy when none
        does at all. Unread, nothing says the alert is over."""
        checked = CheckpointInput(
            run_key=self.run_key,
            key=f"{key}/cleared-rollout",
            mode=self.mode or "dry_run",
            target=self.alert.target(),
        )
        try:
            health = await self._read_later(
                RemediationActivities.read_rollout,
                checked,
                summary=f"read the rollout of {self.alert.service}",
                off_task=self.cluster_reads_regular,
            )
        except ACTIVITY_FAILED:
            return False
        # Nothing to observe (a dry run without a cluster): the metric alone decides. A pod
        # serving, even of a rollout under way, lets the metric say the alert is over.
        return not health.observed or health.ready_replicas > 0

    async def _verify(
        self, step: PlannedStep, key: str, mode: Mode, changed_at: datetime
    ) -> Verification | None:
        """The step's verdict; None when an abort came while it waited for a datapoint."""
        await self._set_state("verifying")
        verify = self.alert.verify
        service = self.alert.service
        reading = None
        if verify is not None:
            reading = await self._read(verify, service, self.request.user)
        if mode == "dry_run":
            changed = None
        else:
            changed = changed_at
            period = getattr(verify.source, "period", 0) if verify is not None else 0
            # A datapoint stamped before the change is none of its doing: the next period's is
            # read (a minute on at least), up to AFTER_CHANGE_PERIODS of them; still none, the
            # step is not verified.
            for _ in range(AFTER_CHANGE_PERIODS):
                if verify is None or not period or not read_before(reading, changed):
                    break
                await self._wait(
                    max(timedelta(seconds=period), AFTER_CHANGE_WAIT),
                    summary=f"a datapoint of {service} after {rung_said(step.rung)}",
                )
                if self.aborted:
                    return None
                reading = await self._read(verify, service, self.request.user)
        return await self._read_later(
            RemediationActivities.verify_remediation,
            VerifyInput(
                run_key=self.run_key,
                key=f"{key}/verify",
                mode=mode,
                target=self.alert.target(),
                service=self.alert.service,
                rung=step.rung,
                verify=self.alert.verify,
                reading=reading,
                now=workflow.now(),
                changed_at=changed,
            ),
            summary=f"verify {rung_said(step.rung)} of {service}",
            # Its cluster read and its breaker write wait out an outage as the change did: a
            # database hiccup must not hand over a run as "could not be verified".
            off_task=self.cluster_reads_regular,
            retry=CHANGE_RETRY,
        )
