"""The real bridges from PyPI that 小智 users put between xiaozhi-server and an MCP server, run
as their own processes against the real API on loopback:

- ``mcp-proxy`` (stdio ↔ streamable HTTP): xiaozhi-server's settings-file client starts it as a
  stdio server (``command``/``args``), and it forwards to ``/mcp/voice`` with the bearer header;
  the other way, it serves ``ambient mcp --profile voice`` over streamable HTTP.
- ``mcp2xiaozhi`` (raw pass-through): it dials a 小智 endpoint WebSocket and forwards each frame
  to ``/mcp/voice`` as it comes. Behind the relay (string ids, initialize, initialized and
  tools/list sent at once) this is where a stateful server answers 400; ``/mcp/voice`` is
  stateless.

Both need the MCP SDK 1.x, so they are installed, pinned (tests/bridge/pypi-bridges.txt), into
a virtualenv of their own under the temporary folder (made once from PyPI, reused while the pins
stay the same); where that cannot be done, these tests are skipped and say why.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import venv
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from mcp import Client, MCPError, StdioServerParameters
from typer.testing import CliRunner

from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.migrate import upgrade_async
from ambient.storage.repositories import EventRepository
from api.app import create_app
from tests.conftest import unique
from tests.standins.xiaozhi_broker import running_broker
from tests.support.admins import admin_headers
from tests.support.servers import free_port, http_client, serve
from tests.voice.support import UNREACHED, assert_speakable

PINS = Path(__file__).with_name("pypi-bridges.txt")
VOICE_TOOLS = {
    "greet",
    "what_needs_me",
    "approve_remediation",
    "refuse_remediation",
    "task_status",
    "pause_task",
    "resume_task",
    "cluster_health",
    "recent_errors",
}


def _bridges_venv() -> Path:
    """The bin folder of a virtualenv holding the pinned bridges; made on first use."""
    key = hashlib.sha256(PINS.read_bytes()).hexdigest()[:12]
    # Under the machine's temporary folder, keyed by the pins: made once, shared by sessions.
    home = Path(tempfile.gettempdir()) / "ambient-pypi-bridges" / key
    bin_dir = home / "bin"
    if (bin_dir / "mcp2xiaozhi").exists() and (bin_dir / "mcp-proxy").exists():
        return bin_dir
    building = home.with_name(f"{key}.building-{os.getpid()}")
    python = building / "bin" / "python"
    # With the project's uv where it is (`make install` puts it in the venv): 5 s, where venv
    # and pip took 17 s on a quiet machine and 42 s in a clean-clone CI run (its slowest setup).
    uv = Path(sys.executable).with_name("uv")
    try:
        if uv.exists():
            made = [str(uv), "venv", "-q", "--python", sys.executable, str(building)]
            subprocess.run(made, check=True, capture_output=True)
            install = [str(uv), "pip", "install", "-q", "--python", str(python), "-r", str(PINS)]
        else:
            venv.create(building, with_pip=True)
            install = [str(python), "-m", "pip", "install", "-q", "-r", str(PINS)]
    except (OSError, subprocess.CalledProcessError) as exc:  # no ensurepip, no room
        pytest.skip(f"no virtualenv for the PyPI bridges here: {exc}")
    installed = subprocess.run(install, capture_output=True, text=True)
    if installed.returncode != 0:
        shutil.rmtree(building, ignore_errors=True)
        pytest.skip(f"the PyPI bridges cannot be installed here: {installed.stderr[-500:]}")
    # A venv's scripts name its own path: rename, then rewrite what names the building path.
    try:
        building.rename(home)
    except OSError:  # another test session finished first: use theirs
        shutil.rmtree(building, ignore_errors=True)
        return bin_dir
    for script in bin_dir.iterdir():
        if script.is_file() and not script.is_symlink():
            text = script.read_bytes()
            if str(building).encode() in text:
                script.write_bytes(text.replace(str(building).encode(), str(home).encode()))
    return bin_dir


@pytest.fixture(scope="session")
def bridges() -> Path:
    return _bridges_venv()


def _env(**extra: str) -> dict[str, str]:
    """The child's environment: no proxies (everything is loopback), no AMBIENT_* leaks."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AMBIENT_") and k.lower() not in {"http_proxy", "https_proxy"}
    }
    env.update(extra)
    return env


@pytest_asyncio.fixture
async def api(settings: Settings) -> AsyncIterator[tuple[str, str]]:
    """The real API on loopback, with a user ``mei`` who had three failing checks today.
    Yields the base URL and mei's bearer token."""
    await upgrade_async(settings.resolved_database_url)
    async with (
        serve(create_app(settings)) as base,
        http_client(base, timeout=20) as http,
    ):
        made = await http.post(
            "/users", json={"name": "mei"}, headers=await admin_headers(settings)
        )
        assert made.status_code in (200, 201), made.text
        db = Database(settings.resolved_database_url)
        async with db.session() as session:
            for _ in range(3):
                await EventRepository(session).add(
                    "watch.failing", user="mei", task="web-monitor/mei/shop-home"
                )
            await session.commit()
        await db.close()
        yield base, made.json()["token"]


def _spoken(result: Any) -> str:
    assert not result.is_error, result.content
    text: str = getattr(result.content[0], "text", "")
    assert_speakable(text)
    return text


async def test_a_stdio_client_reaches_the_voice_profile_through_mcp_proxy_with_the_bearer_token(
    bridges: Path, api: tuple[str, str]
) -> None:
    base, token = api
    # What xiaozhi-server's settings file says: {"command": "mcp-proxy", "args": [...]}.
    params = StdioServerParameters(
        command=str(bridges / "mcp-proxy"),
        args=[
            "--transport",
            "streamablehttp",
            "-H",
            "Authorization",
            f"Bearer {token}",
            f"{base}/mcp/voice",
        ],
        env=_env(),
    )
    async with Client(params) as client:
        tools = (await client.list_tools()).tools
        said = _spoken(await client.call_tool("recent_errors", {}))
    assert {t.name for t in tools} == VOICE_TOOLS
    assert "3 个错误" in said and "shop home" in said, said


