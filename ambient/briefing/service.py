"""The daily briefing control plane: create, greet, read, regenerate, send.

MCP tools, the API and the CLI are thin adapters over ``BriefingService``. The task id is
the workflow id `daily-briefing/{user}` (one per user), so creating twice is idempotent.

Its errors, and the checks of what it is given, are in `ambient.briefing.errors`; a
greeting (``greet``) is `ambient.briefing.greeting`; the analysis of logs over any time
range (``analyze_logs``) is `ambient.briefing.logs`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from temporalio.common import QueryRejectCondition, WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from ambient import controls_in_flight, no_answer, request_deadline, temporal, updates
from ambient.briefing import records
from ambient.briefing.config import BriefingConfig, midnight_ending
from ambient.briefing.errors import (
    BriefingError,
    BriefingNotFoundError,
    BriefingReplacedError,
    BriefingUnanswered,
    BriefingUnavailableError,
    InvalidBriefingError,
    check_date,
    field_of,
    invalid_config,
    parse_config,
    request_id_of,
    update_id_of,
)
from ambient.briefing.greeting import Greeting
from ambient.briefing.logs import analyze_logs, check_cls_keys, check_log_path
from ambient.briefing.models import (
    KIND,
    PREPARE_TIMEOUT,
    BriefingCarry,
    BriefingListItem,
    BriefingRef,
    BriefingRun,
    BriefingStatus,
    BriefingView,
    LogAnalysis,
    PreparedBriefing,
    PushRequest,
    briefing_link,
)
from ambient.briefing.sent import BriefingSent, briefing_sent, send_key
from ambient.briefing.steering import FINISHING, NOT_FOUND, Steering
from ambient.briefing.unprepared import PREPARATION_FAILED, not_prepared
from ambient.clients.tencent.client import TencentCloud
from ambient.refusals import N_, Refusal
from ambient.settings import Settings
from ambient.sharing import ReportLink, share_report
from ambient.status import temporal_down
from ambient.storage import Database
from ambient.storage.briefings import BriefingRepository
from ambient.storage.models import User
from ambient.storage.users import registered
from ambient.watches.configs import task_id_for
from ambient.watches.inputs import ConfigError, check_destinations
from workflows.daily_briefing import HAND_OVER_HOLD, DailyBriefingWorkflow
from workflows.daily_briefing_prepare_push import BRIEFING_DELETED

MAX_LISTED = 366  # a year of days
# How long a create waits for a stopped run to finish before asking to be sent again: a push
# cut short by the delete hears it at its next heartbeat (within ~8 s: 0.8 of the 10 s
# heartbeat timeout, workflows/daily_briefing_prepare_push.py) and is then recorded.
FINISHING_WAIT = 15.0
DELETED = "the daily briefing of %r was deleted; create one with create_daily_briefing"
# Deleted, its run still finishing (a preparation or push under way): gone already.
NOT_REPLACED = "the new config did not reach Temporal in time; try again"
# A regenerate's or send's one deadline: a preparation under way (a send waits for it) and its
# own work (a preparation, a push). Taken, it has its worker; the worker gone, this ends it.
UPDATE_WAIT = 2 * PREPARE_TIMEOUT
# A send or regenerate whose run ended under it (a new config, a stop): the run settles a push
# under way before it ends, so what it had begun may be done.
REPLACED = {
    "send": N_(
        "the daily briefing was replaced or stopped before this send finished; what it had "
        "begun may be done: check the briefing's status before you send again"
    ),
    "regenerate": N_(
        "the daily briefing was replaced or stopped before this regenerate finished; what it "
        "had begun may be done: check the briefing's status before you regenerate again"
    ),
}
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


class BriefingService(Greeting, Steering):
    def __init__(
        self,
        client: Client,
        settings: Settings,
        db: Database,
        tencent: TencentCloud | None = None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.db = db
        self.tencent = tencent or TencentCloud.from_settings(settings)

    # --- create and steer ------------------------------------------------------------

    async def create(
        self, user: str, config: dict[str, Any] | BriefingConfig, *, replace_only: bool = False
    ) -> BriefingRef:
        """Start the user's daily briefing; the same config again finds the running one.
        ``replace_only`` (an update): a briefing deleted meanwhile is not started again.
        Inside a request (a task's update), its deadline bounds every wait."""
        row = await registered(self.db, user, InvalidBriefingError)
        if not isinstance(config, BriefingConfig):
            config = parse_config(_with_user_defaults(row, config))
        # Checked here, not first at the morning's read: a path with nothing there too.
        await check_log_path(config.log_source, self.settings.log_dir, admin=row.is_admin)
        check_cls_keys(config.log_source, self.tencent)
        try:
            # At creation and update like a web monitor's URLs, not first at the morning's fetch.
            check_destinations(config, self.settings)
        except ConfigError as exc:
            errors = [(location[1:], message) for location, message in exc.errors]  # no "config."
            raise invalid_config(errors, exc.inputs[0]) from None
        for _ in range(2):
            try:
                return await self._start(user, config, replace_only)
            except WorkflowAlreadyStartedError:
                # Another create started it between our read and our start: decide again
                # against it, as if it had come first (the same config finds it, another
                # replaces it and keeps its pause).
                continue
            except TimeoutError:  # handed over, not replaced in time: the run speaks again
                raise BriefingError(NOT_REPLACED) from None
        raise BriefingError("the daily briefing is being created by another request; try again")

    async def _start(self, user: str, parsed: BriefingConfig, replace_only: bool) -> BriefingRef:
        task_id = task_id_for(user)
        policy = WorkflowIDConflictPolicy.FAIL
        current = await self.read_status(user)
        deadline = None
        replaced: str | None = None  # the run id of the run replaced
        created: datetime | None = None  # a replaced run's creation, which the new run keeps
        if replace_only and (current is None or current.stopping):
            raise BriefingNotFoundError(DELETED % user)
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
            carry = await records.given_before(self.client, self.db, user)
        else:
            if current.config == parsed:
                state = "paused" if current.paused else "active"
                return BriefingRef(task_id=task_id, state=state, created=False, config=parsed)
            # A new config replaces the running one; today's "already given" and a pause
            # carry over (changing when to speak is not asking to speak again). Read again
            # as the run hands over: a greeting since the read above is in it, later ones
            # are refused ("greet again"), so none speaks to a run about to be terminated.
            # The run is replaced within half the hold or not at all (then it speaks again).
            created, replaced = await records.described(self.client, task_id)
            deadline = asyncio.get_running_loop().time() + HAND_OVER_HOLD.total_seconds() / 2
            deadline = min(deadline, request_deadline.deadline() or deadline)
            handed_run, handed = await self._hand_over(user)
            _in_time(deadline)  # its hand-over took it all: the run stays, nothing sent
            current, replaced = handed or current, handed_run or replaced
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
            policy = WorkflowIDConflictPolicy.TERMINATE_EXISTING
        state = "paused" if carry.paused else "active"
        summary = (
            f"Daily briefing for {user}: prepare {parsed.prepare_at}, greeting window "
            f"{parsed.window_start}–{parsed.window_end} ({parsed.timezone})"
        )
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
        return BriefingRef(task_id=task_id, state=state, config=parsed)

    async def _hand_over(self, user: str) -> tuple[str | None, BriefingStatus | None]:
        """The run id and last status of the running briefing, as it hands over by the
        request's deadline (if any) and QUERY_TIMEOUT; None when no run takes it (it just
        ended, or does not answer: it is replaced all the same)."""
        handle = self.client.get_workflow_handle(task_id_for(user))

        async def hand_over() -> tuple[str | None, BriefingStatus]:
            with request_deadline.request_deadline(no_answer.QUERY_TIMEOUT.total_seconds()):
                async with asyncio.timeout_at(request_deadline.deadline()):
                    update = await handle.start_update(
                        DailyBriefingWorkflow.hand_over,
                        wait_for_stage=WorkflowUpdateStage.COMPLETED,
                    )
                    return update.workflow_run_id, await update.result()

        return await self._answer(hand_over(), task_id_for(user), quiet=True) or (None, None)

    async def status(self, user: str, *, operator: bool | None = None) -> BriefingStatus:
        """The running briefing's status as ``user`` reads it (`told`); BriefingNotFoundError
        when none runs."""
        return await self.told(user, await self._running(user), operator=operator)

    async def _running(self, user: str) -> BriefingStatus:
        status = await self.read_status(user)
        if status is None:
            raise BriefingNotFoundError(NOT_FOUND % user)
        return status

    async def told(
        self, user: str, status: BriefingStatus, *, operator: bool | None = None
    ) -> BriefingStatus:
        """``status`` as ``user`` may read it: a failure's own text to an admin alone
        (`BriefingStatus.told`); ``operator`` given: to whoever runs the server (the CLI) or not."""
        if not (status.preparation_error or status.record_error or status.push_error):
            return status  # nothing failed: the same to everyone, no need to ask who asks
        if operator is None:
            operator = await self._operator(user)
        return status.told(operator=operator)

    async def _operator(self, user: str) -> bool:
        """Whether ``user`` reads failures as their texts say them: an admin. With the database
        not answering, nobody is known to be one."""
        try:
            return await self._admin(user)
        except (SQLAlchemyError, OSError):
            return False

    async def read_status(
        self, user: str, *, ended: bool = False, quiet: bool = False
    ) -> BriefingStatus | None:
        """The one read of a briefing's status: its running run's (``ended``: or what its last
        run knew at its end, a worker replays it), within QUERY_TIMEOUT and what is left of the
        request; errors as `_answer`."""
        if request_deadline.left() == 0:  # a request's deadline spent: not asked
            if quiet:
                return None
            raise BriefingError(no_answer.refused_request(no_answer.silent_worker()))
        budget = timedelta(
            seconds=request_deadline.bounded(no_answer.QUERY_TIMEOUT.total_seconds())
        )
        handle = self.client.get_workflow_handle(task_id_for(user))
        rejected = None if ended else QueryRejectCondition.NOT_OPEN
        ask = no_answer.queried(
            lambda left: handle.query(
                DailyBriefingWorkflow.status, rpc_timeout=left, reject_condition=rejected
            ),
            budget,
        )
        # `queried` keeps the budget by its own timer: another here would race it.
        return await self._answer(ask, task_id_for(user), quiet=quiet)

    async def _answer(
        self, ask: Awaitable[T], workflow_id: str, *, quiet: bool = False
    ) -> T | None:
        """The run's answer (a status query, the hand-over update; each keeps its own budget):
        None when no run takes it (none, or it has ended); Temporal's refusal or no worker in
        time a BriefingError, but None when ``quiet`` (the caller goes on without it), as
        Temporal down is."""
        try:
            return await ask
        except (WorkflowQueryRejectedError, WorkflowUpdateFailedError):
            return None  # the run has ended (an update: under it)
        except (*no_answer.CUT_SHORT, *no_answer.QUERY_REFUSED) as exc:
            if quiet or no_answer.not_found(exc):
                return None
            # Out of time: a silent worker, unless the server itself does not answer. Any other
            # refusal was answered (by the server, or by a worker too busy to read in time).
            if isinstance(exc, no_answer.CUT_SHORT) or no_answer.timed_out(exc):
                why, down = await no_answer.out_of_time(self.client, workflow_id)
            else:
                why, down = no_answer.refusal(exc), None
            raise BriefingError(no_answer.refused_request(why)) from down
        except RuntimeError as exc:  # the client's connection failed
            if quiet and temporal_down(exc):
                return None
            raise

    async def delete(self, user: str) -> BriefingRef:
        status = await self._running(user)
        await self.client.get_workflow_handle(task_id_for(user)).signal("stop")
        return BriefingRef(
            task_id=task_id_for(user), state="stopped", created=False, config=status.config
        )

    async def _live(self, user: str) -> tuple[str, str | None]:
        """Refuse a briefing deleted whose run still finishes (a preparation or push under way),
        or on its way to be: it is gone already, as it is once that run has ended. Its state
        once the controls it holds apply (`controls_in_flight.read_in_flight`), and what that
        reading rests on (its run and event; None: not whole, a worker holds the run's task),
        read off the server: a status query before a control, as the task service's was, left it
        undone under load ("is the worker running?"), where these need no worker."""

        async def look() -> tuple[str, WorkflowExecutionDescription]:
            description = await self.client.get_workflow_handle(task_id_for(user)).describe()
            if description.status is not WorkflowExecutionStatus.RUNNING:
                raise BriefingNotFoundError(NOT_FOUND % user)
            return description.typed_search_attributes.get(temporal.STATE) or "active", description

        try:
            description, seen = await controls_in_flight.read_in_flight(self.client, look)
        except RPCError as exc:
            if no_answer.not_found(exc):
                raise BriefingNotFoundError(NOT_FOUND % user) from None
            raise BriefingError(no_answer.refused_request(no_answer.refusal(exc))) from None
        if seen.state == "stopped":
            raise BriefingNotFoundError(FINISHING % user)
        return seen.state, f"{description.run_id}/{seen.basis}" if seen.whole else None

    # --- briefings ----------------------------------------------------------------------

    async def get_briefing(self, user: str, date: str | None = None) -> BriefingView:
        async with self.db.session() as session:
            repo = BriefingRepository(session)
            if date is None:
                rows = await repo.list(user, limit=1)
                row = rows[0] if rows else None
            else:
                date = check_date(date)
                row = await repo.get(user, date)
        if row is None:
            what = f"of {date}" if date else "yet"
            raise BriefingNotFoundError(
                f"no briefing {what} for {user!r}; list_briefings shows the dates"
            )
        view = BriefingView.model_validate(row)
        if view.given_at is None:
            await self._overlay_live(user, [view])
        return view

    async def share(self, user: str, date: str) -> ReportLink:
        """A signed, expiring link to the briefing page (the full report)."""
        view = await self.get_briefing(user, date)
        title, key = briefing_link(user, view.date, view.version, view.content.language)
        return await share_report(
            self.db, self.settings, user, "briefing", title, view.report_markdown, key
        )

    async def _overlay_live(self, user: str, items: list[Any]) -> None:
        """The day's greeting is stored when its window ends; until then the workflow knows."""
        # Temporal refused or down: what is stored is still the briefing to show.
        status = await self.read_status(user, quiet=True)
        if status is None or status.day is None or status.given_at is None:
            return
        for item in items:
            if item.date == status.day.date and item.given_at is None:
                item.given_at, item.status = status.given_at, "given"
                if isinstance(item, BriefingView):
                    item.given_via = status.given_via

    async def list_briefings(self, user: str, limit: int = 30) -> list[BriefingListItem]:
        # The bounds of the API and MCP, for every door (the CLI passed 0, -1 or 10**20 on).
        if not 1 <= limit <= MAX_LISTED:
            raise InvalidBriefingError(
                f"limit: list 1 to {MAX_LISTED} briefings, not {limit}", field="limit"
            )
        async with self.db.session() as session:
            rows = await BriefingRepository(session).list(user, limit=limit)
        items = [BriefingListItem.model_validate(row) for row in rows]
        if items and items[0].given_at is None:
            await self._overlay_live(user, items[:1])
        return items

    async def regenerate(self, user: str, request_id: str | None = None) -> PreparedBriefing:
        """Prepare the current day's briefing again now (a new version); ``request_id`` makes
        a retried request prepare once (without it, each call prepares)."""
        # Temporal takes an update id once in a run: a retry after a cut answer is answered
        # with the first try's preparation, not another LLM run.
        key = f"{task_id_for(user)}/regenerate/{request_id_of(request_id)}"
        return await self._update(
            user, "regenerate", DailyBriefingWorkflow.regenerate, id=update_id_of("regenerate", key)
        )

    async def send(
        self,
        user: str,
        date: str | None = None,
        request_id: str | None = None,
        *,
        operator: bool | None = None,
    ) -> BriefingSent:
        """Push a briefing (default: the latest) through the user's channels now; what each
        channel did, read back from this send's deliveries (`briefing_sent`), masked as
        ``user`` reads it or, ``operator`` given, as whoever runs the server (the CLI) does."""
        request_id = request_id_of(request_id)
        view = await self.get_briefing(user, date)
        created, _ = await records.described(self.client, task_id_for(user))
        key = send_key(task_id_for(user), created, view.date, request_id)
        request = PushRequest(user=user, date=view.date, reason="requested", key=key)
        result = await self._update(
            user, "send", DailyBriefingWorkflow.send, request, id=update_id_of("send", key)
        )
        if operator is None:
            operator = await self._operator(user)
        return await briefing_sent(self.db, user, key, result, operator=operator)

    async def _update(
        self, user: str, what: Literal["send", "regenerate"], update: Any, *args: Any, id: str
    ) -> Any:
        """An update of the user's running briefing, its read and the update within one
        deadline (UPDATE_WAIT, or a request's around it that is sooner); one the workflow
        refuses is invalid."""
        handle = self.client.get_workflow_handle(task_id_for(user))
        try:
            with request_deadline.request_deadline(UPDATE_WAIT.total_seconds()):
                # Unlike a signal, an update waits for a worker to take it up (and, admitted,
                # runs whenever one comes): its run answering a status query first, or the
                # worker is said silent now. The status says a deleted one.
                if (await self._running(user)).stopping:
                    raise BriefingNotFoundError(FINISHING % user)
                return await updates.answered(handle, update, *args, id=id)
        except updates.Unanswered as exc:
            raise BriefingUnanswered(what, sent=exc.sent, taken=exc.taken) from None
        except WorkflowUpdateFailedError as exc:
            if getattr(exc.cause, "type", None) == BRIEFING_DELETED:
                # Deleted between the look above and the update: as once its run has ended.
                raise BriefingNotFoundError(DELETED % user) from None
            if getattr(exc.cause, "type", None) == no_answer.RUN_ENDED_UNDER_UPDATE:
                # Taken up, then the run was replaced (a new config) or stopped under it.
                # "Send again" read as "not sent" when its push had gone out (the run settles
                # a push under way before it ends): the status says which.
                raise BriefingReplacedError(Refusal(REPLACED[what])) from None
            # The validator's own words ("date: ..."), not the cause's "ValueError: " prefix:
            # they name the field the 422 points at.
            reason = getattr(exc.cause, "message", None) or str(exc.cause)
            if getattr(exc.cause, "type", None) == PREPARATION_FAILED:
                # Nothing asked was wrong: the server could not prepare it now. Its text is the
                # preparation's (a driver's): an admin's alone, as the status; a member reads
                # why as the run knows it (its status: the failure carries the text alone).
                if await self._operator(user):
                    said: str | Refusal = reason
                else:
                    known = await self.read_status(user, quiet=True)
                    said = Refusal(not_prepared(known.preparation_failure if known else None))
                # Only a regenerate prepares: its words, which the pages translate.
                raise BriefingUnavailableError(
                    Refusal("regenerate failed: %(said)s", said=said)
                ) from None
            raise InvalidBriefingError(f"{what} refused: {reason}", field_of(reason)) from None

    # --- analysis -----------------------------------------------------------------------

    async def analyze_logs(
        self, user: str, source: dict[str, Any], start: datetime, end: datetime
    ) -> LogAnalysis:
        """The reduction report for any time range (`ambient.briefing.logs`)."""
        return await analyze_logs(
            source,
            start,
            end,
            settings=self.settings,
            tencent=self.tencent,
            is_admin=lambda: self._admin(user),
        )


def _in_time(deadline: float) -> None:
    """TimeoutError (create: NOT_REPLACED) when a replacement's ``deadline`` has passed."""
    if deadline <= asyncio.get_running_loop().time():
        raise TimeoutError
