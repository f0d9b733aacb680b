"""Run ASGI apps on loopback for tests: real sockets, real clients."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pgserver
import uvicorn
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from ambient import temporal
from ambient.clients.tls import ca_context
from ambient.dev_temporal import queue_flags
from ambient.temporal import PLAIN_CONVERTER
from tests.support.reaper import listens_on, remove_at_exit, serving_on, stop_at_exit

# How long a test waits on a reply or a start-up before it calls the thing hung: a guard, not a
# claim on time. On the shared 2-core machine (load 15–40 while the other engineers' tests and
# benches run) an in-process API took over 5 s to answer a plain request, so httpx's default
# 5 s read timeout, Playwright's 5 s expect and 15 s navigation and Temporal's 5 s dev-server
# start failed tests on the machine's speed. Bounds the product promises stay in the tests.
HANG = 60.0


def http_client(base: str = "", **options: Any) -> httpx.AsyncClient:
    """A client to a server on loopback (``base``, when given, its base URL): no proxy from the
    environment, no timeout short of HANG, and the process's one CA context (httpx otherwise
    loads certifi's bundle again for each client: ~15 ms of CPU, a thousand times a suite).
    ``options`` as httpx.AsyncClient takes them, over these; a server with a CA of its own
    gets its ``verify``."""
    given: dict[str, Any] = {"timeout": HANG, "trust_env": False, "verify": ca_context()}
    return httpx.AsyncClient(base_url=base, **(given | options))


# Ports a test process hands its servers: below the kernel's ephemeral range (where a bind to
# port 0, every outgoing connection and the Temporal CLI's own "random free port" land), a
# slice of its own for each pytest-xdist process. A port found free here is then not given to
# another test process, nor to an outgoing connection, between the probe and the server's bind.
PORTS_PER_PROCESS = 1000
PROCESS_SLICES = 12
# From a random place in the slice: two test sessions on one machine (two checkouts, a suite
# beside a bench) hand out the same slice, and from its start they met port for port.
_taken = itertools.count(random.randrange(PORTS_PER_PROCESS))


def _ports() -> range | None:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ranges:
            ephemeral = int(ranges.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    first = ephemeral - PORTS_PER_PROCESS * PROCESS_SLICES
    if first < 10_000:
        return None  # no room below the ephemeral range: the kernel's pick (port 0)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker) % PROCESS_SLICES if worker.isdigit() else 0
    start = first + index * PORTS_PER_PROCESS
    return range(start, start + PORTS_PER_PROCESS)


def free_port() -> int:
    """A loopback port nothing listens on, from this test process's own slice."""
    ports = _ports()
    for _ in range(len(ports) if ports else 1):
        port = ports[next(_taken) % len(ports)] if ports else 0
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use, or still held by a closed connection (TIME_WAIT)
            found: int = sock.getsockname()[1]
            return found
    raise RuntimeError(f"no free port in {ports}")


@asynccontextmanager
async def serve(
    app: Any, port: int | None = None, tls: tuple[Path, Path] | None = None
) -> AsyncIterator[str]:
    """Serve ``app`` (lifespan included) until the block exits; yields the base URL. Without
    a ``port`` it listens on a socket of its own, bound to a free port and kept: a port found
    free and bound later could be taken in between by another test process. ``tls``: the
    certificate and key files it serves HTTPS with."""
    sock = None
    if port is None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", free_port()))
        port = sock.getsockname()[1]
    # Idle connections are kept longer than a client keeps them (httpx: 5 s, uvicorn's own
    # default too): a request sent on a pooled connection as the server closed it, after a
    # test's wait of about 5 s on a busy machine, failed with ReadError.
    certificate, key = (str(tls[0]), str(tls[1])) if tls else (None, None)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        timeout_keep_alive=30,
        ssl_certfile=certificate,
        ssl_keyfile=key,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=None if sock is None else [sock]))
    while not server.started:
        if task.done():
            try:
                task.result()
            except SystemExit as exc:
                # uvicorn exits when it cannot start: a test failure, not the test run's end.
                raise RuntimeError(f"the test server did not start on port {port}") from exc
        await asyncio.sleep(0.02)
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        if tls:
            # An idle TLS connection's close waits for the client's close_notify (asyncio's
            # SSL shutdown: up to 30 s); a server stopped is gone for its clients at once.
            for connection in list(server.server_state.connections):
                transport = getattr(connection, "transport", None)
                if transport is not None:
                    transport.abort()
        await task
        if sock is not None:
            sock.close()


