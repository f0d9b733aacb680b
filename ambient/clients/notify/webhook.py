"""Generic webhook: JSON body signed with HMAC-SHA256 over "timestamp.body".

Receivers verify `X-Ambient-Signature: sha256=<hex>` with the shared secret and reject
stale `X-Ambient-Timestamp`s; `X-Ambient-Idempotency-Key` lets them drop a repeat.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx

from ambient.clients.guard import DestinationGuard, guarded_client
from ambient.clients.notify.http_errors import checked_destination, post_json
from ambient.clients.notify.secrets import SecretResolver
from ambient.clients.tls import ca_context
from ambient.domain.notify import Message
from ambient.render import markdown_plain

KEPT = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")  # printable ASCII but %


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


@dataclass(repr=False)  # the signing secret stays out of logs and tracebacks
class WebhookChannel:
    """Posts to the user's URL; every connection to the address the guard checked for its
    host (HTTPS too: the name stays in the URL for Host and TLS), never a second lookup's."""

    name = "webhook"

    secrets: SecretResolver
    signing_secret: str | None
    guard: DestinationGuard
    timeout: float = 15.0
    verify: ssl.SSLContext = field(default_factory=ca_context)
    http: httpx.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        self.http = guarded_client(self.guard, verify=self.verify)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def send(
        self, user: str, message: Message, target: str, *, idempotency_key: str, **unused: object
    ) -> str | None:
        url = self.secrets.resolve(target)
        await checked_destination(self.guard, url)  # refused for good, before any send
        sent = {
            "user": user,
            "kind": message.kind,
            "title": message.title,
            "body": markdown_plain(message.body),
            "link": message.link,
            "idempotency_key": idempotency_key,
        }
        body = json.dumps(sent, ensure_ascii=False).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Ambient-Timestamp": timestamp,
            # Header values are ASCII: a key naming a Chinese URL goes percent-encoded (UTF-8),
            # as is in the body.
            "X-Ambient-Idempotency-Key": (
                idempotency_key if idempotency_key.isascii() else quote(idempotency_key, safe=KEPT)
            ),
        }
        if self.signing_secret:
            headers["X-Ambient-Signature"] = signature(self.signing_secret, timestamp, body)
        # Its 2xx says the message was taken: the answer's body is not read (nor waited for).
        response = await post_json(
            self.http,
            url,
            None,
            headers=headers,
            content=body,
            request_timeout=self.timeout,
            reads_success=False,
        )
        return response.headers.get("x-request-id")
