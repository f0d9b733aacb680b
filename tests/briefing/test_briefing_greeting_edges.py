"""A greeting at the edges: no worker answering, a config change under way, a record that fails."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from ambient.briefing.config import BriefingConfig
from ambient.briefing.models import GreetOutcome
from ambient.briefing.service import BriefingService
from ambient.deps import WorkerDeps
from tests.briefing.harness import Stack, eventually, make_user
from tests.conftest import unique
from worker import build_worker


async def _prepared(service, user):  # type: ignore[no-untyped-def]
    status = await service.status(user)
    return status if status.prepared is not None else None


async def test_a_greeting_with_the_worker_down_before_its_query_hears_not_in_time(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """The worker is down when ivy greets: the "already given?" query got no answer and the
    greeting raised "no worker answered within 5 s"; now she hears the spoken "not in time"."""
    await make_user(deps.db, "ivy")
    queue = unique("tq")
    settings = deps.settings.model_copy(update={"temporal_task_queue": queue})
    deps.settings = deps.settings.model_copy(update={"max_cached_workflows": 0})
    service = BriefingService(ts_env.client, settings, deps.db, tencent=deps.tencent)
    config = BriefingConfig(timezone="Asia/Shanghai", language="en")
    worker = build_worker(ts_env.client, deps, task_queue=queue)
    running = asyncio.create_task(worker.run())
    stack = Stack(env=ts_env, service=service, worker=worker)
    day = await stack.plan(config)
    await service.create("ivy", config)
    await stack.skip_to(day.window_start + timedelta(minutes=1))
    await eventually(lambda: _prepared(service, "ivy"), "briefing prepared")
    await worker.shutdown()
    await running
    answer = await service.greet("ivy", via="voice", request_id="worker-down", within=3)
    assert answer.outcome is GreetOutcome.PREPARING
    assert "did not answer in time" in answer.text
