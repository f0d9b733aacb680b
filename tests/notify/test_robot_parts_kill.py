"""A WeCom message in several posts whose worker is killed -9 as the robot takes one of them:
the worker that takes the delivery over posts the rest, each post once, and the delivery is
sent. Before, the row's "handing" record wrote over its count of posts sent: the takeover
failed the whole delivery ("may have been delivered; not sent again") and the rest never
came."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.testing import WorkflowEnvironment

from activities.deliveries import delivery_key
from ambient.deps import WorkerDeps
from ambient.storage.repositories import DeliveryRepository
from ambient.watches.reminders import ReminderConfig, ReminderRun
from tests.conftest import unique
from tests.notify.test_leases import _user
from tests.remediation.test_crash import worker_env, worker_process
from tests.support.servers import polls_workflow_tasks, serve
from tests.support.waits import eventually
from workflows.reminder import ReminderWorkflow

KEY = "robot-key-kill"
TARGET = f"{KEY}?mentioned=@all"  # the mentions go as a post after the parts
BODY = "告警" * 1000  # 6,000 bytes of UTF-8: parts of WeCom's 4,096


@pytest.mark.devserver
@pytest.mark.parametrize("killed_at", [1, 2])  # the first part, the last
async def test_a_worker_killed_as_the_robot_takes_a_part_leaves_the_rest_to_the_next_worker(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path, killed_at: int
) -> None:
    await _user(deps.db, "alice")
    taken: list[dict[str, Any]] = []
    first: list[subprocess.Popen[bytes]] = []

    async def robot(request: Request) -> Response:
        taken.append(await request.json())
        if len(taken) == killed_at and first[0].poll() is None:
            # The robot keeps the post, as a group shows it; its answer goes nowhere.
            os.kill(first[0].pid, signal.SIGKILL)
            await asyncio.to_thread(first[0].wait)
        return JSONResponse({"errcode": 0, "errmsg": "ok"})

    queue = unique("robot-parts")
    task = unique("reminder/alice/parts")
    config = ReminderConfig.model_validate(
        {"message": BODY, "targets": [{"type": "wecom", "target": TARGET}]}
    )
    app = Starlette(routes=[Route("/cgi-bin/webhook/send", robot, methods=["POST"])])
    async with serve(app) as base:
        address = dev_env.client.service_client.config.target_host
        env = worker_env(deps, address, queue, tmp_path / "no-kubeconfig") | {
            "AMBIENT_WECOM_BASE_URL": base,
            "AMBIENT_NOTIFY_TARGET_TIMEOUT": "5",  # the row's lease: 10 s
        }
        with worker_process(env, tmp_path, tmp_path / "worker-1.log") as worker:
            first.append(worker)
            run = await dev_env.client.start_workflow(
                ReminderWorkflow.run,
                ReminderRun(user="alice", task=task, config=config),
                id=f"{task}/run",
                task_queue=queue,
            )
            assert await asyncio.to_thread(worker.wait, 120) == -signal.SIGKILL
        assert len(taken) == killed_at
        with worker_process(env, tmp_path, tmp_path / "worker-2.log") as second:
            await eventually(
                lambda: polls_workflow_tasks(dev_env.client, queue, second.pid), bound=120
            )
            await asyncio.wait_for(run.result(), 180)
    contents = [post[post["msgtype"]]["content"] for post in taken]
    # Each post once, in order: the two parts (the heading with the body's start, the rest),
    # then the mentions.
    assert [c[-5:] for c in contents[:2]] == ["(1/2)", "(2/2)"], contents
    assert [post["msgtype"] for post in taken] == ["markdown"] * 2 + ["text"]
    assert taken[2]["text"]["mentioned_list"] == ["@all"]
    async with deps.db.session() as session:
        row = await DeliveryRepository(session).get(delivery_key(f"{task}/run", "wecom", TARGET))
    assert row is not None and (row.status, row.error) == ("sent", None), row and row.error
