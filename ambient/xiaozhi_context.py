"""What waits for a 小智 user and the per-wake context facts (`GET /xiaozhi/context`, the
voice's greeting): runs waiting for a person, failing watches, the briefing's state. The
devices and who may speak to them: `ambient.xiaozhi`, `ambient.speakers`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from pydantic import BaseModel, Field
from temporalio.service import RPCError, RPCStatusCode

from ambient import no_answer, temporal
from ambient.briefing.models import BriefingStatus
from ambient.briefing.service import BriefingService
from ambient.domain.users import Language
from ambient.remediation.intake import cluster_approvers
from ambient.remediation.safety import named_anywhere
from ambient.remediation.service import RemediationService
from ambient.remediation.storage import RemediationRepository
from ambient.remediation.views import RemediationError, RemediationSummary
from ambient.speakers import DEFAULT_ASSISTANT
from ambient.status import temporal_not_set_up
from ambient.storage import Database
from ambient.storage.models import User
from ambient.storage.repositories import EventRepository
from ambient.storage.users import UserRepository
from workflows.remediation import GradedRemediationWorkflow

log = logging.getLogger(__name__)
T = TypeVar("T")


# --- what waits for a person ---------------------------------------------------------------


ASKED_AT_MOST = 20  # runs a lookup asks (a query each, in parallel)


def failing_in_a_row(pages: list[tuple[str, str | None, int]]) -> tuple[str, str]:
    """How badly watches fail, a clause in Chinese and English: the most checks failed in a row
    a failing page's ``watch.failing`` told (at least that many now); none under two."""
    worst = max((failures for _, _, failures in pages), default=0)
    if worst < 2:
        return "", ""
    if len({task for task, _, _ in pages}) == 1:
        return f"，至少连续失败了 {worst} 次", f", at least {worst} times in a row"
    return f"，最严重的至少连续失败了 {worst} 次", f", the worst at least {worst} times in a row"


# How long a run handed over to a person is said to need them (what_needs_me, the context's
# hint): a day; the next morning's briefing tells it too.
HANDED_RECENT = timedelta(days=1)


async def waiting_for(service: RemediationService, user: str) -> list[RemediationSummary]:
    """Runs waiting for this user's approval now, oldest first ("the first one" is the one
    that has waited longest, the same every time it is asked).

    Candidates are the open runs the user may see (``may_steer``, as ``list_page`` lists
    them). The runs table is written at milestones, not when a run starts waiting, so the
    server's list narrows them first to the runs whose state attribute says waiting (one call,
    however many runs are open: acting and verifying runs are not asked), and each of those is
    then asked (a query each, in parallel) through the service, which decides who may see it
    and what its state is now.
    """
    shown = await _shown_waiting(service)
    async with service.db.session() as session:
        account = await UserRepository(session).get(user)
        if account is None:
            return []
        repository = RemediationRepository(session)
        seen = await repository.seen_by(account, cluster_approvers(service.settings))
        # Of those the user may see, the runs the server lists, however many newer ones are
        # open; without its list (or with every user's too many to list), the newest open ones.
        known = shown is not None and shown is not _TOO_MANY
        rows = await repository.list(
            open_only=True, ids=shown if known else None, seen=seen, limit=1000 if known else 500
        )
    if shown is _TOO_MANY:
        # Those of the user's open runs the server lists as waiting: asked by their ids.
        shown = await _shown_waiting(service, [row.remediation_id for row in rows])
        if shown is not None:
            rows = [row for row in rows if row.remediation_id in shown]
    mine = [RemediationSummary.model_validate(row) for row in rows]
    # Rows come newest first: the ASKED_AT_MOST that waited longest are asked. Past them, a
    # run the server lists as waiting is taken at its word (its answer is checked again when
    # it is given): after a storm of 52, "approve t500" found nothing, and 20 were said to wait.
    runs, listed = mine[-ASKED_AT_MOST:], (mine[:-ASKED_AT_MOST] if shown is not None else [])

    async def live(run: RemediationSummary) -> RemediationSummary | None:
        try:
            view = await service.seen_status(user, run.remediation_id)
        except RemediationError as exc:
            if no_answer.SILENT_WORKER in str(exc):
                raise  # whether it waits is unknown, not "no"
            return None
        if no_answer.FAILED_TASK in view.unanswered:
            return None  # its worker keeps failing it: no answer can be taken (as it ended)
        if view.unanswered:  # its state as recorded: whether it waits is the run's to say
            raise RemediationError(view.unanswered)
        if view.state != "waiting_approval" or view.run_key != run.run_key:
            return None
        # Its mode as the run decided it (a user of dry_run asking to execute runs a dry run,
        # theirs to approve): the row keeps the mode asked until the run records a step.
        return run.model_copy(update={"state": view.state, "mode": view.mode or run.mode})

    found = [r for r in await asyncio.gather(*(live(r) for r in runs)) if r is not None]
    found += [r.model_copy(update={"state": "waiting_approval"}) for r in listed]
    return sorted(found, key=lambda r: (r.started_at, r.remediation_id))


