"""A page that stalls, through the doors a user creates a watch at: the fetch's one deadline
covers its DNS lookups, and the create waits past it, so the first check's own "timed out"
is what the create answers (ambient/clients/web.py FETCH_TIMEOUT, ambient/watches/reads.py).
Real time: the product's 20 s deadline passes once."""

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
from ambient.watches.service import TaskService
from tests.conftest import unique
from tests.watches.test_workflows import USER, loopback_deps  # noqa: F401  (fixture)
from worker import build_worker

STALLING_NAME = "pages.stalling-dns.example"


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


async def test_a_create_of_stalling_pages_answers_their_fetchs_own_timed_out(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,
    stalling_page: str,
    stalling_dns: None,
) -> None:
    """The create waited 20 s for the first check, the fetch's own deadline: a page that never
    answers was answered with no baseline at all, never "timed out". A name whose DNS lookup
    stalled was outside that deadline: its check never ended. Both now end at the fetch's
    deadline, and the create, waiting past it, says so for each."""
    queue = unique("tq")
    loopback_deps.settings = loopback_deps.settings.model_copy(
        update={"temporal_task_queue": queue}
    )
    stalling_name = f"http://{STALLING_NAME}/status"
    config = {"urls": [stalling_page, stalling_name], "check_interval_minutes": 60}
    async with build_worker(dev_env.client, loopback_deps, task_queue=queue):
        briefings = BriefingService(dev_env.client, loopback_deps.settings, loopback_deps.db)
        service = TaskService(
            dev_env.client, loopback_deps.settings, loopback_deps.db, briefings=briefings
        )
        made = await service.create(USER, "web_monitor", config, unique("stall"))
        await service.delete(USER, made.task_id)
    assert made.baseline is not None, made
    timed_out = {"outcome": "error", "error": "timed out after 20 s"}
    assert made.baseline["urls"] == {stalling_page: timed_out, stalling_name: timed_out}
