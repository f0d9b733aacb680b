"""Loopback stand-ins for the push endpoints: they check shape and signatures, fail on demand."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message as EmailMessage
from typing import Any
from urllib.parse import unquote_plus

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.servers import HANG, free_port

WECOM_KEY = "wecom-key-123"
DING_TOKEN, DING_SECRET = "ding-token", "SECabc123"
WEBHOOK_SECRET = "whsec-test"


@dataclass
class PushEndpoints:
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # Next responses to give per endpoint: "500", "busy" (503, Retry-After: 2), "timeout",
    # "errcode:<n>", "late" (the message
    # taken, as a group shows it, its answer held as "timeout"'s); then normal.
    failures: dict[str, list[str]] = field(default_factory=dict)
    # Host headers the webhook saw, in order (pinned requests keep the name the user gave).
    webhook_hosts: list[str] = field(default_factory=list)
    # Each robot's requests in the last minute: both vendors allow 20 a minute per robot.
    robot_posts: dict[str, list[float]] = field(default_factory=dict)
    # Answers that said "over the rate limit", as (robot, errcode).
    throttled: list[tuple[str, int]] = field(default_factory=list)
    # Past its limit DingTalk refuses the robot's messages for ten minutes (130101 each time).
    ding_held_until: float = 0.0
    # Whom each DingTalk message @-mentioned, as the robot's docs say it does: the `at` of a
    # text or markdown message only (an actionCard, link or feedCard documents none), a mobile
    # only where its "@mobile" is in the text: (mobiles, everyone).
    ding_mentions: list[tuple[list[str], bool]] = field(default_factory=list)
    ding_keywords: list[str] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/cgi-bin/webhook/send", self.wecom, methods=["POST"]),
                Route("/robot/send", self.dingtalk, methods=["POST"]),
                Route("/hook", self.webhook, methods=["POST"]),
                Route("/apprise", self.apprise, methods=["POST"]),
                Route("/moved", self.moved, methods=["POST"]),
                # A corporate proxy's sign-in page, answered 200 to whatever is posted.
                Route("/portal/{path:path}", self.portal, methods=["POST"]),
            ]
        )

    def _over_limit(self, robot: str, errcode: int, errmsg: str) -> Response | None:
        # WeCom: "每个机器人发送的消息不能超过20条/分钟" (45009); DingTalk: "每个机器人每分钟最多
        # 发送20条" (130101, then throttled for 10 minutes).
        now = time.monotonic()
        recent = [t for t in self.robot_posts.get(robot, []) if now - t < 60]
        self.robot_posts[robot] = [*recent, now]
        if len(recent) < 20:
            return None
        self.throttled.append((robot, errcode))
        return JSONResponse({"errcode": errcode, "errmsg": errmsg})

    async def _fail(self, name: str, request: Request) -> Response | None:
        queue = self.failures.get(name) or []
        if not queue:
            return None
        mode = queue.pop(0)
        if mode == "500":
            return Response("boom", status_code=500)
        if mode == "busy":  # a 503 asking to be tried again in 2 s
            return Response("busy", status_code=503, headers={"Retry-After": "2"})
        if mode == "late":
            self.received.append((name, await request.json()))
        if mode in ("timeout", "late"):
            # No answer until the client gives up (its timeout), however slow the machine: a
            # fixed 2 s came before a loaded client's 1 s ran out, and was answered.
            async with asyncio.timeout(HANG):
                while (await request.receive())["type"] != "http.disconnect":
                    pass
            return Response("the client left", status_code=504)
        if mode.startswith("errcode:"):
            return JSONResponse({"errcode": int(mode.split(":")[1]), "errmsg": "injected"})
        return None

    async def wecom(self, request: Request) -> Response:
        if request.query_params.get("key") != WECOM_KEY:
            return JSONResponse({"errcode": 93000, "errmsg": "invalid webhook url"})
        if (failed := await self._fail("wecom", request)) is not None:
            return failed
        if (over := self._over_limit(WECOM_KEY, 45009, "api freq out of limit")) is not None:
            return over
        body = await request.json()
        kind = body["msgtype"]
        if kind not in ("markdown", "text"):
            return JSONResponse({"errcode": 40008, "errmsg": "invalid message type"})
        # The robot's documented limits, in UTF-8 bytes: markdown 4096, text 2048.
        limit = {"markdown": 4096, "text": 2048}[kind]
        if len(body[kind]["content"].encode()) > limit:
            return JSONResponse(
                {"errcode": 40058, "errmsg": f"{kind}.content exceed max length {limit}"}
            )
        self.received.append(("wecom", body))
        return JSONResponse({"errcode": 0, "errmsg": "ok"})

    async def dingtalk(self, request: Request) -> Response:
        query = request.query_params
        if query.get("access_token") != DING_TOKEN:
            return JSONResponse({"errcode": 300001, "errmsg": "token is not exist"})
        timestamp = query.get("timestamp", "")
        expected = base64.b64encode(
            hmac.new(
                DING_SECRET.encode(), f"{timestamp}\n{DING_SECRET}".encode(), hashlib.sha256
            ).digest()
        ).decode()
        if unquote_plus(query.get("sign", "")) != expected and query.get("sign") != expected:
            return JSONResponse({"errcode": 310000, "errmsg": "sign not match"})
        # A robot's custom keywords (its security settings): one must be in the message.
        sent = (await request.body()).decode()
        if self.ding_keywords and not any(k in sent for k in self.ding_keywords):
            return JSONResponse({"errcode": 310000, "errmsg": "keywords not in content"})
        failed = await self._fail("dingtalk", request)
        if failed is None and time.monotonic() < self.ding_held_until:
            self.throttled.append((DING_TOKEN, 130101))
            failed = JSONResponse({"errcode": 130101, "errmsg": "send too fast"})
        if failed is None:
            failed = self._over_limit(DING_TOKEN, 130101, "send too fast")
        if failed is not None:
            if bytes(failed.body).startswith(b'{"errcode":130101,'):
                self.ding_held_until = time.monotonic() + 600
            return failed
        raw = await request.body()
        if len(raw) > 20000:  # what the real robot answers a larger request body
            return JSONResponse(
                {"errcode": 460101, "errmsg": "message too long, exceed 20000 bytes"}
            )
        body = json.loads(raw)
        self.received.append(("dingtalk", body))
        kind, at = body["msgtype"], body.get("at") or {}
        if kind in ("text", "markdown"):
            shown = body[kind].get("content") or body[kind].get("text") or ""
            mobiles = [m for m in at.get("atMobiles") or [] if f"@{m}" in shown]
            self.ding_mentions.append((mobiles, bool(at.get("isAtAll"))))
        else:
            self.ding_mentions.append(([], False))
        return JSONResponse({"errcode": 0, "errmsg": "ok"})

    async def apprise(self, request: Request) -> Response:
        if (failed := await self._fail("apprise", request)) is not None:
            return failed
        self.received.append(("apprise", await request.json()))
        return Response("ok")

    async def portal(self, request: Request) -> Response:
        return Response("<html><body>请先登录 / sign in</body></html>", media_type="text/html")

    async def moved(self, request: Request) -> Response:
        self.received.append(("moved", {}))
        if "bare" in request.query_params:  # a 3xx without a Location: still not delivered
            return Response(status_code=302)
        return Response(status_code=307, headers={"location": "/hook"})

    async def webhook(self, request: Request) -> Response:
        raw = await request.body()
        timestamp = request.headers["x-ambient-timestamp"]
        expected = (
            "sha256="
            + hmac.new(
                WEBHOOK_SECRET.encode(), timestamp.encode() + b"." + raw, hashlib.sha256
            ).hexdigest()
        )
        if not hmac.compare_digest(request.headers.get("x-ambient-signature", ""), expected):
            return Response("bad signature", status_code=401)
        if (failed := await self._fail("webhook", request)) is not None:
            return failed
        self.received.append(("webhook", json.loads(raw)))
        self.webhook_hosts.append(request.headers["host"])
        return Response("ok", headers={"x-request-id": "req-1"})


class _Server(SMTP):
    """aiosmtpd's server, with a hook at the DATA command before its 354 (aiosmtpd has none)."""

    async def smtp_DATA(self, arg: str) -> None:
        if (before := getattr(self.event_handler, "on_data_command", None)) is not None:
            before()
        await super().smtp_DATA(arg)


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _Server(self.handler, **self.SMTP_kwargs)


