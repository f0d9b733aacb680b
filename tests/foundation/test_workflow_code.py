"""Habits of workflow code the type checker and the replayer cannot enforce by themselves.

Activities are called by reference, so mypy checks the argument and the result of each call;
workflow code never `assert`s, since a failed assert is a workflow task failure that Temporal
retries forever.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.parsing import parsed

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
# These accept a string name (and then need a hand-written result_type); our activities are
# all methods, passed to the `*_method` variants, whose signatures mypy checks.
BY_NAME = {"execute_activity", "execute_local_activity", "start_activity", "start_local_activity"}


def offences(source: str) -> list[str]:
    """Activity calls that can name the activity by string, and asserts, by line."""
    found: list[str] = []
    for node in ast.walk(parsed(source)):
        if isinstance(node, ast.Assert):
            found.append(f"{node.lineno}: assert")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name = node.func.attr
            if name in BY_NAME or any(k.arg == "result_type" for k in node.keywords):
                found.append(f"{node.lineno}: {name}")
    return sorted(found, key=lambda line: int(line.split(":")[0]))


def test_the_check_finds_a_string_named_activity_and_an_assert() -> None:
    source = (
        "async def run():\n"
        "    assert ready\n"
        "    await workflow.execute_activity('notify', request, result_type=NotifyResult)\n"
        "    await workflow.start_local_activity(name, request)\n"
        "    await workflow.execute_activity_method(NotifyActivities.notify, request)\n"
    )
    assert offences(source) == [
        "2: assert",
        "3: execute_activity",
        "4: start_local_activity",
    ]


def test_workflow_modules_call_activities_by_reference_and_never_assert() -> None:
    found = {
        path.name: offences(path.read_text(encoding="utf-8"))
        for path in sorted(WORKFLOWS.glob("*.py"))
    }
    assert {name: lines for name, lines in found.items() if lines} == {}


# What the workflow sandbox does not catch in our code. The worker passes the `workflows`
# package through the sandbox (ambient.temporal.workflow_runner), so a workflow module's own
# imports are the host's modules: `datetime.now()` or `random.random()` written in one runs
# unchecked (tests/foundation/test_sandbox_guard.py shows it), as does a clock in a model the
# workflows import (`default_factory=datetime.now`). This check reads the workflow modules and
# the ambient modules they import for clocks, randomness, the environment and file or console
# access, which replays would otherwise catch only on a recorded path.
UNSAFE_MODULES = {"random", "secrets", "time", "uuid"}
UNSAFE_MEMBERS = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("os", "environ"),
    ("os", "getenv"),
    ("os", "urandom"),
    ("asyncio", "wait"),
    ("asyncio", "as_completed"),
    ("time", "time"),
    ("time", "time_ns"),
    ("time", "monotonic"),
    ("time", "perf_counter"),
    ("uuid", "uuid1"),
    ("uuid", "uuid4"),
    ("uuid", "uuid7"),
}
RANDOM_MODULES = {"random", "secrets"}
UNSAFE_BUILTINS = {"open", "input", "breakpoint"}
ROOT = WORKFLOWS.parent


def unsafe_uses(source: str) -> list[str]:
    """Clocks, randomness, environment and file reads a workflow must not make, by line."""
    found: list[str] = []
    for node in ast.walk(parsed(source)):
        if isinstance(node, ast.Import):
            names = [alias.name.split(".")[0] for alias in node.names]
            found += [f"{node.lineno}: import {name}" for name in names if name in UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module in UNSAFE_MODULES and not node.level:
            found.append(f"{node.lineno}: from {node.module}")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            pair = (node.value.id, node.attr)
            if pair in UNSAFE_MEMBERS or node.value.id in RANDOM_MODULES:
                found.append(f"{node.lineno}: {node.value.id}.{node.attr}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in UNSAFE_BUILTINS:
                found.append(f"{node.lineno}: {node.func.id}()")
    return sorted(found, key=lambda line: int(line.split(":")[0]))


def workflow_code() -> list[Path]:
    """The workflow modules and the ambient modules they import (run inside workflows)."""
    files = sorted(WORKFLOWS.glob("*.py"))
    imported: set[Path] = set()
    for path in files:
        for node in ast.walk(parsed(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ambient"):
                base = ROOT.joinpath(*(node.module or "").split("."))
                for name in [alias.name for alias in node.names]:
                    for candidate in (
                        base / f"{name}.py",
                        base.with_suffix(".py"),
                        base / "__init__.py",
                    ):
                        if candidate.is_file():
                            imported.add(candidate)
                            break
    return files + sorted(imported)


def test_the_check_finds_clocks_randomness_and_file_reads() -> None:
    source = (
        "import random\n"
        "from datetime import datetime\n"
        "from uuid import uuid4\n"
        "class Step(BaseModel):\n"
        "    at: datetime = Field(default_factory=datetime.now)\n"
        "async def run():\n"
        "    day = date.today()\n"
        "    token = os.environ['TOKEN']\n"
        "    text = open('notes').read()\n"
        "    done, _ = await asyncio.wait(tasks)\n"
        "    later = workflow.now() + timedelta(seconds=random.random())\n"
        "    start = time.fromisoformat('08:00')\n"
    )
    assert unsafe_uses(source) == [
        "1: import random",
        "3: from uuid",
        "5: datetime.now",
        "7: date.today",
        "8: os.environ",
        "9: open()",
        "10: asyncio.wait",
        "11: random.random",
    ]


def test_workflow_code_reads_no_clock_randomness_environment_or_file() -> None:
    files = workflow_code()
    assert WORKFLOWS / "remediation.py" in files
    assert ROOT / "ambient" / "remediation" / "runs.py" in files
    found = {
        str(path.relative_to(ROOT)): unsafe_uses(path.read_text(encoding="utf-8")) for path in files
    }
    assert {name: lines for name, lines in found.items() if lines} == {}


# A patch is asked once, as the workflow is built (docs/deploy.md, "Upgrading workflow code"):
# asked where first needed, a replay can ask it in another workflow task than the run did, and
# a branch taken later can ask it after a command the old path never sent.
PATCH_CALLS = {"patched", "deprecate_patch"}


def patches_asked_outside_init(source: str) -> list[str]:
    """``workflow.patched``/``deprecate_patch`` calls not made in an ``__init__``, by line."""
    found: list[str] = []

    def visit(node: ast.AST, inside: str | None) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            inside = node.name
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in PATCH_CALLS and inside != "__init__":
                found.append(f"{node.lineno}: {node.func.attr} in {inside or 'the module'}")
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(parsed(source), None)
    return found


def test_the_check_finds_a_patch_asked_outside_init() -> None:
    source = (
        "class Run:\n"
        "    def __init__(self):\n"
        "        self.kept = workflow.patched('kept')\n"
        "        workflow.deprecate_patch('old')\n"
        "    async def run(self):\n"
        "        if workflow.patched('late'):\n"
        "            pass\n"
        "        def later():\n"
        "            workflow.deprecate_patch('inner')\n"
    )
    assert patches_asked_outside_init(source) == [
        "6: patched in run",
        "9: deprecate_patch in later",
    ]


def test_workflow_modules_ask_their_patches_as_the_workflow_is_built() -> None:
    found = {
        path.name: patches_asked_outside_init(path.read_text(encoding="utf-8"))
        for path in sorted(WORKFLOWS.glob("*.py"))
    }
    assert {name: lines for name, lines in found.items() if lines} == {}


# What the Temporal Web UI labels each step of a run with: every activity, local activity,
# timer and child workflow a workflow starts says what it is for (an operator read
# "TIMER_STARTED 0:30:00" for the approval wait, and poll_pages, notify, record_event with
# nothing to tell one from another). A helper that wraps one takes the words from its caller.
LABELS = {
    "execute_activity_method": "summary",
    "start_activity_method": "summary",
    "execute_local_activity_method": "summary",
    "start_local_activity_method": "summary",
    "sleep": "summary",  # asyncio.sleep in a workflow is a timer no words can be given
    "start_child_workflow": "static_summary",
    "execute_child_workflow": "static_summary",
}


def unlabelled(source: str) -> list[str]:
    """Activities, timers (a sleep, a wait with a timeout) and children started without the
    words the Web UI shows for them, by line."""
    found: list[str] = []
    for node in ast.walk(parsed(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name, given = node.func.attr, {k.arg for k in node.keywords}
            if name == "wait_condition" and "timeout" in given and "timeout_summary" not in given:
                found.append(f"{node.lineno}: {name}")
            elif name in LABELS and LABELS[name] not in given:
                found.append(f"{node.lineno}: {name}")
    return sorted(found, key=lambda line: int(line.split(":")[0]))


def test_the_check_finds_a_step_the_web_ui_shows_unlabelled() -> None:
    source = (
        "async def run():\n"
        "    await workflow.wait_condition(lambda: done, timeout=WAIT)\n"
        "    await workflow.wait_condition(lambda: done)\n"
        "    await workflow.wait_condition(lambda: done, timeout=WAIT, timeout_summary='x')\n"
        "    await workflow.execute_activity_method(A.notify, request)\n"
        "    await workflow.start_local_activity_method(A.read, request, summary='read')\n"
        "    await asyncio.sleep(5)\n"
        "    await workflow.start_child_workflow(Fix.run, request, id=fix)\n"
    )
    assert unlabelled(source) == [
        "2: wait_condition",
        "5: execute_activity_method",
        "7: sleep",
        "8: start_child_workflow",
    ]


def test_every_step_a_workflow_starts_is_labelled_for_the_web_ui() -> None:
    found = {
        path.name: unlabelled(path.read_text(encoding="utf-8"))
        for path in sorted(WORKFLOWS.glob("*.py"))
    }
    assert {name: lines for name, lines in found.items() if lines} == {}
