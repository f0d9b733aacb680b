"""A link or form a page cannot take (edited by hand, or out of range) is answered with a page
in the user's language, not the API's JSON."""

from __future__ import annotations

import html
import re

import httpx

from ambient.bridge.endpoints import EndpointCreate, Endpoints
from ambient.settings import Settings
from ambient.storage import Database
from api.app import create_app
from tests.conftest import unique
from tests.support.api_worker import api_client
from tests.support.servers import serve
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


async def test_an_endpoint_number_in_other_digits_removes_nothing(
    settings: Settings, db: Database
) -> None:
    # int() reads "１", "١" and "1_0" as numbers: a hand-edited field removed an endpoint.
    settings = settings.model_copy(update={"fetch_allow_cidrs": ["127.0.0.1/32"]})
    name = unique("le")
    async with zh_pages(settings, db, name, "/app/settings") as (http, _):
        async with db.session() as session:
            added = await Endpoints.of(session, settings).add(
                None, EndpointCreate(user=name, url="ws://127.0.0.1:9/mcp/?token=t")
            )
        digits = str(added.id)
        fullwidth = "".join(chr(0xFF10 + int(d)) for d in digits)
        arabic_indic = "".join(chr(0x0660 + int(d)) for d in digits)
        for odd in (fullwidth, arabic_indic, f" {digits} "):
            await http.post("/app/xiaozhi/endpoints/remove", data={"endpoint": odd})
        async with db.session() as session:
            left = await Endpoints.of(session, settings).list(None)
        assert added.id in [e.id for e in left]


async def test_a_discussion_link_with_an_overlong_id_says_the_limit_in_chinese(
    settings: Settings, db: Database
) -> None:
    async with zh_pages(settings, db, unique("ld"), "/app/discussions") as (http, _):
        answer = await http.get("/app/discussion", params={"id": "d" * 1000})
        assert answer.status_code == 303, answer.text[:300]
        page = await http.get(answer.headers["location"])
    notice = re.search(r'<p class="notice" role="status">(.*?)</p>', page.text, re.S)
    assert notice is not None, page.text[:2000]
    assert html.unescape(notice[1]) == "讨论编号: 不能超过 64 个字符"


async def test_a_task_interval_in_other_digits_is_refused_by_its_label(
    settings: Settings, db: Database
) -> None:
    # float() reads "１０", "1_0" and "1e1" as 10: the form's interval took them as typed
    # numbers (the endpoint number takes ASCII digits only). What is wrong is said in the
    # page's language, as for an interval out of range, and so is a number typed in words.
    async with zh_pages(settings, db, unique("iv"), "/app") as (http, _):
        for odd in ("１０", "1_0", "1e1", "٣", "十", "half an hour"):
            form = {"urls": "https://example.com/", "interval": odd}
            answer = await http.post("/app/tasks", data=form)
            assert answer.status_code == 422, (odd, answer.status_code)
            notice = re.search(r'<p class="(?:notice|error)" role="\w+">(.*?)</p>', answer.text)
            assert notice is not None, answer.text[:1000]
            assert html.unescape(notice[1]) == "未创建：间隔（分钟）: 应为数字", notice[1]


async def test_an_endpoint_removed_from_a_stale_page_is_not_named_by_a_number_never_shown(
    settings: Settings, db: Database
) -> None:
    # Removed in another tab, then Remove again: "你的接入点中没有 1。", a number the page never
    # showed (its cards name the masked URL).
    settings = settings.model_copy(update={"fetch_allow_cidrs": ["127.0.0.1/32"]})
    name = unique("lo")
    async with zh_pages(settings, db, name, "/app/settings") as (http, _):
        async with db.session() as session:
            added = await Endpoints.of(session, settings).add(
                None, EndpointCreate(user=name, url="ws://127.0.0.1:9/mcp/?token=t")
            )
        form = {"endpoint": str(added.id)}
        await http.post("/app/xiaozhi/endpoints/remove", data=form)
        page = await http.post("/app/xiaozhi/endpoints/remove", data=form, follow_redirects=True)
    notice = re.search(r'<p class="notice" role="status">(.*?)</p>', page.text, re.S)
    assert notice is not None
    assert html.unescape(notice[1]) == "这个接入点已不在你的名下：可能已在别处删除。"


async def test_a_mistyped_page_under_app_is_said_on_a_page_in_the_users_language(
    settings: Settings, db: Database
) -> None:
    # It answered the API's JSON: "no API path /app/taks; the API's paths are listed at /docs".
    async with zh_pages(settings, db, unique("typo"), "/app") as (http, _):
        for path in ("/app/taks", "/app/task/x/y"):
            page = await http.get(path)
            assert page.status_code == 404, page.text
            assert shown(page) == f"没有页面 {path}；页面从 /app 开始。"
            assert "<h1>没有这个页面</h1>" in page.text and 'href="/app"' in page.text
    # Signed out: the browser's language; a path outside /app is still the API's.
    async with serve(create_app(settings)) as base, api_client(base) as anonymous:
        page = await anonymous.get("/app/taks", headers={"Accept-Language": "en"})
        assert page.status_code == 404
        assert shown(page) == "There is no page /app/taks; the pages start at /app."
        api = await anonymous.get("/apps")
        assert api.json() == {"detail": "no API path /apps; the API's paths are listed at /docs"}


async def test_the_address_a_form_was_answered_at_opens_its_page_not_json(
    settings: Settings, db: Database
) -> None:
    """A refused form (and a new device's token) is shown at the form's POST address: opened
    again (Enter, a new tab, a bookmark), it answered {"detail": "method GET not allowed
    here; this path takes POST"}, in English on a Chinese page."""
    async with zh_pages(settings, db, "lu", "/app") as (http, _):
        for path, page in (
            ("/app/tasks", "/app"),
            ("/app/push", "/app/settings"),
            ("/app/digest", "/app/settings"),
            ("/app/xiaozhi/devices", "/app/settings"),
            ("/app/discussions/post", "/app/discussions"),
            ("/app/remediation/action", "/app/remediations"),
        ):
            opened = await http.get(path, headers={"accept": "text/html"})
            assert (opened.status_code, opened.headers.get("location")) == (303, page), path
        # The API's own paths still say which methods they take.
        api = await http.delete("/health")
        assert api.status_code == 405 and api.headers["allow"] == "GET, HEAD, OPTIONS"
