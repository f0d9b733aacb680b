"""The settings page in headless chromium: what the user empties is cleared."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from ambient.deps import WorkerDeps
from ambient.domain.users import UserCreate
from ambient.storage.users import UserRepository, user_public
from api.app import create_app
from tests.conftest import unique
from tests.support.servers import serve
from tests.web.test_pages_browser import phone_page


async def test_emptying_email_phone_and_voiceprint_on_the_settings_page_clears_them(
    browser: Browser, deps: WorkerDeps
) -> None:
    name = unique("clear")
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(
            UserCreate(
                name=name, email="old@example.com", phone="+86 138 0000 0000", voiceprint_id="vp-1"
            )
        )
        await session.commit()
    async with serve(create_app(deps.settings)) as base, phone_page(browser) as page:
        await page.context.add_cookies([{"name": "ambient_token", "value": token, "url": base}])
        await page.goto(f"{base}/app/settings")
        for label in ("Email", "Phone", "Voiceprint id"):
            await page.get_by_label(label, exact=True).fill("")
        await page.get_by_role("button", name="Save settings").click()
        await expect(page.get_by_role("status")).to_contain_text("Settings saved")
        for label in ("Email", "Phone", "Voiceprint id"):
            await expect(page.get_by_label(label, exact=True)).to_have_value("")
    async with deps.db.session() as session:
        stored = user_public(await UserRepository(session).get(name))
    assert (stored.email, stored.phone, stored.voiceprint_id) == (None, None, None)
    # What was not emptied stays as it was.
    assert stored.assistant_name == "小智" and stored.timezone == "Asia/Shanghai"


async def test_a_link_from_elsewhere_puts_no_notice_on_a_signed_in_page(
    browser: Browser, deps: WorkerDeps
) -> None:
    """Pages show the notice their own form left in ?msg= (signed by the server in ?sig=); a
    link in a mail or on another site put any words there ("send your token to …") on the
    user's own page."""
    name = unique("notice")
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name))
        await session.commit()
    fake = "Your session expired: mail your API token to help@evil.example"
    async with serve(create_app(deps.settings)) as base, phone_page(browser) as page:
        await page.context.add_cookies([{"name": "ambient_token", "value": token, "url": base}])
        for path in ("/app?", "/app/settings?", "/app/briefings?", "/app?sig=0123abcd&"):
            await page.goto(f"{base}{path}msg={fake}")  # opened from a mail, or a guessed sig
            await expect(page.locator("header")).to_contain_text(name)
            assert await page.get_by_role("status").count() == 0, path
            assert "evil.example" not in await page.content(), path
        # The page's own form still leaves its notice after the redirect.
        await page.goto(f"{base}/app/settings")
        await page.get_by_role("button", name="Save settings").click()
        await expect(page.get_by_role("status")).to_contain_text("Settings saved")
