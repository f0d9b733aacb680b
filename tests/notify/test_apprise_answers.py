"""What a service reached through Apprise answered decides the delivery, as for a webhook.
Chat robots (Feishu, Lark, DingTalk, WeCom) answer a message they refuse with HTTP 200 and an
error code in the body, as their docs show (a wrong key, a keyword the robot requires, a
signature that does not match): Apprise reads only the status, so such a send must not be
recorded as delivered. And Apprise says only "not accepted": its HTTP answer says whether
to give up (a wrong path's 404), try again soon (5xx) or later (a rate limit's 429)."""

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities
from ambient.clients.guard import DestinationGuard
from ambient.clients.notify.apprise import AppriseChannel, robot_of
from ambient.clients.notify.errors import (
    DeferredNotifyError,
    PermanentNotifyError,
    TransientNotifyError,
)
from ambient.clients.notify.registry import build_channels
from ambient.clients.notify.robots import SharedRateLimiter
from ambient.clients.notify.secrets import SecretResolver
from ambient.deps import WorkerDeps
from ambient.domain.notify import DeliveryStatus, Message, NotifyRequest, Target
from ambient.storage import Database
from ambient.storage.repositories import DeliveryRepository
from tests.notify.test_delivery import _user
from tests.support.servers import serve

FEISHU_TOKEN = "0f8e2a6c-3b1d-4e5f-9a7b-c2d4e6f8a0b1"
FEISHU_SIGNED = "signed-bot-token-1234"
DING_TOKEN = "a" * 64
WECOM_KEY = "0f8e2a6c-3b1d-4e5f-9a7b-c2d4e6f8a0b2"
MESSAGE = Message(title="Disk 91%", body="node-3 /var is 91% full")


class Robots:
    """Feishu's, DingTalk's and WeCom's robot endpoints as their docs answer: HTTP 200 always,
    success or refusal in the body's code."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, object]]] = []
        self.throttle = False
        self.refused: list[str] = []  # the robots that answered "over the rate limit"
        self.base = ""
        self.ding_keywords: list[str] = []  # a DingTalk robot's custom keywords, if any

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/open-apis/bot/v2/hook/{token}/", self.feishu, methods=["POST"]),
                Route("/open-apis/bot/v2/hook/{token}", self.feishu, methods=["POST"]),  # Lark's
                Route("/robot/send", self.dingtalk, methods=["POST"]),
                Route("/cgi-bin/webhook/send", self.wecom, methods=["POST"]),
                Route("/answer/{status:int}", self.answer, methods=["POST"]),
                Route("/answer/{status:int}/{said}", self.answer, methods=["POST"]),
            ]
        )

    async def feishu(self, request: Request) -> JSONResponse:
        sent = await request.json()
        if request.path_params["token"] == FEISHU_SIGNED and "sign" not in sent:
            # 签名校验 on: its body must carry timestamp and sign, as Feishu's docs say.
            return JSONResponse(
                {
                    "code": 19021,
                    "data": {},
                    "msg": "sign match fail or timestamp is not within one hour from current time",
                }
            )
        if request.path_params["token"] != FEISHU_TOKEN:
            return JSONResponse(
                {
                    "code": 19001,
                    "data": {},
                    "msg": "param invalid: incoming webhook access token invalid",
                }
            )
        if self.throttle:
            return JSONResponse({"code": 11232, "data": {}, "msg": "frequency limited psm"})
        self.received.append(("feishu", await request.json()))
        return JSONResponse({"code": 0, "data": {}, "msg": "success", "StatusCode": 0})

    async def dingtalk(self, request: Request) -> JSONResponse:
        if len(await request.body()) > 20000:  # the robot's request limit, as it answers
            return JSONResponse(
                {"errcode": 460101, "errmsg": "message too long, exceed 20000 bytes"}
            )
        if request.query_params.get("access_token") != DING_TOKEN:
            return JSONResponse({"errcode": 300001, "errmsg": "token is not exist"})
        if self.throttle:  # past 20 a minute: the robot is held off for 10 minutes
            self.refused.append("dingtalk")
            return JSONResponse({"errcode": 130101, "errmsg": "send too fast"})
        sent = (await request.body()).decode()
        if self.ding_keywords and not any(k in sent for k in self.ding_keywords):
            return JSONResponse({"errcode": 310000, "errmsg": "keywords not in content"})
        self.received.append(("dingtalk", await request.json()))
        return JSONResponse({"errcode": 0, "errmsg": "ok"})

    async def wecom(self, request: Request) -> JSONResponse:
        if request.query_params.get("key") != WECOM_KEY:
            return JSONResponse({"errcode": 93000, "errmsg": "invalid webhook url"})
        if self.throttle:
            return JSONResponse({"errcode": 45009, "errmsg": "api freq out of limit"})
        sent = await request.json()
        kind = sent["msgtype"]
        limit = {"markdown": 4096, "text": 2048}[kind]  # UTF-8 bytes of its content
        if len(sent[kind]["content"].encode()) > limit:
            said = f"{kind}.content exceed max length {limit}"
            return JSONResponse({"errcode": 40058, "errmsg": said})
        self.received.append(("wecom", sent))
        return JSONResponse({"errcode": 0, "errmsg": "ok"})

    async def answer(self, request: Request) -> Response:
        """A self-hosted service (ntfy, Gotify, a JSON endpoint) answering ``status``; ``said``
        is a redirect's Location, else the Retry-After."""
        status, said = request.path_params["status"], request.path_params.get("said")
        headers = {}
        if said is not None:
            headers["location" if 300 <= status < 400 else "retry-after"] = said
        self.received.append(("answer", {"status": status}))
        return Response("no", status_code=status, headers=headers)


