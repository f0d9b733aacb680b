"""An MCP client acting as one user over a test's services, as `ambient mcp --user NAME` serves."""

from __future__ import annotations

import dataclasses

from mcp import Client
from temporalio.client import Client as TemporalClient

from ambient.deps import WorkerDeps
from ambient.settings import Settings
from ambient.wiring import AppState, StateHolder
from mcp_server.server import build_server
from mcp_server.voice import build_voice_server


def mcp_as(
    source: AppState | WorkerDeps,
    user: str,
    *,
    temporal: TemporalClient | None = None,
    settings: Settings | None = None,
    voice: bool = False,
    read_only: bool = False,
) -> Client:
    """``user``'s MCP client (the voice profile's with ``voice``), used as ``async with``: over
    an AppState's services, or a worker's deps with ``temporal`` (None: a server that never
    asks Temporal). ``settings`` replace the source's (a test worker's task queue)."""
    if isinstance(source, AppState):
        state = dataclasses.replace(source, stdio_user=user, settings=settings or source.settings)
    else:
        state = AppState(
            settings=settings or source.settings,
            db=source.db,
            temporal=temporal,  # type: ignore[arg-type]  # None: nothing asks it
            channels=source.channels,
            stdio_user=user,
        )
    build = build_voice_server if voice else build_server
    return Client(build(state.settings, holder=StateHolder(state), read_only=read_only))
