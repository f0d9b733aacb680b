"""The pages give times in the user's time zone (their setting), as the briefing and the
voice do: a stored time is UTC."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from ambient.domain.users import Language, UserCreate
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.models import Event, InboxMessage
from ambient.storage.users import UserRepository
from tests.support.pages import signed_in
from tests.support.servers import free_port

AT = datetime(2026, 11, 25, 23, 5, 9, tzinfo=UTC)  # 07:05:09 the next day in Shanghai


async def test_the_dashboard_gives_event_and_inbox_times_in_the_users_time_zone(
    settings: Settings, db: Database
) -> None:
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with db.session() as session:
        _, token = await UserRepository(session).create(
            UserCreate(name="min", language=Language.ZH, timezone="Asia/Shanghai")
        )
        session.add(Event(kind="watch.failing", user="min", task="t", created_at=AT))
        session.add(InboxMessage(user="min", kind="watch", title="t", body="b", created_at=AT))
        await session.commit()
    async with signed_in(settings, token) as http:
        page = (await http.get("/app")).text
        # The live list's events, which the page's script shows as they come.
        async with http.stream("GET", "/app/events/stream", params={"after_id": 0}) as live:
            async for line in live.aiter_lines():
                if line.startswith("data:"):
                    frame = json.loads(line.removeprefix("data:"))
                    break
    assert re.findall(r"<time>([^<]*)</time>", page) == ["2026-11-26 07:05:09", "2026-11-26 07:05"]
    assert frame["created_at"] == "2026-11-26T07:05:09+08:00"
