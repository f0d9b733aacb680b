"""What a receiver answers is read only as far as a send needs it: a webhook's 2xx, its status
and headers; a refusal's reason or a robot's JSON, the first words of its body; what an Apprise
service reads, its answer to a bound. A member's webhook is a URL they aim at a server they may
run: an answer that never ends, or one compressed a thousandfold, was read whole into the
worker's memory, which every user's sends share; one that trickled was read until the send's
deadline, and the message, taken, posted again. What it said is kept as both databases can
hold it (a NUL, an id past its column)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities
from ambient.clients.guard import DestinationGuard
from ambient.clients.notify.apprise import APPRISE_ANSWER_LIMIT, AppriseChannel
from ambient.clients.notify.dingtalk import DingTalkChannel
from ambient.clients.notify.errors import (
    DeferredNotifyError,
    PermanentNotifyError,
    TransientNotifyError,
)
from ambient.clients.notify.http_errors import ANSWER_LIMIT, post_json
from ambient.clients.notify.registry import build_channels
from ambient.clients.notify.secrets import SecretResolver
from ambient.clients.notify.webhook import WebhookChannel
from ambient.deps import WorkerDeps
from ambient.domain.notify import Delivery, DeliveryStatus, Message, NotifyRequest, Target
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.migrate import upgrade_async
from ambient.storage.models import Delivery as Row
from tests.conftest import unique
from tests.foundation.test_postgres import postgres_url  # noqa: F401  (fixture)
from tests.notify.test_delivery import _user
from tests.notify.test_leases import _notify, _rows
from tests.support.servers import http_client, serve

LONG = 64 * 1024 * 1024  # bytes of the long answer the receiver would send
BLOCK = b"x" * 65536
TELEGRAM = "tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/"  # no chat id


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
    async with serve(receiver.app()) as base:
        guard = DestinationGuard(["127.0.0.1/32"])
        channel = WebhookChannel(SecretResolver({}), None, guard, timeout=60)
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


async def test_an_apprise_service_answering_past_its_limit_fails_the_send_saying_so() -> None:
    # Apprise reads answers with requests, whole: the same two answers, through json://. Read
    # no further than APPRISE_ANSWER_LIMIT (what a service's own lookups may need: a Telegram
    # bot's updates) and not handed to the service cut, the send fails, saying why.
    receiver = Receiver()
    channel = AppriseChannel(SecretResolver({}), DestinationGuard(["127.0.0.1/32"]))
    message = Message(title="Disk 91%", body="node-3")
    too_long = f"answer is longer than {APPRISE_ANSWER_LIMIT // 2**20} MiB: not read"
    async with serve(receiver.app()) as base:
        address = base.removeprefix("http://")
        with pytest.raises(TransientNotifyError, match=too_long):
            await channel.send("alice", message, f"json://{address}/long")
        assert receiver.written < LONG // 4
        tracemalloc.start()
        try:
            with pytest.raises(TransientNotifyError, match=too_long):
                await channel.send("alice", message, f"json://{address}/packed")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 4 * APPRISE_ANSWER_LIMIT


class Telegram:
    """Telegram's Bot API as Apprise uses it: a target without a chat id is sent to the bot's
    owner, found in the bot's pending updates (getUpdates: up to 100 messages, ~100 KB in a
    busy group's, each message up to 4096 characters)."""

    OWNER = 532389719

    def __init__(self, updates: int, text: str) -> None:
        self.sent: list[dict[str, object]] = []
        self.updates = [
            {
                "update_id": number,
                "message": {
                    "message_id": number,
                    "from": {"id": self.OWNER, "is_bot": False, "first_name": "Chris"},
                    "chat": {"id": -100123, "type": "group"},
                    "date": 1519694394,
                    "text": text,
                },
            }
            for number in range(updates)
        ]

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/bot{token}/getUpdates", self.get_updates, methods=["POST"]),
                Route("/bot{token}/sendMessage", self.send_message, methods=["POST"]),
            ]
        )

    async def get_updates(self, request: Request) -> Response:
        await request.body()
        return JSONResponse({"ok": True, "result": self.updates})

    async def send_message(self, request: Request) -> Response:
        self.sent.append(await request.json())
        return JSONResponse({"ok": True, "result": {"message_id": len(self.sent)}})


