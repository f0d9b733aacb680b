"""The chat tests' conversations: stored in the test's app database, as the API keeps them."""

from __future__ import annotations

import pytest

from ambient.agent.conversations import ConversationStore
from ambient.storage import Database


@pytest.fixture
def conversations(db: Database) -> ConversationStore:
    return ConversationStore(db)
