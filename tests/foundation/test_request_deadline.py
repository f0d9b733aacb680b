"""A check now or an update whose worker goes silent part-way: told within one budget.

Each call of such a request (a look, a query, the update, a status read) was bounded alone, so
a worker that answered the first and then fell silent (stopped, stalled, its queue backed up)
made the caller wait their sum, and an update taken after a query answered waited for good.
Here the worker answers the request's first query and stops at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from ambient import no_answer, request_deadline, updates
from ambient.briefing import records
from ambient.briefing.service import BriefingService
from ambient.controls_in_flight import DELIVERED_UNCONFIRMED
from ambient.deps import WorkerDeps
from ambient.watches.configs import TaskState
from ambient.watches.deadline import CHECK_STARTED
from ambient.watches.inputs import TaskError, WorkerSilentError
from ambient.watches.service import APPLIED_UNREAD, TaskService
from tests.briefing.harness import held_preparations, make_user
from tests.conftest import running_worker, unique
from tests.foundation.test_silent_worker import at_rest
from tests.voice.support import worker_state

# The product's read budget, short: a request's parts, each waited out, add up to several.
BUDGET = timedelta(seconds=2)
# Far past one budget, and past any sum a test could wait out: a request still waiting by then
# waits for good (or for the sum of its parts).
GENEROUS = 15 * BUDGET.total_seconds()


def silent_after_first_answer(
    monkeypatch: pytest.MonkeyPatch,
    worker: Worker,
    owner: object,
    method: str = "_workflow_status",
) -> None:
    """``owner``'s ``method`` (by default the task service's status query) answers once, then
    the task's worker stops (no worker polls its queue from then on: a query or an update
    waits for one)."""
    answer = getattr(owner, method)

    async def then_silent(*args: Any, **kwargs: Any) -> Any:
        answered = await answer(*args, **kwargs)
        await worker.shutdown()
        return answered

    monkeypatch.setattr(owner, method, then_silent)


@asynccontextmanager
async def watch_under_worker(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, prefix: str, baseline_wait: float = 1
) -> AsyncIterator[tuple[Worker, TaskService, str, str]]:
    """A user's web watch under a running worker, and a task service over it waiting
    ``baseline_wait`` for a check (its worker, the service, the user, the watch's task id)."""
    user = unique(prefix)
    await make_user(deps.db, user)
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        task = await state.tasks.create(
            user, "web_monitor", {"urls": ["https://example.com/"]}, name="shop-page"
        )
        tasks = TaskService(
            dev_env.client,
            state.settings,
            deps.db,
            briefings=state.briefings,
            baseline_wait=baseline_wait,
        )
        yield worker, tasks, user, task.task_id


@asynccontextmanager
async def briefing_at_rest(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, prefix: str
) -> AsyncIterator[tuple[Worker, TaskService, str, str]]:
    """A user's daily briefing at rest under a running worker, and the task service over it
    (its worker, the service, the user, the briefing's task id)."""
    user = unique(prefix)
    await make_user(deps.db, user)
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        briefings = BriefingService(dev_env.client, state.settings, deps.db)
        task_id = (await briefings.create(user, {"timezone": "Asia/Shanghai"})).task_id
        await at_rest(dev_env.client.get_workflow_handle(task_id))
        tasks = TaskService(
            dev_env.client, state.settings, deps.db, briefings=briefings, baseline_wait=1
        )
        yield worker, tasks, user, task_id


async def test_an_update_whose_worker_goes_silent_after_answering_is_told_so_not_hung(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(no_answer, "QUERY_TIMEOUT", BUDGET)
    changed = {"urls": ["https://example.org/"]}
    async with watch_under_worker(dev_env, deps, "deadline-update") as watched:
        worker, tasks, user, task_id = watched
        silent_after_first_answer(monkeypatch, worker, tasks)
        # Sent once its worker answered a query: it waited for that worker with no end. (The
        # whole config: a merge reads the config in force first, one answer more of its worker.)
        with pytest.raises(WorkerSilentError) as told:
            sent = tasks.update(user, task_id, changed, request_id="r1", replace=True)
            await asyncio.wait_for(sent, GENEROUS)
    # The silent-worker words every door says, and what the request did: sent, not undone.
    assert str(told.value) == (
        f"Temporal refused the request for {task_id!r}: {no_answer.silent_worker()}; "
        "the update was sent and may still apply when its worker takes it: call get_task "
        "later to see the config in force"
    )
    assert told.value.sent is True
    # (Whether it does is the server's: an update no worker took lives in its memory alone.)


async def test_a_merged_update_whose_worker_goes_silent_after_its_read_sends_nothing(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(no_answer, "QUERY_TIMEOUT", BUDGET)
    async with watch_under_worker(dev_env, deps, "deadline-merge") as watched:
        worker, tasks, user, task_id = watched
        silent_after_first_answer(monkeypatch, worker, tasks)
        # The config in force read (its worker's one answer), then silence before the send.
        with pytest.raises(WorkerSilentError) as told:
            sent = tasks.update(user, task_id, {"check_interval_minutes": 30})
            await asyncio.wait_for(sent, GENEROUS)
    assert str(told.value) == (
        f"Temporal refused the request for {task_id!r}: {no_answer.silent_worker()}; "
        "nothing was sent, the task is unchanged"
    )
    assert told.value.sent is False


async def test_a_check_now_whose_worker_is_silent_asks_no_status_read_past_its_budget(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A check now waits ``baseline_wait`` for the check (past a read's budget, as a fetch's
    deadline is): a worker silent all that time was then asked for the status, and waited out
    for a read's budget more, before the answer said the check now was delivered."""
    monkeypatch.setattr(no_answer, "QUERY_TIMEOUT", BUDGET)
    async with watch_under_worker(
        dev_env, deps, "deadline-check", 3 * BUDGET.total_seconds()
    ) as watched:
        worker, tasks, user, task_id = watched
        silent_after_first_answer(monkeypatch, worker, tasks)
        assert (await tasks.get(user, task_id)).state is TaskState.ACTIVE
        asked: list[timedelta] = []
        monkeypatch.setattr(no_answer, "queried", counted(no_answer.queried, asked))
        poked = await asyncio.wait_for(tasks.trigger(user, task_id), GENEROUS)
    assert (poked.note, poked.state, poked.checked) == (DELIVERED_UNCONFIRMED, "active", None)
    # Its whole budget spent on the check's wait: no read of the worker after it.
    assert asked == []


async def test_a_briefing_check_now_whose_worker_goes_silent_after_answering_is_told_so_not_hung(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A briefing's check now (a regenerate) reads its status, then sends the update: a worker
    that answered the read and then fell silent left the update waiting with no end."""
    monkeypatch.setattr(no_answer, "QUERY_TIMEOUT", BUDGET)
    async with briefing_at_rest(dev_env, deps, "deadline-briefing") as at_rest_now:
        worker, tasks, user, task_id = at_rest_now
        silent_after_first_answer(monkeypatch, worker, tasks.briefings, "read_status")
        with pytest.raises(WorkerSilentError) as told:
            await asyncio.wait_for(tasks.trigger(user, task_id), GENEROUS)
    assert str(told.value) == (
        f"Temporal refused the request for {task_id!r}: {no_answer.silent_worker()}; the check "
        "now was sent "
        "and may still run when its worker takes it: call get_task later to see its result"
    )


async def test_a_briefing_check_now_whose_preparation_outlasts_its_budget_is_said_started(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A briefing's check now its worker took, its preparation (up to PREPARE_TIMEOUT) longer
    than the request's budget, was told "no worker answered; is the worker running?": the
    worker is running and preparing. Said started, as a watch's check taken and not done."""
    monkeypatch.setattr(no_answer, "QUERY_TIMEOUT", BUDGET)
    async with briefing_at_rest(dev_env, deps, "deadline-briefing-slow") as at_rest_now:
        _, tasks, user, task_id = at_rest_now
        reasons, held = held_preparations(monkeypatch)  # its logs slow to read: held
        try:
            poked = await asyncio.wait_for(tasks.trigger(user, task_id), GENEROUS)
        finally:
            held.set()
    assert (poked.note, poked.state, poked.checked) == (CHECK_STARTED, "active", None)
    assert reasons == ["regenerate"]


async def test_a_briefing_update_whose_worker_goes_silent_reads_within_what_is_left(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A briefing's update reads its status (is its worker answering?), then replaces its run,
    reading it again: that read had a whole budget of its own, past the request's."""
    monkeypatch.setattr(no_answer, "QUERY_TIMEOUT", BUDGET)
    async with briefing_at_rest(dev_env, deps, "deadline-briefing-update") as at_rest_now:
        worker, tasks, user, task_id = at_rest_now
        silent_after_first_answer(monkeypatch, worker, tasks.briefings, "read_status")
        asked: list[timedelta] = []  # the budget each read was given
        monkeypatch.setattr(no_answer, "queried", counted(no_answer.queried, asked))
        with pytest.raises(WorkerSilentError):
            await asyncio.wait_for(
                tasks.update(user, task_id, {"timezone": "Europe/Berlin"}), GENEROUS
            )
    # The request's budget is a read's own (baseline_wait under it): each read had what was left
    # of it, less than a budget of its own, the second less than the first.
    first, second = asked
    assert second < first < BUDGET, asked


async def test_a_status_read_inside_a_request_is_given_what_is_left_of_it(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A watch's and a briefing's status read inside a request shorter than a read's own
    budget wait for what is left of the request, not their own budget past it."""
    monkeypatch.setattr(no_answer, "QUERY_TIMEOUT", 4 * BUDGET)  # a read's own: 8 s
    async with briefing_at_rest(dev_env, deps, "deadline-read") as (_, tasks, user, briefing):
        watch = await tasks.create(
            user, "web_monitor", {"urls": ["https://example.com/"]}, name="shop-page"
        )
        asked: list[timedelta] = []
        monkeypatch.setattr(no_answer, "queried", counted(no_answer.queried, asked))
        for task_id in (watch.task_id, briefing):
            with request_deadline.request_deadline(2 * BUDGET.total_seconds()):  # 4 s
                await tasks.get(user, task_id)
    assert len(asked) == 2 and all(budget <= 2 * BUDGET for budget in asked), asked


async def test_a_briefing_update_whose_hand_over_takes_its_budget_starts_no_new_run(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A briefing's update whose hand-over its worker let run to the request's deadline still
    started the new run (with a deadline already past: a start that lands replaces the run
    while the caller is told the new config did not reach Temporal)."""
    monkeypatch.setattr(no_answer, "QUERY_TIMEOUT", BUDGET)
    async with briefing_at_rest(dev_env, deps, "deadline-briefing-hand-over") as at_rest_now:
        worker, tasks, user, task_id = at_rest_now
        briefings = tasks.briefings
        hand_over, started = briefings._hand_over, list[str]()

        async def silent_hand_over(*args: Any) -> Any:
            await worker.shutdown()  # the hand-over waits to the request's deadline
            return await hand_over(*args)

        async def start(*args: Any, **kwargs: Any) -> Any:
            started.append(kwargs["id"])
            return await start_workflow(*args, **kwargs)

        briefings._hand_over = silent_hand_over  # type: ignore[method-assign,assignment]
        start_workflow = dev_env.client.start_workflow
        monkeypatch.setattr(dev_env.client, "start_workflow", start)
        with pytest.raises(TaskError, match="did not reach Temporal in time"):
            await asyncio.wait_for(
                tasks.update(user, task_id, {"timezone": "Europe/Berlin"}), GENEROUS
            )
    assert started == []


async def test_a_briefing_update_applied_whose_worker_then_goes_silent_says_it_was_applied(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A briefing's new config running (its new run started), the status read after it
    unanswered: the bare silent-worker words read as nothing done."""
    monkeypatch.setattr(no_answer, "QUERY_TIMEOUT", BUDGET)
    async with briefing_at_rest(dev_env, deps, "deadline-briefing-applied") as at_rest_now:
        worker, tasks, user, task_id = at_rest_now
        silent_after_first_answer(monkeypatch, worker, tasks.briefings, "create")
        with pytest.raises(WorkerSilentError) as told:
            await asyncio.wait_for(
                tasks.update(user, task_id, {"timezone": "Europe/Berlin"}), GENEROUS
            )
    assert str(told.value).endswith(f"; {APPLIED_UNREAD}"), str(told.value)
    assert told.value.sent is True


async def test_a_briefing_update_running_whose_control_read_times_out_says_it_was_applied(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A briefing's new config running, the read of the controls sent meanwhile timed out:
    said with the silent-worker words as a read's (``sent`` None), though the update applied."""
    async with briefing_at_rest(dev_env, deps, "deadline-briefing-kept") as (_, tasks, user, id_):

        async def timed_out(*_args: Any) -> list[str]:
            raise RPCError("Timeout expired", RPCStatusCode.DEADLINE_EXCEEDED, b"")

        monkeypatch.setattr(records, "signals", timed_out)
        with pytest.raises(WorkerSilentError) as told:
            await tasks.update(user, id_, {"timezone": "Europe/Berlin"})
    assert str(told.value).startswith("the new config is running"), str(told.value)
    assert told.value.sent is True


async def test_a_pause_with_no_time_left_sends_nothing_and_says_so(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A voice call whose budget is spent (``within`` 0) still described the run and sent the
    pause with a 10 ms deadline each, then answered "delivered, not confirmed"."""
    async with watch_under_worker(dev_env, deps, "deadline-spent") as watched:
        _, tasks, user, task_id = watched
        with pytest.raises(WorkerSilentError) as told:
            with request_deadline.request_deadline(0):
                await tasks.pause(user, task_id)
        history = await dev_env.client.get_workflow_handle(task_id).fetch_history()
    assert str(told.value) == (
        f"Temporal refused the request for {task_id!r}: {no_answer.silent_worker()}; "
        "nothing was sent, the task is unchanged"
    )
    assert told.value.sent is False
    signals = [e.workflow_execution_signaled_event_attributes.signal_name for e in history.events]
    assert "pause" not in signals


@pytest.mark.parametrize("request_id", [None, "r1"])
async def test_an_update_with_no_time_left_after_its_look_sends_nothing_and_says_so(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, request_id: str | None
) -> None:
    """An update whose deadline was spent by its look (its worker's answer came at the end)
    said it "was sent and may still apply" when nothing was sent; a retry (its request_id used
    before) may not say the task is unchanged: the first try's update may still apply."""
    async with watch_under_worker(dev_env, deps, "deadline-spent-update") as watched:
        _, tasks, user, task_id = watched
        spent: list[float] = []

        def budget(*_args: Any, **_kwargs: Any) -> float:
            spent.append(0.0)
            return spent[-1]

        async def answered_at_the_deadline(_user: str, _task_id: str) -> TaskState:
            return TaskState.ACTIVE  # its worker answered, the request's time all spent

        tasks._budget = budget  # type: ignore[method-assign]
        tasks._answering = answered_at_the_deadline  # type: ignore[method-assign, assignment]
        changed = {"urls": ["https://example.org/"]}
        with pytest.raises(WorkerSilentError) as told:  # the whole config: no read before
            await tasks.update(user, task_id, changed, request_id=request_id, replace=True)
        history = await dev_env.client.get_workflow_handle(task_id).fetch_history()
    did = (
        "nothing was sent, the task is unchanged"
        if request_id is None
        else "this request sent nothing (an update an earlier try with the same request_id "
        "sent may still apply: call get_task later to see the config in force)"
    )
    assert str(told.value) == (
        f"Temporal refused the request for {task_id!r}: {no_answer.silent_worker()}; {did}"
    )
    assert told.value.sent is False
    updates = [
        e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
        for e in history.events
    ]
    assert "update_config" not in updates and len(spent) == 1


async def test_a_check_now_accepted_whose_answer_is_cut_on_its_way_is_not_asked_again(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A check now's update accepted by its worker, the acceptance's answer not in by the
    deadline (cut on its way): the signal asked it again (a second check). The server is asked
    whether it was taken: taken, the answer says the check started, with no signal."""
    monkeypatch.setattr(no_answer, "QUERY_TIMEOUT", BUDGET)
    async with watch_under_worker(dev_env, deps, "deadline-taken") as watched:
        _, tasks, user, task_id = watched
        start_update, never = WorkflowHandle.start_update, asyncio.Event()

        async def accepted_then_lost(self: Any, *args: Any, **kwargs: Any) -> Any:
            await start_update(self, *args, **kwargs)  # accepted: in the run's history
            await never.wait()  # its answer never reaches the caller

        with monkeypatch.context() as patched:
            patched.setattr(WorkflowHandle, "start_update", accepted_then_lost)
            poked = await asyncio.wait_for(tasks.trigger(user, task_id), GENEROUS)
        history = await dev_env.client.get_workflow_handle(task_id).fetch_history()
    assert poked.note == CHECK_STARTED, poked
    signals = [e.workflow_execution_signaled_event_attributes.signal_name for e in history.events]
    assert "check_now" not in signals


async def test_a_read_whose_worker_is_silent_asks_why_within_its_budget(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read with a caller's budget (the voice's, a request's rest) that its worker let run
    out then asked the server why, a second for each of two asks past that budget."""
    async with watch_under_worker(dev_env, deps, "deadline-why") as watched:
        _, tasks, user, task_id = watched
        assert (await tasks.pause(user, task_id)).note is None
        await at_rest(dev_env.client.get_workflow_handle(task_id))
    describe, service = WorkflowHandle.describe, dev_env.client.workflow_service
    system_info, asked = service.get_system_info, list[str]()  # each ask why, by name

    async def described(self: Any, *args: Any, **kwargs: Any) -> Any:
        asked.append("describe")
        return await describe(self, *args, **kwargs)

    async def informed(*args: Any, **kwargs: Any) -> Any:
        asked.append("get_system_info")
        return await system_info(*args, **kwargs)

    monkeypatch.setattr(WorkflowHandle, "describe", described)
    monkeypatch.setattr(service, "get_system_info", informed)
    with pytest.raises(WorkerSilentError):
        with request_deadline.request_deadline(BUDGET.total_seconds()):
            await tasks.get(user, task_id)
    # Its query waited out the whole budget: nothing left to ask why with.
    assert asked == []


async def test_an_update_applied_whose_worker_then_goes_silent_says_it_was_applied(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An update its worker applied, the status read after it unanswered (the worker gone):
    the silent-worker words say the update was applied, not that it may be."""
    monkeypatch.setattr(no_answer, "QUERY_TIMEOUT", BUDGET)
    async with watch_under_worker(dev_env, deps, "deadline-applied") as watched:
        worker, tasks, user, task_id = watched
        silent_after_first_answer(monkeypatch, worker, updates, "answered")
        with pytest.raises(WorkerSilentError) as told:
            await asyncio.wait_for(
                tasks.update(user, task_id, {"urls": ["https://example.com/"]}), GENEROUS
            )
    assert str(told.value) == (
        f"Temporal refused the request for {task_id!r}: {no_answer.silent_worker()}; "
        "the update was applied; call get_task later to see the task's status"
    )
    assert told.value.sent is True


def counted(
    queried: Callable[..., Awaitable[Any]], asked: list[timedelta]
) -> Callable[..., Awaitable[Any]]:
    """``no_answer.queried``, each budget it is given recorded in ``asked``."""

    async def ask(ask: Callable[[timedelta], Awaitable[Any]], within: timedelta) -> Any:
        asked.append(within)
        return await queried(ask, within)

    return ask


async def test_an_update_sent_outside_any_request_keeps_its_own_bound(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Outside a request (a CLI one-shot, a test) an update had no deadline to read and was
    said unanswered, never sent ("nothing was sent"): it is taken within QUERY_TIMEOUT and its
    result waited for as the SDK does."""
    async with watch_under_worker(dev_env, deps, "deadline-outside") as watched:
        _, tasks, user, task_id = watched
        config = (await tasks.get(user, task_id)).config
        handle = dev_env.client.get_workflow_handle(task_id)
        assert request_deadline.deadline() is None
        applied = await asyncio.wait_for(
            updates.answered(handle, "update_config", config, id=unique("outside")), GENEROUS
        )
    assert applied == config
