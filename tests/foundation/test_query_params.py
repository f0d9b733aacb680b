"""Query parameters are checked by their schema on every router: 422 naming the parameter."""

from __future__ import annotations

import pytest

from ambient.settings import Settings
from api.app import create_app
from tests.support.admins import admin_headers
from tests.support.servers import free_port, http_client, serve

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
    # Past the largest id a row can have (64 bits: more overflows the database's integer).
    ("/audit", {"after": str(2**63)}, "after"),
    # A parameter the route does not take: an admin's ?user=bob listed the admin's own tasks.
    ("/tasks", {"user": "bob"}, "user"),
    ("/briefings", {"user": "bob"}, "user"),
    ("/remediations", {"page_size": "5"}, "page_size"),
]


@pytest.mark.parametrize(("path", "params", "name"), BAD_QUERIES)
async def test_bad_query_parameters_are_refused_naming_the_parameter(
    settings: Settings, path: str, params: dict[str, str], name: str
) -> None:
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with (
        serve(create_app(settings)) as base,
        http_client(base) as http,
    ):
        admin = await admin_headers(settings)
        response = await http.get(path, params=params, headers=admin)
    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["detail"]] == [["query", name]]


# pydantic's lax int reads each of these as 15; the CLI and the task form refuse them.
NOT_WHOLE = ["1_5", " 15 ", "+15", "15.0", "1_000"]
WHOLE_NUMBER_QUERIES = [
    ("/remediations", "limit"),
    ("/remediations/stats", "days"),
    ("/inbox", "limit"),
    ("/deliveries", "limit"),
    ("/deliveries", "before_id"),
    ("/briefings", "limit"),
    ("/audit", "limit"),
    ("/events", "limit"),
    ("/events/stream", "after_id"),
    ("/tasks", "page_size"),
    ("/discussions", "offset"),
]


@pytest.mark.parametrize(("path", "name"), WHOLE_NUMBER_QUERIES)
async def test_a_whole_number_is_digits_only_or_refused_naming_it(
    settings: Settings, path: str, name: str
) -> None:
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with (
        serve(create_app(settings)) as base,
        http_client(base) as http,
    ):
        admin = await admin_headers(settings)
        for typed in NOT_WHOLE:
            response = await http.get(path, params={name: typed}, headers=admin)
            assert response.status_code == 422, (typed, response.text)
            [error] = response.json()["detail"]
            assert (error["loc"], error["type"]) == (["query", name], "int_parsing"), typed
        if path.endswith("/stream"):  # read, it would stream on
            return
        # As written, the number is read (Temporal is down here: 503, never 422).
        response = await http.get(path, params={name: "15"}, headers=admin)
        assert response.status_code != 422, response.text
        if path == "/audit":  # and the digest's minutes in a body: a string as the form sends it
            for typed in NOT_WHOLE:
                body = {"enabled": True, "every_minutes": typed}
                response = await http.put("/agent/digest", json=body, headers=admin)
                assert response.status_code == 422, (typed, response.text)
                [error] = response.json()["detail"]
                assert error["loc"] == ["body", "every_minutes"], typed
            for given in ["15", 15, 15.0]:  # a JSON number, as before
                body = {"enabled": True, "every_minutes": given}
                response = await http.put("/agent/digest", json=body, headers=admin)
                assert response.status_code != 422, response.text


async def test_a_parameter_the_route_does_not_take_is_named_with_those_it_takes(
    settings: Settings,
) -> None:
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with serve(create_app(settings)) as base, http_client(base) as http:
        admin = await admin_headers(settings)
        refused = await http.get("/tasks", params={"user": "bob", "kind": "x"}, headers=admin)
        # Pages, and routes other programs call with a URL an operator pasted, take any query.
        health = await http.get("/health", params={"probe": "1"})
        page = await http.get("/signin", params={"utm_source": "mail"})
    assert refused.status_code == 422, refused.text
    detail = refused.json()["detail"]
    assert [e["loc"] for e in detail] == [["query", "user"]], detail
    assert detail[0]["msg"] == (
        "not a query parameter of this route (it takes: kind, page_size, page_token, state)"
    )
    assert health.status_code != 422, health.text  # 503: no Temporal here
    assert page.status_code != 422, page.text
