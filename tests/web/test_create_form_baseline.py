"""The dashboard's create form says, in the reader's language, each page the new monitor's
first check could not read and why, as MCP, the API and the CLI do with its baseline: it said
only "已创建 …" over a dead URL or a missing page."""

from __future__ import annotations

from urllib.parse import unquote

import httpx

from ambient.domain.users import Language
from ambient.watches.service import TaskService
from api.i18n import Words
from api.routers.app_pages import baseline_said
from tests.support.servers import free_port
from tests.watches.site import article
from tests.watches.test_lifecycle import GatedSite, gated  # noqa: F401  (fixture)
from tests.watches.test_lifecycle_service import service  # noqa: F401  (fixture)
from tests.watches.test_workflows import USER, loopback_deps  # noqa: F401  (fixture)
from tests.web.test_task_refusals_language import zh_dashboard  # noqa: F401  (fixture)


async def test_a_monitor_created_on_the_form_says_each_page_its_first_check_could_not_read(
    service: TaskService,  # noqa: F811
    zh_dashboard: httpx.AsyncClient,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    state, base = gated
    state.pages["/a"] = article("A page.")
    dead = f"http://127.0.0.1:{free_port()}/gone"
    form = {"urls": f"{base}/a\n{base}/missing\n{dead}", "keywords": "", "interval": "30"}
    answer = await zh_dashboard.post("/app/tasks", data=form)
    assert answer.status_code == 303, answer.text
    said = unquote(answer.headers["location"].partition("msg=")[2]).split("；")
    task_id = said[0].removeprefix("已创建 ")
    try:
        assert said[0] == f"已创建 {task_id}" and task_id
        assert [part.partition("：")[0] for part in said[1:]] == [f"{base}/missing", dead], said
        assert said[1].startswith(f"{base}/missing：失败："), said
        assert "404" in said[1], said
        assert said[2].startswith(f"{dead}：失败："), said
        # The same form again: the monitor exists, and its pages' failures are said again.
        again = await zh_dashboard.post("/app/tasks", data=form)
        said_again = unquote(again.headers["location"].partition("msg=")[2]).split("；")
        assert said_again[0] == f"已存在：{task_id}", said_again
        assert [part.partition("：")[0] for part in said_again[1:]] == [f"{base}/missing", dead]
    finally:
        await service.delete(USER, task_id)


async def test_a_monitor_whose_pages_all_answered_is_said_created_alone(
    service: TaskService,  # noqa: F811
    zh_dashboard: httpx.AsyncClient,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    state, base = gated
    state.pages["/a"] = article("A page.")
    form = {"urls": f"{base}/a", "keywords": "", "interval": "30"}
    answer = await zh_dashboard.post("/app/tasks", data=form)
    said = unquote(answer.headers["location"].partition("msg=")[2])
    task_id = said.removeprefix("已创建 ")
    await service.delete(USER, task_id)
    assert said == f"已创建 {task_id}" and "；" not in said


def test_a_first_check_not_over_when_the_form_answers_is_said() -> None:
    """The create answered before the first check ended (no baseline): the form says so
    rather than nothing, and a page that check had not read yet is said not checked."""
    zh = Words(Language.ZH)
    assert baseline_said(None, zh) == ["首次检查尚未完成：任务页面会显示检查结果"]
    pages = {"urls": {"https://a.example/": {"outcome": "baseline"}, "https://b.example/": {}}}
    assert baseline_said(pages, zh) == ["https://b.example/：尚未检查"]
