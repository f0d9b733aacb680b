"""Guarded POSTs to push endpoints; HTTP outcomes mapped to transient or permanent errors."""

from __future__ import annotations

from functools import partial

import httpx

from ambient.clients.guard import (
    DestinationGuard,
    DestinationLookupError,
    PinnedRequest,
    RefusedDestinationError,
)
from ambient.clients.notify.base import SEND_CLOCK, TURN_WAIT
from ambient.clients.notify.errors import PermanentNotifyError, TransientNotifyError


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
    """POST; timeouts, connection errors, 429 and 5xx are transient, other 4xx permanent. A 429
    whose Retry-After (seconds) fits the send's turn budget (``SendClock``) is waited out and
    posted again once (a retry would meet the 429 until then: past the retries, it was lost)."""
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
        send, after = SEND_CLOCK.get(), response.headers.get("retry-after", "")
        if response.status_code == 429 and send and after.isascii() and after.isdigit():
            if int(after) <= TURN_WAIT - send.waited:
                await send.waits(int(after))
                response = await post()
    except httpx.TimeoutException as exc:
        raise TransientNotifyError(f"timeout after {request_timeout:g}s") from exc
    except httpx.TransportError as exc:
        raise TransientNotifyError(f"{type(exc).__name__}: {exc}") from exc
    if response.status_code == 429 or response.status_code >= 500:
        raise TransientNotifyError(f"HTTP {response.status_code}")
    if response.status_code >= 400:
        raise PermanentNotifyError(f"HTTP {response.status_code}: {response.text[:200]}")
    if response.is_redirect:
        raise PermanentNotifyError(
            f"HTTP {response.status_code}: the endpoint redirects and redirects are not "
            "followed; configure the final URL"
        )
    return response
