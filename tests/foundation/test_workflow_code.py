"""Two habits of workflow code the type checker and the replayer cannot enforce by themselves.

Activities are called by reference, so mypy checks the argument and the result of each call;
workflow code never `assert`s, since a failed assert is a workflow task failure that Temporal
retries forever.
"""

from __future__ import annotations

import ast
from pathlib import Path

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
# These accept a string name (and then need a hand-written result_type); our activities are
# all methods, passed to the `*_method` variants, whose signatures mypy checks.
BY_NAME = {"execute_activity", "execute_local_activity", "start_activity", "start_local_activity"}


def offences(source: str) -> list[str]:
    """Activity calls that can name the activity by string, and asserts, by line."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
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
