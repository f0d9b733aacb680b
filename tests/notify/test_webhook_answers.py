"""What a webhook's receiver answers is read only as far as a send needs it: its status, and
the first words of its body (a robot's JSON, a refusal's reason). A member's webhook is a URL
they aim at a server they may run: an answer that never ends, or one compressed a
thousandfold, was read whole into the worker's memory, which every user's sends share."""

from __future__ import annotations

import tracemalloc
import zlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ambient.clients.guard import DestinationGuard
from ambient.clients.notify.apprise import AppriseChannel
from ambient.clients.notify.http_errors import ANSWER_LIMIT, post_json
from ambient.clients.notify.secrets import SecretResolver
from ambient.clients.notify.webhook import WebhookChannel
from ambient.domain.notify import Message
from tests.support.servers import http_client, serve

LONG = 64 * 1024 * 1024  # bytes of the long answer the receiver would send
BLOCK = b"x" * 65536


class Receiver:
    """Takes the message (200), then answers at length."""

    def __init__(self) -> None:
        self.written = 0
        # 100 MB of zeros, gzip-compressed to ~100 KB, labelled as such.
        packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
        self.bomb = packer.compress(bytes(100 * 1024 * 1024)) + packer.flush()

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/long", self.long, methods=["POST"]),
                Route("/packed", self.packed, methods=["POST"]),
            ]
        )

    async def long(self, request: Request) -> Response:
        await request.body()

        async def blocks() -> AsyncIterator[bytes]:
            while self.written < LONG:
                self.written += len(BLOCK)
                yield BLOCK

        return StreamingResponse(blocks(), media_type="text/plain")

    async def packed(self, request: Request) -> Response:
        await request.body()
        headers = {"content-encoding": "gzip"}
        return Response(self.bomb, headers=headers, media_type="application/json")


async def test_a_webhook_answering_at_length_is_taken_without_reading_the_rest() -> None:
    # An answer that goes on (here 64 MB; one that never ended was read until the send's
    # deadline cut it, gigabytes on loopback, then posted again as a failed send): the message
    # was taken, and the rest of the answer is left unread.
    receiver = Receiver()
    async with serve(receiver.app()) as base, http_client() as http:
        guard = DestinationGuard(["127.0.0.1/32"])
        channel = WebhookChannel(http, SecretResolver({}), None, guard, timeout=60)
        message = Message(title="Disk 91%", body="node-3")
        await channel.send("alice", message, f"{base}/long", idempotency_key="k")
        # What the receiver had written when the send ended (it writes on into a connection
        # closed: the server does not stop its answer).
        assert receiver.written < LONG // 4


async def test_a_compressed_answer_is_read_as_far_as_its_first_words_decode_to() -> None:
    # ~100 KB that decode to 100 MB: held whole, a few such answers took the worker's memory.
    receiver = Receiver()
    async with serve(receiver.app()) as base, http_client() as http:
        tracemalloc.start()
        try:
            answer = await post_json(http, f"{base}/packed", {"text": "hi"})
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert answer.status_code == 200 and answer.content == bytes(ANSWER_LIMIT)
    assert peak < 8 * 1024 * 1024


async def test_an_apprise_service_answering_at_length_is_read_no_further_than_its_first_words() -> (
    None
):
    # Apprise reads answers with requests, whole: the same two answers, through json://.
    receiver = Receiver()
    channel = AppriseChannel(SecretResolver({}), DestinationGuard(["127.0.0.1/32"]))
    message = Message(title="Disk 91%", body="node-3")
    async with serve(receiver.app()) as base:
        address = base.removeprefix("http://")
        await channel.send("alice", message, f"json://{address}/long")
        assert receiver.written < LONG // 4
        tracemalloc.start()
        try:
            await channel.send("alice", message, f"json://{address}/packed")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 8 * 1024 * 1024
