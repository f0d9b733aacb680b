"""An API whose PostgreSQL goes away says so: 503 naming the database, never a bare 500."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from ambient.settings import Settings
from ambient.status import DATABASE_DOWN
from ambient.storage.migrate import upgrade_async
from api.app import create_app
from tests.support.servers import free_port, http_client, serve, start_postgres


async def test_an_api_whose_postgresql_went_down_answers_503_naming_it(settings: Settings) -> None:
    with tempfile.TemporaryDirectory() as folder:  # short: a socket path has a length limit
        server = await asyncio.to_thread(start_postgres, folder)
        try:
            socket_dir = parse_qs(urlparse(server.get_uri()).query)["host"][0]
            url = f"postgresql+asyncpg://postgres@/postgres?host={socket_dir}"
            await upgrade_async(url)
            app = create_app(
                settings.model_copy(
                    update={"database_url": url, "temporal_address": f"127.0.0.1:{free_port()}"}
                )
            )
            async with (
                serve(app) as base,
                http_client(base) as api,
            ):
                stranger = {"Authorization": "Bearer amb_not-a-token"}
                assert (await api.get("/tasks", headers=stranger)).status_code == 401
                await asyncio.to_thread(server.cleanup)  # PostgreSQL stops under the API
                for _ in range(2):  # the pooled connection that died, then a new one refused
                    down = await api.get("/tasks", headers=stranger)
                    # Nobody is known with the database down: said in a user's terms, with
                    # no socket path, host or driver text (the log keeps them).
                    assert (down.status_code, down.json()) == (503, {"detail": DATABASE_DOWN})
                # xiaozhi-server reads a 200's body only: the reason goes in its msg.
                wake = {"device-id": "aa:bb:cc:dd:ee:ff", "Authorization": "Bearer xzd_x"}
                context = await api.get("/xiaozhi/context", headers=wake)
                assert context.status_code == 200, context.text
                assert (context.json()["code"], context.json()["msg"]) == (503, DATABASE_DOWN)
                assert socket_dir not in context.text
        finally:
            await asyncio.to_thread(server.cleanup)


async def test_a_postgresql_that_never_answers_is_unreachable_within_the_connect_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A PostgreSQL behind a dead path accepts and never answers: asyncpg's own connect
    timeout is 60 s, so every door held its caller for a minute (the voice's budget is 8 s,
    xiaozhi.me's 10) before saying the database is unreachable."""
    from sqlalchemy import text

    from ambient.status import database_problem
    from ambient.storage import Database, db

    monkeypatch.setattr(db, "CONNECT_TIMEOUT", 1.0)
    held: list[asyncio.StreamWriter] = []

    async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accepted, never answered

    listener = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    database = Database(f"postgresql+asyncpg://ambient:secret@127.0.0.1:{port}/ambient")
    try:
        with pytest.raises(Exception) as failed:
            async with database.session() as session:
                await asyncio.wait_for(session.execute(text("SELECT 1")), 15)
        assert database_problem(failed.value, None) is not None, repr(failed.value)
    finally:
        await database.close()
        for writer in held:
            writer.close()
        listener.close()


@pytest.mark.parametrize(
    "command",
    [["user", "list"], ["task", "list", "--user", "lin"], ["xiaozhi", "device", "list"]],
    ids=["operator", "service", "devices"],
)
def test_a_cli_command_whose_database_is_down_says_so_in_one_line(
    settings: Settings, command: list[str]
) -> None:
    """`ambient user list` printed a traceback and `ambient task list` a bare
    'ConnectionRefusedError: ...' when the app database did not answer."""
    from typer.testing import CliRunner

    from ambient.cli import app as cli

    port = free_port()
    env = {
        "AMBIENT_DATA_DIR": str(settings.data_dir),
        "AMBIENT_DATABASE_URL": f"postgresql+asyncpg://ambient@127.0.0.1:{port}/ambient",
        "AMBIENT_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
    }
    said = CliRunner().invoke(cli, command, env=env)
    assert said.exit_code == 1, said.output
    assert said.stderr.startswith(
        f"the database is unreachable (postgresql at 127.0.0.1:{port}: "
    ), said.stderr
    assert "Traceback" not in said.output and len(said.stderr.strip().splitlines()) <= 3


@asynccontextmanager
async def _frozen_later(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[httpx.AsyncClient, str, Callable[[], None]]]:
    """An API on a PostgreSQL of its own (statements bound to 2 s), its socket folder, and
    how to freeze the database's processes (SIGSTOP: connections stay open, nothing
    answers); thawed and stopped when the block ends."""
    import psutil

    from ambient.storage import db as storage

    monkeypatch.setattr(storage, "COMMAND_TIMEOUT", 2.0)
    with tempfile.TemporaryDirectory() as folder:
        server = await asyncio.to_thread(start_postgres, folder)
        stopped: list[psutil.Process] = []

        def freeze() -> None:
            postmaster = psutil.Process(server.get_pid())
            for process in [postmaster, *postmaster.children(recursive=True)]:
                process.suspend()
                stopped.append(process)

        try:
            socket_dir = parse_qs(urlparse(server.get_uri()).query)["host"][0]
            url = f"postgresql+asyncpg://postgres@/postgres?host={socket_dir}"
            await upgrade_async(url)
            app = create_app(
                settings.model_copy(
                    update={"database_url": url, "temporal_address": f"127.0.0.1:{free_port()}"}
                )
            )
            async with serve(app) as base, http_client(base) as api:
                assert (await api.get("/tasks", headers=STRANGER)).status_code == 401
                yield api, socket_dir, freeze
        finally:
            for process in stopped:
                process.resume()
            await asyncio.to_thread(server.cleanup)


STRANGER = {"Authorization": "Bearer amb_not-a-token"}


async def test_a_postgresql_that_stops_answering_on_open_connections_is_a_503_not_a_hang(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database host that hangs (its processes stopped, a partition) keeps its connections
    open: with no statement bound, every request waited on the pool's pre-ping for the whole
    outage (146 s in a review), past any client's patience."""
    async with _frozen_later(settings, monkeypatch) as (api, _, freeze):
        freeze()
        hung = await api.get("/tasks", headers=STRANGER, timeout=60)
    assert (hung.status_code, hung.json()) == (503, {"detail": DATABASE_DOWN})


async def test_a_postgresql_that_stops_answering_mid_statement_is_a_503(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the connection check, a statement that outlives its bound raised asyncpg's bare
    TimeoutError, which nothing read as the database's: a 500 "internal error"."""
    import asyncpg

    async with _frozen_later(settings, monkeypatch) as (api, socket_dir, freeze):
        # Every table locked by another session: the request's statement waits in flight
        # (its connection checked), then the host stops answering.
        holder = await asyncpg.connect(host=socket_dir, user="postgres")
        tables = await holder.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        locking = holder.transaction()
        await locking.start()
        names = ", ".join(f'"{row[0]}"' for row in tables)
        await holder.execute(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE")
        asked = asyncio.create_task(api.get("/tasks", headers=STRANGER, timeout=90))
        await asyncio.sleep(0.5)
        freeze()
        hung = await asked
    assert (hung.status_code, hung.json()) == (503, {"detail": DATABASE_DOWN})
