"""A throttled Kubernetes API server's asked wait is kept with its error, for the change's next
try: the fixed 2, 4, 8 s backoff wrote four times in 6 s to a server that asked for 20 s."""

from __future__ import annotations

import httpx2
from lightkube.core.exceptions import ApiError

from ambient.clients.kube_errors import KubeUnavailableError, kube_error

REQUEST = httpx2.Request("PATCH", "https://kube.example/apis/apps/v1/namespaces/p/deployments/c")


def _status(code: int, **details: object) -> dict[str, object]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": "the server has received too many requests",
        "reason": "TooManyRequests",
        "code": code,
        "details": details,
    }


def test_a_429s_retry_after_is_kept_from_its_status_or_its_header() -> None:
    asked = httpx2.Response(429, json=_status(429, retryAfterSeconds=20), request=REQUEST)
    error = kube_error(ApiError(request=REQUEST, response=asked), "patch deployments/c")
    assert isinstance(error, KubeUnavailableError) and error.retry_after == 20
    header = httpx2.Response(429, headers={"Retry-After": "7"}, json=_status(429), request=REQUEST)
    assert kube_error(ApiError(request=REQUEST, response=header), "patch").retry_after == 7
    # A gateway's 503 page with the header; a date (not read) and no header: none asked.
    page = httpx2.Response(503, headers={"Retry-After": "3"}, text="busy", request=REQUEST)
    failed = httpx2.HTTPStatusError("503", request=REQUEST, response=page)
    assert kube_error(failed, "patch").retry_after == 3
    dated = {"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}
    at_a_date = httpx2.Response(429, headers=dated, json=_status(429), request=REQUEST)
    assert kube_error(ApiError(request=REQUEST, response=at_a_date), "patch").retry_after is None
