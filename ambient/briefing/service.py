"""The daily briefing control plane: create, greet, read, regenerate, send.

MCP tools, the API and the CLI are thin adapters over ``BriefingService``. The task id is
the workflow id `daily-briefing/{user}` (one per user), so creating twice is idempotent.

Its errors, and the checks of what it is given, are in `ambient.briefing.errors`; a
create (``create``) is `ambient.briefing.creation`; a greeting (``greet``) is
`ambient.briefing.greeting`; the analysis of logs over any time range (``analyze_logs``)
is `ambient.briefing.logs`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import QueryRejectCondition
from temporalio.service import RPCError

from ambient import controls_in_flight, no_answer, request_deadline, temporal, updates
from ambient.briefing import records
from ambient.briefing.creation import DELETED, Creation
from ambient.briefing.errors import (
    BriefingError,
    BriefingNotFoundError,
    BriefingReplacedError,
    BriefingUnanswered,
    BriefingUnavailableError,
    InvalidBriefingError,
    check_date,
    field_of,
    request_id_of,
    update_id_of,
)
from ambient.briefing.greeting import Greeting
from ambient.briefing.logs import analyze_logs
from ambient.briefing.models import (
    PREPARE_TIMEOUT,
    BriefingListItem,
    BriefingRef,
    BriefingStatus,
    BriefingView,
    LogAnalysis,
    PreparedBriefing,
    PushRequest,
    briefing_link,
)
from ambient.briefing.pushed import day_pushed, days_pushed
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
from ambient.storage.users import registered
from ambient.watches.configs import task_id_for
from workflows.daily_briefing import DailyBriefingWorkflow
from workflows.daily_briefing_prepare_push import BRIEFING_DELETED

MAX_LISTED = 366  # a year of days
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


class BriefingService(Creation, Greeting, Steering):
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

    # --- status and steer ------------------------------------------------------------

    async def status(self, user: str, *, operator: bool | None = None) -> BriefingStatus:
        """The running briefing's status as ``user`` reads it (`told`); BriefingNotFoundError
        when none runs."""
        return await self.told(user, await self._running(user), operator=operator)

    async def _running(self, user: str) -> BriefingStatus:
        status = await self.read_status(user)
        if status is None:
            raise await self._none_for(user, NOT_FOUND % user)
        return status

    async def _none_for(self, user: str, message: str) -> BriefingNotFoundError:
        """``message``, that ``user`` has no briefing; a name nobody registered (a typo, or
        `--user` left at dev) refused as every door refuses it: not told to create one, which
        fails. Asked only when nothing was found, after Temporal, which may be down."""
        await registered(self.db, user, BriefingNotFoundError)
        return BriefingNotFoundError(message)

    async def told(
        self, user: str, status: BriefingStatus, *, operator: bool | None = None
    ) -> BriefingStatus:
        """``status`` as ``user`` may read it, with which push channels took its day's push
        (``pushed_to``, unread when the database does not answer): a failure's own text to an
        admin alone (`BriefingStatus.told`); ``operator`` given: to whoever runs the server (the
        CLI) or not."""
        if status.pushed_at is not None and status.day is not None and status.pushed_to is None:
            # Its pushed_at says the inbox took its copy, not that a push channel took it.
            with contextlib.suppress(SQLAlchemyError, OSError):
                pushed = await day_pushed(self.db, user, status.day.date)
                status = status.model_copy(update={"pushed_to": pushed})
        if not (status.preparation_error or status.record_error or status.push_error):
            return status  # nothing failed: the same to everyone, no need to ask who asks
        if operator is None:
            operator = await self.reads_as_operator(user)
        return status.told(operator=operator)

    async def reads_as_operator(self, user: str) -> bool:
        """Whether ``user`` reads failures as their texts say them: an admin. With the database
        not answering, nobody is known to be one."""
        try:
            return await self._admin(user)
        except (SQLAlchemyError, OSError):
            return False

    async def read_status(
        self, user: str, *, ended: bool = False, quiet: bool = False, run_id: str | None = None
    ) -> BriefingStatus | None:
        """The one read of a briefing's status: its running run's (``ended``: or what its last
        run knew at its end, a worker replays it), within QUERY_TIMEOUT and what is left of the
        request; errors as `_answer`. ``run_id``: that run's while it runs, None once it has
        ended, also while the read waits (another request's new config ending the run under a
        query left it unanswered until its time ran out: a silent worker, said wrongly)."""
        if request_deadline.left() == 0:  # a request's deadline spent: not asked
            if quiet:
                return None
            raise BriefingError(no_answer.refused_request(no_answer.silent_worker()))
        budget = timedelta(
            seconds=request_deadline.bounded(no_answer.QUERY_TIMEOUT.total_seconds())
        )
        ask: Awaitable[BriefingStatus | None]
        if run_id is None:
            ask = self._latest_status(user, budget, ended=ended)
        else:
            handle = self.client.get_workflow_handle(task_id_for(user), run_id=run_id)
            read = no_answer.queried(_status_query(handle, QueryRejectCondition.NOT_OPEN), budget)
            ask = _unless_ended(read, handle)
        # `queried` keeps the budget by its own timer: another here would race it.
        return await self._answer(ask, task_id_for(user), quiet=quiet)

    async def _latest_status(
        self, user: str, budget: timedelta, *, ended: bool
    ) -> BriefingStatus | None:
        """The running run's status, asked of that run by its id within ``budget``: a run that
        ends under the read (another request's new config replaced it; a query to it was then
        left unanswered until its time ran out, "no worker answered" while the worker ran) is
        read again as the run that runs now. None when none runs, unless ``ended``: then the
        last run's, as it knew it at its end."""
        clock = asyncio.get_running_loop().time
        until = clock() + budget.total_seconds()
        latest = self.client.get_workflow_handle(task_id_for(user))
        while True:
            async with asyncio.timeout_at(until):
                described = await latest.describe(rpc_timeout=budget)
            running = described.status is WorkflowExecutionStatus.RUNNING
            if not (running or ended):
                return None
            run = self.client.get_workflow_handle(task_id_for(user), run_id=described.run_id)
            left = timedelta(seconds=max(0.0, until - clock()))
            if not running:  # an ended run ends no more: a worker replays it to answer
                return await no_answer.queried(_status_query(run, None), left)
            read = no_answer.queried(_status_query(run, QueryRejectCondition.NOT_OPEN), left)
            try:
                if (status := await _unless_ended(read, run)) is not None:
                    return status
            except WorkflowQueryRejectedError:
                pass  # ended between the look and the query (not "none runs"): looked at again

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
        # Answered once the task list shows it stopped, as a task's delete is (not in time:
        # its worker takes the stop later, and the list says so then).
        within = request_deadline.bounded(temporal.LISTED_STOPPED_WITHIN)
        await temporal.listed_stopped(self.client, task_id_for(user), within)
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
                raise await self._none_for(user, NOT_FOUND % user)
            return description.typed_search_attributes.get(temporal.STATE) or "active", description

        try:
            description, seen = await controls_in_flight.read_in_flight(self.client, look)
        except RPCError as exc:
            if no_answer.not_found(exc):
                raise await self._none_for(user, NOT_FOUND % user) from None
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
            raise await self._none_for(
                user, f"no briefing {what} for {user!r}; list_briefings shows the dates"
            )
        view = BriefingView.model_validate(row)
        if view.given_at is None:
            await self._overlay_live(user, [view])
        await self._pushed_to(user, [view])
        return view

    async def _pushed_to(self, user: str, items: list[Any]) -> None:
        """Which push channels took each pushed one of ``items`` (its pushed_at says only that
        the inbox took its copy)."""
        pushed = [item for item in items if item.pushed_at is not None]
        days = await days_pushed(self.db, user, {item.date for item in pushed})
        for item in pushed:
            item.pushed_to = days[item.date]

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
        if not items:
            # None at all: a name nobody registered is refused, not listed as no briefings.
            await registered(self.db, user, BriefingNotFoundError)
        if items and items[0].given_at is None:
            await self._overlay_live(user, items[:1])
        await self._pushed_to(user, items)
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
            operator = await self.reads_as_operator(user)
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
                if await self.reads_as_operator(user):
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


def _status_query(
    handle: WorkflowHandle[Any, Any], rejected: QueryRejectCondition | None
) -> Callable[[timedelta], Awaitable[BriefingStatus | None]]:
    """The status query of the run ``handle`` names, asked within the time it is given."""
    return lambda left: handle.query(
        DailyBriefingWorkflow.status, rpc_timeout=left, reject_condition=rejected
    )


async def _unless_ended(ask: Awaitable[T], run: WorkflowHandle[Any, Any]) -> T | None:
    """``ask``'s answer, or None once ``run`` has ended (its answer, when it came first)."""
    asked, ended = asyncio.ensure_future(ask), asyncio.ensure_future(temporal.until_ended(run))
    try:
        await asyncio.wait((asked, ended), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in (asked, ended):
            waiting.cancel()
        await asyncio.gather(asked, ended, return_exceptions=True)
    if asked.cancelled() or (not ended.cancelled() and asked.exception() is not None):
        return None
    return asked.result()
