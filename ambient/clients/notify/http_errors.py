"""Guarded POSTs to push endpoints; HTTP outcomes mapped to transient or permanent errors."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING

import httpx

from ambient.clients.guard import (
    DestinationGuard,
    DestinationLookupError,
    PinnedRequest,
    RefusedDestinationError,
)
from ambient.clients.notify.base import SEND_CLOCK, TURN_WAIT
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
) -> httpx.Response:
    """POST; timeouts, connection errors, 408 and 5xx are transient, 429 and 503 "try again
    later" (``DeferredNotifyError``, with their Retry-After), other 4xx permanent. A 429 or 503
    whose Retry-After fits the send's turn budget (``SendClock``) is waited out and posted
    again once; a longer one is for a later delivery (docs/notifications.md, "Deliver later")."""
    # Redirects are never followed: the guard checked this URL, not wherever a 3xx points.
    post = partial(
        http.post,
        url,
        content=content,
        json=payload if content is None else None,  # a body is one or the other
        headers=headers,
        timeout=request_timeout,
        follow_redirects=False,
    )
    try:
        response = await post()
        send, after = SEND_CLOCK.get(), asked_delay(response)
        if response.status_code in LATER and send and after is not None:
            if after <= TURN_WAIT - send.waited:
                await send.waits(after)
                response = await post()
    except httpx.TimeoutException as exc:
        raise TransientNotifyError(f"timeout after {request_timeout:g}s") from exc
    except httpx.TransportError as exc:
        if isinstance(refused := ssl_error_in(exc), ssl.SSLCertVerificationError):
            # Every retry fails the same way: said at once, with what to fix, as for email.
            raise PermanentNotifyError(
                f"the receiver's TLS certificate was refused ({refused.verify_message}): the "
                "URL's host must have a certificate the worker trusts"
            ) from exc
        raise TransientNotifyError(f"{type(exc).__name__}: {exc}") from exc
    if response.status_code >= 400 or response.is_redirect:
        raise refusal(response, f"HTTP {response.status_code}")
    return response


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
