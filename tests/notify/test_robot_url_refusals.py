"""A robot URL refused says what is wrong and never its secret; the vendors' own request
forms (DingTalk's signed URL, WeCom's &debug=1) are sent, saved now or before."""

from __future__ import annotations

import logging

import httpx
import pytest
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.notify import NotifyActivities
from ambient.clients.notify.base import ChannelRegistry
from ambient.clients.notify.registry import build_channels
from ambient.deps import WorkerDeps
from ambient.domain.notify import (
    DeliveryStatus,
    Message,
    NotificationKind,
    NotifyRequest,
    Target,
)
from ambient.domain.push import target_problem
from ambient.domain.users import UserCreate
from ambient.storage.repositories import DeliveryRepository
from ambient.storage.users import UserRepository
from tests.conftest import unique
from tests.notify.standins import DING_SECRET, DING_TOKEN, WECOM_KEY, PushEndpoints
from tests.notify.test_deliver_later import _events
from tests.notify.test_delivery import _alice_pushing
from tests.notify.test_push_config import _tools, api  # noqa: F401  (the API as bob)
from tests.notify.test_robot_url_targets import DING_URL, WECOM_URL

ALARM = Message(title="Disk 91%", body="node-3", kind=NotificationKind.WATCH)
# A DingTalk signing secret as its security settings show it: SEC and 64 hex digits.
LEAKED = "SEC" + "5f0e2c9d" * 8
MISPLACED = {  # the secret pasted where options go
    f"{DING_URL}{DING_TOKEN}&{LEAKED}",
    f"{DING_URL}{DING_TOKEN}#{LEAKED}?{LEAKED}",
    f"{DING_TOKEN}?{LEAKED}",
    f"{DING_URL}{DING_TOKEN}&{LEAKED}=",
    # As a value: a dropped sign= (saved, every send failed 310000), an unknown option (named
    # as such), a mention (its first characters shown).
    f"{DING_URL}{DING_TOKEN}&sign={LEAKED}",
    f"{DING_URL}{DING_TOKEN}&secret={LEAKED}",
    f"{DING_URL}{DING_TOKEN}&at={LEAKED}",
    f"{DING_URL}{DING_TOKEN}#{DING_SECRET}?timestamp=1&at=all,{LEAKED}",
    f"{DING_TOKEN}?at={LEAKED}",
    # Behind an encoded comma or space (its first character was shown as a mention's).
    f"{DING_URL}{DING_TOKEN}&at=138%2C{LEAKED}",
    f"{DING_TOKEN}?at=1%2C{LEAKED}",
    f"{DING_TOKEN}?at=1+{LEAKED}",
}


def _no_secret(text: str) -> bool:
    return not any(LEAKED[i : i + 8] in text for i in range(3, len(LEAKED) - 8))


async def _saved_before(deps: WorkerDeps, *channels: dict[str, str]) -> None:
    """Alice's push config as a release before this rule stored it (not checked now)."""
    async with deps.db.session() as session:
        user = await UserRepository(session).get("alice")
        assert user is not None
        await UserRepository(session).set_push_config(user, {"channels": list(channels)})
        await session.commit()


def _with_dingtalk(deps: WorkerDeps, base: str) -> ChannelRegistry:
    """``deps``' channels with DingTalk's robot at the stand-ins too."""
    deps.settings = deps.settings.model_copy(update={"dingtalk_base_url": base})
    return build_channels(deps.settings, deps.db, deps.http)


async def _pushed(ts_env: WorkflowEnvironment, notify: object) -> tuple[str, list]:
    key = unique("robot-url")
    request = NotifyRequest(user="alice", message=ALARM, targets=[], idempotency_key=key)
    result = await ActivityEnvironment(client=ts_env.client).run(notify.notify, request)  # type: ignore[attr-defined]
    return key, result.deliveries


async def test_a_robot_url_refused_for_a_misplaced_secret_never_says_the_secret(
    api: httpx.AsyncClient,  # noqa: F811
) -> None:
    # `…?access_token=T&SEC…`: refused quoting the whole query, the signing secret, in the 422
    # (and the tool error, the page, and a stored target's delivery errors and logs).
    for target in MISPLACED:
        problem = target_problem(Target(type="dingtalk", target=target))
        assert problem is not None and _no_secret(str(problem)), (target, str(problem))
        assert "the signing secret goes after #" in str(problem), str(problem)
        answer = await api.put(
            "/users/me/push", json={"channels": [{"type": "dingtalk", "target": target}]}
        )
        # The 422 names the problem and where, never the secret (nor its `input`, which
        # echoed the target as sent: a response a proxy, a browser or a log may keep).
        assert answer.status_code == 422 and _no_secret(answer.text), answer.text
        assert answer.json()["detail"][0]["loc"] == ["body", "channels", 0, "target"]
    # An unknown option or a mention is named, a long one by its first characters alone.
    problem = target_problem(Target(type="dingtalk", target=f"{DING_URL}{DING_TOKEN}&{LEAKED}=x"))
    assert problem is not None and _no_secret(str(problem)), str(problem)
    assert (await api.get("/users/me/push")).json()["channels"] == []


