import asyncio
import os
import sys
from pathlib import Path

from mcp import Client, StdioServerParameters
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from ambient.cli import app


def _env(tmp_path: Path, dev_env: WorkflowEnvironment) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMBIENT_")}
    env["AMBIENT_DATA_DIR"] = str(tmp_path)
    env["AMBIENT_TEMPORAL_ADDRESS"] = dev_env.client.service_client.config.target_host
    return env


async def test_mcp_over_stdio_answers_get_status(
    tmp_path: Path, dev_env: WorkflowEnvironment
) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "ambient.cli", "mcp", "--user", "alice", "--read-only"],
        env=_env(tmp_path, dev_env),
    )
    async with Client(params) as client:
        tools = [tool.name for tool in (await client.list_tools()).tools]
        result = await client.call_tool("get_status", {})
    assert "get_status" in tools
    assert result.structured_content is not None
    assert result.structured_content["temporal_reachable"] is True
    assert result.structured_content["database_reachable"] is True


async def test_status_and_db_upgrade_commands(tmp_path: Path, dev_env: WorkflowEnvironment) -> None:
    env = _env(tmp_path, dev_env)
    runner = CliRunner()
    upgraded = await asyncio.to_thread(runner.invoke, app, ["db", "upgrade"], env=env)
    assert upgraded.exit_code == 0, upgraded.output
    assert (tmp_path / "ambient.db").exists()

    status = await asyncio.to_thread(runner.invoke, app, ["status"], env=env)
    assert status.exit_code == 0, status.output
    assert "temporal_reachable" in status.output and "True" in status.output

    env["AMBIENT_TEMPORAL_ADDRESS"] = "127.0.0.1:1"
    down = await asyncio.to_thread(runner.invoke, app, ["status"], env=env)
    assert down.exit_code == 1


def test_user_commands_create_show_and_rotate_token(tmp_path: Path) -> None:
    env = {"AMBIENT_DATA_DIR": str(tmp_path)}
    runner = CliRunner()
    created = runner.invoke(
        app, ["user", "create", "alice", "--email", "alice@example.com"], env=env
    )
    assert created.exit_code == 0, created.output
    assert "API token: amb_" in created.output
    again = runner.invoke(app, ["user", "create", "alice"], env=env)
    assert again.exit_code == 1 and "already exists" in again.output
    bad = runner.invoke(app, ["user", "create", "Alice!", "--timezone", "Nowhere/City"], env=env)
    assert bad.exit_code == 2
    assert "name:" in bad.output and "timezone:" in bad.output
    shown = runner.invoke(app, ["user", "show", "alice"], env=env)
    assert "alice@example.com" in shown.output
    rotated = runner.invoke(app, ["user", "token", "alice"], env=env)
    assert rotated.exit_code == 0 and "amb_" in rotated.output
    assert runner.invoke(app, ["user", "show", "nobody"], env=env).exit_code == 1
