"""The events' and deliveries' text filters on SQLite and PostgreSQL: a NUL character (which
PostgreSQL refuses in a query) is a 422 naming the parameter on both, never a 500 on one."""

from __future__ import annotations

from ambient.settings import Settings
from api.app import create_app
from tests.foundation.test_event_cursor import _api
from tests.foundation.test_postgres import postgres_url  # noqa: F401  (fixture)
from tests.support.servers import http_client, serve


async def test_a_nul_in_an_event_filter_is_refused_naming_it_on_every_database(
    settings: Settings, database_url: str
) -> None:
    settings, ada = await _api(settings, database_url)
    async with (
        serve(create_app(settings)) as base,
        http_client(base, headers=ada) as http,
    ):
        for path, name in (("/events", "task"), ("/events", "kind"), ("/deliveries", "task")):
            response = await http.get(path, params={name: "watch\x00check"})
            assert response.status_code == 422, (path, name, response.text)
            detail = response.json()["detail"]
            assert [e["loc"] for e in detail] == [["query", name]], detail
            assert "NUL" in detail[0]["msg"]
            assert (await http.get(path, params={name: "watch.hit"})).status_code == 200


async def test_a_kind_no_event_has_is_refused_where_it_was_given(
    settings: Settings, database_url: str
) -> None:
    """GET /events/foo named the kind a query parameter (["query", "kind"]): it is the path's."""
    settings, ada = await _api(settings, database_url)
    async with serve(create_app(settings)) as base, http_client(base, headers=ada) as http:
        in_path = await http.get("/events/watch.hits")
        in_query = await http.get("/events", params={"kind": "watch.hits"})
    assert in_path.status_code == in_query.status_code == 422, (in_path.text, in_query.text)
    assert [e["loc"] for e in in_path.json()["detail"]] == [["path", "kind"]], in_path.text
    assert [e["loc"] for e in in_query.json()["detail"]] == [["query", "kind"]], in_query.text
