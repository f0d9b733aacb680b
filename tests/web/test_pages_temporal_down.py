"""Pages with Temporal down say so on a page, in the user's language, and change nothing."""

from __future__ import annotations

import asyncio

from ambient.briefing.models import BriefingContent
from ambient.domain.users import Language, UserCreate
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.models import Briefing
from ambient.storage.users import UserRepository
from api.routers.app_pages import lines_of
from tests.conftest import PRODUCT_QUERY_TIMEOUT
from tests.support.pages import signed_in
from tests.support.servers import free_port

DOWN = "运行任务的 Temporal 服务现在连不上，这一步没有做成。请稍后再试。"


async def test_pages_that_need_temporal_say_it_is_down_on_a_page_in_the_users_language(
    settings: Settings, db: Database
) -> None:
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with db.session() as session:
        _, token = await UserRepository(session).create(
            UserCreate(name="mei", language=Language.ZH)
        )
        await session.commit()
    async with signed_in(settings, token) as http:
        form = {"referer": str(http.base_url.join("/app"))}
        answers = {
            "create monitor": await http.post(
                "/app/tasks", data={"urls": "https://example.com/news"}, headers=form
            ),
            "task action": await http.post(
                "/app/tasks/action",
                data={"task_id": "web-monitor/mei/news", "action": "pause"},
                headers=form,
            ),
            "task page": await http.get("/app/task", params={"id": "web-monitor/mei/news"}),
            "prepare briefing": await http.post(
                "/app/briefings/action", data={"action": "regenerate"}, headers=form
            ),
            "digest": await http.post(
                "/app/digest", data={"enabled": "on", "every_minutes": "15"}, headers=form
            ),
        }
    for what, answer in answers.items():
        # A page (not the API's JSON), with its navigation, saying what is down in Chinese.
        assert answer.status_code == 503, (what, answer.status_code)
        assert answer.headers["content-type"].startswith("text/html"), (what, answer.text)
        assert DOWN in answer.text and '<html lang="zh">' in answer.text, (what, answer.text)
        assert 'href="/app/settings"' in answer.text and "mei" in answer.text, what


async def test_the_briefing_page_shows_stored_briefings_with_temporal_down(
    settings: Settings, db: Database
) -> None:
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name="hua"))
        # Prepared this morning, not yet given: only the workflow knows if it has been since.
        session.add(_briefing("hua", "# report"))
        await session.commit()
    async with signed_in(settings, token) as http:
        page = await http.get("/app/briefings")
        day = await http.get("/app/briefings", params={"date": "2026-11-26"})
    for shown in (page, day):
        assert shown.status_code == 200, shown.text
        assert "一切正常" in shown.text and 'id="briefing"' in shown.text


async def test_the_monitor_form_reads_a_page_a_line_and_keywords_between_chinese_commas(
    settings: Settings, db: Database
) -> None:
    # With Temporal down, a form whose config passed says so; one refused names its field.
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with db.session() as session:
        _, token = await UserRepository(session).create(
            UserCreate(name="lan", language=Language.ZH)
        )
        await session.commit()
    async with signed_in(settings, token) as http:
        form = {"referer": str(http.base_url.join("/app"))}
        # "One URL per line": a comma in a query was cut into two pages, the second refused.
        prices = await http.post(
            "/app/tasks",
            data={"urls": "https://example.com/prices?ids=bitcoin,ethereum"},
            headers=form,
        )
        # "逗号分隔" as a Chinese user types it: "，" and "、" separate keywords as "," does
        # (they were one keyword, "数据库，故障", which no page says).
        keywords = await http.post(
            "/app/tasks",
            data={"urls": "https://example.com/news", "keywords": "数据库，故障、re:["},
            headers=form,
        )
        # A regular expression's own commas are not keyword separators (re:\d{1,3}).
        pattern = await http.post(
            "/app/tasks",
            data={"urls": "https://example.com/news", "keywords": "AI，re:v\\d{1,3}\n故障"},
            headers=form,
        )
    assert lines_of("AI，re:v\\d{1,3}, x\n故障", ",，、") == ["AI", "re:v\\d{1,3}, x", "故障"]
    assert pattern.status_code == 503 and DOWN in pattern.text, pattern.text
    assert prices.status_code == 503 and DOWN in prices.text, prices.text
    assert keywords.status_code == 422, keywords.text
    assert "未创建：关键词，第 3 行: &#39;[&#39; 不是有效的正则表达式" in keywords.text


async def test_the_dashboard_with_temporal_hung_says_tasks_are_unavailable_not_that_none_exist(
    settings: Settings, db: Database, product_query_budget: None
) -> None:
    """A Temporal that takes connections and answers nothing (a hung server, not a down one)
    held the dashboard blank for 30 s, which then said "unavailable" and "No tasks yet."."""
    held: list[asyncio.StreamWriter] = []

    async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # kept open, never answered

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{port}"})
    async with db.session() as session:
        _, token = await UserRepository(session).create(
            UserCreate(name="ning", language=Language.ZH)
        )
        await session.commit()
    try:
        async with signed_in(settings, token) as http:
            # Within the read's budget and well before the 30 s it took.
            shown = await http.get("/app", timeout=4 * PRODUCT_QUERY_TIMEOUT.total_seconds())
    finally:
        server.close()
        for writer in held:
            writer.close()
    assert shown.status_code == 200, shown.text
    assert "任务暂时不可用" in shown.text, shown.text
    assert "还没有任务" not in shown.text


async def test_the_briefing_page_shows_its_log_report_rendered_its_html_escaped(
    settings: Settings, db: Database
) -> None:
    """The report was shown as its markdown source (`**发生了什么**`, `|---|`, `<\\*>`)."""
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name="yu"))
        report = (
            "**发生了什么**\n\n| 级别 | 次数 |\n|---|---|\n| ERROR | 3 |\n\n"
            "超时 <\\*> <script>alert(1)</script>"
        )
        session.add(_briefing("yu", report))
        await session.commit()
    async with signed_in(settings, token) as http:
        day = await http.get("/app/briefings", params={"date": "2026-11-26"})
    assert day.status_code == 200, day.text
    report = day.text.split('<div class="md">', 1)[1].split("</div>", 1)[0]
    assert "<strong>发生了什么</strong>" in report and "<td>ERROR</td>" in report, report
    assert "超时 &lt;*&gt;" in report and "&lt;script&gt;" in report, report
    assert "**" not in report and "|---|" not in report and "<script>" not in report


def _briefing(user: str, report: str) -> Briefing:
    """``user``'s briefing of 2026-11-26, prepared (offline), its log report ``report``."""
    content = BriefingContent(
        headline="一切正常",
        spoken_text="昨天一切正常。",
        date="2026-11-26",
        generated_by="offline",
        spoken_segments=["昨天一切正常。"],
    )
    return Briefing(
        user=user,
        date="2026-11-26",
        content=content.model_dump(mode="json"),
        report_markdown=report,
    )
