"""A loopback xiaozhi endpoint broker: the side that xiaozhi.me (and the open-source
mcp_endpoint relay) plays towards a tool connection, as read from their wire behaviour.

- The tool side dials ``ws://127.0.0.1:PORT/mcp/?token=T``; an unknown token is refused at the
  handshake (HTTP 401 with a reason, as the official broker answers a bad or expired token).
- ``official`` mode: ``initialize`` with id 0 and protocol 2024-11-05, then
  ``notifications/initialized`` and ``tools/list`` (id 1), sent at once without waiting for
  an answer; frames end in a newline; ``tools/call`` carries ``serialNumber``, ``clientId``
  (the calling device's; one agent's devices share the endpoint's one connection) and
  ``_meta.agentId``; ``ping`` every ``ping_every`` seconds if set.
- ``relay`` mode (mcp_endpoint): string ids ``"<uuid>_n_<int>"`` and initialize, initialized
  and tools/list sent at once, without waiting (pipelining). The ids repeat, as xiaozhi-server's
  do through the relay: initialize is 1, tools/list 2, and its tools/call ids count from 1 again.
  The relay passes frames through and never speaks MCP itself: the handshake is the device
  session's (xiaozhi-server's, one per wake), sent once to the tool connection of that moment.
  A tool connection that replaces it (the tool side re-dialed) gets that session's next calls,
  same id prefix and count, with no handshake of its own.
- One tool connection per token: a new one replaces the old, which is closed with
  4000 "replaced by a new connection".
- ``relay`` mode answers as mcp-endpoint-server's code does (src/server.py,
  src/core/connection_manager.py): it accepts every WebSocket, checks the token before reading
  anything and closes a refused one with 1008 and its reason: "缺少token参数" (no token),
  "token解密失败" (not one of ``tokens``), or, set per token in ``relay_refusals``, "无对应agentId"
  and "token数据格式错误" (the token decrypts to JSON without an agentId, or to no JSON); a
  replaced tool connection is closed with 1000 "新连接替换". As there, the connection a device's
  call goes to (``registered``, ``device_call``) is unregistered by token when any connection of
  that token ends, so one that replaced a live connection is forgotten as the replaced one's
  handler ends, and devices get -32001 "工具端未连接" while it stays open.
- A tools/call is given up as the real side gives it up (`call_tool` raises ``BrokerGaveUp``):
  not answered within ``CALL_TIMEOUT`` (xiaozhi.me: 10 s, as its author stated it; raised to
  300 s in 2026-08, but a listener still waits no longer; the relay's xiaozhi-server: 30 s),
  or answered with a response frame over ``RESPONSE_LIMIT_BYTES`` (8,192 bytes: xiaozhi.me
  drops it and the device hears nothing).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tests.support.servers import HANG

Mode = Literal["official", "relay"]
# The broker's own handshake and frame logs (they hold the token) stay out of the product's.
broker_log = logging.getLogger("tests.standins.xiaozhi_broker")
broker_log.setLevel(logging.INFO)
REPLACED = (4000, "replaced by a new connection")
RELAY_REPLACED = (1000, "新连接替换")
RELAY_NO_TOKEN = (1008, "缺少token参数")
RELAY_BAD_TOKEN = (1008, "token解密失败")
RELAY_NO_AGENT = (1008, "无对应agentId")
RELAY_NOT_JSON = (1008, "token数据格式错误")
# The bridge's own bound (issue 24, docs/xiaozhi.md): it holds a registered endpoint's
# connection within 5 s, dialed at its next scan (re-dialed after at most the first backoff).
HELD_WITHIN = 5.0
# A tools/call not answered within this is given up, by mode (78/xiaozhi-esp32 issue 767 for
# xiaozhi.me; xiaozhi-server's call_mcp_endpoint_tool for the relay): a product promise.
CALL_TIMEOUT: dict[str, float] = {"official": 10.0, "relay": 30.0}
# A response frame over this many bytes (UTF-8, as sent) is dropped by xiaozhi.me.
RESPONSE_LIMIT_BYTES = 8192
# The broker's initialize and tools/list are then answered as fast as the machine allows (a
# loaded CI box takes seconds): HANG, a guard against a hang, not a claim on time.


class BrokerGaveUp(Exception):
    """The broker gave up on a tools/call, as the real side does: nothing is spoken."""


@dataclass
class ToolConnection:
    """One tool-side connection as the broker sees it."""

    token: str
    socket: ServerConnection
    mode: Mode
    user_agent: str | None = None  # the handshake's User-Agent header, as sent
    frames: list[str] = field(default_factory=list)  # every frame received, as sent
    tools: list[dict[str, Any]] = field(default_factory=list)
    # The answer to the broker's initialize, matched by id: a pass-through bridge that posts
    # each request on its own (mcp2xiaozhi) may answer tools/list first, so frames[0] is not it.
    initialize_answer: dict[str, Any] = field(default_factory=dict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # tools listed
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    close_reason: str = ""
    pinged: asyncio.Event = field(default_factory=asyncio.Event)  # a periodic ping answered
    _waiting: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _sizes: dict[str, int] = field(default_factory=dict)  # an answer's frame size, by id
    _numbers: itertools.count[int] = field(default_factory=itertools.count)
    _relay_numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _prefix: str = field(default_factory=lambda: uuid.uuid4().hex)

    def next_id(self) -> int | str:
        if self.mode == "official":
            return next(self._numbers)
        return f"{self._prefix}_n_{next(self._relay_numbers)}"

    async def send_raw(self, text: str, ident: int | str | None = None) -> None:
        """A frame as written; its answer awaited by ``answer(ident)`` when ``ident`` is given."""
        if ident is not None:
            self._waiting[json.dumps(ident)] = asyncio.get_running_loop().create_future()
        await self.socket.send(text)

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a request and wait for its answer (the whole response object)."""
        return await self.answer(await self.send_request(method, params))

    async def send_request(
        self, method: str, params: dict[str, Any] | None = None, ident: int | str | None = None
    ) -> int | str:
        ident = self.next_id() if ident is None else ident
        self._waiting[json.dumps(ident)] = asyncio.get_running_loop().create_future()
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": ident, "method": method}
        if params is not None:
            message["params"] = params
        await self.socket.send(self._frame(message))
        return ident

    async def answer(self, ident: int | str) -> dict[str, Any]:
        return await self._waiting[json.dumps(ident)]

    async def notify(self, method: str) -> None:
        await self.socket.send(self._frame({"jsonrpc": "2.0", "method": method}))

    async def call_tool(
        self, name: str, arguments: Any, *, client_id: str = "client-test"
    ) -> dict[str, Any]:
        """A tools/call as the broker sends it: with its extra params, ``client_id`` naming the
        device that asked (``arguments`` as given: a broker passes on what the model wrote)."""
        params = {
            "name": name,
            "arguments": arguments,
            "serialNumber": "SN-TEST",
            "clientId": client_id,
            "_meta": {"agentId": 42, "progressToken": 7},
        }
        ident = await self.send_request("tools/call", params)
        limit = CALL_TIMEOUT[self.mode]
        try:
            answer = await asyncio.wait_for(self.answer(ident), limit)
        except TimeoutError:
            raise BrokerGaveUp(f"tools/call {name} not answered within {limit:g} s") from None
        size = self._sizes[json.dumps(ident)]
        if self.mode == "official" and size > RESPONSE_LIMIT_BYTES:
            raise BrokerGaveUp(f"tools/call {name} answered with {size} bytes: dropped")
        return answer

    def _frame(self, message: dict[str, Any]) -> str:
        text = json.dumps(message, ensure_ascii=False)
        try:
            text.encode()
        except UnicodeEncodeError:  # a lone surrogate: escaped, as UTF-8 cannot carry it
            text = json.dumps(message)
        return text + "\n" if self.mode == "official" else text

    def received(self, frame: str) -> None:
        self.frames.append(frame)
        with suppress(ValueError):
            message = json.loads(frame)
            if isinstance(message, dict) and ("result" in message or "error" in message):
                waiter = self._waiting.get(json.dumps(message.get("id")))
                if waiter is not None and not waiter.done():
                    self._sizes[json.dumps(message.get("id"))] = len(frame.encode())
                    waiter.set_result(message)


