"""The 小智 side reaches the voice: the server's default language is the product's own, zh."""

from __future__ import annotations

import pytest

from ambient.domain.users import Language
from ambient.settings import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # A user who chose no language hears the server's default (the tests' root default is en).
    return settings.model_copy(update={"default_language": Language.ZH})