@pytest.fixture
def telegram_at(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Aims Apprise's Telegram service (its API host fixed in the plugin) at a stand-in."""
    from apprise.plugins.telegram import NotifyTelegram

    return lambda base: monkeypatch.setattr(NotifyTelegram, "notify_url", f"{base}/bot")


async def test_a_telegram_bot_whose_owner_is_found_in_100_kb_of_updates_gets_the_message(
    telegram_at: Callable[[str], None],
) -> None:
    # The owner's chat is read from the bot's updates, which the service reads whole: cut at a
    # webhook's 64 KiB, they were not JSON, and the message was never sent (every retry alike).
    telegram = Telegram(updates=100, text="磁盘告警 " * 100)
    channel = AppriseChannel(SecretResolver({}), DestinationGuard(["127.0.0.1/32"]))  # the vendor
    async with serve(telegram.app()) as base:
        telegram_at(base)
        await channel.send("alice", Message(title="Disk 91%", body="node-3"), TELEGRAM)
    updates = json.dumps({"ok": True, "result": telegram.updates}, ensure_ascii=False)
    assert len(updates.encode()) > 2 * ANSWER_LIMIT
    assert [sent["chat_id"] for sent in telegram.sent] == [str(Telegram.OWNER)]


@contextlib.asynccontextmanager
async def cut_answers(answer: bytes, sent: int) -> AsyncIterator[str]:
    """A server that answers each request with ``answer`` (headers and body), then closes the
    connection after its first ``sent`` bytes of body: a connection dropped mid-answer."""

    async def answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        headers, _, body = answer.partition(b"\r\n\r\n")
        writer.write(headers + b"\r\n\r\n" + body[:sent])
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answering, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


async def test_a_robot_refusal_cut_mid_answer_is_not_taken_for_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # DingTalk through Apprise: "over the rate limit" (HTTP 200, the refusal in its JSON), the
    # connection dropped after 12 bytes of it. Read once, the 12 bytes came back without error,
    # were not the robot's JSON, and the 200 said sent: the message was lost, not retried.
    from apprise.plugins.dingtalk import NotifyDingTalk

    body = b'{"errcode":130101,"errmsg":"send too fast, exceed 20 times per minute"}'
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    answer += b"Content-Length: %d\r\n\r\n" % len(body) + body
    channel = AppriseChannel(SecretResolver({}), DestinationGuard(["127.0.0.1/32"]))  # the vendor
    async with cut_answers(answer, sent=12) as base:
        monkeypatch.setattr(NotifyDingTalk, "notify_url", base + "/robot/send?access_token={token}")
        with pytest.raises(TransientNotifyError, match="IncompleteRead") as failed:
            await channel.send("alice", Message(title="t", body="b"), "dingtalk://" + "a" * 64)
    assert not isinstance(failed.value, DeferredNotifyError)  # what the robot said is unknown


async def test_a_webhook_answering_200_then_a_byte_a_second_is_sent_once(deps: WorkerDeps) -> None:
    # The 2xx says the message was taken. Its body, which a webhook's send does not use, was
    # read until the send's deadline: "transient: no answer", and the message posted again.
    posts: list[bytes] = []
    done = asyncio.Event()

    async def dripping(request: Request) -> Response:
        posts.append(await request.body())

        async def drip() -> AsyncIterator[bytes]:
            while not done.is_set():
                yield b" "
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), 1)

        return StreamingResponse(drip(), media_type="application/json")

    await _user(deps.db, "alice")
    # A deadline the test can wait out: the old read ran into it.
    deps.settings = deps.settings.model_copy(
        update={"fetch_allow_cidrs": ["127.0.0.1/32"], "notify_target_timeout": 10}
    )
    notify = NotifyActivities(deps.db, build_channels(deps.settings, deps.db, deps.http))
    try:
        async with serve(Starlette(routes=[Route("/hook", dripping, methods=["POST"])])) as base:
            hook = Target(type="webhook", target=f"{base}/hook")
            request = NotifyRequest(
                user="alice",
                message=Message(title="Disk 91%", body="node-3"),
                targets=[hook],
                idempotency_key=unique("drip"),
            )
            result = await ActivityEnvironment().run(notify.notify, request)
            done.set()
    finally:
        done.set()
    assert [d.status for d in result.deliveries] == [DeliveryStatus.SENT]
    assert len(posts) == 1


