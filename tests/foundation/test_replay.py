import ast
import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import (
    ExecuteWorkflowInput,
    Replayer,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowReplayResult,
    _replayer,
)
from temporalio.worker import Interceptor as WorkerInterceptor
from typer.testing import CliRunner

from ambient import replay as replaying
from ambient.cli import app
from ambient.deps import WorkerDeps
from ambient.domain.users import UserCreate
from ambient.no_answer import STALLED
from ambient.replay import load_workflows, replay
from ambient.storage.users import UserRepository
from ambient.temporal import PLAIN_CONVERTER, workflow_runner
from tests.conftest import running_worker, unique
from tests.support.parsing import parsed
from tests.support.workflows import PingInput, PingWorkflow

HISTORIES = Path(__file__).parent.parent / "histories"


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


async def test_a_replay_names_the_release_not_a_hash_of_every_loaded_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The SDK's default build id reads the code of every module loaded (~2,000 here, each
    # compiled again where no bytecode is cached): seconds of CPU for a name nothing reads.
    def hashed() -> str:
        raise AssertionError("the replay hashed every loaded module's code for its build id")

    monkeypatch.setattr(_replayer, "load_default_build_id", hashed)
    outcomes = await replaying.replay_files([HISTORIES / "alert_triage.json"], load_workflows([]))
    assert [outcome.error for outcome in outcomes] == [None]


def test_replay_without_histories_is_an_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["replay", str(tmp_path)])
    assert result.exit_code == 2
    assert "no history files found" in result.output


async def test_a_folder_of_histories_is_read_one_history_at_a_time_as_each_is_replayed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A folder of production histories is replayed in one run: holding all of them parsed
    # before the first replay would grow with the folder, not with its largest history.
    files = sorted(HISTORIES.rglob("*.json"))[:3]
    seen: list[tuple[str, str]] = []

    class Histories:
        @staticmethod
        def from_json(workflow_id: str, text: str) -> WorkflowHistory:
            seen.append(("read", workflow_id))
            return WorkflowHistory.from_json(workflow_id, text)

    async def replayed(runner: Replayer, history: WorkflowHistory) -> WorkflowReplayResult:
        seen.append(("replayed", history.workflow_id))
        return WorkflowReplayResult(history=history, replay_failure=None)

    monkeypatch.setattr(replaying, "WorkflowHistory", Histories)
    monkeypatch.setattr(replaying, "replay", replayed)
    outcomes = await replaying.replay_files(files, [PingWorkflow])
    assert [o.source for o in outcomes] == [str(f) for f in files]
    assert all(o.ok for o in outcomes)
    assert seen == [(step, f.stem) for f in files for step in ("read", "replayed")]


ROOT = Path(__file__).resolve().parents[2]


def _deprecated_patches() -> set[str]:
    """Each ID a ``deprecate_patch`` in workflows/ names: a literal or a module's constant."""
    trees = [parsed(path.read_text()) for path in (ROOT / "workflows").glob("*.py")]
    constants = {
        node.targets[0].id: node.value.value
        for tree in trees
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Constant)
    }
    named: set[str] = set()
    for tree in trees:
        for call in (node for node in ast.walk(tree) if isinstance(node, ast.Call)):
            func = call.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name == "deprecate_patch" and call.args:
                arg = call.args[0]
                named.add(arg.value if isinstance(arg, ast.Constant) else constants[arg.id])
    return named


def _recorded_before_deprecation() -> set[str]:
    """The IDs of the patch markers some history holds not deprecated: a run that called
    ``workflow.patched`` (the release before the one that deprecated it)."""
    held: set[str] = set()
    for path in (ROOT / "tests" / "histories").glob("*.json"):
        for event in json.loads(path.read_text())["events"]:
            marker = event.get("markerRecordedEventAttributes", {})
            if marker.get("markerName") == "core_patch":
                data = marker["details"]["patch-data"]["payloads"][0]["data"]
                patch = json.loads(base64.b64decode(data))
                if not patch["deprecated"]:
                    held.add(patch["id"])
    return held


def test_each_deprecated_patch_replays_a_run_of_the_release_that_called_patched() -> None:
    """`unapplied-hands-over` and `joined-alerts-checked` had no history holding their marker
    as `workflow.patched` wrote it: the replay no longer checked that `deprecate_patch` stands
    where `patched` stood, which is what lets the previous release's runs replay."""
    unchecked = _deprecated_patches() - _recorded_before_deprecation()
    assert not unchecked, (
        f"no history holds these patches' markers not deprecated: {sorted(unchecked)}; record "
        "their scenario with the previous release (docs/deploy.md, 'Support rule')"
    )


class _StallOnce(WorkerInterceptor):
    """Holds a workflow's first activation past the SDK's deadlock detector (2 s), once."""

    stalls = 0

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        owner = self

        class Stalling(WorkflowInboundInterceptor):
            async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
                if owner.stalls < 1:
                    owner.stalls += 1
                    end = time.monotonic() + 3
                    while time.monotonic() < end:  # busy, as a starved host's sandbox import
                        pass
                return await super().execute_workflow(input)

        return Stalling


@pytest.mark.usefixtures("sdk_deadlock_detector")
async def test_a_replay_the_deadlock_detector_cut_short_is_replayed_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # On a host starved of CPU the sandbox's first activation can pass the detector's 2 s (seen
    # in CI): that says nothing about determinism, and the server would retry the task.
    history = WorkflowHistory.from_json("web_monitor", (HISTORIES / "web_monitor.json").read_text())
    workflows = load_workflows(["tests.support.workflows:TEST_WORKFLOWS"])

    def runner(stall: _StallOnce) -> Replayer:
        return Replayer(
            workflows=workflows,
            data_converter=PLAIN_CONVERTER,
            workflow_runner=workflow_runner(),
            interceptors=[stall],
        )

    result = await replay(runner(_StallOnce()), history)
    assert result.replay_failure is None, result.replay_failure

    monkeypatch.setattr("ambient.replay.REPLAY_ATTEMPTS", 1)
    once = await replay(runner(_StallOnce()), history)
    assert STALLED in str(once.replay_failure)