SHOWN_AT_MOST = 1000
_SHOWN_WAITING = (
    f'WorkflowType = "{GradedRemediationWorkflow.__name__}" '
    f'AND {temporal.STATE.name} = "waiting_approval" AND ExecutionStatus = "Running"'
)


# More runs wait (every user's) than one list holds: the user's own are asked by their ids.
_TOO_MANY: set[str] = set()


async def _shown_waiting(
    service: RemediationService, among: list[str] | None = None
) -> set[str] | None:
    """The remediation ids the server lists as waiting for an approval (of ``among``, or of
    every user's: `_TOO_MANY` past SHOWN_AT_MOST, a full list may leave out the user's own);
    None when the list cannot be had (then the open runs are asked). The list follows the
    workflow by a moment (it is indexed after the state is set), so a run that began to wait
    just now may be missing for that moment; one listed that no longer waits is dropped by
    its query."""
    if among == []:
        return set()
    query = _SHOWN_WAITING if among is None else f"{_SHOWN_WAITING} AND {temporal.ids_query(among)}"
    try:
        most = SHOWN_AT_MOST if among is None else len(among)
        listed = service.client.list_workflows(
            query, limit=most, rpc_timeout=no_answer.QUERY_TIMEOUT
        )
        shown = {e.id async for e in listed}
    except RPCError as exc:
        if temporal_not_set_up(exc) or exc.status is RPCStatusCode.UNAVAILABLE:
            # No run is asked either: "nothing needs you" would be said of a broken set-up, or
            # of a Temporal gone (the runs' rows alone told "一切正常" with Temporal killed). A
            # list that was slow, not refused, falls back to the runs as before.
            raise
        log.warning("approvals: the server's list failed (%s); asking every open run", exc)
        return None
    if among is None and len(shown) >= SHOWN_AT_MOST:
        log.info("approvals: %d or more runs wait; the user's are asked by id", len(shown))
        return _TOO_MANY
    return shown


# --- the context provider ------------------------------------------------------------------


class VoiceFacts(BaseModel):
    """What a voice model needs at the start of a conversation with this user."""

    assistant_name: str
    user: str
    briefing_ready: bool = Field(description="today's briefing is prepared and not yet given")
    briefing_given_today: bool | None = Field(
        description="today's briefing was spoken already; null if not known in time"
    )
    open_alerts: int = Field(description="remediations still running or waiting")
    approvals_waiting: int | None = Field(
        description="remediations waiting for this user's approval; null if not known in time"
    )
    watches_failing: int = Field(
        default=0, description="this user's watches whose checks are failing now"
    )
    hint: str


