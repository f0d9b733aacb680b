"""The real Tencent Cloud client, aimed at the stand-in API (tests/standins/tencent_api.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest
from tencentcloud.common.credential import Credential

from ambient.clients.tencent.client import TencentCloud
from ambient.cloud.audit import CloudGuard
from ambient.deps import WorkerDeps
from ambient.settings import Settings
from ambient.storage.audit import AuditRepository
from ambient.wiring import AppState
from tests.standins.tencent_api import SECRET_ID, SECRET_KEY, TencentApi
from tests.support.servers import HANG


def standin_tencent(base: str, backoff: float = 0.5) -> TencentCloud:
    """The real Tencent Cloud client, aimed at the stand-in served at ``base`` (``backoff``:
    its first wait on a rate limit, the client's own by default)."""
    return TencentCloud(
        Credential(SECRET_ID, SECRET_KEY),
        region="ap-guangzhou",
        endpoint=base.removeprefix("http://"),
        protocol="http",
        timeout=int(HANG),  # served on the test's own loop: a loaded host's answers come late
        backoff=backoff,
    )


def ops_state(
    deps: WorkerDeps, tencent: TencentCloud | None, settings: Settings | None = None
) -> AppState:
    """The doors' state of the stdio user "ops" on the stand-ins: no Temporal (the cloud tools
    need none)."""
    return AppState(
        settings=settings or deps.settings,
        db=deps.db,
        temporal=None,  # type: ignore[arg-type]
        channels=deps.channels,
        tencent=tencent,
        stdio_user="ops",
    )


def late_log_before_the_second_page(api: TencentApi, row: dict[str, object]) -> None:
    """Between the search's first and second page, a late log (a LogListener catching up)
    lands among the logs the first page held: by Offset, every older log moves one on."""
    api.before["SearchLog"] = lambda: api.before.__setitem__(
        "SearchLog", lambda: api.logs.append(row)
    )


def held_audit(
    monkeypatch: pytest.MonkeyPatch, fails: bool = False, started: list[str] | None = None
) -> tuple[asyncio.Event, asyncio.Event]:
    """The cloud audit's row writes wait, once come in (``arrived`` set each time, and each
    one's operation added to ``started``), until released: a database slow to answer (and
    then failing, if ``fails``)."""
    arrived, released = asyncio.Event(), asyncio.Event()
    write = CloudGuard.audit

    async def held(self: CloudGuard, actor: str, operation: str, *args: Any) -> None:
        if started is not None:
            started.append(operation)
        arrived.set()
        await released.wait()
        if fails:
            raise OSError("disk I/O error")
        await write(self, actor, operation, *args)

    monkeypatch.setattr(CloudGuard, "audit", held)
    return arrived, released


async def cancelled_while_out(
    state: AppState, asked: Awaitable[Any], held: tuple[asyncio.Event, asyncio.Event], action: str
) -> list[dict[str, Any]]:
    """The call ``asked`` cancelled while its request ``held`` (arrived, released) is out, the
    request then let go on: the details of the audit rows of ``action``."""
    arrived, released = held
    task = asyncio.ensure_future(asked)
    await arrived.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    released.set()
    async with state.db.session() as session:
        rows = await AuditRepository(session).list(action=action)
    return [r.detail for r in rows]
