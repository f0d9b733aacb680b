"""Guarded POSTs to push endpoints; HTTP outcomes mapped to transient or permanent errors."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import zlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import httpx

from ambient.clients.guard import (
    DestinationGuard,
    DestinationLookupError,
    PinnedRequest,
    RefusedDestinationError,
)
from ambient.clients.notify.base import SEND_CLOCK, TURN_WAIT, Posts
from ambient.clients.notify.errors import (
    DeferredNotifyError,
    PermanentNotifyError,
    TransientNotifyError,
    ssl_error_in,
)
from ambient.domain.deliver_later import retry_after_seconds

if TYPE_CHECKING:
    import requests

# "Too Many Requests" and "Service Unavailable": the receiver asks to be tried again later.
LATER = (429, 503)
# Bytes of an answer read: a robot's JSON, a refusal's words. A webhook's receiver is anyone's
# server: an answer without end, or one compressed a thousandfold, read whole, took the worker's
# memory (which every user's sends share).
ANSWER_LIMIT = 64 * 1024
# Seconds a refusal's words are waited for (never more than half the send's time left): its
# status is the answer, and an error page trickling in was read until the send's deadline cut
# it, the status lost ("no answer"), and a 410 Gone posted again.
REFUSAL_READ = 1.5
# The headers that described the whole body as sent, not the words kept of it.
UNREAD = (b"content-encoding", b"content-length", b"transfer-encoding")


async def checked_destination(guard: DestinationGuard, url: str) -> PinnedRequest:
    """The guard's verdict on a user-aimed URL, as notify errors (DNS failure may pass)."""
    try:
        return await guard.pin(url)
    except RefusedDestinationError as exc:
        raise PermanentNotifyError(str(exc)) from None
    except DestinationLookupError as exc:
        raise TransientNotifyError(str(exc)) from None


async def post_json(
    http: httpx.AsyncClient,
    url: str,
    payload: object,
    *,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
    request_timeout: float = 15.0,
    reads_success: bool = True,
    posts: Posts | None = None,
) -> httpx.Response:
    """POST; timeouts, connection errors, 408 and 5xx are transient, 429 and 503 "try again
    later" (``DeferredNotifyError``, with their Retry-After), other 4xx permanent. A 429 or 503
    whose Retry-After fits the send's turn budget (``SendClock``) is waited out and posted
    again once; a longer one is for a later delivery (docs/notifications.md, "Deliver later").
    ``reads_success``: a 2xx answer's body is read (a robot's JSON says if it took the
    message); else the 2xx is the answer, returned at its headers with no body. ``posts``
    (a receiver that cannot drop a repeat, a chat robot): the row records the message goes
    before the request's first byte, and a request written whole and then left unanswered
    (its connection lost, its answer late) may have been delivered: failed for good, never
    posted again (`handed`)."""
    # Redirects are never followed: the guard checked this URL, not wherever a 3xx points.
    request = http.build_request(
        "POST",
        url,
        content=content,
        json=payload if content is None else None,  # a body is one or the other
        # Not compressed: what is read of the answer is its first bytes, as sent.
        headers={**(headers or {}), "Accept-Encoding": "identity"},
        timeout=request_timeout,
        extensions=None if posts is None else {"trace": handed(posts)},
    )

    async def post() -> httpx.Response:
        response = await http.send(request, stream=True, follow_redirects=False)
        try:
            if not response.is_success:
                if posts is not None:  # refused: not taken (a 503's wait posts it again)
                    posts.handed = False
                    await posts.refused()
                return await first_words(response, within=refusal_read())
            # A body not needed is not waited for: one trickling on after a 2xx was read until
            # the send's deadline cut it, and the message, taken, was posted again.
            return await first_words(response, read=reads_success)
        finally:
            await response.aclose()

    try:
        response = await post()
        send, after = SEND_CLOCK.get(), asked_delay(response)
        if response.status_code in LATER and send and after is not None:
            if after <= TURN_WAIT - send.waited:
                await send.waits(after)
                response = await post()
        if posts is not None:
            # Answered: whatever comes next (a message's next part, its wait for a turn) is
            # no longer a post left unanswered.
            posts.handed = False
    except httpx.TransportError as exc:  # a timeout too
        if posts is not None and posts.handed:
            raise PermanentNotifyError(
                f"no answer after the message was sent ({type(exc).__name__}): it may have "
                "been delivered; not sent again"
            ) from exc
        if isinstance(exc, httpx.TimeoutException):
            raise TransientNotifyError(f"timeout after {request_timeout:g}s") from exc
        if isinstance(refused := ssl_error_in(exc), ssl.SSLCertVerificationError):
            # Every retry fails the same way: said at once, with what to fix, as for email.
            raise PermanentNotifyError(
                f"the receiver's TLS certificate was refused ({refused.verify_message}): the "
                "URL's host must have a certificate the worker trusts"
            ) from exc
        if isinstance(exc, httpx.ConnectError):
            # Where it could not connect, never the URL (a robot's key is in its query): a
            # dead receiver read "ConnectError: All connection attempts failed" and no more.
            port = request.url.port or (443 if request.url.scheme == "https" else 80)
            raise TransientNotifyError(
                f"could not connect to {request.url.host}:{port} ({exc or type(exc).__name__})"
            ) from exc
        raise TransientNotifyError(f"{type(exc).__name__}: {exc}") from exc
    if response.status_code >= 400 or response.is_redirect:
        raise refusal(response, f"HTTP {response.status_code}")
    return response


