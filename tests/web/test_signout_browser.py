"""Signing out in a shared browser: Back does not show the signed-in pages again."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from ambient.deps import WorkerDeps
from ambient.domain.users import UserCreate
from ambient.storage.users import UserRepository
from api.app import create_app
from tests.conftest import unique
from tests.support.servers import serve
from tests.web.test_pages_browser import phone_page


async def test_back_after_signing_out_does_not_show_the_settings_again(
    browser: Browser, deps: WorkerDeps
) -> None:
    name = unique("leaver")
    email = f"{name}@example.com"
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name, email=email))
        await session.commit()
    async with serve(create_app(deps.settings)) as base, phone_page(browser) as page:
        await page.goto(f"{base}/signin")
        await page.get_by_label("API token").fill(token)
        await page.get_by_role("button", name="Sign in").click()
        await page.goto(f"{base}/app/settings")
        await expect(page.get_by_label("Email")).to_have_value(email)
        await page.get_by_role("button", name="Sign out").click()
        await page.wait_for_url(f"{base}/")
        await page.go_back()
        # Asked of the server again: signed out, it is the sign-in form.
        await expect(page.get_by_label("API token")).to_be_visible()
        assert email not in await page.content()
