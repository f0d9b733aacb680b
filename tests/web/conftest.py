"""One headless chromium per test process, shared by the page tests of that process."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from playwright.async_api import Browser, async_playwright, expect

from tests.support.servers import HANG
from tests.web.test_pages_browser import _chromium

# expect(...) polls its condition up to this long (Playwright's 5 s by default): a guard
# against a page that never gets there, not a claim on how fast it does.
expect.set_options(timeout=HANG * 1000)


@pytest_asyncio.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Started by the first page test a process runs, closed at the end of its session.

    Each test opens its own context (cookies, storage, locale, its own page), which is what
    keeps the tests apart; the browser process itself holds nothing of theirs. Starting the
    Playwright driver and chromium cost 11–16 s a time on the loaded 2-core machine, against
    ~2 s for a context and its page (docs/benchmarks.md).
    """
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=_chromium(), args=["--no-sandbox"], headless=True
        )
        yield launched
        await launched.close()