@pytest_asyncio.fixture
async def robots(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Robots]:
    """The stand-ins, and Apprise's Feishu, DingTalk and WeCom services posting to them
    instead of the vendors' hosts (fixed in the plugins)."""
    from apprise.plugins.dingtalk import NotifyDingTalk
    from apprise.plugins.feishu import NotifyFeishu
    from apprise.plugins.wecombot import NotifyWeComBot

    state = Robots()
    async with serve(state.app()) as base:
        state.base = base
        monkeypatch.setattr(NotifyFeishu, "notify_url", base + "/open-apis/bot/v2/hook/{token}/")
        monkeypatch.setattr(NotifyDingTalk, "notify_url", base + "/robot/send?access_token={token}")
        monkeypatch.setattr(NotifyWeComBot, "notify_url", base + "/cgi-bin/webhook/send?key={key}")
        yield state


# The stand-ins stand for the vendors' public hosts, on loopback: allowed as public ones are.
# (Every host an Apprise send connects to passes the guard, the plugins' fixed ones too.)
GUARD = DestinationGuard(["127.0.0.1/32"])
CHANNEL = AppriseChannel(SecretResolver({}), GUARD)


async def test_a_feishu_bot_that_checks_signatures_is_said_to_need_its_check_off(
    robots: Robots,
) -> None:
    """Its 签名校验 on, every send was refused "19021: sign match fail ...", with nothing said
    of what to do: Apprise's feishu:// cannot sign."""
    with pytest.raises(PermanentNotifyError, match=r"19021.*turn the signature check off"):
        await CHANNEL.send("alice", MESSAGE, f"feishu://{FEISHU_SIGNED}", idempotency_key="s")
    assert robots.received == []


async def test_a_feishu_robot_refusing_a_wrong_token_is_a_failure_naming_its_code(
    robots: Robots,
) -> None:
    with pytest.raises(PermanentNotifyError, match=r"feishu.*19001.*access token invalid"):
        await CHANNEL.send("alice", MESSAGE, "feishu://wrong-token", idempotency_key="k")
    await CHANNEL.send("alice", MESSAGE, f"feishu://{FEISHU_TOKEN}", idempotency_key="k")
    assert [name for name, _ in robots.received] == ["feishu"]


