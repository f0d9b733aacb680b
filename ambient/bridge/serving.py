"""MCP over one xiaozhi endpoint connection: one JSON-RPC message per WebSocket text frame.

We drive the SDK's own server (the same one `ambient mcp` serves over stdio) through memory
streams rather than dispatching JSON-RPC ourselves: initialize (any protocol version the SDK
speaks, 2024-11-05 included, again on the same connection), ping, tools/list, tools/call,
notifications and the exact round trip of ids (0, numbers, strings) are the SDK's, so the
bridge adds only what the broker needs on top: frames that may end in a newline, a JSON-RPC
error for a malformed frame (the connection stays up), a connection opened for a relayed
session that initialized on an earlier one, results cut to the broker's limit and, for
mcp_endpoint relays, wrapped to be spoken verbatim.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.shared._context_streams import create_context_streams
from mcp.shared.message import SessionMessage
from mcp.types import (
    JSONRPCMessage,
    JSONRPCNotification,
    JSONRPCRequest,
    jsonrpc_message_adapter,
)
from pydantic import ValidationError

from ambient.domain.configs import SURROGATE, SURROGATE_REFUSED

log = logging.getLogger(__name__)

# The broker drops a tool call's response over this size (the firmware author's stated limit,
# 78/xiaozhi-esp32 issue 767): the whole frame, its JSON-RPC envelope and id included.
RESULT_LIMIT_BYTES = 8192
# The notes the bridge says itself, in Chinese and English (``Note``): each is said in the
# endpoint's user's language, as the voice profile's answers are (who speaks on a call is
# known to its tool only, not to the bridge: the owner's language is the one it knows).
Note = tuple[str, str]
# Said by 小智's TTS after an answer cut to the broker's limit.
CUT_NOTE: Note = ("结果太长，只说到这里。", "That was too long, so I stopped there.")
# Said for a call still running when the bridge lets its endpoint go (removed, or another
# replica holds it now): the broker hears an answer, not silence until its timeout.
RELEASED_NOTE: Note = (
    "接入点的连接这时断开了，这次请求可能没有做完，请稍后再说一次。",
    "The connection to this endpoint just closed, so this request may not have finished."
    " Please say it again in a moment.",
)
# Said for a call that arrives after the endpoint was removed (or another replica took it),
# before this connection closes: the call is not run, as its user no longer serves it here.
WITHDRAWN_NOTE: Note = (
    "这个接入点已经移除或转交，这次请求没有执行。",
    "This endpoint was removed or handed over, so this request was not run.",
)
# Said for a call whose endpoint could not be checked (the database did not answer in time): not
# run, as a removed endpoint's would not be; the speaker hears to try again.
UNCHECKED_NOTE: Note = (
    "暂时无法确认这个接入点，这次请求没有执行，请稍后再说一次。",
    "I couldn't check this endpoint just now, so this request was not run."
    " Please say it again in a moment.",
)
# No request of the voice tools comes near this: a larger message is refused on its own. The
# WebSocket takes frames up to FRAME_LIMIT_BYTES, so one such frame does not close the
# connection (and every call still running on it); past that, it closes (1009).
MESSAGE_LIMIT_BYTES = 64 * 1024
FRAME_LIMIT_BYTES = 16 * 1024 * 1024
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
R = TypeVar("R")
# mcp_endpoint relays pass frames through: a device session initializes once, on the tool
# connection of that moment, and sends its later calls to whichever one is current. A request
# before any initialize is such a session's: the bridge opens the connection for it (2024-11-05,
# as the relays ask) under an id no broker uses, and keeps that answer to itself.
OPENING_ID = "ambient-bridge-opening"
OPENING: tuple[JSONRPCMessage, ...] = (
    JSONRPCRequest(
        jsonrpc="2.0",
        id=OPENING_ID,
        method="initialize",
        params={
            "protocolVersion": "2024-11-05",
            "capabilities": {},
            "clientInfo": {"name": "relayed-session", "version": "0"},
        },
    ),
    JSONRPCNotification(jsonrpc="2.0", method="notifications/initialized"),
)


class Socket(Protocol):
    """The WebSocket side the bridge needs (websockets' ClientConnection is one)."""

    async def send(self, message: str) -> None: ...
    async def recv(self) -> str | bytes: ...


# When the tool call the server runs now arrived on the connection (the loop's clock), set
# before it is handed to the server (the SDK runs a request in its sender's context): a voice
# call's budget counts from there, the endpoint's check before it included.
call_arrived: ContextVar[float] = ContextVar("bridge_call_arrived")


async def serve_mcp(
    socket: Socket,
    server: MCPServer[Any],
    *,
    verbatim: bool = False,
    english: bool | Callable[[], bool] = False,
    refused: Callable[[], Awaitable[Note | None]] | None = None,
) -> None:
    """Serve ``server`` over ``socket`` until the socket closes (its error propagates).
    ``refused``: asked before each tool call, why the connection may not run it (its endpoint
    removed or taken over: a removal is seen at the runner's next scan), None when it may.
    ``english``: the bridge's own notes are said in English (else Chinese); a callable is
    asked at each note (the user's language as it is now, not at the dial)."""
    said_in: Callable[[], bool] = english if callable(english) else (lambda: english)
    to_server, server_reads = create_context_streams[SessionMessage | Exception](16)
    server_writes, from_server = create_context_streams[SessionMessage](16)
    calls: set[str] = set()  # ids (as JSON) of tools/call requests not yet answered
    opened = False  # an initialize (the broker's or ours) went to the server
    lowlevel = server._lowlevel_server  # the SDK's stdio runner drives it the same way

    async def read_frames() -> None:
        nonlocal opened
        async with to_server:
            while True:
                frame = await socket.recv()
                text = frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame
                message = read_text(text)
                if isinstance(message, dict):
                    if answered(message):
                        await socket.send(as_frame(message))
                    continue
                if isinstance(message, JSONRPCRequest):
                    call_arrived.set(asyncio.get_running_loop().time())
                    why = await refused() if refused and message.method == "tools/call" else None
                    if why is not None:
                        in_english = said_in()
                        said = {"content": [{"type": "text", "text": why[in_english]}]}
                        result = shape_result(said, verbatim=verbatim, english=in_english)
                        await socket.send(
                            as_frame({"jsonrpc": "2.0", "id": message.id, "result": result})
                        )
                        continue
                    if not opened and message.method != "initialize":
                        for opening in OPENING:
                            await to_server.send(SessionMessage(opening))
                    opened = True
                    # Relays count their ids from 1 again: an id is a call's until answered,
                    # and a later request under it (a call cancelled unanswered) is itself.
                    key = json.dumps(message.id)
                    (calls.add if message.method == "tools/call" else calls.discard)(key)
                await to_server.send(SessionMessage(message))

    async def write_frames() -> None:
        async with from_server:
            async for outgoing in from_server:
                body = jsonrpc_message_adapter.dump_python(
                    outgoing.message, mode="json", by_alias=True, exclude_unset=True
                )
                if body.get("id") == OPENING_ID:
                    continue  # the answer to our own opening: no broker can route it
                key = json.dumps(body.get("id"))
                if key in calls and ("result" in body or "error" in body):
                    calls.discard(key)  # answered, a result or an error
                    if "result" in body:
                        # What the envelope (its id) leaves of the limit for the result.
                        room = RESULT_LIMIT_BYTES - _size({**body, "result": {}}) + len("{}")
                        body["result"] = shape_result(
                            body["result"], verbatim=verbatim, english=said_in(), limit=room
                        )
                await socket.send(as_frame(body))

    async with anyio.create_task_group() as group:
        group.start_soon(
            lowlevel.run, server_reads, server_writes, lowlevel.create_initialization_options()
        )
        group.start_soon(write_frames)
        try:
            await read_frames()
        except anyio.get_cancelled_exc_class():
            # The bridge lets the endpoint go: a call still running is answered, not dropped.
            # The server's own answers stop first (one answer an id), and a socket already
            # closing costs the notes, never the cancellation the runner waits on.
            group.cancel_scope.cancel()
            # Not an error result: a relay drops an error's text, and the device would say
            # "the tool returned an error without saying why" instead of the note.
            in_english = said_in()
            released = shape_result(
                {"content": [{"type": "text", "text": RELEASED_NOTE[in_english]}]},
                verbatim=verbatim,
                english=in_english,
            )
            with suppress(Exception), anyio.move_on_after(1, shield=True):
                for key in list(calls):
                    answer = {"jsonrpc": "2.0", "id": json.loads(key), "result": released}
                    await socket.send(as_frame(answer))
            raise
        finally:
            group.cancel_scope.cancel()


def as_frame(body: dict[str, Any]) -> str:
    """``body`` as one frame's text: UTF-8 where it can be, escaped where a string the peer sent
    holds a lone surrogate (JSON can carry one, UTF-8 cannot: the send would fail and end the
    connection, every call on it with it)."""
    text = json.dumps(body, ensure_ascii=False)
    try:
        text.encode()
    except UnicodeEncodeError:
        return json.dumps(body)
    return text


def as_body(message: JSONRPCMessage) -> bytes:
    """``message`` as read (``read_message``) written again for an HTTP door's SDK: what it
    reads is what the bridge passes on, not the bytes it was sent (escaped: a lone surrogate
    in arguments is allowed through)."""
    body = jsonrpc_message_adapter.dump_python(
        message, mode="json", by_alias=True, exclude_unset=True
    )
    return json.dumps(body).encode()


def read_text(
    text: str, limit: int | None = MESSAGE_LIMIT_BYTES
) -> JSONRPCMessage | dict[str, Any]:
    """A frame's (or a stdio line's) message, or the JSON-RPC error to answer instead (id kept
    when readable)."""
    try:
        # A byte order mark before the message (JSON lets a reader ignore it) is no error.
        message = json.loads(text.strip().lstrip("\ufeff"))
    except (ValueError, RecursionError) as exc:  # nested past Python's limit: a few KB do it
        return _error(None, PARSE_ERROR, f"not JSON: {exc}")
    if limit and (size := len(text.encode())) > limit:
        too_large = f"message too large ({size} bytes; at most {limit})"
        return _for(message, _error(_request_id(message), INVALID_REQUEST, too_large))
    return read_message(message)


def read_message(message: object) -> JSONRPCMessage | dict[str, Any]:
    """``message`` (JSON already read) as one JSON-RPC 2.0 message, or the JSON-RPC error to
    answer instead: the rule of every door (a frame here, an HTTP body in ``api.app``). A
    notification's error has no id (``answered``): JSON-RPC never answers a notification over
    a stream, and MCP refuses its HTTP post with an error without one."""
    return _for(message, _read_message(message))


def _for(message: object, refused: R) -> R:
    """``refused`` without its id when ``message`` is a notification (JSON-RPC 2.0's, its
    method named): an invalid request without an id (``{"method": 1}``, a 1.0 envelope) is
    still answered, id null."""
    if isinstance(refused, dict) and isinstance(message, dict) and "id" not in message:
        if message.get("jsonrpc") == "2.0" and isinstance(message.get("method"), str):
            del refused["id"]
    return refused


def answered(refused: dict[str, Any]) -> bool:
    """Whether a stream (a frame, a stdio line) answers ``read_message``'s error: a request's
    or an unreadable message's, never a notification's."""
    return "id" in refused


def _read_message(message: object) -> JSONRPCMessage | dict[str, Any]:
    if not isinstance(message, dict):
        return _error(None, INVALID_REQUEST, "a message holds one JSON-RPC object")
    ident = _request_id(message)
    # What an answer says back (the id, the method or tool named): one lone surrogate in it and
    # the answer cannot be written (over stdio, the SDK's writer ends the server).
    params = message.get("params")
    said_back = [("id", ident), ("method", message.get("method"))]
    if isinstance(params, dict):  # a tool's name, a resource's uri, ...
        said_back += [(f"params.{k}", v) for k, v in params.items() if k != "arguments"]
    for where, said in said_back:
        if isinstance(said, str) and SURROGATE.search(said):
            kept = None if where == "id" else ident
            return _error(kept, INVALID_REQUEST, f"{where} {SURROGATE_REFUSED}")
    if isinstance(params, dict) and "_meta" in params:
        # A broker writing every field, nulls included (`"_meta": null`, a null progressToken):
        # a meta the SDK cannot read failed the whole call, "Invalid request parameters".
        meta = params["_meta"]
        readable = (
            {k: v for k, v in meta.items() if v is not None} if isinstance(meta, dict) else {}
        )
        message = {**message, "params": {**params, "_meta": readable}}
    if "method" in message and "id" in message and ident is None:
        # Else read as a notification: never answered, the peer waits out its call timeout.
        return _error(None, INVALID_REQUEST, "a request's id is a string or an integer")
    try:
        return jsonrpc_message_adapter.validate_python(message)
    except ValidationError as exc:
        # The reason of the member the message means to be (a request has a method and an id, a
        # response a result, an error its error), under its field's name; params that are no
        # object are invalid params, not a request.
        member = "JSONRPCRequest" if "id" in message else "JSONRPCNotification"
        if "method" not in message and ("result" in message or "error" in message):
            member = "JSONRPCError" if "error" in message else "JSONRPCResponse"
        meant = (member, "params")
        errors = [e for e in exc.errors() if e["loc"][:1] == meant[:1]]
        first = (errors or exc.errors())[0]
        where = ".".join(str(part) for part in first["loc"][1:])
        if tuple(first["loc"]) == meant:
            return _error(ident, INVALID_PARAMS, "params is an object, or left out")
        reason = f"{where}: {first['msg']}" if where else first["msg"]
        return _error(ident, INVALID_REQUEST, f"not a JSON-RPC 2.0 message: {reason}")


def _request_id(message: object) -> int | str | None:
    ident = message.get("id") if isinstance(message, dict) else None
    return ident if isinstance(ident, int | str) and not isinstance(ident, bool) else None


def _error(ident: int | str | None, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": ident, "error": {"code": code, "message": message}}


def shape_result(
    result: dict[str, Any],
    *,
    verbatim: bool,
    english: bool = False,
    limit: int = RESULT_LIMIT_BYTES,
) -> dict[str, Any]:
    """A tools/call result as the broker reads it: the text in ``content[0]``, wrapped for
    verbatim speech if asked, never over ``limit`` bytes (cut to a sentence saying so, in
    English when ``english``)."""
    texts = [c.get("text", "") for c in result.get("content", []) if c.get("type") == "text"]
    text = "\n".join(t for t in texts if t)
    shaped: dict[str, Any] = {"content": [{"type": "text", "text": _wrap(text, verbatim)}]}
    if result.get("isError") and not verbatim:
        # A relay drops the text of an error result; verbatim, the error is spoken like any answer.
        shaped["isError"] = True
    if _size(shaped) <= limit:
        if not verbatim and len(texts) == len(result.get("content", [])) and _size(result) <= limit:
            return result  # as the server made it (structured content included) when it fits
        return shaped
    note = CUT_NOTE[english]
    shaped["content"][0]["text"] = _wrap(_cut(text, verbatim, limit, shaped, note), verbatim)
    return shaped


def _cut(text: str, verbatim: bool, limit: int, shaped: dict[str, Any], note: str) -> str:
    """The longest start of ``text`` that, with ``note``, fits the limit once framed as
    ``shaped`` (its isError included)."""
    low, high = 0, len(text)
    while low < high:  # binary search on characters: sizes are in bytes after JSON escaping
        middle = (low + high + 1) // 2
        said = _wrap(_join(text[:middle], note), verbatim)
        candidate = {**shaped, "content": [{"type": "text", "text": said}]}
        if _size(candidate) <= limit:
            low = middle
        else:
            high = middle - 1
    return _join(text[:low], note)


def _join(start: str, note: str) -> str:
    # End the spoken part at the last sentence break, so the note starts a sentence of its own.
    end = max(start.rfind(mark) for mark in "。！？.!?\n")
    kept = start[: end + 1] if end >= len(start) // 2 else start
    return f"{kept.rstrip()} {note}".strip()


def _wrap(text: str, verbatim: bool) -> str:
    if not verbatim:
        return text
    return json.dumps({"action": "RESPONSE", "response": text}, ensure_ascii=False)


def _size(result: dict[str, Any]) -> int:
    return len(as_frame(result).encode())  # as sent: escaped where it holds a lone surrogate
