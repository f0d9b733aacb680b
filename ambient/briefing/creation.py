"""Creating a daily briefing (`BriefingService`'s, whose reads it uses): a new run, the same
config finding the running one, or a new config replacing it after its hand-over (what it
gave and prepared today, and its pause, carried over).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from temporalio.client import Client, WorkflowUpdateFailedError, WorkflowUpdateStage
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from ambient import no_answer, request_deadline, temporal
from ambient.briefing import records
from ambient.briefing.config import BriefingConfig, midnight_ending
from ambient.briefing.errors import (
    BriefingError,
    BriefingNotFoundError,
    InvalidBriefingError,
    invalid_config,
    parse_config,
)
from ambient.briefing.logs import check_cls_keys, check_cls_query, check_log_path
from ambient.briefing.models import (
    KIND,
    BriefingCarry,
    BriefingRef,
    BriefingRun,
    BriefingStatus,
    news_task,
)
from ambient.clients.tencent.client import TencentCloud
from ambient.domain.configs import STORED
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.models import User
from ambient.storage.repositories import SnapshotRepository
from ambient.storage.users import registered
from ambient.watches.configs import task_id_for
from ambient.watches.inputs import ConfigError, ConfigOvertaken, check_destinations
from ambient.watches.summaries import briefing_summary
from workflows.daily_briefing import HAND_OVER_HOLD, HANDED_OVER, DailyBriefingWorkflow

# How long a create waits for a stopped run to finish before asking to be sent again: a push
# cut short by the delete hears it at its next heartbeat (within ~8 s: 0.8 of the 10 s
# heartbeat timeout, workflows/daily_briefing_prepare_push.py) and is then recorded.
FINISHING_WAIT = 15.0
# Deleted, its run still finishing (a preparation or push under way): gone already.
DELETED = "the daily briefing of %r was deleted; create one with create_daily_briefing"
NOT_REPLACED = "the new config did not reach Temporal in time; try again"
# The run is handed over to another request's new config (or to one cut short: its hold lasts
# HAND_OVER_HOLD), and only one replaces it at a time.
BEING_CHANGED = "the daily briefing is being changed by another request; try again in half a minute"
# How long a merged update waits for that other request's new run, to merge over it (within
# its request's deadline): as long as that request may take to replace it (half the hold; on
# a loaded host, 3 s was too short and both of two updates at once were told to try again),
# and how often it looks.
HELD_WAIT = HAND_OVER_HOLD.total_seconds() / 2
HELD_LOOK = 0.2
# A create that does not replace (the create_* tools' rule): update_task changes the config.
RUNS_OTHER = (
    "the daily briefing %r already runs with another config; call update_task with the fields "
    "to change (the others are kept), or delete_task first to start it anew"
)
T = TypeVar("T")


def _with_user_defaults(user: User, config: dict[str, Any]) -> dict[str, Any]:
    """Fields left out come from the user's settings (time zone, briefing window, language)."""
    given = {k: v for k, v in config.items() if v is not None}
    defaults = {
        "timezone": user.timezone,
        "prepare_at": user.briefing_prepare_at,
        "window_start": user.briefing_window_start,
        "window_end": user.briefing_window_end,
        "language": user.language,
    }
    return {**{k: v for k, v in defaults.items() if v}, **given}


