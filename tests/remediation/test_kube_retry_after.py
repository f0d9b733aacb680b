"""A throttled Kubernetes API server's asked wait is kept with its error, for the change's next
try: the fixed 2, 4, 8 s backoff wrote four times in 6 s to a server that asked for 20 s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from lightkube.core.exceptions import ApiError
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse

from ambient.clients.kube import KubeClients
from ambient.clients.kube_errors import KubeUnavailableError, kube_error
from ambient.remediation.kube_executor import KubernetesExecutor
from ambient.remediation.ladder import Rung
from tests.remediation.test_kube_executor import V1, V2, Cluster, WorkloadRef
from tests.standins.kube_api import KubeApi, kubeconfig
from tests.support.servers import serve

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


async def test_a_step_throttled_after_it_wrote_keeps_the_asked_wait(tmp_path: Path) -> None:
    """A full rollback throttled at its ConfigMap after it wrote the Deployment: the error said
    what it had written and lost the server's asked wait (a diff review)."""
    throttled: list[str] = []

    async def throttle(request: Request, call_next: Any) -> Any:
        if request.method == "PATCH" and "/configmaps/" in request.url.path and throttled:
            return JSONResponse(_status(429, retryAfterSeconds=20), status_code=429)
        return await call_next(request)

    api = KubeApi()
    api.add_configmap("shop", "checkout-env", {"MODE": "fast"})
    api.add_deployment("shop", "checkout", V1, replicas=2, configmaps=["checkout-env"])
    app = api.app()
    app.add_middleware(BaseHTTPMiddleware, dispatch=throttle)
    async with serve(app) as base:
        path = tmp_path / "kubeconfig"
        path.write_text(yaml.safe_dump(kubeconfig({"c1": base})))
        clients = KubeClients(path, None)
        target = WorkloadRef(cluster_id="c1", namespace="shop", name="checkout")
        kube = Cluster(api, KubernetesExecutor(clients), target, path)
        try:
            await kube.release(V2)
            baseline = await kube.executor.checkpoint(kube.target)
            api.configmaps[("shop", "checkout-env")]["data"] = {"MODE": "slow"}
            throttled.append("on")
            full = kube.step(
                "remediation/r8p",
                Rung.FULL_ROLLBACK,
                to_revision=baseline.previous_revision,
                checkpoint=baseline,
            )
            with pytest.raises(KubeUnavailableError, match="written by this step") as refused:
                await kube.executor.apply(full)
        finally:
            await clients.aclose()
    assert refused.value.retry_after == 20
