"""The `ambient` command."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from ambient.cli_group import LazyGroup
from ambient.cli_numbers import whole_number
from ambient.log_redaction import setup_logging
from ambient.settings import Settings
from ambient.startup import loading

app = typer.Typer(
    name="ambient",
    help="ambient-ops: durable background operations on Temporal.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    cls=LazyGroup,
)
# Ports and file descriptors: ASCII digits only (int() also reads "1_0" and "８０００").
NUMBER = whole_number(0)


def _terminal(stderr: bool = False) -> Console:
    """The console every command prints on (ambient/commands ``terminal``), made when one
    prints: importing this module imports no command's."""
    from ambient.commands import terminal

    return terminal(stderr)


def _dev_port(given: int | None, name: str, default: int) -> int:
    """A port only `ambient dev` reads: given (or exported), else .env's line, else
    ``default``. Not a setting every command reads: a Kubernetes Service named
    ambient-temporal puts AMBIENT_TEMPORAL_PORT=tcp://... in every pod's environment."""
    if given is not None:
        return given
    from dotenv import dotenv_values

    value = dotenv_values(".env").get(name) if Path(".env").is_file() else None
    if not value:
        return default
    try:
        return NUMBER(value)
    except typer.BadParameter as exc:
        from ambient.commands import fail

        raise fail(f"{name} in .env: {exc}", 2) from None


@app.command()
def dev(
    # Not given here nor in the environment: as .env says, else Settings' default (.data, 8000,
    # 7233, 8233, none, 9464, off), as every other command reads them.
    data_dir: Annotated[Path | None, typer.Option(envvar="AMBIENT_DATA_DIR")] = None,
    api_port: Annotated[int | None, typer.Option(envvar="AMBIENT_API_PORT", parser=NUMBER)] = None,
    temporal_port: Annotated[
        int | None, typer.Option(envvar="AMBIENT_TEMPORAL_PORT", parser=NUMBER)
    ] = None,
    ui_port: Annotated[int | None, typer.Option(envvar="AMBIENT_UI_PORT", parser=NUMBER)] = None,
    temporal_address: Annotated[
        str | None,
        typer.Option(envvar="AMBIENT_TEMPORAL_ADDRESS", help="use this server, start none"),
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option(envvar="AMBIENT_METRICS_PORT", help="0: off", parser=NUMBER)
    ] = None,
    local_llm: Annotated[
        bool | None,
        typer.Option(
            "--local-llm/--no-local-llm",
            envvar="AMBIENT_LOCAL_LLM",
            help="every LLM use goes to the local model (`make llm`), started or reused",
        ),
    ] = None,
) -> None:
    """Run everything on embedded defaults: Temporal dev server + Web UI, worker, API, MCP."""
    with loading():
        from ambient.devstack import DevOptions, run_dev

    given: dict[str, Any] = {
        "data_dir": data_dir,
        "api_port": api_port,
        "temporal_address": temporal_address,
        "metrics_port": metrics_port,
        "local_llm": local_llm,
    }
    settings = Settings(**{name: value for name, value in given.items() if value is not None})
    opts = DevOptions(
        data_dir=settings.data_dir,  # as Settings reads it (~ expanded), for the children too
        api_port=settings.api_port,
        temporal_port=_dev_port(temporal_port, "AMBIENT_TEMPORAL_PORT", 7233),
        ui_port=_dev_port(ui_port, "AMBIENT_UI_PORT", 8233),
        # A server of the user's (given, exported or in .env), else one of our own.
        temporal_address=(
            settings.temporal_address if "temporal_address" in settings.model_fields_set else None
        ),
        metrics_port=settings.metrics_port or None,
    )
    raise typer.Exit(run_dev(settings, opts, _terminal()))


@app.command()
def worker() -> None:
    """Run the worker (every workflow and activity) until SIGINT/SIGTERM."""
    with loading():
        from worker import MetricsPortTakenError, NamespaceMissingError, run_worker

    from ambient.runtime import discovered_settings

    setup_logging()
    # Beside a running `ambient dev`, its Temporal (as every other command finds it): one
    # more worker for that stack.
    settings = discovered_settings()
    _require_migrated(settings)
    try:
        asyncio.run(run_worker(settings))
    except (MetricsPortTakenError, NamespaceMissingError) as exc:
        from ambient.commands import fail

        raise fail(str(exc)) from None


@app.command()
def api(
    host: str | None = None,
    port: Annotated[int | None, typer.Option(parser=NUMBER)] = None,
    fd: Annotated[
        int | None,
        typer.Option(help="serve on this listening socket (`ambient dev` binds it)", parser=NUMBER),
    ] = None,
) -> None:
    """Serve the API, the web page and MCP over HTTP at /mcp."""
    with loading():
        import uvicorn

        from api.app import KEEP_ALIVE, create_app

    setup_logging()
    settings = Settings()
    _require_migrated(settings)
    bind: dict[str, Any] = (
        {"fd": fd}
        if fd is not None
        else {
            # Given, even 0 (any free port) or "", they are what the command line asked for.
            "host": settings.api_host if host is None else host,
            "port": settings.api_port if port is None else port,
        }
    )
    uvicorn.run(create_app(settings), log_level="info", timeout_keep_alive=KEEP_ALIVE, **bind)


