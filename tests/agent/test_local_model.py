"""With the real local model (`make llm`): opt-in, `python -m pytest -m llm`. The server is
started (or reused) on 127.0.0.1; the first request fills its prompt cache and is slow."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from openai import AsyncOpenAI

from ambient.local_llm import LocalServer, ensure_server
from ambient.settings import LOCAL_LLM_MODEL, Settings
from bench.toolcalls.run import PINNED, ask, only, our_tools
from bench.toolcalls.scoring import Case, ExpectedCall, outcome

pytestmark = pytest.mark.llm


@pytest.fixture(scope="module")
def local_server() -> Iterator[LocalServer]:
    server = ensure_server(Settings())
    try:
        yield server
    finally:
        server.stop()


async def test_the_local_model_answers_a_spoken_request_in_the_tool_calls_field(
    local_server: LocalServer,
) -> None:
    tools = only(await our_tools("full"), PINNED)
    client = AsyncOpenAI(api_key="local", base_url=f"{local_server.url}/v1", timeout=3600)
    case = Case(
        id="llm-1",
        lang="en",
        utterance="Pause the Hacker News monitor.",
        expected=[ExpectedCall(tool="pause_task", args={"task_id": "web-monitor/dev/hn"})],
    )
    attempt = await ask(client, LOCAL_LLM_MODEL, tools, case)
    assert attempt.error is None
    # The template fix: the call comes back as a real tool call, not as text.
    assert attempt.calls, f"no tool_calls; the text held {attempt.text_calls}"
    assert outcome(case, attempt.calls, None) == "correct"
