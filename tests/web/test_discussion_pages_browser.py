"""The discussion list in a real browser: one page at a time, every discussion reachable."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from playwright.async_api import Browser, Page, expect

from ambient.discussions import reading
from ambient.discussions.rules import MessageIn
from ambient.discussions.service import DiscussionService
from ambient.domain.users import Language, UserCreate
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.users import UserRepository
from api.app import create_app
from api.routers import discussion_pages, ops_pages
from tests.conftest import unique
from tests.remediation.support import run_row
from tests.support.servers import free_port, serve
from tests.web.test_pages_browser import phone_page


async def test_the_discussion_list_pages_through_every_discussion_once(
    settings: Settings, db: Database, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past a page of discussions, the rest were not shown and no link led to them."""
    monkeypatch.setattr(discussion_pages, "DISCUSSIONS_PER_PAGE", 2)
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    name, token = await _chinese_user(db, "talker")
    bus = DiscussionService(db, settings)
    topics = {f"话题{i}" for i in range(3)}
    for topic in sorted(topics):
        await bus.send_message(name, topic, MessageIn(from_id=name, content="开始"))
    async with _signed_in_page(settings, browser, token) as (base, page):
        first, second = await _two_pages(page, f"{base}/app/discussions", "讨论")
        assert first | second == topics and not first & second


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
    async with _signed_in_page(settings, browser, token) as (base, page):
        await page.goto(f"{base}/app/discussion?id={posted.discussion_id}")
        labels = page.locator("#messages li span.state")
        await expect(labels).to_have_text(["推断", "无法核实"])


async def test_a_reply_tagged_with_chinese_commas_is_posted_with_each_tag(
    settings: Settings, db: Database, browser: Browser
) -> None:
    """Tags typed "紧急，跟进" were one tag, refused in English ("tags: tag '紧急，跟进': ...")."""
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    _name, token = await _chinese_user(db, "biaoqian")
    async with _signed_in_page(settings, browser, token) as (base, page):
        await page.goto(f"{base}/app/discussions")
        await page.locator("#topic").fill(unique("发布计划"))
        await page.locator("#content").fill("周五发布，大家看看")
        await page.locator("#new-discussion button[type=submit]").click()
        await expect(page.get_by_role("status")).to_have_text("已发布")
        await page.locator("#content").fill("我来跟进")
        await page.get_by_label("标签（逗号分隔；approve、refuse 或 abort 会作用于修复）").fill(
            "紧急，跟进、 周五 ,紧急"
        )
        await page.locator("#reply button[type=submit]").click()
        await expect(page.get_by_role("status")).to_have_text("已发布")
        tags = page.locator("#messages li").last.locator(".state")
        await expect(tags).to_have_text(["紧急", "跟进", "周五"])


async def test_a_long_discussion_opens_on_its_newest_messages_and_pages_to_the_rest(
    settings: Settings, db: Database, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page held every message of a discussion (weeks of an agent's posts: one huge page),
    where the API and MCP give 100 at a time; it now opens on the newest page of those."""
    monkeypatch.setattr(reading, "PAGE", 2)
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    name, token = await _chinese_user(db, "talker")
    bus = DiscussionService(db, settings)
    opened = await bus.send_message(name, "长讨论", MessageIn(from_id=name, content="一"))
    for word in ("二", "三"):
        await bus.reply_message(name, opened.discussion_id, MessageIn(from_id=name, content=word))
    async with _signed_in_page(settings, browser, token) as (base, page):
        await page.goto(f"{base}/app/discussion?id={opened.discussion_id}")
        said = page.locator("#messages pre")
        await expect(said).to_have_text(["三"])
        await expect(page.locator("#reply")).to_have_count(1)
        await page.get_by_role("link", name="更早的消息").click()
        await expect(said).to_have_text(["一", "二"])
        await expect(page.get_by_role("link", name="更早的消息")).to_have_count(0)
        await page.get_by_role("link", name="更新的消息").click()
        await expect(said).to_have_text(["三"])


async def test_the_remediation_list_pages_through_every_run_once(
    settings: Settings, db: Database, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The remediations page stopped at its 50 newest runs, saying nothing of the others."""
    monkeypatch.setattr(ops_pages, "REMEDIATIONS_PER_PAGE", 2)
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    name, token = await _chinese_user(db, "fixer")
    services = {f"svc-{i}" for i in range(3)}
    async with db.session() as session:
        for service in sorted(services):
            rid = f"remediation/{unique('fp')}"
            session.add(run_row(rid, name, state="resolved", service=service))
        await session.commit()
    async with _signed_in_page(settings, browser, token) as (base, page):
        first, second = await _two_pages(page, f"{base}/app/remediations", "修复")
        assert first | second == services and not first & second


async def _two_pages(page: Page, url: str, things: str) -> tuple[set[str], set[str]]:
    """The cards of a list paged two at a time over three items: its first page and, through
    "更多…", its second (with no further link); "前面的…" leads back to the first."""
    await page.goto(url)
    cards = page.locator(f"#{url.rsplit('/', 1)[-1]} li.card a")  # the list the page is named for
    await expect(cards).to_have_count(2)
    first = set(await cards.all_inner_texts())
    await page.get_by_role("link", name=f"更多{things}").click()
    await expect(cards).to_have_count(1)
    second = set(await cards.all_inner_texts())
    await expect(page.get_by_role("link", name=f"更多{things}")).to_have_count(0)
    await page.get_by_role("link", name=f"前面的{things}").click()
    await expect(cards).to_have_count(2)
    return first, second


async def _chinese_user(db: Database, prefix: str) -> tuple[str, str]:
    """A new user reading Chinese, named from ``prefix``: the name and its API token."""
    name = unique(prefix)
    async with db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name, language=Language.ZH))
        await session.commit()
    return name, token


