"""CLI sub-commands by area; each module exposes a Typer `app` that ambient/cli.py adds."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextvars import ContextVar
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table
from rich.text import Text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from ambient.domain.field_errors import field_problems
from ambient.runtime import discovered_settings
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.migrate import DatabaseBehindError, MigrationRefusedError, upgrade_async

if TYPE_CHECKING:  # the services are imported when a command runs, not when help lists it
    from ambient.wiring import AppState

S = TypeVar("S")
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def terminal(stderr: bool = False) -> Console:
    """A console for the CLI's output, every command's (stdout, or ``stderr``): what users and
    outside systems wrote is printed as written. Rich's own reads `:name:` as an emoji in any
    text it prints, markup or not: a rule named ':fire:' was said saved as '🔥'. A line is
    not folded at the terminal's width (80 columns in a pipe: a refusal read by a script came
    in two lines); a table still fits it."""
    return Console(stderr=stderr, emoji=False, soft_wrap=True)


err_console = terminal(stderr=True)
# The options every area's commands share.
# The command's acting user, for the commands its refusals name (in_cli_words).
ACTING_USER: ContextVar[str] = ContextVar("acting_user", default="")


def _acting(user: str) -> str:
    ACTING_USER.set(user)
    return user


User = Annotated[
    str, typer.Option("--user", envvar="AMBIENT_USER", help="acting user", callback=_acting)
]
Json = Annotated[bool, typer.Option("--json", help="print JSON (for scripts)")]
Region = Annotated[str | None, typer.Option(help="region (default: AMBIENT_TENCENTCLOUD_REGION)")]


# The services' refusals name the MCP tool a model calls next; a terminal names its command.
COMMANDS = {
    "list_tasks": "ambient task list",
    "update_task": "ambient task update",
    "delete_task": "ambient task delete",
    "list_briefings": "ambient briefing list",
    "create_daily_briefing": "ambient briefing create",
    "list_remediations": "ambient remediation list",
    "get_remediation": "ambient remediation show",
}
TOOL = re.compile(rf"\b(call )?({'|'.join(COMMANDS)})\b")
# The id a command takes, as a text naming its tool writes it (a run's id: remediation_id; a
# task's: `{prefix}/{user}/{name}`, its prefixes ambient/watches/configs.py PREFIXES).
TASK_ID = re.compile(
    r"\b(?:web-monitor|threshold-watch|reminder)/[a-z0-9][a-z0-9_.-]*/[a-z0-9_.-]+"
)
SUBJECTS = {
    "get_remediation": re.compile(r"\bremediation/[0-9a-f]{16}\b"),
    "update_task": TASK_ID,
    "delete_task": TASK_ID,
}
# What a command needs after its id, as its user has to give it.
OPTIONS = {"update_task": "--config JSON"}


def in_cli_words(text: str, subject: str = "") -> str:
    """``text`` with each MCP tool it names replaced by the command that does the same; one that
    takes an id (SUBJECTS) given ``subject`` (the id it acts on), else the id of the tool's kind
    the text names elsewhere. A list or create command is given none. Each names the acting
    ``--user``: without it the command asked for one, or acted as another user."""
    user = ACTING_USER.get()
    as_user = f"--user {shlex.quote(user)}" if user else ""

    def command(tool: re.Match[str]) -> str:
        pattern = SUBJECTS.get(tool[2])
        found = pattern.search(text) if pattern and not subject else None
        its_id = (subject or (found[0] if found else "")) if pattern else ""
        parts = (COMMANDS[tool[2]], its_id, OPTIONS.get(tool[2]), as_user)
        said = " ".join(part for part in parts if part)
        return f"{'run ' if tool[1] else ''}`{said}`"

    return TOOL.sub(command, text)


def said_at(moment: datetime, seconds: bool = True) -> str:
    """A time in this terminal's zone with its offset (2026-12-01 00:05:00+08:00): the API's
    and the database's times are UTC, which a wall time without its zone reads as hours off."""
    local = moment.astimezone()
    return local.isoformat(sep=" ", timespec="seconds" if seconds else "minutes")


def fail(message: str, code: int = 1) -> typer.Exit:
    """One line on stderr (never a traceback) and the exit code."""
    # The message may quote what the user typed: its brackets are text, not Rich markup.
    err_console.print(f"[red]{escape(message)}[/]", soft_wrap=True, highlight=False)
    return typer.Exit(code)


