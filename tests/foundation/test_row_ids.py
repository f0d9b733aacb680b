"""A row id a caller gives is checked against what an id column holds, on SQLite and on
PostgreSQL (64 bits on both: BIGINT there): past it, a 422 naming the parameter, never a
driver's overflow answered as a 500; up to it, the route's own answer."""

from __future__ import annotations

from ambient.settings import Settings
from ambient.storage.models import MAX_ID
from api.app import create_app
from tests.foundation.test_event_cursor import _api
from tests.foundation.test_postgres import postgres_url  # noqa: F401  (fixture)
from tests.support.servers import http_client, serve

# (method, path with {id}, the parameter's place and name, the answer for an id of no row)
ROUTES = [
    ("GET", "/events/stream?after_id={id}", ["query", "after_id"], None),
    ("GET", "/deliveries?before_id={id}", ["query", "before_id"], 200),
    ("GET", "/remediations?before_id={id}", ["query", "before_id"], 200),
    ("GET", "/remediations?offset={id}", ["query", "offset"], 200),
    ("POST", "/inbox/{id}/read", ["path", "message_id"], 404),
    ("DELETE", "/xiaozhi/endpoints/{id}", ["path", "endpoint_id"], 404),
    ("DELETE", "/share/{id}", ["path", "link_id"], 404),
]


async def test_an_id_no_column_can_hold_is_refused_naming_it_on_every_route(
    settings: Settings, database_url: str
) -> None:
    settings, ada = await _api(settings, database_url)
    async with (
        serve(create_app(settings)) as base,
        http_client(base, headers=ada) as http,
    ):
        for method, path, loc, no_row in ROUTES:
            for too_large in (MAX_ID + 1, 2**63):
                response = await http.request(method, path.format(id=too_large))
                assert response.status_code == 422, (path, too_large, response.text)
                assert [e["loc"] for e in response.json()["detail"]] == [loc]
            if no_row is not None:
                response = await http.request(method, path.format(id=MAX_ID))
                assert response.status_code == no_row, (path, response.text)
