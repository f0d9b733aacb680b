"""A page that stalls, through the doors a user creates a watch at: the fetch's one deadline
covers its DNS lookups, and the create waits past it, so the first check's own "timed out"
is what the create answers (ambient/clients/web.py FETCH_TIMEOUT, ambient/watches/reads.py).
The worker's deadline here is FETCH (WorkerDeps.fetch_timeout), the create's wait PAST_FETCH
beyond it, as the product's 25 s is past its 20."""

# ruff: noqa: F811 - the fixture `loopback_deps` is used by name

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from ambient.briefing.service import BriefingService
from ambient.deps import WorkerDeps
from ambient.watches.reads import PAST_FETCH
from ambient.watches.service import TaskService
from tests.conftest import unique
from tests.watches.test_workflows import USER, loopback_deps  # noqa: F401  (fixture)
from worker import build_worker

STALLING_NAME = "pages.stalling-dns.example"
FETCH = 1.0  # the fetch's deadline here (the product's: ambient.clients.web.FETCH_TIMEOUT)


@pytest_asyncio.fixture
async def stalling_page() -> AsyncIterator[str]:
    """A page whose server takes the request and never answers."""
    ended = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await ended.wait()
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/status"
    finally:
        ended.set()
        server.close()


@pytest.fixture
def stalling_dns(monkeypatch: pytest.MonkeyPatch) -> Any:
    """STALLING_NAME's lookup never answers (until the test ends: then it fails)."""
    lookup, released = socket.getaddrinfo, threading.Event()

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == STALLING_NAME:
            released.wait()
            raise socket.gaierror(socket.EAI_AGAIN, "released")
        return lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield
    released.set()


@pytest_asyncio.fixture
async def service(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,
) -> AsyncIterator[TaskService]:
    """The product's doors over a worker whose fetches end after FETCH s (the product's 20),
    the create waiting PAST_FETCH beyond, as the product's does."""
    queue = unique("tq")
    loopback_deps.settings = loopback_deps.settings.model_copy(
        update={"temporal_task_queue": queue}
    )
    loopback_deps.fetch_timeout = FETCH
    async with build_worker(dev_env.client, loopback_deps, task_queue=queue):
        briefings = BriefingService(dev_env.client, loopback_deps.settings, loopback_deps.db)
        yield TaskService(
            dev_env.client,
            loopback_deps.settings,
            loopback_deps.db,
            briefings=briefings,
            baseline_wait=FETCH + PAST_FETCH,
        )


async def test_a_create_of_stalling_pages_answers_their_fetchs_own_timed_out(
    service: TaskService, stalling_page: str, stalling_dns: None
) -> None:
    """The create waited 20 s for the first check, the fetch's own deadline: a page that never
    answers was answered with no baseline at all, never "timed out". A name whose DNS lookup
    stalled was outside that deadline: its check never ended. Both now end at the fetch's
    deadline, and the create, waiting past it, says so for each."""
    stalling_name = f"http://{STALLING_NAME}/status"
    config = {"urls": [stalling_page, stalling_name], "check_interval_minutes": 60}
    made = await service.create(USER, "web_monitor", config, unique("stall"))
    await service.delete(USER, made.task_id)
    assert made.baseline is not None, made
    timed_out = {"outcome": "error", "error": f"timed out after {FETCH:g} s"}
    assert made.baseline["urls"] == {stalling_page: timed_out, stalling_name: timed_out}


async def test_a_threshold_watchs_create_over_a_stalling_source_answers_its_timed_out(
    service: TaskService, stalling_page: str, stalling_dns: None
) -> None:
    """A threshold watch's create reads its source through the same fetch: a source that
    never answers, or whose name's lookup stalls, is answered with its read's "timed out"."""
    made: dict[str, Any] = {}
    for source in (stalling_page, f"http://{STALLING_NAME}/value"):
        config = {
            "source": {"type": "http_json", "url": source, "json_path": "$.value"},
            "threshold": 100,
            "check_interval_minutes": 5,
        }
        ref = await service.create(USER, "threshold_watch", config, unique("stall"))
        await service.delete(USER, ref.task_id)
        made[source] = ref.baseline and (ref.baseline["value"], ref.baseline["error"])
    name = f"http://{STALLING_NAME}/value"
    assert made == {
        stalling_page: (None, f"timed out after {FETCH:g} s from {stalling_page}"),
        name: (None, f"timed out after {FETCH:g} s from {name}"),
    }
