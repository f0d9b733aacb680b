"""The discussion forms: refusals name the field in the page's language, and a form sent
before (the browser's Back) is not stuck refusing every new message."""

from __future__ import annotations

import html
import re

import httpx

from ambient.deps import WorkerDeps
from ambient.settings import Settings
from ambient.storage import Database
from tests.conftest import unique
from tests.discussions.test_run_lives import _plan_posted_by_run
from tests.remediation.support import run_row
from tests.web.test_refusals_language import refusal, zh_pages
from tests.web.test_remediation_refusals_language import said


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


async def test_a_tag_the_rule_refuses_is_said_by_its_label_in_chinese(
    settings: Settings, db: Database
) -> None:
    """It was said in English, named "tags" ("tags: tag '跟 进': 1-40 letters, ...")."""
    async with zh_pages(settings, db, "biao", "/app/discussions") as (http, _):
        sent = {"topic": "周报", "content": "上线了", "tags": "紧急，跟 进"}
        said = await refusal(http, "/app/discussions/post", sent)
        assert said == "标签: 标签 '跟 进'：须为 1-40 个字母、数字、'_'、'.'、':' 或 '-'"


async def test_a_form_sent_before_posts_a_new_message_after_saying_so(
    settings: Settings, db: Database
) -> None:
    async with zh_pages(settings, db, "tao", "/app/discussions") as (http, _):
        form = await http.get("/app/discussions")
        sent = {"topic": "上线", "message_id": message_id(form)}
        first = await http.post("/app/discussions/post", data=sent | {"content": "开始上线"})
        assert first.status_code == 303
        # Back to the page as it was (the same form), and a new message on it.
        refused = await http.post("/app/discussions/post", data=sent | {"content": "上线完成"})
        assert refused.status_code == 422
        notice = re.search(r'<p class="notice" role="status">(.*?)</p>', refused.text, re.S)
        assert notice is not None
        said = html.unescape(notice[1])
        assert said == "这个表单已经发送过另一条消息；下面是新的表单：请再发送一次。"
        again = message_id(refused)
        assert again != sent["message_id"]
        posted = await http.post(
            "/app/discussions/post", data=sent | {"content": "上线完成", "message_id": again}
        )
        assert posted.status_code == 303
        thread = await http.get(posted.headers["location"])
        assert re.findall(r"<pre>([^<]*)</pre>", thread.text) == ["开始上线", "上线完成"]


async def test_a_refused_reply_to_a_discussion_that_is_not_there_says_so(
    settings: Settings, db: Database
) -> None:
    """A reply the form refuses (too long), sent to a discussion that is gone or was never
    one of the person's (an edited hidden field): the page answered 500."""
    async with zh_pages(settings, db, "qiu", "/app/discussions") as (http, _):
        for gone in ("999999", "abc"):
            sent = {"discussion_id": gone, "content": "x" * 20_001, "message_id": "m1"}
            answer = await http.post("/app/discussions/post", data=sent)
            assert answer.status_code == 303, (answer.status_code, answer.text[:300])
            assert answer.headers["location"].startswith("/app/discussions?"), answer.headers
            shown = await http.get(answer.headers["location"])
            notice = re.search(r'<p class="notice" role="status">(.*?)</p>', shown.text, re.S)
            assert notice is not None and "讨论" in html.unescape(notice[1]), shown.text[:2000]


async def test_a_reply_that_does_not_act_on_its_remediation_says_why_in_chinese(
    deps: WorkerDeps,
) -> None:
    """A reply tagged approve that did not act said "已发布：" and the service's English reason,
    naming MCP tools ("send_message does not act: reply_message in ... does")."""
    name = unique("jin")
    async with zh_pages(deps.settings, deps.db, name, "/app/discussions") as (http, _):
        rid = f"remediation/{unique('fp')}"
        async with deps.db.session() as session:
            session.add(run_row(rid, name, "run-1", state="waiting_approval"))
            await session.commit()
        # Tagged auto_reply, a reply looks machine-inferred (as one within 2 s of the run's
        # plan does, but that is timed: a loaded machine took longer to post it).
        theirs = await _plan_posted_by_run(deps, rid, "run-1", "plan: restart")
        sent = {"discussion_id": theirs, "content": "批准", "tags": "approve, auto_reply"}
        fast = await http.post("/app/discussions/post", data=sent)
        assert said(fast) == (
            "已发布：这条回复看起来是机器推断的（来源不是本人、带 auto_reply 标签，"
            "或在它所回复的消息之后不到 2 秒发出），不会执行"
        )
        sent = {"topic": "Remediation of checkout", "content": "批准", "tags": "approve"}
        on_topic = await http.post("/app/discussions/post", data=sent)
        assert said(on_topic) == f"已发布：在话题上发送不会执行：请在讨论 {theirs} 里回复"
