"""DingTalk (钉钉) custom robot: signed requests, markdown or ActionCard, @mobiles, rate limit.

Target: `ACCESS_TOKEN#SIGN_SECRET`, the robot URL (`...?access_token=...#SIGN_SECRET`) or
`secret:NAME` holding either, optionally `?at=138...,139...` or `?at=all`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote_plus

from ambient.clients.notify.errors import PermanentNotifyError, TransientNotifyError
from ambient.clients.notify.robots import EVERYONE, RobotChannel, heading, listed
from ambient.domain.notify import Message

PER_MINUTE = 20  # the robot's documented limit
REQUEST_LIMIT = 20000  # bytes: a larger request body is refused (errcode 460101)
CUT_NOTE = "\n\n……(内容过长，已截断 / cut: too long for DingTalk)"


def sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's signature: base64(HMAC-SHA256(secret, "timestamp\\nsecret")), URL-encoded."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256)
    return quote_plus(base64.b64encode(digest.digest()).decode())


class RateLimiter:
    """A sliding one-minute window per robot; waits for a slot up to ``max_wait`` seconds."""

    def __init__(
        self,
        per_minute: int = PER_MINUTE,
        max_wait: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._per_minute = per_minute
        self._max_wait = max_wait
        self._clock = clock
        self._sent: dict[str, deque[float]] = defaultdict(deque)
        self._lock = asyncio.Lock()

    async def acquire(self, robot: str) -> None:
        # The slot is taken under the lock and waited for outside it: a robot over its limit
        # must not hold up the sends of every other robot.
        async with self._lock:
            now = self._clock()
            # Forget the robots without a send this minute (their last slot may lie ahead).
            for quiet in [r for r, sent in self._sent.items() if not sent or now - sent[-1] >= 60]:
                del self._sent[quiet]
            window = self._sent[robot]
            while window and now - window[0] >= 60:
                window.popleft()
            slot = now
            if len(window) >= self._per_minute:
                slot = window[0] + 60
                if slot - now > self._max_wait:
                    raise TransientNotifyError(f"dingtalk robot over {self._per_minute}/min")
                window.popleft()
            window.append(slot)
        await asyncio.sleep(max(0.0, slot - self._clock()))


@dataclass
class DingTalkChannel(RobotChannel):
    name = "dingtalk"
    path = "/robot/send"
    key_param = "access_token"
    rate_limited = frozenset({130101, 410100})

    limiter: RateLimiter = field(default_factory=RateLimiter)

    async def send(self, user: str, message: Message, target: str, **unused: object) -> str | None:
        address, options = self.address(target)
        token, _, secret = address.partition("#")
        if not token:
            raise PermanentNotifyError("dingtalk target needs ACCESS_TOKEN[#SIGN_SECRET]")
        at = listed(options, "at")
        at_all = EVERYONE in at
        mobiles = [a for a in at if a != EVERYONE]

        def payload_with(body: str) -> dict[str, object]:
            text = body + "".join(f" @{m}" for m in mobiles)  # @ must appear in the text
            card = {"title": message.title, "text": f"{heading(message.title)}\n\n{text}"}
            if message.link:
                card |= {"singleTitle": "查看详情 / Open", "singleURL": message.link}
                payload: dict[str, object] = {"msgtype": "actionCard", "actionCard": card}
            else:
                payload = {"msgtype": "markdown", "markdown": card}
            payload["at"] = {"atMobiles": mobiles, "isAtAll": at_all}
            return payload

        payload = payload_with(message.body)
        over = len(json.dumps(payload, ensure_ascii=False).encode()) - REQUEST_LIMIT
        if over > 0:  # cut the body: the JSON shrinks by at least the bytes cut from it
            keep = len(message.body.encode()) - over - 2 * len(CUT_NOTE.encode())
            kept = message.body.encode()[: max(keep, 0)].decode(errors="ignore")
            payload = payload_with((kept.rpartition("\n")[0] or kept) + CUT_NOTE)
        url = self.endpoint(token)
        if secret:
            timestamp = int(time.time() * 1000)
            url += f"&timestamp={timestamp}&sign={sign(secret, timestamp)}"
        await self.limiter.acquire(token)
        await self.post(url, payload)
        return None
