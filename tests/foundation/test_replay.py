import asyncio
from pathlib import Path

from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from ambient.cli import app
from ambient.deps import WorkerDeps
from ambient.domain.users import UserCreate
from ambient.storage.repositories import UserRepository
from tests.conftest import running_worker, unique
from tests.support.workflows import PingInput, PingWorkflow


async def _record_ping_history(env: WorkflowEnvironment, deps: WorkerDeps, folder: Path) -> Path:
    async with deps.db.session() as session:
        await UserRepository(session).create(UserCreate(name="alice"))
        await session.commit()
    async with running_worker(env.client, deps, workflows=[PingWorkflow]) as worker:
        handle = await env.client.start_workflow(
            PingWorkflow.run,
            PingInput(user="alice", text="hi"),
            id=unique("ping"),
            task_queue=worker.task_queue,
        )
        await handle.result()
    path = folder / "ping.json"
    path.write_text((await handle.fetch_history()).to_json())
    return path


async def test_replay_passes_on_unchanged_code_and_names_the_broken_workflow(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    history = await _record_ping_history(ts_env, deps, tmp_path)
    runner = CliRunner()

    # The CLI runs its own event loop: call it from a thread.
    same = await asyncio.to_thread(
        runner.invoke,
        app,
        ["replay", str(tmp_path), "--workflows", "tests.support.workflows:TEST_WORKFLOWS"],
    )
    assert same.exit_code == 0, same.output
    assert "1/1 histories replayed cleanly" in same.output

    changed = await asyncio.to_thread(
        runner.invoke,
        app,
        [
            "replay",
            str(history),
            "--workflows",
            "tests.support.workflows_changed:ReorderedPingWorkflow",
        ],
    )
    assert changed.exit_code == 1, changed.output
    assert "NON-DETERMINISTIC PingWorkflow" in changed.output
    assert "0/1 histories replayed cleanly" in changed.output


def test_replay_without_histories_is_an_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["replay", str(tmp_path)])
    assert result.exit_code == 2
    assert "no history files found" in result.output
