"""The bridge runner: one WebSocket client connection per registered endpoint, across replicas.

Every ``scan`` seconds the runner reads the endpoint table: it claims the lease of an endpoint
nobody holds (or whose holder stopped renewing), dials it and serves MCP on it; it closes the
connection of an endpoint that was removed or whose lease another runner now holds. A closed,
replaced or refused connection is re-dialed with jittered backoff (1 s doubling to 10 min,
back to 1 s after a healthy connection). Failures are data: logged (token masked), counted,
and written to the endpoint row (state, last_error, since) for `ambient xiaozhi endpoint list`.

It runs in the API process: the tools it serves need the API's state (database, Temporal
client, channels), and API replicas share one database, where the lease keeps one dialer.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import socket
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import KW_ONLY, dataclass, field, replace
from datetime import timedelta
from typing import Any
from urllib.parse import urljoin

import websockets
from mcp.server.mcpserver import MCPServer
from sqlalchemy import ColumnElement, or_, select, update
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus, InvalidURI
from websockets.http11 import USER_AGENT as WEBSOCKETS_AGENT
from websockets.uri import WebSocketURI, parse_uri

from ambient import __version__
from ambient.bridge import endpoints
from ambient.bridge.endpoints import (
    PLAIN_BROKER,
    TLS_BROKER,
    EndpointCipher,
    http_form,
    mask_url,
    url_token,
)
from ambient.bridge.serving import (
    FRAME_LIMIT_BYTES,
    UNCHECKED_NOTE,
    WITHDRAWN_NOTE,
    Note,
    serve_mcp,
)
from ambient.clients.guard import DestinationGuard
from ambient.domain.users import Language
from ambient.storage.db import Database
from ambient.storage.models import User, XiaozhiEndpoint, utcnow
from ambient.storage.users import UserRepository
from ambient.wiring import AppState, StateHolder

log = logging.getLogger(__name__)
# websockets logs the handshake (the request line holds the token) and every frame at DEBUG:
# its logger for our connections never goes below INFO, whatever the root level.
wire_log = logging.getLogger("ambient.bridge.websocket")
wire_log.setLevel(logging.INFO)

ServerFactory = Callable[[str], MCPServer[Any]]
# What dials, as a broker's logs show it (mcp_pipe sends websockets' own default).
USER_AGENT = f"ambient-ops/{__version__} {WEBSOCKETS_AGENT}"


class _SameOrigin(connect):
    """``connect`` following a redirect only within the same scheme, host and port."""

    # The guard checked the host the endpoint names, not wherever a 3xx points: another
    # origin's redirect is the dial's failure, shown as its status (websockets would refuse it
    # in words of its own: "with an explicit host", the pinned address).
    def process_redirect(self, exc: Exception) -> Exception | str:
        if isinstance(exc, InvalidStatus) and (moved := exc.response.headers.get("Location")):
            to, here = parse_uri_or_none(urljoin(self.uri, moved)), self.ws_uri
            if to is None or (to.secure, to.host, to.port) != (here.secure, here.host, here.port):
                return exc
        return super().process_redirect(exc)


def parse_uri_or_none(uri: str) -> WebSocketURI | None:
    """``uri`` parsed as a WebSocket URI, or None when it is not one."""
    try:
        return parse_uri(uri)
    except InvalidURI:
        return None


@dataclass(frozen=True)
class BridgeTiming:
    scan_seconds: float = 1.0  # a registration is dialed, a removal closed, within ~this
    lease_seconds: float = 30.0  # a dead replica's endpoints are taken over after this
    first_delay: float = 1.0
    max_delay: float = 600.0
    healthy_after: float = 60.0  # a connection that lasted this long resets the backoff
    open_timeout: float = 10.0
    # At most, whether the endpoint is still ours before a call (refused if not known by then).
    # 0.5 s refused calls on a loaded 2-core machine (a SQLite read waiting on a busy loop);
    # with a voice call's own budget (8 s) it stays under xiaozhi.me's 10 s wait.
    check_seconds: float = 1.5
    # After closing a connection that replaced one the relay may still hold: time for the
    # relay to let both go before the endpoint is dialed afresh (``BridgeRunner._opened``).
    # mcp-endpoint-server on its pinned websockets 12 waits out its close timeout for an old
    # peer that does not answer (measured 20 s) before that one's handler ends.
    settle_seconds: float = 25.0
    # The endpoint's row not read (the database down): read again after about this, the
    # broker's backoff left as it was (no broker was asked).
    unread_delay: float = 5.0


def backoff_delays(timing: BridgeTiming) -> Iterator[float]:
    """Successive re-dial delays: full jitter on a doubling ceiling (1 s … 10 min)."""
    ceiling = timing.first_delay
    while True:
        yield random.uniform(ceiling / 2, ceiling)
        ceiling = min(ceiling * 2, timing.max_delay)


@dataclass(eq=False)
class BridgeRunner:
    """Holds the connections of the endpoints this process has the lease of."""

    db: Database
    cipher: EndpointCipher
    guard: DestinationGuard
    server_for: ServerFactory
    _: KW_ONLY
    timing: BridgeTiming = BridgeTiming()
    # The language of the bridge's own notes to a user who chose none (the server's default).
    default_language: Language = Language.ZH
    name: str = field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
    )
    held: dict[int, asyncio.Task[None]] = field(default_factory=dict, init=False)
    # dials, connected, failures (for tests, metrics)
    counts: Counter[str] = field(default_factory=Counter, init=False)
    _renewed_at: float = field(default=0.0, init=False)
    # Whether each held endpoint's user hears English, as last read (at its dial, then at each
    # call's check): the bridge's own notes follow a language changed while connected.
    _english: dict[int, bool] = field(default_factory=dict, init=False)

    async def run(self) -> None:
        """Scan, claim, renew and drop until cancelled; a failed scan is logged, not fatal."""
        try:
            while True:
                try:
                    await self.scan()
                except Exception as exc:  # the database away for a moment: try next scan
                    self.counts["scan_failures"] += 1
                    log.warning("xiaozhi bridge scan failed: %s", exc)
                await asyncio.sleep(self.timing.scan_seconds)
        finally:
            await self.stop()

    async def scan(self) -> None:
        async with self.db.session() as session:
            rows = (await session.scalars(select(XiaozhiEndpoint))).all()
        now = utcnow()
        present = {row.id: row for row in rows}
        for endpoint_id in list(self.held):
            # A held row names this runner. One that does not is another's lease: not ours.
            row = present.get(endpoint_id)
            if row is None or row.holder != self.name:
                await self._drop(endpoint_id, "lease lost" if row and row.holder else "removed")
        if self.held and time.monotonic() - self._renewed_at >= self.timing.lease_seconds / 3:
            until = utcnow() + timedelta(seconds=self.timing.lease_seconds)
            await self._lease(self._mine(list(self.held)), lease_until=until)
            self._renewed_at = time.monotonic()
        for row in rows:
            if row.id in self.held:
                continue
            free = row.holder is None or row.lease_until is None or row.lease_until < now
            if (free or row.holder == self.name) and await self._claim(row.id):
                # Taken over from a replica that stopped renewing: its connection may live on.
                replacing = row.holder is not None and row.holder != self.name
                self.held[row.id] = asyncio.create_task(
                    self._hold(row.id, replacing), name=f"xiaozhi-endpoint-{row.id}"
                )

    async def _claim(self, endpoint_id: int) -> bool:
        now, lease = utcnow(), XiaozhiEndpoint
        claimed = await self._lease(
            (lease.id == endpoint_id)
            & or_(lease.holder.is_(None), lease.holder == self.name, lease.lease_until < now),
            holder=self.name,
            lease_until=now + timedelta(seconds=self.timing.lease_seconds),
        )
        return bool(claimed)

    def _mine(self, held: list[int]) -> ColumnElement[bool]:
        return XiaozhiEndpoint.id.in_(held) & (XiaozhiEndpoint.holder == self.name)

    async def _lease(self, rows: ColumnElement[bool], **values: Any) -> int:
        """Set ``values`` on the endpoint rows ``rows`` selects; how many there were."""
        async with self.db.writing() as session:
            result = await session.execute(update(XiaozhiEndpoint).where(rows).values(**values))
        return int(getattr(result, "rowcount", 0))

    async def _drop(self, endpoint_id: int, why: str) -> None:
        task = self.held.pop(endpoint_id)
        task.cancel()
        # Not `suppress(CancelledError)` around `await task`: it would swallow the caller's own
        # cancellation arriving meanwhile (the runner's stop), and on Python 3.11 it is not
        # sent again: the runner went on scanning and the API's shutdown waited for good.
        await asyncio.wait({task})
        self._english.pop(endpoint_id, None)  # after its notes (a call released) were said
        log.info("xiaozhi endpoint %s: connection closed (%s)", endpoint_id, why)

    async def stop(self) -> None:
        """Close every connection and give the leases back (a clean stop hands over at once)."""
        held = list(self.held)
        for endpoint_id in held:
            await self._drop(endpoint_id, "runner stopping")
        if held:
            with suppress(Exception):
                # Given back now: the list shows it retrying since this moment.
                await self._lease(self._mine(held), holder=None, lease_until=utcnow())

    async def _hold(self, endpoint_id: int, replacing: bool = False) -> None:
        """Dial, serve, and re-dial with backoff until the task is cancelled. ``replacing``:
        the broker may still hold an earlier connection of the endpoint (``_opened``)."""
        delays = backoff_delays(self.timing)
        if replacing:
            # Until the settle's end the row said what the stopped holder last wrote: connected.
            settle = {"seconds": round(self.timing.settle_seconds)}
            await self._state(endpoint_id, "retrying", endpoints.TAKING_OVER % settle)
        while True:
            started = time.monotonic()
            connected = False
            ws: ClientConnection | None = None
            url, masked = "", f"endpoint {endpoint_id}"
            dialed = False
            try:
                user, url, verbatim, english = await self._endpoint(endpoint_id)
                self._english[endpoint_id] = english
                masked = mask_url(url)
                dialed = True
                async with await self._opened(url, replacing) as ws:
                    connected = True
                    self.counts["connected"] += 1
                    await self._state(endpoint_id, "connected", None)
                    log.info("xiaozhi endpoint %s (%s, %s): connected", endpoint_id, masked, user)
                    try:
                        await serve_mcp(
                            ws,
                            self.server_for(user),
                            verbatim=verbatim,
                            english=lambda: self._english.get(endpoint_id, False),
                            refused=lambda: self._refusal(endpoint_id),
                        )
                    except asyncio.CancelledError:
                        # Removed, lease lost or stopping: a normal close, not "internal error".
                        await asyncio.shield(ws.close(1001, "endpoint released"))
                        raise
                reason = "the connection ended"
            except Exception as exc:  # every failure is data: shown, counted, re-dialed
                reason = without_token(describe(exc, connected=connected, url=url), url)
            if (task := asyncio.current_task()) is not None and task.cancelling():
                # Cancelled (removed, stopping) just as the connection failed: on Python 3.11
                # the two cancellations arrive as one, which the serve's task group takes for
                # its own and swallows. Re-dialing then, the runner's stop waited for good.
                raise asyncio.CancelledError
            if ws is not None:
                # Dropped without the broker's close (a keepalive that gave up, a network cut):
                # the broker may not know yet, and still hold it when the endpoint is dialed.
                replacing = ws.protocol.close_rcvd is None
            if connected and time.monotonic() - started >= self.timing.healthy_after:
                delays = backoff_delays(self.timing)
            if dialed:
                delay = next(delays)
            else:  # its row not read: a database outage must not push the broker's backoff
                delay = random.uniform(self.timing.unread_delay / 2, self.timing.unread_delay)
            self.counts["failures"] += 1
            log.warning(
                "xiaozhi endpoint %s (%s): %s; re-dialing in %.1f s",
                endpoint_id,
                masked,
                reason,
                delay,
            )
            await self._state(endpoint_id, "retrying", reason)
            await asyncio.sleep(delay)

    async def _opened(self, url: str, replacing: bool) -> ClientConnection:
        """A connection to ``url`` the broker kept, and the only one it holds for the endpoint.

        mcp-endpoint-server accepts every WebSocket and closes a refused token's with 1008
        before reading anything: a pong shows it kept this one (a relay sends nothing until a
        device wakes, so no first message can tell). Replacing a connection it still holds, it
        closes that one, whose handler then unregisters the endpoint's connection by agent (its
        src/core/connection_manager.py), the new one by then: the relay forgets it while it
        stays open and devices hear "工具端未连接". So a connection that may replace another
        is closed again at once, and the endpoint dialed afresh once the relay let both go.
        """
        self.counts["dials"] += 1
        ws = await self._dial(url)
        try:
            # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that comes as the
            # pong does, and the serve that follows, cancelled but never told, never ends.
            async with asyncio.timeout(self.timing.open_timeout):
                await (await ws.ping())
            if not replacing:
                return ws
            await ws.close(1000, "replacing an earlier connection")
        except BaseException:
            await asyncio.shield(ws.close())
            raise
        await asyncio.sleep(self.timing.settle_seconds)
        return await self._opened(url, replacing=False)

    async def _refusal(self, endpoint_id: int) -> Note | None:
        """Why a tool call on the endpoint's connection is not run (None: it is): the endpoint
        removed or held by another runner, or not known in time. A database that cannot say
        at once refuses it: a call run then might be a removed endpoint's, with its user's
        rights (frames wait behind this check, pings too)."""
        read = (
            select(XiaozhiEndpoint.holder, User.language)
            .outerjoin(User, User.name == XiaozhiEndpoint.user)
            .where(XiaozhiEndpoint.id == endpoint_id)
        )
        try:
            async with asyncio.timeout(self.timing.check_seconds), self.db.session() as session:
                row = (await session.execute(read)).first()
        except Exception as exc:
            log.warning("xiaozhi endpoint %s: not checked before a call: %r", endpoint_id, exc)
            return UNCHECKED_NOTE
        if row is None:  # the row is gone
            return WITHDRAWN_NOTE
        holder, language = row
        if endpoint_id in self._english:  # the user's language now, for the notes that follow
            self._english[endpoint_id] = (language or self.default_language) == Language.EN
        return None if holder == self.name else WITHDRAWN_NOTE

    async def _endpoint(self, endpoint_id: int) -> tuple[str, str, bool, bool]:
        """The endpoint's user, URL, whether it is verbatim, and whether its user's language
        (read at each dial) is English."""
        try:
            async with self.db.session() as session:
                row = await session.get(XiaozhiEndpoint, endpoint_id)
                account = await UserRepository(session).get(row.user) if row is not None else None
        except Exception as exc:  # the database down is not the broker unreachable
            reason = str(exc) or type(exc).__name__
            raise LookupError(endpoints.UNREAD % {"reason": reason}) from exc
        if row is None:
            raise LookupError("the endpoint was removed")
        if row.holder != self.name:
            # The lease ran out while this runner stood still and another took over: dialing
            # would replace that one's connection; the next scan lets the endpoint go.
            raise LookupError("another bridge holds the endpoint now")
        try:
            url = self.cipher.open(row.url_sealed)
        except Exception:
            raise LookupError(endpoints.UNSEALED) from None
        language = (account.language if account is not None else None) or self.default_language
        return row.user, url, row.verbatim, language == Language.EN

    async def _dial(self, url: str) -> ClientConnection:
        """Refuse a destination the guard refuses; dial the checked addresses, each in turn
        until one answers.

        Resolving again at connect time would let a name flip to a refused address (DNS
        rebinding). The URL keeps the name: the Host names it, and wss:// verifies the
        certificate for it (websockets takes TLS's name from the URL, not from ``host``).
        """
        addresses = await self.guard.check_url(http_form(url))
        pins = [{"host": a} for a in addresses]
        for pin in pins[:-1]:
            with suppress(OSError):  # refused, unreachable or timed out: the next address
                return await self._connect(url, pin)
        return await self._connect(url, pins[-1])

    async def _connect(self, url: str, pin: dict[str, Any]) -> ClientConnection:
        return await _SameOrigin(
            url,
            proxy=None,
            open_timeout=self.timing.open_timeout,
            max_size=FRAME_LIMIT_BYTES,
            user_agent_header=USER_AGENT,
            logger=wire_log,
            **pin,
        )

    async def _state(self, endpoint_id: int, state: str, error: str | None) -> None:
        try:
            async with self.db.write_session() as session:
                row = await session.get(XiaozhiEndpoint, endpoint_id)
                if row is None or row.holder != self.name:
                    return
                if row.state != state:
                    row.since = utcnow()
                row.state = state
                row.last_error = None if error is None else error[:500]
                await session.commit()
        except Exception as exc:  # the state is for people; the connection goes on
            log.warning("xiaozhi endpoint %s: state not written: %s", endpoint_id, exc)


def describe(exc: BaseException, *, connected: bool = False, url: str = "") -> str:
    """A failure as the owner should read it: the broker's close code and reason first.
    ``connected``: it came after the connection was up (the broker was reached); ``url``: the
    address dialed (a scheme the broker does not speak is said so)."""
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return describe(exc.exceptions[0], connected=connected, url=url)
    said = _described(exc, connected=connected)
    if connected:
        return said
    # A wss:// dial to a plain broker is reset (or its answer is not TLS); a ws:// one to a
    # TLS-only broker gets no HTTP back: said alone, neither told the owner what to change.
    # (Not a certificate refused: that broker speaks TLS, and ws:// would send its token bare.)
    if (
        url.startswith("wss://")
        and isinstance(exc, ConnectionResetError | ssl.SSLError)
        and not isinstance(exc, ssl.SSLCertVerificationError)
    ):
        return PLAIN_BROKER % {"reason": str(exc) or type(exc).__name__}
    if url.startswith("ws://") and isinstance(exc, InvalidMessage):
        return TLS_BROKER % {"reason": said}
    return said


def _described(exc: BaseException, *, connected: bool) -> str:
    if isinstance(exc, ConnectionClosed):
        # Closed first by this side (1009 for a frame past FRAME_LIMIT_BYTES, say): what was
        # received is the broker's echo of our code, not a close of its own.
        ours = exc.sent is not None and (exc.rcvd is None or exc.rcvd_then_sent is False)
        close = exc.sent if ours else exc.rcvd
        if close is None:
            return "the connection dropped (no close frame)"
        who = "this bridge" if ours else "the broker"
        return f"closed by {who}: {close.code} {close.reason}".strip()
    if isinstance(exc, InvalidStatus):
        body = (exc.response.body or b"").decode("utf-8", "replace").strip()[:200]
        status = exc.response.status_code
        # A 5xx is a failure (often a proxy's, its broker down), not a refusal.
        who = "the broker or a proxy before it failed" if status >= 500 else "refused by the broker"
        return f"{who}: HTTP {status} {body}".strip()
    if isinstance(exc, TimeoutError):
        return "no answer from the broker (timed out)"
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and connected:  # a reset, a write to a closed socket
        return f"connected, then the connection was lost: {text}"
    if isinstance(exc, OSError):  # refused, no route, a name that does not resolve
        return f"cannot connect to the broker: {text}"
    return (
        f"{type(exc).__name__}: {text}"
        if isinstance(exc, websockets.exceptions.WebSocketException)
        else text
    )


def without_token(text: str, url: str) -> str:
    """``text`` with the URL's token masked, wherever a library quoted it."""
    token = url_token(url) if url else ""
    return text.replace(token, "***") if token else text


@asynccontextmanager
async def bridge_running(state: AppState) -> AsyncIterator[BridgeRunner]:
    """The runner for the API process, started on entry and stopped (leases given back) on exit."""
    from mcp_server.voice import build_voice_server

    def voice_server(user: str) -> MCPServer[Any]:
        """The voice profile acting as the endpoint's user: what a 小智 model is given (a handful
        of speakable tools; the full list is ~200 KB, far past what xiaozhi.me's tools/list
        carries)."""
        return build_voice_server(
            state.settings, holder=StateHolder(replace(state, stdio_user=user))
        )

    settings = state.settings
    runner = BridgeRunner(
        state.db,
        EndpointCipher(settings.secret_key.get_secret_value()),
        DestinationGuard(settings.fetch_allow_cidrs),
        voice_server,
        default_language=settings.default_language,
    )
    task = asyncio.create_task(runner.run(), name="xiaozhi-bridge")
    try:
        yield runner
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
