"""How a voice call is answered: who speaks, in which language, within what budget, and what
is said when the work fails (a service down, a refusal by its kind, a slow system), because a
voice client drops the text of an ``isError`` result. The tools are listed in `mcp_server.voice`.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from datetime import timedelta
from enum import Enum
from typing import Any, TypeVar

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.service import RPCStatusCode

from ambient import no_answer
from ambient.bridge.serving import call_arrived
from ambient.briefing.errors import BriefingError
from ambient.domain.users import Language
from ambient.remediation.views import RemediationError
from ambient.speakers import Speaker, SpeakerKind, resolve_speaker
from ambient.speech import speakable
from ambient.status import (
    database_down,
    pollers,
    temporal_down,
    temporal_not_set_up,
    temporal_refused,
)
from ambient.storage.users import user_named
from ambient.watches.inputs import TaskError
from ambient.wiring import AppState
from mcp_server import voice_sentences as sentences
from mcp_server.auth import Ctx, app_state, current_user
from mcp_server.voice_prompt import SPEAKER_DESCRIPTION

log = logging.getLogger(__name__)
T = TypeVar("T")

# Bounds well under a voice client's patience (xiaozhi.me waits 10 s for a tool call).
CALL_BUDGET = 8.0
# What a read that waits for the worker leaves of the budget, to say a silent worker as such:
# the query's timeout comes back through a busy event loop (0.5 s was not always enough on a
# loaded 2-core machine: the call's budget ran out first and "too slow" was said instead).
SAY_MARGIN = 1.0
# When the current voice call's budget runs out (the loop's clock).
_deadline: ContextVar[float] = ContextVar("voice_deadline")
# Whether the current voice call is answered in English: the speaking user's language setting
# (Chinese when they chose none, or before anyone is known), as the greeting is.
english: ContextVar[bool] = ContextVar("voice_english", default=False)
# The device the current voice call comes from, as the call names it ("" where it names none):
# what one speaker's answer asked or listed is that conversation's, not another device's.
device: ContextVar[str] = ContextVar("voice_device", default="")
# Whether this server serves approvals (`--read-only` does not): an answer says how to approve
# where it can, not "say approve the first one" to a model without that tool.
approvals_here: ContextVar[bool] = ContextVar("voice_approvals_here", default=True)
# xiaozhi.me sends every device of an agent over the endpoint's one connection, each tools/call
# naming its device in ``clientId`` (docs/xiaozhi.md); HTTP and stdio calls name none.
DEVICE_PARAM = "clientId"


def say(zh: str, en: str) -> str:
    """The answer in the current call's language."""
    return en if english.get() else zh


def spoken(text: str) -> str:
    """``text`` made speakable in the current call's language."""
    return speakable(text, english=english.get())


def in_english(state: AppState, language: str | None) -> bool:
    """A user's language, or the server's default where they chose none (as the briefing)."""
    return (language or state.settings.default_language) == Language.EN


# --- who and how ----------------------------------------------------------------------------


def calling_device(ctx: Ctx) -> str:
    """The device a call names (its ``clientId``), or "" when it names none."""
    try:
        params = ctx.request_context.params or {}
    except ValueError:  # no request (a tool called directly)
        return ""
    named = params.get(DEVICE_PARAM)
    return named.strip()[:128] if isinstance(named, str) else ""


def acting(ctx: Ctx) -> bool:
    """Whether the tool called may change anything: not marked read-only (READ, LOOK) in
    `mcp_server.voice.TOOLS`. A call without a request, or of no tool known, is taken to act."""
    try:
        named = (ctx.request_context.params or {}).get("name")
        tool = ctx.mcp_server._tool_manager.get_tool(named) if isinstance(named, str) else None
    except ValueError:  # no request (a tool called directly)
        return True
    hints = tool.annotations if tool is not None else None
    return not (hints is not None and hints.read_only_hint)


async def heard(state: AppState, owner: str, speaker: str | None) -> tuple[Speaker, bool]:
    """Who speaks on the ``owner``'s device (the one the call names, `device`), and whether they
    hear English: their language, or when nobody known speaks the owner's (a refusal is said in
    it; no owner: Chinese)."""
    who = await resolve_speaker(
        state.db,
        owner,
        speaker,
        described_as=SPEAKER_DESCRIPTION,
        approvers=state.settings.remediation_approvers,
        device=device.get(),
    )
    if who.user is not None:
        return who, in_english(state, who.user.language)
    if who.kind == SpeakerKind.NO_ACCOUNT:
        return who, False
    row = await user_named(state.db, owner)
    return who, row is not None and in_english(state, row.language)


