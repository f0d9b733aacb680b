"""`ambient task`: the task operations of the MCP tools and the API, from a terminal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from ambient.commands import Json, User, json_object, print_json, print_rows, run_service, terminal
from ambient.watches.inputs import TaskError
from ambient.watches.listing import TaskSummary
from ambient.watches.service import TaskService

app = typer.Typer(no_args_is_help=True)  # its help: ambient/cli_group.py LAZY
console = terminal()
T = TypeVar("T")


def _run(work: Callable[[TaskService], Awaitable[T]]) -> T:
    return run_service(lambda s: s.tasks, work, TaskError)


def print_tasks(rows: list[TaskSummary], out: Console, *, as_json: bool = False) -> None:
    """Tasks as JSON, a table on a terminal, or tab-separated lines (``print_rows``)."""
    cells: list[list[object]] = [[r.task_id, r.kind, r.state, r.started_at] for r in rows]
    print_rows(out, ["task_id", "kind", "state", "started"], cells, rows, as_json)


@app.command()
def create(
    type: Annotated[
        str, typer.Argument(help="web_monitor | threshold_watch | schedule | news_digest")
    ],
    config: Annotated[str, typer.Option(help="JSON config, or @file.json")],
    name: str | None = None,
    user: User = "dev",
) -> None:
    """Create a task; prints its task_id."""
    payload = json_object(config, "--config")
    print_json(console, _run(lambda tasks: tasks.create(user, type, payload, name)))


@app.command("list")
def list_(
    kind: str | None = None, state: str | None = None, user: User = "dev", as_json: Json = False
) -> None:
    """List tasks (a visibility query on the Temporal server)."""
    rows = _run(lambda tasks: tasks.list(user, kind=kind, state=state))
    print_tasks(list(rows), console, as_json=as_json)


@app.command()
def show(
    task_id: str,
    user: User = "dev",
    # Show always prints JSON: the flag is accepted (as by list) for scripts that pass it.
    _json: Annotated[bool, typer.Option("--json", hidden=True)] = True,
) -> None:
    """Status of a task, as JSON."""
    # Whoever runs the CLI runs the server: a briefing's failures as their texts say them.
    print_json(console, _run(lambda tasks: tasks.get(user, task_id, operator=True)))


@app.command()
def pause(task_id: str, user: User = "dev") -> None:
    """Pause a task: no scheduled checks or runs until it is resumed (trigger still runs one)."""
    print_json(console, _run(lambda tasks: tasks.pause(user, task_id)))


@app.command()
def resume(task_id: str, user: User = "dev") -> None:
    """Resume a paused task."""
    print_json(console, _run(lambda tasks: tasks.resume(user, task_id)))


@app.command()
def trigger(task_id: str, user: User = "dev") -> None:
    """Check now (or run a schedule's action now)."""
    print_json(console, _run(lambda tasks: tasks.trigger(user, task_id)))


@app.command()
def update(
    task_id: str,
    config: Annotated[str, typer.Option(help="the JSON fields to change, or @file.json")],
    replace: Annotated[
        bool, typer.Option("--replace", help="the config given is the whole new config")
    ] = False,
    user: User = "dev",
) -> None:
    """Change the config fields given, keep the rest (--replace: the whole config)."""
    payload = json_object(config, "--config")
    print_json(console, _run(lambda tasks: tasks.update(user, task_id, payload, replace=replace)))


@app.command()
def delete(
    task_id: str, purge: Annotated[bool, typer.Option("--purge")] = False, user: User = "dev"
) -> None:
    """Stop a task for good."""
    print_json(console, _run(lambda tasks: tasks.delete(user, task_id, purge=purge)))
