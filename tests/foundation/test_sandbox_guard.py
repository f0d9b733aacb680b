"""What the worker's workflow sandbox stops in our workflow modules, and what it lets through.

The worker passes our modules through the sandbox (ambient.temporal.workflow_runner): a workflow
module is imported once, on the host, not again in each run. The sandbox still refuses the
builtins that read files or the console, and the clock and randomness of a module imported while
a run runs; what a workflow module imported on the host (its `datetime`, its `random`) is the
host's own, and runs unchecked. tests/foundation/test_workflow_code.py reads the workflow code
for those instead, and it is the guard GradedRemediationWorkflow keeps outside the sandbox.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio import workflow
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

import workflows
from ambient import no_answer
from ambient.deps import WorkerDeps
from tests.conftest import running_worker, unique
from tests.support.waits import eventually
from workflows.registry import ALL_WORKFLOWS

PROBE = Path(__file__).resolve().parents[1] / "support" / "sandbox_probe.py"
NAME = "workflows.sandbox_probe"


@pytest_asyncio.fixture
async def probe_queue(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[str]:
    """The product's worker, with the probe as one of our workflow modules."""
    spec = importlib.util.spec_from_file_location(NAME, PROBE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, NAME, module)
    spec.loader.exec_module(module)
    monkeypatch.setattr(workflows, "sandbox_probe", module, raising=False)
    async with running_worker(dev_env.client, deps, workflows=[module.SandboxProbe]) as worker:
        yield worker.task_queue


async def outcome(client: Client, queue: str, what: str) -> str:
    """ "ran", or the message the run's first workflow task failed with but for the SDK's
    deadlock detector's (a starved host's first activation past its 2 s: the task is tried
    again, and the sandbox's own answer comes then)."""
    handle = await client.start_workflow("SandboxProbe", what, id=unique("probe"), task_queue=queue)

    async def settled() -> str | None:
        async for event in handle.fetch_history_events():
            if event.HasField("workflow_execution_completed_event_attributes"):
                return "ran"
            failed = event.workflow_task_failed_event_attributes
            if event.HasField("workflow_task_failed_event_attributes") and not (
                failed.failure.message.startswith(no_answer.STALLED)
            ):
                return failed.failure.message
        return None

    answer = await eventually(settled, f"{what}: the run completed or failed a task")
    if answer != "ran":
        await handle.terminate()  # its task would be tried again and again
    return answer


async def test_the_sandbox_refuses_file_reads_and_a_clock_or_randomness_imported_in_a_run(
    dev_env: WorkflowEnvironment, probe_queue: str
) -> None:
    assert await outcome(dev_env.client, probe_queue, "plain") == "ran"
    refused = {
        what: await outcome(dev_env.client, probe_queue, what)
        for what in ("open", "clock imported in the run", "random imported in the run")
    }
    assert {what: message.split(" from inside")[0] for what, message in refused.items()} == {
        "open": "Cannot access __builtins__.open",
        "clock imported in the run": "Cannot access datetime.datetime.now.__call__",
        "random imported in the run": "Cannot access random.random.__call__",
    }


async def test_a_clock_or_randomness_a_workflow_module_imported_runs_unchecked(
    dev_env: WorkflowEnvironment, probe_queue: str
) -> None:
    # What the static check in test_workflow_code.py is for: the sandbox does not see these.
    assert await outcome(dev_env.client, probe_queue, "clock") == "ran"
    assert await outcome(dev_env.client, probe_queue, "random") == "ran"


def test_only_the_remediation_workflow_runs_outside_the_sandbox() -> None:
    # Its runs are an alert storm's (docs/benchmarks.md, "Alert storm, eighth round").
    definitions = [workflow._Definition.must_from_class(defn) for defn in ALL_WORKFLOWS]
    assert [d.name for d in definitions if not d.sandboxed] == ["GradedRemediationWorkflow"]
