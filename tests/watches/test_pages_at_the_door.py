"""What a user creating a web monitor through MCP is told of a page that cannot be watched:
the answer's baseline names the real reason, not a guess about a different one."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ambient.settings import Settings
from ambient.wiring import AppState
from tests.conftest import unique
from tests.support.servers import serve
from tests.watches.test_tasks_mcp import app, mcp

__all__ = ["app"]  # the fixture, used by name

# Loopback is allowed for the pages; 127.0.0.2 is loopback too, and refused (nothing past
# this machine is named, docs/NOTES: "Tests that name other addresses").
ANSWERS = {
    "/empty": Response(status_code=204),
    "/moved": Response(status_code=302, headers={"location": "/away"}),
    "/away": Response(status_code=301, headers={"location": "http://127.0.0.2:9/inside"}),
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"fetch_allow_cidrs": ["127.0.0.1/32"]})


async def page(request: Request) -> Response:
    return ANSWERS[request.url.path]


async def baseline_error(client: Client, url: str) -> Any:
    config = {"urls": [url], "check_interval_minutes": 1}
    made = await client.call_tool("create_web_monitor", {"config": config, "name": unique("m")})
    assert not made.is_error, made.content
    assert made.structured_content is not None
    seen = made.structured_content["baseline"]["urls"][url]
    assert seen["outcome"] == "error", seen
    return seen["error"]


async def test_an_empty_answer_is_said_empty_and_a_refused_redirect_names_the_watched_url(
    app: AppState,
) -> None:
    site = Starlette(routes=[Route("/{path:path}", page)])
    async with serve(site) as base:
        async with mcp(app) as client:
            empty = await baseline_error(client, f"{base}/empty")
            moved = await baseline_error(client, f"{base}/moved")
    # Not "is it rendered by JavaScript?": the server sent nothing to render.
    # Said beside its URL (the baseline's key, the page's row): the URL is not said again.
    assert empty == "the server answered HTTP 204 with no body: nothing to watch"
    # The address refused is not the one the user gave: the answer says how it was reached.
    assert moved == (
        "redirected to http://127.0.0.2:9/inside: refused destination 127.0.0.2: "
        "127.0.0.2 is a loopback address (a non-public address); allow it with "
        "AMBIENT_FETCH_ALLOW_CIDRS (e.g. 10.0.0.0/8) if intended"
    )
