"""The product's own LLM steps with the real local model (`make llm`): opt-in, `-m llm`.

Only that each step gets a valid structured answer from the model through the product's code;
how good the answers are is bench/llm_steps.py's to measure. The server is reused (or started)
and, when it was already running, left running.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from activities.event_agent import decide
from ambient.clients.llm import LLMClient
from ambient.domain.event_digest import EventBrief
from ambient.local_llm import LocalServer, ensure_server
from ambient.remediation.scorer import score_alert
from ambient.settings import LOCAL_LLM_MODEL, Settings
from bench.llm_steps import alerts

pytestmark = pytest.mark.llm


@pytest.fixture(scope="module")
def local_llm() -> Iterator[LLMClient]:
    server: LocalServer = ensure_server(Settings(local_llm=True))
    try:
        yield LLMClient(Settings(local_llm=True))
    finally:
        server.stop()  # only a server this test started


async def test_alert_scoring_gets_a_schema_valid_answer_from_the_local_model(
    local_llm: LLMClient,
) -> None:
    scored = await score_alert(alerts(1)[0], [], local_llm)
    assert scored.failure is None, scored.failure
    assert scored.card.generated_by == "llm" and 1 <= scored.card.budget <= 6


async def test_the_event_agent_gets_a_decision_from_the_local_model(local_llm: LLMClient) -> None:
    events = [
        EventBrief(
            id=1,
            kind="watch.breach",
            task="threshold/alice/cpu",
            at=datetime.now(UTC),
            gist="value=97.5, threshold=90, metric=cpu_percent",
        )
    ]
    verdict = await decide(local_llm, events)
    assert verdict.generated_by == LOCAL_LLM_MODEL, verdict.decision.reason
