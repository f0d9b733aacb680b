"""Generic webhook: JSON body signed with HMAC-SHA256 over "timestamp.body".

Receivers verify `X-Ambient-Signature: sha256=<hex>` with the shared secret and reject
stale `X-Ambient-Timestamp`s; `X-Ambient-Idempotency-Key` lets them drop a repeat.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import httpx

from ambient.clients.guard import DestinationGuard
from ambient.clients.notify.http_errors import checked_destination, post_json
from ambient.clients.notify.secrets import SecretResolver
from ambient.domain.notify import Message


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class WebhookChannel:
    name = "webhook"

    def __init__(
        self,
        http: httpx.AsyncClient,
        secrets: SecretResolver,
        signing_secret: str | None,
        guard: DestinationGuard,
        timeout: float = 15.0,
    ) -> None:
        self._http = http
        self._secrets = secrets
        self._guard = guard
        self._signing_secret = signing_secret
        self._timeout = timeout

    async def send(
        self, user: str, message: Message, target: str, *, idempotency_key: str
    ) -> str | None:
        url = self._secrets.resolve(target)
        pinned = await checked_destination(self._guard, url)
        body = json.dumps(
            {
                "user": user,
                "kind": message.kind,
                "title": message.title,
                "body": message.body,
                "link": message.link,
                "idempotency_key": idempotency_key,
            },
            ensure_ascii=False,
        ).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Ambient-Timestamp": timestamp,
            "X-Ambient-Idempotency-Key": idempotency_key,
        }
        if self._signing_secret:
            headers["X-Ambient-Signature"] = signature(self._signing_secret, timestamp, body)
        response = await post_json(
            self._http,
            pinned.url,
            None,
            headers={**headers, **pinned.headers},
            content=body,
            request_timeout=self._timeout,
        )
        return response.headers.get("x-request-id")