@app.command()
def mcp(
    user: Annotated[str, typer.Option(help="the user this stdio session acts as")],
    read_only: Annotated[bool, typer.Option("--read-only", help="serve read tools only")] = False,
    areas: Annotated[
        list[str] | None, typer.Option("--area", help="enable only these tool areas")
    ] = None,
    server_name: Annotated[
        str | None,
        typer.Option("--server", help="a discussion server alone: signing, annotate or bus"),
    ] = None,
    profile: Annotated[
        str | None, typer.Option("--profile", help="voice: the few speakable tools for 小智")
    ] = None,
) -> None:
    """Serve MCP over stdio (for Claude Desktop, Cursor, ...)."""
    import anyio

    from ambient.runtime import discovered_settings

    with loading():
        from mcp_server.server import DISCUSSION_SERVERS, build_discussion_server, build_server
        from mcp_server.tools import unknown_areas

    setup_logging(logging.WARNING)
    settings = discovered_settings()
    if profile is not None and profile != "voice":
        raise typer.BadParameter("the one profile is voice", param_hint="--profile")
    if server_name is not None and server_name not in DISCUSSION_SERVERS:
        known = ", ".join(DISCUSSION_SERVERS)
        raise typer.BadParameter(f"one of {known}", param_hint="--server")
    if problem := unknown_areas(areas or ()):
        raise typer.BadParameter(problem, param_hint="--area")
    if profile is not None and (areas or server_name is not None):
        raise typer.BadParameter(
            "the voice profile serves its own tools: --area and --server do not apply",
            param_hint="--profile",
        )
    if server_name is not None and areas:
        raise typer.BadParameter(
            "a discussion server serves its own tools: --area options do not apply",
            param_hint="--server",
        )
    if profile is not None:
        from mcp_server.voice import build_voice_server

        server = build_voice_server(settings, stdio_user=user, read_only=read_only)
    elif server_name is not None:
        server = build_discussion_server(
            settings, server_name, stdio_user=user, read_only=read_only
        )
    else:
        server = build_server(settings, read_only=read_only, areas=areas, stdio_user=user)
    if read_only and not server._tool_manager.list_tools():
        # A client would show it enabled and empty (the signing tools all write).
        raise typer.BadParameter(
            "no tool of these areas only reads: drop --read-only, or choose others",
            param_hint="--read-only",
        )
    _require_migrated(settings)
    anyio.run(server.run_stdio_async)


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON (for scripts)")] = False,
) -> None:
    """Is Temporal reachable, are workers polling, does the database answer?"""
    from ambient import temporal
    from ambient.commands import existing_data_dir, table_of
    from ambient.runtime import discovered_settings
    from ambient.status import system_status
    from ambient.storage import Database

    settings = existing_data_dir(discovered_settings())

    async def probe() -> bool:
        async with Database(settings.resolved_database_url) as db:
            client = await temporal.connect(settings, lazy=True)
            report = await system_status(settings, client, db)
        console = _terminal()
        if as_json:
            console.print_json(report.model_dump_json())
        else:
            cells = [[name, str(value)] for name, value in report.model_dump().items()]
            table = table_of(["", ""], cells, title="ambient-ops status", show_header=False)
            console.print(table)
        # A database no process of this release starts on is unhealthy here (not at /health,
        # which a replica of the release before answers through a rolling upgrade), and so is
        # a stack no worker runs (its tasks never run; the API itself is well).
        return (
            report.healthy and report.database_current is not False and report.workers_polling > 0
        )

    raise typer.Exit(0 if asyncio.run(probe()) else 1)


@app.command("new-payload-key")
def new_payload_key() -> None:
    """Print a fresh key for AMBIENT_PAYLOAD_KEY (payload encryption)."""
    from ambient.codec import new_key

    _terminal().print(new_key(), soft_wrap=True, highlight=False)


@app.command()
def migrate(
    check: Annotated[
        bool, typer.Option("--check", help="change nothing; non-zero when the database is behind")
    ] = False,
) -> None:
    """Bring the app database to this release's revision (the deploy step before the API)."""
    from ambient.storage.migrate import MigrationRefusedError, head_revision, upgrade

    settings = Settings()
    if check:
        _require_migrated(settings)
        _terminal().print(f"database at {head_revision()}")
        return
    try:
        before, after = upgrade(settings.resolved_database_url)
    except MigrationRefusedError as exc:
        _terminal(stderr=True).print(str(exc), soft_wrap=True, highlight=False, markup=False)
        raise typer.Exit(1) from exc
    _terminal().print(f"database from {', '.join(before) or 'empty'} to {after}")


