"""The lean HTTP/1.1 client of page checks, against real servers on loopback.

A scripted TCP server answers each request with bytes a test chooses (chunked, gzip, a
close-delimited body, a stale keep-alive connection, a hang, garbage), the standard
library's ``http.server`` is a server of another kind (HTTP/1.0), and a TLS server checks
that the certificate is verified for the URL's name while the connection goes to the
checked address.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
import threading
import zlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import h11
import pytest

from ambient.clients import http1
from ambient.clients.http1 import PageClient
from ambient.clients.http1_errors import BodyTooLargeError, HttpProtocolError
from ambient.clients.web import WebFetcher
from ambient.clients.web_errors import FetchError, TooLargeError
from bench.certs import certificate

LOOPBACK = ["127.0.0.1/32"]
CLOSE = b"<close without answering>"
HANG = b"<never answer>"
CAP = 1024 * 1024


class Scripted:
    """Answers the n-th request with ``answers[n]``; counts connections and keeps requests."""

    def __init__(self, *answers: bytes, close_after: bool = False) -> None:
        self.answers = list(answers)
        self.close_after = close_after
        self.connections = 0
        self.requests: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                self.requests.append(head)
                answer = self.answers.pop(0)
                if answer == CLOSE:
                    return
                if answer == HANG:
                    await asyncio.sleep(3600)
                writer.write(answer)
                await writer.drain()
                if self.close_after:
                    return
        finally:
            writer.close()


@asynccontextmanager
async def scripted(
    server: Scripted, tls: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[Scripted, int]]:
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=tls)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield server, port
    finally:
        for writer in server.writers:
            writer.close()
        listener.close()


def ok(body: bytes, *headers: str, version: str = "HTTP/1.1") -> bytes:
    head = [f"{version} 200 OK", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def get(client: PageClient, port: int, path: str = "/", **headers: str) -> tuple[int, bytes]:
    answer = await client.get(
        f"http://127.0.0.1:{port}{path}",
        {"User-Agent": "test", **headers},
        addresses=["127.0.0.1"],
        time_limit=5,
        max_bytes=CAP,
    )
    return answer.status, answer.body


async def test_keep_alive_carries_a_watchs_conditional_gets_on_one_connection() -> None:
    not_modified = b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\n\r\n'
    client = PageClient()
    async with scripted(Scripted(ok(b"hello", 'ETag: "v1"'), not_modified, ok(b"again"))) as (
        server,
        port,
    ):
        assert await get(client, port, "/a") == (200, b"hello")
        assert await get(client, port, "/a", **{"If-None-Match": '"v1"'}) == (304, b"")
        assert await get(client, port, "/a") == (200, b"again")
    await client.aclose()
    assert server.connections == 1
    first = server.requests[0].decode()
    assert first.startswith("GET /a HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{port}\r\n" in first and "Accept-Encoding: gzip, deflate" in first
    assert 'If-None-Match: "v1"' in server.requests[1].decode()


class CountedH11(h11.Connection):
    """h11's client, counting the events it is asked for (to see which answers it reads)."""

    events = 0

    def next_event(self) -> Any:
        CountedH11.events += 1
        return super().next_event()


async def test_a_watchs_plain_answers_are_read_without_h11_and_the_rest_through_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A 200 with Content-Length and a 304, the connection kept: most of a watch's answers.
    # h11's state machine cost more CPU per such GET than the rest of the client.
    monkeypatch.setattr(h11, "Connection", CountedH11)
    CountedH11.events = 0
    not_modified = b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Length: 5\r\n\r\n'
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
    client = PageClient()
    async with scripted(
        Scripted(ok(b"hello", 'ETag:  "v1" ', "X-Empty:"), not_modified, chunked, ok(b"plain"))
    ) as (server, port):
        answer = await client.get(
            f"http://127.0.0.1:{port}/",
            {},
            addresses=["127.0.0.1"],
            time_limit=5,
            max_bytes=CAP,
        )
        assert (answer.status, answer.body) == (200, b"hello")
        assert answer.headers["etag"] == '"v1"' and answer.headers["x-empty"] == ""
        assert await get(client, port, **{"If-None-Match": '"v1"'}) == (304, b"")
        assert CountedH11.events == 0
        assert await get(client, port) == (200, b"hi")  # chunked: h11 reads it
        assert CountedH11.events > 0
        assert await get(client, port) == (200, b"plain")
    await client.aclose()
    assert server.connections == 1


