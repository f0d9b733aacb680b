"""The SQLite file under load: worker checks (extraction, diff, snapshot writes, events)
and API writes side by side never fail with "database is locked"."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest_asyncio
from sqlalchemy import func, select, text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from activities.events import EventActivities
from activities.watches import WatchActivities
from ambient.clients.tencent.client import TencentCloud
from ambient.clients.web import WebFetcher
from ambient.domain.checks import CheckPageInput
from ambient.domain.events import RecordEventInput
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.models import Event
from ambient.storage.polls import WatchSnapshot
from ambient.storage.repositories import EventRepository
from tests.conftest import unique
from tests.support.servers import serve

PAGES = 100
ROUNDS = 3
API_WRITES = 150


@dataclass
class ChangingSite:
    """Every fetch a new page; /slow is a big page whose text takes long to extract."""

    fetches: dict[str, int] = field(default_factory=dict)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{name}", self.page)])

    async def page(self, request: Request) -> Response:
        name = request.path_params["name"]
        n = self.fetches[name] = self.fetches.get(name, 0) + 1
        size = 4000 if name == "slow" else 40
        lines = "".join(
            f"<p>{name} line {i} edition {n if i % 7 == 0 else 0}</p>" for i in range(size)
        )
        return Response(f"<html><body><article>{lines}</article></body></html>")


@pytest_asyncio.fixture
async def changing() -> AsyncIterator[str]:
    async with serve(ChangingSite().app()) as base:
        yield base


async def test_checks_and_api_writes_under_load_never_hit_a_locked_database(
    settings: Settings, db: Database, changing: str
) -> None:
    api_db = Database(settings.resolved_database_url)  # the API process's own engine
    task = unique("web-monitor/alice/load")
    fetcher = WebFetcher(allow_cidrs=["127.0.0.1/32"])
    watches = WatchActivities(db, fetcher, TencentCloud.from_settings(settings))
    events = EventActivities(db)
    failures: list[str] = []

    async def check(name: str, round_: int) -> None:
        url = f"{changing}/{name}"
        result = await watches.check_page(CheckPageInput(task=task, url=url))
        if result.outcome == "error":
            failures.append(f"{name}: {result.error}")
            return
        await events.record_event(
            RecordEventInput(
                kind="watch.change",
                user="alice",
                task=task,
                payload={"url": url},
                idempotency_key=f"{task}/{round_}/{name}",
            )
        )

    async def api_writes() -> int:
        written = 0
        for i in range(API_WRITES):
            async with api_db.session() as session:
                await EventRepository(session).add("api.write", user="bob", payload={"i": i})
                await session.commit()
            written += 1
            await asyncio.sleep(0)
        return written

    api = asyncio.create_task(api_writes())
    for round_ in range(ROUNDS):
        names = [f"p{i}" for i in range(PAGES)] + ["slow"]
        await asyncio.gather(*(check(name, round_) for name in names))
    written = await api

    async with api_db.session() as session:
        modes = [
            (await session.execute(text(f"PRAGMA {p}"))).scalar_one()
            for p in ("journal_mode", "busy_timeout")
        ]
        api_events = await session.scalar(
            select(func.count()).select_from(Event).where(Event.kind == "api.write")
        )
        changes = await session.scalar(
            select(func.count()).select_from(Event).where(Event.task == task)
        )
        snapshots = await session.scalar(
            select(func.count()).select_from(WatchSnapshot).where(WatchSnapshot.task == task)
        )
    await api_db.close()
    assert failures == []
    assert modes == ["wal", 10000]
    assert written == api_events == API_WRITES
    assert changes == ROUNDS * (PAGES + 1)
    # Two texts kept per page (the last and the one before).
    assert snapshots == 2 * (PAGES + 1)
