"""A user's 接入点 are at most MAX_ENDPOINTS_PER_USER, also when several are registered at once
(a form sent from two tabs, two API replicas): each add counted the user's endpoints before any
of them was stored, so all of them passed the count and the user held more than the limit
(each one a connection the bridge keeps dialing)."""

from __future__ import annotations

import asyncio
import contextlib

from sqlalchemy import func, select

from ambient.bridge.endpoints import (
    MAX_ENDPOINTS_PER_USER,
    EndpointCipher,
    EndpointCreate,
    EndpointInputError,
    Endpoints,
)
from ambient.clients.guard import DestinationGuard
from ambient.domain.users import UserCreate
from ambient.storage import Database
from ambient.storage.migrate import upgrade_async
from ambient.storage.models import User, XiaozhiEndpoint
from ambient.storage.users import UserRepository
from tests.conftest import unique
from tests.foundation.test_postgres import postgres_url  # noqa: F401 - the fixture

SECRET = "test-secret-key-for-endpoints"
GUARD = DestinationGuard()
AT_ONCE = 3


def url() -> str:
    return f"wss://api.xiaozhi.me/mcp/?token={unique('jwt')}"


async def test_endpoints_registered_at_once_past_the_limit_leave_the_user_at_the_limit(
    database_url: str, monkeypatch: object
) -> None:
    await upgrade_async(database_url)
    # One engine per add, as API replicas (or requests on their own connections) have.
    databases = [Database(database_url) for _ in range(AT_ONCE)]
    user = unique("many")
    try:
        async with databases[0].session() as session:
            await UserRepository(session).create(UserCreate(name=user))
            await session.commit()
            endpoints = Endpoints(session, EndpointCipher(SECRET), GUARD)
            for _ in range(MAX_ENDPOINTS_PER_USER - 1):
                await endpoints.add(None, EndpointCreate(user=user, url=url()))

        # Each add waits after its count until all have counted (or a second has passed: adds
        # that take turns do not all get there at once).
        counted = 0
        everyone = asyncio.Event()
        looked_up = Endpoints._not_registered

        async def after_the_count(self: Endpoints, actor: User | None, address: str) -> None:
            nonlocal counted
            counted += 1
            if counted == AT_ONCE:
                everyone.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(everyone.wait(), 1)
            await looked_up(self, actor, address)

        setattr(Endpoints, "_not_registered", after_the_count)  # noqa: B010
        try:

            async def add(db: Database) -> object:
                async with db.session() as session:
                    endpoints = Endpoints(session, EndpointCipher(SECRET), GUARD)
                    try:
                        return await endpoints.add(None, EndpointCreate(user=user, url=url()))
                    except EndpointInputError as exc:
                        return exc

            answers = await asyncio.gather(*(add(db) for db in databases))
        finally:
            setattr(Endpoints, "_not_registered", looked_up)  # noqa: B010
        refused = [a for a in answers if isinstance(a, EndpointInputError)]
        assert len(refused) == AT_ONCE - 1, answers
        assert all(r.field == "user" and "at most 10" in str(r.message) for r in refused)
        async with databases[0].session() as session:
            held = await session.scalar(select(func.count()).where(XiaozhiEndpoint.user == user))
        assert held == MAX_ENDPOINTS_PER_USER
    finally:
        for db in databases:
            await db.close()
