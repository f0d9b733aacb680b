"""An API whose PostgreSQL goes away says so: 503 naming the database, never a bare 500."""

from __future__ import annotations

import asyncio
import tempfile
from urllib.parse import parse_qs, urlparse

import httpx
import pgserver

from ambient.settings import Settings
from ambient.storage.migrate import upgrade_async
from api.app import create_app
from tests.support.servers import HANG, free_port, serve


async def test_an_api_whose_postgresql_went_down_answers_503_naming_it(settings: Settings) -> None:
    with tempfile.TemporaryDirectory() as folder:  # short: a socket path has a length limit
        server = await asyncio.to_thread(pgserver.get_server, folder, cleanup_mode="stop")
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
                httpx.AsyncClient(base_url=base, timeout=HANG, trust_env=False) as api,
            ):
                stranger = {"Authorization": "Bearer amb_not-a-token"}
                assert (await api.get("/tasks", headers=stranger)).status_code == 401
                await asyncio.to_thread(server.cleanup)  # PostgreSQL stops under the API
                for _ in range(2):  # the pooled connection that died, then a new one refused
                    down = await api.get("/tasks", headers=stranger)
                    assert down.status_code == 503, down.text
                    detail = down.json()["detail"]
                    assert detail.startswith(
                        f"the database is unreachable (postgresql at {socket_dir}"
                    ), detail
        finally:
            await asyncio.to_thread(server.cleanup)
