"""A lean HTTP/1.1 client for the worker's GETs of pages and metric values (and the POST of
a Prometheus query too long for a URL).

A watch repeats the same conditional GET every minute or so; through httpx the request path
(request models, the pool scanning its connections, anyio) was most of what a ``304 Not
Modified`` check cost the worker. This client keeps only what those GETs need around h11, the
protocol library httpx itself runs on: keep-alive connections per (scheme, name, port), idle
for ``IDLE_SECONDS`` (longer than a 1-minute watch's interval: no new TCP and TLS handshake
per check); ``gzip``/``deflate``; caps on the decoded body and the header block; one deadline;
connections only to the addresses the caller gives (the destination guard's checked ones),
with TLS verified for the URL's own name. Anything else is an ``HttpProtocolError`` that says
what was wrong: never a guess.

Most answers are an HTTP/1.1 ``304`` or a ``200`` framed by ``Content-Length``, the connection
kept; h11's state machine cost about twice a hand reader's CPU per such GET. ``_plain`` reads
that shape with two strict patterns; every other answer is handed to h11 with the bytes
already read, and h11 decides it as before.
"""

from __future__ import annotations

import asyncio
import functools
import re
import resource
import ssl
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import h11

from ambient.clients.tls import ca_context
from ambient.refusals import N_

IDLE_SECONDS = 120.0
MAX_IDLE_PER_KEY = 16
MAX_IDLE = 4096
MAX_HEADER_BYTES = 64 * 1024
READ_CHUNK = 64 * 1024
# How an answer was cut (a ConnectionCutError's words): a page says them in its reader's language.
CLOSED_UNANSWERED = N_("the server closed the connection unanswered")
RESET_INSIDE = N_("the connection was reset inside the answer")
ENDED_IN_BODY = N_("the connection ended inside the body: %(got)s of %(length)s bytes")
ENDED_IN_HEADERS = N_("the connection ended inside the headers: %(error)s")
ENDED_IN_BODY_SAID = N_("the connection ended inside the body: %(error)s")
TRUNCATED = N_("the %(coding)s body ends before its end (truncated)")
CUTS = (
    CLOSED_UNANSWERED,
    RESET_INSIDE,
    ENDED_IN_BODY,
    ENDED_IN_HEADERS,
    ENDED_IN_BODY_SAID,
    TRUNCATED,
)


# A body this client does not decode: a coding of the registry it does not ask for, or gzip's
# bytes under a name that is no coding (Chromium refuses both). Said of "the answer": a page's
# or a metric source's (whose URL is said after).
UNDECODED_CODING = N_(
    "the answer is in Content-Encoding %(coding)s, which is not decoded here (gzip and deflate "
    "are: ask its server for one of those, or none), and cannot be read"
)
GZIP_MISNAMED = N_(
    "the answer is gzip bytes under Content-Encoding %(coding)s, which is no content coding (ask "
    "its server to label them gzip alone), and cannot be read"
)
CODINGS = (UNDECODED_CODING, GZIP_MISNAMED)
# Not named: either may be a signed URL (ambient.clients.web.scrubbed, which this precedes).
TWO_LOCATIONS = N_(
    "the answer names two different Locations: a redirect names one target; watch the page "
    "it should lead to, or ask its site to send one"
)


class HttpProtocolError(Exception):
    """The server's answer is not HTTP/1.x this client can read."""


class ConnectionCutError(HttpProtocolError):
    """The connection ended or was reset before the answer was whole (may pass later)."""