def handed(posts: Posts) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
    """httpcore's trace of a request: as its headers go, the row records that the message goes
    now (a worker dying after leaves it said); once its body was written whole, the receiver
    may act on it whatever becomes of the answer (``posts.handed``)."""

    async def trace(event: str, info: dict[str, Any]) -> None:
        if event.endswith(".send_request_headers.started"):
            posts.handed = False
            await posts.handing()
        elif event.endswith(".send_request_body.complete"):
            posts.handed = True

    return trace


def refusal_read() -> float:
    """Seconds a refusal's words may take: REFUSAL_READ, or half the send's time left."""
    send = SEND_CLOCK.get()
    if send is None or (when := send.deadline.when()) is None:
        return REFUSAL_READ
    return max(min(REFUSAL_READ, (when - asyncio.get_running_loop().time()) / 2), 0)


async def first_words(
    response: httpx.Response, *, read: bool = True, within: float | None = None
) -> httpx.Response:
    """``response`` (streamed) with at most ANSWER_LIMIT bytes of its body read (``read``;
    else none), decoded if the receiver compressed it though asked not to (``decoded``).
    ``within``: seconds the body is read for, what came by then kept."""
    raw = bytearray()
    if read:
        # Closed at once when left (httpx's iterator is a generator): not when collected.
        chunks_of = cast(AsyncGenerator[bytes, None], response.aiter_raw())
        bound = asyncio.timeout(within)  # None: read as long as the send's own time lasts
        try:
            async with bound, contextlib.aclosing(chunks_of) as chunks:
                async for chunk in chunks:
                    raw += chunk
                    if len(raw) >= ANSWER_LIMIT:
                        break
        except TimeoutError:
            if not bound.expired():  # not this bound's
                raise
    body = decoded(bytes(raw[:ANSWER_LIMIT]), response.headers.get("content-encoding"))
    # As received (bytes): a header decoded and encoded again can read otherwise.
    kept = [(k, v) for k, v in response.headers.raw if k.lower() not in UNREAD]
    return httpx.Response(
        response.status_code, headers=kept, content=body, request=response.request
    )


def decoded(raw: bytes, coding: str | None) -> bytes:
    """The first ANSWER_LIMIT bytes ``raw`` decode to, as its Content-Encoding says: gzip, or
    deflate (zlib's, or raw as many servers send it); a body that does not decode: none; one
    in another coding: a note saying so in its place, for whoever reads the error."""
    coding = (coding or "identity").strip().lower()
    if coding == "identity" or not raw:
        return raw
    if coding not in ("gzip", "x-gzip", "deflate"):
        return f"(answer compressed as {coding[:40]}, not read)".encode()
    # MAX_WBITS | 32: a gzip or a zlib header, either; -MAX_WBITS: raw deflate, no header.
    for window in (zlib.MAX_WBITS | 32, -zlib.MAX_WBITS):
        with contextlib.suppress(zlib.error):
            return zlib.decompressobj(window).decompress(raw, ANSWER_LIMIT)
    return b""


def refusal(response: httpx.Response | requests.Response, said: str) -> Exception:
    """Why an HTTP answer that is not a success did not take the message (``said`` names the
    answer): 429 and 503 "try again later" (``DeferredNotifyError``, with their Retry-After),
    408 and 5xx transient, redirects (never followed) and other answers for good."""
    status = response.status_code
    if status in LATER:
        if (after := asked_delay(response)) is not None:
            said += f" (Retry-After: {response.headers['retry-after'].strip()[:40]})"
        return DeferredNotifyError(said, retry_after=after)
    if status == 408 or status >= 500:
        return TransientNotifyError(said)
    if 300 <= status < 400:
        return PermanentNotifyError(
            f"{said}: the endpoint redirects and redirects are not followed; configure the "
            "final URL"
        )
    return PermanentNotifyError(f"{said}: {response.text[:200]}")


def asked_delay(response: httpx.Response | requests.Response) -> float | None:
    """The seconds a response's Retry-After asks to wait (seconds or a date), if it says."""
    after = response.headers.get("retry-after")
    return None if after is None else retry_after_seconds(after, datetime.now(UTC))
