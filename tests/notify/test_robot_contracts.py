"""The robots as their published contracts have them (the DingTalk 自定义机器人 and WeCom 群机器人
docs): whom a message @-mentions, and how long a robot over its limit is held off."""

from __future__ import annotations

import httpx
import pytest
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.notify import NotifyActivities
from ambient.clients.notify.dingtalk import DingTalkChannel
from ambient.clients.notify.errors import DeferredNotifyError
from ambient.clients.notify.registry import build_channels
from ambient.clients.notify.wecom import WeComChannel
from ambient.deps import WorkerDeps
from ambient.domain.deliver_later import LaterDelivery, later_workflow_id
from ambient.domain.notify import DeliveryStatus, Message, NotifyRequest, Target
from tests.conftest import unique
from tests.notify.standins import DING_SECRET, DING_TOKEN, WECOM_KEY, PushEndpoints
from tests.notify.test_channels import SECRETS
from tests.notify.test_delivery import _user

APPROVAL = Message(
    title="待审批：checkout 第 3 级（回滚）",
    body="checkout 的告警未恢复，第 3 级需要批准。",
    link="https://ops.example/remediations/abc",
)


async def test_a_dingtalk_message_with_a_link_still_mentions_whom_its_target_names(
    endpoints: tuple[PushEndpoints, str],
    http: httpx.AsyncClient,
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
    endpoints: tuple[PushEndpoints, str],
    http: httpx.AsyncClient,
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
    sender: WeComChannel | DingTalkChannel
    if channel == "wecom":
        sender, target = WeComChannel(http, SECRETS, base), WECOM_KEY
    else:
        sender, target = DingTalkChannel(http, SECRETS, base), "secret:ding"
    with pytest.raises(DeferredNotifyError, match=str(code)) as refused:
        await sender.send("alice", APPROVAL, target)
    assert refused.value.retry_after == held


@pytest.mark.parametrize(
    ("channel", "target", "code", "held"),
    [
        ("wecom", WECOM_KEY, 45009, 60.0),
        ("dingtalk", f"{DING_TOKEN}#{DING_SECRET}", 130101, 600.0),
    ],
)
async def test_a_robot_over_its_limit_is_handed_over_at_the_first_try_to_wait_as_the_vendor_says(
    ts_env: WorkflowEnvironment,
    deps: WorkerDeps,
    endpoints: tuple[PushEndpoints, str],
    channel: str,
    target: str,
    code: int,
    held: float,
) -> None:
    # The notify activity's first try of five: the refusal names when the robot takes messages
    # again, so the delivery goes to a deliver-later run at once, waiting that long; named no
    # delay, the try failed, and the retries (2, 4, 8, 16 s on) posted four more, each refused.
    state, base = endpoints
    state.failures[channel] = [f"errcode:{code}"]
    await _user(deps.db, "alice")
    deps.settings = deps.settings.model_copy(
        update={"wecom_base_url": base, "dingtalk_base_url": base}
    )
    notify = NotifyActivities(deps.db, build_channels(deps.settings, deps.db, deps.http))
    key = unique("approval")
    request = NotifyRequest(
        user="alice",
        message=APPROVAL,
        targets=[Target(type=channel, target=target)],
        idempotency_key=key,
        attempts=5,
    )
    result = await ActivityEnvironment(client=ts_env.client).run(notify.notify, request)
    assert [(d.channel, d.status) for d in result.deliveries] == [
        (channel, DeliveryStatus.DEFERRED)
    ]
    assert state.failures[channel] == [] and state.received == []  # posted once, refused
    later = ts_env.client.get_workflow_handle(later_workflow_id("alice", key))
    started = (await later.fetch_history()).events[0].workflow_execution_started_event_attributes
    (handed,) = await ts_env.client.data_converter.decode(started.input.payloads, [LaterDelivery])
    assert handed.wait == held
    await later.terminate()
