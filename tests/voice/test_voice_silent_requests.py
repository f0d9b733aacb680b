"""A voice pause or resume whose worker went silent says what it did, with the task's name:
sent and not confirmed, or nothing sent (the service's error carries which, as data)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.testing import WorkflowEnvironment

from ambient import temporal
from ambient.deps import WorkerDeps
from ambient.domain.users import Language, UserCreate
from ambient.storage.users import UserRepository
from tests.conftest import running_worker, unique
from tests.voice.support import say, voice_client, worker_state


async def test_a_voice_pause_whose_worker_went_silent_says_whether_it_was_sent(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pause (or resume) whose request's time ran out before anything was sent was said
    with a read's words, "后台的工作进程没有响应，现在查不到实时状态。", naming neither the
    task nor that nothing was sent; one sent whose worker went silent after answering is said
    as sent and not confirmed."""
    users = {Language.ZH: unique("vsil"), Language.EN: unique("vsile")}
    said: dict[Language, list[str]] = {}
    monkeypatch.setattr(temporal, "QUERY_TIMEOUT", timedelta(seconds=2))
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        tasks = {}
        for language, user in users.items():
            async with deps.db.session() as session:
                await UserRepository(session).create(UserCreate(name=user, language=language))
                await session.commit()
            config = {"urls": ["https://example.com/"]}
            tasks[user] = await state.tasks.create(user, "web_monitor", config, name="shop-page")
    # No worker now: the pause is delivered (the server holds it), its status read unanswered.
    for language, user in users.items():
        async with voice_client(state, user) as client:
            said[language] = [await say(client, "pause_task", name="shop page")]
    # The request's time spent before its first call to Temporal: nothing is sent.
    monkeypatch.setattr(temporal, "QUERY_TIMEOUT", timedelta(0))
    for language, user in users.items():
        async with voice_client(state, user) as client:
            said[language].append(await say(client, "resume_task", name="shop page"))
    assert said == {
        Language.ZH: [
            "已发出暂停shop page的指令，还没得到确认，稍后可以问我它的状态。",
            "后台的工作进程没有响应，恢复shop page的指令没有发出，它没有变。",
        ],
        Language.EN: [
            "I asked shop page to pause, but it isn't confirmed yet; ask me about it later.",
            "The background worker isn't answering, so I didn't send the resume: shop page is"
            " unchanged.",
        ],
    }
    # The resume was not sent: each task is still paused, as the pause left it.
    for user, task in tasks.items():
        handle = dev_env.client.get_workflow_handle(task.task_id)
        history = [e async for e in handle.fetch_history_events()]
        names = [
            e.workflow_execution_signaled_event_attributes.signal_name
            for e in history
            if e.HasField("workflow_execution_signaled_event_attributes")
        ]
        assert names == ["pause"], (user, names)
