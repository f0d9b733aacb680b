"""The robots as their published contracts have them (the DingTalk 自定义机器人 and WeCom 群机器人
docs): whom a message @-mentions."""

from __future__ import annotations

import httpx

from ambient.clients.notify.dingtalk import DingTalkChannel
from ambient.domain.notify import Message
from tests.notify.standins import PushEndpoints
from tests.notify.test_channels import SECRETS, endpoints, http  # noqa: F401 - the fixtures

APPROVAL = Message(
    title="待审批：checkout 第 3 级（回滚）",
    body="checkout 的告警未恢复，第 3 级需要批准。",
    link="https://ops.example/remediations/abc",
)


async def test_a_dingtalk_message_with_a_link_still_mentions_whom_its_target_names(
    endpoints: tuple[PushEndpoints, str],  # noqa: F811 - the fixture
    http: httpx.AsyncClient,  # noqa: F811 - the fixture
) -> None:
    # DingTalk documents `at` for text and markdown messages only: an actionCard (the button a
    # message with a link was sent as) @-mentions nobody, so `?at=...` was silently dropped
    # from every approval request and briefing push, the messages that most need someone.
    state, base = endpoints
    channel = DingTalkChannel(http, SECRETS, base)
    await channel.send("alice", APPROVAL, "secret:ding?at=13900002222")
    await channel.send("alice", APPROVAL, "secret:ding?at=all")
    assert state.ding_mentions == [(["13900002222"], False), ([], True)]
    for _, sent in state.received:  # the link still opens from the message
        assert f"({APPROVAL.link})" in sent[sent["msgtype"]]["text"]
    # No one to mention: the card with its button, as before.
    await channel.send("alice", APPROVAL, "secret:ding")
    card = state.received[-1][1]
    assert card["msgtype"] == "actionCard" and card["actionCard"]["singleURL"] == APPROVAL.link
