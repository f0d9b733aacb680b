"""Pages with the database down say so on a page in the browser's language, not in JSON."""

from __future__ import annotations

import asyncio
import tempfile
from urllib.parse import parse_qs, urlparse

from playwright.async_api import Browser, expect

from ambient.domain.users import UserCreate
from ambient.settings import Settings
from ambient.sharing import ShareLinkRepository
from ambient.storage import Database
from ambient.storage.migrate import upgrade_async
from ambient.storage.users import UserRepository
from api.app import create_app
from tests.support.servers import free_port, serve, start_postgres
from tests.web.test_pages_browser import phone_page

DOWN = "保存任务和设置的数据库现在连不上，这一步没有做成。请稍后再试。"


async def test_pages_with_the_database_down_say_so_on_a_page_in_the_browsers_language(
    browser: Browser, settings: Settings
) -> None:
    with tempfile.TemporaryDirectory() as folder:  # short: a socket path has a length limit
        server = await asyncio.to_thread(start_postgres, folder)
        try:
            socket_dir = parse_qs(urlparse(server.get_uri()).query)["host"][0]
            url = f"postgresql+asyncpg://postgres@/postgres?host={socket_dir}"
            await upgrade_async(url)
            database = Database(url)
            try:
                async with database.session() as session:
                    _, token = await UserRepository(session).create(UserCreate(name="wen"))
                    secret = settings.secret_key.get_secret_value()
                    shares = ShareLinkRepository(session, secret)
                    _, shared = await shares.create("wen", "report", "周报", "# 周报", days=7)
                    await session.commit()
            finally:
                await database.close()
            app = create_app(
                settings.model_copy(
                    update={"database_url": url, "temporal_address": f"127.0.0.1:{free_port()}"}
                )
            )
            async with serve(app) as base, phone_page(browser, locale="zh-CN") as page:
                await page.context.add_cookies(
                    [{"name": "ambient_token", "value": token, "url": base}]
                )
                await page.goto(f"{base}/app/settings")
                await expect(page.get_by_label("邮箱")).to_be_visible()
                await asyncio.to_thread(server.cleanup)  # PostgreSQL stops under the API
                for path in ("/app/settings", "/app"):  # the pooled connection, then a new one
                    shown = await page.goto(f"{base}{path}")
                    assert shown is not None and shown.status == 503, path
                    await expect(page.locator("html")).to_have_attribute("lang", "zh")
                    await expect(page.get_by_role("alert")).to_have_text(DOWN)
                # A form posted while it is down: the same page, nothing done.
                await page.goto(f"{base}/signin")
                await page.get_by_label("API 令牌").fill(token)
                await page.get_by_role("button").click()
                await expect(page.get_by_role("alert")).to_have_text(DOWN)
                # A shared report's reader, not signed in, is told the same on a page.
                await page.context.clear_cookies()
                shown = await page.goto(f"{base}/share/{shared}")
                assert shown is not None and shown.status == 503
                await expect(page.get_by_role("alert")).to_have_text(DOWN)
        finally:
            await asyncio.to_thread(server.cleanup)
