"""Web pages for the morning briefing and graded remediation (same services as the API)."""

from __future__ import annotations

import contextlib
import uuid
from datetime import datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import Form, Query
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from ambient import no_answer
from ambient.briefing import records
from ambient.briefing.errors import (
    BriefingError,
    BriefingNotFoundError,
    BriefingReplacedError,
    BriefingUnanswered,
    BriefingUnavailableError,
    InvalidBriefingError,
)
from ambient.briefing.models import BriefingListItem, BriefingView
from ambient.briefing.pushed import named_channels
from ambient.briefing.sent import joined, sent_words
from ambient.discussions.views import (
    DiscussionClosedError,
    DiscussionError,
    DiscussionNotFoundError,
    InvalidDiscussionError,
)
from ambient.domain.numbers import WHOLE_NUMBER
from ambient.domain.users import Language
from ambient.refusals import N_, Refusal
from ambient.remediation.attempt_words import attempt_said, outcome_words, skipped_words
from ambient.remediation.runs import FINAL_STATES, RemediationStatus
from ambient.remediation.safety import OUTSIDE_WINDOWS, WAITING_FOR_WINDOW
from ambient.remediation.views import (
    REMEDIATION_STATES,
    RUNG_NAMES,
    InvalidRemediationError,
    RemediationError,
    RemediationNotFoundError,
    RemediationRefusedError,
    RemediationStateError,
    answer_said,
    audit_action,
    audit_via,
)
from ambient.storage.models import MAX_ID, next_before
from ambient.watches.configs import task_id_for
from api.i18n import Words, in_zone
from api.routers.page_words import field_errors, in_words, what_went_wrong, worker_unanswered
from api.routers.pages import (
    FormText,
    Page,
    PageId,
    PageWords,
    UserPage,
    back,
    language_of,
    page_router,
)

router = page_router()


# What each page says when a service refuses (the services' own words are for MCP callers).


def briefing_problem(exc: BriefingError, _: Words) -> str:
    if isinstance(exc, InvalidBriefingError | BriefingUnavailableError | BriefingReplacedError):
        return what_went_wrong(exc, _)
    silent = N_(
        "Your briefing did not answer in time (its worker is busy or stopped); "
        "try again in a moment."
    )
    if isinstance(exc, BriefingUnanswered) and exc.sent:  # asked again: prepared or sent twice
        silent = N_(
            "Your briefing was asked and may still finish (its worker is busy or stopped); "
            "check the briefing before asking again."
        )
    return worker_unanswered(exc, _, silent) or _(
        "Briefings are unavailable right now; try again in a moment."
    )


def remediation_problem(exc: RemediationError, _: Words) -> str:
    if isinstance(exc, RemediationNotFoundError):
        return _("That remediation is not one of yours, or no longer exists.")
    if isinstance(exc, InvalidRemediationError | RemediationRefusedError | RemediationStateError):
        return what_went_wrong(exc, _)
    silent = N_(
        "The run did not answer in time (its worker is busy or stopped); try again in a moment."
    )
    return worker_unanswered(exc, _, silent) or _(
        "Remediations are unavailable right now; try again in a moment."
    )


def discussion_problem(exc: DiscussionError | ValueError, _: Words) -> str:
    if isinstance(exc, DiscussionNotFoundError):
        return _("That discussion does not exist.")
    if isinstance(exc, DiscussionClosedError):
        return _("This discussion is closed: it takes no more replies.")
    if isinstance(exc, ValidationError):
        # message_id: the form's hidden id, named as the API names it (edited by hand).
        labels = {"content": N_("Message"), "tags": N_("Tags"), "message_id": N_("message_id")}
        return field_errors(exc, _, labels)
    if isinstance(exc, InvalidDiscussionError) and exc.field == "message_id":
        # The form's id names a message it sent before (the browser's Back, then a new text).
        return _("This form already sent another message; here it is anew: send it again.")
    return what_went_wrong(exc, _)


