"""A voice pause or resume that sent nothing says so, with the task's name and what to do (one
sent and not confirmed: tests/voice/test_voice_tasks.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.testing import WorkflowEnvironment

from ambient import no_answer
from ambient.deps import WorkerDeps
from ambient.domain.users import Language, UserCreate
from ambient.storage.users import UserRepository
from tests.conftest import running_worker, unique
from tests.voice.support import say, voice_client, worker_state


async def test_a_voice_pause_that_sent_nothing_says_so_and_to_ask_again(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pause whose request's time ran out before anything was sent was said with a read's
    words, "后台的工作进程没有响应，现在查不到实时状态。", naming neither the task nor that
    nothing was sent."""
    users = {Language.ZH: unique("vsil"), Language.EN: unique("vsile")}
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        tasks = {}
        for language, user in users.items():
            async with deps.db.session() as session:
                await UserRepository(session).create(UserCreate(name=user, language=language))
                await session.commit()
            config = {"urls": ["https://example.com/"]}
            tasks[user] = await state.tasks.create(user, "web_monitor", config, name="shop-page")
    # The request's time spent before its first call to Temporal: nothing is sent.
    monkeypatch.setattr(no_answer, "QUERY_TIMEOUT", timedelta(0))
    said = {}
    for language, user in users.items():
        async with voice_client(state, user) as client:
            said[language] = await say(client, "pause_task", name="shop page")
    assert said == {
        Language.ZH: "暂停shop page的指令没有发出，它没有变。请稍后再说一次。",
        Language.EN: "I couldn't send the pause, so shop page is unchanged. Please ask again"
        " in a moment.",
    }
    # Nothing was sent: no task was signalled.
    for user, task in tasks.items():
        handle = dev_env.client.get_workflow_handle(task.task_id)
        history = [e async for e in handle.fetch_history_events()]
        names = [
            e.workflow_execution_signaled_event_attributes.signal_name
            for e in history
            if e.HasField("workflow_execution_signaled_event_attributes")
        ]
        assert names == [], (user, names)
