"""Turning the event-driven agent on and off: one Temporal Schedule per user."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from pydantic import Field
from sqlalchemy import func, select
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
)
from temporalio.service import RPCError

from ambient import no_answer
from ambient.domain.configs import UserConfig
from ambient.domain.event_digest import DigestRun, agent_task
from ambient.domain.numbers import WholeNumber
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.models import Event
from ambient.storage.repositories import EventRepository
from workflows.event_agent import EventDigestWorkflow


class DigestSetting(UserConfig):
    enabled: bool = Field(description="let the agent read new events and decide what to push")
    every_minutes: WholeNumber = Field(default=15, ge=5, le=1440, description="how often it looks")


class DigestState(DigestSetting):
    """The setting as it stands: on or off, and whether an operator paused it."""

    paused: bool = Field(
        default=False,
        description="paused by an operator in the Temporal Web UI: nothing runs until resumed",
    )


class EventDigestService:
    def __init__(self, client: Client, settings: Settings, db: Database) -> None:
        self.client, self.settings, self.db = client, settings, db

    async def set(self, user: str, setting: DigestSetting) -> DigestSetting:
        handle = self.client.get_schedule_handle(agent_task(user))
        if not setting.enabled:
            try:
                await handle.delete()
            except RPCError as exc:
                if not no_answer.not_found(exc):
                    raise
            return setting
        every = setting.every_minutes
        schedule = Schedule(
            action=ScheduleActionStartWorkflow(
                EventDigestWorkflow.run,
                DigestRun(user=user, every_minutes=every),
                id=f"{agent_task(user)}/run",
                task_queue=self.settings.temporal_task_queue,
            ),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(minutes=every))]),
            # A slow run is never doubled; the next one picks up what it did not see.
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        )
        try:
            await handle.describe()
        except RPCError as exc:
            if not no_answer.not_found(exc):
                raise
            # Turned on: the marker first, so a write that fails leaves nothing on, and the
            # retry (which would find the schedule and only update it) starts from now too.
            await self._start_from_now(user)
        try:
            await self.client.create_schedule(agent_task(user), schedule)
        except ScheduleAlreadyRunningError:
            # On already: a new every_minutes is no new start (what came since is still told),
            # and an operator's pause in the Temporal Web UI stays.
            await handle.update(
                lambda given: ScheduleUpdate(
                    schedule=dataclasses.replace(schedule, state=given.description.schedule.state)
                )
            )
        return setting

    async def _start_from_now(self, user: str) -> None:
        """Turned on: the agent's first run reads on from the newest event, as from its own
        decision (its cursor). From an older decision or none, it pushed the person's events
        of months ago (its oldest first, 200 a run) as news."""
        async with self.db.writing() as session:
            newest = await session.scalar(select(func.max(Event.id)))
            await EventRepository(session).add(
                "agent.held",
                user=user,
                task=agent_task(user),
                payload={
                    "last_event_id": newest or 0,
                    "events": 0,
                    "reason": "turned on: events from now on are told",
                    "title": "",
                    "generated_by": "offline",
                },
            )

    async def get(self, user: str) -> DigestState:
        try:
            described = await self.client.get_schedule_handle(agent_task(user)).describe()
        except RPCError as exc:
            if no_answer.not_found(exc):
                return DigestState(enabled=False)
            raise
        intervals = described.schedule.spec.intervals
        minutes = int(intervals[0].every.total_seconds() // 60) if intervals else 15
        paused = described.schedule.state.paused
        return DigestState(enabled=True, every_minutes=minutes, paused=paused)
