"""A lean HTTP/1.1 client for the worker's GETs of pages and metric values.

A watch repeats the same conditional GET every minute or so; through httpx the request
path (request models, the pool scanning its connections, h11, anyio) was most of what a
``304 Not Modified`` check cost the worker. This client does only what those GETs need:

- HTTP/1.1 with keep-alive, one exchange at a time per connection; idle connections are
  kept per (scheme, name, port) for ``IDLE_SECONDS`` — longer than a 1-minute watch's
  interval, so a watch of its own host reuses its connection (no new TCP and TLS handshake
  per check) — or less when the server's ``Keep-Alive: timeout=N`` says it closes sooner; at
  most ``max_idle`` in all (the oldest closed first, within the process's file limit); a
  stale one (closed by the server while idle) is replaced once, before any byte of the
  answer was read;
- bodies framed by ``Content-Length``, ``chunked`` or the server closing the connection;
  ``gzip``/``deflate`` decoded; a cap on the decoded size and on the header block;
- one deadline for connecting, sending and reading;
- the connection goes to the addresses the caller gives (the destination guard's checked
  ones, tried in order); TLS is verified for the URL's own name (SNI and certificate), so a
  name that resolves elsewhere at connect time is never followed.

Anything else (another transfer or content coding, a malformed status line or header) is an
``HttpProtocolError`` that says what was wrong: never a guess.
"""

from __future__ import annotations

import asyncio
import functools
import resource
import ssl
import time
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import certifi

IDLE_SECONDS = 120.0
MAX_IDLE_PER_KEY = 16
MAX_IDLE = 4096
MAX_HEADER_BYTES = 64 * 1024
READ_CHUNK = 64 * 1024


class HttpProtocolError(Exception):
    """The server's answer is not HTTP/1.x this client can read."""


