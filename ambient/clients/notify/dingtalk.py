"""DingTalk (钉钉) custom robot: signed requests, markdown or ActionCard, @mobiles.

Target: `ACCESS_TOKEN#SIGN_SECRET`, the robot URL (`...?access_token=...#SIGN_SECRET`) or
`secret:NAME` holding either, optionally `?at=138...,139...` or `?at=all`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote_plus

from ambient.clients.notify.base import Posts
from ambient.clients.notify.errors import PermanentNotifyError
from ambient.clients.notify.robots import (
    DINGTALK_LIMITED,
    EVERYONE,
    UPDATE_TARGET,
    RobotChannel,
    cut_to_fit,
    heading,
    held_in_secret,
    listed,
)
from ambient.domain.notify import ROBOT_KEYS, Message

REQUEST_LIMIT = 20000  # bytes: a larger request body is refused (errcode 460101)
TITLE_LIMIT = 200  # characters of a title kept (a notice's line; the body says the rest)
OPEN = "查看详情 / Open"  # the message's link, as a button or in its text


def request_size(payload: dict[str, object]) -> int:
    """The bytes of ``payload``'s request body, as httpx encodes it (compact, UTF-8)."""
    return len(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode())


def fitted(payload_with: Callable[[str], dict[str, object]], body: str) -> dict[str, object]:
    """The payload of ``body``, cut to fit REQUEST_LIMIT as sent: JSON writes a quote or a line
    break in two bytes (a body of quotes was cut whole when counted as raw bytes)."""
    return payload_with(
        cut_to_fit(body, lambda kept: request_size(payload_with(kept)) <= REQUEST_LIMIT)
    )


def sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's signature: base64(HMAC-SHA256(secret, "timestamp\\nsecret")), URL-encoded."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256)
    return quote_plus(base64.b64encode(digest.digest()).decode())


@dataclass
class DingTalkChannel(RobotChannel):
    name = "dingtalk"
    path = "/robot/send"
    key_param = ROBOT_KEYS[name]
    rate_limited = DINGTALK_LIMITED

    async def send(
        self,
        user: str,
        message: Message,
        target: str,
        *,
        posts: Posts | None = None,
        **unused: object,
    ) -> str | None:
        address, options = self.address(target)
        token, _, secret = address.partition("#")
        if not token:
            raise PermanentNotifyError("dingtalk target needs ACCESS_TOKEN[#SIGN_SECRET]")
        at = listed(options, "at")
        at_all = EVERYONE in at
        mobiles = [a for a in at if a != EVERYONE]

        # DingTalk @-mentions from text and markdown messages only (`at` is documented for
        # those): a message with a link and people to mention carries its link in the text.
        button = message.link if not at else None
        link = message.link_to_add if at else None

        def payload_with(body: str) -> dict[str, object]:
            text = body + (f"\n\n[{OPEN}]({link})" if link else "")
            text += "".join(f" @{m}" for m in mobiles)  # @ must appear in the text
            title = message.title  # said twice: the notice's line and the heading
            if len(title) > TITLE_LIMIT:
                title = title[: TITLE_LIMIT - 1] + "…"
            card = {"title": title, "text": f"{heading(title)}\n\n{text}"}
            if button:
                card |= {"singleTitle": OPEN, "singleURL": button}
            kind = "actionCard" if button else "markdown"
            return {"msgtype": kind, kind: card, "at": {"atMobiles": mobiles, "isAtAll": at_all}}

        payload = fitted(payload_with, message.body)
        url = self.endpoint(token)
        if secret:
            timestamp = int(time.time() * 1000)
            url += f"&timestamp={timestamp}&sign={sign(secret, timestamp)}"
        update = held_in_secret(target) or UPDATE_TARGET
        await self.post(url, payload, robot=token, update=update, posts=posts)
        return None
