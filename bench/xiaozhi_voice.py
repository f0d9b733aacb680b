"""Benchmark: the 小智 context provider and a voice tool over /mcp/voice, end to end over HTTP.

    python -m bench.xiaozhi_voice --requests 300

Serves the API (uvicorn on loopback, SQLite app database in a temporary folder) with one
user, one registered device and 20 failing-watch events, and no Temporal server at all (the
two paths timed read the app database only). Times, from an HTTP client, one request at a
time:

- ``context``: `GET /xiaozhi/context` with `device-id` and the device token,
- ``voice``: one stateless `tools/call recent_errors` on `/mcp/voice` (what xiaozhi-server
  sends per tool call, no session).

Prints p50/p95/max per kind in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import tempfile
import time
from pathlib import Path

import httpx
import uvicorn

from ambient.domain.users import UserCreate
from ambient.settings import Environment, Settings
from ambient.storage import Database
from ambient.storage.migrate import upgrade_async
from ambient.storage.repositories import EventRepository
from ambient.storage.users import UserRepository
from ambient.xiaozhi import DeviceService
from api.app import create_app


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def run(requests: int) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(
            environment=Environment.TEST,
            data_dir=Path(folder),
            metrics_port=None,
            temporal_address="127.0.0.1:1",  # nothing timed here may need Temporal
            _env_file=None,  # type: ignore[call-arg]
        )
        await upgrade_async(settings.resolved_database_url)
        db = Database(settings.resolved_database_url)
        async with db.session() as session:
            _, token = await UserRepository(session).create(UserCreate(name="bench"))
            events = EventRepository(session)
            for i in range(20):
                await events.add("watch.failing", user="bench", task=f"web-monitor/bench/s{i % 3}")
            await session.commit()
        device = await DeviceService(db).add("bench", "bench", "aa:bb:cc:dd:ee:ff")
        await db.close()

        port = _port()
        server = uvicorn.Server(
            uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
        )
        task = asyncio.create_task(server.serve())
        # uvicorn offers a flag, not an event, for "listening".
        while not server.started:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        timings: dict[str, list[float]] = {"context": [], "voice": []}
        wake = {"device-id": device.device_id, "Authorization": f"Bearer {device.token}"}
        call = {
            "jsonrpc": "2.0",
            "id": "b_n_1",
            "method": "tools/call",
            "params": {"name": "recent_errors", "arguments": {}},
        }
        mcp_headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json, text/event-stream",
        }
        try:
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=10
            ) as http:
                for _ in range(requests):
                    start = time.perf_counter()
                    answer = await http.get("/xiaozhi/context", headers=wake)
                    timings["context"].append((time.perf_counter() - start) * 1000)
                    assert answer.json()["code"] == 0, answer.text
                    start = time.perf_counter()
                    spoken = await http.post("/mcp/voice", json=call, headers=mcp_headers)
                    timings["voice"].append((time.perf_counter() - start) * 1000)
                    assert "20 个错误" in spoken.text, spoken.text
        finally:
            server.should_exit = True
            await task
    return {
        kind: {"p50": pct(v, 0.5), "p95": pct(v, 0.95), "max": max(v), "n": len(v)}
        for kind, v in timings.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.requests)), indent=2))


if __name__ == "__main__":
    main()