async def test_without_the_token_mcp_proxy_gets_nothing_from_the_voice_profile(
    bridges: Path, api: tuple[str, str]
) -> None:
    base, _ = api
    params = StdioServerParameters(
        command=str(bridges / "mcp-proxy"),
        args=["--transport", "streamablehttp", f"{base}/mcp/voice"],
        env=_env(),
    )
    # the proxy is answered 401 and exits; its stdio client sees the connection close
    with pytest.raises(ExceptionGroup) as refused:
        async with Client(params) as client:
            await client.list_tools()
    assert refused.group_contains(MCPError, match="Connection closed", depth=None)


async def test_mcp_proxy_serves_ambient_mcp_profile_voice_over_streamable_http(
    bridges: Path, settings: Settings
) -> None:
    from ambient.cli import app as cli

    # No Temporal: "no errors" is said with that no task runs (not a `make run` on this host's).
    env = _env(AMBIENT_DATA_DIR=str(settings.data_dir), AMBIENT_TEMPORAL_ADDRESS="127.0.0.1:1")
    made = await asyncio.to_thread(CliRunner().invoke, cli, ["user", "create", "mei"], env=env)
    assert made.exit_code == 0, made.output
    port = free_port()
    proxy = await asyncio.create_subprocess_exec(
        str(bridges / "mcp-proxy"),
        "--port",
        str(port),
        "--stateless",
        "--pass-environment",
        "--",
        sys.executable,
        "-m",
        "ambient.cli",
        "mcp",
        "--user",
        "mei",
        "--profile",
        "voice",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await _listening(port, proxy)
        async with Client(f"http://127.0.0.1:{port}/mcp") as client:
            tools = (await client.list_tools()).tools
            said = _spoken(await client.call_tool("recent_errors", {"hours": 6}))
    finally:
        proxy.terminate()
        await proxy.wait()
    assert {t.name for t in tools} == VOICE_TOOLS
    assert said == f"最近 6 小时没有记录到错误{UNREACHED}", said


async def _listening(port: int, process: asyncio.subprocess.Process) -> None:
    """Until ``port`` accepts connections (the child prints no 'ready' line to wait on)."""
    async with asyncio.timeout(60):
        while True:
            assert process.returncode is None, "the bridge exited before listening"
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return


@asynccontextmanager
async def mcp2xiaozhi(
    bridges: Path, folder: Path, url: str, headers: dict[str, str], endpoint: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``mcp2xiaozhi run ambient`` with the config file a user writes for it."""
    config = folder / "mcp_config.json"
    server = {"type": "streamablehttp", "url": url, "headers": headers, "endpoint": endpoint}
    config.write_text(json.dumps({"mcpServers": {"ambient": server}}))
    process = await asyncio.create_subprocess_exec(
        str(bridges / "mcp2xiaozhi"),
        "--config",
        str(config),
        "run",
        "ambient",
        cwd=folder,  # it reads a .env from its working folder
        env=_env(),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        process.terminate()
        await process.wait()


async def test_mcp2xiaozhi_passes_the_relays_pipelined_handshake_and_a_call_to_the_voice_profile(
    bridges: Path, api: tuple[str, str], tmp_path: Path
) -> None:
    base, token = api
    jwt = unique("jwt")
    async with (
        running_broker({jwt}, mode="relay") as broker,
        mcp2xiaozhi(
            bridges,
            tmp_path,
            f"{base}/mcp/voice",
            {"Authorization": f"Bearer {token}"},
            broker.url(jwt),
        ),
    ):
        # initialize, notifications/initialized and tools/list went out at once, string ids
        connection = await asyncio.wait_for(broker.wait_ready(jwt), 60)
        answer = await asyncio.wait_for(connection.call_tool("recent_errors", {}), 30)
    # mcp2xiaozhi posts each request on its own, so the answers come back in the order the API
    # finishes them (tools/list first, at times): the broker matches them by id, as the relay does.
    initialized = connection.initialize_answer
    assert isinstance(initialized["id"], str)
    assert initialized["result"]["serverInfo"]["name"] == "ambient-voice"
    assert {t["name"] for t in connection.tools} == VOICE_TOOLS
    said = answer["result"]["content"][0]["text"]
    assert_speakable(said)
    assert "3 个错误" in said, said


async def test_behind_mcp2xiaozhi_the_full_server_takes_the_relays_handshake_too(
    bridges: Path, api: tuple[str, str], tmp_path: Path
) -> None:
    """The same relay handshake through the same pass-through to the full /mcp: it lists its
    tools (the voice profile's handful is still the one to give a voice model). /mcp kept
    sessions before and refused the pipelined tools/list sent without its id (HTTP 400): the
    relay never saw a tool and kept redialling."""
    base, token = api
    jwt = unique("jwt")
    async with (
        running_broker({jwt}, mode="relay") as broker,
        mcp2xiaozhi(
            bridges, tmp_path, f"{base}/mcp", {"Authorization": f"Bearer {token}"}, broker.url(jwt)
        ),
    ):
        connection = await asyncio.wait_for(broker.wait_ready(jwt), 60)
    assert connection.initialize_answer["result"]["serverInfo"]["name"] == "ambient-ops"
    listed = {t["name"] for t in connection.tools}
    assert {"whoami", "list_tasks"} <= listed and len(listed) > len(VOICE_TOOLS), listed