async def test_a_refused_target_is_not_echoed_with_its_key_or_token(
    api: httpx.AsyncClient,  # noqa: F811
) -> None:
    # A robot's key, a webhook's query and an Apprise URL's token are credentials: a 422
    # refusing one for a misspelled option said it back in its `input`, whole.
    key = unique("k3y")
    for channel in (
        {"type": "wecom", "target": f"{key}?mention=@all"},
        {"type": "wecom", "target": f"{WECOM_URL}{key}&mention=@all"},
        {"type": "dingtalk", "target": f"{key}#{LEAKED}?mention=@all"},
        {"type": "apprise", "target": f"tgram://{key}/"},
        {"type": "webhook", "target": f"http://10.1.2.3/hook?token={key}"},
    ):
        answer = await api.put("/users/me/push", json={"channels": [channel]})
        assert answer.status_code == 422, answer.text
        assert key not in answer.text and _no_secret(answer.text), answer.text
        assert [e["loc"] for e in answer.json()["detail"]] == [["body", "channels", 0, "target"]]
        # Refused as a whole channel (no type), its target is not echoed either.
        untyped = {"target": channel["target"]}
        answer = await api.put("/users/me/push", json={"channels": [untyped, channel]})
        assert answer.status_code == 422 and key not in answer.text, answer.text


