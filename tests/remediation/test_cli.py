"""`ambient remediation` commands refuse what the API and MCP refuse, with the same words."""

from __future__ import annotations

import asyncio

import pytest
from typer.testing import CliRunner

from ambient.cli import app
from ambient.deps import WorkerDeps
from tests.remediation.support import add_user


@pytest.mark.parametrize("days", ["0", "-3", "100000000"])
async def test_stats_over_a_look_back_out_of_range_is_refused_by_name(
    deps: WorkerDeps, days: str
) -> None:
    await add_user(deps, "ops")
    env = {"AMBIENT_DATA_DIR": str(deps.settings.data_dir), "AMBIENT_USER": "ops"}
    result = await asyncio.to_thread(
        CliRunner().invoke, app, ["remediation", "stats", f"--days={days}"], env=env
    )
    assert result.exit_code == 1, result.output
    assert "days: look back 1 to 365 days" in result.output
    assert "OverflowError" not in result.output
