"""Grants made at once: each audited change starts from the value the one before it left."""

from __future__ import annotations

import asyncio

import pytest

from ambient import grants
from ambient.domain.users import Grant, Role, UserCreate
from ambient.storage import Database
from ambient.storage.audit import AuditRepository
from ambient.storage.users import UserRepository
from tests.conftest import unique
from tests.foundation.test_postgres import postgres_url  # noqa: F401  (fixture)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request: pytest.FixtureRequest) -> Database:
    """The same test on the migrated SQLite file and on a real PostgreSQL."""
    database: Database = request.getfixturevalue("db" if request.param == "sqlite" else "pg")
    return database


async def _changes(db: Database, name: str) -> list[dict[str, str]]:
    async with db.session() as session:
        records = await AuditRepository(session).list(subject=f"user:{name}", action="user.grant")
    return [r.detail["rollback_permission"] for r in records]


async def test_a_grant_read_before_another_committed_sets_from_what_is_stored(
    any_db: Database,
) -> None:
    """Two admins open the same user; one grants execute. The other's grant of execute was
    audited "dry_run -> execute" a second time, from the value it had read before."""
    admin, name = unique("ada"), unique("gina")
    async with any_db.session() as session:
        users = UserRepository(session)
        await users.create(UserCreate(name=admin, role=Role.ADMIN), actor="operator")
        await users.create(UserCreate(name=name, rollback_permission="dry_run"), actor="operator")
        await session.commit()
    async with any_db.session() as first, any_db.session() as second:
        mine = await UserRepository(first).existing(name, LookupError(name))
        theirs = await UserRepository(second).existing(name, LookupError(name))
        execute = Grant(rollback_permission="execute")
        assert await UserRepository(first).grant(mine, execute, actor=admin) == {
            "rollback_permission": {"old": "dry_run", "new": "execute"}
        }
        await first.commit()
        assert await UserRepository(second).grant(theirs, execute, actor=admin) == {}
        await second.commit()
        assert theirs.rollback_permission == "execute"
    assert await _changes(any_db, name) == [{"old": "dry_run", "new": "execute"}]


async def test_grants_at_once_audit_one_unbroken_chain(any_db: Database) -> None:
    admin, name = unique("ada"), unique("gina")
    async with any_db.session() as session:
        users = UserRepository(session)
        caller, _ = await users.create(UserCreate(name=admin, role=Role.ADMIN), actor="operator")
        await users.create(UserCreate(name=name, rollback_permission="dry_run"), actor="operator")
        await session.commit()

    async def grant(permission: str) -> dict[str, dict[str, str]]:
        async with any_db.session() as session:
            granted = await grants.grant(
                session, caller, name, Grant(rollback_permission=permission)
            )
        return granted.changes

    asked = ["execute", "none"] * 4
    answers = await asyncio.gather(*(grant(p) for p in asked))
    chain = await _changes(any_db, name)
    assert len(chain) == sum(1 for a in answers if a)
    before = "dry_run"
    for change in chain:
        assert change["old"] == before != change["new"], chain
        before = change["new"]
    async with any_db.session() as session:
        user = await UserRepository(session).existing(name, LookupError(name))
    assert user.rollback_permission == before
