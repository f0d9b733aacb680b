"""A keyed share link asked for twice at once on PostgreSQL, where writers do not queue."""

from __future__ import annotations

import asyncio

from ambient.settings import Settings
from ambient.sharing import share_report
from ambient.storage import Database
from tests.foundation.test_postgres import postgres_url  # noqa: F401 - the fixture


async def test_the_same_key_shared_at_once_gives_one_link_to_both(
    pg: Database, settings: Settings
) -> None:
    # The briefing's push and its owner sharing the same report build the same key: both
    # callers get the one link, neither the unique key's refusal.
    for n in range(8):
        links = await asyncio.gather(
            *(
                share_report(pg, settings, "ann", "briefing", "日报", "# 昨天", f"brief-{n}")
                for _ in range(3)
            )
        )
        assert len({link.url for link in links}) == 1