def json_object(text: str, name: str) -> dict[str, Any]:
    """A JSON object given as text, @path or - (stdin); else a line naming ``name``, exit 2."""
    raw = text
    if text == "-":
        raw = typer.get_text_stream("stdin").read()
    elif text.startswith("@"):
        try:
            raw = Path(text[1:]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise fail(f"{name}: cannot read {text[1:]}: {reason}", 2) from None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise fail(f"{name} is not JSON: {exc}", 2) from None
    if not isinstance(value, dict):
        raise fail(f"{name} must be a JSON object", 2)
    return value


def table_of(
    columns: Iterable[str | Column], rows: Iterable[Sequence[Any]], **options: Any
) -> Table:
    """A Rich table of ``rows`` under ``columns`` (``options`` as Table takes them). Its cells,
    title and caption are text, never Rich markup: they quote names, messages and errors that
    users and outside systems wrote ("[/]" would end the command, "[red]" would vanish). A
    column named by its header folds a long value, never cuts it ("platform-oncall-seco…" was
    a user's name the next command needed whole)."""
    for part in ("title", "caption"):
        if isinstance(options.get(part), str):
            options[part] = Text(options[part], style=f"table.{part}")  # Rich's own look
    shown = Table(
        *(Column(c, overflow="fold") if isinstance(c, str) else c for c in columns), **options
    )
    for row in rows:
        shown.add_row(*(Text(value) if isinstance(value, str) else value for value in row))
    return shown


def echo_json(rows: Sequence[BaseModel]) -> None:
    """Records as one line of JSON, non-ASCII as is (for scripts)."""
    typer.echo(json.dumps([row.model_dump(mode="json") for row in rows], ensure_ascii=False))


def print_json(out: Console, value: BaseModel | Sequence[BaseModel]) -> None:
    """A record, or a list of them, as indented JSON."""
    if isinstance(value, BaseModel):
        out.print_json(value.model_dump_json())
    else:
        out.print_json(json.dumps([item.model_dump(mode="json") for item in value]))


def print_rows(
    out: Console,
    columns: list[str],
    rows: list[list[object]],
    items: Sequence[BaseModel],
    as_json: bool,
    title: str | None = None,
) -> None:
    """JSON, a table on a terminal (ids fold, never cut), or tab-separated lines in a pipe."""
    if as_json:
        print_json(out, items)
        return
    if not out.is_terminal:
        for row in rows:
            # Plain text for pipes: Rich would expand tabs and wrap at its width.
            cells = [v.isoformat() if isinstance(v, datetime) else cell(v) for v in row]
            print("\t".join(cells), file=out.file)
        return
    texts = [[cell(v) for v in row] for row in rows]
    out.print(table_of(columns, texts, title=title))


def cell(value: object) -> str:
    """A table cell: empty for nothing, a mapping as JSON, anything else as text."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def parsed(model: type[M], **values: Any) -> M:
    """The typed input; else each refused field on a line of its own on stderr, and exit 2."""
    try:
        return model(**values)
    except ValidationError as exc:
        raise fail("\n".join(field_problems(exc, "input")), 2) from None


def existing_data_dir(settings: Settings) -> Settings:
    """``settings``, unless its database is SQLite in a data dir that does not exist: a
    mistyped AMBIENT_DATA_DIR made a new empty database there, and "no tasks" was said."""
    where = settings.data_dir.resolve()
    if settings.database_url is None and not where.is_dir():
        raise fail(
            f"no data directory at {where} (AMBIENT_DATA_DIR, default .data): point "
            "AMBIENT_DATA_DIR at the one `ambient dev` runs with, or set one up there with "
            "`ambient dev` or `ambient migrate`"
        )
    return settings


def run_service(
    service: Callable[[AppState], S],
    work: Callable[[S], Awaitable[T]],
    refused: type[Exception] | tuple[type[Exception], ...],
) -> T:
    """``work`` on a service of the state; ``refused`` or Temporal down: a line, exit 1."""
    from ambient.status import database_problem, temporal_problem
    from ambient.wiring import open_state

    settings = existing_data_dir(discovered_settings())

    async def main() -> T:
        # The command holds the database, as `ambient migrate` does; Temporal connects lazily.
        async with open_state(settings, upgrade=True) as state:
            return await work(service(state))

    try:
        return asyncio.run(main())
    except typer.Exit:
        raise
    except (MigrationRefusedError, DatabaseBehindError) as exc:
        raise fail(str(exc)) from None  # as `ambient migrate` says it (the command migrates)
    except Exception as exc:
        said = (
            in_cli_words(str(exc)) if isinstance(exc, refused) else f"{type(exc).__name__}: {exc}"
        )
        problem = temporal_problem(exc, settings) or database_problem(exc, settings)
        raise fail(problem or said) from None


def run_operator(
    work: Callable[[Database], Awaitable[T]],
    refused: type[Exception] | tuple[type[Exception], ...] = (),
    code: int = 1,
) -> T:
    """``work`` on the app database for an operator command, migrated first and closed after;
    a ``refused`` error is its message on a line (as it is: it names no MCP tool), exit ``code``."""
    # Whoever runs these holds the database, as `ambient migrate` does.
    url = existing_data_dir(Settings()).resolved_database_url

    async def main() -> T:
        await upgrade_async(url)
        async with Database(url) as db:
            return await work(db)

    try:
        return asyncio.run(main())
    except refused as exc:
        raise fail(str(exc), code) from None
    except DBAPIError as exc:
        # One line without its statement and parameters (a new token's hash was among them,
        # in a traceback): the database's own words (read-only, a full disk), or where it is.
        from ambient.status import database_problem

        said = database_problem(exc, Settings()) or f"the database refused it: {exc.orig}"
        raise fail(said) from None


def run_in_session(
    work: Callable[[AsyncSession], Awaitable[T]],
    refused: type[Exception] | tuple[type[Exception], ...] = (),
    code: int = 1,
) -> T:
    """``work`` in one session of the app database as ``run_operator`` opens it, committed."""

    async def in_session(db: Database) -> T:
        async with db.session() as session:
            result = await work(session)
            await session.commit()
            return result

    return run_operator(in_session, refused, code)
