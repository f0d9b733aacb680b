"""A request's one deadline: set at its top, never extended by a request inside it, and not
cutting work a request started that outlives it."""

from __future__ import annotations

import asyncio

import pytest

from ambient import no_answer
from ambient.request_deadline import deadline, left, request_deadline


async def test_a_request_inside_another_keeps_the_sooner_deadline() -> None:
    with request_deadline(5):
        outer = deadline()
        with request_deadline(60):
            assert deadline() == outer
        with request_deadline(1):
            inner = deadline()
            assert inner is not None and outer is not None and inner < outer
        assert deadline() == outer
    assert deadline() is None


async def test_a_call_outside_any_request_keeps_its_own_bound() -> None:
    assert no_answer.time_left() is None


async def test_a_call_past_its_requests_deadline_is_not_made() -> None:
    with request_deadline(0), pytest.raises(no_answer.OutOfTime) as cut:
        no_answer.time_left()
    assert cut.value.sent is False


async def test_work_a_request_started_is_not_cut_by_it_once_the_request_ended() -> None:
    """A task created inside a request copies its context (its deadline with it): once the
    request has answered, the task's calls keep their own bounds, not the spent deadline."""
    started, go_on, seen = asyncio.Event(), asyncio.Event(), list[object]()

    async def background() -> None:
        seen.append(deadline())
        started.set()
        await go_on.wait()
        seen.append(no_answer.time_left())  # OutOfTime, were the request's deadline kept

    with request_deadline(0):
        task = asyncio.create_task(background())
        await started.wait()  # the task runs inside the request
    go_on.set()
    await task
    assert seen[0] is not None and seen[1:] == [None]


async def test_sync_code_a_request_runs_in_a_thread_reads_its_deadline() -> None:
    """A request's sync code run in a thread (anyio, Starlette's threadpool: the context
    copied) read the loop's clock, which a thread has none of: RuntimeError, not the rest."""
    with request_deadline(30):
        rest = await asyncio.to_thread(left)
        loop_rest = (deadline() or 0.0) - asyncio.get_running_loop().time()
    assert rest is not None and 0 < rest <= 30 and 0 < loop_rest <= 30