# How long an answer out of time asks Temporal whether it is there at all: a server gone
# refuses at once; one that hangs is as good as gone to a voice that has waited its budget.
TEMPORAL_PROBE = 0.7


# How long an answer that would say "all is well" asks whether any worker polls: nothing is
# checked, sent or fixed without one, so nothing found is no sign of health.
WORKER_PROBE = 1.0


class Checking(Enum):
    """Whether anything checks the user's tasks now, as an answer that would say "all is well"
    asks it (`checking`)."""

    WORKER = "a worker polls the task queue"
    NO_WORKER = "no worker polled the task queue lately"
    # Refused or its connection gone: no workflow runs, so nothing is checked.
    TEMPORAL_DOWN = "Temporal cannot be reached"
    # Out of time (a loaded host is slow, not down) or another refusal: tasks may be checked.
    NOT_KNOWN = "Temporal did not say in time, or would not say"


async def checking(state: AppState) -> Checking:
    """Whether a worker polls the task queue, as the server says (asked once, within
    WORKER_PROBE and half of what is left), or why that is not known: Temporal cannot be
    reached, or it did not say in time or refused to."""
    probe = min(WORKER_PROBE, left() / 2)
    try:
        async with asyncio.timeout(probe):
            polling = await pollers(
                state.temporal,
                state.settings.temporal_namespace,
                state.settings.temporal_task_queue,
                (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,),
                timedelta(seconds=probe),
            )
    except Exception as exc:  # the errors recorded are read from the database all the same
        log.info("task queue pollers not read: %r", exc)
        return Checking.TEMPORAL_DOWN if temporal_refused(exc) else Checking.NOT_KNOWN
    return Checking.WORKER if polling else Checking.NO_WORKER


async def _temporal_gone(ctx: Ctx) -> bool:
    """Whether Temporal answers no health check within TEMPORAL_PROBE, asked once: a server
    killed after the client had connected left every call retrying until the voice's budget
    was spent, said "the system is slow" where a client that never connected heard it down."""
    try:
        client = app_state(ctx).temporal
        async with asyncio.timeout(TEMPORAL_PROBE):
            down = await no_answer.temporal_silent(client, timedelta(seconds=TEMPORAL_PROBE))
    except Exception:  # out of time, or no state, no client: not known to be down
        return False
    # Refused or its connection gone, not a probe that ran out of time on a loaded host: that
    # is the slowness the answer says.
    return down is not None and down.status is RPCStatusCode.UNAVAILABLE


