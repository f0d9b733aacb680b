"""`ambient migrate` is the deploy step; the API, MCP and worker refuse a database behind."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from fastapi import FastAPI
from sqlalchemy import text
from typer.testing import CliRunner

from ambient.cli import app
from ambient.settings import Settings
from ambient.storage.db import Database
from ambient.storage.migrate import (
    DatabaseBehindError,
    alembic_config,
    head_revision,
    upgrade_async,
)
from ambient.wiring import open_state
from api.app import create_app
from worker import run_worker


@pytest.fixture
def behind(settings: Settings, tmp_path: Path) -> Settings:
    """Settings whose database `ambient migrate` has not reached (one revision short)."""
    return settings.model_copy(update={"data_dir": tmp_path / "behind"})


def _previous() -> str:
    down = ScriptDirectory.from_config(alembic_config("")).get_revision(head_revision())
    assert down is not None and isinstance(down.down_revision, str)
    return down.down_revision


async def _one_short(settings: Settings) -> None:
    settings.data_dir.mkdir(exist_ok=True)
    await upgrade_async(settings.resolved_database_url, _previous())


async def test_the_api_refuses_to_start_on_a_database_behind_naming_the_command(
    behind: Settings,
) -> None:
    await _one_short(behind)
    api: FastAPI = create_app(behind)
    with pytest.raises(DatabaseBehindError) as refused:
        async with api.router.lifespan_context(api):
            pass
    message = str(refused.value)
    assert _previous() in message and head_revision() in message
    assert "ambient migrate" in message


async def test_mcp_and_the_worker_refuse_an_empty_database(behind: Settings) -> None:
    behind.data_dir.mkdir()
    with pytest.raises(DatabaseBehindError, match="none \\(an empty database\\)"):
        async with open_state(behind):
            pass
    # Refused before it dials Temporal (nothing listens at the default address here).
    with pytest.raises(DatabaseBehindError, match="ambient migrate"):
        await run_worker(behind)


async def test_ambient_migrate_brings_the_database_up_and_check_says_whether_it_is(
    behind: Settings,
) -> None:
    await _one_short(behind)
    runner = CliRunner()
    env = {"AMBIENT_DATA_DIR": str(behind.data_dir)}

    def run(*args: str) -> tuple[int, str]:
        done = runner.invoke(app, ["migrate", *args], env=env)
        return done.exit_code, done.output

    code, output = await asyncio.to_thread(run, "--check")
    assert code == 1 and "run `ambient migrate`" in output
    code, output = await asyncio.to_thread(run)
    assert code == 0 and f"from {_previous()} to {head_revision()}" in output
    code, output = await asyncio.to_thread(run, "--check")
    assert code == 0, output
    async with open_state(behind) as state:  # now it starts
        assert state.db is not None


async def test_the_commands_that_serve_exit_with_the_refusal_not_a_traceback(
    behind: Settings,
) -> None:
    await _one_short(behind)
    env = {"AMBIENT_DATA_DIR": str(behind.data_dir)}
    for command in (["api"], ["worker"], ["mcp", "--user", "alice"]):
        done = await asyncio.to_thread(CliRunner().invoke, app, command, env=env)
        assert done.exit_code == 1, (command, done.output)
        assert "run `ambient migrate` first" in done.output
        assert "Traceback" not in done.output


async def test_a_database_a_newer_release_migrated_is_refused_as_a_downgrade(
    behind: Settings,
) -> None:
    # An operator rolls back to this release after a newer one migrated the database.
    await _one_short(behind)
    url = behind.resolved_database_url
    async with Database(url) as db, db.write_session() as session:
        await session.execute(text("UPDATE alembic_version SET version_num = '9999_newer'"))
        await session.commit()
    runner = CliRunner()
    env = {"AMBIENT_DATA_DIR": str(behind.data_dir)}
    for args in (["migrate"], ["migrate", "--check"]):
        done = await asyncio.to_thread(runner.invoke, app, args, env=env)
        # It was told to run `ambient migrate`, which printed alembic's traceback.
        assert done.exit_code == 1 and isinstance(done.exception, SystemExit), done.output
        assert "9999_newer" in done.output and "newer release" in done.output, done.output
        assert "run `ambient migrate`" not in done.output
    # Any command migrates first, as `ambient migrate`: said in its words, one line, exit 1
    # (an operator command printed a 130-line traceback; a service command the error's class).
    for args in (["user", "list"], ["task", "list", "--user", "ann"]):
        done = await asyncio.to_thread(runner.invoke, app, args, env=env)
        assert done.exit_code == 1 and isinstance(done.exception, SystemExit), done.output
        said = " ".join(done.output.split())
        assert said.startswith("the database is at revision 9999_newer"), done.output
        assert "newer release" in said and "Traceback" not in done.output
    with pytest.raises(DatabaseBehindError, match="newer release"):
        async with open_state(behind):
            pass