async def polls_workflow_tasks(client: Client, queue: str, pid: int) -> bool:
    """Whether the process ``pid`` polls ``queue`` for workflow tasks: its client's identity is
    ``pid@host`` (the SDK's default), so a query or a new task has that process to go to."""
    described = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return any(p.identity.startswith(f"{pid}@") for p in described.pollers)


def start_postgres(folder: str) -> pgserver.PostgresServer:
    """A PostgreSQL in the temporary ``folder`` (empty, or one this started), stopped and the
    folder removed when this process ends however it ends."""
    server = pgserver.get_server(folder, cleanup_mode="stop")
    stop_at_exit(server.get_pid())  # daemonized: not stopped with its starter
    remove_at_exit(folder)  # a killed process's with-block never removes its data directory
    # A throwaway cluster: nothing of it has to survive the machine going down, so it writes to
    # disk without waiting for each write to be flushed (what the tests see of PostgreSQL is the
    # same). With fsync on, each CREATE DATABASE and the stop's checkpoint waited on the disk,
    # the stops one process at a time (pgserver's lock) at every process's end.
    server.psql("ALTER SYSTEM SET fsync = off; SELECT pg_reload_conf();")
    return server


async def _alone(start: Callable[[int], Awaitable[WorkflowEnvironment]]) -> WorkflowEnvironment:
    """The server ``start`` starts on a free port, stopped when this process ends however it
    ends. Another process (a second test run beside this one, whose ports come from the same
    slice) can take the port between the look and the server's bind: this server then exits,
    and the environment, which only waits for the port to answer, would use the other's. Such a
    start is made again on another port; so is one that never answered (its HTTP or metrics
    port taken: it exits before serving, and the start waits out its time)."""
    for tries_left in reversed(range(3)):
        port = free_port()
        try:
            env = await start(port)
        except Exception:
            if not tries_left:
                raise
            continue
        try:
            pid = serving_on(port)
        except LookupError:  # exited already
            pid = None
        if pid is not None and listens_on(pid, port):
            stop_at_exit(pid)
            return env
        await env.shutdown()  # the answer came from another's server; this one exits
    raise RuntimeError("three starts of a Temporal server lost a port to another process")


async def start_dev_server(path: str, *args: str) -> WorkflowEnvironment:
    """The Temporal dev server at ``path`` (visibility, schedules, search attributes) run with
    ``args`` too, stopped when this process ends however it ends."""
    return await _alone(
        lambda port: WorkflowEnvironment.start_local(
            dev_server_existing_path=path,
            data_converter=PLAIN_CONVERTER,
            search_attributes=list(temporal.SEARCH_ATTRIBUTES),
            ui=False,
            port=port,
            dev_server_extra_args=[
                *("--log-level", "error"),
                # Its queues read as `ambient dev`'s do (each hop waited up to 50 ms otherwise).
                *queue_flags(),
                *("--http-port", str(free_port()), "--metrics-port", str(free_port())),
                *args,
            ],
            dev_server_startup_timeout=timedelta(seconds=HANG),
        )
    )


async def start_test_server(path: str) -> WorkflowEnvironment:
    """The time-skipping test server at ``path``, stopped when this process ends however it
    ends."""
    return await _alone(
        lambda port: WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=path,
            data_converter=PLAIN_CONVERTER,
            test_server_startup_timeout=timedelta(seconds=HANG),
            port=port,
        )
    )