async def test_odd_answers_go_to_h11_with_the_bytes_already_read() -> None:
    client = PageClient()
    async with scripted(
        Scripted(
            b"HTTP/1.1 200 OK\nContent-Length: 4\n\nbare",  # bare line feeds
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nlast",
            ok(b"new connection"),
            b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 1\r\n\r\nf",
            ok(b"after"),
        )
    ) as (server, port):
        assert await get(client, port) == (200, b"bare")
        assert await get(client, port) == (200, b"ok")  # the same length twice
        assert await get(client, port) == (200, b"last")
        assert await get(client, port) == (200, b"new connection")
        assert server.connections == 2  # "Connection: close" was honoured
        assert await get(client, port) == (200, b"f")  # obs-fold: h11 unfolds it
        assert await get(client, port) == (200, b"after")
    await client.aclose()


async def test_bytes_past_an_answer_are_not_read_as_the_next_answer() -> None:
    client = PageClient()
    async with scripted(Scripted(ok(b"page") + ok(b"unasked"), ok(b"asked"))) as (server, port):
        assert await get(client, port) == (200, b"page")
        assert await get(client, port) == (200, b"asked")
    await client.aclose()
    assert server.connections == 2


async def test_chunked_gzip_and_deflate_bodies_are_decoded() -> None:
    page = "".join(f"<p>新闻 {i} news</p>" for i in range(500)).encode()
    packed = gzip.compress(page)
    assert len(packed) > 200
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n"
        + f"{len(packed[:100]):x};name=value\r\n".encode()
        + packed[:100]
        + b"\r\n"
        + f"{len(packed[100:]):x}\r\n".encode()
        + packed[100:]
        + b"\r\n0\r\nX-Trailer: yes\r\n\r\n"
    )
    raw_deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    raw = raw_deflate.compress(page) + raw_deflate.flush()
    client = PageClient()
    async with scripted(
        Scripted(
            chunked,
            ok(zlib.compress(page), "Content-Encoding: deflate"),
            ok(raw, "Content-Encoding: deflate"),
            ok(b"after"),
        )
    ) as (server, port):
        for _ in range(3):
            assert await get(client, port) == (200, page)
        assert await get(client, port) == (200, b"after")  # the framing left the stream clean
    await client.aclose()
    assert server.connections == 1


async def test_a_gzip_body_of_several_members_is_read_whole() -> None:
    """gzip is a series of members (RFC 1952 2.2; a server that compresses as it goes writes
    several): only the first was read, and changes in the rest of the page were never seen."""
    first, second = b"<p>part one</p>" * 50, b"<p>part two changed</p>" * 50
    client = PageClient()
    members = gzip.compress(first) + gzip.compress(second)
    # Bytes after the last member that are none (a stray newline, a proxy's junk) are passed
    # over, as urllib3 and httpx do: such a page was read before, and must still be.
    answers = [ok(members + tail, "Content-Encoding: gzip") for tail in (b"", b"\r\n", b"junk")]
    async with scripted(Scripted(*answers)) as (_, port):
        for _ in answers:
            assert await get(client, port) == (200, first + second)
    await client.aclose()


async def test_a_gzip_body_of_tens_of_thousands_of_members_is_refused_not_decoded_for_minutes() -> (
    None
):
    """Each member's decoding copied the rest of the body and the page so far: 5 MB of empty
    members took about a minute of the event loop, every other check of the worker held up,
    to read as an empty page. A body of more members than a page is sent as is refused; one
    of members larger than a slice zlib is fed at a time is read whole, as before."""
    client = PageClient()
    many = gzip.compress(b"") * 20_000
    most = b"".join(gzip.compress(b"%d\n" % n) for n in range(1000))
    wide = [bytes(range(256)) * 800, bytes(reversed(range(256))) * 800]  # 200 KB each
    stored = b"".join(gzip.compress(part, 0) for part in wide)  # not compressed: 200 KB each
    assert len(stored) > 2 * 65536
    answers = [ok(body, "Content-Encoding: gzip") for body in (many, most + most[:40], stored)]
    async with scripted(Scripted(*answers, ok(most, "Content-Encoding: gzip"))) as (_, port):
        for _ in range(2):
            with pytest.raises(HttpProtocolError, match="gzip of more than 1000 members"):
                await get(client, port)
        assert await get(client, port) == (200, wide[0] + wide[1])
        assert await get(client, port) == (200, b"".join(b"%d\n" % n for n in range(1000)))
    await client.aclose()


