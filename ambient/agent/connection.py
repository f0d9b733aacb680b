"""One live connection per MCP server, owned by its own task.

An MCP client's transport lives in anyio cancel scopes that must be exited by the task that
entered them, so each server gets an owner task that opens the client, runs the calls it is
handed, and closes it; callers from any request task talk to it through a queue. When the
transport breaks (the server restarted, the process died), the owner closes the client and
opens a new one for the next call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import CONNECTION_CLOSED

from ambient.agent.errors import ServerUnavailableError

log = logging.getLogger(__name__)
Operation = Callable[[Client], Awaitable[Any]]


class _Job:
    def __init__(self, operation: Operation) -> None:
        self.operation = operation
        self.future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()


_RECONNECT = object()
Item = _Job | object | None  # None closes


def broken_transport(exc: BaseException) -> bool:
    """Whether ``exc`` means the connection is gone (as opposed to a refused request)."""
    if isinstance(exc, BaseExceptionGroup):
        return any(broken_transport(inner) for inner in exc.exceptions)
    if isinstance(exc, MCPError):
        return exc.error.code == CONNECTION_CLOSED
    return isinstance(
        exc,
        httpx2.TransportError
        | OSError
        | anyio.ClosedResourceError
        | anyio.BrokenResourceError
        | anyio.EndOfStream,
    )


class ServerConnection:
    """Runs operations on one server's client; reconnects after the server went away."""

    def __init__(self, name: str, factory: Callable[[], Client]) -> None:
        self.name = name
        self._factory = factory
        self._jobs: asyncio.Queue[Item] = asyncio.Queue()
        self._owner: asyncio.Task[None] | None = None
        self.connects = 0

    async def run(self, operation: Operation) -> Any:
        """Run ``operation(client)``; a broken connection raises ServerUnavailableError."""
        if self._owner is None or self._owner.done():
            self._owner = asyncio.create_task(self._own(), name=f"mcp-{self.name}")
        job = _Job(operation)
        await self._jobs.put(job)
        return await job.future

    async def close(self) -> None:
        if self._owner is not None and not self._owner.done():
            await self._jobs.put(None)
            with suppress(Exception):
                await self._owner
        self._owner = None

    def _unavailable(self, exc: BaseException) -> ServerUnavailableError:
        while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
            exc = exc.exceptions[0]  # the cause, not "unhandled errors in a TaskGroup"
        reason = str(exc) or type(exc).__name__
        return ServerUnavailableError(f"MCP server {self.name!r} is unavailable: {reason}")

    async def _own(self) -> None:
        while True:
            item = await self._jobs.get()
            if item is None:
                return
            if not isinstance(item, _Job):
                continue  # a reconnect request with no connection open
            try:
                async with self._factory() as client:
                    self.connects += 1
                    running: set[asyncio.Task[None]] = set()
                    while isinstance(item, _Job):
                        task = asyncio.create_task(self._serve(client, item))
                        running.add(task)
                        task.add_done_callback(running.discard)
                        item = await self._jobs.get()
                    await asyncio.gather(*running, return_exceptions=True)
            except Exception as exc:
                # Could not connect, or the transport failed while closing.
                log.warning("MCP server %s unavailable: %s", self.name, exc)
                if isinstance(item, _Job) and not item.future.done():
                    item.future.set_exception(self._unavailable(exc))
                continue
            if item is None:
                return

    async def _serve(self, client: Client, job: _Job) -> None:
        try:
            result = await job.operation(client)
        except Exception as exc:
            if broken_transport(exc):
                self._jobs.put_nowait(_RECONNECT)
                exc = self._unavailable(exc)
            if not job.future.done():
                job.future.set_exception(exc)
        else:
            if not job.future.done():
                job.future.set_result(result)
