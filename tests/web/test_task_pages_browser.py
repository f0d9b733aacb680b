"""The dashboard's task list in a real browser: one page at a time, like list_tasks."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, Dialog, expect
from temporalio.testing import WorkflowEnvironment

from ambient import temporal
from ambient.briefing.service import BriefingService
from ambient.deps import WorkerDeps
from ambient.domain.users import UserCreate
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.users import UserRepository
from ambient.watches.service import TaskService
from api.app import create_app
from api.routers import app_pages
from tests.conftest import unique
from tests.support.servers import free_port, serve
from tests.support.waits import eventually
from tests.watches.site import article
from tests.watches.test_lifecycle import GatedSite, gated  # noqa: F401  (fixture)
from tests.watches.test_lifecycle_service import monitor, service  # noqa: F401  (fixture)
from tests.watches.test_workflows import loopback_deps  # noqa: F401  (fixture)
from tests.web.test_discussion_pages_browser import _chinese_user, _signed_in_page
from tests.web.test_pages_browser import phone_page


async def test_the_task_list_pages_through_every_task_once_and_a_stale_link_starts_again(
    dev_env: WorkflowEnvironment,
    deps: WorkerDeps,
    browser: Browser,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(app_pages, "TASKS_PER_PAGE", 2)
    name = unique("pager")
    settings, tasks = _tasks(dev_env, deps)
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name, language="en"))
        await session.commit()
    made = {
        (await tasks.create(name, "schedule", {"hour": 9, "message": f"m{i}"}, f"r{i}")).task_id
        for i in range(3)
    }
    async with serve(create_app(settings)) as base, phone_page(browser) as page:
        await page.context.add_cookies([{"name": "ambient_token", "value": token, "url": base}])
        await page.goto(f"{base}/app")
        cards = page.locator("#tasks li.card")
        await expect(cards).to_have_count(2)
        first = set(await cards.evaluate_all("cs => cs.map(c => c.dataset.task)"))
        await page.get_by_role("link", name="More tasks").click()
        await expect(cards).to_have_count(1)
        second = set(await cards.evaluate_all("cs => cs.map(c => c.dataset.task)"))
        assert first | second == made and not first & second
        await expect(page.get_by_role("link", name="More tasks")).to_have_count(0)
        await page.get_by_role("link", name="First tasks").click()
        await expect(cards).to_have_count(2)

        await page.goto(f"{base}/app?tasks_page=not-a-token")
        await expect(page.get_by_role("status")).to_be_visible()
        assert "tasks_page" not in page.url
        await expect(page.get_by_role("status")).to_contain_text("no longer there")
        await expect(cards).to_have_count(2)

        # Two full pages: the list knows there were no more only when it asks for them, and
        # that page said "No tasks yet." (a review).
        await tasks.create(name, "schedule", {"hour": 9, "message": "m3"}, "r3")
        await page.goto(f"{base}/app")
        await page.get_by_role("link", name="More tasks").click()
        await expect(cards).to_have_count(2)
        await page.get_by_role("link", name="More tasks").click()
        await expect(cards).to_have_count(0)
        await expect(page.locator("#no-tasks")).to_have_text("No more tasks.")


async def test_a_task_page_shows_its_chinese_words_as_typed(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, browser: Browser
) -> None:
    name = unique("hanzi")
    settings, tasks = _tasks(dev_env, deps)
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name, language="zh"))
        await session.commit()
    made = await tasks.create(name, "schedule", {"hour": 9, "message": "记得喝水 <b>"}, "water")
    async with serve(create_app(settings)) as base, phone_page(browser) as page:
        await page.context.add_cookies([{"name": "ambient_token", "value": token, "url": base}])
        await page.goto(f"{base}/app/task?id={made.task_id}")
        config = page.locator("pre").first
        await expect(config).to_contain_text('"message": "记得喝水 <b>"')
        assert "\\u" not in await page.locator("main").inner_text()


async def test_a_task_page_gives_its_times_in_the_readers_time_zone(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, browser: Browser
) -> None:
    """A reminder's next runs (and a watch's last check) were shown in UTC to a reader whose
    settings name another time zone, as no other time on the pages is."""
    name = unique("zoned")
    settings, tasks = _tasks(dev_env, deps)
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(
            UserCreate(name=name, language="zh", timezone="Asia/Shanghai")
        )
        await session.commit()
    made = await tasks.create(name, "schedule", {"hour": 9, "message": "喝水"}, "water")
    async with serve(create_app(settings)) as base, phone_page(browser) as page:
        await page.context.add_cookies([{"name": "ambient_token", "value": token, "url": base}])
        await page.goto(f"{base}/app/task?id={made.task_id}")
        detail = page.locator("pre").nth(1)
        await expect(detail).to_contain_text("next_runs")
        shown = await detail.inner_text()
        assert "+08:00" in shown and "+00:00" not in shown, shown


async def test_a_chinese_readers_task_cards_say_what_each_task_is_in_chinese(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, browser: Browser
) -> None:
    """A zh reader's reminder card read "Reminder, daily at 09:00 Asia/Shanghai, for …": the
    task's English summary (its schedule's note, as list_tasks gives it) put on the page as is."""
    settings, tasks = _tasks(dev_env, deps)
    name, token = await _chinese_user(deps.db, "kapian")
    daily = await tasks.create(name, "schedule", {"hour": 9, "message": "喝水"}, "water")
    weekly = {"type": "weekly", "days": ["mon", "fri"], "hour": 18, "minute": 30, "message": "走"}
    weeks = await tasks.create(name, "schedule", weekly, "walk")
    async with _signed_in_page(settings, browser, token) as (base, page):
        await page.goto(f"{base}/app")
        said = {}
        for made in (daily, weeks):
            card = page.locator(f'li.card[data-task="{made.task_id}"] p.muted')
            await expect(card).to_be_visible()
            said[made.task_id] = await card.inner_text()
    assert said == {
        daily.task_id: f"定时提醒，每天 09:00（Asia/Shanghai），给 {name}：喝水",
        weeks.task_id: f"定时提醒，每周一、周五 18:30（Asia/Shanghai），给 {name}：走",
    }


async def test_check_now_on_the_dashboard_says_what_it_found_on_each_page_in_chinese(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    service: TaskService,  # noqa: F811  (its worker runs while the page is up)
    gated: tuple[GatedSite, str],  # noqa: F811
    browser: Browser,
) -> None:
    """The check now button said only "立即执行：… 运行中": what the check found (the answer's
    ``checked``) went unsaid, and the reader had to open the task to learn it."""
    site, base = gated
    for path in ("/hit", "/same", "/gone"):
        site.pages[path] = article(f"All quiet on {path}.")
    name = unique("found")
    async with loopback_deps.db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name, language="zh"))
        await session.commit()
    config = {**monitor(base, "/hit", "/same", "/gone"), "keywords": ["outage"]}
    made = await service.create(name, "web_monitor", config, "pages")
    site.pages["/hit"] = article("All quiet on /hit.", "An outage in the east.")
    del site.pages["/gone"]
    settings = loopback_deps.settings.model_copy(
        update={"temporal_address": dev_env.client.service_client.config.target_host}
    )
    async with serve(create_app(settings)) as app, phone_page(browser) as page:
        await page.context.add_cookies([{"name": "ambient_token", "value": token, "url": app}])
        await page.goto(f"{app}/app")
        card = page.locator(f'li.card[data-task="{made.task_id}"]')
        # Its line says what it is in Chinese too (the task's summary is kept in English).
        await expect(card.locator("p.muted")).to_have_text(
            f"网页监控（3 个网址），每 60 分钟检查，给 {name}"
        )
        await card.get_by_role("button", name="立即执行").click()
        said = page.get_by_role("status")
        await expect(said).to_contain_text(f"{base}/hit：关键词命中：outage")
        await expect(said).to_contain_text(f"{base}/same：没有变化")
        await expect(said).to_contain_text(f"{base}/gone：失败：服务器答复 HTTP 404")
        # The task page says each page's last check in words too: its error once.
        await page.goto(f"{app}/app/task?id={made.task_id}")
        gone = page.locator("#pages tr", has_text=f"{base}/gone")
        await expect(gone.locator("td")).to_have_text("失败：服务器答复 HTTP 404")
        await expect(page.locator("#pages tr", has_text=f"{base}/same")).to_contain_text("没有变化")
    await service.delete(name, made.task_id)


async def test_a_monitor_deleted_from_its_card_is_no_longer_listed_on_the_dashboard(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    service: TaskService,  # noqa: F811  (its worker runs while the page is up)
    gated: tuple[GatedSite, str],  # noqa: F811
    browser: Browser,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Delete asks "It stops, and is no longer listed", and the card stayed: "stopped", with
    no button left, for as long as Temporal kept the ended run."""
    # A loaded host's worker takes the stop late (the delete's wait, the service's).
    monkeypatch.setattr(temporal, "LISTED_STOPPED_WITHIN", 60.0)
    site, base = gated
    site.pages["/news"] = article("Quiet day.")
    name = unique("deleter")
    async with loopback_deps.db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name, language="en"))
        await session.commit()
    made = await service.create(name, "web_monitor", monitor(base, "/news"), "news")
    kept = await service.create(name, "schedule", {"hour": 9, "message": "stand-up"}, "standup")
    # One ended from outside (terminated in the Web UI): not deleted, so still shown, stopped.
    halted = await service.create(name, "web_monitor", monitor(base, "/news"), "halted")
    await dev_env.client.get_workflow_handle(halted.task_id).terminate("by hand")
    settings = loopback_deps.settings.model_copy(
        update={"temporal_address": dev_env.client.service_client.config.target_host}
    )
    async with serve(create_app(settings)) as app, phone_page(browser) as page:
        await page.context.add_cookies([{"name": "ambient_token", "value": token, "url": app}])
        await page.goto(f"{app}/app")
        card = page.locator(f'li.card[data-task="{made.task_id}"]')
        await expect(card).to_contain_text("active")

        async def accept(dialog: Dialog) -> None:
            await dialog.accept()

        page.on("dialog", accept)
        await card.get_by_role("button", name="delete").click()
        await expect(page.get_by_role("status")).to_contain_text("is stopped")
        # The page the delete came back to lists it no more (it showed the card active, its
        # buttons answering "stopped", until a reload a moment later).
        assert await card.count() == 0
        await expect(page.locator(f'li.card[data-task="{kept.task_id}"]')).to_be_visible()
        await expect(page.locator(f'li.card[data-task="{halted.task_id}"]')).to_contain_text(
            "stopped"
        )

    # list_tasks still says it stopped, as its docs say.
    async def listed_stopped() -> bool:
        states = {t.task_id: t.state.value for t in await service.list(name)}
        return states.get(made.task_id) == "stopped"

    await eventually(listed_stopped, "list_tasks lists the deleted monitor stopped")


