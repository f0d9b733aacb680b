"""A robot named by the URL its vendor shows: sent to, and checked, as its key form is."""

from __future__ import annotations

import httpx

from ambient.clients.notify.dingtalk import DingTalkChannel
from ambient.clients.notify.wecom import WeComChannel
from ambient.domain.notify import Message, Target
from ambient.domain.push import target_problem
from tests.notify.standins import DING_SECRET, DING_TOKEN, WECOM_KEY, PushEndpoints
from tests.notify.test_channels import SECRETS
from tests.notify.test_push_config import api  # noqa: F401  (the API as bob)

ALARM = Message(title="Disk 91%", body="node-3")
WECOM_URL = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key="
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


async def test_a_robot_url_with_a_misspelled_option_or_a_broken_key_is_refused_when_saved(
    api: httpx.AsyncClient,  # noqa: F811
    endpoints: tuple[PushEndpoints, str],
    http: httpx.AsyncClient,
) -> None:
    # Written as a key, `KEY?mention=@all` is refused naming the options; written as the URL
    # WeCom shows (`...?key=KEY&mention=@all`), the same typo was saved and the group was never
    # @-mentioned, and a key pasted with a space (or a DingTalk secret with one) was saved to
    # fail every send (errcode 93000, "sign not match").
    refused = {
        f"{WECOM_URL}{WECOM_KEY}&mention=@all": ("wecom", "unknown wecom option 'mention'"),
        f"{WECOM_URL}{WECOM_KEY}&mentioned=<b>": ("wecom", "not a user id or phone number"),
        f"{WECOM_URL}{WECOM_KEY[:5]} {WECOM_KEY[5:]}": (
            "wecom",
            "key= of this wecom robot URL is not the robot key",
        ),
        f"{WECOM_URL}{WECOM_KEY}?mentioned=@all": (
            "wecom",
            "key= of this wecom robot URL is not the robot key",
        ),
        f"{DING_URL}ding-token#SEC abc": (
            "dingtalk",
            "access_token= of this dingtalk robot URL is not",
        ),
        f"{DING_URL}ding-token&at=<b>": ("dingtalk", "not a user id or phone number"),
        f"{DING_URL}ding-token#SECabc?at=<b>": ("dingtalk", "not a user id or phone number"),
    }
    for target, (kind, why) in refused.items():
        answer = await api.put(
            "/users/me/push", json={"channels": [{"type": kind, "target": target}]}
        )
        assert answer.status_code == 422, (target, answer.text)
        detail = answer.json()["detail"][0]
        assert detail["loc"] == ["body", "channels", 0, "target"], target
        assert why in detail["msg"], (target, detail["msg"])
    assert (await api.get("/users/me/push")).json()["channels"] == []  # nothing stored

    # The URL as the vendor shows it, with its options after `&`, is saved and sent as written.
    mention = f"{WECOM_URL}{WECOM_KEY}&mentioned=@all"
    saved = await api.put(
        "/users/me/push", json={"channels": [{"type": "wecom", "target": mention}]}
    )
    assert saved.status_code == 200, saved.text
    assert target_problem(Target(type="dingtalk", target=f"{DING_URL}ding-token#SECabc")) is None
    state, base = endpoints
    await WeComChannel(http, SECRETS, base).send("bob", ALARM, mention)
    assert [body["msgtype"] for _, body in state.received] == ["markdown", "text"]
    assert state.received[-1][1]["text"]["mentioned_list"] == ["@all"]
