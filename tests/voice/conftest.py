"""The voice's users are 小智's: the server's default language is the product's own, zh."""

from __future__ import annotations

import pytest

from ambient.domain.users import Language
from ambient.settings import Settings
from api.routers import xiaozhi as xiaozhi_router


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # A user who chose no language hears the server's default (the tests' root default is en).
    return settings.model_copy(update={"default_language": Language.ZH})


@pytest.fixture(autouse=True)
def context_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    # The context's 1 s budget is 小智's wake deadline; on a loaded test machine the database
    # reads alone can outlast it (503 "context not ready in time"). These tests check what the
    # context says, not how fast: a budget no load reaches.
    monkeypatch.setattr(xiaozhi_router, "CONTEXT_BUDGET", 10.0)