async def answer(
    ctx: Ctx, speaker: str | None, work: Callable[[AppState, str], Awaitable[str]]
) -> str:
    """Resolve who speaks, run ``work`` as them, and make whatever comes out speakable."""
    try:
        state = app_state(ctx)
        # Who speaks is read from the database too: inside the budget, like the work.
        budget = call_budget()
        _deadline.set(asyncio.get_running_loop().time() + budget)
        english.set(False)  # until the speaker is known
        device.set(calling_device(ctx))
        context = contextvars.copy_context()
        try:
            heard_as = _as_heard(ctx, state, current_user(ctx), speaker, work)
            return await within(budget, heard_as, context)
        finally:
            english.set(context[english])  # what a failure is said in: the speaker's language
    except TimeoutError as exc:
        if database_down(exc):  # a connect that timed out (OSError)
            return say(sentences.DATABASE_DOWN, sentences.DATABASE_DOWN_EN)
        if await _temporal_gone(ctx):  # died after the client connected: its calls retried
            return say(sentences.TEMPORAL_DOWN, sentences.TEMPORAL_DOWN_EN)
        return say(
            "系统这会儿响应太慢，我没等到结果，请稍后再问。",
            "The system is slow right now and I got no answer in time. Please ask again later.",
        )
    except Exception as exc:
        # What is down is said before anything a feature made of it.
        if temporal_down(exc):
            return say(sentences.TEMPORAL_DOWN, sentences.TEMPORAL_DOWN_EN)
        if temporal_not_set_up(exc):
            return say(sentences.TEMPORAL_NOT_SET_UP, sentences.TEMPORAL_NOT_SET_UP_EN)
        if database_down(exc):
            return say(sentences.DATABASE_DOWN, sentences.DATABASE_DOWN_EN)
        if isinstance(exc, RemediationError | TaskError | BriefingError):
            trouble = no_answer.worker_trouble(str(exc))
            if trouble == "failing":
                return say(sentences.WORKER_FAILING, sentences.WORKER_FAILING_EN)
            if trouble == "silent":  # a read's (a pause or resume says what it did: _control)
                return say(sentences.WORKER_SILENT, sentences.WORKER_SILENT_EN)
            # The service's message is English for the API and MCP (and names fields, tools
            # and ids): the voice says what kind of refusal it was, the log keeps the message.
            log.info("voice tool refused: %s", exc)
            zh, en = next(
                (s for kind, s in sentences.REFUSED if isinstance(exc, kind)),
                sentences.REFUSED_OTHER,
            )
            return say(f"没办法完成：{zh}", f"I couldn't do that. {en}")
        # A voice client drops error text: say something, and keep the trace in the log. The
        # message is a server's or a library's (it may name hosts, URLs or tokens): said to
        # nobody, in any language.
        log.warning("voice tool failed", exc_info=True)
        return say(sentences.FAILED, sentences.FAILED_EN)


async def _as_heard(
    ctx: Ctx,
    state: AppState,
    owner: str,
    speaker: str | None,
    work: Callable[[AppState, str], Awaitable[str]],
) -> str:
    who, to_english = await heard(state, owner, speaker)
    english.set(to_english)
    if who.user is None:
        return spoken(say(*sentences.REFUSALS[who.kind]))
    if who.kind in sentences.MAY_NOT_ACT and acting(ctx):
        return spoken(say(*sentences.MAY_NOT_ACT[who.kind]))
    return spoken(await work(state, who.user.name))


# Calls cut short whose work still winds down (a database session closing): held until it has.
_cut: set[asyncio.Task[Any]] = set()


async def within(
    seconds: float, call: Coroutine[Any, Any, T], context: contextvars.Context | None = None
) -> T:
    """``call``'s result within ``seconds`` (else TimeoutError), run as a task of its own (in
    ``context``, else a copy of this one). Cut by the budget or by the caller's own cancel, the
    caller stops waiting at once and the work is cancelled once and winds down in the
    background: cancelled again while SQLAlchemy closed a connection the first cancel broke
    (as the MCP SDK cancels a request until it ends), the close was abandoned and its SQLite
    thread stopped ("Task was destroyed but it is pending! … _terminate_graceful_close")."""
    task = asyncio.get_running_loop().create_task(call, context=context)
    try:
        async with asyncio.timeout(seconds):
            return await asyncio.shield(task)
    finally:
        if not task.done():
            task.cancel()
            _cut.add(task)
            task.add_done_callback(_wound_down)


def _wound_down(task: asyncio.Task[Any]) -> None:
    _cut.discard(task)
    if not task.cancelled() and task.exception() is not None:  # retrieved: nothing to report
        log.debug("a cut voice call ended with %r", task.exception())


def call_budget() -> float:
    """Seconds the current voice call may take: CALL_BUDGET from when it arrived, a 小智
    bridge's check of its endpoint (up to BridgeTiming.check_seconds) spent out of it, not
    added to it (xiaozhi.me waits 10 s in all); at least SAY_MARGIN, to say it was slow."""
    now = asyncio.get_running_loop().time()
    return max(SAY_MARGIN, CALL_BUDGET - (now - call_arrived.get(now)))


def worker_time() -> float:
    """Seconds a read may still wait for the worker: the budget left, at most QUERY_TIMEOUT."""
    # A slow list before it then leaves a silent worker said as one, not as a slow system.
    return max(0.5, min(no_answer.QUERY_TIMEOUT.total_seconds(), left()))


def left() -> float:
    """Seconds of the call's budget left, less the margin kept to say the answer."""
    return _deadline.get() - asyncio.get_running_loop().time() - SAY_MARGIN