def names_message_id(exc: ValidationError) -> bool:
    return any(error["loc"][:1] == ("message_id",) for error in exc.errors())


# A briefing's state, and who wrote it when no model did, as the pages name them.
BRIEFING_WORDS = {
    "ready": N_("ready"),
    "given": N_("given"),
    "pushed": N_("pushed"),
    "inbox": N_("in your inbox"),  # pushed, and no push channel took it
    "offline": N_("written offline"),
}


def briefing_state(item: BriefingView | BriefingListItem) -> str:
    """A briefing's state as its page names it: one pushed that no push channel took (none set
    up, or each failed) is in the inbox, not "pushed"."""
    pushed = item.pushed_to
    return "inbox" if item.status == "pushed" and pushed and not pushed.took else item.status


def pushed_line(page: UserPage, _: Words, view: BriefingView | None) -> str | None:
    """Where a pushed briefing went, at its first push's hour in the reader's zone: to the push
    channels that took that push, else into the inbox alone ("Pushed at" said so of either),
    and to those that took only a later one (a send on request) as later."""
    if view is None or view.pushed_at is None:
        return None
    at = f"{in_zone(view.pushed_at, page.me.timezone):%H:%M}"
    pushed = view.pushed_to
    if pushed is None:  # not read: when, as stored
        return _("Pushed at %(time)s", time=at)
    chinese = language_of(page.request, page.me) == Language.ZH
    later = named_channels(pushed.later_took, chinese=chinese)
    if not pushed.first_took:
        if later:
            return _(
                "Put in your inbox at %(time)s; later sent to your %(channels)s",
                time=at,
                channels=later,
            )
        return _("Put in your inbox at %(time)s; no push channel took it", time=at)
    channels = named_channels(pushed.first_took, chinese=chinese)
    if pushed.first_all_took and later:
        return _("Sent to your channels at %(time)s; later to your %(later)s", time=at, later=later)
    if pushed.first_all_took:
        return _("Sent to your channels at %(time)s", time=at)
    if later:
        return _(
            "Sent to your %(channels)s at %(time)s; later to your %(later)s",
            channels=channels,
            time=at,
            later=later,
        )
    return _("Sent to your %(channels)s at %(time)s", channels=channels, time=at)