async def test_a_robot_over_its_rate_limit_asks_to_be_tried_later(robots: Robots) -> None:
    robots.throttle = True
    with pytest.raises(DeferredNotifyError, match="11232") as feishu:
        await CHANNEL.send("alice", MESSAGE, f"feishu://{FEISHU_TOKEN}", idempotency_key="k")
    assert feishu.value.retry_after is None  # Feishu does not say for how long
    # When the robot takes messages again, as the vendors' docs say: DingTalk holds a robot
    # off for 10 minutes, WeCom's minute ends within 60 s.
    for url, code, held in (
        (f"dingtalk://{DING_TOKEN}", 130101, 600),
        (f"wecombot://{WECOM_KEY}", 45009, 60),
    ):
        with pytest.raises(DeferredNotifyError, match=str(code)) as refused:
            await CHANNEL.send("alice", MESSAGE, url, idempotency_key="k")
        assert refused.value.retry_after == held
    assert robots.received == []


async def test_dingtalk_and_wecom_robots_through_apprise_refusing_a_key_are_failures(
    robots: Robots,
) -> None:
    with pytest.raises(PermanentNotifyError, match=r"dingtalk.*300001.*token is not exist") as ding:
        await CHANNEL.send("alice", MESSAGE, "dingtalk://" + "b" * 64, idempotency_key="k")
    with pytest.raises(
        PermanentNotifyError, match=r"wecombot.*93000.*invalid webhook url"
    ) as wecom:
        await CHANNEL.send("alice", MESSAGE, "wecombot://wrong-key", idempotency_key="k")
    # What to do, for an Apprise URL: the key or token from the robot's webhook URL goes in it
    # (not "update this target" with the webhook URL, which an Apprise target is not).
    assert "put the access_token from it into dingtalk://TOKEN" in str(ding.value), ding.value
    assert "put the key from it into wecombot://KEY" in str(wecom.value), wecom.value
    assert all("update this target" not in str(e.value) for e in (ding, wecom))
    # An Apprise URL held in a server secret: only the operator can change it.
    held = AppriseChannel(SecretResolver({"tg": SecretStr("wecombot://wrong-key")}), GUARD)
    with pytest.raises(PermanentNotifyError, match="93000") as wecom:
        await held.send("alice", MESSAGE, "secret:tg", idempotency_key="k")
    assert "ask the operator to put it in the server secret 'tg'" in str(wecom.value), wecom.value
    assert "into wecombot://KEY" not in str(wecom.value), wecom.value
    await CHANNEL.send("alice", MESSAGE, f"dingtalk://{DING_TOKEN}", idempotency_key="k")
    await CHANNEL.send("alice", MESSAGE, f"wecombot://{WECOM_KEY}", idempotency_key="k")
    assert [name for name, _ in robots.received] == ["dingtalk", "wecom"]
    # Its security settings' refusal says what to check (the errmsg names one cause of three).
    robots.ding_keywords = ["监控报警"]
    with pytest.raises(PermanentNotifyError, match="310000: keywords not in content") as refused:
        await CHANNEL.send("alice", MESSAGE, f"dingtalk://{DING_TOKEN}", idempotency_key="k")
    assert all(c in str(refused.value) for c in ("custom keyword", "signing secret", "IP list"))
    # Its secret is where Apprise takes it, not a #SEC... this path has none of.
    assert "the secret in the URL dingtalk://{secret}@{token}/" in str(refused.value)
    assert "#SEC" not in str(refused.value)


async def test_a_long_message_through_an_apprise_robot_is_cut_to_its_limit_not_refused(
    robots: Robots,
) -> None:
    # Apprise passes a message past a robot's limit as it is (and counts characters, the
    # robots bytes): WeCom refused a long Chinese briefing for good (40058), every day.
    long = Message(title="早报", body="\n".join(f"第{i}行 数据库慢查询" for i in range(2000)))
    await CHANNEL.send("alice", long, f"wecombot://{WECOM_KEY}", idempotency_key="k")
    await CHANNEL.send("alice", long, f"dingtalk://{DING_TOKEN}", idempotency_key="k")
    (_, wecom), (_, ding) = robots.received
    content = wecom["text"]["content"]
    assert 1900 < len(content.encode()) <= 2048 and content.startswith("早报\r\n第0行"), content
    assert "已截断" in content and "第1999行" not in content
    text = ding["markdown"]["text"]
    assert "已截断" in text and "第1999行" not in text and "第300行" in text