def _tasks(dev_env: WorkflowEnvironment, deps: WorkerDeps) -> tuple[Settings, TaskService]:
    """Settings aimed at the test's Temporal server, and the task service the pages use."""
    settings = deps.settings.model_copy(
        update={"temporal_address": dev_env.client.service_client.config.target_host}
    )
    briefings = BriefingService(dev_env.client, settings, deps.db)
    return settings, TaskService(dev_env.client, settings, deps.db, briefings=briefings)


async def test_a_keyword_that_is_no_regular_expression_is_refused_in_chinese_naming_it(
    settings: Settings, db: Database, browser: Browser
) -> None:
    """RE2's reason was said in its English inside the Chinese refusal ("缺少 )" was "missing
    ): (a")."""
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    _name, token = await _chinese_user(db, "zhengze")
    said = {
        "re:(a": "'(a' 不是有效的正则表达式：缺少 )：(a",
        "re:a**": "'a**' 不是有效的正则表达式：错误的重复运算符：**",
        "re:x\\": "'x\\\\' 不是有效的正则表达式：末尾多了一个 \\",
    }
    async with _signed_in_page(settings, browser, token) as (base, page):
        for keywords, reason in said.items():
            await page.goto(f"{base}/app")
            await page.get_by_label("网页（每行一个 URL）").fill("https://a.example/news")
            await page.locator("#keywords").fill(keywords)
            await page.get_by_role("button", name="创建监控").click()
            await expect(page.get_by_role("status")).to_have_text(
                f"未创建：关键词，第 1 行: {reason}（RE2 语法：不支持反向引用和环视）"
            )