async def test_bytes_a_server_sends_on_an_idle_connection_are_not_the_next_answer() -> None:
    """A server that says "408 Request Timeout" as it closes an idle keep-alive connection
    (nginx, Go): the 408 was read as the next check's answer, every other check failing."""

    class Then408(Scripted):
        async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            self.writers.append(writer)
            await reader.readuntil(b"\r\n\r\n")
            writer.write(ok(b"first"))
            writer.write(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n")
            await writer.drain()
            writer.close()

    server = Then408()
    client = PageClient()
    async with scripted(server) as (_, port):
        assert await get(client, port) == (200, b"first")
        for _ in range(100):  # a bound: until the 408 has reached the idle connection
            idle = [c for conns in client._idle.values() for c in conns]
            if not idle or getattr(idle[0].reader, "_buffer", b""):
                break
            await asyncio.sleep(0.01)
        assert await get(client, port) == (200, b"first")  # on a new connection
    await client.aclose()
    assert server.connections == 2


async def test_a_close_delimited_answer_from_http_server_is_read_to_its_end() -> None:
    class Page(BaseHTTPRequestHandler):  # HTTP/1.0: no length, the body ends with the connection
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(f"<p>path {self.path}</p>".encode())

        def log_message(self, format: str, *args: object) -> None:
            pass

    with threaded(Page) as port:
        fetcher = WebFetcher(allow_cidrs=LOOPBACK)
        first = await fetcher.fetch(f"http://127.0.0.1:{port}/新闻?q=a%20b")
        second = await fetcher.fetch(f"http://127.0.0.1:{port}/two")
        await fetcher.aclose()
    assert first.body == b"<p>path /%E6%96%B0%E9%97%BB?q=a%20b</p>"
    assert first.content_type == "text/html; charset=utf-8"
    assert second.body == b"<p>path /two</p>"


@contextmanager
def threaded(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def jammed(host: str, port: int) -> Iterator[None]:
    """A listener on ``host``:``port`` whose queue is full: a connect's packets are dropped, as
    at a dead node of a name's several addresses."""
    listener = socket.socket()
    listener.bind((host, port))
    listener.listen(0)
    waiting = [socket.socket() for _ in range(3)]
    try:
        for queued in waiting:
            queued.setblocking(False)
            with suppress(BlockingIOError):
                queued.connect((host, port))
        yield
    finally:
        for queued in waiting:
            queued.close()
        listener.close()


async def test_a_first_address_that_never_connects_gives_way_to_the_next() -> None:
    # A name with several addresses, the first a node dropping the connect's packets: its
    # connect took the whole time limit, and every check of the page failed "timed out".
    client = PageClient()
    async with scripted(Scripted(ok(b"hello"))) as (server, port):
        with jammed("127.0.0.2", port):
            answer = await client.get(
                f"http://example.test:{port}/",
                {"User-Agent": "test"},
                addresses=["127.0.0.2", "127.0.0.1"],
                time_limit=http1.ADDRESS_WAIT * 4,
                max_bytes=CAP,
            )
    await client.aclose()
    assert (answer.status, answer.body) == (200, b"hello")
    assert server.connections == 1


async def test_a_connection_the_server_closed_while_idle_is_replaced_once() -> None:
    client = PageClient()
    async with scripted(Scripted(ok(b"one"), CLOSE, ok(b"two"), ok(b"three"))) as (server, port):
        assert await get(client, port) == (200, b"one")
        # The server reads the next request on the kept connection and hangs up unanswered
        # (its keep-alive timer ran out just then): the client asks once more on a new one.
        assert await get(client, port) == (200, b"two")
        server.writers[-1].close()  # now it closes the idle connection before any request
        await asyncio.sleep(0.1)
        assert await get(client, port) == (200, b"three")
    await client.aclose()
    assert server.connections == 3


async def test_an_idle_connection_outlives_a_pause_unless_the_server_said_it_closes_sooner() -> (
    None
):
    # A watch's next check comes a minute later: its connection is kept for it. A server that
    # says it closes idle connections after 2 s gets a new one after a 1.2 s pause.
    client = PageClient()
    async with scripted(Scripted(ok(b"a"), ok(b"b"))) as (plain, plain_port):
        async with scripted(Scripted(ok(b"c", "Keep-Alive: timeout=2, max=100"), ok(b"d"))) as (
            brief,
            brief_port,
        ):
            assert await get(client, plain_port) == (200, b"a")
            assert await get(client, brief_port) == (200, b"c")
            await asyncio.sleep(1.2)
            assert await get(client, plain_port) == (200, b"b")
            assert await get(client, brief_port) == (200, b"d")
    await client.aclose()
    assert (plain.connections, brief.connections) == (1, 2)


async def test_idle_connections_are_capped_and_expired_ones_closed_the_oldest_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The client's own clock, moved by the test: a loaded host's slow gets do not expire them.
    clock = [1000.0]
    monkeypatch.setattr(http1, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    client = PageClient(idle_seconds=0.5, max_idle=2)
    servers = [Scripted(ok(b"1"), ok(b"2")) for _ in range(4)]
    async with (
        scripted(servers[0]) as (_, p0),
        scripted(servers[1]) as (_, p1),
        scripted(servers[2]) as (_, p2),
        scripted(servers[3]) as (_, p3),
    ):
        for port in (p0, p1, p2):
            assert await get(client, port) == (200, b"1")
        assert len(client._oldest) == 2  # past the cap the longest idle (p0's) was closed
        assert await get(client, p1) == (200, b"2")  # kept: the same connection
        assert await get(client, p0) == (200, b"2")  # closed: a new connection
        clock[0] += 0.6
        assert await get(client, p3) == (200, b"1")
        assert len(client._oldest) == 1  # the expired ones went with the next answer
    await client.aclose()
    assert [server.connections for server in servers] == [2, 1, 1, 1]


async def test_a_fresh_connection_closed_unanswered_is_an_error_not_a_retry() -> None:
    client = PageClient()
    async with scripted(Scripted(CLOSE, ok(b"never asked"))) as (server, port):
        with pytest.raises(HttpProtocolError, match="unanswered"):
            await get(client, port)
    assert server.connections == 1


async def test_a_server_that_never_answers_times_out_within_the_limit() -> None:
    fetcher = WebFetcher(allow_cidrs=LOOPBACK, timeout=0.3)
    async with scripted(Scripted(HANG)) as (_, port):
        with pytest.raises(FetchError, match=r"timed out after 0.3 s"):
            await fetcher.fetch(f"http://127.0.0.1:{port}/slow")
    await fetcher.aclose()


async def test_bodies_past_the_cap_are_refused_however_they_come() -> None:
    bomb = gzip.compress(b"\0" * (8 * CAP))
    big = b"x" * (CAP + 1)
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"".join(
            f"{len(big[i : i + 65536]):x}\r\n".encode() + big[i : i + 65536] + b"\r\n"
            for i in range(0, len(big), 65536)
        )
        + b"0\r\n\r\n"
    )
    client = PageClient()
    async with scripted(
        Scripted(ok(big), chunked, ok(bomb, "Content-Encoding: gzip"), close_after=True)
    ) as (_, port):
        for what in ("declares", "sent more", "decodes to more"):
            with pytest.raises(BodyTooLargeError, match=what):
                await get(client, port)
    await client.aclose()
    fetcher = WebFetcher(allow_cidrs=LOOPBACK, max_bytes=CAP)
    async with scripted(Scripted(ok(big))) as (_, port):
        with pytest.raises(TooLargeError, match="cap"):
            await fetcher.fetch(f"http://127.0.0.1:{port}/big")
    await fetcher.aclose()


async def test_what_is_not_http_11_this_client_reads_is_a_clear_error() -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
    client = PageClient()
    async with scripted(
        Scripted(
            interim + ok(b"after hints"),
            b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
            ok(b"??", "Content-Encoding: br"),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
            close_after=True,
        )
    ) as (_, port):
        assert await get(client, port) == (200, b"after hints")
        unreadable = ("status line", "Content-Encoding br", "Transfer-Encoding", "Content-Length")
        for what in (*unreadable, "not an HTTP/1.1 answer"):  # the last: a switch not asked for
            with pytest.raises(HttpProtocolError, match=what):
                await get(client, port)
    await client.aclose()


async def test_the_next_checked_address_is_tried_when_one_refuses() -> None:
    client = PageClient()
    async with scripted(Scripted(ok(b"reached"))) as (_, port):
        answer = await client.get(
            f"http://127.0.0.1:{port}/",
            {},
            addresses=["127.0.0.2", "127.0.0.1"],  # nothing listens on 127.0.0.2:port
            time_limit=5,
            max_bytes=CAP,
        )
    await client.aclose()
    assert answer.body == b"reached"


async def test_tls_goes_to_the_checked_address_and_verifies_the_urls_name(tmp_path: Path) -> None:
    cert, key = certificate("pages.test", tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    names: list[str | None] = []
    server_tls.sni_callback = lambda sock, name, context: names.append(name)  # type: ignore[assignment,func-returns-value]
    trusting = ssl.create_default_context(cafile=str(cert))
    client = PageClient(ssl_context=trusting)
    async with scripted(Scripted(ok(b"secure"), ok(b"again")), tls=server_tls) as (server, port):
        for expected in (b"secure", b"again"):
            answer = await client.get(
                f"https://pages.test:{port}/",
                {},
                addresses=["127.0.0.1"],  # the name is not in DNS: the address comes from the guard
                time_limit=5,
                max_bytes=CAP,
            )
            assert answer.body == expected
        with pytest.raises(ssl.SSLCertVerificationError):
            await client.get(
                f"https://other.test:{port}/",
                {},
                addresses=["127.0.0.1"],
                time_limit=5,
                max_bytes=CAP,
            )
    await client.aclose()
    # One connection for both (kept alive); the refused handshake never reached the handler.
    assert names[:1] == ["pages.test"] and server.connections == 1
    assert server.requests[0].startswith(b"GET / HTTP/1.1\r\nHost: pages.test:")


async def test_a_body_cut_short_is_an_error_not_a_200() -> None:
    # A server that dies mid-answer: the gzip stream stops half way (its Content-Length is
    # honest about the bytes sent), fewer bytes than Content-Length, a chunked body without
    # its last chunk. Each is an error, never a page to diff against.
    page = "".join(f"<p>row {i}</p>" for i in range(2000)).encode()
    packed = gzip.compress(page)
    packed_deflate = zlib.compress(page)
    client = PageClient()
    async with scripted(
        Scripted(
            ok(packed[: len(packed) // 2], "Content-Encoding: gzip"),
            ok(packed_deflate[: len(packed_deflate) // 2], "Content-Encoding: deflate"),
            close_after=True,
        )
    ) as (_, port):
        for coding in ("gzip", "deflate"):
            with pytest.raises(HttpProtocolError, match=f"{coding} body ends before its end"):
                await get(client, port)
    cut_short = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 40,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    )
    for answer in cut_short:
        async with scripted(Scripted(answer, close_after=True)) as (_, port):
            with pytest.raises(HttpProtocolError, match="ended inside the body"):
                await get(client, port)
    await client.aclose()


async def test_an_empty_answer_with_a_content_coding_is_empty_not_cut_short() -> None:
    # A 304 may repeat the 200's Content-Encoding; an empty 200 may carry one too.
    not_modified = b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Encoding: gzip\r\n\r\n'
    client = PageClient()
    async with scripted(Scripted(not_modified, ok(b"", "Content-Encoding: gzip"))) as (_, port):
        assert await get(client, port) == (304, b"")
        assert await get(client, port) == (200, b"")
    await client.aclose()


async def test_a_body_that_is_not_its_content_coding_is_a_failed_fetch_not_a_crash() -> None:
    # A server labelling plain HTML (or a corrupt stream) gzip or deflate: zlib's own error
    # escaped the fetcher, and the watch's poll attempt failed with it (every page of the watch
    # unchecked) instead of this page's check failing, to be checked again at the next one.
    page = b"<p>not compressed</p>" * 50
    client = PageClient()
    async with scripted(
        Scripted(
            ok(page, "Content-Encoding: gzip"),
            ok(page, "Content-Encoding: deflate"),
            ok(b"\x1f\x8b\x08\x00" + page, "Content-Encoding: gzip"),  # a gzip header, bad data
            close_after=True,
        )
    ) as (_, port):
        for coding in ("gzip", "deflate", "gzip"):
            with pytest.raises(HttpProtocolError, match=f"not valid {coding} data"):
                await get(client, port)
    await client.aclose()
    async with scripted(Scripted(ok(page, "Content-Encoding: gzip"), close_after=True)) as (
        _,
        port,
    ):
        fetcher = WebFetcher(allow_cidrs=LOOPBACK)
        with pytest.raises(FetchError, match="not valid gzip data"):
            await fetcher.fetch(f"http://127.0.0.1:{port}/")
        await fetcher.aclose()
