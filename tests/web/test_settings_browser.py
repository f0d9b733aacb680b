"""The settings page in headless chromium: what the user empties is cleared."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from ambient.deps import WorkerDeps
from ambient.domain.users import UserCreate
from ambient.storage.repositories import UserRepository, user_public
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