class BodyTooLargeError(HttpProtocolError):
    """The (decoded) body is larger than the caller's cap."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names; repeated fields joined with ", "
    body: bytes


@dataclass(eq=False)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0
    idle_limit: float = IDLE_SECONDS  # ours, or less if the server said it closes sooner

    def usable(self, now: float) -> bool:
        return (
            now - self.idle_since < self.idle_limit
            and not self.reader.at_eof()
            and not self.writer.is_closing()
        )

    def close(self) -> None:
        self.writer.close()


Key = tuple[str, str, int]  # scheme, host name, port
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
        self._ssl = ssl_context
        self._idle_seconds = idle_seconds
        self._max_idle = max_idle if max_idle is not None else default_max_idle()
        self._idle: dict[Key, list[_Connection]] = {}
        # Every idle connection, the longest idle first (O(1) at both ends).
        self._oldest: OrderedDict[_Connection, Key] = OrderedDict()
        self.opened = 0  # connections opened so far (benchmarks: handshakes per check)

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context(cafile=certifi.where())
            self._ssl.set_alpn_protocols(["http/1.1"])
        return self._ssl

    async def get(
        self,
        url: str,
        headers: dict[str, str],
        *,
        addresses: Sequence[str],
        time_limit: float,
        max_bytes: int,
    ) -> Answer:
        """GET ``url`` from the first of ``addresses`` that connects, all within ``time_limit``."""
        key, start = _request_line(url)
        scheme, name, port = key
        lines = [start, *(f"{field}: {value}" for field, value in headers.items())]
        lines.append("Accept-Encoding: gzip, deflate")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        async with asyncio.timeout(time_limit):
            reused = self._take(key)
            if reused is not None:
                try:
                    return await self._exchange(key, reused, request, max_bytes)
                except _StaleConnectionError:
                    pass  # closed by the server while idle: once more on a new connection
            fresh = await self._connect(scheme, addresses, port, name)
            try:
                return await self._exchange(key, fresh, request, max_bytes)
            except _StaleConnectionError as exc:
                raise HttpProtocolError("the server closed the connection unanswered") from exc

    @property
    def idle_connections(self) -> int:
        return len(self._oldest)

    async def aclose(self) -> None:
        for connection in self._oldest:
            connection.close()
        self._idle.clear()
        self._oldest.clear()

    async def _connect(
        self, scheme: str, addresses: Sequence[str], port: int, name: str
    ) -> _Connection:
        failure: OSError = OSError(f"no address to connect to for {name}")
        for address in addresses:
            try:
                if scheme == "https":
                    reader, writer = await asyncio.open_connection(
                        address, port, ssl=self._tls(), server_hostname=name, limit=MAX_HEADER_BYTES
                    )
                else:
                    reader, writer = await asyncio.open_connection(
                        address, port, limit=MAX_HEADER_BYTES
                    )
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
            connection.close()
        return None

    def _put(self, key: Key, connection: _Connection, headers: dict[str, str]) -> None:
        now = time.monotonic()
        connection.idle_since = now
        connection.idle_limit = _idle_limit(headers, self._idle_seconds)
        idle = self._idle.get(key, [])
        if len(idle) >= MAX_IDLE_PER_KEY or connection.idle_limit <= 0:
            connection.close()
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
            oldest.close()

    async def _exchange(
        self, key: Key, connection: _Connection, request: bytes, max_bytes: int
    ) -> Answer:
        reusable = False
        try:
            try:
                connection.writer.write(request)
                await connection.writer.drain()
            except (ConnectionResetError, BrokenPipeError) as exc:
                raise _StaleConnectionError from exc
            status, version, headers = await _read_head(connection.reader)
            while 100 <= status < 200:  # 100 Continue, 103 Early Hints: the answer follows
                status, version, headers = await _read_head(connection.reader)
            body, framed = await _read_body(connection.reader, status, headers, max_bytes)
            reusable = framed and version == "HTTP/1.1" and not _closes(headers)
            return Answer(status, headers, _decode(body, headers, max_bytes))
        finally:
            if reusable:
                self._put(key, connection, headers)
            else:
                connection.close()


@functools.lru_cache(maxsize=20_000)
def _request_line(url: str) -> tuple[Key, str]:
    """The connection key of ``url`` and its request and Host lines (a watch GETs the same
    URL every minute: parsed once)."""
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
    return (scheme, name, port), f"GET {target} HTTP/1.1\r\nHost: {host}"


def default_max_idle() -> int:
    """``MAX_IDLE``, or a quarter of the process's open-file limit if that is lower."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_IDLE
    return max(1, min(MAX_IDLE, soft // 4))


def _idle_limit(headers: dict[str, str], ours: float) -> float:
    """How long a connection may idle: ours, or a second less than the server's
    ``Keep-Alive: timeout=N`` (so we do not write into a connection it is closing)."""
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


def _closes(headers: dict[str, str]) -> bool:
    return "close" in headers.get("connection", "").lower()


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, str, dict[str, str]]:
    try:
        block = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            raise _StaleConnectionError from exc
        raise HttpProtocolError("the connection ended inside the answer's headers") from exc
    except asyncio.LimitOverrunError as exc:
        raise HttpProtocolError(f"the answer's headers exceed {MAX_HEADER_BYTES} bytes") from exc
    except ConnectionResetError as exc:
        raise _StaleConnectionError from exc
    lines = block[:-4].decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise HttpProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    last = ""
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and last:  # obsolete line folding
            headers[last] += " " + line.strip()
            continue
        field, sep, value = line.partition(":")
        if not sep or not field or field != field.strip():
            raise HttpProtocolError(f"malformed header line: {line[:80]!r}")
        last = field.lower()
        value = value.strip()
        headers[last] = f"{headers[last]}, {value}" if last in headers else value
    return int(code), version, headers


async def _read_body(
    reader: asyncio.StreamReader, status: int, headers: dict[str, str], max_bytes: int
) -> tuple[bytes, bool]:
    """The raw body and whether it was framed (the connection can carry another exchange)."""
    if status in (204, 304):
        return b"", True
    try:
        coding = headers.get("transfer-encoding", "").lower()
        if coding:
            if [part.strip() for part in coding.split(",")][-1] != "chunked":
                raise HttpProtocolError(f"unsupported Transfer-Encoding: {coding}")
            return await _read_chunked(reader, max_bytes), True
        if "content-length" in headers:
            length = headers["content-length"].split(",")[0].strip()
            if not length.isdigit():
                raise HttpProtocolError(f"bad Content-Length: {headers['content-length']!r}")
            if int(length) > max_bytes:
                raise BodyTooLargeError(f"declares {length} bytes (cap {max_bytes})")
            return await reader.readexactly(int(length)), True
        body = bytearray()
        while chunk := await reader.read(READ_CHUNK):
            body += chunk
            if len(body) > max_bytes:
                raise BodyTooLargeError(f"sent more than {max_bytes} bytes")
        return bytes(body), False
    except asyncio.IncompleteReadError as exc:
        raise HttpProtocolError("the connection ended inside the body") from exc
    except asyncio.LimitOverrunError as exc:
        raise HttpProtocolError("a chunk size line is too long") from exc


async def _read_chunked(reader: asyncio.StreamReader, max_bytes: int) -> bytes:
    body = bytearray()
    while True:
        line = await reader.readuntil(b"\r\n")
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise HttpProtocolError(f"bad chunk size: {size_text[:20]!r}") from None
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailer fields, dropped
                pass
            return bytes(body)
        if len(body) + size > max_bytes:
            raise BodyTooLargeError(f"sent more than {max_bytes} bytes")
        chunk = await reader.readexactly(size + 2)
        if chunk[-2:] != b"\r\n":
            raise HttpProtocolError("a chunk does not end with CRLF")
        body += chunk[:-2]


def _decode(body: bytes, headers: dict[str, str], max_bytes: int) -> bytes:
    codings = [c.strip() for c in headers.get("content-encoding", "").lower().split(",")]
    for coding in reversed([c for c in codings if c and c != "identity"]):
        if coding in ("gzip", "x-gzip"):
            body = _inflate(body, zlib.MAX_WBITS | 16, max_bytes)
        elif coding == "deflate":
            try:
                body = _inflate(body, zlib.MAX_WBITS, max_bytes)
            except zlib.error:  # some servers send raw deflate without the zlib header
                body = _inflate(body, -zlib.MAX_WBITS, max_bytes)
        else:
            raise HttpProtocolError(f"unsupported Content-Encoding: {coding}")
    return body


def _inflate(data: bytes, wbits: int, max_bytes: int) -> bytes:
    decompressor = zlib.decompressobj(wbits)
    out = decompressor.decompress(data, max_bytes + 1)
    if len(out) > max_bytes:
        raise BodyTooLargeError(f"decodes to more than {max_bytes} bytes")
    return out
