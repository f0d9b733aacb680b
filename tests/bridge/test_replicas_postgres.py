"""Replicas on a real PostgreSQL: each its own engine, claiming at the same moment."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from mcp.server.mcpserver import MCPServer
from sqlalchemy import select, text

from ambient.bridge.endpoints import EndpointCipher, EndpointCreate, Endpoints
from ambient.bridge.runner import BridgeRunner
from ambient.clients.guard import DestinationGuard
from ambient.domain.users import UserCreate
from ambient.storage import Database
from ambient.storage.migrate import upgrade_async
from ambient.storage.models import AuditRecord, XiaozhiWithdrawal
from ambient.storage.users import UserRepository
from tests.conftest import unique
from tests.foundation.test_postgres import postgres_url  # noqa: F401 - the fixture
from tests.standins.xiaozhi_broker import running_broker
from tests.support.waits import eventually

SECRET = "test-secret-key-for-endpoints"
LOOPBACK = DestinationGuard(["127.0.0.1/32"])


def tools(_: str) -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer(name="replica")

    @server.tool()
    def hello() -> str:
        """Say hello."""
        return "你好"

    return server


async def test_replicas_claiming_at_once_on_postgresql_hold_each_endpoint_once(
    postgres_url: str,  # noqa: F811 - the fixture
) -> None:
    await upgrade_async(postgres_url)
    tokens = [unique("jwt") for _ in range(3)]
    databases = [Database(postgres_url) for _ in range(3)]
    runners = [
        BridgeRunner(db, EndpointCipher(SECRET), LOOPBACK, tools, name=unique("replica"))
        for db in databases
    ]
    try:
        async with running_broker(set(tokens)) as broker:
            async with databases[0].session() as session:
                user = unique("pg-user")
                await UserRepository(session).create(UserCreate(name=user))
                await session.commit()
                endpoints = Endpoints(session, EndpointCipher(SECRET), LOOPBACK)
                for token in tokens:
                    await endpoints.add(None, EndpointCreate(user=user, url=broker.url(token)))
            for _ in range(3):
                await asyncio.gather(*(runner.scan() for runner in runners))
            held = sorted(id_ for runner in runners for id_ in runner.held)
            assert len(held) == len(set(held)) == 3
            for token in tokens:
                connection = await broker.held(token)
                assert (await connection.call_tool("hello", {}))["result"]["content"][0][
                    "text"
                ] == "你好"
            assert all(len(broker.connections[token]) == 1 for token in tokens)
    finally:
        for runner in runners:
            await runner.stop()
        for db in databases:
            await db.close()


async def test_one_接入点_registered_twice_at_once_on_postgresql_is_held_by_one_endpoint(
    postgres_url: str,  # noqa: F811 - the fixture
) -> None:
    """A double-submitted form (or two replicas) registered one 接入点 twice: both checks saw
    none, both rows were stored, and their two connections replaced each other at the broker
    for ever."""
    from ambient.bridge.endpoints import EndpointInputError
    from ambient.storage.models import XiaozhiEndpoint

    await upgrade_async(postgres_url)
    databases = [Database(postgres_url) for _ in range(2)]
    user = unique("pg-twice")
    url = f"wss://api.xiaozhi.me/mcp/?token={unique('jwt')}"
    try:
        async with databases[0].session() as session:
            await UserRepository(session).create(UserCreate(name=user))
            await session.commit()
        for _ in range(3):  # the race is the checks of both before either stores

            async def add(db: Database) -> object:
                async with db.session() as session:
                    endpoints = Endpoints(session, EndpointCipher(SECRET), LOOPBACK)
                    try:
                        return await endpoints.add(None, EndpointCreate(user=user, url=url))
                    except EndpointInputError as exc:
                        return exc

            answers = await asyncio.gather(*(add(db) for db in databases))
            refused = [a for a in answers if isinstance(a, EndpointInputError)]
            assert len(refused) == 1, answers
            assert refused[0].field == "url" and "already registered" in str(refused[0].message)
            async with databases[0].session() as session:
                rows = (
                    await session.scalars(
                        select(XiaozhiEndpoint).where(XiaozhiEndpoint.user == user)
                    )
                ).all()
                assert len(rows) == 1
                await session.delete(rows[0])
                await session.commit()
    finally:
        for db in databases:
            await db.close()


async def test_a_url_whose_masked_form_outgrows_its_column_is_registered_on_postgresql(
    postgres_url: str,  # noqa: F811 - the fixture
) -> None:
    """Masking puts *** for every parameter's value (and escapes the names): a URL within the
    2,000 characters allowed, with many short parameters, masked to over the 2,048 kept, and
    PostgreSQL refused the row (HTTP 500 from POST /xiaozhi/endpoints)."""
    await upgrade_async(postgres_url)
    database = Database(postgres_url)
    try:
        async with database.session() as session:
            user = unique("pg-mask")
            await UserRepository(session).create(UserCreate(name=user))
            await session.commit()
            url = "ws://127.0.0.1:9/mcp/?token=t" + "&é=1" * 490
            assert len(url) <= 2000
            added = await Endpoints(session, EndpointCipher(SECRET), LOOPBACK).add(
                None, EndpointCreate(user=user, url=url)
            )
        assert added.url.startswith("ws://127.0.0.1:9/mcp/?token=***&")
        assert len(added.url) <= 2048 and "=1" not in added.url
    finally:
        await database.close()


async def test_people_allowing_one_device_at_once_on_postgresql_are_all_kept(
    postgres_url: str,  # noqa: F811 - the fixture
) -> None:
    """Each allow read the device's speakers and wrote them back with the caller added: five
    people allowing one speaker at the same moment (a team told to do it in a meeting) were
    each told it was allowed, and all but the last writer's consent was lost."""
    from ambient.xiaozhi import DeviceService

    await upgrade_async(postgres_url)
    databases = [Database(postgres_url) for _ in range(5)]
    try:
        owner = unique("pg-owner")
        people = [unique("pg-voice") for _ in range(5)]
        async with databases[0].session() as session:
            for name in (owner, *people):
                await UserRepository(session).create(UserCreate(name=name))
            await session.commit()
        mac = "aa:bb:cc:" + ":".join(unique("")[-6:][i : i + 2] for i in (0, 2, 4))
        await DeviceService(databases[0]).add(owner, owner, mac)
        allows = zip(databases, people, strict=True)
        await asyncio.gather(*(DeviceService(db).allow(name, mac) for db, name in allows))
        [device] = [d for d in await DeviceService(databases[0]).list(None) if d.device_id == mac]
        assert device.speakers == sorted(people)
    finally:
        for db in databases:
            await db.close()


