"""Alembic migrations: `ambient migrate` applies them; every other start only checks the revision.

The revisions form one linear chain (tests/foundation/test_migrations.py checks there is one
head). A new migration's ``down_revision`` is the current head.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from ambient.storage.db import Database

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).parent / "migrations"
# The chain's head, named here so that a start on a current database (every API, worker and
# CLI command) reads one row and loads neither alembic nor the migration scripts (a third of a
# second of CPU each); tests/foundation/test_migrations.py checks it is the scripts' head.
HEAD = "0034_nul_escapes"

# Until the chain was made linear, every area's revision hung off 0003 (0012 off 0011), so a
# database kept one alembic_version row per branch. Those rows name a prefix of today's chain
# (its order is the order the revisions landed in); `ambient migrate` stamps that prefix's last
# revision in their place, running nothing.
BRANCHED_FROM = "0003"
NESTED_IN_BRANCH = {"0012_poll_leases": "0011_watch_poll_ends"}


class MigrationRefusedError(RuntimeError):
    """A migration found data it cannot carry over; the message says what to change first."""


class DatabaseBehindError(RuntimeError):
    """The database is not at the revision this code expects; `ambient migrate` brings it,
    unless a newer release migrated it (no release migrates a database down)."""

    def __init__(self, current: tuple[str, ...], expected: str) -> None:
        at = ", ".join(current) or "none (an empty database)"
        newer = set(current) - set(revision_chain())
        super().__init__(
            f"the database is at revision {at}; this release expects {expected}: "
            + (
                "a newer release migrated it and no release migrates a database down: run "
                "that release, or restore the backup taken before its migration"
                if newer
                else "run `ambient migrate` first"
            )
        )


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(""))


def head_revision() -> str:
    """The head of the migration scripts (HEAD names it without loading them)."""
    if (
        head := _scripts().get_current_head()
    ) is None:  # several heads: test_migrations fails first
        raise RuntimeError("the migrations have more than one head: chain the newest one")
    return head


def _revisions(connection: Connection) -> tuple[str, ...]:
    if not inspect(connection).has_table("alembic_version"):
        return ()
    rows = connection.execute(text("SELECT version_num FROM alembic_version"))
    return tuple(sorted(row[0] for row in rows))


async def current_revisions(url: str) -> tuple[str, ...]:
    """The rows of the database's alembic_version (empty for a database never migrated)."""
    # Its SQLite folder made: an absent database is an empty one.
    async with Database(url) as db, db.engine.connect() as connection:
        return await connection.run_sync(_revisions)


async def behind(db: Database) -> DatabaseBehindError | None:
    """Why no process of this release starts on ``db`` (not at the head), or None."""
    async with db.engine.connect() as connection:
        current = await connection.run_sync(_revisions)
    return None if current == (HEAD,) else DatabaseBehindError(current, HEAD)


async def require_current(url: str) -> None:
    """Refuse to start on a database that `ambient migrate` has not brought to the head."""
    # Its SQLite folder made: an absent database is an empty one.
    async with Database(url) as db:
        if (refused := await behind(db)) is not None:
            raise refused


def revision_chain() -> list[str]:
    """This release's revisions, oldest first (loads the scripts: not on a start's way)."""
    return [rev.revision for rev in reversed(list(_scripts().walk_revisions()))]


def linear_revision(rows: tuple[str, ...]) -> str:
    """The one revision a database left with the branched chain's rows is at; refused unless
    they are old heads of a prefix of the chain (stamping would skip migrations never run)."""
    chain = revision_chain()
    last = max(chain.index(row) for row in rows)
    branched = chain[chain.index(BRANCHED_FROM) + 1 : last + 1]
    expected_rows = set(branched) - {NESTED_IN_BRANCH[r] for r in branched if r in NESTED_IN_BRANCH}
    if set(rows) != expected_rows:
        raise RuntimeError(
            f"alembic_version holds {sorted(rows)}, not the branches of a released database "
            f"(expected {sorted(expected_rows)}): stamp its revision by hand "
            "(alembic stamp --purge) before `ambient migrate`"
        )
    return chain[last]


def upgrade(url: str, revision: str = "head") -> tuple[tuple[str, ...], str]:
    """Bring the database at ``url`` to ``revision``: (revisions before, revision after)."""
    # Blocking: alembic's env.py runs its own event loop.
    before = asyncio.run(current_revisions(url))
    if revision == "head" and before == (HEAD,):
        return before, HEAD  # nothing to run
    from alembic import command

    if set(before) - set(revision_chain()):  # a newer release's: refused, not alembic's error
        raise MigrationRefusedError(str(DatabaseBehindError(before, HEAD)))
    config = alembic_config(url)
    if len(before) > 1:
        command.stamp(config, linear_revision(before), purge=True)
    command.upgrade(config, revision)
    after = asyncio.run(current_revisions(url))
    # As the database was when this run held the lock (another migrator may have run first).
    return tuple(config.attributes.get("revisions before", before)), ", ".join(after)


async def upgrade_async(url: str, revision: str = "head") -> tuple[tuple[str, ...], str]:
    # env.py calls asyncio.run, which cannot nest inside a running loop: use a thread.
    return await asyncio.to_thread(upgrade, url, revision)
