"""The robots as their published contracts have them (the DingTalk 自定义机器人 and WeCom 群机器人
docs): whom a message @-mentions, and how long a robot over its limit is held off."""

from __future__ import annotations

import httpx
import pytest

from ambient.clients.notify.dingtalk import DingTalkChannel
from ambient.clients.notify.errors import DeferredNotifyError
from ambient.clients.notify.wecom import WeComChannel
from ambient.domain.notify import Message
from tests.notify.standins import WECOM_KEY, PushEndpoints
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


@pytest.mark.parametrize(
    ("channel", "code", "held"),
    [("wecom", 45009, 60.0), ("dingtalk", 130101, 600.0)],
)
async def test_a_robot_over_its_limit_is_tried_again_when_the_vendor_says_it_is_free(
    endpoints: tuple[PushEndpoints, str],  # noqa: F811 - the fixture
    http: httpx.AsyncClient,  # noqa: F811 - the fixture
    channel: str,
    code: int,
    held: float,
) -> None:
    # Past 20 messages a minute (other senders share the robot), WeCom refuses until its
    # minute ends and DingTalk holds the robot off for 10 minutes. Named no delay, the refusal
    # was retried within seconds (2, 4, 8, 16 s: four more posts refused) before the delivery
    # was handed to a later run; named, it is handed over at once, to be tried when it can pass.
    state, base = endpoints
    state.failures[channel] = [f"errcode:{code}"]
    robot = WeComChannel(http, SECRETS, base) if channel == "wecom" else None
    sender = robot or DingTalkChannel(http, SECRETS, base)
    target = WECOM_KEY if channel == "wecom" else "secret:ding"
    with pytest.raises(DeferredNotifyError, match=str(code)) as refused:
        await sender.send("alice", APPROVAL, target)
    assert refused.value.retry_after == held
