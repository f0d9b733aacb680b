"""The `ambient` command group: its command groups loaded as they run, and the one line
(exit 2 or 1) a refused setting, a missing payload key, a Temporal or a database that does
not answer is said as, whatever the command."""

from __future__ import annotations

import importlib
import re
from typing import Any

import click
import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from typer.core import TyperCommand, TyperGroup

from ambient.domain.configs import SURROGATE
from ambient.log_redaction import quiet_logging
from ambient.runtime import PayloadKeyMissingError
from ambient.setting_types import ServerSecret
from ambient.settings import Settings
from ambient.startup import loading

# Each command group's module is imported when that command runs: a process started as
# `ambient worker` or `ambient dev` does not import the CLI's other commands (a second of CPU per
# process; the tests start many), and `ambient --help` lists them by the summary here (loading
# every group for it took 3 s). A group's summary is its help; a command's is its docstring's
# first line (tests/foundation/test_cli.py checks they agree). Name -> (module under
# ambient.commands, its command function or None for its Typer app, summary).
LAZY: dict[str, tuple[str, str | None, str]] = {
    "chat": (
        "chat",
        "chat",
        "Chat with the assistant (needs OPENAI_API_KEY; it says so otherwise).",
    ),
    "user": ("user", None, "Users, their roles and permissions, and their API tokens."),
    "task": ("task", None, "Background tasks: watches, reminders, digests."),
    "briefing": ("briefing", None, "The daily briefing: set up, greet, read, send."),
    "cloud": (
        "cloud",
        None,
        "Tencent Cloud: clusters, node pools, log topics, logs, alarms, and changes to them.",
    ),
    "logs": ("logs", None, "Logs: reduce log files to templates, rates and anomalies."),
    "remediation": ("remediation", None, "Graded remediation of TKE alerts."),
    "xiaozhi": ("xiaozhi", None, "小智 (xiaozhi): endpoints and devices."),
    "llm": ("llm", None, "The local model (opt-in): install, serve on 127.0.0.1, status."),
    "events": (
        "events",
        "events",
        "Events, newest first (watch hits, task changes, failed deliveries with their error).",
    ),
    "inbox": ("events", "inbox", "A user's inbox, newest first."),
    "deliveries": (
        "events",
        "deliveries",
        "Deliveries, newest first, with attempts and the error of each failure.",
    ),
}

# The commands that run for long and log as servers do (setup_logging); every other command
# logs nothing on the terminal (quiet_logging): it says what happened in its own words.
LOGGING = {"dev", "worker", "api", "mcp"}


class LazyGroup(TyperGroup):
    """The `ambient` group: its own commands, then LAZY's, loaded by name."""

    listing = False  # while `ambient --help` lists the commands

    # Typed Any: typer passes its own vendored click context and commands.
    def list_commands(self, ctx: Any) -> list[str]:
        own = [name for name in super().list_commands(ctx) if name not in LAZY]
        return ["chat", *own, *(name for name in LAZY if name != "chat")]

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self.listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self.listing = False

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        # Bytes that are not UTF-8 reach Python's argv as lone surrogates (PEP 383): no database
        # stores them and no console prints them, whatever the command.
        for at, arg in enumerate(args, 1):
            if not arg.isascii() and SURROGATE.search(arg):
                from ambient.commands import fail

                raise fail(f"argument {at} ({arg!r}) is not UTF-8 text: retype or re-encode it", 2)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, click.exceptions.Exit, click.ClickException):
            raise  # the command has said it (`fail`, a usage error)
        except ValidationError as exc:
            if exc.title != Settings.__name__:
                raise
            from ambient.commands import fail

            raise fail(settings_refusal(exc), code=2) from None
        except SettingsError as exc:  # a variable that is no JSON where JSON is read
            from ambient.commands import fail

            raise fail(settings_unread(exc), code=2) from None
        except PayloadKeyMissingError as exc:
            from ambient.commands import fail

            raise fail(str(exc), code=2) from None
        except Exception as exc:
            # Whatever the command, a Temporal or an app database that does not answer is one
            # line, exit 1 (the address as the command found it: env, else `ambient dev`'s file).
            from ambient.commands import fail
            from ambient.runtime import discovered_settings
            from ambient.status import database_problem, temporal_problem
            from ambient.storage.migrate import DatabaseBehindError, MigrationRefusedError

            if isinstance(exc, MigrationRefusedError | DatabaseBehindError):
                # The database a command migrates first (as `ambient migrate`): a newer
                # release's, or data a migration cannot carry over, said as `migrate` says it.
                raise fail(str(exc)) from None
            settings = discovered_settings(check_key=False)  # describing, not sending
            problem = temporal_problem(exc, settings) or database_problem(exc, settings)
            if problem is None:
                raise
            raise fail(problem) from None

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name, command, rest = super().resolve_command(ctx, args)
        if name not in LOGGING:
            quiet_logging()
        return name, command, rest

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in LAZY and cmd_name not in self.commands:
            module, attribute, summary = LAZY[cmd_name]
            if self.listing:
                return TyperCommand(cmd_name, help=summary)
            with loading():
                loaded = importlib.import_module(f"ambient.commands.{module}")
            # Built as `ambient` would have built it: added to a Typer of its own.
            parent = typer.Typer()
            if attribute is None:  # a Typer app: the group `ambient NAME …`
                parent.add_typer(loaded.app, name=cmd_name, help=summary)
            else:  # a function: a command of `ambient`'s own
                parent.command(cmd_name)(getattr(loaded, attribute))
            command = typer.main.get_group(parent).commands[cmd_name]
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


def settings_unread(exc: SettingsError) -> str:
    """A variable pydantic-settings could not read (JSON expected), one line naming it."""
    found = re.search(r'field "(\w+)"', str(exc))
    name = f"AMBIENT_{found.group(1).upper()}" if found else "a setting"
    return f"settings refused: {name}: not JSON (a list or object is written as JSON)"


def settings_refusal(exc: ValidationError) -> str:
    """Why the settings were refused, one line naming each variable (never its value) and,
    inside one holding JSON, the place in it ("AMBIENT_SECRETS: wecom.users: ...").
    pydantic's names of a union's members are no place: left out, and the error of a member
    the value is not of (a string asked of an object) with them."""
    errors = exc.errors(include_url=False, include_input=False)
    places = [[str(part) for part in error["loc"]] for error in errors]
    kepts = [[part for part in place if not _union_tag(part)] for place in places]
    said: list[str] = []
    for error, place, kept in zip(errors, places, kepts, strict=True):
        if len(kept) < len(place) and any(
            len(other) > len(kept) and other[: len(kept)] == kept for other in kepts
        ):
            continue  # another member's error says what is wrong deeper inside the value
        message = str(error["msg"]).removeprefix("Value error, ")
        variable = f"AMBIENT_{kept[0].upper()}" if kept else ""
        inside = ".".join(kept[1:])
        where = f"{variable}: {inside}" if inside else variable
        line = f"{where}: {message}" if where else message
        if line not in said:  # two members refusing one place alike: said once
            said.append(line)
    return "settings refused: " + "; ".join(said)


def _union_tag(part: str) -> bool:
    """pydantic's name for one member of a union in an error's place: a validator chain
    ("lax-or-strict[...]") or a model's class name ("ServerSecret")."""
    return "[" in part or part in {ServerSecret.__name__}