class XiaozhiBroker:
    """Serve with ``async with running_broker(...) as broker``; ``broker.url(token)`` to dial."""

    def __init__(self, tokens: set[str], mode: Mode = "official", ping_every: float | None = None):
        self.tokens = tokens
        self.mode = mode
        self.ping_every = ping_every
        self.port = 0
        self.connections: dict[str, list[ToolConnection]] = {}
        self.refused: list[str] = []  # tokens refused (at the handshake, or relay: after it)
        self.refused_at: list[float] = []  # when each was refused (time.monotonic)
        self.relay_refusals: dict[str, tuple[int, str]] = {}  # relay: a token's own 1008 reason
        # token -> the tool connection a device's call is routed to (``device_call``).
        self.registered: dict[str, ToolConnection] = {}
        self._changed = asyncio.Condition()

    def url(self, token: str) -> str:
        return f"ws://127.0.0.1:{self.port}/mcp/?token={token}"

    async def device_call(self, token: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """A device's tools/call, routed as the broker routes it: to the tool connection it has
        registered for the token, or answered -32001 (the relay's words) when it has none."""
        connection = self.registered.get(token)
        if connection is None:
            return {"jsonrpc": "2.0", "error": {"code": -32001, "message": "工具端未连接"}}
        return await connection.call_tool(name, arguments)

    def current(self, token: str) -> ToolConnection | None:
        live = [c for c in self.connections.get(token, []) if not c.closed.is_set()]
        return live[-1] if live else None

    async def wait_connected(self, token: str, count: int = 1) -> ToolConnection:
        """The ``count``-th connection for ``token``, as soon as it is open."""
        async with self._changed:
            await self._changed.wait_for(lambda: len(self.connections.get(token, [])) >= count)
        return self.connections[token][count - 1]

    async def wait_ready(self, token: str, count: int = 1) -> ToolConnection:
        """The ``count``-th connection for ``token``, once it has listed its tools."""
        connection = await self.wait_connected(token, count)
        await connection.ready.wait()
        return connection

    async def held(self, token: str, count: int = 1, within: float = HANG) -> ToolConnection:
        """The ``count``-th connection for ``token``: open ``within`` s (the bridge's own bound,
        HELD_WITHIN, where a test checks that promise; else the hang guard: a loaded host's
        scan is late), then ready (it has listed its tools) within the hang guard."""
        connection = await asyncio.wait_for(self.wait_connected(token, count), within)
        await asyncio.wait_for(connection.ready.wait(), HANG)
        return connection

    async def wait_refused(self, token: str, count: int = 1) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.refused.count(token) >= count)

    def _check(self, socket: ServerConnection, request: Request) -> Response | None:
        token = dict(parse_qsl(urlsplit(request.path).query)).get("token", "")
        if token in self.tokens or self.mode == "relay":  # the relay refuses after accepting
            return None
        self.refused.append(token)
        self.refused_at.append(time.monotonic())
        asyncio.get_running_loop().create_task(self._notify())
        return socket.respond(HTTPStatus.UNAUTHORIZED, "invalid token: expired or unknown\n")

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _serve(self, socket: ServerConnection) -> None:
        query = dict(parse_qsl(urlsplit(socket.request.path if socket.request else "").query))
        token = query.get("token", "")
        if token not in self.tokens:  # relay mode: accepted, then closed before reading anything
            self.refused.append(token)
            self.refused_at.append(time.monotonic())
            refusal = self.relay_refusals.get(token, RELAY_BAD_TOKEN) if token else RELAY_NO_TOKEN
            await socket.close(*refusal)
            await self._notify()
            return
        agent = socket.request.headers.get("User-Agent") if socket.request else None
        connection = ToolConnection(token, socket, self.mode, user_agent=agent)
        old = self.current(token)
        earlier = self.connections.setdefault(token, [])
        last = earlier[-1] if earlier else None
        earlier.append(connection)
        self.registered[token] = connection
        await self._notify()
        if old is not None:
            await old.socket.close(*(RELAY_REPLACED if self.mode == "relay" else REPLACED))
        if self.mode == "relay" and last is not None and last.ready.is_set():
            # The device session goes on through the relay: no handshake on this connection.
            connection._prefix, connection._relay_numbers = last._prefix, last._relay_numbers
            connection.tools = last.tools
            connection.ready.set()
            handshake = None
        else:
            handshake = asyncio.create_task(self._handshake(connection))
        pinger = asyncio.create_task(self._ping(connection)) if self.ping_every else None
        try:
            await self._read(connection)
        except ConnectionClosed:
            pass
        finally:
            for task in (handshake, pinger):
                if task is not None:
                    task.cancel()
            if self.mode == "relay" or self.registered.get(token) is connection:
                # The relay's unregister_tool_connection(agent_id): by token, whichever it is.
                self.registered.pop(token, None)
            close = socket.protocol.close_rcvd or socket.protocol.close_sent
            connection.close_reason = "" if close is None else f"{close.code} {close.reason}"
            for waiter in connection._waiting.values():
                if not waiter.done():
                    waiter.set_exception(ConnectionError(f"closed: {connection.close_reason}"))
            connection.closed.set()
            await self._notify()

    async def _read(self, connection: ToolConnection) -> None:
        async for frame in connection.socket:
            connection.received(frame if isinstance(frame, str) else frame.decode())

    async def _handshake(self, connection: ToolConnection) -> None:
        params = {
            "protocolVersion": "2024-11-05",
            "capabilities": {"roots": {"listChanged": True}, "sampling": {}},
            "clientInfo": {"name": "xiaozhi-mqtt-client", "version": "1.0.0"},
        }
        # All three at once, without waiting for an answer, as both sides do: xiaozhi.me's
        # initialize is id 0 and tools/list id 1; the relay's are xiaozhi-server's 1 and 2.
        prefix = connection._prefix
        relayed = (f"{prefix}_n_1", f"{prefix}_n_2") if self.mode == "relay" else (None, None)
        first = await connection.send_request("initialize", params, relayed[0])
        await connection.notify("notifications/initialized")
        listed = await connection.send_request("tools/list", None, relayed[1])
        connection.initialize_answer = await connection.answer(first)
        response = await connection.answer(listed)
        connection.tools = response.get("result", {}).get("tools", [])
        connection.ready.set()

    async def _ping(self, connection: ToolConnection) -> None:
        assert self.ping_every is not None
        await connection.ready.wait()
        while True:
            await asyncio.sleep(self.ping_every)  # the broker's own period, not a test wait
            if "result" in await connection.request("ping"):
                connection.pinged.set()


@asynccontextmanager
async def running_broker(
    tokens: set[str], mode: Mode = "official", ping_every: float | None = None
) -> AsyncIterator[XiaozhiBroker]:
    broker = XiaozhiBroker(tokens, mode, ping_every)
    async with serve(
        broker._serve, "127.0.0.1", 0, process_request=broker._check, logger=broker_log
    ) as server:
        broker.port = next(iter(server.sockets)).getsockname()[1]
        yield broker
