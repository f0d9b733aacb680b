import ast
import asyncio
import io
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import click
import pytest
import typer
from mcp import Client, StdioServerParameters
from rich.console import Console
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from ambient.cli import app
from ambient.cli_group import LAZY
from ambient.commands import print_rows
from ambient.commands.task import print_tasks
from ambient.deps import WorkerDeps
from ambient.runtime import (
    RuntimeInfo,
    discovered_settings,
    process_started,
    read_runtime,
    write_runtime,
)
from ambient.settings import Settings
from ambient.watches.configs import TaskKind, TaskState
from ambient.watches.listing import TaskSummary
from tests.conftest import running_worker, unique
from tests.foundation.test_dev_stack import DevStack
from tests.foundation.test_mcp_protocol import INITIALIZE
from tests.standins.tencent_api import SECRET_ID, SECRET_KEY, TencentApi
from tests.support.servers import HANG, serve
from tests.support.waits import eventually


def _env(tmp_path: Path, dev_env: WorkflowEnvironment) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMBIENT_")}
    env["AMBIENT_DATA_DIR"] = str(tmp_path)
    env["AMBIENT_TEMPORAL_ADDRESS"] = dev_env.client.service_client.config.target_host
    return env


async def test_mcp_over_stdio_answers_get_status(
    tmp_path: Path, dev_env: WorkflowEnvironment
) -> None:
    migrated = await asyncio.to_thread(
        CliRunner().invoke, app, ["migrate"], env=_env(tmp_path, dev_env)
    )
    assert migrated.exit_code == 0, migrated.output
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "ambient.cli", "mcp", "--user", "alice", "--read-only"],
        env=_env(tmp_path, dev_env),
    )
    async with Client(params) as client:
        tools = [tool.name for tool in (await client.list_tools()).tools]
        result = await client.call_tool("get_status", {})
    assert "get_status" in tools
    assert result.structured_content is not None
    assert result.structured_content["temporal_reachable"] is True
    assert result.structured_content["database_reachable"] is True


async def test_mcp_over_stdio_answers_a_line_that_is_no_message_and_serves_on(
    tmp_path: Path, dev_env: WorkflowEnvironment
) -> None:
    """A malformed line on stdio was dropped without an answer (the SDK's server logs it at
    debug): the client waited for good. JSON-RPC 2.0 answers a parse error with id null and
    -32700, an invalid request -32600 (under its id when readable); the session goes on. A
    request whose id is null, a fraction or true was read as a notification: never answered
    either (HTTP and the 小智 bridge answer it -32600)."""
    env = _env(tmp_path, dev_env)
    migrated = await asyncio.to_thread(CliRunner().invoke, app, ["migrate"], env=env)
    assert migrated.exit_code == 0, migrated.output
    served = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "ambient.cli", "mcp", "--user", "alice", "--read-only"),
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert served.stdin is not None and served.stdout is not None
    answers = []
    try:
        odd_ids = [
            f'{{"jsonrpc": "2.0", "id": {i}, "method": "ping"}}' for i in ("null", 1.5, "true")
        ]
        # A lone surrogate escaped in what an answer says back: the SDK's writer could not
        # write the answer and the server ended (rc 1), the session with it.
        lone = [
            '{"jsonrpc": "2.0", "id": "a\\ud800", "method": "ping"}',
            '{"jsonrpc": "2.0", "id": 8, "method": "ping\\udc00"}',
            '{"jsonrpc": "2.0", "id": 9, "method": "resources/read", '
            '"params": {"uri": "x:\\ud800"}}',
        ]
        # A notification it cannot read is not answered (JSON-RPC): it was answered id null.
        notice = '{"jsonrpc": "2.0", "method": "notifications/x", "params": [1]}'
        lines = ("{not json", notice, '{"id": 7, "method": "ping"}', *odd_ids, *lone)
        for line in (*lines, json.dumps(INITIALIZE)):
            served.stdin.write(line.encode() + b"\n")
            await served.stdin.drain()
            if line != notice:
                answers.append(json.loads(await asyncio.wait_for(served.stdout.readline(), HANG)))
    finally:
        served.stdin.close()
        await asyncio.wait_for(served.wait(), HANG)
    parse, invalid, *odd, lone_id, lone_method, lone_uri, opened = answers
    assert (parse["id"], parse["error"]["code"]) == (None, -32700), parse
    assert "not JSON" in parse["error"]["message"]
    assert (invalid["id"], invalid["error"]["code"]) == (7, -32600), invalid
    assert "jsonrpc" in invalid["error"]["message"]
    for said in odd:
        assert (said["id"], said["error"]["code"]) == (None, -32600), said
        assert "a request's id is a string or an integer" in said["error"]["message"]
    assert (lone_id["id"], lone_id["error"]["code"]) == (None, -32600), lone_id
    assert (lone_method["id"], lone_method["error"]["code"]) == (8, -32600), lone_method
    assert "lone UTF-16 surrogate" in lone_method["error"]["message"]
    assert (lone_uri["id"], lone_uri["error"]["code"]) == (9, -32600), lone_uri
    assert opened["id"] == 0 and opened["result"]["serverInfo"]["name"] == "ambient-ops", opened


