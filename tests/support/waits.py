"""Waiting on the running system for a condition: a wait, not a timed assertion."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from temporalio.client import WorkflowHandle

from ambient import no_answer
from tests.support.servers import HANG

T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T | None]], what: str = "the condition", *, bound: float = HANG
) -> T:
    """Ask ``check`` until it answers a true value, and return that value. An empty answer
    is no answer yet: a list still empty is waited on (a task list is eventually consistent).

    ``bound`` is HANG, which only a hung product reaches; a wait that holds a product timeout
    longer than that (a dead worker's poll, a retry's backoff) gives its own. Asked again after
    25 ms, then 50, then every 100 ms: each ask is a round trip to the system (a query, a
    read, a request), and a wait of seconds asked 40 times a second cost more CPU than it saved.

    A read a worker too busy to answer in time refused (the product's "no worker answered", the
    SDK's deadlock detector) is no answer yet either: a loaded test host's, not the product's.
    """
    deadline = time.monotonic() + bound
    pause = 0.025
    while True:
        try:
            value = await check()
        except Exception as exc:
            if not worker_slow(exc) or time.monotonic() > deadline:
                raise
            value = None  # asked again, as a person would after "try again"
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(pause)
        pause = min(2 * pause, 0.1)


# What the server answers a query while the run's last workflow task failed (a starved worker's
# task the deadlock detector cut short, tried again after a backoff); a run whose code fails
# for good answers it as long as the wait lasts, then the test fails with it.
FAILED_TASK = no_answer.FAILED_TASK


def worker_slow(exc: BaseException) -> bool:
    """Whether ``exc`` says a worker did not answer in time: the words every door says it in,
    the SDK's deadlock detector's failure of a query, or the server's while that task retries."""
    text = str(exc)
    return any(words in text for words in (no_answer.SILENT_WORKER, no_answer.STALLED, FAILED_TASK))


async def until_equal(read: Callable[[], Awaitable[T]], wanted: T, what: str) -> None:
    """Until ``read`` answers ``wanted`` (``eventually``'s bound and asks)."""

    async def there() -> bool:
        return await read() == wanted

    await eventually(there, what)


async def ask(handle: WorkflowHandle[Any, Any], query: Any, *args: Any, **kwargs: Any) -> Any:
    """``handle.query(query, …)``, asked again while the worker was too slow to answer (a
    starved host's deadlock detector failed the query's 2 s; CI saw a test fail on it), up to
    ``eventually``'s bound. Any other refusal is the answer: tests of a stalled, silent or
    failing worker ask ``handle.query`` themselves."""
    deadline = time.monotonic() + HANG
    while True:
        try:
            return await handle.query(query, *args, **kwargs)
        except Exception as exc:
            if not worker_slow(exc) or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.1)
