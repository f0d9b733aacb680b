"""What every tool can reach: built once by the entry point (API lifespan or `ambient mcp`)."""

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
from ambient.storage.migrate import require_current


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
    settings: Settings, *, stdio_user: str | None = None
) -> AsyncIterator[AppState]:
    """Database and a lazy Temporal client, closed on exit; a database behind is refused."""
    async with AsyncExitStack() as stack:
        # Deploys migrate as their own step (`ambient migrate`); a start never changes the schema.
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
    """Lets the API build the MCP app first and hand it the state when its lifespan starts."""

    def __init__(self, state: AppState | None = None) -> None:
        self.state = state

    def get(self) -> AppState:
        if self.state is None:
            raise RuntimeError("application state is not ready (lifespan not started)")
        return self.state
