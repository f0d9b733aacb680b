import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from ambient.storage.migrate import (
    HEAD,
    alembic_config,
    current_revisions,
    head_revision,
    upgrade,
    upgrade_async,
)
from tests.support.postgres import new_database

# alembic_version of a database the branched chain (every area off 0003) brought to its heads:
# one row per branch, 0011 under 0012.
BRANCHED_HEADS = (
    "0004_roles",
    "0005_delivery",
    "0006_briefing",
    "0007_remediation",
    "0008_agent",
    "0009_discussions",
    "0010_watch_polls",
    "0012_poll_leases",
    "0013_xiaozhi_endpoints",
    "0014_xiaozhi_devices",
    "0016_user_language",
)


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind (a fresh PostgreSQL database per test)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
        return
    yield new_database(request.getfixturevalue("postgres_server"))


def _schema(url: str) -> dict[str, object]:
    """Tables, their columns (any order: the branched chain added some elsewhere), indexes."""

    def read(connection: Connection) -> dict[str, object]:
        found = inspect(connection)
        return {
            table: (
                {(c["name"], str(c["type"]), c["nullable"]) for c in found.get_columns(table)},
                {i["name"] for i in found.get_indexes(table)},
            )
            for table in found.get_table_names()
        }

    async def run() -> dict[str, object]:
        engine = create_async_engine(url)
        async with engine.connect() as conn:
            schema = await conn.run_sync(read)
        await engine.dispose()
        return schema

    return asyncio.run(run())


def _as_branched(url: str, revision: str, rows: tuple[str, ...]) -> None:
    """A database the branched chain made: the same migrations run, one row per branch."""
    upgrade(url, revision)

    async def write() -> None:
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM alembic_version"))
            for row in rows:
                await conn.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": row})
        await engine.dispose()

    asyncio.run(write())


def test_the_migrations_form_one_chain_with_one_head() -> None:
    script = ScriptDirectory.from_config(alembic_config(""))
    assert script.get_heads() == [head_revision()]
    assert script.get_bases() == ["0001"]
    # A new migration moves HEAD too: starts compare the database with it, not the scripts.
    assert head_revision() == HEAD


def test_upgrade_creates_tables_and_is_repeatable(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    url = f"sqlite+aiosqlite:///{path}"
    assert upgrade(url) == ((), head_revision())
    assert upgrade(url) == ((head_revision(),), head_revision())  # nothing left to do
    assert {"users", "events", "deliveries", "inbox", "alembic_version"} <= _tables(path)


def test_downgrade_to_base_removes_tables(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    url = f"sqlite+aiosqlite:///{path}"
    upgrade(url)
    command.downgrade(alembic_config(url), "base")
    assert _tables(path) == {"alembic_version"}


def test_a_database_at_the_branched_heads_reaches_the_one_head_without_running_anything(
    url: str, tmp_path: Path
) -> None:
    fresh = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    upgrade(fresh)
    # The last revision of the branched chain; later ones run as on any database.
    _as_branched(url, BRANCHED_HEADS[-1], BRANCHED_HEADS)
    assert asyncio.run(current_revisions(url)) == BRANCHED_HEADS
    before = _schema(url)
    # Any branched migration run again would fail (its tables and columns exist already).
    assert upgrade(url) == (BRANCHED_HEADS, head_revision())
    assert asyncio.run(current_revisions(url)) == (head_revision(),)
    assert set(_schema(url)) == set(before)
    if url.startswith("sqlite"):
        assert _schema(url) == _schema(fresh)


def test_a_database_from_before_later_branches_runs_only_the_missing_migrations(url: str) -> None:
    # As made when 0004_roles and 0006_briefing had landed, before 0005_delivery.
    _as_branched(url, "0006_briefing", ("0004_roles", "0006_briefing"))
    upgrade(url)
    assert asyncio.run(current_revisions(url)) == (head_revision(),)
    columns = {c[0] for c in _schema(url)["deliveries"][0]}  # type: ignore[index]
    assert {"lease_until", "task", "kind"} <= columns  # 0005_delivery ran


def test_branch_rows_with_a_gap_are_refused_rather_than_stamped(tmp_path: Path) -> None:
    # 0006..0008 landed before 0005: rows without them are no released database.
    url = f"sqlite+aiosqlite:///{tmp_path / 'gap.db'}"
    _as_branched(url, "0004_roles", ("0004_roles", "0005_delivery"))
    with pytest.raises(RuntimeError, match="not the branches of a released database"):
        upgrade(url)


async def test_upgrade_async_reports_from_and_to(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    assert await upgrade_async(url) == ((), head_revision())


def test_a_voiceprint_two_users_share_stops_the_upgrade_naming_them(url: str) -> None:
    """0021 makes a voiceprint id one user's: a database where two already share one (any
    case) is told which users to change, not an IntegrityError from deep in the index."""
    upgrade(url, "0020_endpoint_broker_key")

    async def seed() -> None:
        from ambient.domain.users import UserCreate
        from ambient.storage import Database
        from ambient.storage.repositories import UserRepository

        db = Database(url)
        async with db.session() as session:
            for name in ("ann", "bo", "cy", "di"):
                await UserRepository(session).create(UserCreate(name=name))
            await session.commit()
            # As a database before 0021 could hold them: two users, one voiceprint in two cases.
            for name, voiceprint in (("ann", "VP-1"), ("bo", "vp-1")):
                await session.execute(
                    text("UPDATE users SET voiceprint_id = :v WHERE name = :n"),
                    {"n": name, "v": voiceprint},
                )
            await session.commit()
        await db.close()

    asyncio.run(seed())
    from typer.testing import CliRunner

    from ambient.cli import app

    result = CliRunner().invoke(app, ["migrate"], env={"AMBIENT_DATABASE_URL": url})
    said = result.output
    assert result.exit_code == 1 and "Traceback" not in said, said
    assert "'ann'" in said and "'bo'" in said and "vp-1" in said.lower(), said
    assert asyncio.run(current_revisions(url)) == ("0020_endpoint_broker_key",)