class BodyTooLargeError(HttpProtocolError):
    """The (decoded) body is larger than the caller's cap."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names; repeated fields joined with ", " (not Location)
    body: bytes


@dataclass(eq=False)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0
    idle_limit: float = IDLE_SECONDS  # ours, or less if the server said it closes sooner

    def usable(self, now: float) -> bool:
        # Bytes the server sent while the connection was idle (a "408 Request Timeout" as it
        # closes it, a stray line): not the answer to the next request, which they became.
        unread = getattr(self.reader, "_buffer", b"")
        return (
            now - self.idle_since < self.idle_limit
            and not self.reader.at_eof()
            and not self.writer.is_closing()
            and not unread
        )


Key = tuple[str, str, int]  # scheme, host name, port
RequestOf = Callable[[], list[h11.Event]]
# Characters left as they are in a request target: the URL's own delimiters and escapes.
SAFE = "!#$%&'()*+,/:;=?@[]~"


class PageClient:
    """Keep-alive HTTP/1.1 GETs to checked addresses (see the module's docstring)."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        idle_seconds: float = IDLE_SECONDS,
        max_idle: int | None = None,
    ) -> None:
        self._ssl = ssl_context or ca_context()
        self._idle_seconds = idle_seconds
        self._max_idle = max_idle if max_idle is not None else default_max_idle()
        self._idle: dict[Key, list[_Connection]] = {}
        # Every idle connection, the longest idle first (O(1) at both ends).
        self._oldest: OrderedDict[_Connection, Key] = OrderedDict()
        self.opened = 0  # connections opened so far (benchmarks: handshakes per check)

    async def get(
        self,
        url: str,
        headers: dict[str, str],
        *,
        addresses: Sequence[str],
        time_limit: float,
        max_bytes: int,
        form: bytes = b"",
    ) -> Answer:
        """GET ``url`` (POST ``form``, form-encoded, when given) from the first of
        ``addresses`` that connects, all within ``time_limit``."""
        fields = tuple(headers.items())
        try:
            # A form's request is not kept: a long query's POST is rare, and large.
            key, wire = _wired(url, fields, form) if form else _request(url, fields)
        except h11.LocalProtocolError:  # a field h11 would not send (a line break, ...)
            # h11 says the field's value: an Authorization header's secret is not said on.
            raise HttpProtocolError(
                "cannot send this request: a header has a line break or "
                "a character no header may carry"
            ) from None

        def request() -> list[h11.Event]:  # built again only for an answer h11 reads
            return _h11_request(url, fields, form)[1]

        scheme, name, port = key
        async with asyncio.timeout(time_limit):
            if (reused := self._take(key)) is not None:
                # Closed by the server while idle: once more on a new connection.
                with suppress(_StaleConnectionError):
                    return await self._exchange(key, reused, request, wire, max_bytes)
            fresh = await self._connect(scheme, addresses, port, name)
            try:
                return await self._exchange(key, fresh, request, wire, max_bytes)
            except _StaleConnectionError as exc:
                raise ConnectionCutError(CLOSED_UNANSWERED) from exc

    async def aclose(self) -> None:
        for connection in self._oldest:
            connection.writer.close()
        self._idle.clear()
        self._oldest.clear()

    async def _connect(
        self, scheme: str, addresses: Sequence[str], port: int, name: str
    ) -> _Connection:
        failure: OSError = OSError(f"no address to connect to for {name}")
        tls: dict[str, Any] = (
            {"ssl": self._ssl, "server_hostname": name} if scheme == "https" else {}
        )
        for address in addresses:
            try:
                reader, writer = await asyncio.open_connection(address, port, **tls)
            except ssl.SSLError:
                raise  # the certificate is wrong for every address alike
            except OSError as exc:
                failure = exc
                continue
            self.opened += 1
            return _Connection(reader, writer)
        raise failure

    def _take(self, key: Key) -> _Connection | None:
        now = time.monotonic()
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()
            del self._oldest[connection]
            if not idle:
                del self._idle[key]
            if connection.usable(now):
                return connection
            connection.writer.close()
        return None

    def _put(self, key: Key, connection: _Connection, headers: dict[str, str]) -> None:
        now = time.monotonic()
        connection.idle_since = now
        connection.idle_limit = _idle_limit(headers, self._idle_seconds)
        idle = self._idle.get(key, [])
        if len(idle) >= MAX_IDLE_PER_KEY or connection.idle_limit <= 0:
            connection.writer.close()
        else:
            idle.append(connection)
            self._idle[key] = idle
            self._oldest[connection] = key
        # Close what expired (hosts no longer asked for) and, past the cap, the longest idle.
        while self._oldest:
            oldest = next(iter(self._oldest))
            if len(self._oldest) <= self._max_idle and oldest.usable(now):
                break
            its_key = self._oldest.pop(oldest)
            others = self._idle[its_key]
            others.remove(oldest)
            if not others:
                del self._idle[its_key]
            oldest.writer.close()

    async def _exchange(
        self, key: Key, connection: _Connection, request: RequestOf, wire: bytes, max_bytes: int
    ) -> Answer:
        reusable = False
        headers: dict[str, str] = {}
        try:
            try:
                connection.writer.write(wire)
                await connection.writer.drain()
            except (ConnectionResetError, BrokenPipeError) as exc:
                raise _StaleConnectionError from exc
            status, headers, body, keep = await _read_answer(connection, request, max_bytes)
            answer = Answer(status, headers, _decode(body, headers, max_bytes))
            reusable = keep  # only once the whole answer was read and decoded
            return answer
        except h11.RemoteProtocolError as exc:
            raise HttpProtocolError(f"not an HTTP/1.1 answer this client reads: {exc}") from exc
        finally:
            if reusable:
                self._put(key, connection, headers)
            else:
                connection.writer.close()


