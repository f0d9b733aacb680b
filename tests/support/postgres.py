"""A real PostgreSQL for the tests (pgserver's embedded binaries): one server a test process,
an empty database of its own for each module or test that asks."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine


def new_database(server: str) -> str:
    """The URL of a new, empty database on the server whose ``postgres`` database is at
    ``server``: what a fresh server gave, without starting one (initdb and a start cost
    seconds of CPU, a ``CREATE DATABASE`` a few milliseconds)."""
    name = f"t_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        engine = create_async_engine(server, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            await engine.dispose()

    # A thread of its own: the fixture asking may be an async one, inside the running loop.
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, create()).result()
    return server.replace("/postgres?", f"/{name}?")