async def test_status_and_migrate_commands(
    tmp_path: Path, dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """`ambient status` said all was well (exit 0, no error) with no worker polling its task
    queue: tasks were created and never ran. It says so and exits 1 until one polls."""
    env = _env(tmp_path, dev_env) | {"COLUMNS": "300"}
    runner = CliRunner()
    upgraded = await asyncio.to_thread(runner.invoke, app, ["migrate"], env=env)
    assert upgraded.exit_code == 0, upgraded.output
    assert (tmp_path / "ambient.db").exists()

    env["AMBIENT_TEMPORAL_TASK_QUEUE"] = queue = unique("status-tq")
    idle = await asyncio.to_thread(runner.invoke, app, ["status", "--json"], env=env)
    assert idle.exit_code == 1, idle.output
    assert json.loads(idle.output)["errors"] == [
        f"no worker polls task queue {queue!r}: start `ambient worker` with this "
        "AMBIENT_TEMPORAL_TASK_QUEUE; tasks and remediations wait for one"
    ]
    async with running_worker(dev_env.client, deps) as worker:
        env["AMBIENT_TEMPORAL_TASK_QUEUE"] = worker.task_queue
        status = await asyncio.to_thread(runner.invoke, app, ["status"], env=env)
    assert status.exit_code == 0, status.output
    assert "temporal_reachable" in status.output and "True" in status.output

    env["AMBIENT_TEMPORAL_ADDRESS"] = "127.0.0.1:1"
    down = await asyncio.to_thread(runner.invoke, app, ["status"], env=env)
    assert down.exit_code == 1


def test_status_shows_settings_and_errors_as_written_not_as_markup(tmp_path: Path) -> None:
    env = _offline_env(tmp_path) | {"COLUMNS": "300"}
    env["AMBIENT_TEMPORAL_ADDRESS"] = f"127.0.0.1:{_closed_port()}"
    # A name the operator chose is text: Rich read "[/]" as markup and the command ended in a
    # MarkupError, and "[red]x[/red]" lost its brackets.
    env["AMBIENT_TEMPORAL_TASK_QUEUE"] = queue = "[/] ops [red]x[/red]"
    down = CliRunner().invoke(app, ["status"], env=env)
    assert down.exit_code == 1 and isinstance(down.exception, SystemExit), down.exception
    assert queue in down.output and "Temporal is unreachable" in down.output, down.output


def test_a_command_refuses_a_data_dir_that_does_not_exist_and_makes_nothing(
    tmp_path: Path,
) -> None:
    # A mistyped AMBIENT_DATA_DIR made a new empty database there: "no events", no users.
    typo = tmp_path / "dta"
    env = {**_offline_env(typo), "AMBIENT_TEMPORAL_ADDRESS": f"127.0.0.1:{_closed_port()}"}
    said = (
        f"no data directory at {typo} (AMBIENT_DATA_DIR, default .data): point "
        "AMBIENT_DATA_DIR at the one `ambient dev` runs with, or set one up there with "
        "`ambient dev` or `ambient migrate`\n"
    )
    # status said the database answered, mcp made one and then asked for a migration.
    for command in (
        ["events"],
        ["user", "list"],
        ["task", "list"],
        ["chat", "--user", "x", "hi"],
        ["status"],
        ["mcp", "--user", "x"],
        ["worker"],
        ["api"],
        ["migrate", "--check"],
    ):
        result = CliRunner().invoke(app, command, env=env)
        assert (result.exit_code, result.stdout, result.stderr) == (1, "", said), command
    assert not typo.exists()
    # The commands that set one up still make it.
    assert CliRunner().invoke(app, ["migrate"], env=env).exit_code == 0
    assert CliRunner().invoke(app, ["events"], env=env).stdout == "no events\n"


def test_user_commands_create_show_and_rotate_token(tmp_path: Path) -> None:
    env = {"AMBIENT_DATA_DIR": str(tmp_path)}
    runner = CliRunner()
    created = runner.invoke(
        app, ["user", "create", "alice", "--email", "alice@example.com"], env=env
    )
    assert created.exit_code == 0, created.output
    assert "API token: amb_" in created.output
    again = runner.invoke(app, ["user", "create", "alice"], env=env)
    assert again.exit_code == 1 and "already exists" in again.output
    # A name no user has is said back as typed, on stderr: brackets are text, not markup.
    for name in ("[/]", "[admin]"):
        unknown = runner.invoke(app, ["user", "show", name], env=env)
        assert (unknown.exit_code, unknown.stdout) == (1, ""), unknown.output
        assert unknown.stderr == f"no user {name!r}\n"
    bad = runner.invoke(app, ["user", "create", "Alice!", "--timezone", "Nowhere/City"], env=env)
    assert bad.exit_code == 2
    assert "name:" in bad.output and "timezone:" in bad.output
    shown = runner.invoke(app, ["user", "show", "alice"], env=env)
    assert "alice@example.com" in shown.output
    rotated = runner.invoke(app, ["user", "token", "alice"], env=env)
    assert rotated.exit_code == 0 and "amb_" in rotated.output
    assert "also ended" not in rotated.output  # nothing of hers to set up again
    voiced = runner.invoke(app, ["user", "voice-token", "alice"], env=env)
    assert voiced.exit_code == 0, voiced.output
    rotated = runner.invoke(app, ["user", "token", "alice"], env=env)
    assert "also ended for alice: the voice token (set up again" in rotated.output
    assert runner.invoke(app, ["user", "show", "nobody"], env=env).exit_code == 1


def test_a_database_that_refuses_a_write_is_one_line_without_the_statement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only database (or a full disk): `user create` printed a traceback with the
    statement and its parameters, the new token's hash among them."""
    env = {"AMBIENT_DATA_DIR": str(tmp_path)}
    assert CliRunner().invoke(app, ["migrate"], env=env).exit_code == 0

    async def refused(self: AsyncSession) -> None:
        raise OperationalError(
            "INSERT INTO users (token_hash) VALUES (?)",
            ("hash-of-the-new-token",),
            Exception("attempt to write a readonly database"),
        )

    monkeypatch.setattr(AsyncSession, "commit", refused)
    result = CliRunner().invoke(app, ["user", "create", "carol"], env=env)
    assert result.exit_code == 1
    assert result.stderr == "the database refused it: attempt to write a readonly database\n"
    assert "hash-of-the-new-token" not in result.output + result.stderr


@pytest.mark.parametrize(
    "command",
    [["user", "list"], ["events", "--json"], ["logs", "templates", "{log}", "--json"]],
)
def test_output_lost_to_a_full_disk_while_unbuffered_is_said(
    tmp_path: Path, command: list[str]
) -> None:
    """Unbuffered (PYTHONUNBUFFERED=1, as the image runs), rich and typer write as they print:
    a full disk was a traceback and exit 1, not "output lost", 120 (said only at the exit)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMBIENT_")}
    env |= {"AMBIENT_DATA_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    assert CliRunner().invoke(app, ["migrate"], env=env).exit_code == 0
    assert CliRunner().invoke(app, ["user", "create", "dev"], env=env).exit_code == 0
    log = tmp_path / "app.log"
    log.write_text("2026-11-21T01:00:00Z ERROR disk full on /data\n", encoding="utf-8")
    command = [part.format(log=log) for part in command]  # written with sys.stdout.write
    with open("/dev/full", "w") as full:  # Linux's: no room for anything
        done = subprocess.run(
            [sys.executable, "-m", "ambient.cli", *command],
            env=env,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    assert (done.returncode, done.stderr) == (
        120,
        "ambient: output lost: [Errno 28] No space left on device\n",
    )


@pytest.mark.parametrize("closed", [1, 2])
def test_a_command_run_with_its_stdout_or_stderr_closed_does_what_it_does(
    tmp_path: Path, closed: int
) -> None:
    """An init script or daemon that closes a descriptor: Python's stream is None, which
    print skips; a proxy of it failed every command, a traceback and exit 120."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMBIENT_")}
    done = subprocess.run(
        [sys.executable, "-m", "ambient.cli", "--help"],
        env=env,
        preexec_fn=lambda: os.close(closed),
        capture_output=False,
        stdout=subprocess.DEVNULL if closed == 2 else None,
        stderr=subprocess.PIPE if closed == 1 else None,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def test_an_oserror_that_is_no_output_is_not_said_as_output_lost(tmp_path: Path) -> None:
    """`ambient dev` on a data dir under a file: "output lost", 120 (its console was near the
    mkdir that failed), and before that a traceback. Its own error, in one line."""
    (tmp_path / "afile").write_text("", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMBIENT_")}
    under = tmp_path / "afile" / "sub"
    done = subprocess.run(
        [sys.executable, "-m", "ambient.cli", "dev", "--data-dir", str(under)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done
    said = " ".join(done.stderr.split())
    assert said == (
        f"ambient dev: the data directory {under} cannot be made (Not a directory): choose "
        "another with --data-dir (AMBIENT_DATA_DIR)"
    )


def _offline_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMBIENT_")}
    env["AMBIENT_DATA_DIR"] = str(tmp_path)
    return env


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_task_list_with_temporal_down_prints_one_clear_line(tmp_path: Path) -> None:
    env = _offline_env(tmp_path)
    env["AMBIENT_TEMPORAL_ADDRESS"] = address = f"127.0.0.1:{_closed_port()}"
    for args in (
        ["task", "list"],
        ["task", "list", "--json"],
        ["task", "show", "web-monitor/dev/x"],
        ["task", "show", "web-monitor/dev/x", "--json"],
    ):
        result = CliRunner().invoke(app, args, env=env)
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and f"Temporal is unreachable at {address}" in lines[0], lines


def test_replay_query_with_temporal_down_prints_one_clear_line(tmp_path: Path) -> None:
    env = _offline_env(tmp_path)
    env["AMBIENT_TEMPORAL_ADDRESS"] = address = f"127.0.0.1:{_closed_port()}"
    result = CliRunner().invoke(app, ["replay", "--query", 'ExecutionStatus="Running"'], env=env)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and f"Temporal is unreachable at {address}" in lines[0], lines


async def test_a_command_that_connected_to_temporal_exits_with_its_code_and_whole_output(
    tmp_path: Path, dev_env: WorkflowEnvironment
) -> None:
    """A process that connected to Temporal leaves without the interpreter's teardown (which
    the SDK's runtime threads can abort, rc 134: temporalio/sdk-python#300): its output,
    block-buffered into a pipe, must still arrive whole, and its code be the command's."""
    env = _env(tmp_path, dev_env)
    env.pop("PYTHONUNBUFFERED", None)  # a plain print into a pipe is held in its buffer
    for step in (["migrate"], ["user", "create", "dev"]):
        done = await asyncio.to_thread(CliRunner().invoke, app, step, env=env)
        assert done.exit_code == 0, done.output

    def run(*args: str, stdout: Any = subprocess.PIPE, **more: str) -> Any:
        return subprocess.run(
            [sys.executable, "-m", "ambient.cli", *args],
            env={**env, **more},
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )

    config = json.dumps({"type": "daily", "hour": 8, "message": "stand-up"})
    created = await asyncio.to_thread(run, "task", "create", "schedule", "--config", config)
    assert created.returncode == 0, created.stderr
    task = json.loads(created.stdout)  # rich's JSON, whole (as `list --json` prints it)
    rows = await asyncio.to_thread(run, "task", "list")  # print()ed rows: flushed at the exit
    assert rows.returncode == 0 and task["task_id"] in rows.stdout, rows

    def into_a_full_disk() -> Any:  # Linux's /dev/full: no room for the rows
        with open("/dev/full", "w") as full:
            return run("task", "list", stdout=full)

    lost = await asyncio.to_thread(into_a_full_disk)
    assert lost.returncode == 120 and "output lost" in lost.stderr, lost  # said, no success
    refused = await asyncio.to_thread(run, "task", "create", "schedule", "--config", "{}")
    assert refused.returncode == 1 and "a reminder needs a message" in refused.stderr, refused
    down = await asyncio.to_thread(
        run, "status", "--json", AMBIENT_TEMPORAL_ADDRESS=f"127.0.0.1:{_closed_port()}"
    )
    assert down.returncode == 1 and json.loads(down.stdout)["temporal_reachable"] is False


def test_commands_find_the_running_dev_stack_in_the_data_dir_and_env_wins(
    tmp_path: Path,
) -> None:
    recorded = f"127.0.0.1:{_closed_port()}"
    write_runtime(
        tmp_path,
        RuntimeInfo(pid=os.getpid(), temporal_address=recorded, api_host="127.0.0.1", api_port=1),
    )
    env = _offline_env(tmp_path)
    found = CliRunner().invoke(app, ["task", "list"], env=env)
    assert f"Temporal is unreachable at {recorded}" in found.output
    status = CliRunner().invoke(app, ["status", "--json"], env=env)
    report = json.loads(status.output)
    assert status.exit_code == 1 and report["temporal_address"] == recorded
    assert report["errors"][0].startswith(f"Temporal is unreachable at {recorded}")

    env["AMBIENT_TEMPORAL_ADDRESS"] = chosen = f"127.0.0.1:{_closed_port()}"
    wins = CliRunner().invoke(app, ["task", "list"], env=env)
    assert f"Temporal is unreachable at {chosen}" in wins.output

    # A file left by a stack that is gone is ignored (its pid no longer runs).
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    write_runtime(
        tmp_path,
        RuntimeInfo(pid=int(gone.stdout), temporal_address=recorded, api_host="h", api_port=1),
    )
    assert read_runtime(tmp_path) is None
    assert discovered_settings(data_dir=tmp_path).temporal_address == "localhost:7233"


def test_a_command_without_the_key_of_a_stack_that_encrypts_is_refused_before_it_sends(
    tmp_path: Path,
) -> None:
    """`ambient dev` ran with AMBIENT_PAYLOAD_KEY (in its .env) and a command ran from a shell
    without it: `task create` wrote the task's input, a webhook's token in it, in clear text
    into Temporal, then said "KeyError: Unknown payload encoding binary/encrypted" and exit 1
    of a task it had created (pause and trigger alike). The stack's file names its key id
    (never the key): such a command is refused, exit 2, nothing sent."""
    from ambient.codec import new_key

    recorded = f"127.0.0.1:{_closed_port()}"  # nothing listens: a command sent would say so
    info = RuntimeInfo(pid=os.getpid(), temporal_address=recorded, api_host="127.0.0.1", api_port=1)
    write_runtime(tmp_path, info.model_copy(update={"payload_key_id": "k1"}))
    env = _offline_env(tmp_path)
    create = ["task", "create", "reminder", "--name", "r", "--config", '{"cron": "0 9 * * *"}']
    for args in (["task", "list"], create, ["status"], ["mcp", "--user", "dev"]):
        refused = CliRunner().invoke(app, args, env=env)
        assert refused.exit_code == 2, (args, refused.output)
        assert "encrypts payloads (key id k1): set AMBIENT_PAYLOAD_KEY" in refused.output, args
    # The stack's own Temporal given by address (an external one it records): refused too.
    same = CliRunner().invoke(
        app, ["task", "list"], env=env | {"AMBIENT_TEMPORAL_ADDRESS": recorded}
    )
    assert same.exit_code == 2 and "encrypts payloads" in same.output, same.output
    # Another Temporal named (env wins over the stack's file): this stack's key is no matter.
    elsewhere = f"127.0.0.1:{_closed_port()}"
    other = CliRunner().invoke(
        app, ["task", "list"], env=env | {"AMBIENT_TEMPORAL_ADDRESS": elsewhere}
    )
    assert f"Temporal is unreachable at {elsewhere}" in other.output, other.output
    # A command that sends no payload (migrate) failing otherwise says its own failure.
    database = f"postgresql+asyncpg://u:p@127.0.0.1:{_closed_port()}/x"
    failed = CliRunner().invoke(app, ["migrate"], env=env | {"AMBIENT_DATABASE_URL": database})
    assert failed.exit_code == 1 and "encrypts payloads" not in failed.output, failed.output
    assert failed.exception is None or isinstance(failed.exception, SystemExit), failed.output
    env["AMBIENT_PAYLOAD_KEY"] = new_key()
    keyed = CliRunner().invoke(app, ["task", "list"], env=env)
    assert f"Temporal is unreachable at {recorded}" in keyed.output, keyed.output
    write_runtime(tmp_path, info)  # a stack that encrypts nothing asks for no key
    del env["AMBIENT_PAYLOAD_KEY"]
    plain = CliRunner().invoke(app, ["task", "list"], env=env)
    assert f"Temporal is unreachable at {recorded}" in plain.output, plain.output


async def test_a_worker_started_beside_a_dev_stack_joins_its_temporal(
    tmp_path: Path, dev_env: WorkflowEnvironment
) -> None:
    """`ambient worker` beside a running `ambient dev` tried localhost:7233 and said the
    stack's address, which listened, was unreachable (it read the stack's file only to word
    its error). It joins the stack: it polls the stack's Temporal."""
    from ambient import status

    address = dev_env.client.service_client.config.target_host
    info = RuntimeInfo(pid=os.getpid(), temporal_address=address, api_host="127.0.0.1", api_port=1)
    write_runtime(tmp_path, info)
    queue = unique("joined")
    env = _offline_env(tmp_path) | {
        "AMBIENT_TEMPORAL_TASK_QUEUE": queue,
        "AMBIENT_METRICS_PORT": "0",  # the stack's worker holds the default one
    }
    migrated = await asyncio.to_thread(CliRunner().invoke, app, ["migrate"], env=env)
    assert migrated.exit_code == 0, migrated.output
    worker = subprocess.Popen(  # noqa: ASYNC220 - a long-lived child, stopped below
        [sys.executable, "-m", "ambient.cli", "worker"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        async def polling() -> bool | None:
            if worker.poll() is not None:
                raise AssertionError(worker.stdout.read() if worker.stdout else "")
            client = dev_env.client
            return await status.pollers(client, client.namespace, queue) > 0 or None

        await eventually(polling, "the worker polling the stack's Temporal")
    finally:
        worker.terminate()
        worker.wait(timeout=HANG)


def test_a_file_whose_pid_is_another_process_now_is_ignored(tmp_path: Path) -> None:
    """A container restarted hands the same small pids out again: a stack's file left from
    before names a pid that runs, but another process, so no stack runs there."""
    info = RuntimeInfo(pid=os.getpid(), temporal_address="h:1", api_host="h", api_port=1)
    started = process_started(os.getpid())
    assert started is not None  # Linux's /proc: the start of this test's process
    write_runtime(tmp_path, info.model_copy(update={"started": started + 1}))
    assert read_runtime(tmp_path) is None
    write_runtime(tmp_path, info.model_copy(update={"started": started}))
    assert read_runtime(tmp_path) is not None
    write_runtime(tmp_path, info)  # a file written before the start was recorded
    assert read_runtime(tmp_path) is not None


def test_task_list_never_cuts_ids_and_speaks_json() -> None:
    long_id = "web-monitor/a-user-with-a-long-name/" + "n" * 90
    rows = [TaskSummary(task_id=long_id, kind=TaskKind.WEB_MONITOR, state=TaskState.ACTIVE)]
    terminal = Console(width=40, force_terminal=True, record=True)
    print_tasks(rows, terminal)
    first_column = [
        line.split("│")[1].strip()
        for line in terminal.export_text().splitlines()
        if line.startswith("│")
    ]
    assert "".join(first_column) == long_id
    pipe = io.StringIO()
    print_tasks(rows, Console(file=pipe, width=40, force_terminal=False))
    assert pipe.getvalue() == f"{long_id}\tweb_monitor\tactive\t\n"
    as_json = Console(width=40, record=True)
    print_tasks(rows, as_json, as_json=True)
    assert json.loads(as_json.export_text())[0]["task_id"] == long_id


def test_a_table_shows_values_with_brackets_as_they_are() -> None:
    """A cloud resource's name like '[prod] logs' is text, not Rich markup ('[prod]' vanished,
    a '[/]' was a MarkupError traceback)."""
    names = ["[prod] logs", "audit [/] trail"]
    kind, state = TaskKind.WEB_MONITOR, TaskState.ACTIVE
    items = [TaskSummary(task_id=name, kind=kind, state=state) for name in names]
    terminal = Console(width=80, force_terminal=True, record=True)
    print_rows(terminal, ["name"], [[n] for n in names], items, as_json=False)
    shown = terminal.export_text()
    assert all(name in shown for name in names), shown


def test_names_with_colons_are_printed_as_typed_not_as_emoji(tmp_path: Path) -> None:
    """Rich replaces :name: with an emoji in every Console.print (markup=False does not stop
    it): `remediation rule :fire:` said "alert rule '🔥' saved" (it saved ':fire:'), a
    mistyped id 'a:x:b' came back as 'a❌b', `--workflows nope:X` as 'nope❌'."""
    env = _offline_env(tmp_path)
    env["AMBIENT_TEMPORAL_ADDRESS"] = f"127.0.0.1:{_closed_port()}"
    env["COLUMNS"] = "300"
    for step in (["migrate"], ["user", "create", "ops", "--admin"]):
        done = CliRunner().invoke(app, step, env=env)
        assert done.exit_code == 0, done.output
    rule = CliRunner().invoke(app, ["remediation", "rule", ":fire:", "--user", "ops"], env=env)
    assert rule.exit_code == 0, rule.output
    assert rule.output.strip() == "alert rule ':fire:' saved", rule.output
    who = CliRunner().invoke(app, ["user", "show", ":smile:"], env=env)
    assert (who.exit_code, who.output.strip()) == (1, "no user ':smile:'")
    shown = CliRunner().invoke(app, ["remediation", "show", "a:x:b", "--user", "ops"], env=env)
    assert "'a:x:b'" in shown.output, shown.output
    replay = CliRunner().invoke(app, ["replay", "--workflows", "nope:X", str(tmp_path)], env=env)
    assert replay.exit_code == 2 and "nope:X" in replay.output, replay.output


def test_every_console_the_cli_prints_on_is_made_by_its_one_factory() -> None:
    # A console made elsewhere would read ':fire:' as an emoji again (Rich's default).
    root = Path(__file__).resolve().parents[2]
    made = [
        str(path.relative_to(root))
        for folder in ("ambient", "api", "mcp_server")
        for path in sorted((root / folder).rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call)
        and (getattr(node.func, "id", None) or getattr(node.func, "attr", None)) == "Console"
    ]
    assert made == ["ambient/commands/__init__.py"], made  # in `terminal`


def _cloud_env(tmp_path: Path, base: str) -> dict[str, str]:
    """The CLI's environment with Tencent Cloud at the stand-in served at ``base``."""
    return _offline_env(tmp_path) | {
        "TENCENTCLOUD_SECRET_ID": SECRET_ID,
        "TENCENTCLOUD_SECRET_KEY": SECRET_KEY,
        "AMBIENT_TENCENTCLOUD_ENDPOINT": base.removeprefix("http://"),
        "AMBIENT_TENCENTCLOUD_PROTOCOL": "http",
    }


async def test_cloud_lists_speak_json_and_keep_long_ids(tmp_path: Path) -> None:
    long_id = "cls-" + "x" * 120
    api = TencentApi()
    api.clusters = [
        {"ClusterId": long_id, "ClusterName": "prod", "ClusterStatus": "Running"},
    ]
    async with serve(api.app()) as base:
        env = _cloud_env(tmp_path, base)
        runner = CliRunner()
        as_json = await asyncio.to_thread(
            runner.invoke, app, ["cloud", "clusters", "--json"], env=env
        )
        piped = await asyncio.to_thread(runner.invoke, app, ["cloud", "clusters"], env=env)
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output)[0]["cluster_id"] == long_id
    assert piped.output.split("\t")[:3] == [long_id, "prod", "Running"]


@pytest.mark.devserver
async def test_commands_find_ambient_dev_on_its_own_ports(tmp_path: Path) -> None:
    stack = DevStack(tmp_path / "data")
    await stack.start()
    try:
        address = f"127.0.0.1:{stack.temporal_port}"
        recorded = json.loads((stack.data_dir / "runtime.json").read_text())
        assert recorded["temporal_address"] == address
        assert recorded["api_port"] == stack.api_port
        env = _offline_env(stack.data_dir)  # AMBIENT_DATA_DIR alone: no ports repeated
        runner = CliRunner()
        status = await asyncio.to_thread(runner.invoke, app, ["status", "--json"], env=env)
        report = json.loads(status.output)
        assert report["temporal_reachable"] is True and report["temporal_address"] == address
        listed = await asyncio.to_thread(runner.invoke, app, ["task", "list", "--json"], env=env)
        assert listed.exit_code == 0 and json.loads(listed.output) == [], listed.output
        query = ["replay", "--query", 'WorkflowType="NoSuchWorkflow"']
        replayed = await asyncio.to_thread(runner.invoke, app, query, env=env)
        assert replayed.exit_code == 0, replayed.output
        assert "0/0 histories replayed cleanly" in replayed.output
    finally:
        assert await stack.stop() == 0, "".join(stack.output)
    assert not (stack.data_dir / "runtime.json").exists()


def test_the_cli_imports_a_command_group_only_when_that_command_runs() -> None:
    # `ambient worker` and `ambient dev` are started by every test stack: neither needs the
    # other commands' modules (a second of CPU a process).
    assert loaded_by("ambient.cli", "'ambient.commands', 'mcp'") == []
    listed = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"}).output
    for name in ("chat", "dev", "worker", "user", "logs", "events", "inbox", "deliveries"):
        assert f" {name} " in listed, name
    deliveries = CliRunner().invoke(app, ["deliveries", "--help"], env={"COLUMNS": "200"})
    assert deliveries.exit_code == 0 and "attempts" in deliveries.output


def test_a_door_imports_what_it_starts_not_the_workers_lists_nor_an_sdk_before_its_call() -> None:
    # `ambient chat` starts one workflow (the event digest): the `workflows` and `activities`
    # packages imported every workflow, activity and client to list them for the worker, and
    # the clients their SDKs (Tencent Cloud's, trafilatura, Apprise), used only when called.
    doors = "ambient.commands.chat, ambient.commands.task, mcp_server.server, api.app"
    unused = (
        "'workflows.registry', 'activities.registry', 'temporalio.worker', 'requests', "
        "'tencentcloud.cls', 'tencentcloud.tke', 'trafilatura', 'apprise'"
    )
    assert loaded_by(doors, unused) == []


def test_chat_imports_our_mcp_server_and_the_sdk_only_to_answer_a_message() -> None:
    # `ambient chat` imported the in-process MCP server (every tool, every service, the MCP
    # SDK: ~2.5 s of CPU) before it looked up its user: a refusal of an unknown user, or a
    # session left at its first prompt, paid for an agent it never used.
    unused = "'mcp', 'mcp_server', 'ambient.agent.hub', 'ambient.briefing.service'"
    assert loaded_by("ambient.commands.chat", unused) == []


def loaded_by(modules: str, prefixes: str) -> list[str]:
    """The modules named by ``prefixes`` (Python's words) a fresh process importing
    ``modules`` has loaded."""
    code = f"import sys, {modules}; print([m for m in sys.modules if m.startswith(({prefixes},))])"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return sorted(ast.literal_eval(run.stdout))


def test_the_help_lists_every_command_without_loading_one_and_as_each_says_it() -> None:
    # `ambient --help` loaded every group (3 s of imports) to print one line of each.
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from typer.testing import CliRunner; from ambient.cli import app; "
            "out = CliRunner().invoke(app, ['--help'], env={'COLUMNS': '200'}).output; "
            "print(sorted(m for m in sys.modules if m.startswith('ambient.commands'))); "
            "print(out)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert loaded.splitlines()[0] == "[]"
    group = typer.main.get_group(app)
    context = click.Context(group)
    for name, (_, _, summary) in LAZY.items():
        assert f" {name} " in loaded and summary in loaded, name
        command = group.get_command(context, name)  # loaded: what `ambient NAME --help` says
        assert command.help.splitlines()[0] == summary, name


async def test_cloud_logs_searches_in_the_region_asked_for(tmp_path: Path) -> None:
    api = TencentApi(log_topic="t-1")
    async with serve(api.app()) as base:
        env = _cloud_env(tmp_path, base)
        found = await asyncio.to_thread(
            CliRunner().invoke, app, ["cloud", "logs", "t-1", "--region", "ap-shanghai"], env=env
        )
    assert found.exit_code == 0, found.output
    searched = [
        r for (_, action, _), r in zip(api.calls, api.regions, strict=True) if action == "SearchLog"
    ]
    assert searched == ["ap-shanghai"]


def test_cloud_says_its_bound_of_hours_as_it_is_and_its_help_what_it_has(tmp_path: Path) -> None:
    """`--hours 0` was refused "between 0 and 87600 hours, not 0": 0 is between them. And
    `ambient cloud --help` promised metrics no command of it reads."""
    env = {**_offline_env(tmp_path), "COLUMNS": "300"}
    said = {
        hours: CliRunner().invoke(app, ["cloud", "logs", "t-1", "--hours", hours], env=env)
        for hours in ("0", "87601")
    }
    for hours, result in said.items():
        assert result.exit_code == 2, result.output
        assert f"more than 0 and at most 87600 hours, not {hours}" in result.output, result.output
    helped = CliRunner().invoke(app, ["cloud", "--help"], env=env)
    assert helped.exit_code == 0 and "metrics" not in helped.output.lower(), helped.output


async def test_cloud_logs_prints_a_json_record_as_json_not_as_a_python_dict(
    tmp_path: Path,
) -> None:
    from tests.standins.tencent_api import now_ms

    api = TencentApi(log_topic="t-1")
    record = {"level": "ERROR", "msg": "db timeout", "ok": False, "user": None, "名": "值"}
    api.logs = [{"time": now_ms() - 60_000, "json": record}]
    async with serve(api.app()) as base:
        env = _cloud_env(tmp_path, base) | {"COLUMNS": "500"}
        found = await asyncio.to_thread(CliRunner().invoke, app, ["cloud", "logs", "t-1"], env=env)
    assert found.exit_code == 0, found.output
    (line,) = found.output.splitlines()
    # "2026-11-27 03:20:00 {...}": the record after the date and time is the JSON CLS holds.
    assert json.loads(line.split(" ", 2)[2]) == record, line


def _whole_number_params(kind: type = int) -> list[tuple[Any, list[str], str, list[str]]]:
    """(command, its path, parameter name, what goes before its value: its flag, or the
    arguments before it) of every whole-number (or ``kind``) parameter of every command, the
    lazily loaded groups' too."""
    group = typer.main.get_group(app)
    context = click.Context(group)
    found: list[tuple[Any, list[str], str, list[str]]] = []

    def walk(command: Any, path: list[str]) -> None:
        if hasattr(command, "list_commands"):
            for name in command.list_commands(context):
                walk(command.get_command(context, name), [*path, name])
            return
        before: list[str] = []  # a placeholder for each argument before this one
        for param in command.params:
            annotation = param.type_descriptor.annotation
            flags = [o for o in param.opts if o.startswith("-")]
            if kind in (annotation, *typing.get_args(annotation)):
                found.append((command, path, param.name, flags[:1] or before))
            if not flags:
                before = [*before, "x"]

    walk(group, [])
    return found


def test_every_whole_number_option_takes_ascii_digits_only() -> None:
    # int() (and the CLI's parsing) read "1_0" as 10, "10.0" as 10 and " 10 " as 10: a typo or
    # a pasted value removed endpoint 10. The web form's endpoint number takes ASCII digits only.
    params = _whole_number_params()
    assert len(params) >= 15, params  # the walk found them (ports, limits, ids, counts, ...)
    for command, path, name, ahead in params:
        for odd in ("1_0", "10.0", "+10", " 10 ", "１０"):
            given = [*ahead, odd]
            # Parsed only (a context, as the command line would make it): nothing runs.
            with pytest.raises(typer.BadParameter) as refused:
                command.make_context(path[-1], given)
            said = refused.value.format_message()
            assert "is not a whole number" in said, (path, name, odd, said)
            assert refused.value.param is not None and refused.value.param.name == name


def test_every_decimal_option_takes_plain_ascii_decimals_only() -> None:
    # float() reads "1_0" as 10, "１０" as 10 and " 10 " as 10: `cloud logs --hours 1_0` searched
    # ten hours back. A decimal option takes ASCII digits with one optional point.
    params = _whole_number_params(float)
    assert params, "the walk found the decimal options (cloud logs --hours)"
    for command, path, name, ahead in params:
        for odd in ("1_0", "１０", " 10 ", "+10", "1e1", "0x10", "nan", "inf", "10.", "."):
            with pytest.raises(typer.BadParameter) as refused:
                command.make_context(path[-1], [*ahead, odd])
            said = refused.value.format_message()
            assert "is not a decimal number" in said, (path, name, odd, said)
            assert refused.value.param is not None and refused.value.param.name == name
        arguments = ["x" for p in command.params if not p.opts[0].startswith("-")]
        for fine, value in (("10", 10.0), ("0.5", 0.5), ("2.25", 2.25)):
            context = command.make_context(path[-1], [*arguments, *ahead, fine])
            assert context.params[name] == value, (path, name, fine)


def test_an_argument_that_is_not_utf8_is_refused_by_position_not_a_traceback(
    tmp_path: Path,
) -> None:
    # Bytes that are not UTF-8 on the command line (a GBK file's text in a UTF-8 shell) reach
    # Python as lone surrogates: each command ended in "UnicodeEncodeError: ... surrogates not
    # allowed" from the database.
    env = _offline_env(tmp_path)
    assert CliRunner().invoke(app, ["migrate"], env=env).exit_code == 0
    for given in (
        ["events", "--kind", "k\udcff"],
        ["user", "show", "b\udcffob"],
        ["remediation", "rule", "r1", "--user", "ann", "--workload", "w\udcff"],
    ):
        result = CliRunner().invoke(app, given, env=env)
        assert result.exit_code == 2, (given, result.output, result.exception)
        at = next(n for n, arg in enumerate(given, 1) if "\udcff" in arg)
        said = result.output.encode("utf-8", "backslashreplace").decode()
        assert f"argument {at} ({given[at - 1]!r}) is not UTF-8 text" in said, said


def test_ambient_dev_runs_in_the_data_dir_its_settings_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # AMBIENT_DATA_DIR=~/stack: the stack's files and the children in ./~/stack, the dev user
    # in $HOME/stack (Settings expands ~): two databases.
    import ambient.devstack

    seen: dict[str, Path] = {}

    def run_dev(settings: Any, opts: Any, _console: Any) -> int:
        seen.update(settings=settings.data_dir, opts=opts.data_dir)
        return 0

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(ambient.devstack, "run_dev", run_dev)
    result = CliRunner().invoke(app, ["dev"], env={"AMBIENT_DATA_DIR": "~/stack"})
    assert result.exit_code == 0, result.output
    assert seen == {"settings": tmp_path / "stack", "opts": tmp_path / "stack"}


def test_the_command_a_refusal_names_runs_as_printed_as_the_same_user(tmp_path: Path) -> None:
    """`briefing show --user alice` said "`ambient briefing list` shows the dates": run as
    printed, without AMBIENT_USER, it was "Missing option '--user'" (exit 2); a task's
    `ambient task list` listed the default user's tasks."""
    env = _offline_env(tmp_path)
    env.pop("AMBIENT_USER", None)
    env["AMBIENT_TEMPORAL_ADDRESS"] = f"127.0.0.1:{_closed_port()}"
    assert CliRunner().invoke(app, ["user", "create", "alice"], env=env).exit_code == 0
    for refused in (["briefing", "show"], ["remediation", "show", "nope"]):
        said = CliRunner().invoke(app, [*refused, "--user", "alice"], env=env)
        hint = shlex.split(re.findall(r"`(ambient [^`]+)`", said.output)[0])[1:]
        assert hint[-2:] == ["--user", "alice"], said.output
        again = CliRunner().invoke(app, hint, env=env)
        assert again.exit_code == 0 and "Missing option" not in again.output, (hint, again.output)


def test_a_refusal_names_the_cli_command_that_helps_not_an_mcp_tool(tmp_path: Path) -> None:
    env = _offline_env(tmp_path)
    env["AMBIENT_TEMPORAL_ADDRESS"] = f"127.0.0.1:{_closed_port()}"  # none of these asks it
    # A user nobody registered is refused as such (test_a_briefing_command_for_a_user_nobody_...).
    assert CliRunner().invoke(app, ["user", "create", "dev"], env=env).exit_code == 0
    said = {
        args[0]: CliRunner().invoke(app, [*args, "--user", "dev"], env=env)
        for args in (
            ["task", "show", "web-monitor/bob/x"],
            ["remediation", "show", "nope"],
            ["briefing", "show"],
        )
    }
    assert {area: (r.exit_code, r.output.split()) for area, r in said.items()} == {
        "task": (
            1,
            "no task 'web-monitor/bob/x' for user 'dev'; run `ambient task list --user dev` "
            "to see your task ids".split(),
        ),
        "remediation": (
            1,
            "no remediation 'nope': ids look like remediation/<fingerprint>; "
            "run `ambient remediation list --user dev`".split(),
        ),
        "briefing": (
            1,
            "no briefing yet for 'dev'; `ambient briefing list --user dev` shows the dates".split(),
        ),
    }


async def test_a_refusal_naming_a_task_command_gives_it_the_task_id(
    tmp_path: Path, dev_env: WorkflowEnvironment
) -> None:
    # It said "call `ambient task update` to change it": no id (nor the config it needs), a
    # command that cannot run.
    env = _env(tmp_path, dev_env)
    for step in (["migrate"], ["user", "create", "dev"]):
        done = await asyncio.to_thread(CliRunner().invoke, app, step, env=env)
        assert done.exit_code == 0, done.output
    name = unique("standup")

    def create(message: str) -> Any:
        config = json.dumps({"type": "daily", "hour": 9, "message": message})
        given = ["task", "create", "schedule", "--config", config, "--name", name]
        return CliRunner().invoke(app, [*given, "--user", "dev"], env=env)

    created = await asyncio.to_thread(create, "stand-up")
    assert created.exit_code == 0, created.output
    task = json.loads(created.output)["task_id"]
    refused = await asyncio.to_thread(create, "retro")
    assert (refused.exit_code, refused.output.split()) == (
        1,
        f"name: schedule {task!r} already exists with another config; run "
        f"`ambient task update {task} --config JSON --user dev` to change it, or "
        f"`ambient task delete {task} --user dev` first".split(),
    )


async def test_a_greeting_with_no_briefing_and_no_model_names_the_command_that_sets_one_up(
    tmp_path: Path, dev_env: WorkflowEnvironment
) -> None:
    # It sent the operator to the web page's assistant, which with no model cannot chat.
    env = _env(tmp_path, dev_env)
    env.pop("OPENAI_API_KEY", None)
    for step in (["migrate"], ["user", "create", "dev", "--language", "en"]):
        done = await asyncio.to_thread(CliRunner().invoke, app, step, env=env)
        assert done.exit_code == 0, done.output
    greet = ["briefing", "greet", "--user", "dev"]
    heard = await asyncio.to_thread(CliRunner().invoke, app, greet, env=env)
    assert (heard.exit_code, heard.output) == (
        0,
        "Hello! No daily briefing is set up yet: run `ambient briefing create --user dev` to "
        "set one up.\n",
    )


def test_endpoint_list_help_says_json_as_it_prints_one_array_not_json_lines() -> None:
    # It said "JSON lines for scripts" while --json prints one JSON array (as every list does).
    shown = CliRunner().invoke(
        app, ["xiaozhi", "endpoint", "list", "--help"], env={"COLUMNS": "200"}
    )
    assert shown.exit_code == 0 and "JSON lines" not in shown.output
    assert "print JSON (for scripts)" in shown.output


def test_events_refuses_a_kind_the_product_never_records_and_lists_the_kinds(
    tmp_path: Path,
) -> None:
    # A mistyped kind said "no events": as if nothing had happened.
    env = _offline_env(tmp_path)
    typo = CliRunner().invoke(app, ["events", "--kind", "watch.hits"], env=env)
    assert typo.exit_code == 2 and typo.stdout == "", typo.output
    said = " ".join(typo.stderr.split())
    assert said.startswith("--kind: 'watch.hits' is not watch.hit, watch.change, "), said
    assert said.endswith(", remediation.resolved, remediation.joined_as_name"), said
    known = CliRunner().invoke(app, ["events", "--kind", "watch.hit"], env=env)
    assert (known.exit_code, known.stdout) == (0, "no events\n")


def test_a_user_nobody_registered_is_refused_in_the_same_words_by_every_command(
    tmp_path: Path,
) -> None:
    # `ambient chat` said "'ghost' is not a registered user" (and not who registers it), the
    # task and briefing commands "no user 'ghost': register first (ambient user create ghost)".
    env = _offline_env(tmp_path)
    env["AMBIENT_TEMPORAL_ADDRESS"] = f"127.0.0.1:{_closed_port()}"  # refused before asking it
    assert CliRunner().invoke(app, ["migrate"], env=env).exit_code == 0
    said = {
        " ".join(args[:2]): CliRunner().invoke(app, [*args, "--user", "ghost"], env=env)
        for args in (
            ["chat", "hello"],
            ["task", "create", "schedule", "--config", '{"hour": 9, "message": "stand-up"}'],
            ["briefing", "create", "--log-file", str(tmp_path / "app.log")],
        )
    }
    words = "no user 'ghost': an admin registers it (ambient user create ghost)"
    assert {door: (r.exit_code, " ".join(r.output.split())) for door, r in said.items()} == {
        door: (1, words) for door in said
    }


@pytest.mark.parametrize(
    "args",
    [
        ["briefing", "list"],
        ["briefing", "list", "--json"],
        ["briefing", "status"],
        ["briefing", "pause"],
        ["briefing", "stop"],
        ["briefing", "show"],
        ["briefing", "send"],
    ],
    ids=" ".join,
)
async def test_a_briefing_command_for_a_user_nobody_registered_says_so(
    tmp_path: Path, dev_env: WorkflowEnvironment, args: list[str]
) -> None:
    """`briefing list --user <typo>` printed an empty table ([] with --json) and exited 0;
    status, pause and stop said "no daily briefing ...; create one with `ambient briefing
    create`", which then failed "no user"; show and send "no briefing yet"."""
    env = _env(tmp_path, dev_env)
    migrated = await asyncio.to_thread(CliRunner().invoke, app, ["migrate"], env=env)
    assert migrated.exit_code == 0, migrated.output
    said = await asyncio.to_thread(CliRunner().invoke, app, [*args, "--user", "ghost"], env=env)
    assert (said.exit_code, " ".join(said.output.split())) == (
        1,
        "no user 'ghost': an admin registers it (ambient user create ghost)",
    )


@pytest.mark.parametrize(
    "args",
    [
        ["task", "show", "web-monitor/ghost/x"],
        ["task", "show", "web-monitor/dev/x"],
        ["task", "pause", "threshold-watch/ghost/x"],
        ["task", "resume", "web-monitor/ghost/x"],
        ["task", "trigger", "web-monitor/ghost/x"],
        ["task", "update", "web-monitor/ghost/x", "--config", '{"urls": ["https://a.example"]}'],
        ["task", "delete", "web-monitor/ghost/x"],
        ["task", "show", "briefing/ghost"],
    ],
    ids=" ".join,
)
async def test_a_task_command_for_a_user_nobody_registered_says_so_not_no_task(
    tmp_path: Path, dev_env: WorkflowEnvironment, args: list[str]
) -> None:
    """`task show <id> --user <typo>` said "no task '<id>'; run `ambient task list`", which then
    said "no user": the id was never what was wrong."""
    env = _env(tmp_path, dev_env)
    migrated = await asyncio.to_thread(CliRunner().invoke, app, ["migrate"], env=env)
    assert migrated.exit_code == 0, migrated.output
    said = await asyncio.to_thread(CliRunner().invoke, app, [*args, "--user", "ghost"], env=env)
    assert (said.exit_code, said.stdout, " ".join(said.stderr.split())) == (
        1,
        "",
        "no user 'ghost': an admin registers it (ambient user create ghost)",
    )


def test_chat_on_a_database_never_migrated_migrates_it_as_every_command_does(
    tmp_path: Path,
) -> None:
    # It printed a traceback ending in DatabaseBehindError: "run `ambient migrate` first".
    env = _offline_env(tmp_path)
    said = CliRunner().invoke(app, ["chat", "hello", "--user", "ghost"], env=env)
    assert (said.exit_code, " ".join(said.output.split())) == (
        1,
        "no user 'ghost': an admin registers it (ambient user create ghost)",
    )


GROUPS = sorted(name for name, (_, attribute, _) in LAZY.items() if attribute is None)


@pytest.mark.parametrize("name", GROUPS)
def test_each_subcommand_is_one_line_in_its_groups_help(name: str) -> None:
    # `ambient remediation --help` broke `start`'s line in the middle of a sentence.
    listed = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "200"}).output
    rows = [row for row in listed.split("Commands")[1].splitlines() if row.startswith("│")]
    assert all(not row.startswith("│   ") for row in rows), rows


async def test_no_daily_briefing_names_the_command_that_creates_one(
    tmp_path: Path, dev_env: WorkflowEnvironment
) -> None:
    # `ambient briefing status` said "create one with create_daily_briefing", an MCP tool.
    env = _env(tmp_path, dev_env)
    made = await asyncio.to_thread(
        CliRunner().invoke, app, ["user", "create", "nobriefing-cli"], env=env
    )
    assert made.exit_code == 0, made.output
    args = ["briefing", "status", "--user", "nobriefing-cli"]
    said = await asyncio.to_thread(CliRunner().invoke, app, args, env=env)
    assert (said.exit_code, said.output.split()) == (
        1,
        "no daily briefing for 'nobriefing-cli'; create one with "
        "`ambient briefing create --user nobriefing-cli`".split(),
    )


def test_a_second_dev_stack_on_the_same_data_dir_is_refused_and_the_first_keeps_its_file(
    tmp_path: Path,
) -> None:
    # It started a second Temporal dev server on the same temporal.db and, once stopped, took
    # the running stack's runtime.json with it: `ambient task list` then asked localhost:7233.
    # Another live process: the test runner's parent.
    running = RuntimeInfo(
        pid=os.getppid(), temporal_address="127.0.0.1:1", api_host="h", api_port=1
    )
    write_runtime(tmp_path, running)
    ports = [str(_closed_port()) for _ in range(3)]
    args = ["dev", "--data-dir", str(tmp_path), "--api-port", ports[0]]
    args += ["--temporal-port", ports[1], "--ui-port", ports[2], "--metrics-port", "0"]
    result = CliRunner().invoke(app, args, env=_offline_env(tmp_path))
    assert result.exit_code == 1, result.output
    assert f"already runs on {tmp_path}" in " ".join(result.output.split())
    assert "stopped" not in result.output  # it stopped nothing: the first stack runs on
    assert not (tmp_path / "temporal.db").exists()
    assert read_runtime(tmp_path) == running


def test_a_second_dev_stack_is_refused_while_the_first_is_still_starting(tmp_path: Path) -> None:
    """The first one's runtime.json is written once its stack is up: a second `ambient dev`
    begun while the first was starting (10-20 s) ran beside it, two Temporal servers on one
    temporal.db ("database is locked"). The folder is held from the start now."""
    from ambient.dev_process import hold_data_dir

    held = hold_data_dir(tmp_path)  # a first stack, starting: no runtime.json yet
    assert held is not None
    try:
        ports = [str(_closed_port()) for _ in range(3)]
        args = ["dev", "--data-dir", str(tmp_path), "--api-port", ports[0]]
        args += ["--temporal-port", ports[1], "--ui-port", ports[2], "--metrics-port", "0"]
        result = CliRunner().invoke(app, args, env=_offline_env(tmp_path))
    finally:
        os.close(held)
    assert result.exit_code == 1, result.output
    assert f"another ambient dev already runs on {tmp_path}" in " ".join(result.output.split())
    assert not (tmp_path / "temporal.db").exists() and not (tmp_path / "temporal.log").exists()
    # Its holder gone (however it ended), the folder is free.
    again = hold_data_dir(tmp_path)
    assert again is not None
    os.close(again)


async def test_task_list_refuses_a_kind_or_state_it_does_not_know(
    tmp_path: Path, dev_env: WorkflowEnvironment
) -> None:
    """MCP and the API refuse these at their doors; the CLI passed them as typed, and the
    service listed active tasks for --state Paused and nothing for --kind web-monitor."""
    env = _env(tmp_path, dev_env)
    migrated = await asyncio.to_thread(CliRunner().invoke, app, ["migrate"], env=env)
    assert migrated.exit_code == 0, migrated.output
    made = await asyncio.to_thread(CliRunner().invoke, app, ["user", "create", "dev"], env=env)
    assert made.exit_code == 0, made.output
    kinds = "web_monitor, threshold_watch, schedule, news_digest, daily_briefing"
    for args, said in (
        (["--state", "Paused"], "state: 'Paused' is not one of active, paused, stopped"),
        (["--state", "bogus", "--json"], "state: 'bogus' is not one of active, paused, stopped"),
        (["--kind", "web-monitor"], f"kind: 'web-monitor' is not one of {kinds}"),
    ):
        result = await asyncio.to_thread(CliRunner().invoke, app, ["task", "list", *args], env=env)
        assert result.exit_code != 0 and result.stdout == "", (args, result.output)
        assert said in result.stderr, (args, result.stderr)


def test_a_dev_stack_whose_temporal_port_another_server_holds_says_so_and_touches_nothing(
    tmp_path: Path, dev_env: WorkflowEnvironment
) -> None:
    """A second `ambient dev` on a Temporal port another one's server held reached that
    server, registered attributes on it, migrated and wrote a token, pointed its worker and
    API at it, then died saying only "temporal exited with 1"."""
    taken = dev_env.client.service_client.config.target_host.rpartition(":")[2]
    ports = [str(_closed_port()) for _ in range(2)]
    args = ["dev", "--data-dir", str(tmp_path), "--api-port", ports[0]]
    args += ["--temporal-port", taken, "--ui-port", ports[1], "--metrics-port", "0"]
    result = CliRunner().invoke(app, args, env=_offline_env(tmp_path))
    said = " ".join(result.output.split())
    assert result.exit_code == 1, result.output
    assert f"Temporal's port 127.0.0.1:{taken} is taken" in said and "--temporal-port" in said
    assert not (tmp_path / "ambient.db").exists() and not (tmp_path / "dev-token").exists()
    assert not (tmp_path / "temporal.db").exists()


def test_ambient_api_binds_the_port_asked_even_0(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ambient api --port 0` (any free port, as the parser allows) was read as not given:
    the API bound AMBIENT_API_PORT."""
    import uvicorn

    bound: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda _app, **kw: bound.update(kw))
    monkeypatch.setattr("ambient.cli._require_migrated", lambda _settings: None)
    env = {"AMBIENT_DATA_DIR": str(settings.data_dir), "AMBIENT_API_PORT": "8123"}
    result = CliRunner().invoke(app, ["api", "--port", "0"], env=env)
    assert result.exit_code == 0, result.output
    assert bound["port"] == 0


def _said_in_a_line(result: Any) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output and "╭─" not in result.output, result.output


def test_a_history_of_a_workflow_type_the_product_lacks_is_not_called_non_deterministic() -> None:
    """`ambient replay tests/histories` as the README wrote it: the tests' own PingWorkflow's
    history was "NON-DETERMINISTIC" with the SDK's words, exit 1, as if the product's code
    were; it is no workflow of the product's: said so, exit 2, the others replayed."""
    ping = Path(__file__).resolve().parents[1] / "histories" / "support" / "ping.json"
    result = CliRunner().invoke(app, ["replay", str(ping)])
    _said_in_a_line(result)
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())  # as the terminal's width wraps it
    assert "NON-DETERMINISTIC" not in said and "NOT OURS PingWorkflow" in said, said
    assert "is not one of the product's; name its class with --workflows" in said, said


def test_a_replay_prints_its_report_alone_on_stdout_one_line_an_outcome() -> None:
    """The SDK core's log of the workflow task the replay failed came first on stdout (a
    coloured WARN line with a stack in it), and the report's lines were folded at 80 columns
    in a pipe: a deploy's gate reading stdout read neither whole."""
    ping = Path(__file__).resolve().parents[1] / "histories" / "support" / "ping.json"
    done = subprocess.run(
        [sys.executable, "-m", "ambient.cli", "replay", str(ping)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("NOT OURS PingWorkflow (ping) "), lines
    assert lines[1].strip().startswith("workflow type PingWorkflow is not one of the product's")
    assert lines[1].endswith("--workflows module:attr"), lines
    assert "WARN" not in done.stdout and "\x1b[" not in done.stdout, done.stdout


def test_replay_of_what_cannot_be_replayed_says_so_in_a_line_and_exits_2(tmp_path: Path) -> None:
    """A missing path, a file that is no history, a --workflows typo: a Python traceback and
    exit 1, the code non-determinism exits with (CI could not tell a wrong path from broken
    code); one bad file stopped the others' replay."""
    runner = CliRunner()
    missing = runner.invoke(app, ["replay", str(tmp_path / "typo.json")])
    _said_in_a_line(missing)
    assert missing.exit_code == 2 and "no such file or folder" in missing.output
    (tmp_path / "notes.json").write_text('{"a": 1}')
    (tmp_path / "broken.json").write_bytes(b"\xff\xfe not json")
    other = runner.invoke(app, ["replay", str(tmp_path)])
    _said_in_a_line(other)
    assert (
        other.exit_code == 2 and "2 file(s) could not be read as a history of ours" in other.output
    )
    assert other.output.count("UNREADABLE") == 2, other.output
    typo = runner.invoke(
        app, ["replay", "--workflows", "tests.support.workflow:TEST_WORKFLOWS", str(tmp_path)]
    )
    _said_in_a_line(typo)
    assert typo.exit_code == 2 and "--workflows tests.support.workflow" in typo.output


async def test_replay_query_replays_every_match_and_says_a_bad_query_in_a_line(
    tmp_path: Path, dev_env: WorkflowEnvironment
) -> None:
    """A query matching 105 runs replayed the first 100 and said "100/100 histories replayed
    cleanly", exit 0: a deploy gate passed on what it never read."""
    import uuid

    client = dev_env.client
    kind = f"ReplayNoSuch{uuid.uuid4().hex[:8]}"
    for n in range(105):
        await client.start_workflow(kind, id=f"{kind}-{n}", task_queue=f"q-{kind}")

    async def counted() -> bool:
        return (await client.count_workflows(f'WorkflowType="{kind}"')).count == 105

    await eventually(counted, "the runs listed")
    env = {
        "AMBIENT_DATA_DIR": str(tmp_path),
        "AMBIENT_TEMPORAL_ADDRESS": client.service_client.config.target_host,
    }
    runner = CliRunner()
    query = ["replay", "--query", f'WorkflowType="{kind}"']
    result = await asyncio.to_thread(runner.invoke, app, query, env=env)
    assert "/105 histories" in result.output, result.output[-300:]
    bad = await asyncio.to_thread(
        runner.invoke, app, ["replay", "--query", "WorkflowType = "], env=env
    )
    _said_in_a_line(bad)
    assert bad.exit_code == 2 and "--query:" in bad.output, bad.output


def test_a_users_table_folds_a_long_name_never_cuts_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ambient user list` at 80 columns cut "platform-oncall-seco…": the name the next
    command needs whole."""
    monkeypatch.setenv("AMBIENT_DATA_DIR", str(settings.data_dir))
    runner = CliRunner()
    name = "platform-oncall-secondary-reviewer"
    email = f"{name}@infrastructure.example.com"
    assert runner.invoke(app, ["user", "create", name, "--email", email]).exit_code == 0
    listed = runner.invoke(app, ["user", "list"], env={"COLUMNS": "80"})
    assert listed.exit_code == 0 and "…" not in listed.output, listed.output
    assert "platform-oncall" in listed.output and "example.com" in listed.output


def test_ambient_dev_takes_its_settings_from_dot_env_as_every_command_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README: every setting may be a line in .env. dev's options read only the shell's
    environment, their defaults given to Settings over .env: the stack ran on ./.data while
    `ambient user list` read .env's data dir, and AMBIENT_LOCAL_LLM=1 there switched the
    worker and API to a local model dev never started."""
    import ambient.devstack

    seen: dict[str, Any] = {}

    def run_dev(settings: Any, opts: Any, _console: Any) -> int:
        seen.update(
            data_dir=opts.data_dir,
            api_port=opts.api_port,
            metrics=opts.metrics_port,
            local_llm=settings.local_llm,
            temporal=(opts.temporal_port, opts.ui_port, opts.temporal_address),
        )
        return 0

    # The Temporal and Web UI ports too: they were read from the shell alone, so a stack
    # moved off 7233/8233 in .env collided with another on them. (Read by `ambient dev`
    # alone: not settings every command refuses, empty or as Kubernetes writes them.)
    (tmp_path / ".env").write_text(
        "AMBIENT_DATA_DIR=stack\nAMBIENT_API_PORT=8123\nAMBIENT_METRICS_PORT=0\n"
        "AMBIENT_LOCAL_LLM=1\nAMBIENT_TEMPORAL_PORT=7300\nAMBIENT_UI_PORT=8300\n"
    )
    monkeypatch.chdir(tmp_path)
    for name in (
        "AMBIENT_DATA_DIR",
        "AMBIENT_API_PORT",
        "AMBIENT_METRICS_PORT",
        "AMBIENT_LOCAL_LLM",
        "AMBIENT_TEMPORAL_PORT",
        "AMBIENT_UI_PORT",
        "AMBIENT_TEMPORAL_ADDRESS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(ambient.devstack, "run_dev", run_dev)
    result = CliRunner().invoke(app, ["dev"])
    assert result.exit_code == 0, result.output
    assert seen == {
        "data_dir": Path("stack"),
        "api_port": 8123,
        "metrics": None,
        "local_llm": True,
        "temporal": (7300, 8300, None),  # a server of its own: none was named
    }, seen
    # A server named in .env is used, none started (as an exported one is).
    with (tmp_path / ".env").open("a") as env:
        env.write("AMBIENT_TEMPORAL_ADDRESS=temporal.internal:7233\n")
    result = CliRunner().invoke(app, ["dev"])
    assert result.exit_code == 0, result.output
    assert seen["temporal"] == (7300, 8300, "temporal.internal:7233"), seen
    # Given on the command line, an option still wins over .env.
    result = CliRunner().invoke(app, ["dev", "--api-port", "8200", "--no-local-llm"])
    assert result.exit_code == 0, result.output
    assert (seen["api_port"], seen["local_llm"]) == (8200, False), seen
