"""What the voice tests share: an in-memory voice client and the check that a text is speech."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
from mcp import Client
from temporalio.client import Client as TemporalClient

from ambient import temporal
from ambient.deps import WorkerDeps
from ambient.remediation.views import RemediationSummary
from ambient.settings import Settings
from ambient.storage.migrate import upgrade_async
from ambient.wiring import AppState
from api.app import create_app
from tests.support.admins import admin_headers
from tests.support.mcp_as import mcp_as
from tests.support.servers import free_port, http_client, serve

# Written apart from the product's own cleaning, so the two can disagree.
_MARKDOWN = re.compile(r"[*_`#|<>\[\]]|^\s*[-+]\s|\n")
_URL = re.compile(r"(?:https?|wss?)://|www\.", re.IGNORECASE)
_EMOJI = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf\ufe0f]")
_ID = re.compile(
    r"remediation/|(?:web-monitor|threshold-watch|reminder|daily-briefing)/"
    r"|\b(?=[a-f]*\d)(?=\d*[a-f])[0-9a-f]{8,}\b|\bcls-[0-9a-z]+|\bamb_|\bxzd_",
    re.IGNORECASE,
)
# A sentence ends at 。！？ or at . ! ? before a space or the end ("3.5", "a.b" go on).
_SENTENCE_END = re.compile(r"[。！？]+|[.!?]+(?=\s|$)")


# What recent_errors says after "最近 7 天没有记录到错误" ("No errors recorded in the last 7 days")
# when Temporal cannot be reached (`voice_without_temporal`, the tests' settings): no task runs.
UNREACHED = "，但后台的 Temporal 服务连不上，现在任务没有在检查。请检查它是否在运行。"
UNREACHED_EN = (
    ", but I can't reach the Temporal service, so nothing is being checked right now."
    " Please check that it is running."
)


def worker_state(temporal: TemporalClient, deps: WorkerDeps, task_queue: str) -> AppState:
    """The services every door takes, aimed at a test worker's task queue."""
    settings = deps.settings.model_copy(update={"temporal_task_queue": task_queue})
    return AppState(settings=settings, db=deps.db, temporal=temporal, channels=deps.channels)


def assert_speakable(text: str) -> None:
    """One to three spoken sentences: no Markdown, no URL, no id, at most 300 characters."""
    assert text.strip(), "an empty answer says nothing"
    assert len(text) <= 300, (len(text), text)
    assert len(_SENTENCE_END.findall(text.rstrip("…"))) <= 3, f"over three sentences: {text!r}"
    assert not _MARKDOWN.search(text), f"markdown in {text!r}"
    assert not _URL.search(text), f"a URL in {text!r}"
    assert not _EMOJI.search(text), f"an emoji in {text!r}"
    assert not _ID.search(text), f"an id in {text!r}"


def voice_client(state: AppState, user: str) -> Client:
    return mcp_as(state, user, voice=True)


@asynccontextmanager
async def voice_without_temporal(deps: WorkerDeps, user: str) -> AsyncIterator[Client]:
    """``user``'s voice client over the test database, its Temporal a port nothing answers on."""
    settings = deps.settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    client = await temporal.connect(settings, lazy=True)
    async with mcp_as(deps, user, temporal=client, settings=settings, voice=True) as voice:
        yield voice


@asynccontextmanager
async def voice_with_silent_temporal(deps: WorkerDeps, user: str) -> AsyncIterator[Client]:
    """``user``'s voice client over the test database, its Temporal a loopback port that
    accepts connections and never answers (a hung or loaded host: not known to be down)."""
    held: list[asyncio.StreamWriter] = []

    async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accepted, never answered

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = deps.settings.model_copy(update={"temporal_address": f"127.0.0.1:{port}"})
    client = await temporal.connect(settings, lazy=True)
    try:
        async with mcp_as(deps, user, temporal=client, settings=settings, voice=True) as voice:
            yield voice
    finally:
        for writer in held:
            writer.close()
        server.close()


async def say(client: Client, tool: str, **args: Any) -> str:
    """Call a voice tool; its answer is never an error and always speakable."""
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    text = getattr(result.content[0], "text", "")
    assert_speakable(text)
    return text


def task_lists_counted(monkeypatch: Any) -> list[int]:
    """Every read of a user's whole task list from now on counted: ``counted[0]`` (a voice
    answer that needs a few tasks reads them, not all)."""
    from ambient.watches.reads import TaskReads

    counted = [0]
    read_all = TaskReads.list

    async def counting(self: TaskReads, *args: Any, **kwargs: Any) -> Any:
        counted[0] += 1
        return await read_all(self, *args, **kwargs)

    monkeypatch.setattr(TaskReads, "list", counting)
    return counted


@asynccontextmanager
async def voice_api(settings: Settings) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    """The API on ``settings``'s database, migrated, served on loopback: its base URL and a
    client to it."""
    await upgrade_async(settings.resolved_database_url)
    async with (
        serve(create_app(settings)) as base,
        http_client(base, timeout=20) as http,
    ):
        yield base, http


async def register(http: httpx.AsyncClient, settings: Settings, name: str) -> dict[str, str]:
    admin = await admin_headers(settings)
    made = await http.post("/users", json={"name": name}, headers=admin)
    assert made.status_code in (200, 201), made.text
    return {"Authorization": f"Bearer {made.json()['token']}"}


def fix_summary(
    n: int,
    service: str,
    *,
    user: str = "u",
    mode: str = "execute",
    state: str = "waiting_approval",
    ended: bool = False,
) -> RemediationSummary:
    """A remediation run as its list shows it (``remediation/r<n>``), for what the voice says
    of the fixes waiting; ``ended``: it has a finish time."""
    now = datetime.now(UTC)
    return RemediationSummary(
        id=n,
        remediation_id=f"remediation/r{n}",
        run_key=f"remediation/r{n}@1",
        user=user,
        service=service,
        alert_type="error_rate",
        mode=mode,
        state=state,
        score=3,
        budget=3,
        attempts=0,
        resolved_rung=None,
        started_at=now,
        finished_at=now if ended else None,
    )