class _VendorHosts(DestinationGuard):
    """The vendors' hosts a robot's own https URL names, found at the stand-ins' loopback
    (this machine has no DNS for them)."""

    async def resolve(self, host: str, port: int) -> list[str]:
        return ["127.0.0.1"]


async def test_a_robot_written_as_its_vendor_https_url_is_answered_as_that_robot(
    robots: Robots, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Apprise reads WeCom's and Lark's own webhook URLs as their robots, and reads only the
    # status of their answer (HTTP 200, refusal or not): a refusal in the body was recorded
    # as sent, and a burst to the WeCom robot skipped the limit its other forms keep.
    from apprise.plugins.lark import NotifyLark

    monkeypatch.setattr(NotifyLark, "notify_url", robots.base + "/open-apis/bot/v2/hook/")
    channel = AppriseChannel(SecretResolver({}), _VendorHosts(["127.0.0.1/32"]))
    wecom = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key="
    lark = "https://open.larksuite.com/open-apis/bot/v2/hook/"
    with pytest.raises(PermanentNotifyError, match=r"wecombot.*93000.*invalid webhook url"):
        await channel.send("alice", MESSAGE, wecom + "wrong-key", idempotency_key="k")
    with pytest.raises(PermanentNotifyError, match=r"lark.*19001.*access token invalid"):
        await channel.send("alice", MESSAGE, lark + "wrong-token", idempotency_key="k")
    robots.throttle = True
    with pytest.raises(DeferredNotifyError, match="45009") as held:
        await channel.send("alice", MESSAGE, wecom + WECOM_KEY, idempotency_key="k")
    assert held.value.retry_after == 60
    robots.throttle = False
    await channel.send("alice", MESSAGE, wecom + WECOM_KEY, idempotency_key="k")
    await channel.send("alice", MESSAGE, lark + FEISHU_TOKEN, idempotency_key="k")
    assert [name for name, _ in robots.received] == ["wecom", "feishu"]
    # One robot however it is written: its https URL keeps the window of wecombot://KEY.
    assert robot_of(wecom + WECOM_KEY) == robot_of(f"wecombot://{WECOM_KEY}") == WECOM_KEY
    assert robot_of("https://hooks.example.com/x?key=" + WECOM_KEY) is None


async def test_a_feishu_delivery_refused_by_the_robot_is_listed_failed_not_sent(
    deps: WorkerDeps, robots: Robots
) -> None:
    await _user(deps.db, "alice")
    settings = deps.settings.model_copy(update={"fetch_allow_cidrs": ["127.0.0.1/32"]})
    notify = NotifyActivities(deps.db, build_channels(settings, deps.db, deps.http))
    request = NotifyRequest(
        user="alice",
        message=MESSAGE,
        targets=[Target(type="apprise", target="feishu://wrong-token")],
        idempotency_key="feishu-wrong",
    )
    result = await ActivityEnvironment().run(notify.notify, request)
    ((delivery,),) = [[d for d in result.deliveries if d.channel == "apprise"]]
    assert delivery.status == DeliveryStatus.FAILED
    assert "19001" in (delivery.error or "")
    async with deps.db.session() as session:
        (row,) = [
            r
            for r in await DeliveryRepository(session).list(user="alice")
            if r.channel == "apprise"
        ]
    assert row.status == "failed" and "19001" in (row.error or "")
    assert robots.received == []


async def test_a_self_hosted_service_answering_a_wrong_path_is_refused_for_good(
    robots: Robots,
) -> None:
    channel = AppriseChannel(SecretResolver({}), DestinationGuard(["127.0.0.1/32"]))
    json_url = robots.base.replace("http://", "json://") + "/answer"
    # A wrong path, a wrong token: no retry makes them work (one post each, said at once).
    for status in (404, 401):
        with pytest.raises(PermanentNotifyError, match=f"HTTP {status}"):
            await channel.send("alice", MESSAGE, f"{json_url}/{status}", idempotency_key="k")
    # A redirect is not followed: the guard checked this host, not where it points.
    with pytest.raises(PermanentNotifyError, match="HTTP 307: the endpoint redirects"):
        await channel.send("alice", MESSAGE, f"{json_url}/307/elsewhere", idempotency_key="k")
    assert [body["status"] for _, body in robots.received] == [404, 401, 307]


async def test_a_self_hosted_service_over_its_rate_limit_asks_to_be_tried_later(
    robots: Robots,
) -> None:
    channel = AppriseChannel(SecretResolver({}), DestinationGuard(["127.0.0.1/32"]))
    json_url = robots.base.replace("http://", "json://") + "/answer"
    with pytest.raises(DeferredNotifyError, match=r"HTTP 429 \(Retry-After: 120\)") as later:
        await channel.send("alice", MESSAGE, f"{json_url}/429/120", idempotency_key="k")
    assert later.value.retry_after == 120
    with pytest.raises(DeferredNotifyError, match="HTTP 503") as unavailable:
        await channel.send("alice", MESSAGE, f"{json_url}/503", idempotency_key="k")
    assert unavailable.value.retry_after is None
    # A server error may pass: retried soon, as before.
    with pytest.raises(TransientNotifyError, match="HTTP 502") as soon:
        await channel.send("alice", MESSAGE, f"{json_url}/502", idempotency_key="k")
    assert not isinstance(soon.value, DeferredNotifyError)


async def test_a_robot_reached_through_apprise_keeps_the_limit_its_own_channel_keeps(
    robots: Robots, db: Database
) -> None:
    """dingtalk:// and wecombot:// posted a burst at once: past DingTalk's 20 a minute the
    robot is held off ten minutes, the dingtalk targets on it too. Now a robot's slots are
    shared with its own channel's, in the app database, whichever way it is named."""
    limiter = SharedRateLimiter(db, per_minute=3, max_wait=0.0)
    channel = AppriseChannel(SecretResolver({}), GUARD, limiter=limiter)
    # The robot's own channel (dingtalk:TOKEN, another worker's) sent one this minute.
    await SharedRateLimiter(db, per_minute=3, max_wait=0.0).acquire(DING_TOKEN)
    for _ in range(2):
        await channel.send("alice", MESSAGE, f"dingtalk://{DING_TOKEN}/")
    with pytest.raises(DeferredNotifyError, match="robot over 3/min"):
        await channel.send("alice", MESSAGE, f"dingtalk://{DING_TOKEN}/")
    await channel.send("alice", MESSAGE, f"wecombot://{WECOM_KEY}")  # another robot's window
    assert [name for name, _ in robots.received] == ["dingtalk", "dingtalk", "wecom"]


async def test_a_robot_held_off_through_apprise_is_not_posted_to_until_it_takes_messages(
    robots: Robots, db: Database
) -> None:
    """DingTalk holds a robot off ten minutes past its limit, refusing every message: each send
    after the refusal posted once more to be refused, through Apprise or the robot's own
    channel. The refusal fills the robot's shared window until then."""
    robots.throttle = True
    channel = AppriseChannel(SecretResolver({}), GUARD, limiter=SharedRateLimiter(db))
    with pytest.raises(DeferredNotifyError, match="130101") as first:
        await channel.send("alice", MESSAGE, f"dingtalk://{DING_TOKEN}/")
    assert first.value.retry_after == 600
    with pytest.raises(DeferredNotifyError, match="over 20/min") as after:
        await channel.send("alice", MESSAGE, f"dingtalk://{DING_TOKEN}/")
    with pytest.raises(DeferredNotifyError, match="over 20/min") as own:
        await SharedRateLimiter(db).acquire(DING_TOKEN)  # the robot's dingtalk channel's turn
    for deferred in (after.value, own.value):
        assert deferred.retry_after is not None and 590 < deferred.retry_after <= 600
    assert robots.refused == ["dingtalk"]
