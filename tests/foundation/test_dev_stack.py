"""`ambient dev` end to end: real child processes on free ports, stopped and started again."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import httpx
import httpx2
import psutil
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from temporalio.client import WorkflowExecutionStatus

from ambient.dev_temporal import queue_flags
from ambient.devstack import EXTERNAL_TEMPORAL_WAIT
from ambient.temporal import PLAIN_CONVERTER
from tests.conftest import unique
from tests.support.servers import HANG, free_port, http_client
from tests.support.waits import eventually
from tests.support.workflows import WaitForSignalWorkflow

STARTUP_SECONDS = 120


class DevStack:
    def __init__(self, data_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.extra_env = extra_env or {}
        self.api_port, self.temporal_port, self.ui_port = free_port(), free_port(), free_port()
        self.process: subprocess.Popen[str] | None = None
        self.output: list[str] = []

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "ambient.cli",
            "dev",
            "--data-dir",
            str(self.data_dir),
            "--api-port",
            str(self.api_port),
            "--temporal-port",
            str(self.temporal_port),
            "--ui-port",
            str(self.ui_port),
            "--metrics-port",
            "0",
        ]

    async def start(self, startup_seconds: float = STARTUP_SECONDS) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AMBIENT_")}
        env.update(self.extra_env)
        self.process = subprocess.Popen(  # noqa: ASYNC220 - a long-lived child, read in a thread
            self.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        stdout = self.process.stdout
        assert stdout is not None

        def wait_until_up() -> None:
            for line in stdout:
                self.output.append(line)
                if "Press Ctrl-C to stop." in line or "ambient dev:" in line:
                    return

        try:
            await asyncio.wait_for(asyncio.to_thread(wait_until_up), startup_seconds)
            assert any("ambient-ops is up" in line for line in self.output), "".join(self.output)
        except BaseException:
            # A stack that did not come up is stopped here: the test's own `finally` starts
            # after start() returned, and a stack left running loads the machine for the rest.
            await self.stop()
            raise

    async def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        rest, _ = await asyncio.to_thread(self.process.communicate, timeout=60)
        self.output.append(rest)
        return self.process.returncode


async def _mcp_status(api: str, token: str) -> dict[str, object]:
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        async with Client(streamable_http_client(f"{api}/mcp", http_client=http)) as client:
            result = await client.call_tool("get_status", {})
    assert result.structured_content is not None
    return result.structured_content


@pytest.mark.devserver
async def test_dev_stack_serves_everything_and_keeps_state_across_restart(tmp_path: Path) -> None:
    from temporalio.client import Client as TemporalClient

    stack = DevStack(tmp_path / "data [/]")  # a path is printed as written, not read as markup
    await stack.start()
    try:
        output = "".join(stack.output)
        assert f"(data in {stack.data_dir})" in output, output
        assert f"http://127.0.0.1:{stack.ui_port}" in output
        assert f"{stack.api}/mcp" in output
        assert "Metrics      off" in output  # --metrics-port 0 (else its /metrics address)
        token = (stack.data_dir / "dev-token").read_text().strip()
        assert token in output

        async with http_client(timeout=30) as http:
            ui = await http.get(f"http://127.0.0.1:{stack.ui_port}/")
            assert ui.status_code == 200
            health = await http.get(f"{stack.api}/health")
            assert health.status_code == 200, health.text
            assert health.json()["temporal_reachable"] is True
            me = await http.get(
                f"{stack.api}/users/me", headers={"Authorization": f"Bearer {token}"}
            )
            assert me.json()["name"] == "dev"

        status = await _mcp_status(stack.api, token)
        for _ in range(100):  # the worker's pollers show up a moment after it starts
            if status["workers_polling"]:
                break
            await asyncio.sleep(0.1)
            status = await _mcp_status(stack.api, token)
        assert status["temporal_reachable"] is True
        assert status["workers_polling"] >= 1
        # Its server reads its history queues as it is told (each hop waited up to 50 ms).
        database = str(stack.data_dir / "temporal.db")
        (server,) = [
            p.info["cmdline"]
            for p in psutil.process_iter(["cmdline"])
            if "start-dev" in (p.info["cmdline"] or []) and database in p.info["cmdline"]
        ]
        flags = queue_flags()
        assert " ".join(flags) in " ".join(server), server

        temporal = await TemporalClient.connect(
            f"127.0.0.1:{stack.temporal_port}", data_converter=PLAIN_CONVERTER
        )
        workflow_id = unique("survives-restart")
        # No worker serves this queue: the workflow simply stays running on the server.
        await temporal.start_workflow(WaitForSignalWorkflow.run, id=workflow_id, task_queue="idle")
    finally:
        assert await stack.stop() == 0, "".join(stack.output)
    assert "ambient-ops stopped." in "".join(stack.output)
    # Temporal's file as the CLI keeps it only with our pragmas (its own: a rollback journal).
    with closing(sqlite3.connect(stack.data_dir / "temporal.db")) as temporal_db:
        assert temporal_db.execute("PRAGMA journal_mode").fetchone() == ("wal",)

    async with http_client(timeout=5) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"{stack.api}/health")

    again = DevStack(stack.data_dir)
    await again.start()
    try:
        temporal = await TemporalClient.connect(
            f"127.0.0.1:{again.temporal_port}", data_converter=PLAIN_CONVERTER
        )
        description = await temporal.get_workflow_handle(workflow_id).describe()
        assert description.status is WorkflowExecutionStatus.RUNNING
        assert (again.data_dir / "dev-token").read_text().strip() == token
        async with http_client(timeout=30) as http:
            me = await http.get(
                f"{again.api}/users/me", headers={"Authorization": f"Bearer {token}"}
            )
            assert me.status_code == 200
    finally:
        assert await again.stop() == 0, "".join(again.output)


async def test_a_taken_api_port_is_refused_before_anything_starts(tmp_path: Path) -> None:
    # The API's socket is bound first, so a port another process holds is named at once (and a
    # port chosen free cannot be taken while Temporal and the worker start).
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        stack = DevStack(tmp_path / "data")
        stack.api_port = holder.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AMBIENT_")}
        done = await asyncio.to_thread(
            subprocess.run,
            stack.command(),
            capture_output=True,
            text=True,
            env=env,
            timeout=STARTUP_SECONDS,
        )
    assert done.returncode == 1, done.stdout + done.stderr
    # One line on stderr, as every command's error (it was on stdout, folded at 80 columns).
    said = [line for line in done.stderr.splitlines() if "is taken" in line]
    assert len(said) == 1 and f"port 127.0.0.1:{stack.api_port} is taken" in said[0], done.stderr
    assert said[0].endswith("--api-port"), said
    assert not (stack.data_dir / "temporal.db").exists()  # Temporal never started


async def test_a_temporal_address_nothing_answers_at_is_said_with_what_to_do(
    tmp_path: Path,
) -> None:
    """A server named with --temporal-address that was not running was waited for as long as
    our own dev server may take to start (90 s), then said with the SDK's words alone."""
    stack = DevStack(tmp_path / "data")
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{closed.getsockname()[1]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMBIENT_")}
    done = await asyncio.to_thread(
        subprocess.run,
        [*stack.command(), "--temporal-address", address],
        capture_output=True,
        text=True,
        env=env,
        timeout=STARTUP_SECONDS,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    said = [line for line in done.stderr.splitlines() if "did not answer" in line]
    assert len(said) == 1, done.stderr
    assert f"Temporal did not answer at {address} within {EXTERNAL_TEMPORAL_WAIT:.0f} s" in said[0]
    assert "is it running there? Leave out --temporal-address" in said[0], said
    assert not (stack.data_dir / "temporal.db").exists()  # no server of ours was started


async def test_a_stack_that_is_not_up_in_time_is_stopped_with_its_children(
    tmp_path: Path,
) -> None:
    stack = DevStack(tmp_path / "data")
    with pytest.raises(TimeoutError):
        await stack.start(startup_seconds=0.001)
    assert stack.process is not None and stack.process.poll() is not None


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads children from /proc")
async def test_a_stop_signal_while_starting_gives_the_start_up_and_leaves_no_child_running(
    tmp_path: Path,
) -> None:
    stack = DevStack(tmp_path / "data")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMBIENT_")}
    process = subprocess.Popen(  # noqa: ASYNC220 - the one child of this test
        stack.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    try:
        # The Temporal dev server is the first child; its log appears as it is spawned.
        log = stack.data_dir / "temporal.log"
        while not log.exists() or not _children(process.pid):
            assert process.poll() is None, process.communicate()[0]
            await asyncio.sleep(0.05)
        children = _children(process.pid)
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.to_thread(process.communicate, timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1, output
    assert "stopped while starting" in output and "ambient-ops is up" not in output
    assert [child for child in children if _running(child)] == []


# The stop signal lands inside one of the loop's callbacks (as a Temporal client's completion
# is), and the future the start awaits is completed by a later callback only.
_SIGNAL_IN_A_CALLBACK = """
import asyncio, os, signal, sys, threading
from ambient.devstack import DevStackError, unless_stopped

def raising(signum, frame):
    raise DevStackError("raised by the process's own handler")

signal.signal(signal.SIGTERM, raising)

async def work():
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.call_soon(os.kill, os.getpid(), signal.SIGTERM)
    loop.call_later(30, done.set_result, "finished")
    return await done

try:
    print(asyncio.run(unless_stopped(work(), threading.Event())))
except DevStackError as exc:
    print("gave up:", exc)
print("handler restored:", signal.getsignal(signal.SIGTERM) is raising)
"""


async def test_a_stop_signal_inside_an_event_loop_callback_gives_the_awaited_work_up() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _SIGNAL_IN_A_CALLBACK, stdout=asyncio.subprocess.PIPE
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout=HANG)
    finally:
        if process.returncode is None:
            process.kill()
    assert out.decode().splitlines() == [
        "gave up: stopped while starting",
        "handler restored: True",
    ]


def test_the_apis_socket_answers_without_waiting_for_an_ack() -> None:
    # The API serves the socket listen() binds by its fd, which uvicorn reads as AF_UNIX, so
    # asyncio never set TCP_NODELAY on its connections: each response's second write waited
    # for the client's delayed ACK (~40 ms a request). Connections inherit it from the socket.
    from ambient.devstack import listen

    server = listen("127.0.0.1", 0)
    with server, socket.create_connection(server.getsockname()):
        accepted, _ = server.accept()
        with accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


async def _children_end_with_it(tmp_path: Path, sig: signal.Signals) -> None:
    """``ambient dev`` ended by ``sig``: none of its children outlives it."""
    stack = DevStack(tmp_path / "data")
    await stack.start()
    assert stack.process is not None
    children = psutil.Process(stack.process.pid).children(recursive=True)
    assert children, "".join(stack.output)
    try:
        stack.process.send_signal(sig)
        # Its stop gives each step up to 20 s before a SIGKILL: what is asserted is that the
        # children end, not how soon (a loaded CI machine took over 60 s).
        await asyncio.to_thread(stack.process.wait, 120)

        async def gone() -> bool:
            return not [c for c in children if c.is_running() and c.status() != "zombie"]

        await eventually(gone, "the stack's children end with it", bound=60)
    finally:
        for child in children:
            if child.is_running():
                child.kill()


@pytest.mark.devserver
@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGKILL])
async def test_a_stack_ended_by_a_hang_up_or_a_kill_leaves_no_child_running(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """The terminal closed (SIGHUP) or the OOM killer (SIGKILL): Temporal, the worker and the
    API went on running unseen on the data folder, checking watches and sending alerts, and a
    second stack moved to other ports ran beside them on the same databases."""
    await _children_end_with_it(tmp_path, sig)


async def test_a_taken_metrics_port_is_refused_naming_it_and_its_option(tmp_path: Path) -> None:
    """The worker's metrics port, taken (a second stack on the default 9464): the worker died
    with a traceback and the stack said "worker exited with 1", after "ambient-ops is up"."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        command = DevStack(tmp_path / "data").command()
        command[command.index("--metrics-port") + 1] = str(port)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AMBIENT_")}
        done = await asyncio.to_thread(
            subprocess.run, command, capture_output=True, text=True, env=env, timeout=120
        )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert f"127.0.0.1:{port} is taken" in output and "--metrics-port" in output, output[-2000:]
    assert "ambient-ops is up" not in output and "Traceback" not in output, output[-2000:]


@pytest.mark.devserver
async def test_a_database_a_newer_release_migrated_is_refused_in_one_line(tmp_path: Path) -> None:
    """docs/deploy.md: such a database is refused by every start; `ambient dev` ended in a
    128-line traceback with the refusal at its end."""
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMBIENT_")}
    migrated = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "ambient.cli", "migrate"],
        capture_output=True,
        text=True,
        env={**env, "AMBIENT_DATA_DIR": str(data)},
    )
    assert migrated.returncode == 0, migrated.stderr
    with closing(sqlite3.connect(data / "ambient.db")) as db, db:
        db.execute("UPDATE alembic_version SET version_num = '0099_from_a_newer_release'")
    done = await asyncio.to_thread(
        subprocess.run,
        DevStack(data).command(),
        capture_output=True,
        text=True,
        env=env,
        timeout=STARTUP_SECONDS,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "a newer release migrated it" in output, output[-2000:]
    assert "Traceback" not in output, output[-2000:]


# What `make run` is to `ambient dev`: it keeps its terminal's hang-up to itself and waits for
# its child (GNU make passes only SIGTERM on to its children).
_MAKE_LIKE = (
    "import signal, subprocess, sys\n"
    "signal.signal(signal.SIGHUP, lambda *_: None)\n"
    "sys.exit(subprocess.call(sys.argv[1:]))\n"
)


@pytest.mark.devserver
@pytest.mark.skipif(shutil.which("setsid") is None, reason="util-linux's setsid gives a terminal")
@pytest.mark.parametrize("detached", [False, True])
async def test_a_stack_whose_terminal_closes_under_make_stops_with_its_children(
    tmp_path: Path, detached: bool
) -> None:
    """`ssh -t host make run`, `tmux new 'make run'`, then the terminal closed: make, the first
    of the terminal's session, got the SIGHUP and waited for its child for good; Temporal, the
    worker and the API ran on, holding the ports. The stack sees its terminal hung up. One
    started away from its terminal on purpose (`setsid ambient dev > log &`) runs on."""
    stack = DevStack(tmp_path / "data")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMBIENT_")}
    master, slave = os.openpty()
    # setsid -c: a session of its own whose terminal is the pty, as a terminal's program has;
    # without -c, a session with no terminal, the pty its output only.
    ctty = [] if detached else ["-c"]
    command = ["setsid", *ctty, sys.executable, "-c", _MAKE_LIKE, *stack.command()]
    process = subprocess.Popen(  # noqa: ASYNC220 - the one child of this test
        command, stdin=slave, stdout=slave, stderr=slave, env=env
    )
    os.close(slave)
    children: list[psutil.Process] = []
    try:

        def wait_until_up() -> str:
            said = b""
            while b"Press Ctrl-C to stop." not in said and b"ambient dev:" not in said:
                said += os.read(master, 4096)
            return said.decode(errors="replace")

        said = await asyncio.wait_for(asyncio.to_thread(wait_until_up), STARTUP_SECONDS)
        assert "ambient-ops is up" in said, said
        children = psutil.Process(process.pid).children(recursive=True)
        assert len(children) >= 3, children  # ambient dev, Temporal, the worker, the API
        os.close(master)  # the terminal closes
        master = -1
        if detached:
            with pytest.raises(subprocess.TimeoutExpired):  # it runs on
                await asyncio.to_thread(process.wait, 5)
            (dev,) = [c for c in children if "dev" in c.cmdline() and "ambient.cli" in c.cmdline()]
            dev.terminate()
        assert await asyncio.to_thread(process.wait, 120) == 0

        async def gone() -> bool:
            return not [c for c in children if c.is_running() and c.status() != "zombie"]

        await eventually(gone, "the stack's children end with it", bound=60)
    finally:
        if master >= 0:
            os.close(master)
        if process.poll() is None:
            process.kill()
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
