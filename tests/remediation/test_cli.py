"""`ambient remediation` commands refuse what the API and MCP refuse, with the same words."""

from __future__ import annotations

import asyncio

import pytest
from typer.testing import CliRunner

from ambient.cli import app
from ambient.deps import WorkerDeps
from tests.remediation.support import add_user, run_row


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


async def test_stats_count_the_runs_of_the_look_back_and_of_the_caller(deps: WorkerDeps) -> None:
    """The look back and the owner are the database's filter: every run of the window counts,
    however many runs older ones or other users' there are."""
    import json
    from datetime import UTC, datetime, timedelta

    await add_user(deps, "ops")
    now = datetime.now(UTC)
    runs = [("ops", 1), ("ops", 10), ("ops", 40), ("ops", 100), ("other", 1)]
    async with deps.db.session() as session:
        for n, (user, days_ago) in enumerate(runs):
            started = now - timedelta(days=days_ago)
            session.add(
                run_row(
                    f"remediation/r{n}",
                    user,
                    state="resolved",
                    resolved_rung=1,
                    started_at=started,
                    finished_at=started + timedelta(minutes=2),
                )
            )
        await session.commit()
    env = {"AMBIENT_DATA_DIR": str(deps.settings.data_dir), "AMBIENT_USER": "ops"}
    counted = {}
    for days in (30, 60, 365):
        result = await asyncio.to_thread(
            CliRunner().invoke, app, ["remediation", "stats", f"--days={days}", "--json"], env=env
        )
        assert result.exit_code == 0, result.output
        counted[days] = json.loads(result.output)["total"]
    assert counted == {30: 2, 60: 3, 365: 4}
