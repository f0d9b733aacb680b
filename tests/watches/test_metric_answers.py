"""A metric source that answers what no reading can be made of — JSON nested past the parser's
depth, a Prometheus range vector or string — is one failed reading that says what came back,
read once: nested JSON crashed the read (RecursionError), which was tried three times over 5 s
and said as the crash."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ambient.watches.service import TaskService
from tests.conftest import unique
from tests.support.servers import serve
from tests.watches.test_lifecycle_service import service  # noqa: F401  (fixture)
from tests.watches.test_workflows import USER, loopback_deps  # noqa: F401  (fixture)

DEEP = "[" * 5000 + "]" * 5000  # past the JSON decoder's recursion depth


@pytest_asyncio.fixture
async def source() -> AsyncIterator[tuple[list[str], str]]:
    reads: list[str] = []

    async def deep(request: Request) -> Response:
        reads.append(request.url.path)
        return Response(DEEP, media_type="application/json")

    async def prometheus(request: Request) -> Response:
        reads.append(request.url.path)
        if request.query_params["query"].startswith('"'):  # a string literal: a string
            data = {"resultType": "string", "result": [1, request.query_params["query"][1:-1]]}
            return JSONResponse({"status": "success", "data": data})
        series = {"metric": {}, "values": [[1, "2"], [2, "3"]]}
        data = {"resultType": "matrix", "result": [series]}
        return JSONResponse({"status": "success", "data": data})

    app = Starlette(routes=[Route("/deep", deep), Route("/api/v1/query", prometheus)])
    async with serve(app) as base:
        yield reads, base


async def _baseline_error(tasks: TaskService, source: dict[str, str], name: str) -> str:
    """The error a threshold watch reading ``source`` takes as its baseline (no value); the
    watch deleted after."""
    config = {"source": source, "threshold": 1, "check_interval_minutes": 5}
    ref = await tasks.create(USER, "threshold_watch", config, unique(name))
    await tasks.delete(USER, ref.task_id)
    assert ref.baseline is not None and ref.baseline["value"] is None
    return str(ref.baseline["error"])


async def test_json_nested_past_the_parsers_depth_is_one_failed_reading(
    service: TaskService,  # noqa: F811
    source: tuple[list[str], str],
) -> None:
    reads, base = source
    deep = {"type": "http_json", "url": f"{base}/deep", "json_path": "$.data"}
    error = await _baseline_error(service, deep, "deep")
    assert error.startswith("the source did not answer a number (RecursionError")
    assert reads == ["/deep"]


async def test_a_prometheus_range_vector_is_said_as_one(
    service: TaskService,  # noqa: F811
    source: tuple[list[str], str],
) -> None:
    reads, base = source
    ranged = {"type": "prometheus", "url": base, "query": "up[5m]"}
    assert await _baseline_error(service, ranged, "range") == (
        "query answered a range vector (matrix), not one sample: query an instant "
        "vector (no [range] selector): up[5m]"
    )
    assert reads == ["/api/v1/query"]


async def test_a_prometheus_string_is_said_as_one_not_as_two_samples(
    service: TaskService,  # noqa: F811
    source: tuple[list[str], str],
) -> None:
    """A query answering a string (``[time, "text"]``) was said as "got 2 samples"."""
    reads, base = source
    text = {"type": "prometheus", "url": base, "query": '"42"'}
    assert await _baseline_error(service, text, "string") == (
        'query answered a string, not a number: query an instant vector returning one sample: "42"'
    )
    assert reads == ["/api/v1/query"]
