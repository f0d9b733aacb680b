"""A link or form a page cannot take (edited by hand, or out of range) is answered with a page
in the user's language, not the API's JSON."""

from __future__ import annotations

import html
import re

import httpx

from ambient.settings import Settings
from ambient.storage import Database
from tests.web.test_refusals_language import zh_pages


def shown(page: httpx.Response) -> str:
    assert page.headers["content-type"].startswith("text/html"), page.text[:500]
    found = re.search(r'<p class="error" role="alert">(.*?)</p>', page.text, re.S)
    assert found is not None, page.text[:2000]
    return html.unescape(found[1])


async def test_a_link_or_form_a_page_cannot_take_is_said_on_a_page_in_chinese(
    settings: Settings, db: Database
) -> None:
    async with zh_pages(settings, db, "lu", "/app/settings") as (http, _):
        page = await http.get("/app/briefings", params={"date": "2026-11-26" * 5})
        assert page.status_code == 422
        assert shown(page) == "这个链接或表单里有页面无法接受的值：date: 不能超过 40 个字符"
        assert "<h1>无法处理</h1>" in page.text and 'href="/app"' in page.text
        gone = await http.post("/app/xiaozhi/endpoints/remove", data={"endpoint": "9" * 30})
        assert gone.status_code == 422
        assert shown(gone) == "这个链接或表单里有页面无法接受的值：数字超出范围"