async def test_withdrawals_through_two_devices_of_one_owner_at_once_on_postgresql_both_hold(
    postgres_url: str,  # noqa: F811 - the fixture
) -> None:
    """A withdrawal locked the device it was named through, then every device of the owner's:
    two at once through devices A and B each held one and waited for the other (PostgreSQL's
    'deadlock detected', a 500). One lock per owner is taken first."""
    from ambient.xiaozhi import DeviceService

    await upgrade_async(postgres_url)
    databases = [Database(postgres_url) for _ in range(2)]
    try:
        owner = unique("pg-owner")
        async with databases[0].session() as session:
            await UserRepository(session).create(UserCreate(name=owner))
            await session.commit()
        macs = ["aa:bb:cc:" + ":".join(unique("")[-6:][i : i + 2] for i in (0, 2, 4)) for _ in "ab"]
        for mac in macs:
            await DeviceService(databases[0]).add(None, owner, mac)
        for _ in range(8):
            people = [unique("pg-lin"), unique("pg-max")]
            async with databases[0].session() as session:
                for name in people:
                    await UserRepository(session).create(UserCreate(name=name))
                await session.commit()
            for name in people:
                for mac in macs:
                    await DeviceService(databases[0]).allow(name, mac)
            withdrawals = zip(databases, macs, people, strict=True)
            await asyncio.gather(
                *(DeviceService(db).withdraw(None, mac, name) for db, mac, name in withdrawals)
            )
            devices = [d for d in await DeviceService(databases[0]).list(None) if d.user == owner]
            assert all(set(people) <= set(d.withdrawn) for d in devices)
        devices = [d for d in await DeviceService(databases[0]).list(None) if d.user == owner]
        assert [d.speakers for d in devices] == [[], []]
    finally:
        for db in databases:
            await db.close()


