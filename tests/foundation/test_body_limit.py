"""One body limit for the API and the MCP it serves: a body past it is answered 413 naming the
limit before it is read, not parsed whole and handed to Temporal's 2 MB limit (a 500)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from api.errors import INPUT_SHOWN, MAX_BODY_BYTES, unprocessable, validation_error
from tests.support.admins import admin_headers
from tests.support.api_worker import api_over_worker
from tests.support.servers import HANG

LIMIT_SAID = f"request body too large: at most {MAX_BODY_BYTES} bytes (10 MiB)"


def briefing(query_bytes: int) -> dict[str, object]:
    """A daily briefing whose CLS query is ``query_bytes`` long (nothing else bounds it)."""
    return {"log_source": {"type": "cls", "topic_id": "t", "query": "a" * query_bytes}}


async def test_a_body_past_the_limit_is_refused_with_413_naming_it_declared_or_chunked(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    async with api_over_worker(dev_env, deps) as (settings, http):
        admin = await admin_headers(settings)
        registered = await http.post("/users", json={"name": "big-body"}, headers=admin)
        http.headers["Authorization"] = f"Bearer {registered.json()['token']}"
        declared = await http.post("/briefings/daily", json=briefing(MAX_BODY_BYTES + 1))
        assert declared.status_code == 413, declared.text[:300]
        assert declared.json() == {"detail": LIMIT_SAID}

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"log_source": {"type": "cls", "topic_id": "t", "query": "'
            for _ in range(11):
                yield b"a" * (1024 * 1024)
            yield b'"}}'

        chunked = await http.post(
            "/briefings/daily", content=chunks(), headers={"content-type": "application/json"}
        )
        assert chunked.status_code == 413 and chunked.json() == {"detail": LIMIT_SAID}
        # A body under the limit is read as before: 3 MiB reach the config's own checks.
        taken = await http.post("/briefings/daily", json=briefing(3 * 1024 * 1024))
        assert taken.status_code == 422, taken.text[:300]
        assert "log_source.cls.query" in taken.text[:2000], taken.text[:300]
        # The largest body a door takes: a dashboard image as a data: URL of 8,000,000
        # characters reaches the image service (no vision model here: 503 saying so).
        image = "data:image/png;base64," + "A" * (8_000_000 - 22)
        described = await http.post("/cloud/dashboard-image", json={"image_url": image})
        assert described.status_code == 503, described.text[:300]
        assert "needs a vision model" in described.text


async def test_an_mcp_call_past_the_limit_is_an_error_the_client_reads(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    async with api_over_worker(dev_env, deps) as (settings, http):
        admin = await admin_headers(settings)
        registered = await http.post("/users", json={"name": "big-mcp"}, headers=admin)
        headers = {"Authorization": f"Bearer {registered.json()['token']}"}
        async with (
            httpx2.AsyncClient(timeout=HANG, headers=headers, trust_env=False) as client_http,
            Client(
                streamable_http_client(
                    f"{str(http.base_url).rstrip('/')}/mcp", http_client=client_http
                )
            ) as client,
        ):
            with pytest.raises(MCPError) as refused:
                await client.call_tool("create_daily_briefing", briefing(MAX_BODY_BYTES))
            assert str(refused.value) == LIMIT_SAID
            # The image the tool's schema allows (8,000,000 characters) reaches the tool, past
            # the MCP SDK's own 4 MiB, which refused it.
            image = "data:image/png;base64," + "A" * (8_000_000 - 22)
            described = await client.call_tool("describe_dashboard_image", {"image_url": image})
            assert described.is_error
            assert "needs a vision model" in str(described.content[0])


class Unencodable:
    """A value no JSON encoder takes: encoded, a 422 would fail on it."""

    __slots__ = ()


async def test_a_422_encodes_only_the_part_of_a_refused_value_it_shows() -> None:
    # 100,000 refused conditions were all encoded to show 200 characters of them (1.5 s of
    # CPU a request); what lies past the shown part is never touched now.
    refused = [{"op": "below", "value": 0.05}] * 300 + [Unencodable()] * 100_000
    answer = await validation_error(None, unprocessable((["healthy"], "too many"), given=refused))  # type: ignore[arg-type]
    [error] = json.loads(answer.body)["detail"]
    assert error["input"] == json.dumps(refused[:300], ensure_ascii=False)[:INPUT_SHOWN] + "…"
