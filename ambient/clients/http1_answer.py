"""Reading one HTTP/1.1 answer off a connection, for the page client (ambient.clients.http1).

Most answers are an HTTP/1.1 ``304`` or a ``200`` framed by ``Content-Length``, the connection
kept; h11's state machine cost about twice a hand reader's CPU per such GET. ``_plain`` reads
that shape with two strict patterns; every other answer is handed to h11 with the bytes
already read, and h11 decides it as before.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import h11

from ambient.clients.http1_errors import (
    ENDED_IN_BODY,
    ENDED_IN_BODY_SAID,
    ENDED_IN_HEADERS,
    RESET_INSIDE,
    TWO_LOCATIONS,
    BodyTooLargeError,
    ConnectionCutError,
    HttpProtocolError,
    StaleConnectionError,
)

MAX_HEADER_BYTES = 64 * 1024
READ_CHUNK = 64 * 1024
RequestOf = Callable[[], list[h11.Event]]
# The plain answer's status line and header fields (RFC 9112): HTTP/1.1, a final status, a
# token name, a value of visible characters, spaces and tabs (no CR, LF or NUL, no obs-fold).
PLAIN_STATUS = re.compile(rb"HTTP/1\.1 ([2-5][0-9][0-9])(?: [\t -~\x80-\xff]*)?")
VISIBLE = rb"[!-~\x80-\xff]"
PLAIN_FIELD = re.compile(
    rb"([-!#$%&'*+.^_`|~0-9A-Za-z]+):[ \t]*"
    rb"((?:" + VISIBLE + rb"(?:[\t -~\x80-\xff]*" + VISIBLE + rb")?)?)[ \t]*"
)
HEAD_END = b"\r\n\r\n"


async def _receive(reader: asyncio.StreamReader, received: bool) -> bytes:
    try:
        data = await reader.read(READ_CHUNK)
    except ConnectionResetError as exc:
        if not received:
            raise StaleConnectionError from exc
        raise ConnectionCutError(RESET_INSIDE) from exc
    if not data and not received:
        raise StaleConnectionError  # closed before the first byte of an answer
    return data


async def read_answer(
    reader: asyncio.StreamReader, request: RequestOf, max_bytes: int
) -> tuple[int, dict[str, str], bytearray, bool]:
    """Status, fields, raw body of one answer and whether the connection is reusable."""
    # The plain shape is read here, anything else through h11.
    buffer = bytearray()
    while (end := buffer.find(HEAD_END)) < 0:
        if len(buffer) > MAX_HEADER_BYTES or not buffer.startswith(b"HTTP/1.1 "[: len(buffer)]):
            return await _read_with_h11(reader, request, buffer, False, max_bytes)
        data = await _receive(reader, bool(buffer))
        if not data:
            return await _read_with_h11(reader, request, buffer, True, max_bytes)
        buffer += data
        if b"\n\n" in buffer[-len(data) - 1 :] and HEAD_END not in buffer:
            # Lines ended by bare line feeds: h11 says what that is.
            return await _read_with_h11(reader, request, buffer, False, max_bytes)
    plain = _plain(bytes(buffer[:end])) if end <= MAX_HEADER_BYTES else None
    if plain is None:  # h11 reads it (a head past the cap too, as it always did)
        return await _read_with_h11(reader, request, buffer, False, max_bytes)
    status, headers, length = plain
    if length > max_bytes:
        raise BodyTooLargeError(f"declares {length} bytes (cap {max_bytes})")
    body = buffer[end + len(HEAD_END) :]
    while len(body) < length:
        data = await _receive(reader, True)
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
    reader: asyncio.StreamReader, request: RequestOf, buffer: bytearray, ended: bool, max_bytes: int
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
            data = await _receive(reader, received)
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
