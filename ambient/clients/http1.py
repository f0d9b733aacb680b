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

An answer is read in ambient.clients.http1_answer, its body decoded in
ambient.clients.http1_codings; the failures and their words are in ambient.clients.http1_errors.
"""

from __future__ import annotations

import asyncio
import functools
import resource
import ssl
import time
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import h11

from ambient.clients.http1_answer import RequestOf, read_answer
from ambient.clients.http1_codings import decode
from ambient.clients.http1_errors import (
    CLOSED_UNANSWERED,
    ConnectionCutError,
    HttpProtocolError,
    StaleConnectionError,
)
from ambient.clients.tls import ca_context

IDLE_SECONDS = 120.0
MAX_IDLE_PER_KEY = 16
MAX_IDLE = 4096
# At most this long for a connection (TCP and TLS) to an address before the next is tried: a
# name's first address dropping the connect's packets took the whole time limit, every check.
ADDRESS_WAIT = 3.0


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
                with suppress(StaleConnectionError):
                    return await self._exchange(key, reused, request, wire, max_bytes)
            fresh = await self._connect(scheme, addresses, port, name)
            try:
                return await self._exchange(key, fresh, request, wire, max_bytes)
            except StaleConnectionError as exc:
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
        for address in addresses[:-1]:
            try:
                async with asyncio.timeout(ADDRESS_WAIT):
                    reader, writer = await asyncio.open_connection(address, port, **tls)
            except ssl.SSLCertVerificationError:
                raise  # the certificate is wrong for every address alike
            except OSError as exc:  # refused, unreachable, timed out, a handshake cut
                failure = exc
                continue
            self.opened += 1
            return _Connection(reader, writer)
        if not addresses:
            raise failure
        # The last address has what is left of the time limit.
        reader, writer = await asyncio.open_connection(addresses[-1], port, **tls)
        self.opened += 1
        return _Connection(reader, writer)

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
                raise StaleConnectionError from exc
            status, headers, body, keep = await read_answer(connection.reader, request, max_bytes)
            answer = Answer(status, headers, decode(body, headers, max_bytes))
            reusable = keep  # only once the whole answer was read and decoded
            return answer
        except h11.RemoteProtocolError as exc:
            raise HttpProtocolError(f"not an HTTP/1.1 answer this client reads: {exc}") from exc
        finally:
            if reusable:
                self._put(key, connection, headers)
            else:
                connection.writer.close()


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