@asynccontextmanager
async def _signed_in_page(
    settings: Settings, browser: Browser, token: str
) -> AsyncIterator[tuple[str, Page]]:
    """The pages served on ``settings``, and a phone's page signed in with ``token``'s cookie:
    the base URL and the page."""
    async with serve(create_app(settings)) as base, phone_page(browser) as page:
        await page.context.add_cookies([{"name": "ambient_token", "value": token, "url": base}])
        yield base, page


async def test_a_reply_form_whose_hidden_id_was_edited_is_refused_in_chinese_and_sends_anew(
    settings: Settings, db: Database, browser: Browser
) -> None:
    """The form's hidden message_id, edited by hand, was refused in English ("message_id: 1-64
    letters, ..."), and kept: sending the form again was refused again."""
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    _name, token = await _chinese_user(db, "yincang")
    async with _signed_in_page(settings, browser, token) as (base, page):
        await page.goto(f"{base}/app/discussions")
        await page.locator("#topic").fill(unique("隐藏字段"))
        await page.locator("#content").fill("第一条")
        await page.locator("#new-discussion button[type=submit]").click()
        await expect(page.get_by_role("status")).to_have_text("已发布")
        hidden = page.locator("#reply input[name=message_id]")
        await hidden.evaluate("input => { input.value = 'not an id!' }")
        await page.locator("#content").fill("第二条")
        await page.locator("#reply button[type=submit]").click()
        await expect(page.get_by_role("status")).to_have_text(
            "消息 ID: 须为 1-64 个字母、数字、'_'、'.'、':' 或 '-'，以字母或数字开头"
        )
        await expect(hidden).not_to_have_value("not an id!")
        await page.locator("#reply button[type=submit]").click()
        await expect(page.get_by_role("status")).to_have_text("已发布")
        await expect(page.locator("#messages li").last).to_contain_text("第二条")
    # An English page says it as before.
    english = settings.model_copy(update={"default_language": Language.EN})
    async with db.session() as session:
        _, en_token = await UserRepository(session).create(
            UserCreate(name=unique("hidden"), language=Language.EN)
        )
        await session.commit()
    async with _signed_in_page(english, browser, en_token) as (base, page):
        await page.goto(f"{base}/app/discussions")
        await page.locator("#new-discussion input[name=message_id]").evaluate(
            "input => { input.value = 'not an id!' }"
        )
        await page.locator("#topic").fill(unique("hidden"))
        await page.locator("#content").fill("first")
        await page.locator("#new-discussion button[type=submit]").click()
        await expect(page.get_by_role("status")).to_have_text(
            "message_id: 1-64 letters, digits, '_', '.', ':' or '-', starting alphanumeric"
        )


async def test_a_hand_edited_offset_in_a_list_link_is_said_on_a_page_in_chinese(
    settings: Settings, db: Database, browser: Browser
) -> None:
    """?offset= beyond the database's integers on a discussion or the remediation list was
    answered in the service's English ("Offset: 0 to 2147483647 ..."). The lists' other paging
    links (the remediation list's before_id, the inbox's inbox_before) are said the same way."""
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    name, token = await _chinese_user(db, "fanye")
    posted = await DiscussionService(db, settings).send_message(
        name, unique("翻页"), MessageIn(from_id=name, content="开始")
    )
    said = "这个链接或表单里有页面无法接受的值：offset: "
    shown = {
        f"/app/discussion?id={posted.discussion_id}&offset=-1": said + "不能小于 0",
        f"/app/discussion?id={posted.discussion_id}&offset=abc": said + "应为整数",
        "/app/discussions?offset=-1": said + "不能小于 0",
        f"/app/remediations?offset={2**63}": said + "不能大于 9223372036854775807",
        "/app/remediations?offset=abc": said + "应为整数",
        "/app/remediations?before_id=0": said.replace("offset", "before_id") + "不能小于 1",
        "/app?inbox_before=abc": said.replace("offset", "inbox_before") + "应为整数",
    }
    async with _signed_in_page(settings, browser, token) as (base, page):
        for path, text in shown.items():
            answer = await page.goto(f"{base}{path}")
            assert answer is not None and answer.status == 422, path
            await expect(page.get_by_role("alert")).to_have_text(text)


async def test_a_message_posted_then_sent_again_from_the_page_back_is_posted_once(
    settings: Settings, db: Database, browser: Browser
) -> None:
    """Back after a post brings the page again with the typed words (the browser restores
    them) but, shown anew, a new message id: "发布" again posted the message a second time."""
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    name, token = await _chinese_user(db, "chongfu")
    topic = unique("重复提交")
    async with _signed_in_page(settings, browser, token) as (base, page):
        await page.goto(f"{base}/app/discussions")
        await page.locator("#topic").fill(topic)
        await page.locator("#content").fill("只发一次")
        await page.locator("#new-discussion button[type=submit]").click()
        await expect(page.get_by_role("status")).to_have_text("已发布")
        await page.go_back()
        await expect(page.locator("#content")).to_have_value("只发一次")
        await page.locator("#new-discussion button[type=submit]").click()
        await page.wait_for_load_state()
    found = await DiscussionService(db, settings).search_messages(name, "只发一次")
    assert found.total_matches == 1, [m.id for m in found.results]
