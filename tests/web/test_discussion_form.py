"""The discussion forms: refusals name the field in the page's language."""

from __future__ import annotations

import re

import httpx

from ambient.settings import Settings
from ambient.storage import Database
from tests.web.test_refusals_language import refusal, zh_pages


def message_id(page: httpx.Response) -> str:
    found = re.search(r'name="message_id" value="([^"]+)"', page.text)
    assert found is not None, page.text[:2000]
    return found[1]


async def test_a_blank_message_or_topic_is_refused_by_its_label_in_chinese(
    settings: Settings, db: Database
) -> None:
    async with zh_pages(settings, db, "hua", "/app/discussions") as (http, _):
        # Spaces pass the browser's own check of a required field.
        said = await refusal(http, "/app/discussions/post", {"topic": "周报", "content": "  "})
        assert said == "消息: 不能是空白：请写点什么"
        said = await refusal(http, "/app/discussions/post", {"topic": "  ", "content": "上线了"})
        assert said == "主题: 须为 1-300 个字符"
        listing = await http.get("/app/discussions")
        assert "周报" not in listing.text and "上线了" not in listing.text
