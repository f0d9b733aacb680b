"""The Temporal client as every entry point builds it, and the custom search attributes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from temporalio import activity
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, PendingWorkflowTaskState
from temporalio.api.failure.v1 import Failure
from temporalio.api.workflowservice.v1 import (
    GetSystemInfoRequest,
    GetWorkflowExecutionHistoryReverseRequest,
    SignalWorkflowExecutionRequest,
)
from temporalio.client import (
    Client,
    TLSConfig,
    WorkflowExecutionDescription,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadConverter,
)
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as ActivityTimeoutError
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from ambient import __version__
from ambient.codec import EncryptionCodec, parse_key
from ambient.refusals import N_
from ambient.request_deadline import bounded, deadline, left
from ambient.settings import Settings

if TYPE_CHECKING:
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

T = TypeVar("T")
KIND = SearchAttributeKey.for_keyword("AmbientKind")
USER = SearchAttributeKey.for_keyword("AmbientUser")
CLUSTER = SearchAttributeKey.for_keyword("AmbientCluster")
STATE = SearchAttributeKey.for_keyword("AmbientState")
SEARCH_ATTRIBUTES = (KIND, USER, CLUSTER, STATE)
# A pause of a paused task or a resume of a running one: nothing was sent (a signal would have
# changed nothing but its run's history, a schedule's write its conflict token).
ALREADY_SO = N_("it already was; nothing was sent")
# A control the server holds for a worker that did not answer the status read after it (busy,
# or none running), or sent just before Temporal went: it applies when they are back.
DELIVERED_UNCONFIRMED = N_("delivered; not confirmed yet (its worker or Temporal did not answer)")
# A control the server holds for a run whose worker keeps failing its workflow task
# (`task_failing`): it applies once an operator mends the cause, not by waiting.
DELIVERED_FAILING = N_(
    "delivered; not applied while its worker keeps failing the run (Temporal: Workflow Task "
    "in failed state); the worker's log says why"
)


def search_attributes(
    kind: str, user: str, *, cluster: str | None = None, state: str | None = None
) -> TypedSearchAttributes:
    """What a run or schedule is found by in the Web UI and ``list_tasks``."""
    given = ((KIND, kind), (USER, user), (CLUSTER, cluster), (STATE, state))
    return TypedSearchAttributes(
        [SearchAttributePair(key, value) for key, value in given if value is not None]
    )


# What a control signal makes of a run's AmbientState once its worker takes it.
CONTROL_STATES = {"pause": "paused", "resume": "active", "stop": "stopped"}


@dataclass(frozen=True)
class InFlight:
    """What the controls a run holds make of it: its ``state`` once those its worker has not
    taken yet apply, the event that reading rests on (``basis``), and whether the reading is
    ``whole``: not while a worker holds a workflow task of the run (busy in a local activity,
    or dead with it), since the server keeps the signals sent meanwhile out of the history
    until that task completes."""

    state: str
    basis: int
    whole: bool


async def state_in_flight(
    client: Client, description: WorkflowExecutionDescription, state: str
) -> InFlight:
    """The run's ``state`` (as its worker last made it) once the controls it holds and has not
    taken yet apply (they arrived after its last completed workflow task; the
    ``description``'s history, not later), resting on the last of those controls, else that
    completion (a run with no workflow task pending: its last event). A pause in flight is a
    paused task; two requests that read alike are one decision."""
    seen = description.raw_description.workflow_execution_info.history_length
    if not description.raw_description.HasField("pending_workflow_task"):
        # Every control it holds was taken (one not taken is a workflow task pending): no
        # history to read (the time-skipping test server reads none from the end).
        return InFlight(state, seen, whole=True)
    held = description.raw_description.pending_workflow_task.state
    whole = held != PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_STARTED
    request = GetWorkflowExecutionHistoryReverseRequest(
        namespace=client.namespace,
        execution=WorkflowExecution(workflow_id=description.id, run_id=description.run_id),
        maximum_page_size=20,
    )
    controls: list[tuple[int, str]] = []  # the controls not taken, newest first
    taken = 0  # the last completed workflow task (none yet: every control is still to come)
    while not taken:
        with by():
            page = await client.workflow_service.get_workflow_execution_history_reverse(
                request, retry=True, timeout=time_left()
            )
        for event in page.history.events:
            name = event.workflow_execution_signaled_event_attributes.signal_name
            if event.event_id > seen:
                continue
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                taken = event.event_id
                break
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED and (
                name in CONTROL_STATES
            ):
                controls.append((event.event_id, name))
        if not page.next_page_token:
            break
        request.next_page_token = page.next_page_token
    for _, name in reversed(controls):
        state = state if state == "stopped" else CONTROL_STATES[name]
    return InFlight(state, controls[0][0] if controls else taken, whole)


# How long a control waits for a worker holding the run's workflow task to complete it, so that
# what is on its way can be read whole (a task takes milliseconds; a poll's end, up to seconds).
HELD_WAIT = 2.0


async def read_in_flight(
    client: Client, look: Callable[[], Awaitable[tuple[str, WorkflowExecutionDescription]]]
) -> tuple[WorkflowExecutionDescription, InFlight]:
    """A run as ``look`` describes it (its state as its worker last made it, and its
    description) and `state_in_flight`'s reading of it, looked at again while a worker holds a
    workflow task of the run, up to HELD_WAIT (the reading not whole then) and the request's
    deadline."""
    clock = asyncio.get_running_loop().time
    held_until, pause = clock() + HELD_WAIT, 0.05
    until = deadline()
    while True:
        state, description = await look()
        held = description.raw_description.pending_workflow_task.state
        if held != PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_STARTED or clock() > min(
            held_until, until or held_until
        ):
            # The history read once: not at every look while the task is held.
            return description, await state_in_flight(client, description, state)
        await asyncio.sleep(pause)
        pause = min(2 * pause, 0.4)


async def signal_once(client: Client, workflow_id: str, signal: str, request_id: str) -> None:
    """Send ``signal`` (no arguments) to the workflow's current run under ``request_id``: the
    server records a signal whose request id the run has seen once (the SDK's handle sends a
    fresh id each time)."""
    request = SignalWorkflowExecutionRequest(
        namespace=client.namespace,
        workflow_execution=WorkflowExecution(workflow_id=workflow_id),
        signal_name=signal,
        identity=client.identity,
        request_id=request_id,
    )
    with by(sends=True):
        await client.workflow_service.signal_workflow_execution(
            request, retry=True, timeout=time_left()
        )


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


def task_memo(summary: str, created: datetime) -> dict[str, str]:
    """A task's memo: its one-line summary and when it was created. A run that continues as
    new keeps its memo; its start time is the run's (a watch's every day or two, a briefing's
    every day). The caller's clock: workflow code imports this module and reads none."""
    return {"summary": summary, "created_at": created.isoformat()}


