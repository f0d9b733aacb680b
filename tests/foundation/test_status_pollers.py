"""`ambient status` counts the workers polling now, not those the server still lists."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import pytest
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import PollWorkflowTaskQueueRequest
from temporalio.testing import WorkflowEnvironment

from ambient import status
from tests.conftest import unique


async def test_a_worker_that_stopped_polling_is_not_counted_once_its_poll_is_old(
    dev_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server lists a poller for ~5 minutes after its last poll: a worker killed -9, or
    the last one stopped, was counted as polling all that while (`workers_polling` 2 with
    one running, `/health` 200 with none)."""
    client, queue = dev_env.client, unique("pollers")
    poll = PollWorkflowTaskQueueRequest(
        namespace=client.namespace, task_queue=TaskQueue(name=queue), identity="gone@host"
    )
    polling = asyncio.create_task(client.workflow_service.poll_workflow_task_queue(poll))

    async def counted() -> int:
        return await status.pollers(client, client.namespace, queue)

    for _ in range(100):  # the poll reaches the server
        if await counted():
            break
        await asyncio.sleep(0.05)
    polling.cancel()  # the worker is gone: it polls no more
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await polling
    assert await counted() == 1  # polled just now
    monkeypatch.setattr(status, "POLLED_WITHIN", timedelta(seconds=1))
    await asyncio.sleep(1.5)
    assert await counted() == 0
