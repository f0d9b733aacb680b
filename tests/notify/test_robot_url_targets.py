"""A robot named by the URL its vendor shows: sent to, and checked, as its key form is."""

from __future__ import annotations

import httpx

from ambient.clients.notify.dingtalk import DingTalkChannel
from ambient.domain.notify import Message, Target
from ambient.domain.push import target_problem
from tests.notify.standins import DING_SECRET, DING_TOKEN, PushEndpoints
from tests.notify.test_channels import SECRETS

ALARM = Message(title="Disk 91%", body="node-3")
DING_URL = "https://oapi.dingtalk.com/robot/send?access_token="


async def test_a_dingtalk_robot_url_with_its_secret_and_mentions_is_signed_and_mentions(
    endpoints: tuple[PushEndpoints, str],
    http: httpx.AsyncClient,
) -> None:
    # The form the docs give, the robot URL with `#SIGN_SECRET` and `?at=...` after it: the
    # options were read as part of the secret, so every message was signed with a wrong one
    # (310000 "sign not match", failed for good) and mentioned nobody.
    state, base = endpoints
    channel = DingTalkChannel(http, SECRETS, base)
    for options in ("?at=13900002222", "?at=all"):
        target = f"{DING_URL}{DING_TOKEN}#{DING_SECRET}{options}"
        assert target_problem(Target(type="dingtalk", target=target)) is None
        await channel.send("alice", ALARM, target)
    assert state.ding_mentions == [(["13900002222"], False), ([], True)]
    assert [body["markdown"]["title"] for _, body in state.received] == [ALARM.title] * 2
