"""Query parameters are checked by their schema on every router: 422 naming the parameter."""

from __future__ import annotations

import httpx
import pytest

from ambient.settings import Settings
from api.app import create_app
from tests.support.admins import admin_headers
from tests.support.servers import HANG, free_port, serve

BAD_QUERIES = [
    ("/remediations", {"state": "bad"}, "state"),
    ("/remediations", {"limit": "-5"}, "limit"),
    ("/briefings", {"limit": "-5"}, "limit"),
    ("/briefings", {"limit": "100000"}, "limit"),
    ("/events", {"user": "Not A Name"}, "user"),
    ("/events/stream", {"after_id": str(2**63)}, "after_id"),
    ("/inbox", {"user": "../admin"}, "user"),
    ("/deliveries", {"channel": "fax"}, "channel"),
    ("/deliveries", {"user": "x" * 64}, "user"),
    ("/tasks", {"state": "bad"}, "state"),
]


@pytest.mark.parametrize(("path", "params", "name"), BAD_QUERIES)
async def test_bad_query_parameters_are_refused_naming_the_parameter(
    settings: Settings, path: str, params: dict[str, str], name: str
) -> None:
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with (
        serve(create_app(settings)) as base,
        httpx.AsyncClient(timeout=HANG, base_url=base, trust_env=False) as http,
    ):
        admin = await admin_headers(settings)
        response = await http.get(path, params=params, headers=admin)
    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["detail"]] == [["query", name]]