# The backends waiting, directly or through another waiter, on the locks of :holder (asked in a
# transaction of its own: one reads pg_stat_activity as it was at its first read).
_WAITING_ON = text(
    "WITH RECURSIVE waiting(pid) AS ("
    " SELECT pid FROM pg_stat_activity WHERE :holder = ANY(pg_blocking_pids(pid))"
    " UNION SELECT a.pid FROM pg_stat_activity a JOIN waiting w"
    " ON w.pid = ANY(pg_blocking_pids(a.pid))) SELECT count(*) FROM waiting"
)


async def test_let_backs_of_one_withdrawal_at_once_on_postgresql_lift_it_once(
    postgres_url: str,  # noqa: F811 - the fixture
) -> None:
    """Two let-backs of one withdrawal at once (both naming the owner; one the owner, one a
    device): without the owner's turn each read it withdrawn, each deleted it and each
    audited a let back. Each round holds the withdrawal's row until both wait, so both had
    read it by then (or one waits for the owner's turn): one lifts it, one is refused."""
    from ambient.xiaozhi import DeviceService
    from ambient.xiaozhi_errors import InvalidDeviceError

    await upgrade_async(postgres_url)
    databases = [Database(postgres_url) for _ in range(4)]

    async def both_wait(holder: int) -> bool:
        async with databases[3].session() as session:
            return await session.scalar(_WAITING_ON, {"holder": holder}) == 2

    try:
        owner = unique("pg-owner")
        async with databases[0].session() as session:
            await UserRepository(session).create(UserCreate(name=owner))
            await session.commit()
        mac = "aa:bb:cc:" + ":".join(unique("")[-6:][i : i + 2] for i in (0, 2, 4))
        await DeviceService(databases[0]).add(None, owner, mac)
        for by_device in (False, True):
            lin = unique("pg-lin")
            async with databases[0].session() as session:
                await UserRepository(session).create(UserCreate(name=lin))
                await session.commit()
            await DeviceService(databases[0]).allow(lin, mac)
            await DeviceService(databases[0]).withdraw(None, mac, lin)
            async with databases[2].session() as holder:
                held = select(XiaozhiWithdrawal).where(XiaozhiWithdrawal.speaker == lin)
                assert await holder.scalar(held.with_for_update()) is not None
                first, second = (DeviceService(db) for db in databases[:2])
                lifts = [
                    asyncio.ensure_future(first.let_back_from(None, owner, lin)),
                    asyncio.ensure_future(
                        second.let_back(None, mac, lin)
                        if by_device
                        else second.let_back_from(owner, owner, lin)
                    ),
                ]
                pid = await holder.scalar(text("SELECT pg_backend_pid()"))
                await eventually(partial(both_wait, pid), "both let-backs waiting")
                await holder.rollback()
            done = await asyncio.gather(*lifts, return_exceptions=True)
            refused = [d for d in done if isinstance(d, BaseException)]
            assert len(refused) == 1 and isinstance(refused[0], InvalidDeviceError), done
            async with databases[0].session() as session:
                audited = select(AuditRecord).where(AuditRecord.action == "xiaozhi.device.let_back")
                rows = await session.scalars(audited)
                assert [r.detail["speaker"] for r in rows].count(lin) == 1
    finally:
        for db in databases:
            await db.close()
