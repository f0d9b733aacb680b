"""Alembic environment: async engines, URL from the config set by ambient.storage.migrate."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from ambient.storage import polls  # noqa: F401  (its tables join Base.metadata)
from ambient.storage.models import Base

target_metadata = Base.metadata
MIGRATOR = {"name": "ambient-ops migrate"}  # the advisory lock's name
BEFORE = "revisions before"  # the config attribute `migrate.upgrade` reads


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # One migrator at a time (any CLI command migrates first, a deploy's migrate
            # beside an operator's command): the second waits here, then reads the version
            # the first committed and runs nothing; both ran every migration at once, and one
            # failed on a table the other had made. Held until this transaction ends.
            connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), MIGRATOR)
        # Where the database was as this run began, read under the lock (`migrate.upgrade`
        # says it): read before it, a second migrator said it migrated an empty database.
        heads = tuple(sorted(context.get_context().get_current_heads()))
        context.config.attributes.setdefault(BEFORE, heads)
        context.run_migrations()


async def _run_async() -> None:
    engine = create_async_engine(context.config.get_main_option("sqlalchemy.url") or "")
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=context.config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
