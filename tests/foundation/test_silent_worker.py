"""A read that needs a worker, asked while none runs: a clear answer within seconds, not ~30."""

from __future__ import annotations

import pytest
from temporalio.testing import WorkflowEnvironment

from ambient import temporal
from ambient.briefing.models import BriefingConfig
from ambient.briefing.service import BriefingError
from ambient.deps import WorkerDeps
from mcp_server.voice import WORKER_SILENT
from tests.briefing.harness import briefing_stack, make_user
from tests.conftest import running_worker, unique
from tests.voice.support import say, voice_client, worker_state


async def test_a_status_asked_while_no_worker_runs_says_the_worker_is_silent(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    user = unique("silent")
    await make_user(deps.db, user)
    config = BriefingConfig(timezone="Asia/Shanghai", language="en")
    async with briefing_stack(dev_env, deps) as stack:
        await stack.service.create(user, config.model_dump(mode="json"))
        assert (await stack.service.status(user)).config.timezone == "Asia/Shanghai"
    # The worker is gone: the dev server would answer "no poller seen" only after ~30 s; the
    # query asks for QUERY_TIMEOUT at most and the error says what is wrong.
    with pytest.raises(BriefingError, match="no worker answered within 5 s"):
        await stack.service.status(user)
    assert temporal.QUERY_TIMEOUT.total_seconds() == 5


async def test_a_spoken_task_status_while_no_worker_runs_says_so_in_words(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    user = unique("silent-voice")
    await make_user(deps.db, user)
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        config = {"urls": ["https://example.com/"]}
        await state.tasks.create(user, "web_monitor", config, name="shop-page")
        async with voice_client(state, user) as client:
            assert "正在运行" in await say(client, "task_status", name="shop page")
    async with voice_client(state, user) as client:
        answer = await say(client, "task_status", name="shop page")
    # Said plainly, in the voice's language, within the voice's budget (not the server's ~30 s).
    assert answer == WORKER_SILENT, answer
