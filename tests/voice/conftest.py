"""The voice's users are 小智's: the server's default language is the product's own, zh."""

from __future__ import annotations

import pytest

from ambient.domain.users import Language
from ambient.settings import Settings
from mcp_server import voice_answer, voice_approvals


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # A user who chose no language hears the server's default (the tests' root default is en).
    return settings.model_copy(update={"default_language": Language.ZH})


# A voice call's budget is 8 s (xiaozhi.me waits 10): its reads of the worker, its database
# reads and its answer all fit in it. On a test host whose worker is starved that is overrun
# by load alone, and the call said "系统这会儿响应太慢" where the test checks what is said:
# three times the product's, as the reads' own budget (tests/conftest.py). Tests of what the
# voice says when something behind it hangs take the product's with `product_voice_budget`.
PRODUCT_CALL_BUDGET = voice_answer.CALL_BUDGET
PRODUCT_CLUSTERS_WAIT = voice_approvals.CLUSTERS_WAIT  # the wait for TKE's cluster names too


@pytest.fixture(autouse=True)
def loaded_host_voice_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(voice_answer, "CALL_BUDGET", 3 * PRODUCT_CALL_BUDGET)
    monkeypatch.setattr(voice_approvals, "CLUSTERS_WAIT", 3 * PRODUCT_CLUSTERS_WAIT)


@pytest.fixture
def product_voice_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(voice_answer, "CALL_BUDGET", PRODUCT_CALL_BUDGET)