async def voice_facts(
    db: Database,
    user: User,
    remediations: RemediationService | None = None,
    *,
    briefings: BriefingService | None = None,
    budget: float = 0.5,
    default_language: Language = Language.ZH,
) -> VoiceFacts:
    """The app database, plus at most ``budget`` seconds of Temporal for the briefing (what
    greet would answer), the approvals waiting and the runs still open: past that the briefing
    is not said ready, the approvals are unknown (None), the open runs are the rows', and the
    rest still answers."""
    approvers = cluster_approvers(remediations.settings) if remediations else {}
    async with db.session() as session:
        repository = RemediationRepository(session)
        # The runs "what needs me" lists (list_page): also another's on a cluster of theirs.
        seen = await repository.seen_by(user, approvers)
        runs = await repository.list(seen=seen, open_only=True, limit=None)
        pages = await EventRepository(session).failing(user=user.name)
        handed = len(await repository.handed_over(user.name, HANDED_RECENT))
    failing = len({task for task, _, _ in pages})

    async def approvals() -> int | None:
        if remediations is None:
            return 0 if not runs else None
        # What waits for the user may be another's run, on a cluster the policy names them for.
        if not runs and not named_anywhere(user.name, remediations.settings.remediation_approvers):
            return 0
        return len(await waiting_for(remediations, user.name))

    async def still_open() -> int:
        # A run Temporal closed (terminated in the Web UI) never wrote its row: not open.
        if remediations is None or not runs:
            return len(runs)
        now, _ = await remediations.states_now([row.remediation_id for row in runs])
        return sum(now.get(row.run_key) != "aborted" for row in runs)

    async def briefing() -> tuple[BriefingStatus | None]:
        # In a tuple: no briefing (None in it) is known, not the same as no answer in time.
        return (None if briefings is None else await briefings.read_status(user.name),)

    async def in_time(work: Awaitable[T], what: str) -> T | None:
        try:
            async with asyncio.timeout(budget):
                return await work
        except Exception as exc:
            log.warning("context for %s: %s unknown (%s)", user.name, what, type(exc).__name__)
            return None

    waiting, read, open_now = await asyncio.gather(
        in_time(approvals(), "approvals"),
        in_time(briefing(), "briefing"),
        in_time(still_open(), "open runs"),
    )
    # Not known in time is said as not known: "not given today" told the voice model as a fact
    # that a briefing spoken this morning was not (the app database knows it at its window's end).
    ready, given = False, None
    if read is not None:
        (status,) = read
        ready, given = status.at(datetime.now(UTC)) if status else (False, False)
    name = user.assistant_name or DEFAULT_ASSISTANT
    if ready:
        zh = f"用户问候时，请调用 greet 工具播报今日简报。({name}: call greet for the briefing.)"
        en = f"When the user greets {name}, call greet to say today's briefing."
    elif handed:
        zh = f"有 {handed} 个告警自动处理没能解决，交给了用户，可调用 what_needs_me。"
        en = f"Alerts not fixed automatically, handed to the user: {handed}. Call what_needs_me."
    elif waiting:
        zh = f"有 {waiting} 个修复在等审批，可调用 what_needs_me。"
        en = f"Fixes waiting for approval: {waiting}. Call what_needs_me."
    elif failing:
        row, row_en = failing_in_a_row(pages)
        zh = f"有 {failing} 个监控一直检查失败{row}，可调用 what_needs_me。"
        en = f"Watches failing their checks: {failing}{row_en}. Call what_needs_me."
    else:
        zh = "用户询问运维情况时，使用语音工具回答。"
        en = "When the user asks about operations, answer with the voice tools."
    # In the user's language, as the voice tools answer them (Chinese unless they chose en).
    hint = en if (user.language or default_language) == Language.EN else zh
    return VoiceFacts(
        assistant_name=name,
        user=user.name,
        briefing_ready=ready,
        briefing_given_today=given,
        open_alerts=len(runs) if open_now is None else open_now,
        approvals_waiting=waiting,
        watches_failing=failing,
        hint=hint,
    )