# The plain answer's status line and header fields (RFC 9112): HTTP/1.1, a final status, a
# token name, a value of visible characters, spaces and tabs (no CR, LF or NUL, no obs-fold).
PLAIN_STATUS = re.compile(rb"HTTP/1\.1 ([2-5][0-9][0-9])(?: [\t -~\x80-\xff]*)?")
VISIBLE = rb"[!-~\x80-\xff]"
PLAIN_FIELD = re.compile(
    rb"([-!#$%&'*+.^_`|~0-9A-Za-z]+):[ \t]*"
    rb"((?:" + VISIBLE + rb"(?:[\t -~\x80-\xff]*" + VISIBLE + rb")?)?)[ \t]*"
)
HEAD_END = b"\r\n\r\n"


async def _receive(connection: _Connection, received: bool) -> bytes:
    try:
        data = await connection.reader.read(READ_CHUNK)
    except ConnectionResetError as exc:
        if not received:
            raise _StaleConnectionError from exc
        raise ConnectionCutError(RESET_INSIDE) from exc
    if not data and not received:
        raise _StaleConnectionError  # closed before the first byte of an answer
    return data


async def _read_answer(
    connection: _Connection, request: RequestOf, max_bytes: int
) -> tuple[int, dict[str, str], bytearray, bool]:
    """Status, fields, raw body of one answer and whether the connection is reusable."""
    # The plain shape is read here, anything else through h11.
    buffer = bytearray()
    while (end := buffer.find(HEAD_END)) < 0:
        if len(buffer) > MAX_HEADER_BYTES or not buffer.startswith(b"HTTP/1.1 "[: len(buffer)]):
            return await _read_with_h11(connection, request, buffer, False, max_bytes)
        data = await _receive(connection, bool(buffer))
        if not data:
            return await _read_with_h11(connection, request, buffer, True, max_bytes)
        buffer += data
        if b"\n\n" in buffer[-len(data) - 1 :] and HEAD_END not in buffer:
            # Lines ended by bare line feeds: h11 says what that is.
            return await _read_with_h11(connection, request, buffer, False, max_bytes)
    plain = _plain(bytes(buffer[:end])) if end <= MAX_HEADER_BYTES else None
    if plain is None:  # h11 reads it (a head past the cap too, as it always did)
        return await _read_with_h11(connection, request, buffer, False, max_bytes)
    status, headers, length = plain
    if length > max_bytes:
        raise BodyTooLargeError(f"declares {length} bytes (cap {max_bytes})")
    body = buffer[end + len(HEAD_END) :]
    while len(body) < length:
        data = await _receive(connection, True)
        if not data:
            raise ConnectionCutError(ENDED_IN_BODY % {"got": len(body), "length": length})
        body += data
    # Bytes past the answer were not asked for: the answer stands, the connection is not kept.
    return status, headers, body[:length], len(body) == length


