"""The nightly alert triage's Temporal Schedule: made, updated in place, deleted."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from temporalio.api.common.v1 import Payload
from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError

from ambient import no_answer
from ambient.remediation.reads import RemediationReads
from ambient.remediation.safety import PERMISSION_ORDER
from ambient.remediation.triage import TriageInput
from ambient.remediation.views import (
    InvalidRemediationError,
    RemediationRefusedError,
    TriageSchedule,
)
from workflows.remediation_triage import AlertTriageWorkflow

TRIAGE_SCHEDULE = "alert-triage"
# Who made the triage Schedule, in its action's memo: the worker from
# AMBIENT_REMEDIATION_TRIAGE_USER (deleted at a start without it), or a person by hand (kept).
# One an earlier release made has none: it counts as the worker's.
MADE_BY, FROM_SETTINGS, BY_HAND = "triage_made_by", "settings", "hand"


class TriageScheduling(RemediationReads):
    """The triage Schedule; RemediationService scores, starts and steers runs."""

    async def schedule_triage(self, user: str | None = None) -> TriageSchedule:
        """The nightly triage Schedule as configured: at AMBIENT_REMEDIATION_TRIAGE_AT in the
        team's time zone, as ``user`` (by hand) or AMBIENT_REMEDIATION_TRIAGE_USER, a registered
        user. Made, or updated in place: the settings and the user given win, an operator's
        pause stays."""
        triage_user = user or self.settings.remediation_triage_user
        if not triage_user:
            raise InvalidRemediationError(
                "no triage user: set AMBIENT_REMEDIATION_TRIAGE_USER (its permission applies)"
            )
        try:
            # Nightly runs as nobody would start nothing, every night, unseen; as a user who may
            # not remediate, runs each refused at once.
            account = await self._user(triage_user)
            if PERMISSION_ORDER.get(account.rollback_permission, 0) == 0:
                raise RemediationRefusedError(
                    f"{triage_user} has rollback_permission 'none': the triage's remediations "
                    "would each be refused; an admin must grant dry_run or execute"
                )
        except RemediationRefusedError as refused:
            if user:
                raise
            raise RemediationRefusedError(f"AMBIENT_REMEDIATION_TRIAGE_USER: {refused}") from None
        hour, minute = (int(part) for part in self.settings.remediation_triage_at.split(":"))
        zone = self.settings.remediation_timezone
        schedule = Schedule(
            action=ScheduleActionStartWorkflow(
                AlertTriageWorkflow.run,
                TriageInput(user=triage_user),
                id=f"{TRIAGE_SCHEDULE}/run",
                task_queue=self.settings.temporal_task_queue,
                memo={MADE_BY: BY_HAND if user else FROM_SETTINGS},
            ),
            spec=ScheduleSpec(
                calendars=[
                    ScheduleCalendarSpec(hour=[ScheduleRange(hour)], minute=[ScheduleRange(minute)])
                ],
                time_zone_name=zone,
            ),
            # A night whose run waits (no worker up) is kept for after it, each run reading its
            # own night's day (not skipped: a whole day untriaged); a night the server missed
            # is run up to a day late, never a week's backlog at once.
            policy=SchedulePolicy(
                overlap=ScheduleOverlapPolicy.BUFFER_ALL, catchup_window=timedelta(days=1)
            ),
        )
        made = TriageSchedule(
            schedule=TRIAGE_SCHEDULE,
            created=True,
            user=triage_user,
            at=f"{hour:02d}:{minute:02d}",
            time_zone=zone,
            paused=False,
        )
        try:
            await self.client.create_schedule(TRIAGE_SCHEDULE, schedule)
            return made
        except ScheduleAlreadyRunningError:
            pass  # a restart, or another worker starting at once: updated in place
        kept = ScheduleState()

        def keeping_its_state(given: ScheduleUpdateInput) -> ScheduleUpdate:
            # Called again on a conflict (another start updating it): the latest state is kept.
            nonlocal kept
            kept = given.description.schedule.state
            return ScheduleUpdate(schedule=dataclasses.replace(schedule, state=kept))

        await self.client.get_schedule_handle(TRIAGE_SCHEDULE).update(keeping_its_state)
        return made.model_copy(update={"created": False, "paused": kept.paused})

    async def unschedule_triage(self) -> bool:
        """With no AMBIENT_REMEDIATION_TRIAGE_USER: the triage Schedule made from it is deleted
        (True); one made by hand (``ambient remediation triage``) stays."""
        handle = self.client.get_schedule_handle(TRIAGE_SCHEDULE)
        try:
            described = await handle.describe()
            action = described.schedule.action
            memo = action.memo if isinstance(action, ScheduleActionStartWorkflow) else None
            made_by = (memo or {}).get(MADE_BY)
            if isinstance(made_by, Payload):
                made_by = self.client.data_converter.payload_converter.from_payload(made_by, str)
            if made_by == BY_HAND:
                return False
            await handle.delete()
        except RPCError as exc:
            if no_answer.not_found(exc):  # none, or another worker starting deleted it first
                return False
            raise
        return True
