"""The event agent's message reaches its user in the language they read: the rules' message
(no model) and a model's message without a title get their frame in Chinese for a Chinese
reader; the events' own words stay as written."""

from __future__ import annotations

import dataclasses

from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from ambient.clients.llm import LLMClient
from ambient.deps import WorkerDeps
from ambient.domain.users import Language, UserCreate
from ambient.storage.repositories import InboxRepository
from ambient.storage.users import UserRepository
from tests.agent.test_event_agent import _events, _run
from tests.conftest import running_worker, unique
from tests.standins.llm_api import API_KEY, Content, LLMApi
from tests.support.servers import serve


async def _reader(deps: WorkerDeps, language: Language) -> str:
    name = unique(f"agent-{language.value}")
    async with deps.db.session() as session:
        await UserRepository(session).create(UserCreate(name=name, language=language))
        await session.commit()
    return name


async def _inbox(deps: WorkerDeps, user: str) -> list[tuple[str, str]]:
    async with deps.db.session() as session:
        return [(m.title, m.body) for m in await InboxRepository(session).list(user)]


async def test_the_rules_message_is_framed_in_the_readers_language(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    zh, en = await _reader(deps, Language.ZH), await _reader(deps, Language.EN)
    for user in (zh, en):
        watch = f"threshold-watch/{user}/btc"
        await _events(
            deps,
            user,
            ("watch.breach", watch, {"value": 101000}),
            ("watch.breach", watch, {"value": 102000}),
        )
    async with running_worker(ts_env.client, deps) as worker:
        for n, user in enumerate((zh, en), start=2):
            assert (await _run(ts_env, worker.task_queue, user, n)).notified
    assert await _inbox(deps, zh) == [
        (
            "2 个事件值得关注",
            f"- **watch.breach** ×2 — threshold-watch/{zh}/btc\n"
            "  - 最近一次 watch.breach：value=102000",
        )
    ]
    assert await _inbox(deps, en) == [
        (
            "2 event(s) worth a look",
            f"- **watch.breach** ×2 — threshold-watch/{en}/btc\n"
            "  - latest watch.breach: value=102000",
        )
    ]


async def test_a_models_message_without_a_title_gets_one_in_the_readers_language(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    zh, en = await _reader(deps, Language.ZH), await _reader(deps, Language.EN)
    for user in (zh, en):
        await _events(deps, user, ("watch.hit", f"web-monitor/{user}/hn", {"url": "https://a/"}))
    said = {"notify": True, "title": "", "body": "A keyword hit on a.", "reason": "hit"}
    api = LLMApi()
    api.script(Content.of(said), Content.of(said))
    async with serve(api.app()) as base:
        settings = deps.settings.model_copy(
            update={"openai_api_key": SecretStr(API_KEY), "openai_base_url": f"{base}/v1"}
        )
        with_llm = dataclasses.replace(deps, settings=settings, llm=LLMClient(settings))
        async with running_worker(ts_env.client, with_llm) as worker:
            for n, user in enumerate((zh, en), start=2):
                result = await _run(ts_env, worker.task_queue, user, n)
                assert result.notified and result.generated_by != "offline", result
    # The model's words as it wrote them (in the events' language).
    assert await _inbox(deps, zh) == [("事件摘要", "A keyword hit on a.")]
    assert await _inbox(deps, en) == [("What happened", "A keyword hit on a.")]
