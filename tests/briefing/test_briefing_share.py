"""A briefing's share link has one title, in the briefing's language, whoever makes it first."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from activities.briefing import BriefingActivities
from ambient.briefing.models import BriefingContent, PushRequest
from ambient.briefing.service import BriefingService
from ambient.deps import WorkerDeps
from ambient.settings import Settings
from ambient.storage.briefings import BriefingRepository
from ambient.storage.models import ShareLink


async def _store(deps: WorkerDeps, user: str, date: str) -> None:
    content = BriefingContent(
        headline="昨天一切正常。",
        spoken_text="昨天一切正常。",
        date=date,
        language="zh",
        generated_by="offline",
        spoken_segments=["昨天一切正常。"],
    )
    async with deps.db.session() as session:
        await BriefingRepository(session).save(
            user,
            date,
            content=content.model_dump(mode="json"),
            report_markdown="# 每日简报\n\n昨天一切正常。",
            generated_by="offline",
            prepared_at=datetime.now(UTC),
        )
        await session.commit()


async def _titles(deps: WorkerDeps) -> list[str]:
    async with deps.db.session() as session:
        return list(await session.scalars(select(ShareLink.title)))


async def test_the_page_and_the_push_share_a_chinese_briefing_under_one_chinese_title(
    dev_env: WorkflowEnvironment, settings: Settings, deps: WorkerDeps
) -> None:
    await _store(deps, "lin", "2026-11-24")
    service = BriefingService(dev_env.client, settings, deps.db)
    shared = await service.share("lin", "2026-11-24")
    activities = BriefingActivities(deps.db, None, None, settings)  # type: ignore[arg-type]
    pushed = await activities.compose_briefing_push(
        PushRequest(user="lin", date="2026-11-24", key="push/lin/2026-11-24")
    )
    assert pushed.link == shared.url  # one link a version
    assert pushed.title == "每日简报 2026-11-24"
    assert await _titles(deps) == ["每日简报 2026-11-24"]
