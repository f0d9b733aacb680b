"""The web page in a real headless browser (Debian's chromium driven by Playwright).

Screenshots are kept under test-artifacts/screenshots/ for people to look at.
"""

from __future__ import annotations

import html
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.domain.users import UserCreate
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.models import InboxMessage
from ambient.storage.repositories import EventRepository, InboxRepository
from ambient.storage.users import UserRepository
from api.app import create_app
from tests.conftest import running_worker, unique
from tests.standins.llm_api import API_KEY, Content, LLMApi, ToolCalls
from tests.support.pages import signed_in
from tests.support.servers import HANG, free_port, http_client, serve
from tests.watches.site import Site, article

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PHONE = {"width": 390, "height": 844}


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("no chromium on PATH: apt-get install -y chromium (see .ci/run)")


@asynccontextmanager
async def phone_page(browser: Browser, locale: str | None = None) -> AsyncIterator[Page]:
    """A phone-sized page in a context of its own on the process's browser (the ``browser``
    fixture); a browser asking for ``locale`` when given. CSP refusals fail the test."""
    context = await browser.new_context(viewport=PHONE, locale=locale)
    # Navigation and actions wait up to the hang guard: a loaded machine is no failure.
    context.set_default_timeout(HANG * 1000)
    page = await context.new_page()
    # Every page must work under its Content-Security-Policy: a refused script, style
    # or connection shows up here, and fails the test.
    refused: list[str] = []
    page.on(
        "console",
        lambda message: (
            refused.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    try:
        yield page
    finally:
        await context.close()
    assert refused == [], refused


async def fits_phone(page: Page, name: str) -> None:
    """No horizontal scroll at 390 px; keep a screenshot of the page."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{name}: page is {width}px wide at {PHONE['width']}px"


async def test_member_signs_in_sets_push_creates_monitor_and_sees_events_live(
    browser: Browser, dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    site = Site(pages={"/news": article("Quiet day.")})
    llm = LLMApi()
    name = unique("web")
    async with running_worker(dev_env.client, deps) as worker, serve(llm.app()) as llm_url:
        settings = deps.settings.model_copy(
            update={
                "temporal_task_queue": worker.task_queue,
                "temporal_address": dev_env.client.service_client.config.target_host,
                "fetch_allow_cidrs": ["127.0.0.0/8"],
                "openai_api_key": SecretStr(API_KEY),
                "openai_base_url": f"{llm_url}/v1",
            }
        )
        async with deps.db.session() as session:
            _, token = await UserRepository(session).create(UserCreate(name=name))
            await session.commit()
        async with (
            serve(site.app()) as site_url,
            serve(create_app(settings)) as base,
            phone_page(browser) as page,
        ):
            await page.goto(base)
            await fits_phone(page, "01-landing")
            await page.get_by_role("link", name="Sign in with your API token").click()

            await page.get_by_label("API token").fill("amb_wrong")
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.get_by_role("alert")).to_contain_text("not valid")
            await page.get_by_label("API token").fill(token)
            await page.get_by_role("button", name="Sign in").click()
            await expect(page).to_have_url(f"{base}/app")
            await expect(page.locator("header")).to_contain_text(name)

            # Settings: a bad time is refused with the field named by its label, nothing saved.
            await page.get_by_role("link", name="Settings").click()
            await page.get_by_label("Briefing prepared at").fill("25:99")
            await page.get_by_role("button", name="Save settings").click()
            await expect(page.get_by_role("alert")).to_have_text(
                "Briefing prepared at: must be a time as HH:MM (24-hour), e.g. 06:00"
            )
            await page.get_by_label("Time zone").fill("Europe/Berlin")
            await page.get_by_label("Briefing prepared at").fill("05:30")
            await page.get_by_role("button", name="Save settings").click()
            await expect(page.get_by_role("status")).to_contain_text("Settings saved")
            await page.locator("#type-0").select_option("inbox")
            await page.get_by_role("button", name="Save push channels").click()
            await expect(page.get_by_role("status")).to_contain_text("Push channels saved")
            await page.get_by_label("Look every (minutes)").fill("20")
            await page.locator("#digest input[name=enabled]").check()
            await page.get_by_role("button", name="Save digest").click()
            await expect(page.get_by_role("status")).to_contain_text("Assistant digest on")
            await expect(page.get_by_label("Look every (minutes)")).to_have_value("20")
            await fits_phone(page, "02-settings")
            async with deps.db.session() as session:
                user = await UserRepository(session).get(name)
                assert user is not None
                assert user.timezone == "Europe/Berlin" and user.briefing_prepare_at == "05:30"
                assert [c["type"] for c in user.push_config["channels"]] == ["inbox"]

            # A web monitor from the form, then steered from its card.
            await page.get_by_role("link", name="Tasks & events").click()
            await page.get_by_label("Pages (one URL per line)").fill(f"{site_url}/news")
            await page.get_by_label("Keywords", exact=False).fill("outage")
            await page.get_by_label("Every (minutes)").fill("5")
            await page.get_by_label("Name (optional)").fill("news")
            await page.get_by_role("button", name="Create monitor").click()
            task_id = f"web-monitor/{name}/news"
            await expect(page.get_by_role("status")).to_contain_text(task_id)
            card = page.locator(f'li.card[data-task="{task_id}"]')
            await expect(card).to_contain_text("active")
            await fits_phone(page, "03-tasks")

            # An event recorded while the page is open appears without a reload.
            await page.evaluate("window.__stillHere = true")
            await expect(page.locator("#live")).to_be_visible()
            async with deps.db.session() as session:
                await EventRepository(session).add(
                    "watch.hit",
                    user=name,
                    task=task_id,
                    payload={"url": f"{site_url}/news"},
                    idempotency_key=unique("live"),
                )
                await session.commit()
            # Filtered by its text, not taken as the first: the digest this user turned on above
            # may post its own event at the same moment (it runs on the clock's 20-minute marks).
            fresh = page.locator("#events li.fresh").filter(has_text="keyword found")
            await expect(fresh.first).to_contain_text(task_id)
            # Its time and its name apart, as the page's own list says them ("…:38 keyword").
            assert re.search(r"\d\d:\d\d:\d\d keyword found", await fresh.first.inner_text())
            assert await page.evaluate("window.__stillHere === true")

            await card.get_by_role("button", name="pause").click()
            await expect(page.get_by_role("status")).to_contain_text("is paused")
            await expect(card).to_contain_text("paused")
            await card.get_by_role("link", name=task_id).click()
            await expect(page.locator("main")).to_contain_text("check_interval_minutes")
            await fits_phone(page, "04-task")

            # The chat box: a read-only tool runs at once; a destructive one waits for a yes.
            await page.get_by_role("link", name="Tasks & events").click()
            llm.script(ToolCalls([("list_tasks", {})]), Content("You have one paused monitor."))
            await page.get_by_label("Message").fill("我有哪些任务？")
            await page.get_by_role("button", name="Send").click()
            log = page.locator("#chat-log")
            await expect(log).to_contain_text("← list_tasks ok")
            await expect(log).to_contain_text("You have one paused monitor.")
            llm.script(ToolCalls([("delete_task", {"task_id": task_id})]), Content("Deleted."))
            await page.get_by_label("Message").fill("delete it")
            await page.get_by_role("button", name="Send").click()
            await expect(page.locator("#chat-confirm")).to_contain_text("delete_task")
            await fits_phone(page, "05-chat-confirm")
            await page.get_by_role("button", name="Run them").click()
            await expect(log).to_contain_text("← delete_task ok")
            await expect(log).to_contain_text("Deleted.")


async def test_pages_need_a_signed_in_user_and_refuse_cross_site_posts(
    deps: WorkerDeps,
) -> None:
    async with serve(create_app(deps.settings)) as base:
        async with http_client(base) as http:
            response = await http.get("/app")
            assert response.status_code == 303 and response.headers["location"] == "/signin"
            forged = await http.post(
                "/app/tasks",
                data={"urls": "https://example.com"},
                headers={"origin": "https://evil.example"},
            )
            assert forged.status_code == 403
            assert (await http.get("/static/app.css")).status_code == 200
            assert (await http.get("/static/../settings.py")).status_code == 404


async def test_registration_page_is_open_only_behind_the_setting_and_makes_members(
    deps: WorkerDeps,
) -> None:
    async with (
        serve(create_app(deps.settings)) as base,
        # A browser's form post names the page's origin.
        http_client(base, headers={"origin": base}) as http,
    ):
        assert (await http.get("/register")).status_code == 404
        closed = await http.post("/register", data={"name": "eve"})
        assert closed.status_code == 404
    name = unique("reg")
    settings = deps.settings.model_copy(update={"open_registration": True})
    async with (
        serve(create_app(settings)) as base,
        http_client(base, headers={"origin": base}) as http,
    ):
        made = await http.post("/register", data={"name": name, "email": "r@example.com"})
        assert made.status_code == 200 and "amb_" in made.text
        assert "ambient_token" in made.headers["set-cookie"]
        assert "secure" not in made.headers["set-cookie"].lower()  # plain HTTP on loopback
        assert (await http.get("/app")).status_code == 200  # signed in by the cookie
        taken = await http.post("/register", data={"name": name})
        assert taken.status_code == 422 and "is taken" in taken.text
        bad = await http.post("/register", data={"name": "Not A Name"})
        assert bad.status_code == 422 and "name" in bad.text
    # Behind a TLS proxy (AMBIENT_PUBLIC_URL https), the request reaches the API as http:
    # the cookie holding the token is Secure all the same.
    proxied = settings.model_copy(update={"public_url": "https://ops.example.com"})
    async with (
        serve(create_app(proxied)) as base,
        http_client(base, headers={"origin": base}) as http,
    ):
        made = await http.post("/register", data={"name": unique("tls"), "email": "t@ex.com"})
        assert made.status_code == 200 and "secure" in made.headers["set-cookie"].lower()
    async with deps.db.session() as session:
        user = await UserRepository(session).get(name)
    assert user is not None and user.role == "member"


async def test_the_dashboard_inbox_lets_every_unread_message_be_read_and_marked(
    settings: Settings, db: Database
) -> None:
    """25 unread messages: the dashboard showed the newest 20 and no way to the rest; once
    those were marked read, the 5 older unread ones were on no page and could never be marked.
    Each page now links to the older messages, and marking one read comes back to its page."""
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    name = unique("postbox")
    async with db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name, language="en"))
        rows = [
            InboxMessage(user=name, kind="watch", title=f"message {n:02d}", body="b")
            for n in range(25)
        ]
        session.add_all(rows)
        await session.commit()
        every = {row.id for row in rows}
    marked: set[int] = set()
    async with signed_in(settings, token, referer="/app") as http:
        address: str | None = "/app"
        while address is not None:
            page = (await http.get(address)).text
            inbox = page.partition("<h2>Inbox</h2>")[2].partition("</section>")[0]
            for form in re.findall(
                r'<form method="post" action="/app/inbox/read".*?</form>', inbox, re.S
            ):
                hidden = re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', form)
                fields = {key: html.unescape(value) for key, value in hidden}
                answer = await http.post("/app/inbox/read", data=fields)
                # Back to the page the message was on, not to the newest messages.
                assert answer.status_code == 303 and answer.headers["location"] == address
                marked.add(int(fields["message_id"]))
            older = re.search(r'href="([^"]+)" rel="next" id="inbox-older"', inbox)
            address = html.unescape(older[1]) if older else None
        shown = (await http.get("/app")).text
    assert marked == every
    async with db.session() as session:
        assert not await InboxRepository(session).list(name, unread_only=True)
    assert 'class="card unread"' not in shown