def _plain(head: bytes) -> tuple[int, dict[str, str], int] | None:
    """The status, fields and body length of a plain answer's head; None for any other."""
    lines = head.split(b"\r\n")
    if (matched := PLAIN_STATUS.fullmatch(lines[0])) is None:
        return None
    status = int(matched[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if (field := PLAIN_FIELD.fullmatch(line)) is None:
            return None
        name, value = field[1].decode("ascii").lower(), field[2].decode("latin-1")
        _add_field(headers, name, value)
    if "transfer-encoding" in headers or "close" in headers.get("connection", "").lower():
        return None
    if status in (204, 304):  # no body, whatever the fields say (RFC 9112, 6.3)
        return status, headers, 0
    length = headers.get("content-length", "")
    if not (length.isascii() and length.isdigit()):  # absent, repeated or odd: h11 decides
        return None
    return status, headers, int(length)


async def _read_with_h11(
    connection: _Connection, request: RequestOf, buffer: bytearray, ended: bool, max_bytes: int
) -> tuple[int, dict[str, str], bytearray, bool]:
    """Read the answer through h11, given the bytes read so far (``ended``: then EOF)."""
    # The request was sent already: h11 is told of it, not given it.
    protocol = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEADER_BYTES)
    for sent in request():
        protocol.send(sent)
    protocol.receive_data(bytes(buffer))
    received = bool(buffer)
    if ended:
        protocol.receive_data(b"")
    status = 0
    headers: dict[str, str] = {}
    body = bytearray()
    while True:
        try:
            event = protocol.next_event()
        except h11.RemoteProtocolError as exc:
            if ended:  # h11 knows which bodies may end with the connection; this one may not
                where = ENDED_IN_BODY_SAID if status else ENDED_IN_HEADERS
                raise ConnectionCutError(where % {"error": exc}) from exc
            raise
        if event is h11.NEED_DATA:
            data = await _receive(connection, received)
            ended = not data
            received = True
            protocol.receive_data(data)
        elif isinstance(event, h11.Response):
            status = event.status_code
            # raw_items: a list (iterating the Headers sequence goes through __getitem__).
            for raw_name, raw_value in event.headers.raw_items():
                name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
                _add_field(headers, name, value)
            length = headers.get("content-length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise BodyTooLargeError(f"declares {length} bytes (cap {max_bytes})")
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > max_bytes:
                raise BodyTooLargeError(f"sent more than {max_bytes} bytes")
        elif isinstance(event, h11.EndOfMessage):
            # h11 says whether the connection can carry another exchange (HTTP/1.1, framed
            # body, no ``Connection: close`` either way, nothing sent past the answer).
            reusable = protocol.our_state is h11.DONE and protocol.their_state is h11.DONE
            return status, headers, body, reusable and not protocol.trailing_data[0]
        elif not isinstance(event, h11.InformationalResponse):  # 100 Continue, 103 Early Hints
            # PAUSED (a protocol switch nobody asked for) would repeat without reading on.
            raise HttpProtocolError(f"the server's answer stopped at {type(event).__name__}")


def _add_field(headers: dict[str, str], name: str, value: str) -> None:
    """A field line into ``headers``, a repeated one joined as a list (RFC 9110 5.3); but a
    Location names one target: another one beside it is refused, as Chromium refuses it."""
    if name == "location" and headers.get(name, value) != value:
        raise HttpProtocolError(TWO_LOCATIONS)
    joined = name in headers and name != "location"
    headers[name] = f"{headers[name]}, {value}" if joined else value


@functools.lru_cache(maxsize=20_000)
def _request(url: str, headers: tuple[tuple[str, str], ...]) -> tuple[Key, bytes]:
    """The connection key of ``url`` and the bytes of its request, checked by h11."""
    # A watch sends the same conditional GET every minute: built once. h11's own request is
    # not kept: ≈ 1.2 KB a watch for as long as the process runs, needed only for an answer
    # h11 reads (docs/benchmarks.md, "Worker memory", round 3).
    return _wired(url, headers, b"")


def _wired(url: str, headers: tuple[tuple[str, str], ...], form: bytes) -> tuple[Key, bytes]:
    key, events = _h11_request(url, headers, form)
    writer = h11.Connection(h11.CLIENT)
    return key, b"".join(writer.send(event) or b"" for event in events)


def _h11_request(
    url: str, headers: tuple[tuple[str, str], ...], form: bytes = b""
) -> tuple[Key, list[h11.Event]]:
    """The connection key of ``url`` and its request's events as h11 checks and sends them
    (a GET, or a POST of ``form``)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise HttpProtocolError(f"not an http(s) URL: {url}")
    name = (parts.hostname or "").encode("idna").decode("ascii")
    port = parts.port or (443 if scheme == "https" else 80)
    target = quote((parts.path or "/") + (f"?{parts.query}" if parts.query else ""), SAFE)
    host = name if ":" not in name else f"[{name}]"
    if parts.port is not None:
        host += f":{parts.port}"
    fields = [(b"Host", host.encode("ascii"))]
    # latin-1, not h11's ASCII: an ETag echoed in If-None-Match may carry obs-text.
    fields += [(f.encode("latin-1"), v.encode("latin-1")) for f, v in headers]
    fields.append((b"Accept-Encoding", b"gzip, deflate"))
    if not form:
        request = h11.Request(method=b"GET", target=target.encode("ascii"), headers=fields)
        return (scheme, name, port), [request, h11.EndOfMessage()]
    fields.append((b"Content-Type", b"application/x-www-form-urlencoded"))
    fields.append((b"Content-Length", str(len(form)).encode()))
    request = h11.Request(method=b"POST", target=target.encode("ascii"), headers=fields)
    return (scheme, name, port), [request, h11.Data(data=form), h11.EndOfMessage()]


def default_max_idle() -> int:
    """``MAX_IDLE``, or a quarter of the process's open-file limit if that is lower."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_IDLE
    return max(1, min(MAX_IDLE, soft // 4))


def _idle_limit(headers: dict[str, str], ours: float) -> float:
    """How long a connection may idle: ours, or a second less than ``Keep-Alive: timeout=N``."""
    # A second less: we must not write into a connection the server is closing.
    for param in headers.get("keep-alive", "").split(","):
        name, _, value = param.partition("=")
        if name.strip().lower() == "timeout":
            try:
                return min(ours, float(value.strip().strip('"')) - 1.0)
            except ValueError:
                return ours  # unreadable: the stale-connection path copes if it closes first
    return ours


class _StaleConnectionError(Exception):
    """The connection ended before the first byte of an answer."""


def _decode(body: bytes | bytearray, headers: dict[str, str], max_bytes: int) -> bytes:
    if not body:  # a 304 (or an empty 200) may name the coding its full answer would have
        return b""
    codings = [c.strip() for c in headers.get("content-encoding", "").lower().split(",")]
    for coding in reversed([c for c in codings if c and c != "identity"]):
        try:
            if coding in ("gzip", "x-gzip"):
                body = _inflate(body, zlib.MAX_WBITS | 16, max_bytes, "gzip")
            elif coding == "deflate":
                try:
                    body = _inflate(body, zlib.MAX_WBITS, max_bytes, "deflate")
                except zlib.error:  # some servers send raw deflate without the zlib header
                    body = _inflate(body, -zlib.MAX_WBITS, max_bytes, "deflate")
            elif coding in UNDECODED:  # compressed, not a page
                raise HttpProtocolError(UNDECODED_CODING % {"coding": coding[:CODING_SAID]})
            elif body.startswith(GZIP_MAGIC):
                raise HttpProtocolError(GZIP_MISNAMED % {"coding": coding[:CODING_SAID]})
        except zlib.error as exc:
            # Plain text labelled compressed, or a corrupt stream: this answer's failure, as
            # a cut-short one is (zlib's own error is no error a caller of this client knows).
            raise HttpProtocolError(f"the body is not valid {coding} data ({exc})") from None
    return bytes(body)


# The content codings of IANA's registry not decoded here: their bytes are no page. Any other
# name (a server's "utf-8") is no coding: the body is as sent, as Chromium reads it, unless it
# starts as gzip does. A list is read name by name (Chromium leaves all of "foo, gzip" undone).
CODING_SAID = 40  # characters of a coding's name said back (a stored error is cut at 500)
UNDECODED = frozenset(
    ("br", "zstd", "compress", "x-compress", "dcb", "dcz", "aes128gcm", "exi", "pack200-gzip")
)
GZIP_MAGIC = b"\x1f\x8b"  # how each gzip member starts


def _inflate(data: bytes | bytearray, wbits: int, max_bytes: int, coding: str) -> bytes:
    # gzip is a series of members (RFC 1952 2.2), each a stream of its own: the page is all of
    # them. Bytes after the last that are no member (a stray newline, a proxy's junk) are
    # passed over, as urllib3 and httpx do; the first must be whole.
    out, rest, first = b"", data, True
    while first or (coding == "gzip" and rest.startswith(GZIP_MAGIC)):
        member = zlib.decompressobj(wbits)
        try:
            more = member.decompress(rest, max_bytes + 1 - len(out))
        except zlib.error:
            if first:
                raise
            break
        if len(out) + len(more) > max_bytes:
            raise BodyTooLargeError(f"decodes to more than {max_bytes} bytes")
        if not member.eof:
            # The framing was complete, the compressed stream was not: a server that died
            # while compressing. Its first half is not the page.
            raise ConnectionCutError(TRUNCATED % {"coding": coding})
        out, rest, first = out + more, member.unused_data, False
    return out