async def test_an_answer_compressed_as_raw_deflate_is_read_and_an_unknown_coding_said() -> None:
    # Asked uncompressed, a receiver compressed anyway: "deflate" as many servers send it (no
    # zlib header) came out empty, and a coding not read (br) was an empty answer, the robots'
    # "not the robot's JSON answer (b'')".
    said = b'{"errcode":0,"errmsg":"ok"}'
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)

    async def raw_deflate(request: Request) -> Response:
        await request.body()
        packed = packer.compress(said) + packer.flush()
        return Response(packed, headers={"content-encoding": "deflate"})

    async def brotli(request: Request) -> Response:
        await request.body()
        return Response(b"\x0b\x02\x80{}\x03", headers={"content-encoding": "br"})

    routes = [
        Route("/deflate", raw_deflate, methods=["POST"]),
        Route("/robot/send", brotli, methods=["POST"]),  # a DingTalk robot's endpoint
    ]
    async with serve(Starlette(routes=routes)) as base, http_client() as http:
        assert (await post_json(http, f"{base}/deflate", {"text": "hi"})).content == said
        robot = DingTalkChannel(http, SecretResolver({}), base)
        with pytest.raises(PermanentNotifyError, match=r"\(answer compressed as br, not read\)"):
            await robot.send("alice", Message(title="t", body="b"), "token")


@pytest.mark.parametrize(
    ("status", "refused"),
    [
        (b"400 Bad Request", PermanentNotifyError),
        (b"429 Too Many Requests\r\nRetry-After: 120", DeferredNotifyError),
    ],
)
async def test_an_apprise_services_refusal_cut_mid_answer_is_said_by_its_status(
    status: bytes, refused: type[Exception]
) -> None:
    # json:// answering a refusal whose body the connection cut: its status and headers say
    # it, as the same answer read whole does (a 400 for good, a 429 later, when it says); the
    # body's failed read made it "not accepted", transient, a refusal posted again in seconds.
    body = b'{"error": "' + b"no such topic " * 100 + b'"}'
    answer = b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
    answer += b"Content-Length: %d\r\n\r\n" % len(body) + body
    channel = AppriseChannel(SecretResolver({}), DestinationGuard(["127.0.0.1/32"]))
    async with cut_answers(answer, sent=40) as base:
        address = base.removeprefix("http://")
        with pytest.raises(refused) as failed:
            await channel.send("alice", Message(title="t", body="b"), f"json://{address}/hook")
    if refused is DeferredNotifyError:
        assert isinstance(failed.value, DeferredNotifyError) and failed.value.retry_after == 120


