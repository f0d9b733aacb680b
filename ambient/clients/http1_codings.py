"""The content codings of a page client's answer: gzip and deflate decoded under the
caller's cap, any other refused in words that say what to ask its server for."""

from __future__ import annotations

import zlib

from ambient.clients.http1_errors import (
    GZIP_MISNAMED,
    MANY_MEMBERS,
    TRUNCATED,
    UNDECODED_CODING,
    BodyTooLargeError,
    ConnectionCutError,
    HttpProtocolError,
)


def decode(body: bytes | bytearray, headers: dict[str, str], max_bytes: int) -> bytes:
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
FED = 1 << 16  # compressed bytes given to zlib at a time
# Members of one gzip body decoded at most: a page is one (a log joined from a few), and a body
# of tens of thousands of empty ones is no page but work.
MOST_MEMBERS = 1000


def _inflate(data: bytes | bytearray, wbits: int, max_bytes: int, coding: str) -> bytes:
    # gzip is a series of members (RFC 1952 2.2), each a stream of its own: the page is all of
    # them. Bytes after the last that are no member (a stray newline, a proxy's junk) are
    # passed over, as urllib3 and httpx do; the first must be whole. The input is fed a slice
    # at a time and the output joined once: a body of many tiny members took time in the
    # square of their number (each copied the rest of the input and the output so far): a
    # minute of the event loop for 5 MB of them.
    out: list[bytes] = []
    view, at, size, members = memoryview(data), 0, 0, 0
    while not members or (coding == "gzip" and view[at : at + 2] == GZIP_MAGIC):
        if members == MOST_MEMBERS:
            raise HttpProtocolError(MANY_MEMBERS % {"members": MOST_MEMBERS})
        member, members, its = zlib.decompressobj(wbits), members + 1, len(out)
        try:
            while not member.eof and at < len(view):
                fed = view[at : at + FED]
                more = member.decompress(fed, max_bytes + 1 - size)
                size += len(more)
                if size > max_bytes:
                    raise BodyTooLargeError(f"decodes to more than {max_bytes} bytes")
                out.append(more)
                at += len(fed) - len(member.unused_data) - len(member.unconsumed_tail)
        except zlib.error:
            del out[its:]  # junk after the last member: none of it is the page
            if members == 1:
                raise
            break
        if not member.eof:
            # The framing was complete, the compressed stream was not: a server that died
            # while compressing. Its first half is not the page.
            raise ConnectionCutError(TRUNCATED % {"coding": coding})
    return b"".join(out)
