"""search_messages finds a word in any case, of any script, on SQLite as on PostgreSQL:
SQLite's lower() folds ASCII alone, so "DÉPLOIEMENT" found no "déploiement" there."""

from __future__ import annotations

import pytest

from ambient.discussions.service import DiscussionService
from ambient.domain.users import UserCreate
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.migrate import upgrade_async
from ambient.storage.models import Discussion, DiscussionMessage
from ambient.storage.users import UserRepository
from tests.foundation.test_postgres import postgres_url  # noqa: F401 - the fixture


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_a_word_of_any_script_is_found_in_any_case(
    backend: str, settings: Settings, request: pytest.FixtureRequest
) -> None:
    url = settings.resolved_database_url
    if backend == "postgresql":
        url = request.getfixturevalue("postgres_url")
    await upgrade_async(url)
    async with Database(url) as db:
        async with db.session() as session:
            user, _ = await UserRepository(session).create(UserCreate(name=f"srch-{backend}"))
            user.role = "admin"
            session.add(Discussion(id=f"d-{backend}", topic="t", topic_key="t", initiator="x"))
            await session.flush()
            said = "Échec du déploiement sur Ölwerk: 100% _fait_"
            session.add(
                DiscussionMessage(
                    id=f"m-{backend}", discussion_id=f"d-{backend}", from_id="x", content=said
                )
            )
            await session.commit()
        service = DiscussionService(db, settings)
        found = {
            word: (await service.search_messages(f"srch-{backend}", word)).total_matches
            for word in ("DÉPLOIEMENT", "échec", "ÖLWERK", "100%", "_fait_", "100 %")
        }
    assert found == {
        "DÉPLOIEMENT": 1,
        "échec": 1,
        "ÖLWERK": 1,
        "100%": 1,
        "_fait_": 1,
        "100 %": 0,  # % and _ are characters to find, not wildcards
    }
