"""Map HTTP outcomes of push endpoints to transient or permanent errors."""

from __future__ import annotations

import httpx

from ambient.clients.notify.base import PermanentNotifyError, TransientNotifyError


async def post_json(
    http: httpx.AsyncClient,
    url: str,
    payload: object,
    *,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
    request_timeout: float = 15.0,
) -> httpx.Response:
    """POST; timeouts, connection errors, 429 and 5xx are transient, other 4xx permanent."""
    try:
        if content is not None:
            response = await http.post(
                url, content=content, headers=headers, timeout=request_timeout
            )
        else:
            response = await http.post(url, json=payload, headers=headers, timeout=request_timeout)
    except httpx.TimeoutException as exc:
        raise TransientNotifyError(f"timeout after {request_timeout:g}s") from exc
    except httpx.TransportError as exc:
        raise TransientNotifyError(f"{type(exc).__name__}: {exc}") from exc
    if response.status_code == 429 or response.status_code >= 500:
        raise TransientNotifyError(f"HTTP {response.status_code}")
    if response.status_code >= 400:
        raise PermanentNotifyError(f"HTTP {response.status_code}: {response.text[:200]}")
    return response