class Mailbox:
    """A real SMTP server (aiosmtpd) on loopback that keeps what it receives."""

    def __init__(
        self,
        *,
        auth_reply: str | None = None,
        tls: ssl.SSLContext | None = None,
        login: tuple[str, str] | None = None,
        smtputf8: bool = True,
        size_limit: int | None = None,
        fqdn_helo: bool = False,
    ) -> None:
        self.messages: list[EmailMessage] = []
        # With fqdn_helo, a recipient is refused to a client whose EHLO name is no fully
        # qualified one, as Postfix's reject_non_fqdn_helo_hostname does (at RCPT, by default).
        self.fqdn_helo = fqdn_helo
        self.helo_names: list[str] = []  # the EHLO name of each RCPT's session
        self.raw: list[bytes] = []  # each message as it came over the wire
        self.envelopes: list[tuple[str, list[str]]] = []  # (MAIL FROM, RCPT TOs) of each
        self.refuse: set[str] = set()
        # Addresses answered "try again later" (greylisting, a full mailbox), as real servers do.
        self.greylist: set[str] = set()
        # Greylisting as a server does it: the first ``greylist_first`` tries of each (sender,
        # recipient) are answered ``greylist_reply``, a later one is taken (a real server takes
        # it once its delay has passed since the first; counted here, for time skipping).
        self.greylist_first = 0
        self.greylist_reply = "451 4.7.1 Greylisted, try again in 300 seconds"
        # Every RCPT try, in order: (sender, recipient).
        self.tries: list[tuple[str, str]] = []
        # MAIL FROM answered so (a server wanting STARTTLS or a login first: "530 ...").
        self.mail_reply: str | None = None
        # What a refused recipient is answered (``refuse``): Postfix's relay refusal, say.
        self.refuse_reply = "550 no such user"
        # The connection lost after the message, before its 250 (RFC 5321 6.1): kept, unsaid.
        self.drop_after_data = False
        # Called once a message is kept, before its 250 is sent (e.g. to kill the sender).
        self.on_data: Callable[[], None] | None = None
        # Called at the DATA command, before its 354 (a policy check there holds the 354):
        # nothing of the message has been sent yet.
        self.on_data_command: Callable[[], None] | None = None
        # Seconds the 250 to a kept message waits (a server scanning it, or one that hangs).
        self.data_delay = 0.0
        self.port = free_port()
        # With auth_reply, the server offers AUTH (over plain SMTP) and answers every login so.
        auth: dict[str, Any] = {}
        if auth_reply is not None:
            auth = {
                "auth_require_tls": False,
                "authenticator": lambda *args: AuthResult(
                    success=False, handled=False, message=auth_reply
                ),
            }
        # With login, AUTH takes that user and password only, and the user sends as itself
        # only, as QQ, 163 and Exmail do ("501 mail from address must be same as
        # authorization user").
        self.login = login
        if login is not None:
            auth = {"auth_require_tls": False, "authenticator": self._authenticate}
        # With tls, the server speaks TLS from the first byte (implicit TLS, as on port 465).
        # Without smtputf8, no SMTPUTF8 offered (RFC 6531): addresses in ASCII only, as many
        # relays take them. With size_limit, the server announces it (ESMTP SIZE, RFC 1870) and
        # refuses a MAIL FROM whose SIZE= is over it with 552, as Postfix's message_size_limit.
        limit = {} if size_limit is None else {"data_size_limit": size_limit}
        self.controller = _Controller(
            self,
            hostname="127.0.0.1",
            port=self.port,
            ssl_context=tls,
            enable_SMTPUTF8=smtputf8,
            **auth,
            **limit,
        )

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope, *args: Any) -> Any:
        data = args[-1]
        given = (data.login.decode(), data.password.decode())
        return AuthResult(success=given == self.login, auth_data=given[0])

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.mail_reply is not None:
            return self.mail_reply
        if self.login is not None and address != self.login[0]:
            return "501 mail from address must be same as authorization user"
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        triplet = (envelope.mail_from or "", address)
        self.tries.append(triplet)
        name = session.host_name or ""
        self.helo_names.append(name)
        if self.fqdn_helo and "." not in name.strip("."):
            return f"504 5.5.2 <{name}>: Helo command rejected: need fully-qualified hostname"
        if address in self.refuse:
            return self.refuse_reply
        if address in self.greylist:
            return "450 4.7.1 greylisted, try again later"
        if self.tries.count(triplet) <= self.greylist_first:
            return self.greylist_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        self.raw.append(envelope.content)
        self.envelopes.append((envelope.mail_from or "", list(envelope.rcpt_tos)))
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        if self.on_data is not None:
            self.on_data()
        if self.drop_after_data:
            server.transport.close()  # the 250 below goes nowhere
        await asyncio.sleep(self.data_delay)
        return "250 Message accepted"

    def __enter__(self) -> Mailbox:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
