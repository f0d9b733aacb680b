"""A client that drops its connection while the API's database work is under way (a read, a
write, a web form's write, an event stream's read): the pool is whole after it, the next
request is answered, a write is stored whole or not at all, and no close is left pending."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import event, select
from temporalio.testing import WorkflowEnvironment

from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.models import User
from api.app import create_app
from tests.foundation.test_cancelled_doors import Hold
from tests.support.admins import admin_headers
from tests.support.servers import HANG, http_client, serve
from tests.support.waits import eventually


@asynccontextmanager
async def served(
    settings: Settings, dev_env: WorkflowEnvironment, **update: Any
) -> AsyncIterator[tuple[str, Database, dict[str, str]]]:
    """The app on loopback: its base URL, its database and member alice's bearer headers."""
    address = dev_env.client.service_client.config.target_host
    app = create_app(settings.model_copy(update={"temporal_address": address, **update}))
    async with serve(app) as base:
        async with http_client(base) as http:
            made = await http.post(
                "/users", json={"name": "alice"}, headers=await admin_headers(settings)
            )
        yield base, app.state.holder.get().db, {"Authorization": f"Bearer {made.json()['token']}"}


def arm_at(hold: Hold, prefix: str) -> None:
    """Hold the first statement starting with ``prefix`` (not whatever runs first)."""

    fired = False

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        nonlocal fired
        if statement.startswith(prefix) and not fired:
            hold.armed = fired = True

    event.listen(hold.db.engine.sync_engine, "before_cursor_execute", before)


async def dropped(base: str, request: str, hold: Hold) -> None:
    """Send ``request`` on a raw socket and close it once a statement of it is held."""
    port = int(base.rsplit(":", 1)[1])
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request.encode())
    await writer.drain()
    async with asyncio.timeout(HANG):  # a guard: a request refused before it reads hangs here
        await hold.entered.wait()
    writer.close()
    await writer.wait_closed()


def request(
    base: str, method: str, path: str, headers: dict[str, str], body: str = "", kind: str = ""
) -> str:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {base.removeprefix('http://')}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body:
        lines += [f"Content-Type: {kind}", f"Content-Length: {len(body.encode())}"]
    return "\r\n".join(lines) + "\r\n\r\n" + body


async def whole_after(db: Database, base: str, headers: dict[str, str], hold: Hold) -> None:
    """Released, the dropped request's work ends; its connection is back and the next
    request is answered."""
    hold.release.set()

    async def back() -> bool:
        return db.engine.pool.checkedout() == 0  # type: ignore[attr-defined,no-any-return]

    await eventually(back, "the dropped request's connection back in the pool")
    async with http_client(base) as http:
        assert (await http.get("/users/me", headers=headers)).status_code == 200
    # Its session's connection goes back as the request's dependencies end, which may be
    # just after the answer reached the client (a clean-clone CI read it still out).
    await eventually(back, "the next request's connection back in the pool")


@pytest.fixture(autouse=True)
def earlier_tests_collected(caplog: pytest.LogCaptureFixture) -> None:
    """What earlier tests of this process left pending is collected (and logged) before the
    test: ``nothing_pending`` speaks of this test's requests only (a poll's shutdown watch an
    earlier test's worker left was reported here)."""
    gc.collect()
    caplog.clear()


def nothing_pending(caplog: pytest.LogCaptureFixture) -> None:
    gc.collect()
    assert not [r for r in caplog.records if "destroyed but it is pending" in r.getMessage()]


async def test_a_request_dropped_inside_a_read_leaves_the_pool_whole(
    settings: Settings, dev_env: WorkflowEnvironment, caplog: pytest.LogCaptureFixture
) -> None:
    async with served(settings, dev_env) as (base, db, headers):
        hold = Hold(db)
        try:
            hold.armed = True
            await dropped(base, request(base, "GET", "/users/me", headers), hold)
            await whole_after(db, base, headers, hold)
        finally:
            hold.close()
    nothing_pending(caplog)


async def test_a_request_dropped_inside_a_write_stores_it_whole(
    settings: Settings, dev_env: WorkflowEnvironment, caplog: pytest.LogCaptureFixture
) -> None:
    config = {"channels": [{"type": "inbox"}], "quiet_hours": None}
    async with served(settings, dev_env) as (base, db, headers):
        hold = Hold(db)
        try:
            arm_at(hold, "UPDATE users")
            body = json.dumps(config)
            put = request(base, "PUT", "/users/me/push", headers, body, "application/json")
            await dropped(base, put, hold)
            await whole_after(db, base, headers, hold)
        finally:
            hold.close()
        async with db.session() as session:
            stored = await session.scalar(select(User.push_config).where(User.name == "alice"))
        # The server does not cancel a plain request its client left: the write ran to its
        # commit, whole.
        assert stored is not None and [c["type"] for c in stored["channels"]] == ["inbox"], stored
    nothing_pending(caplog)


async def test_a_web_form_dropped_inside_its_write_stores_it_whole_or_not_at_all(
    settings: Settings, dev_env: WorkflowEnvironment, caplog: pytest.LogCaptureFixture
) -> None:
    async with served(settings, dev_env, open_registration=True) as (base, db, headers):
        hold = Hold(db)
        try:
            arm_at(hold, "INSERT INTO users")
            form = "name=bob&email=bob%40example.com"
            post = request(
                base,
                "POST",
                "/register",
                {"Origin": base},
                form,
                "application/x-www-form-urlencoded",
            )
            await dropped(base, post, hold)
            await whole_after(db, base, headers, hold)
        finally:
            hold.close()
        async with db.session() as session:
            bob = await session.scalar(select(User).where(User.name == "bob"))
        assert bob is not None and bob.email == "bob@example.com" and bob.api_token_hash
    nothing_pending(caplog)


async def test_an_event_stream_dropped_inside_its_read_closes_its_connection_undisturbed(
    settings: Settings, dev_env: WorkflowEnvironment, caplog: pytest.LogCaptureFixture
) -> None:
    async with served(settings, dev_env) as (base, db, headers):
        hold = Hold(db)
        try:
            # The stream's reads (new events, the token still valid) run after its headers:
            # its client leaving cancels them (sse-starlette cancels the stream on disconnect).
            arm_at(hold, "SELECT users.api_token_hash")
            await dropped(base, request(base, "GET", "/events/stream", headers), hold)
            await eventually(hold.closing, "the held connection closing")
            await whole_after(db, base, headers, hold)
        finally:
            hold.close()
    nothing_pending(caplog)
