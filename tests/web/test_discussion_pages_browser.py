"""The discussion list in a real browser: one page at a time, every discussion reachable."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from ambient.discussions.rules import MessageIn
from ambient.discussions.service import DiscussionService
from ambient.domain.users import Language, UserCreate
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.repositories import UserRepository
from api.app import create_app
from api.routers import ops_pages
from tests.conftest import unique
from tests.remediation.support import run_row
from tests.support.servers import free_port, serve
from tests.web.test_pages_browser import phone_page


async def test_the_discussion_list_pages_through_every_discussion_once(
    settings: Settings, db: Database, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past a page of discussions, the rest were not shown and no link led to them."""
    monkeypatch.setattr(ops_pages, "DISCUSSIONS_PER_PAGE", 2)
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    name = unique("talker")
    async with db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name, language=Language.ZH))
        await session.commit()
    bus = DiscussionService(db, settings)
    topics = {f"话题{i}" for i in range(3)}
    for topic in sorted(topics):
        await bus.send_message(name, topic, MessageIn(from_id=name, content="开始"))
    async with serve(create_app(settings)) as base, phone_page(browser) as page:
        await page.context.add_cookies([{"name": "ambient_token", "value": token, "url": base}])
        await page.goto(f"{base}/app/discussions")
        cards = page.locator("#discussions li.card a")
        await expect(cards).to_have_count(2)
        first = set(await cards.all_inner_texts())
        await page.get_by_role("link", name="更多讨论").click()
        await expect(cards).to_have_count(1)
        second = set(await cards.all_inner_texts())
        assert first | second == topics and not first & second
        await expect(page.get_by_role("link", name="更多讨论")).to_have_count(0)
        await page.get_by_role("link", name="前面的讨论").click()
        await expect(cards).to_have_count(2)


async def test_a_chinese_discussion_page_says_which_messages_are_unverified_in_chinese(
    settings: Settings, db: Database, browser: Browser
) -> None:
    """A message its sender marked inferred or unverifiable was labelled so in English."""
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    name = unique("reader")
    async with db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name, language=Language.ZH))
        await session.commit()
    bus = DiscussionService(db, settings)
    posted = await bus.send_message(
        name, "磁盘", MessageIn(from_id=name, content="可能是日志", source_type="inferred")
    )
    await bus.reply_message(
        name,
        posted.discussion_id,
        MessageIn(from_id=name, content="听说的", source_type="unverifiable"),
    )
    async with serve(create_app(settings)) as base, phone_page(browser) as page:
        await page.context.add_cookies([{"name": "ambient_token", "value": token, "url": base}])
        await page.goto(f"{base}/app/discussion?id={posted.discussion_id}")
        labels = page.locator("#messages li span.state")
        await expect(labels).to_have_text(["推断", "无法核实"])


async def test_the_remediation_list_pages_through_every_run_once(
    settings: Settings, db: Database, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The remediations page stopped at its 50 newest runs, saying nothing of the others."""
    monkeypatch.setattr(ops_pages, "REMEDIATIONS_PER_PAGE", 2)
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    name = unique("fixer")
    services = {f"svc-{i}" for i in range(3)}
    async with db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name, language=Language.ZH))
        for service in sorted(services):
            rid = f"remediation/{unique('fp')}"
            session.add(run_row(rid, name, state="resolved", service=service))
        await session.commit()
    async with serve(create_app(settings)) as base, phone_page(browser) as page:
        await page.context.add_cookies([{"name": "ambient_token", "value": token, "url": base}])
        await page.goto(f"{base}/app/remediations")
        cards = page.locator("#remediations li.card a")
        await expect(cards).to_have_count(2)
        first = set(await cards.all_inner_texts())
        await page.get_by_role("link", name="更多修复").click()
        await expect(cards).to_have_count(1)
        second = set(await cards.all_inner_texts())
        assert first | second == services and not first & second
        await expect(page.get_by_role("link", name="更多修复")).to_have_count(0)
        await page.get_by_role("link", name="前面的修复").click()
        await expect(cards).to_have_count(2)