class Creation:
    """The create of `BriefingService`, whose client, settings and reads it uses."""

    client: Client
    settings: Settings
    db: Database
    tencent: TencentCloud

    if TYPE_CHECKING:

        async def read_status(
            self, user: str, *, ended: bool = False, quiet: bool = False
        ) -> BriefingStatus | None: ...

        async def _answer(
            self, ask: Awaitable[T], workflow_id: str, *, quiet: bool = False
        ) -> T | None: ...

    async def create(
        self,
        user: str,
        config: dict[str, Any] | BriefingConfig,
        *,
        replace_only: bool = False,
        replace: bool = True,
        based_on: dict[str, Any] | None = None,
    ) -> BriefingRef:
        """Start the user's daily briefing; the same config again finds the running one.
        ``replace_only`` (an update): a briefing deleted meanwhile is not started again.
        ``replace`` False (the task doors' create): another config of a running briefing is
        refused, not put in its place (an update replaces it). ``based_on`` (a merged
        update): the config it was merged over; another found running (read, or handed
        over) raises ConfigOvertaken, nothing replaced.
        Inside a request (a task's update), its deadline bounds every wait."""
        row = await registered(self.db, user, InvalidBriefingError)
        if not isinstance(config, BriefingConfig):
            config = parse_config(_with_user_defaults(row, config))
        # Checked here, not first at the morning's read: a path with nothing there too.
        await check_log_path(config.log_source, self.settings.log_dir, admin=row.is_admin)
        check_cls_keys(config.log_source, self.tencent)
        try:
            # At creation and update like a web monitor's URLs, not first at the morning's fetch.
            await check_destinations(config, self.settings)
        except ConfigError as exc:
            errors = [(location[1:], message) for location, message in exc.errors]  # no "config."
            raise invalid_config(errors, exc.inputs[0]) from None
        return await self._create(user, config, replace_only, replace=replace, based_on=based_on)

    async def follow_schedule(self, user: str, schedule: dict[str, str]) -> BriefingRef | None:
        """The running briefing takes ``schedule`` (the user's settings' time zone, preparation
        and window, as the config names them): replaced as an update replaces it, what it gave
        and prepared today and its pause carried over. None when no briefing runs (or it was
        deleted meanwhile) or it keeps that schedule already. Its other fields (log source,
        news) are not checked again: the user said nothing new of them."""
        current = await self.read_status(user)
        if current is None or current.stopping:
            return None
        config = current.config.model_copy(update=schedule)
        if config == current.config:
            return None
        # The config's own rules (a window that ends after it starts, prepared by its start).
        config = BriefingConfig.model_validate(config.model_dump(), context=STORED)
        try:
            return await self._create(user, config, replace_only=True)
        except BriefingNotFoundError:
            return None

    async def _create(
        self,
        user: str,
        config: BriefingConfig,
        replace_only: bool,
        *,
        replace: bool = True,
        based_on: dict[str, Any] | None = None,
    ) -> BriefingRef:
        for _ in range(2):
            try:
                return await self._start(
                    user, config, replace_only, replace=replace, based_on=based_on
                )
            except WorkflowAlreadyStartedError:
                # Another create started it between our read and our start: decide again
                # against it, as if it had come first (the same config finds it, another
                # replaces it and keeps its pause).
                continue
            except TimeoutError:  # handed over, not replaced in time: the run speaks again
                raise BriefingError(NOT_REPLACED) from None
        raise BriefingError("the daily briefing is being created by another request; try again")

    async def _start(
        self,
        user: str,
        parsed: BriefingConfig,
        replace_only: bool,
        *,
        replace: bool = True,
        based_on: dict[str, Any] | None = None,
    ) -> BriefingRef:
        task_id = task_id_for(user)
        policy = WorkflowIDConflictPolicy.FAIL
        # A merged update's run, read before its status: a newer run (another update's) read
        # after the status was handed over in its place, held, and its retry then refused by
        # its own hold ("being changed by another request" when nothing else changed it).
        read_first = (
            (await records.described(self.client, task_id))[1] if based_on is not None else None
        )
        current = await self.read_status(user)
        deadline = None
        replaced: str | None = None  # the run id of the run replaced
        created: datetime | None = None  # a replaced run's creation, which the new run keeps
        if replace_only and (current is None or current.stopping):
            raise BriefingNotFoundError(DELETED % user)
        _still_based_on(current, based_on)
        if current is not None and current.stopping:
            # A stopped run still finishing (recording today's greeting) is no briefing to
            # find or replace: wait for it to end, then start anew from what it stored.
            if not await temporal.ended_within(
                self.client.get_workflow_handle(task_id), FINISHING_WAIT
            ):
                raise BriefingError(
                    "the stopped daily briefing is still finishing; create it again in a minute"
                )
            current = None
        if current is None:
            # A CLS filter tried when it is set, before anything changes (a purge, a hand-over):
            # one CLS refuses failed every morning's read, and nobody was told what to fix.
            await check_cls_query(parsed.log_source, self.tencent)
            carry = await records.given_before(self.client, self.db, user)
            # A new life: its news pages are compared from its own first look, not with the
            # pages a deleted briefing kept (they are kept by task id, every life's). Before
            # the start: its run checks them at once when it prepares at once.
            async with self.db.writing() as session:
                await SnapshotRepository(session).purge_rounds(news_task(task_id))
        else:
            if current.config == parsed:
                state = "paused" if current.paused else "active"
                return BriefingRef(task_id=task_id, state=state, created=False, config=parsed)
            if not replace:
                raise InvalidBriefingError(RUNS_OTHER % task_id)
            if current.config.log_source != parsed.log_source:
                await check_cls_query(parsed.log_source, self.tencent)  # as for a new one
            # A new config replaces the running one; today's "already given" and a pause
            # carry over (changing when to speak is not asking to speak again). Read again
            # as the run hands over: a greeting since the read above is in it, and the run
            # answers later ones (this request may die before it replaces the run): the new
            # run reads one it spoke from its history (BriefingCarry.replaced_run). The hold
            # keeps other hand-overs out; the run is replaced within half of it or not at all.
            created, replaced = await records.described(self.client, task_id)
            deadline = asyncio.get_running_loop().time() + HAND_OVER_HOLD.total_seconds() / 2
            deadline = min(deadline, request_deadline.deadline() or deadline)
            # A merged update hands over the run it read, no other: one that came since is
            # another update's, not to be held (its merge would find the hold its own).
            read_run = read_first if based_on is not None else None
            try:
                handed_run, handed = await self._hand_over(user, read_run)
            except _HeldByAnother:
                await self._replaced_by_another(user, based_on)
            _in_time(deadline)  # its hand-over took it all: the run stays, nothing sent
            if handed is None and read_run is not None:
                # Ended under it or before it: replaced by another update, unless none runs.
                if (await records.described(self.client, task_id))[1] != read_run:
                    raise ConfigOvertaken
            current, replaced = handed or current, handed_run or replaced
            # Another update's run may have come between the read and the hand-over (its
            # hold ends by itself; the update merges over that run's config and hands it over).
            _still_based_on(current, based_on)
            if handed is None and replaced is not None:
                current = await records.greeted_since(
                    self.client, current, task_id, replaced, deadline
                )
            if replace_only and (
                current.stopping  # deleted before it handed over
                or (
                    handed is None
                    and replaced
                    and "stop" in await records.signals(self.client, task_id, replaced)
                )
            ):
                raise BriefingNotFoundError(DELETED % user)
            # The status's fields of the carry's names (last_midnight: in the zone it was
            # briefed in), then what this run gave and prepared.
            carry = BriefingCarry.model_validate(current, from_attributes=True)
            carry.last_given_at = current.given_at or current.last_given_at
            carry.replaced_date = current.prepared.date if current.prepared else carry.replaced_date
            if current.prepared and not (current.given_at or current.pushed_at or carry.paused):
                # Its window may be over in the new config's zone or hours: the new run pushes
                # it then, as this run would have at its window's end.
                carry.unheard_date = current.prepared.date
            if current.last_date is not None and current.last_midnight is None:
                # A run carrying none (from before it, or a day read from the database): its
                # own config's zone, the one it briefs in.
                carry.last_midnight = midnight_ending(current.last_date, current.config)
            if current.given_at is not None and current.day is not None:
                carry.last_date, carry.last_midnight = current.day.date, current.day.logs_to
                # The run stores its greeting when the window ends: stored now, or the day
                # would stay "ready" (and a briefing created again would speak it twice).
                async with asyncio.timeout_at(deadline):
                    await records.store_given(
                        self.db, user, current.day.date, current.given_at, current.given_via
                    )
            carry.replaced_run = replaced
            policy = WorkflowIDConflictPolicy.TERMINATE_EXISTING
        state = "paused" if carry.paused else "active"
        summary = briefing_summary(parsed, user)
        new_run: str | None = None  # the latest run, when the start's answer came late
        if deadline is not None:
            _in_time(deadline)  # a start sent past it could land while the answer says not
        try:
            async with asyncio.timeout_at(deadline):
                started = await self.client.start_workflow(
                    DailyBriefingWorkflow.run,
                    BriefingRun(user=user, task_id=task_id, config=parsed, carry=carry),
                    id=task_id,
                    task_queue=self.settings.temporal_task_queue,
                    id_conflict_policy=policy,
                    search_attributes=temporal.search_attributes(KIND, user, state=state),
                    static_summary=summary,
                    # What list_tasks shows for the briefing, like every other task.
                    memo=temporal.task_memo(summary, created or datetime.now(UTC)),
                )
            new_run = started.result_run_id
        except TimeoutError:
            # Not replaced in time (create says so), unless the server took the start and its
            # answer came late: the running run's input tells, read from the server's record
            # (a query needs a worker, and one as slow as this server then did not answer).
            new_run, live = await records.running_input(self.client, task_id)
            if live is None or live.config != parsed:
                raise
        if replaced is not None:
            handle = self.client.get_workflow_handle(task_id, run_id=new_run)
            state = await records.keep_controls(self.client, replaced, handle, carry) or state
        return BriefingRef(task_id=task_id, state=state, config=parsed).of_run(new_run)

    async def _hand_over(
        self, user: str, run_id: str | None = None
    ) -> tuple[str | None, BriefingStatus | None]:
        """The run id and last status of the running briefing (``run_id``: that run only), as
        it hands over by the request's deadline (if any) and QUERY_TIMEOUT; None when no run
        takes it (it just ended, or does not answer: it is replaced all the same).
        _HeldByAnother when another request's hand-over holds it."""
        handle = self.client.get_workflow_handle(task_id_for(user), run_id=run_id)

        async def hand_over() -> tuple[str | None, BriefingStatus]:
            with request_deadline.request_deadline(no_answer.QUERY_TIMEOUT.total_seconds()):
                async with asyncio.timeout_at(request_deadline.deadline()):
                    try:
                        update = await handle.start_update(
                            DailyBriefingWorkflow.hand_over,
                            wait_for_stage=WorkflowUpdateStage.COMPLETED,
                        )
                        return update.workflow_run_id, await update.result()
                    except WorkflowUpdateFailedError as exc:
                        # Not "no run takes it" (`_answer`): replaced now, the other request's
                        # new run would be terminated by ours.
                        cause = exc.cause
                        if isinstance(cause, ApplicationError) and cause.type == HANDED_OVER:
                            raise _HeldByAnother from None
                        raise

        return await self._answer(hand_over(), task_id_for(user), quiet=True) or (None, None)

    async def _replaced_by_another(self, user: str, based_on: dict[str, Any] | None) -> NoReturn:
        """Another request's hand-over holds the run. A merged update (``based_on``) waits a
        moment, within its request's deadline, for that request's new run and merges over it
        (ConfigOvertaken); anything else, or a new run not there in time, is told to try again
        (BriefingError), nothing changed."""
        if based_on is not None:
            clock = asyncio.get_running_loop().time
            until = min(clock() + HELD_WAIT, request_deadline.deadline() or float("inf"))
            while clock() + HELD_LOOK < until:
                await asyncio.sleep(HELD_LOOK)
                current = await self.read_status(user)
                if current is None or current.config.model_dump(mode="json") != based_on:
                    raise ConfigOvertaken
        raise BriefingError(BEING_CHANGED)


class _HeldByAnother(Exception):
    """The run refused the hand-over: another request's new config is replacing it."""


def _still_based_on(current: BriefingStatus | None, based_on: dict[str, Any] | None) -> None:
    """ConfigOvertaken when a merged update's ``based_on`` is not the config ``current`` runs
    (another update replaced it since the merge's read: written, it put back that one's
    fields)."""
    if based_on is not None and (
        current is None or current.config.model_dump(mode="json") != based_on
    ):
        raise ConfigOvertaken


def _in_time(deadline: float) -> None:
    """TimeoutError (create: NOT_REPLACED) when a replacement's ``deadline`` has passed."""
    if deadline <= asyncio.get_running_loop().time():
        raise TimeoutError
