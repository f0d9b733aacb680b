"""The composition root: settings, database, Temporal client and channels, built once by an
entry point (the API lifespan, `ambient mcp`, the CLI, the bridge) and handed to every door."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import httpx
from temporalio.client import Client

from ambient import temporal
from ambient.clients.llm import LLMClient
from ambient.clients.notify import ChannelRegistry
from ambient.clients.notify.registry import build_channels
from ambient.clients.tencent.client import TencentCloud
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.migrate import require_current, upgrade_async


@dataclass
class AppState:
    settings: Settings
    db: Database
    temporal: Client
    channels: ChannelRegistry
    tencent: TencentCloud | None = None
    # The user a stdio session acts as (`ambient mcp --user NAME`); HTTP uses the bearer token.
    stdio_user: str | None = None
    extras: dict[str, object] = field(default_factory=dict)


@asynccontextmanager
async def open_state(
    settings: Settings, *, stdio_user: str | None = None, upgrade: bool = False
) -> AsyncIterator[AppState]:
    """Database and a lazy Temporal client, closed on exit; a database behind is refused.

    ``upgrade``: a CLI command brings the database up to date first, as `ambient migrate` does
    (whoever runs it holds the database); the API and MCP never change the schema at start.
    """
    async with AsyncExitStack() as stack:
        if upgrade:
            await upgrade_async(settings.resolved_database_url)
        else:
            await require_current(settings.resolved_database_url)
        db = Database(settings.resolved_database_url)
        stack.push_async_callback(db.close)
        # Lazy: the API and MCP start (and report it) even while Temporal is down.
        client = await temporal.connect(settings, lazy=True)
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=30, trust_env=False))
        yield AppState(
            settings=settings,
            db=db,
            temporal=client,
            channels=build_channels(settings, db, http),
            tencent=TencentCloud.from_settings(settings),
            stdio_user=stdio_user,
        )


def llm_of(state: AppState) -> LLMClient:
    """The process's LLM client, made on first use (its HTTP client is reused)."""
    llm = state.extras.get("llm")
    if not isinstance(llm, LLMClient):
        llm = LLMClient(state.settings)
        state.extras["llm"] = llm
    return llm


class StateHolder:
    """Lets a door be built first (the API mounts the MCP app) and get the state when it starts."""

    def __init__(self, state: AppState | None = None) -> None:
        self.state = state

    def get(self) -> AppState:
        if self.state is None:
            raise RuntimeError("application state is not ready (lifespan not started)")
        return self.state
