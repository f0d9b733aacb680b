"""A request to Temporal that got no answer: the request's deadline at each call, how long a
read waits for a worker (QUERY_TIMEOUT), a busy worker's read asked again, and what a person is
told of a silent, busy or failing worker or of Temporal gone."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Literal, TypeVar

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import (
    GetSystemInfoRequest,
    GetWorkflowExecutionHistoryReverseRequest,
)
from temporalio.client import (
    Client,
    WorkflowQueryFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.service import RPCError, RPCStatusCode

from ambient.request_deadline import bounded, deadline, left

T = TypeVar("T")


class OutOfTime(Exception):
    """A request's deadline reached at one of its calls to Temporal (Temporal may be fine: its
    worker kept the request waiting). ``sent``: that call may have reached the server (a signal
    may still apply); not sent, the call was not made."""

    def __init__(self, *, sent: bool) -> None:
        super().__init__("sent" if sent else "not sent")
        self.sent = sent


def time_left() -> timedelta | None:
    """An RPC's deadline out of the running request's (outside one, None: the SDK's own): each
    call of a request waits only for what is left of it, not a budget of its own. Nothing
    left: OutOfTime, the call not made (sent with a moment's deadline, a signal could still
    land while the answer said nothing was done)."""
    if (rest := left()) is None:
        return None
    if rest <= 0:
        raise OutOfTime(sent=False)
    return timedelta(seconds=rest)


@contextlib.contextmanager
def by(*, sends: bool = False) -> Iterator[None]:
    """A call bounded by the request's deadline, which passed: OutOfTime (``sends``:
    the call may have reached the server), not "Temporal is unreachable" (UNREACHABLE reads
    DEADLINE_EXCEEDED so when it is a deadline of the SDK's own)."""
    try:
        yield
    except RPCError as exc:
        if deadline() is None or not timed_out(exc):
            raise
        raise OutOfTime(sent=sends) from None


# A query is answered by a worker. With none polling its queue the server says so only after
# ~30 s ("no poller seen for task queue recently", measured on the dev server): past what a
# voice answer or a page can wait. Reads ask for this long at most, then say who is silent.
QUERY_TIMEOUT = timedelta(seconds=5)
# The server's failure of an update whose run ended before the update's handler did.
RUN_ENDED_UNDER_UPDATE = "AcceptedUpdateCompletedWorkflow"
SILENT_WORKER = "no worker answered"
# A wait for an update cut by our own timeout: the SDK raises its own error for an update's
# wait cancelled, not the TimeoutError asyncio's timeouts raise around other calls.
CUT_SHORT = (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError)
# gRPC codes that mean "the server did not answer", not "the server said no".
UNREACHABLE = {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED}
# A CANCELLED request's words when it was its deadline that ended it (`timed_out`).
GAVE_UP = ("timeout", "context canceled")


# What refuses a query: the server, or the worker that ran it (its handler failed, or the SDK's
# deadlock detector cut the workflow's code short).
QUERY_REFUSED = (RPCError, WorkflowQueryFailedError)
# A worker starved of CPU runs a query's workflow code past the SDK's 2 s and fails it with
# "[TMPRL1101] Potential deadlock detected" (seen in CI): as late as a worker that did not answer.
STALLED = "[TMPRL1101]"
# The server's words for a run whose workflow task keeps failing (`task_failing`).
FAILED_TASK = "Workflow Task in failed state"


# A query the detector refused is asked again while this much of its budget is left: the next
# try needs room to replay the run (the refusal evicted it) and answer before the caller's end.
STALLED_RETRY_ROOM = 1.0


async def queried(ask: Callable[[timedelta], Awaitable[T]], within: timedelta) -> T:
    """``ask(rpc_timeout)``'s answer, asked again while a worker too busy to run the query in
    time refused it (the SDK's deadlock detector, after 2 s of a starved host: a moment's load
    more often than a worker that stays so) and ``within`` leaves room for another try.
    ``within`` is kept by this function's own timer (TimeoutError when no try was answered),
    so a caller needs none around it: a try that runs out of time, by the RPC's deadline or by
    that timer, stands as the busy worker's refusal it followed, not as a silent worker."""
    clock = asyncio.get_running_loop().time
    until = clock() + within.total_seconds()
    stalled: WorkflowQueryFailedError | None = None
    while True:
        # A retry's RPC ends a full second before the timer, which a loaded loop may fire in
        # the same turn as the answer: the busy worker's refusal, not "no worker answered".
        room = until - clock() - (0 if stalled is None else STALLED_RETRY_ROOM)
        try:
            # The timer too: a loaded host's RPC deadline came back after it (CI, a starved
            # loop), and a caller's timer then read the busy worker as a silent one.
            async with asyncio.timeout_at(until):
                return await ask(timedelta(seconds=max(0.1, room)))
        except WorkflowQueryFailedError as exc:
            if not exc.message.startswith(STALLED):
                raise
            stalled = exc
        except (TimeoutError, RPCError) as exc:
            if stalled is None or (isinstance(exc, RPCError) and not timed_out(exc)):
                raise
            raise stalled from None
        if until - clock() < 2 * STALLED_RETRY_ROOM:
            raise stalled


def not_found(exc: BaseException) -> bool:
    """Temporal's answer that the workflow, run or schedule asked about is not there (not
    that the namespace is: then nothing is, `namespace_missing`)."""
    return (
        isinstance(exc, RPCError)
        and exc.status is RPCStatusCode.NOT_FOUND
        and not namespace_missing(exc)
    )


def namespace_missing(exc: BaseException) -> bool:
    """Temporal's answer that the configured namespace does not exist ("Namespace NS is not
    found.", a mistyped AMBIENT_TEMPORAL_NAMESPACE): every request is refused so."""
    return (
        isinstance(exc, RPCError)
        and exc.status is RPCStatusCode.NOT_FOUND
        and exc.message.lower().startswith("namespace ")
    )


def refusal(exc: RPCError | WorkflowQueryFailedError) -> str:
    """What a failed request says to a person: a silent worker named as such, one that runs
    but was too busy (the SDK's detector failed its read) as that, and one that keeps failing
    the run's workflow task as that."""
    if not unanswered(exc):
        return exc.message
    if task_failing(exc):
        return failing_worker()
    return silent_worker(busy=isinstance(exc, WorkflowQueryFailedError))


def refused_request(why: str, about: str | None = None, *, request: str = "the request") -> str:
    """A refused or unanswered request as a person reads it: ``why`` is `refusal`'s or
    `out_of_time`'s words, ``about`` the id the request was for."""
    asked = request if about is None else f"{request} for {about!r}"
    return f"Temporal refused {asked}: {why}"


def task_failing(exc: BaseException) -> bool:
    """The server's refusal of a query or update of a run whose workflow task its worker
    failed (or held past its timeout) again and again: from the third attempt on it answers
    at once "Unable to query workflow due to Workflow Task in failed state." (server 1.32)."""
    return (
        isinstance(exc, RPCError)
        and exc.status is RPCStatusCode.FAILED_PRECONDITION
        and FAILED_TASK in exc.message
    )


def unanswered(exc: RPCError | WorkflowQueryFailedError) -> bool:
    """A query or update no worker answered: its deadline passed (`timed_out`), the server saw
    no worker poll the task queue lately (it says so at once then), a worker too busy to run
    the query in time failed it, or the run's workflow task keeps failing (`task_failing`)."""
    if isinstance(exc, WorkflowQueryFailedError):
        return exc.message.startswith(STALLED)
    no_poller = exc.status is RPCStatusCode.FAILED_PRECONDITION and "no poller" in exc.message
    return timed_out(exc) or no_poller or task_failing(exc)


def timed_out(exc: BaseException) -> bool:
    """A request whose deadline passed with no answer: the server answers DEADLINE_EXCEEDED when
    its side passes first, the client's own timer CANCELLED "Timeout expired", and a loaded
    server that saw the client give up first CANCELLED "context canceled" (all seen on the dev
    server, the last in CI). Whether Temporal itself answers is then `out_of_time`'s to ask."""
    if not isinstance(exc, RPCError):
        return False
    words = exc.message.lower()
    expired = exc.status is RPCStatusCode.CANCELLED and any(w in words for w in GAVE_UP)
    return exc.status is RPCStatusCode.DEADLINE_EXCEEDED or expired


def silent_worker(*, busy: bool = False) -> str:
    """A request that waited for a worker (a query, an update) and got no answer in time;
    ``busy``: a running worker failed it as too late, unable to run the workflow's code within
    the SDK's 2 s (a host short of CPU)."""
    why = (
        "the worker runs but was too busy to read the run in time (short of CPU?); "
        "try again in a moment"
        if busy
        else "is the worker running?"
    )
    return f"{SILENT_WORKER} within {int(QUERY_TIMEOUT.total_seconds())} s; {why}"


def failing_worker() -> str:
    """A run whose worker keeps failing its workflow task: its reads are not answered until an
    operator mends the cause (a code change that cannot replay the run, a bug), or the worker
    gets the CPU it lacked."""
    return (
        f"{SILENT_WORKER}: the worker keeps failing this run's workflow task (Temporal: "
        f"{FAILED_TASK}); the worker's log says why (code that cannot replay the run after a "
        "deploy, a bug, or a worker short of CPU)"
    )


def worker_trouble(text: str) -> Literal["failing", "silent"] | None:
    """The worker trouble a refusal's words tell of (a service error quotes `refusal`'s):
    "failing" (`failing_worker`), "silent" (`silent_worker`), else None. Failing is looked
    for first: its words say SILENT_WORKER too."""
    if FAILED_TASK in text:
        return "failing"
    return "silent" if SILENT_WORKER in text else None


# The attempt of a run's workflow task from which the server refuses its queries at once
# (`task_failing`): an attempt under way then still takes a query, and it runs out of time.
FAILING_ATTEMPT = 3


async def temporal_silent(client: Client, within: timedelta) -> RPCError | None:
    """Temporal's own refusal of a health check asked once, ``within`` at most (no retry):
    the error when Temporal itself does not answer (unreachable, or silent past ``within``),
    else None."""
    try:
        await client.workflow_service.get_system_info(
            GetSystemInfoRequest(), retry=False, timeout=within
        )
    except RPCError as exc:
        if exc.status in UNREACHABLE:
            return exc
    return None


async def out_of_time(
    client: Client, workflow_id: str | None = None
) -> tuple[str, RPCError | None]:
    """Why a query or update of ``workflow_id`` ran out of time, and the error to raise it
    from: Temporal's own silence (down, or gone since the client connected) asked once, a
    worker that keeps failing the run's workflow task (an attempt of it under way when the read
    came, which the server refuses at once between attempts), or else a silent worker. Each
    ask waits a second at most, and no later than the request's deadline (nothing left: not
    asked)."""

    def room() -> timedelta:
        return timedelta(seconds=bounded(1.0))

    if room() <= timedelta(0):
        return silent_worker(), None
    if (down := await temporal_silent(client, room())) is not None:
        return down.message, down
    if workflow_id is not None and room() > timedelta(0):
        try:
            described = await client.get_workflow_handle(workflow_id).describe(rpc_timeout=room())
        except RPCError:
            return silent_worker(), None
        if described.raw_description.pending_workflow_task.attempt >= FAILING_ATTEMPT:
            return (
                silent_worker()
                if await _timed_out(client, workflow_id, room())
                else failing_worker()
            ), None
    return silent_worker(), None


async def _timed_out(client: Client, workflow_id: str, wait: timedelta) -> bool:
    """Whether the run's workflow task timed out rather than failed, as its history's newest
    end of one says (later attempts are not written): a worker frozen or starved, which holds
    each attempt and answers nothing, is silent, not "failing: read its logs" (it logged
    nothing). Unknown (not read in time, no such event): False, as before."""
    if wait <= timedelta(0):
        return False
    request = GetWorkflowExecutionHistoryReverseRequest(
        namespace=client.namespace,
        execution=WorkflowExecution(workflow_id=workflow_id),
        maximum_page_size=20,
    )
    try:
        page = await client.workflow_service.get_workflow_execution_history_reverse(
            request, retry=False, timeout=wait
        )
    except RPCError:
        return False
    ended = (
        EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
        EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
    )
    newest = next((e.event_type for e in page.history.events if e.event_type in ended), None)
    return newest == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT
