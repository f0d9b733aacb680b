"""A message's title is text: the robots' markdown heading shows it as written, on one line."""

from __future__ import annotations

import httpx

from ambient.clients.notify.dingtalk import DingTalkChannel
from ambient.clients.notify.wecom import WeComChannel
from ambient.domain.notify import Message
from ambient.render import markdown_html
from tests.notify.standins import PushEndpoints
from tests.notify.test_channels import SECRETS

# A title made of someone's words (a watch's name, a discussion's topic).
TITLE = "磁盘告警 [详情](http://evil.example/x) **全体**\n# 立即回滚"


async def test_a_title_with_markup_and_a_line_break_is_shown_as_text_by_both_robots(
    endpoints: tuple[PushEndpoints, str],
    http: httpx.AsyncClient,
) -> None:
    state, base = endpoints
    message = Message(title=TITLE, body="disk at 91%")
    await DingTalkChannel(http, SECRETS, base).send("alice", message, "secret:ding")
    await WeComChannel(http, SECRETS, base).send(
        "alice", message, "secret:ops-bot", idempotency_key="k1"
    )
    (_, ding), (_, wecom) = state.received
    for markdown in (ding["markdown"]["text"], wecom["markdown"]["content"]):
        shown = markdown_html(markdown)
        assert "<a " not in shown and "<strong>" not in shown and "<h1>" not in shown, shown
        assert "<h3>磁盘告警 [详情](http://evil.example/x) **全体** # 立即回滚</h3>" in shown, shown
        assert "disk at 91%" in shown
