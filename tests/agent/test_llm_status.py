"""Status says which model is in use and whether its server answers (a dead one is an error)."""

from __future__ import annotations

from pydantic import SecretStr

from ambient.settings import Settings
from ambient.status import system_status
from ambient.storage import Database
from tests.standins.llm_api import API_KEY, LLMApi
from tests.support.servers import free_port, serve


async def test_offline_status_names_no_model_and_probes_nothing(
    settings: Settings, db: Database
) -> None:
    report = await system_status(settings, None, db)
    assert report.llm_mode == "offline" and report.llm_reachable is None
    assert not [e for e in report.errors if e.startswith("llm:")]


async def test_a_model_that_answers_is_named_and_reachable(
    settings: Settings, db: Database
) -> None:
    async with serve(LLMApi().app()) as url:
        configured = settings.model_copy(
            update={
                "openai_api_key": SecretStr(API_KEY),
                "openai_base_url": f"{url}/v1",
                "llm_model": "qwen-test",
            }
        )
        report = await system_status(configured, None, db)
    assert report.llm_reachable is True
    assert report.llm == f"remote qwen-test at {url}/v1"
    assert not [e for e in report.errors if e.startswith("llm:")]


async def test_a_dead_local_model_server_is_a_clear_error_not_a_model_in_use(
    settings: Settings, db: Database
) -> None:
    port = free_port()  # nothing listens there
    local = Settings(
        **{**settings.model_dump(), "local_llm": True, "local_llm_port": port},
    )
    report = await system_status(local, None, db)
    assert report.llm_mode == "local" and report.llm_reachable is False
    (error,) = [e for e in report.errors if e.startswith("llm:")]
    assert f"127.0.0.1:{port}" in error and "does not answer" in error
    assert "ambient llm serve" in error and "offline rules" in error
