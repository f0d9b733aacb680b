"""A voice call cut by its budget: answered at once, its work cancelled once, left to wind down."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import text

from ambient.speakers import SpeakerKind
from ambient.storage import Database
from ambient.wiring import AppState
from mcp_server import voice_answer


async def test_a_call_past_its_budget_is_answered_and_its_work_cancelled_only_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The budget's cancel reached the work inside a database session; SQLAlchemy then closed
    # the connection it broke, and the caller's own cancel (the MCP SDK cancels a request until
    # it ends) reached that close too: abandoned, "Task was destroyed but it is pending! …
    # _terminate_graceful_close". A cleanup stands in for the close: how often it is cancelled.
    started, cleaning, cleaned, release = (asyncio.Event() for _ in range(4))
    cancels = 0

    async def work(state: AppState, user: str) -> str:
        nonlocal cancels
        started.set()
        try:
            await asyncio.Event().wait()  # past any budget
        except asyncio.CancelledError:
            cancels += 1
            cleaning.set()
            try:
                await release.wait()  # the session's close
            except asyncio.CancelledError:
                cancels += 1
                raise
            cleaned.set()
            raise
        return "never"

    async def heard(state: AppState, owner: str, speaker: str | None) -> tuple[Any, bool]:
        return SimpleNamespace(kind=SpeakerKind.OWNER, user=SimpleNamespace(name=owner)), True

    monkeypatch.setattr(voice_answer, "heard", heard)
    monkeypatch.setattr(voice_answer, "CALL_BUDGET", 0.01)
    state = SimpleNamespace(stdio_user="vb")
    ctx: Any = SimpleNamespace(request_context=SimpleNamespace(lifespan_context=state, params={}))
    call = asyncio.ensure_future(voice_answer.answer(ctx, None, work))
    await started.wait()
    await cleaning.wait()
    call.cancel()  # the caller gives up too, while the work winds down
    said = await call  # answered, in the speaker's language: not cancelled with its work
    assert said.startswith("The system is slow right now"), said
    release.set()
    await cleaned.wait()
    assert cancels == 1


async def test_calls_cut_inside_sqlite_reads_close_their_connections_undisturbed(
    db: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Calls cut while their session reads, each cancelled again by its caller a few steps
    # later (as the MCP SDK does): none leaves a connection checked out or a close abandoned.
    async def work(state: AppState, user: str) -> str:
        async with db.session() as session:
            while True:
                await session.execute(text("SELECT 1"))

    async def heard(state: AppState, owner: str, speaker: str | None) -> tuple[Any, bool]:
        return SimpleNamespace(kind=SpeakerKind.OWNER, user=SimpleNamespace(name=owner)), False

    monkeypatch.setattr(voice_answer, "heard", heard)
    state = SimpleNamespace(stdio_user="vb")
    ctx: Any = SimpleNamespace(request_context=SimpleNamespace(lifespan_context=state, params={}))
    for calls in range(60):
        call = asyncio.ensure_future(voice_answer.answer(ctx, None, work))
        for _ in range(1 + calls % 12):  # into the reads, at a different point each time
            await asyncio.sleep(0)
        for _ in range(2):  # the budget's cancel stood in for, then the caller's
            call.cancel()
            for _ in range(calls % 5):
                await asyncio.sleep(0)
        with contextlib.suppress(asyncio.CancelledError):
            await call
    await asyncio.gather(*voice_answer._cut, return_exceptions=True)
    assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    await db.close()
    gc.collect()
    assert not [r for r in caplog.records if "destroyed but it is pending" in r.getMessage()]