def _require_migrated(settings: Settings) -> None:
    """Exit with the refusal's message (not a traceback) when the database is behind."""
    from ambient.commands import existing_data_dir
    from ambient.storage.migrate import DatabaseBehindError, require_current

    existing_data_dir(settings)
    try:
        asyncio.run(require_current(settings.resolved_database_url))
    except DatabaseBehindError as exc:
        _terminal(stderr=True).print(str(exc), soft_wrap=True, highlight=False, markup=False)
        raise typer.Exit(1) from exc


@app.command()
def replay(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="history JSON files or folders")
    ] = None,
    query: Annotated[
        str | None, typer.Option(help="visibility query: replay histories from the server")
    ] = None,
    workflows: Annotated[
        list[str] | None, typer.Option("--workflows", help="extra workflow classes, module:attr")
    ] = None,
) -> None:
    """Replay recorded histories against the current code; non-zero on non-determinism."""
    from ambient import replay as replaying
    from ambient import temporal
    from ambient.runtime import discovered_settings

    console, err_console = _terminal(), _terminal(stderr=True)
    try:
        classes = replaying.load_workflows(workflows or [])
        if query is not None:

            async def fetch() -> list[replaying.ReplayOutcome]:
                client = await temporal.connect(discovered_settings())
                return await replaying.replay_query(client, query, classes)

            outcomes = asyncio.run(fetch())
        else:
            files = replaying.history_files(paths or [])
            if not files:
                err_console.print("no history files found")
                raise typer.Exit(2)
            converter = temporal.data_converter(Settings())
            outcomes = asyncio.run(replaying.replay_files(files, classes, converter))
    except replaying.ReplayInputError as exc:
        err_console.print(str(exc), highlight=False, markup=False)
        raise typer.Exit(2) from None
    failed = [o for o in outcomes if not o.ok and not o.unreadable]
    unreadable = [o for o in outcomes if o.unreadable]
    for outcome in outcomes:
        mark = (
            "[green]ok[/]"
            if outcome.ok
            else "[red]NOT OURS[/]"
            if outcome.foreign
            else "[red]UNREADABLE[/]"
            if outcome.unreadable
            else "[red]NON-DETERMINISTIC[/]"
        )
        named = f"{outcome.workflow_type} ({outcome.workflow_id}) {outcome.source}"
        console.print(f"{mark} {escape(named)}")
        if outcome.error:
            console.print(f"    {outcome.error}", highlight=False, markup=False)
    replayed = len(outcomes) - len(unreadable)
    console.print(f"{replayed - len(failed)}/{replayed} histories replayed cleanly")
    if unreadable:
        console.print(f"{len(unreadable)} file(s) could not be read as a history of ours")
    # Non-determinism 1; a file that is no history or not our workflow 2 (a wrong path in CI
    # is told apart).
    raise typer.Exit(1 if failed else 2 if unreadable else 0)


class _Output:
    """The process's stdout or stderr as commands write to it (rich, typer, ``sys.stdout``
    itself), noting a write that failed: what a full disk refused is told from any other
    OSError by being that one."""

    failed: OSError | None = None

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return int(self._stream.write(text))
        except OSError as error:
            _Output.failed = error
            raise

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as error:
            _Output.failed = error
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def main() -> None:
    """The `ambient` command as a process: the app, then its exit.

    A process that connected to Temporal has the SDK's runtime threads (Rust) still running
    when the interpreter tears down, and that teardown can abort it (rc 134, "PyGILState_Release
    … finalizing"; temporalio/sdk-python#300) after the command succeeded. Such a process leaves
    at once, its output flushed and its logs closed, with the command's own code."""
    # Not a stream Python has none of (a closed descriptor: None, which print skips).
    if sys.stdout is not None:
        sys.stdout = _Output(sys.stdout)  # type: ignore[assignment]
    if sys.stderr is not None:
        sys.stderr = _Output(sys.stderr)  # type: ignore[assignment]
    try:
        app()
        code: object = 0
    except SystemExit as end:
        code = end.code
    except OSError as error:
        # Written while the command ran (rich and typer flush as they print; unbuffered, as
        # the image runs, every print): a full disk said as at the exit below, not a traceback.
        if error is not _Output.failed or isinstance(error, BrokenPipeError):
            raise
        with contextlib.suppress(OSError, ValueError):
            print(f"ambient: output lost: {error}", file=sys.stderr, flush=True)
        code = 120
    temporal = sys.modules.get("ambient.temporal")  # not imported: no runtime to leave
    if temporal is None or not temporal.runtime_started():
        raise SystemExit(code)
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)  # SystemExit("text"): said, then 1
        code = 1
    for stream in (sys.stdout, sys.stderr):
        if stream is None:  # a closed descriptor
            continue
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # a reader gone (`| head`), a closed stream
            pass
        except OSError as error:  # a full disk: the output lost, said as Python says it
            with contextlib.suppress(OSError, ValueError):
                print(f"ambient: output lost: {error}", file=sys.stderr, flush=True)
            code = 120
    logging.shutdown()
    os._exit(code or 0)


if __name__ == "__main__":
    main()