@router.get("/app/briefings", response_class=HTMLResponse)
async def briefing_page(
    page: Page,
    _: PageWords,
    # Text, checked by the service: a day that is no date is said on the page, not as JSON.
    date: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    shown: BriefingView | None = None
    problem = None
    try:
        shown = await page.state.briefings.get_briefing(page.me.name, date or None)
    except BriefingNotFoundError:
        # No briefing yet: the empty History says how to set one up.
        if date:
            problem = _(
                "No briefing for %(day)s. The days that have one are under History.", day=date
            )
    except BriefingError as exc:
        problem = briefing_problem(exc, _)
    history = await page.state.briefings.list_briefings(page.me.name, limit=30)
    running = None
    if not history:  # none prepared yet: is one set up (an admin's `ambient briefing create`)?
        # Its start input, read without a worker (none answering, Temporal gone: not known).
        briefings = page.state.briefings
        __, started = await records.running_input(briefings.client, task_id_for(page.me.name))
        running = started.config if started else None
    return page.show(
        "briefings.html",
        running=running,
        briefing=shown,
        history=history,
        problem=problem,
        named=BRIEFING_WORDS,
        state_of=briefing_state,
        pushed=pushed_line(page, _, shown),
        request_id=uuid.uuid4().hex,  # the forms' own: sent again (a reload), done once
        offline=page.state.settings.llm_mode == "offline",
        admin=page.me.is_admin,  # who to ask is themselves: where they set it up instead
    )


@router.post("/app/briefings/action")
async def briefing_action(
    page: Page, _: PageWords, action: FormText, request_id: FormText = ""
) -> Response:
    asked = request_id or None
    try:
        if action == "regenerate":
            prepared = await page.state.briefings.regenerate(page.me.name, asked)
            return back(
                "/app/briefings",
                _("Prepared again (version %(version)s)", version=prepared.version),
            )
        if action == "send":
            sent = await page.state.briefings.send(page.me.name, request_id=asked)
            said = joined(in_words(w, _) for w in sent_words(sent.deliveries))
            return back("/app/briefings", said)
    except BriefingNotFoundError:
        return back(
            "/app/briefings", _("You have no morning briefing set up: nothing to prepare or send.")
        )
    except BriefingError as exc:
        return back("/app/briefings", briefing_problem(exc, _))
    return back("/app/briefings", _("Unknown action %(action)s", action=repr(action)))


# What a run waits for, as its page names it.
REMEDIATION_WAITS = {
    "approval": N_("approval"),
    "change_window": N_("the change window"),
    "rate_limit": N_("the rate limit"),
    "settle": N_("the workload to settle"),
}


# One page of the list at a time (its More link gives the next).
REMEDIATIONS_PER_PAGE = 50


@router.get("/app/remediations", response_class=HTMLResponse)
async def remediation_list(
    page: Page,
    _: PageWords,
    # The next page: the runs before the last one shown (a run started or ended meanwhile
    # moves nothing). list_page' bound, here: a hand-edited value is said as any link the
    # page cannot take.
    before_id: Annotated[int | None, Query(ge=1, le=MAX_ID), WHOLE_NUMBER] = None,
    # A link of the page's earlier shape (?offset=), still opened as it was.
    offset: Annotated[int, Query(ge=0, le=MAX_ID), WHOLE_NUMBER] = 0,
) -> Response:
    problem, as_stored = None, None
    try:
        # One more than a page: whether there is a next page is known without counting.
        listed = await page.state.remediations.list_page(
            page.me.name, limit=REMEDIATIONS_PER_PAGE + 1, offset=offset, before_id=before_id
        )
        runs, as_stored = listed.runs, listed.as_stored
    except RemediationError as exc:
        runs, problem = [], remediation_problem(exc, _)
    runs, next_before_id = runs[:REMEDIATIONS_PER_PAGE], next_before(runs, REMEDIATIONS_PER_PAGE)
    return page.show(
        "remediations.html",
        runs=runs,
        problem=problem,
        # Temporal's list failed: a running run shows the state its row stored (as the API's
        # X-States-As-Stored says).
        as_stored=as_stored,
        named=REMEDIATION_STATES,
        first_page=before_id is None and not offset,
        next_before_id=next_before_id,
    )


def attempt_words(text: str, _: Words, zone: str | None) -> str:
    """An attempt's detail or verification in the page's language, its times in ``zone``."""
    return in_words(_zoned(attempt_said(text), zone), _)


def _zoned(said: str | Refusal, zone: str | None) -> str | Refusal:
    if not isinstance(said, Refusal):
        return said
    values = {k: _zoned(v, zone) for k, v in said.values.items()}
    if isinstance(time := values.get("time"), str):
        try:
            moment = datetime.fromisoformat(time)
        except ValueError:  # not a time after all: said as written
            pass
        else:
            values["time"] = in_zone(moment, zone).isoformat(timespec="seconds")
    return Refusal(said.msgid, **values)


# A Temporal run id, as the list's links give it.
RunId = Annotated[str | None, Query(max_length=64, pattern=r"^[0-9a-f-]+$")]


@router.get("/app/remediation", response_class=HTMLResponse)
async def remediation_detail(page: Page, _: PageWords, id: PageId, run: RunId = None) -> Response:
    try:
        # ``run``: one run of the remediation (the list's row of an earlier run of its alert);
        # none, its latest.
        view = await page.state.remediations.get(page.me.name, id, run)
    except RemediationError as exc:
        return back("/app/remediations", remediation_problem(exc, _))
    latest: RemediationStatus = view
    if run is not None and view.state in FINAL_STATES:
        # An earlier run that ended (an old push's link): the alert's run now, if another
        # that goes on and the reader may see, is pointed at; one they may not (another
        # owner's run of the same workload) or that cannot be read now, is not.
        with contextlib.suppress(RemediationError):
            latest = await page.state.remediations.seen_status(page.me.name, id)
    return page.show(
        "remediation.html",
        run=view,
        newer=latest
        if latest.run_key != view.run_key and latest.state not in FINAL_STATES
        else None,
        failed_task=no_answer.FAILED_TASK,
        final_states=FINAL_STATES,
        named=REMEDIATION_STATES,
        waits=REMEDIATION_WAITS,
        rungs=RUNG_NAMES,
        outcome=in_words(
            outcome_words(view.outcome_said.refusal() if view.outcome_said else view.outcome), _
        ),
        skipped=[in_words(skipped_words(a.skipped_reason or ""), _) for a in view.attempts],
        # What each attempt did and what its check found, in the reader's words and time zone.
        said=[
            " ".join(
                attempt_words(text or "", _, page.me.timezone)
                for text in (a.detail, a.verification)
            ).strip()
            for a in view.attempts
        ],
        # A gate's reason in the page's words (its first clause in English): the detail's
        # English otherwise.
        waiting_detail=(
            _(WAITING_FOR_WINDOW)  # its opening is the "until" beside it, in the reader's zone
            if view.waiting and view.waiting.said and view.waiting.said.msgid == OUTSIDE_WINDOWS
            else what_went_wrong(view.waiting.said.refusal(), _)
            if view.waiting and view.waiting.said
            else view.waiting.detail
            if view.waiting
            else ""
        ),
        audit=[
            (line.at, audit_action(line.action, line.detail), audit_via(line.detail), line.actor)
            for line in view.audit
        ],
    )


@router.post("/app/remediation/action")
async def remediation_action(
    page: Page,
    _: PageWords,
    remediation_id: FormText,
    action: FormText,
    reason: FormText = "",
    run_key: Annotated[str | None, Form(max_length=255)] = None,
    rung: Annotated[int | None, Form(ge=1, le=6)] = None,
) -> Response:
    # No remediation id is longer (a workflow id): a longer one posted is no run, and comes
    # back in the redirect's Location cut, not whole (see ``back``).
    here = f"/app/remediation?id={quote(remediation_id[:255])}"
    remediations, me = page.state.remediations, page.me
    try:
        if action in ("approve", "refuse"):
            approve = action == "approve"
            answer = await remediations.approve(
                me.name, remediation_id, approve, reason, run_key=run_key, rung=rung, via="web"
            )
            return back(here, in_words(answer_said(approve, answer.rung, answer.mode), _))
        if action == "abort":
            await remediations.abort(me.name, remediation_id, reason, run_key=run_key, via="web")
            return back(here, _("Abort requested"))
    except RemediationStateError as exc:
        approve = action == "approve"
        if action in ("approve", "refuse") and (
            taken := await answered_already(page, remediation_id, run_key, rung, approve)
        ):
            # A double click: the first submit's answer was taken, the second's refused (the
            # run waits no more); the browser shows the second's page: it says the first's.
            return back(here, in_words(answer_said(approve, *taken), _))
        return back(here, remediation_problem(exc, _))
    except RemediationError as exc:
        return back(here, remediation_problem(exc, _))
    return back(here, _("Unknown action %(action)s", action=repr(action)))


async def answered_already(
    page: UserPage, remediation_id: str, run_key: str | None, rung: int | None, approve: bool
) -> tuple[int, str | None] | None:
    """The rung and mode of the caller's answer to this run's rung, if it is already the one
    given (taken); else None."""
    try:
        view = await page.state.remediations.get(page.me.name, remediation_id)
    except RemediationError:
        return None
    if run_key is not None and view.run_key != run_key:
        return None
    return next(
        (
            (int(d.rung), view.mode)
            for d in view.approvals
            if d.approver == page.me.name and d.approve == approve and rung in (None, d.rung)
        ),
        None,
    )