def created_at(memo: Mapping[str, Any]) -> datetime | None:
    """When the task was created, as its memo says (a task started before it: not known)."""
    value = memo.get("created_at")
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


# What a workflow catches around an activity that may fail for good. A regular activity's
# failure arrives as ActivityError; a *local* activity's arrives as the ApplicationError it
# failed with (only its timeout comes as ActivityError, and replayed, as a bare TimeoutError:
# not caught, the replay failed the workflow where its run had gone on), and uncaught that fails
# the workflow.
ACTIVITY_FAILED = (ActivityError, ApplicationError, ActivityTimeoutError)


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
        left = until - clock() - (0 if stalled is None else STALLED_RETRY_ROOM)
        try:
            # The timer too: a loaded host's RPC deadline came back after it (CI, a starved
            # loop), and a caller's timer then read the busy worker as a silent one.
            async with asyncio.timeout_at(until):
                return await ask(timedelta(seconds=max(0.1, left)))
        except WorkflowQueryFailedError as exc:
            if not exc.message.startswith(STALLED):
                raise
            stalled = exc
        except TimeoutError:
            if stalled is None:
                raise
            raise stalled from None
        except RPCError as exc:
            if stalled is None or not timed_out(exc):
                raise
            raise stalled from None
        if until - clock() < 2 * STALLED_RETRY_ROOM:
            raise stalled


def not_found(exc: BaseException) -> bool:
    """Temporal's answer that the workflow, run or schedule asked about is not there."""
    return isinstance(exc, RPCError) and exc.status is RPCStatusCode.NOT_FOUND


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
    try:
        await client.workflow_service.get_system_info(
            GetSystemInfoRequest(), retry=False, timeout=room()
        )
    except RPCError as exc:
        if exc.status in UNREACHABLE:
            return exc.message, exc
    if workflow_id is not None and room() > timedelta(0):
        try:
            described = await client.get_workflow_handle(workflow_id).describe(rpc_timeout=room())
        except RPCError:
            return silent_worker(), None
        if described.raw_description.pending_workflow_task.attempt >= FAILING_ATTEMPT:
            return failing_worker(), None
    return silent_worker(), None


def ids_query(workflow_ids: Iterable[str]) -> str:
    """The visibility query for the runs of these workflow ids (each once, in order)."""
    ids = ", ".join(json.dumps(i) for i in sorted(set(workflow_ids)))
    return f"WorkflowId IN ({ids})"


def starts_query(beginnings: Iterable[str]) -> str:
    """The visibility query for the runs whose workflow ids begin with one of these."""
    said = " OR ".join(f"WorkflowId STARTS_WITH {json.dumps(b)}" for b in sorted(set(beginnings)))
    return f"({said})"


async def ended_within(handle: WorkflowHandle[Any, Any], seconds: float) -> bool:
    """Whether the run ``handle`` names completed within ``seconds``, however it ended (failed,
    terminated, gone); False: still running (e.g. sending its last notices)."""
    try:
        async with asyncio.timeout(seconds):
            await handle.result(follow_runs=False)
    except TimeoutError:
        return False
    except (WorkflowFailureError, RPCError):
        pass
    return True


