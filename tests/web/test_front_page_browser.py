"""The front page's status table in headless chromium: what each part answers, in words of
the page's language (it showed the report's field names and True/False/None)."""

from __future__ import annotations

from playwright.async_api import Browser, Page
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from api.app import create_app
from tests.support.servers import free_port, serve
from tests.web.test_pages_browser import fits_phone, phone_page


async def _status_table(page: Page) -> dict[str, str]:
    table = page.locator("table.kv")
    names = await table.locator("th").all_inner_texts()
    return dict(zip(names, await table.locator("td").all_inner_texts(), strict=True))


async def test_the_front_page_says_in_english_what_answers_and_that_no_model_is_used(
    browser: Browser, dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # Temporal answers (no worker polls our queue); the model is off: the offline rules.
    settings = deps.settings.model_copy(
        update={"temporal_address": dev_env.client.service_client.config.target_host}
    )
    async with serve(create_app(settings)) as base, phone_page(browser, "en-US") as page:
        await page.goto(base)
        assert await _status_table(page) == {
            "Temporal (runs the tasks)": "reachable",
            "Workers polling": "none",
            "Database (sqlite)": "reachable",
            "Language model": "none: offline rules",
        }
        await fits_phone(page, "front-page-en")


async def test_the_front_page_says_in_chinese_what_does_not_answer(
    browser: Browser, deps: WorkerDeps
) -> None:
    # Nothing listens at the settings' Temporal address, nor at the remote model's.
    settings = deps.settings.model_copy(
        update={
            "openai_api_key": SecretStr("sk-test"),
            "openai_base_url": f"http://127.0.0.1:{free_port()}/v1",
        }
    )
    async with serve(create_app(settings)) as base, phone_page(browser, "zh-CN") as page:
        await page.goto(base)
        assert await _status_table(page) == {
            "Temporal（运行任务）": "不可达",
            "正在轮询的 worker": "无",
            "数据库（sqlite）": "可达",
            "语言模型": "远程模型，不可达",
        }
        await fits_phone(page, "front-page-zh")
