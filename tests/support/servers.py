"""Run ASGI apps on loopback for tests: real sockets, real clients."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

# How long a test waits on a reply or a start-up before it calls the thing hung: a guard, not a
# claim on time. On the shared 2-core machine (load 15–40 while the other engineers' tests and
# benches run) an in-process API took over 5 s to answer a plain request, so httpx's default
# 5 s read timeout, Playwright's 5 s expect and 15 s navigation and Temporal's 5 s dev-server
# start failed tests on the machine's speed. Bounds the product promises stay in the tests.
HANG = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def serve(app: Any, port: int | None = None) -> AsyncIterator[str]:
    """Serve ``app`` (lifespan included) until the block exits; yields the base URL. Without
    a ``port`` it listens on a socket of its own, bound to a free port and kept: a port found
    free and bound later could be taken in between by another test process."""
    sock = None
    if port is None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
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
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
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
