"""Shared pieces of the briefing tests: users, log files for a planned day, the stack."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import text as sql
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.briefing import BriefingActivities
from ambient.briefing.config import BriefingConfig, DayPlan, plan_day
from ambient.briefing.service import BriefingService
from ambient.deps import WorkerDeps
from ambient.domain.users import UserCreate
from ambient.storage import Database
from ambient.storage.users import UserRepository
from tests.conftest import running_worker

T = TypeVar("T")


async def make_user(db: Database, name: str, push_config: dict[str, Any] | None = None) -> None:
    async with db.session() as session:
        repo = UserRepository(session)
        user, _ = await repo.create(UserCreate(name=name, email=f"{name}@example.com"))
        if push_config is not None:
            await repo.set_push_config(user, push_config)
        await session.commit()


def heard(headline: str, spoken: str) -> bool:
    """Whether a briefing's ``headline`` is said in its ``spoken`` text, where it follows the
    greeting in one sentence ("Good morning, yesterday: 2 errors…")."""
    return f"{headline[:1].lower()}{headline[1:]}" in spoken


def write_day_logs(path: Path, day: DayPlan, extra: list[str] | None = None) -> Path:
    """JSON lines inside the day's log window: known templates, an error burst, extra lines."""
    start = day.logs_from
    lines = []
    for i in range(120):
        when = start + timedelta(minutes=10 * i)
        lines.append(
            {
                "time": when.isoformat(),
                "level": "INFO",
                "message": f"GET /api/items/{i} 200 in {i % 7} ms",
            }
        )
    for i in range(40):
        when = start + timedelta(hours=9, seconds=5 * i)
        lines.append(
            {
                "time": when.isoformat(),
                "level": "ERROR",
                "message": f"payment-service timeout after {3000 + i} ms to db-{i % 3}",
            }
        )
    for i in range(6):
        when = start + timedelta(hours=13, minutes=i)
        lines.append(
            {"time": when.isoformat(), "level": "WARNING", "message": f"订单服务 重试 第 {i} 次"}
        )
    for text in extra or []:
        lines.append(
            {"time": (start + timedelta(hours=15)).isoformat(), "level": "ERROR", "message": text}
        )
    # Outside the window: must not be counted.
    lines.append(
        {
            "time": (day.logs_to + timedelta(hours=1)).isoformat(),
            "level": "ERROR",
            "message": "tomorrow's error",
        }
    )
    path.write_text("\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n")
    return path


def next_clock_change(zone: str, after: datetime, *, forward: bool) -> date:
    """The first local date, three days or more after ``after``, on which ``zone``'s clocks
    spring forward (``forward``) or fall back: a test moves the test server's clock to the
    days before it, which it cannot do to a date already passed (the server starts at the
    wall clock)."""
    here = ZoneInfo(zone)
    day = after.astimezone(here).date() + timedelta(days=3)
    while True:
        before = datetime.combine(day, time(), here).utcoffset()
        later = datetime.combine(day + timedelta(days=1), time(), here).utcoffset()
        if before is not None and later is not None and before != later:
            if (later > before) == forward:
                return day
        day += timedelta(days=1)


@dataclass
class Stack:
    env: WorkflowEnvironment
    service: BriefingService
    worker: Worker

    async def now(self) -> datetime:
        return await self.env.get_current_time()

    async def skip_to(self, instant: datetime) -> None:
        """Advance the test server's clock to ``instant`` (the workflow runs meanwhile)."""
        delta = instant - await self.now()
        if delta > timedelta(0):
            await self.env.sleep(delta)

    async def plan(self, config: BriefingConfig) -> DayPlan:
        """The next day to brief whose preparation is still ahead of the test server's clock.

        The clock starts at the wall clock: between a day's preparation time and the end of
        its window, a briefing created now would be prepared at once, not at 05:00. The
        clock is then moved past that window, so every test starts before a preparation.
        """
        plan = plan_day(await self.now(), config)
        if plan.prepare_at <= await self.now() + timedelta(minutes=1):
            await self.skip_to(plan.window_end + timedelta(minutes=1))
            plan = plan_day(await self.now(), config)
        return plan

    async def created(
        self, user: str, config: BriefingConfig, logs: Path | None = None
    ) -> tuple[DayPlan, str]:
        """``user``'s briefing created before its next day (``plan``): the day it planned and
        the id of its workflow's first run. ``logs``: its log source, a file written there of
        that day's lines (``write_day_logs``)."""
        day = await self.plan(config)
        if logs is None:
            await self.service.create(user, config)
        else:
            source = {"type": "file", "path": str(write_day_logs(logs, day))}
            await self.service.create(user, config.model_dump(mode="json") | {"log_source": source})
        handle = self.env.client.get_workflow_handle(f"daily-briefing/{user}")
        return day, (await handle.describe()).run_id

    async def created_in_window(self, user: str, config: BriefingConfig) -> DayPlan:
        """``user``'s briefing created before its next day (``plan``), and the clock moved 5
        minutes into that day's window; the day it planned."""
        day = await self.plan(config)
        await self.service.create(user, config)
        await self.skip_to(day.window_start + timedelta(minutes=5))
        return day


@asynccontextmanager
async def briefing_stack(env: WorkflowEnvironment, deps: WorkerDeps) -> AsyncIterator[Stack]:
    async with running_worker(env.client, deps) as worker:
        settings = deps.settings.model_copy(update={"temporal_task_queue": worker.task_queue})
        service = BriefingService(env.client, settings, deps.db, tencent=deps.tencent)
        yield Stack(env=env, service=service, worker=worker)


@asynccontextmanager
async def news_site(
    deps: WorkerDeps, page: Callable[[Request], Awaitable[Response]]
) -> AsyncIterator[str]:
    """A news page at ``{base}/news`` on loopback, which the worker's checks may fetch."""
    from ambient.clients.notify.registry import build_channels
    from tests.support.servers import serve

    deps.settings = deps.settings.model_copy(update={"fetch_allow_cidrs": ["127.0.0.1/32"]})
    deps.channels = build_channels(deps.settings, deps.db, deps.http)
    async with serve(Starlette(routes=[Route("/news", page)])) as base:
        yield base


def held_preparations(monkeypatch: Any) -> tuple[list[str], asyncio.Event]:
    """Every preparation held (its logs slow to read) until the event returned is set, then
    failed: the reason of each, in order, in the list returned."""
    reasons: list[str] = []
    held = asyncio.Event()

    async def prepare(_self: Any, request: Any) -> None:
        reasons.append(request.reason)
        await held.wait()
        raise AssertionError("held to the end of the test")

    monkeypatch.setattr(BriefingActivities, "_prepare", prepare)
    return reasons, held


async def briefings_away(db: Database, away: bool = True) -> None:
    """The database's briefings table taken away (every preparation fails, as with the
    database away at 05:00), or given back (``away`` False)."""
    old, new = ("briefings", "briefings_away") if away else ("briefings_away", "briefings")
    async with db.session() as session:
        await session.execute(sql(f"ALTER TABLE {old} RENAME TO {new}"))
        await session.commit()
