"""CLI sub-commands by area; each module exposes a Typer `app` that ambient/cli.py adds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.migrate import upgrade_async


@asynccontextmanager
async def operator_database(settings: Settings) -> AsyncIterator[Database]:
    """The app database for an operator command, brought up to date first (whoever runs these
    holds the database, as `ambient migrate` does) and closed after."""
    await upgrade_async(settings.resolved_database_url)
    db = Database(settings.resolved_database_url)
    try:
        yield db
    finally:
        await db.close()