async def _answered_by(
    database_url: str, settings: Settings, answer: Response
) -> tuple[list[Delivery], list[bytes], list[Row]]:
    """A notification to a webhook answering ``answer``, on the app database at
    ``database_url``: what the notification returned, the posts it took and the rows kept."""
    posts: list[bytes] = []

    async def hook(request: Request) -> Response:
        posts.append(await request.body())
        return answer

    await upgrade_async(database_url)
    db, user, key = Database(database_url), unique("ann"), unique("disk")
    try:
        await _user(db, user)
        async with (
            serve(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as base,
            http_client() as http,
        ):
            aimed = settings.model_copy(update={"fetch_allow_cidrs": ["127.0.0.1/32"]})
            notify = NotifyActivities(db, build_channels(aimed, db, http))
            request = NotifyRequest(
                user=user,
                message=Message(title="Disk 91%", body="node-3"),
                targets=[Target(type="webhook", target=f"{base}/hook")],
                idempotency_key=key,
            )
            result = await ActivityEnvironment().run(notify.notify, request)
        async with db.session() as session:
            rows = list(await session.scalars(select(Row).where(Row.key.startswith(key))))
    finally:
        await db.close()
    return result.deliveries, posts, rows


async def test_a_webhook_answering_a_request_id_past_its_column_is_sent_once(
    database_url: str, settings: Settings
) -> None:
    # A receiver's gateway that chains trace ids answered a 300-character X-Request-Id: on
    # PostgreSQL its row refused it after the message was taken, the send said "internal
    # error" and the row stayed in flight (a retry of its key could post it again).
    answer = Response("ok", headers={"x-request-id": "r" * 300})
    deliveries, posts, rows = await _answered_by(database_url, settings, answer)
    assert [d.status for d in deliveries] == [DeliveryStatus.SENT]
    assert len(posts) == 1
    assert [(r.status, r.provider_id) for r in rows] == [("sent", "r" * 254 + "…")]


async def test_a_webhook_refusal_whose_words_hold_a_nul_is_said_as_its_refusal(
    database_url: str, settings: Settings
) -> None:
    # A receiver whose 400 carries a C program's buffer: on PostgreSQL (its text holds no NUL)
    # the refusal's row was refused, the send said "internal error" and the row stayed in
    # flight until its lease ran out. A NUL is kept as U+FFFD, on both databases.
    answer = Response(b"bad signature\x00\x00", status_code=400)
    deliveries, posts, rows = await _answered_by(database_url, settings, answer)
    said = "permanent: HTTP 400: bad signature\ufffd\ufffd"
    assert [(d.status, d.error) for d in deliveries] == [(DeliveryStatus.FAILED, said)]
    assert len(posts) == 1
    assert [(r.status, r.error) for r in rows] == [("failed", said)]


@pytest.mark.parametrize("code", [410, 429, 500])
async def test_a_refusal_whose_page_comes_slowly_is_said_by_its_status(
    deps: WorkerDeps, code: int
) -> None:
    # The status line and headers at once, then an error page a few bytes at a time (a big
    # page over a slow link, a proxy that stalls after the headers): the page was read until
    # the send's deadline, its status dropped, "transient: no answer within 3s", and a 410
    # Gone posted again.
    posts: list[int] = []

    async def refuse(request: Request) -> Response:
        await request.body()
        posts.append(code)

        async def page() -> AsyncIterator[bytes]:
            yield b"<html><body><h1>This endpoint is gone</h1>"
            for _ in range(30):  # past the send's 10 s
                await asyncio.sleep(0.5)
                yield b" "

        return StreamingResponse(page(), status_code=code, media_type="text/html")

    await _user(deps.db, "alice")
    async with serve(Starlette(routes=[Route("/hook", refuse, methods=["POST"])])) as base:
        # 10 s: the refusal's page is read for 1.5 s at most, what is left of a 3 s budget
        # on a loaded machine was too little for its first line.
        notify = _notify(deps, base, notify_target_timeout=10.0)
        key = unique(f"slow-refusal-{code}")
        request = NotifyRequest(
            user="alice",
            message=Message(title="Disk 91%", body="node-3"),
            targets=[Target(type="webhook", target=f"{base}/hook")],
            idempotency_key=key,
        )
        with contextlib.suppress(Exception):  # a transient failure is raised for a retry
            await notify.send(request, heartbeat=False)
        error = (await _rows(deps.db, key))["webhook"].error or ""
    assert "no answer within" not in error, error
    expected = {
        410: "permanent: HTTP 410: <html><body><h1>This endpoint is gone</h1>",
        429: "transient: HTTP 429",
        500: "transient: HTTP 500",
    }[code]
    assert error.startswith(expected), error
    assert posts == [code]


async def test_a_webhook_waits_for_its_answer_as_long_as_the_sends_deadline_setting(
    deps: WorkerDeps,
) -> None:
    """A fixed 15 s cut a receiver answering in 20 (the deadline 30 s, or 60 as set): posted
    again five times, then said failed with "send again"."""
    for seconds in (45.0, 7.0):
        settings = deps.settings.model_copy(update={"notify_target_timeout": seconds})
        channels = build_channels(settings, deps.db, deps.http)
        webhook = channels.get("webhook")
        await channels.aclose()
        assert isinstance(webhook, WebhookChannel) and webhook.timeout == seconds
