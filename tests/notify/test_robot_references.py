"""A robot however it is named (its key, its URL, a server secret holding it), and what a
robot's refusal of its key tells the user to do (the WeCom 群机器人 and DingTalk 自定义机器人
docs' errcodes)."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr
from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities
from ambient.clients.notify.dingtalk import DingTalkChannel
from ambient.clients.notify.errors import PermanentNotifyError
from ambient.clients.notify.registry import build_channels
from ambient.clients.notify.secrets import SecretResolver
from ambient.clients.notify.wecom import WeComChannel
from ambient.deps import WorkerDeps
from ambient.domain.notify import DeliveryStatus, Target, redact_target
from ambient.domain.push import target_problem
from ambient.setting_types import ServerSecret
from tests.conftest import unique
from tests.notify.standins import DING_TOKEN, WECOM_KEY, PushEndpoints
from tests.notify.test_channels import REPORT, SECRETS
from tests.notify.test_delivery import _request, _set_push, _settings, _user

ROBOT_URL = f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={WECOM_KEY}"
NOT_HERS = {"admins-bot": ServerSecret(value=SecretStr(WECOM_KEY))}  # alice may not use it


@pytest.mark.parametrize(
    ("named", "secrets", "delivered"),
    [
        # By the webhook URL WeCom shows (both are documented forms of one robot).
        (ROBOT_URL, {}, [(redact_target("wecom", ROBOT_URL), DeliveryStatus.SENT)]),  # key masked
        # By the server secret an admin set for it (the secret's name was compared, not the key).
        ("secret:ops-bot", {}, [("secret:ops-bot", DeliveryStatus.SENT)]),
        # By a secret holding the same key that alice may not use: refused at send. Read as the
        # same robot, it would have taken the place of her own key's message.
        (
            "secret:admins-bot",
            NOT_HERS,
            [("secret:admins-bot", DeliveryStatus.FAILED), ("weco…", DeliveryStatus.SENT)],
        ),
    ],
    ids=["url", "secret", "secret-not-hers"],
)
async def test_one_robot_named_by_its_key_and_otherwise_gets_one_message(
    deps: WorkerDeps,
    endpoints: tuple[PushEndpoints, str],
    named: str,
    secrets: dict[str, ServerSecret],
    delivered: list[tuple[str, DeliveryStatus]],
) -> None:
    # The task names the WeCom robot otherwise than the push config does (by its key): the
    # group got every alert twice.
    state, base = endpoints
    await _user(deps.db, "alice")
    await _set_push(deps.db, "alice", {"channels": [{"type": "wecom", "target": WECOM_KEY}]})
    settings = _settings(deps.settings, base)
    settings = settings.model_copy(update={"secrets": {**settings.secrets, **secrets}})
    notify = NotifyActivities(deps.db, build_channels(settings, deps.db, deps.http))
    sent = await ActivityEnvironment().run(
        notify.notify, _request(unique("robot"), Target(type="wecom", target=named))
    )
    assert sorted((d.channel, d.target, d.status) for d in sent.deliveries) == [
        ("wecom", target, status) for target, status in delivered
    ]
    assert [name for name, _ in state.received] == ["wecom"]


@pytest.mark.parametrize(
    ("robot", "target", "code"),
    [("wecom", "wrong-key", "93000"), ("dingtalk", "wrong-token", "300001")],
)
async def test_a_robot_key_its_vendor_does_not_know_says_to_check_the_robots_url(
    endpoints: tuple[PushEndpoints, str],
    http: httpx.AsyncClient,
    robot: str,
    target: str,
    code: str,
) -> None:
    # WeCom's 93000 "invalid webhook url", DingTalk's 300001 "token is not exist": said in the
    # vendor's words alone, the user did not learn that the key in their target is wrong.
    _, base = endpoints
    channel_of = WeComChannel if robot == "wecom" else DingTalkChannel
    channel = channel_of(http, SECRETS, base)
    with pytest.raises(PermanentNotifyError) as refused:
        await channel.send("alice", REPORT, target)
    said = str(refused.value)
    assert code in said and "robot settings" in said and "update this target" in said, said
    # Held in a server secret, only the operator can change it: said so, by the secret's name.
    held = SecretResolver({"stale-bot": SecretStr(target)})
    channel = channel_of(http, held, base)
    with pytest.raises(PermanentNotifyError) as refused:
        await channel.send("alice", REPORT, "secret:stale-bot")
    said = str(refused.value)
    assert "ask the operator to put it in the server secret 'stale-bot'" in said, said
    assert "update this target" not in said, said
    channel = channel_of(http, SECRETS, base)
    # A known key is sent as before.
    await channel.send("alice", REPORT, "secret:ops-bot" if robot == "wecom" else "secret:ding")


def test_a_dingtalk_mention_that_starts_with_sec_is_a_mention_not_a_secret() -> None:
    # DingTalk's signing secret is SEC and 64 hex digits; a user id may start with SEC too.
    for mention in ("SECURITY01", "sec-oncall", "SEC1", "SECabcdef"):
        target = Target(type="dingtalk", target=f"{DING_TOKEN}?at={mention}")
        assert target_problem(target) is None, (mention, str(target_problem(target)))
    secret = "SEC" + "5f0e2c9d" * 8
    problem = target_problem(Target(type="dingtalk", target=f"{DING_TOKEN}?at={secret}"))
    assert problem is not None and "the signing secret goes after #" in str(problem)