async def test_a_stored_robot_url_with_a_misplaced_secret_fails_at_send_without_saying_it(
    ts_env: WorkflowEnvironment,
    deps: WorkerDeps,
    endpoints: tuple[PushEndpoints, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    state, base = endpoints
    await _alice_pushing(deps, base)
    # DingTalk at the stand-ins too: a send the check let through lands there, not at DingTalk.
    notify = NotifyActivities(deps.db, _with_dingtalk(deps, base))
    await _saved_before(deps, {"type": "dingtalk", "target": f"{DING_URL}{DING_TOKEN}&{LEAKED}"})
    with caplog.at_level(logging.DEBUG):
        key, deliveries = await _pushed(ts_env, notify)
    assert [d.status for d in deliveries] == [DeliveryStatus.FAILED]
    assert "the signing secret goes after #" in (deliveries[0].error or "")
    async with deps.db.session() as session:
        rows = await DeliveryRepository(session).under("alice", key)
    said = [d.error or "" for d in deliveries] + [r.error or "" for r in rows]
    said += [str(e.payload) for e in await _events(deps, "delivery.failed")]
    said += [record.getMessage() for record in caplog.records]
    assert all(_no_secret(text) for text in said), [t for t in said if not _no_secret(t)]
    assert state.received == []


SIGNED_FORMS = [
    # DingTalk's documented signed request, pasted with the secret after #: its stale
    # timestamp and sign are dropped, each message signed afresh.
    ("dingtalk", f"{DING_URL}{DING_TOKEN}&timestamp=1700000000000&sign=abc%2B%3D#{DING_SECRET}"),
    ("wecom", f"{WECOM_URL}{WECOM_KEY}&debug=1"),
    ("wecom", f"HTTPS://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={WECOM_KEY}"),
]


async def test_robot_urls_in_the_vendors_own_forms_are_saved_and_sent(
    api: httpx.AsyncClient,  # noqa: F811
) -> None:
    channels = [{"type": kind, "target": target} for kind, target in SIGNED_FORMS]
    saved = await api.put("/users/me/push", json={"channels": channels})
    assert saved.status_code == 200, saved.text


async def test_robot_urls_in_the_vendors_own_forms_saved_before_still_send(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, endpoints: tuple[PushEndpoints, str]
) -> None:
    # Saved before the robot URL's options were checked, they sent; then each send failed.
    state, base = endpoints
    await _alice_pushing(deps, base)
    notify = NotifyActivities(deps.db, _with_dingtalk(deps, base))
    await _saved_before(deps, *({"type": k, "target": t} for k, t in SIGNED_FORMS))
    _, deliveries = await _pushed(ts_env, notify)
    # The two WeCom forms name one robot: its group gets the message once.
    assert [(d.status, d.error) for d in deliveries] == [(DeliveryStatus.SENT, None)] * 2
    assert sorted(channel for channel, _ in state.received) == ["dingtalk", "wecom"]


def test_a_robot_url_with_the_vendors_own_parameters_is_the_robot_itself() -> None:
    # `…?key=K&debug=1` and `K` were two destinations: one group got each message twice.
    ding, wecom = (Target(type=kind, target=target) for kind, target in SIGNED_FORMS[:2])
    assert ding.same_destination(Target(type="dingtalk", target=f"{DING_TOKEN}#{DING_SECRET}"))
    assert wecom.same_destination(Target(type="wecom", target=WECOM_KEY))


@pytest.mark.parametrize(
    ("target", "said", "unsaid"),
    [
        # The options after the secret with & (read as part of it): show where they go.
        (f"{DING_URL}{DING_TOKEN}#{DING_SECRET}&at=all", "…#SEC…?at=all", "options go after"),
        # The key form said the same was no DingTalk target at all.
        (f"{DING_TOKEN}#{DING_SECRET}&at=all", "TOKEN#SEC…?at=all", "not a dingtalk target"),
        # Each option after `#SEC…?` is read by its name (the first one's dropped them all).
        (f"{DING_URL}{DING_TOKEN}#{DING_SECRET}?timestamp=1&at=<b>", "'<b>'", "#SEC"),
        # A WeCom robot URL has no fragment: its key was said not to be a robot key.
        (f"{WECOM_URL}{WECOM_KEY}#top", "#", "not the robot key"),
    ],
)
def test_a_robot_url_refused_says_what_is_really_wrong(target: str, said: str, unsaid: str) -> None:
    kind = "wecom" if "qyapi" in target else "dingtalk"
    problem = str(target_problem(Target(type=kind, target=target)))
    assert said in problem and unsaid not in problem, problem


async def test_the_push_tool_refuses_a_broken_robot_url_naming_the_field(deps: WorkerDeps) -> None:
    async with deps.db.session() as session:
        await UserRepository(session).create(UserCreate(name="alice"))
        await session.commit()
    target = f"{WECOM_URL}{WECOM_KEY}&mention=@all"
    async with _tools(deps, "alice") as client:
        refused = await client.call_tool(
            "set_push_config", {"channels": [{"type": "wecom", "target": target}]}
        )
        current = await client.call_tool("get_push_config", {})
    text = refused.content[0].text  # type: ignore[union-attr]
    assert refused.is_error and "push config not changed" in text, text
    assert "channels.0.target" in text and "unknown wecom option 'mention'" in text, text
    assert current.structured_content is not None
    assert current.structured_content["channels"] == []


async def test_a_refused_secret_reference_or_bare_channel_is_not_echoed(
    api: httpx.AsyncClient,  # noqa: F811
) -> None:
    # `secret:` then a token (not a secret's name) was said back whole, in `input` and in the
    # message; a target sent as a list and a channel sent as a bare URL were said back too.
    key = unique("TOKEN")
    for channels in (
        [{"type": "dingtalk", "target": f"secret:ding{key}#{LEAKED}"}],
        [
            {
                "type": "feishu",
                "target": f"secret:https://open.feishu.cn/open-apis/bot/v2/hook/{key}",
            }
        ],
        [{"type": "wecom", "target": [f"{key}?mention=@all"]}],
        [f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={key}"],
    ):
        answer = await api.put("/users/me/push", json={"channels": channels})
        assert answer.status_code == 422, answer.text
        assert key[4:] not in answer.text and _no_secret(answer.text), answer.text
    # A secret's own name is its reference, said back as written; its options are not.
    answer = await api.put(
        "/users/me/push",
        json={"channels": [{"type": "wecom", "target": f"secret:ops-bot?mention={key}"}]},
    )
    assert answer.status_code == 422 and key[4:] not in answer.text, answer.text
    assert answer.json()["detail"][0]["input"] == "secret:ops-bot?…", answer.text


def test_a_secret_reference_that_is_no_name_is_said_by_its_first_characters() -> None:
    problem = target_problem(Target(type="dingtalk", target=f"secret:dingTOKEN1234#{LEAKED}"))
    assert problem is not None and "TOKEN1234" not in str(problem), str(problem)
    assert "'ding…'" in str(problem) and _no_secret(str(problem)), str(problem)


async def test_a_robot_url_on_another_host_is_refused_saying_where_messages_go(
    api: httpx.AsyncClient,  # noqa: F811
) -> None:
    # Taken, with its host swapped for the vendor's: the key of a self-hosted or private
    # gateway's URL was sent to the public vendor without a word.
    elsewhere = {
        "wecom": f"https://127.0.0.1/cgi-bin/webhook/send?key={WECOM_KEY}",
        "dingtalk": f"https://ding.corp.example/robot/send?access_token={DING_TOKEN}",
    }
    for kind, target in elsewhere.items():
        answer = await api.put(
            "/users/me/push", json={"channels": [{"type": kind, "target": target}]}
        )
        assert answer.status_code == 422, answer.text
        said = answer.json()["detail"][0]
        assert said["loc"] == ["body", "channels", 0, "target"]
        assert f"AMBIENT_{kind.upper()}_BASE_URL" in said["msg"], said
        assert WECOM_KEY not in answer.text and DING_TOKEN not in answer.text
    assert (await api.get("/users/me/push")).json()["channels"] == []
    # The vendor's own host, in any case and with its port, is the robot as before.
    upper = f"https://QYAPI.weixin.qq.com:443/cgi-bin/webhook/send?key={WECOM_KEY}"
    assert target_problem(Target(type="wecom", target=upper)) is None