def payload_codec(settings: Settings) -> EncryptionCodec | None:
    """The encryption codec if a payload key is configured."""
    if settings.payload_key is None:
        return None
    old = settings.payload_old_keys.items()
    keys = {key_id: parse_key(key.get_secret_value()) for key_id, key in old}
    keys[settings.payload_key_id] = parse_key(settings.payload_key.get_secret_value())
    return EncryptionCodec(keys, settings.payload_key_id)


def data_converter(settings: Settings) -> DataConverter:
    """Pydantic payloads, encrypted when a payload key is set: client, worker and replay."""
    if (codec := payload_codec(settings)) is None:
        return pydantic_data_converter
    # Failure messages and stack traces are encrypted too: they quote what failed (a metric
    # URL with its API key in the query), and Temporal keeps them in clear text otherwise.
    return dataclasses.replace(
        pydantic_data_converter, payload_codec=codec, failure_converter_class=FailureConverter
    )


class FailureConverter(DefaultFailureConverterWithEncodedAttributes):
    """Failures encrypted, but for the SDK's deadlock detector's, which quotes no data: its
    message stays readable, as the only way a client tells a worker too busy to answer a
    query (`unanswered`) from a query that failed ("Encoded failure" otherwise)."""

    def to_failure(
        self, exception: BaseException, payload_converter: PayloadConverter, failure: Failure
    ) -> None:
        super().to_failure(exception, payload_converter, failure)
        if str(exception).startswith(STALLED):
            failure.message = str(exception)


def tls_config(settings: Settings) -> TLSConfig | bool:
    if not (settings.temporal_tls or settings.temporal_tls_cert or settings.temporal_api_key):
        return False

    def read(path: Path | None) -> bytes | None:
        return path.read_bytes() if path else None

    return TLSConfig(
        server_root_ca_cert=read(settings.temporal_tls_ca),
        client_cert=read(settings.temporal_tls_cert),
        client_private_key=read(settings.temporal_tls_key),
    )


_runtime_started = False


def runtime_used() -> None:
    """Note that this process starts the SDK's runtime threads (a client, a replayer)."""
    global _runtime_started
    _runtime_started = True


def runtime_started() -> bool:
    """Whether this process started the SDK's runtime threads (`runtime_used`)."""
    return _runtime_started


async def connect(
    settings: Settings, *, runtime: Runtime | None = None, lazy: bool = False
) -> Client:
    """Connect to the Temporal server of ``settings`` with the pydantic data converter."""
    runtime_used()
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        tls=tls_config(settings),
        api_key=api_key,
        data_converter=data_converter(settings),
        runtime=runtime,
        lazy=lazy,
    )


# The build id a worker and a replay give the SDK: its default hashes the code of every loaded
# module (~2,000, compiling each without a cached .pyc), 0.36 s of CPU a start with the cache
# and 5 s without. Nothing reads it (no worker versioning); it shows which release served a task.
BUILD_ID = f"ambient-ops-{__version__}"


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox our workflows run in, sharing the host's `workflows` modules.

    By default the sandbox imports the workflow's module (and every module it imports) again
    for every new run: ~100 ms of CPU each, paid by every watch created and by
    every workflow a restarted worker takes up again. Our workflow modules hold no mutable
    state, so sharing them keeps determinism (replay tests guard it) and drops that cost.

    What the sandbox still checks at run time is the builtins that read files or the console
    (`open`, `input`) and a clock or randomness imported while a run runs; a passed-through
    module's own `datetime.now()` or `random.random()` is the host's and runs unchecked
    (tests/foundation/test_sandbox_guard.py), so tests/foundation/test_workflow_code.py reads
    the workflow code for them. Passing every module through (``passthrough_all_modules``)
    keeps that same guard and measured no gain; GradedRemediationWorkflow runs outside the
    sandbox (``sandboxed=False``) for the alert storm's sake (docs/benchmarks.md, "Alert
    storm, eighth round"). Imported here: only the worker and a replay run workflows, and the
    worker's package takes ~40 ms to import.
    """
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules("workflows")
    )


def last_attempt(most_given: int | None) -> bool:
    """Whether this activity attempt is its retry policy's last: no retry follows it.

    The policy as the server sent it with the task; where it sent none (the time-skipping test
    server does not), ``most_given``, the maximum attempts of the policy the caller gave.
    """
    info = activity.info()
    most = info.retry_policy.maximum_attempts if info.retry_policy else most_given
    return most is not None and 0 < most <= info.attempt


# Seconds at most between heartbeats (callers set heartbeat_timeout=30s).
HEARTBEAT_EVERY = 5.0


@contextlib.asynccontextmanager
async def heartbeating() -> AsyncIterator[None]:
    """Heartbeat while the block runs (when inside an activity)."""
    if not activity.in_activity():
        yield
        return

    # Well inside the caller's heartbeat timeout, whatever it is.
    timeout = activity.info().heartbeat_timeout
    every = min(HEARTBEAT_EVERY, timeout.total_seconds() / 3) if timeout else HEARTBEAT_EVERY

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(every)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
