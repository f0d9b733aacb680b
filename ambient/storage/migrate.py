"""Run Alembic migrations programmatically (``ambient db upgrade`` and every start)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "heads") -> None:
    """Bring the database at ``url`` to ``revision`` (blocking; runs its own event loop).

    ``heads``: areas add migrations on their own branches from a shared base; all apply.
    """
    command.upgrade(alembic_config(url), revision)


async def upgrade_async(url: str, revision: str = "heads") -> None:
    # env.py calls asyncio.run, which cannot nest inside a running loop: use a thread.
    await asyncio.to_thread(upgrade, url, revision)
