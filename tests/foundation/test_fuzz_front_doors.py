"""Bad input at the front doors (MCP task tools, the API): a clear error naming the field.

No Temporal runs here on purpose: the client points at a closed loopback port, so every
input that passes validation meets "Temporal is unreachable" (503 / a tool error saying so),
and every bad input must be refused before that, with a 4xx or a tool error naming the field.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from mcp import Client

from ambient.domain.users import Role, UserCreate
from ambient.settings import Environment, Settings
from ambient.status import TEMPORAL_DOWN
from ambient.storage import Database
from ambient.storage.migrate import upgrade_async
from ambient.storage.users import UserRepository
from mcp_server.server import build_server
from tests.support.api_worker import signed_in_api
from tests.support.servers import free_port
from tests.support.users import register

WEB = {"urls": ["https://example.com/"]}


def _with_target(channel: str, target: str) -> dict[str, Any]:
    return {**WEB, "targets": [{"type": channel, "target": target}]}


HTTP_JSON = {"type": "http_json", "url": "https://example.com/p", "json_path": "$.a"}

# (type, config, a field the error must name)
BAD_CONFIGS: list[tuple[str, Any, str]] = [
    ("web_monitor", {"urls": []}, "urls"),
    ("web_monitor", {"urls": "https://example.com"}, "urls"),
    ("web_monitor", {"urls": ["file:///etc/passwd"]}, "urls.0"),
    ("web_monitor", {"urls": ["gopher://example.com/"]}, "urls.0"),
    ("web_monitor", {"urls": ["javascript:alert(1)"]}, "urls.0"),
    ("web_monitor", {"urls": ["ftp://example.com/"]}, "urls.0"),
    ("web_monitor", {"urls": ["http://"]}, "urls.0"),
    ("web_monitor", {"urls": ["not a url"]}, "urls.0"),
    ("web_monitor", {"urls": ["http://127.0.0.1:8080/x"]}, "urls.0"),
    ("web_monitor", {"urls": ["http://10.0.0.1/"]}, "urls.0"),
    ("web_monitor", {"urls": ["http://169.254.169.254/latest/meta-data/"]}, "urls.0"),
    ("web_monitor", {"urls": ["http://[::1]/"]}, "urls.0"),
    ("web_monitor", {"urls": ["http://[2002:7f00:1::]/"]}, "urls.0"),
    ("web_monitor", {"urls": ["http://100.64.0.1/"]}, "urls.0"),
    ("web_monitor", {"urls": ["http://localhost:9/"]}, "urls.0"),
    ("web_monitor", {"urls": ["http://2130706433/"]}, "urls.0"),
    ("web_monitor", {"urls": ["https://example.com/" + "a" * 3000]}, "urls.0"),
    ("web_monitor", {"urls": [f"https://example.com/{i}" for i in range(51)]}, "urls"),
    ("web_monitor", {**WEB, "check_interval_minutes": True}, "check_interval_minutes"),
    ("web_monitor", {**WEB, "check_interval_minutes": "5"}, "check_interval_minutes"),
    ("web_monitor", {**WEB, "check_interval_minutes": 0}, "check_interval_minutes"),
    ("web_monitor", {**WEB, "check_interval_minutes": -5}, "check_interval_minutes"),
    ("web_monitor", {**WEB, "check_interval_minutes": 1e308}, "check_interval_minutes"),
    ("web_monitor", {**WEB, "check_interval_minutes": None}, "check_interval_minutes"),
    ("web_monitor", {**WEB, "check_interval_minutes": [5]}, "check_interval_minutes"),
    ("web_monitor", {**WEB, "failure_threshold": 0}, "failure_threshold"),
    ("web_monitor", {**WEB, "failure_threshold": 1.5}, "failure_threshold"),
    ("web_monitor", {**WEB, "keywords": "AI"}, "keywords"),
    ("web_monitor", {**WEB, "keywords": [1, 2]}, "keywords.0"),
    ("web_monitor", {**WEB, "keywords": [""]}, "keywords.0"),
    ("web_monitor", {**WEB, "keywords": ["re:(unclosed"]}, "keywords.0"),
    ("web_monitor", {**WEB, "keywords": ["re:(a)\\1"]}, "keywords.0"),
    ("web_monitor", {**WEB, "keywords": ["re:(?=x)"]}, "keywords.0"),
    ("web_monitor", {**WEB, "keywords": ["k"] * 101}, "keywords"),
    ("web_monitor", {**WEB, "keywords": ["x" * 501]}, "keywords.0"),
    # PostgreSQL's text holds no NUL: refused where it enters, on every database.
    ("web_monitor", {**WEB, "keywords": ["disk\x00full"]}, "keywords"),
    ("web_monitor", {**WEB, "selectors": {"https://example.com/": "div\x00"}}, "selectors"),
    ("schedule", {"message": "stand up\x00"}, "message"),
    ("web_monitor", {**WEB, "ignore_patterns": ["[z-a]"]}, "ignore_patterns.0"),
    ("web_monitor", {**WEB, "ignore_patterns": ["(?<!x)y"]}, "ignore_patterns.0"),
    ("web_monitor", {**WEB, "selectors": {"https://example.com/": "<<<>>>"}}, "selectors"),
    ("web_monitor", {**WEB, "selectors": {"https://example.com/": ""}}, "selectors"),
    ("web_monitor", {**WEB, "selectors": {"https://example.com/": "#x["}}, "selectors"),
    ("web_monitor", {**WEB, "selectors": ["div"]}, "selectors"),
    ("web_monitor", {**WEB, "targets": [{"channel": "inbox"}] * 10_000}, "targets"),
    ("web_monitor", {**WEB, "targets": "inbox"}, "targets"),
    (
        "web_monitor",
        _with_target("webhook", "file:///etc/passwd"),
        "targets.0",
    ),
    (
        "web_monitor",
        _with_target("webhook", "gopher://x/"),
        "targets.0",
    ),
    (
        "web_monitor",
        _with_target("webhook", "javascript:x"),
        "targets.0",
    ),
    (
        "web_monitor",
        _with_target("webhook", "http://127.0.0.1:9/hook"),
        "targets.0",
    ),
    ("web_monitor", _with_target("pigeon", "x"), "targets.0"),
    (
        "web_monitor",
        _with_target("email", "not-an-address"),
        "targets.0",
    ),
    ("web_monitor", _with_target("inbox", "someone-else"), "targets.0"),
    (
        "web_monitor",
        _with_target("webhook", "secret:hook"),
        "targets.0",
    ),
    (
        "web_monitor",
        {**WEB, "notification": {"method": "send_sms", "phone_number": "call me"}},
        "notification",
    ),
    ("web_monitor", {**WEB, "notification": {"method": "pigeon"}}, "notification"),
    ("web_monitor", {**WEB, "notification": "email"}, "notification"),
    ("web_monitor", [], "config"),
    ("web_monitor", "urls", "config"),
    ("web_monitor", None, "config"),
    ("web_monitor", 42, "config"),
    ("threshold_watch", {}, "config"),
    ("threshold_watch", {"metric": "gold", "threshold": 1}, "metric"),
    ("threshold_watch", {"metric": "bitcoin_price", "threshold": "high"}, "threshold"),
    ("threshold_watch", {"metric": "bitcoin_price", "threshold": True}, "threshold"),
    ("threshold_watch", {"metric": "bitcoin_price"}, "config"),
    (
        "threshold_watch",
        {"source": {**HTTP_JSON, "json_path": "$[[[?"}, "threshold": 1},
        "json_path",
    ),
    ("threshold_watch", {"source": {**HTTP_JSON, "json_path": ""}, "threshold": 1}, "json_path"),
    ("threshold_watch", {"source": {**HTTP_JSON, "url": "file:///x"}, "threshold": 1}, "url"),
    (
        "threshold_watch",
        {"source": {**HTTP_JSON, "url": "http://127.0.0.1:9/m"}, "threshold": 1},
        "source.url",
    ),
    ("threshold_watch", {"source": {"type": "snmp"}, "threshold": 1}, "source"),
    (
        "threshold_watch",
        {"source": {"type": "tencent_monitor", "namespace": "N", "metric": "M", "period": -1}},
        "period",
    ),
    (
        "threshold_watch",
        {"source": HTTP_JSON, "conditions": [{"op": "around", "value": 1}]},
        "conditions.0.op",
    ),
    (
        "threshold_watch",
        {"source": HTTP_JSON, "conditions": [{"op": "above", "value": 1}] * 11},
        "conditions",
    ),
    ("threshold_watch", {"source": HTTP_JSON, "threshold": 1, "for_checks": 0}, "for_checks"),
    ("threshold_watch", {"source": HTTP_JSON, "threshold": 1, "hysteresis": -1}, "hysteresis"),
    ("threshold_watch", {"source": HTTP_JSON, "threshold": 1, "combine": "xor"}, "combine"),
    ("threshold_watch", {"source": HTTP_JSON, "threshold": 1, "on_breach": "panic"}, "on_breach"),
    ("schedule", {"type": "cron", "cron": "99 99 99 99 99", "message": "x"}, "cron"),
    ("schedule", {"type": "cron", "cron": "a b c d e", "message": "x"}, "cron"),
    ("schedule", {"type": "cron", "cron": "0 0 31 2 *", "message": "x"}, "cron"),
    ("schedule", {"type": "cron", "cron": "* * *", "message": "x"}, "cron"),
    ("schedule", {"type": "cron", "message": "x"}, "cron"),
    ("schedule", {"type": "daily", "hour": 24, "message": "x"}, "hour"),
    ("schedule", {"type": "daily", "hour": -1, "message": "x"}, "hour"),
    ("schedule", {"type": "daily", "hour": True, "message": "x"}, "hour"),
    ("schedule", {"type": "daily", "minute": 60, "message": "x"}, "minute"),
    ("schedule", {"type": "weekly", "message": "x"}, "days"),
    ("schedule", {"type": "weekly", "days": ["someday"], "message": "x"}, "days"),
    ("schedule", {"type": "hourly", "message": "x"}, "type"),
    ("schedule", {"type": "daily"}, "message"),
    ("schedule", {"message": "x" * 2001}, "message"),
    ("schedule", {"message": "hi", "timezone": "Mars/Base"}, "timezone"),
    ("schedule", {"action": "news_digest"}, "news_urls"),
    ("schedule", {"action": "news_digest", "news_urls": ["javascript:x"]}, "news_urls.0"),
    ("news_digest", {"news_urls": []}, "news_urls"),
    ("news_digest", {"news_urls": ["https://example.com/"], "hour": 25}, "hour"),
    ("news_digest", {"news_urls": ["http://192.168.1.1/"]}, "news_urls.0"),
    ("news_digest", {"news_urls": ["https://example.com/"], "timezone": "Nowhere"}, "timezone"),
    (
        "news_digest",
        {"news_urls": ["https://example.com/"], "categories": ["c"] * 21},
        "categories",
    ),
]
# A few more shapes of the whole request (type, name) rather than of the config.
BAD_TYPES = ["pigeon", "", "WEB_MONITOR", "web-monitor"]


def _undescribed(schema: Any, path: str = "") -> list[str]:
    """Every property (at any depth) of a JSON schema that has no description."""
    missing: list[str] = []
    if isinstance(schema, dict):
        for name, field in schema.get("properties", {}).items():
            if "description" not in field:
                missing.append(f"{path}.{name}")
        for key, value in schema.items():
            missing += _undescribed(value, f"{path}/{key}")
    elif isinstance(schema, list):
        for item in schema:
            missing += _undescribed(item, path)
    return missing


def _error_text(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


@pytest.fixture
def offline_settings(tmp_path: Path) -> Settings:
    """Settings whose Temporal address is a loopback port nobody listens on."""
    return Settings(
        environment=Environment.TEST,
        data_dir=tmp_path,
        metrics_port=None,
        temporal_address=f"127.0.0.1:{free_port()}",
        _env_file=None,  # type: ignore[call-arg]
    )


async def _registered(settings: Settings, name: str) -> None:
    """The migrated database with ``name`` registered: a stdio session's user."""
    await upgrade_async(settings.resolved_database_url)
    db = Database(settings.resolved_database_url)
    try:
        await register(db, name)
    finally:
        await db.close()


@pytest_asyncio.fixture
async def api(offline_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    await upgrade_async(offline_settings.resolved_database_url)
    db = Database(offline_settings.resolved_database_url)
    try:
        async with db.session() as session:
            _, token = await UserRepository(session).create(UserCreate(name="fuzz-api"))
            await session.commit()
    finally:
        await db.close()
    async with signed_in_api(offline_settings, token) as http:
        yield http


async def test_api_refuses_every_bad_task_config_with_a_422_naming_the_field(
    api: httpx.AsyncClient,
) -> None:
    for kind, config, field in BAD_CONFIGS:
        response = await api.post("/tasks", json={"type": kind, "config": config})
        assert response.status_code == 422, (kind, config, response.text)
        detail = response.json()["detail"]
        where = [".".join(str(p) for p in error["loc"]) for error in detail]
        text = " ".join(where) + " " + " ".join(str(error["msg"]) for error in detail)
        assert field in text, (kind, config, detail)
    for kind in BAD_TYPES:
        response = await api.post("/tasks", json={"type": kind, "config": WEB})
        assert response.status_code == 422 and response.json()["detail"][0]["loc"][-1] == "type"
    named = await api.post("/tasks", json={"type": "web_monitor", "config": WEB, "name": "Bad!"})
    assert named.status_code == 422 and "name" in named.text


async def test_api_never_answers_500_to_malformed_requests(api: httpx.AsyncClient) -> None:
    raw_bodies = [
        '{"name": NaN}',
        '{"name": Infinity}',
        '{"type": "web_monitor", "config": {"urls": ["https://example.com/"], '
        '"check_interval_minutes": NaN}}',
        "{nope",
        "[]",
        "null",
        '"text"',
        '{"type": "web_monitor", "config": {"urls": ["https://exa\\u0000mple.com/"]}}',
        # A lone UTF-16 surrogate: valid JSON, no UTF-8 encoding; a 422 must still say so.
        '{"name": "\\ud800"}',
        '{"type": "web_monitor", "config": {"urls": ["https://example.com/\\udfff"]}, "x": 1}',
    ]
    for path in ("/users", "/tasks"):
        for body in raw_bodies:
            response = await api.post(
                path, content=body, headers={"content-type": "application/json"}
            )
            assert response.status_code in (400, 401, 403, 409, 422), (path, body, response.text)
    # Bytes that are no UTF-8, sent as a form (curl's default) or with no type: FastAPI
    # passes them to the model as they are, and the 422's own encoding failed (a 500).
    for headers in ({}, {"content-type": "application/x-www-form-urlencoded"}):
        for path in ("/users", "/tasks", "/voice/greeting"):
            response = await api.post(path, content=b"\xff\xfe{", headers=headers)
            assert response.status_code in (400, 401, 403, 422), (path, response.text)
    # Nested deep, with an escape: the NUL check ran out of Python's frames (a 500) on any
    # route, a token or none (450 deep), or its parser did (2,000 deep, a route with no body).
    for depth in (450, 2000):
        deep = "[" * depth + '"\\u0041"' + "]" * depth
        for method, path in (("POST", "/users"), ("GET", "/health"), ("GET", "/tasks")):
            response = await api.request(
                method, path, content=deep, headers={"content-type": "application/json"}
            )
            assert response.status_code in (200, 400, 401, 403, 422, 503), (path, response.text)
    nul = "[" * 450 + '"a\\u0000"' + "]" * 450
    refused = await api.post("/users", content=nul, headers={"content-type": "application/json"})
    assert refused.status_code == 422 and "NUL" in refused.text.upper(), refused.text
    nan = await api.post(
        "/users", content='{"name": NaN}', headers={"content-type": "application/json"}
    )
    assert nan.status_code == 422 and nan.json()["detail"][0]["loc"][-1] == "name"
    for path in (
        "/tasks/web-monitor/fuzz-api/" + "x" * 5000 + "/status",
        "/tasks/%00/status",
        "/inbox/123456789012345678901234/read",
        "/events?limit=-1",
        "/events?limit=99999999999999999999999",
        "/tasks?page_size=0",
        "/tasks?page_size=1&page_token=not-a-token",
        "/tasks?kind=pigeon",
    ):
        response = await api.get(path) if "read" not in path else await api.post(path)
        # 503: the request was fine and needed Temporal, which is down here.
        assert response.status_code in (400, 401, 403, 404, 405, 422, 503), (path, response.text)


async def test_wrong_methods_answer_405_with_the_allowed_ones(api: httpx.AsyncClient) -> None:
    put = await api.put("/tasks", json={})
    # Every method the path takes, HEAD and OPTIONS too, as OPTIONS answers it (RFC 9110: a
    # 405's Allow lists them all); it named GET and POST alone.
    allowed = set(put.headers["allow"].split(", "))
    assert put.status_code == 405 and allowed == {"GET", "HEAD", "POST", "OPTIONS"}
    assert set((await api.options("/tasks")).headers["allow"].split(", ")) == allowed
    get_health = await api.delete("/health")
    assert get_health.status_code == 405 and get_health.headers["allow"] == "GET, HEAD, OPTIONS"
    # `curl -s` shows the body only: it names what the path takes (GET /tasks/{id} was a bare
    # "method GET not allowed here", with nothing saying DELETE is what that path serves).
    said = "method DELETE not allowed here; this path takes GET, HEAD, OPTIONS"
    assert get_health.json()["detail"] == said
    assert (await api.get("/no-such-page")).status_code == 404


async def test_head_and_options_are_answered_on_every_path_the_api_serves(
    api: httpx.AsyncClient,
) -> None:
    # `curl -I` and uptime monitors' `HEAD /health` were told "no API path /health" (404), so
    # the service looked down; OPTIONS likewise, on every path.
    for path in ("/health", "/users/me", "/users/me/", "/docs", "/openapi.json"):
        got, head = await api.get(path), await api.head(path)
        assert (head.status_code, head.content) == (got.status_code, b""), path
        assert head.headers["content-type"] == got.headers["content-type"], path
        assert head.headers["content-length"] == got.headers["content-length"], path
    # As GET says it: Temporal is down here.
    assert (await api.head("/tasks")).status_code == 503
    # A stream's headers, then the answer ends: no event is waited for.
    stream = await api.head("/events/stream")
    assert stream.status_code == 200 and stream.content == b""
    assert stream.headers["content-type"].startswith("text/event-stream")
    posted = await api.head("/users/me/token")
    assert posted.status_code == 405 and posted.headers["allow"] == "POST, OPTIONS"
    options = await api.options("/users/me")
    assert (options.status_code, options.content) == (204, b"")
    assert set(options.headers["allow"].split(", ")) == {"GET", "HEAD", "PATCH", "OPTIONS"}
    options = await api.options("/users/me/token")
    assert options.status_code == 204 and options.headers["allow"] == "POST, OPTIONS"
    # Where no method is served, it is still no path of the API's.
    missing = await api.options("/no-such-page")
    assert missing.status_code == 404
    assert missing.json() == {
        "detail": "no API path /no-such-page; the API's paths are listed at /docs"
    }
    assert (await api.head("/no-such-page")).status_code == 404
    # The MCP door takes POST alone, and says so to every other method: it said "GET, POST,
    # DELETE", two of which it refuses as well, and a DELETE named nothing.
    for method in ("OPTIONS", "DELETE", "PUT", "PATCH", "GET"):
        door = await api.request(method, "/mcp")
        assert (door.status_code, door.headers["allow"]) == (405, "POST"), method
        assert door.json()["error"]["message"].startswith("Method Not Allowed: this MCP endpoint")
    door = await api.head("/mcp")
    assert (door.status_code, door.headers["allow"], door.content) == (405, "POST", b"")


async def test_an_unknown_path_answers_404_in_json_saying_where_the_paths_are(
    api: httpx.AsyncClient,
) -> None:
    # Every other error is JSON with a `detail`; an unknown path was a bare text "Not Found".
    for path in ("/no-such-page", "/tasks-typo/x", "/mcp/no-such-door"):
        missing = await api.get(path)
        assert missing.status_code == 404, (path, missing.text)
        assert missing.headers["content-type"] == "application/json", (path, missing.text)
        assert missing.json() == {
            "detail": f"no API path {path}; the API's paths are listed at /docs"
        }


async def test_a_bad_task_name_is_refused_naming_the_name_and_what_it_may_be(
    api: httpx.AsyncClient,
) -> None:
    rule = (
        "must be 1-63 characters of lowercase letters, digits, '_', '.', '-', "
        "starting with a letter or digit"
    )
    for name in ("", "x" * 64, "bad\x07name", "Bad Name", "-dash"):
        created = await api.post(
            "/tasks", json={"type": "web_monitor", "config": WEB, "name": name}
        )
        assert created.status_code == 422, (name, created.text)
        assert created.json()["detail"] == [
            {"type": "value_error", "loc": ["body", "name"], "msg": rule, "input": name}
        ], name


async def test_a_path_written_with_a_trailing_slash_is_served_as_without_it(
    api: httpx.AsyncClient,
) -> None:
    # `curl -X POST .../tasks/` was told "this path takes DELETE" (DELETE /tasks/{id} takes an
    # empty id) and `GET /users/me/` a bare text "Not Found": neither says what to do.
    me = await api.get("/users/me/")
    assert (me.status_code, me.json()["name"]) == (200, "fuzz-api"), me.text
    created = await api.post("/tasks/", json={"type": "pigeon", "config": WEB})
    assert created.status_code == 422, created.text
    assert created.json()["detail"][0]["loc"][-1] == "type"
    # A path an API route serves with the slash is still its own.
    assert (await api.delete("/tasks/")).status_code == 404


async def test_api_says_temporal_is_unreachable_with_a_503(
    api: httpx.AsyncClient, offline_settings: Settings
) -> None:
    # A member is told what does not work, not where Temporal runs (an admin's detail).
    listed = await api.get("/tasks")
    created = await api.post("/tasks", json={"type": "web_monitor", "config": WEB})
    status = await api.get("/tasks/web-monitor/fuzz-api/x/status")
    for answer in (listed, created, status):
        assert (answer.status_code, answer.json()) == (503, {"detail": TEMPORAL_DOWN}), answer.text
        assert offline_settings.temporal_address not in answer.text


async def test_docs_are_served_from_local_assets_only(api: httpx.AsyncClient) -> None:
    page = await api.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r"""(?:src|href)\s*=\s*['"]([^'"]+)['"]""", page.text)
    urls = re.findall(r"""url:\s*['"]([^'"]+)['"]""", page.text)
    assert assets and all(a.startswith("/") and not a.startswith("//") for a in assets), assets
    assert "http://" not in page.text and "https://" not in page.text
    for asset in [*assets, *urls]:
        response = await api.get(asset)
        assert response.status_code == 200, asset
        assert response.content
    assert (await api.get("/redoc")).status_code == 404


async def test_mcp_task_tools_refuse_bad_input_naming_the_field(
    offline_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL)
    await _registered(offline_settings, "fuzz-mcp")
    server = build_server(offline_settings, stdio_user="fuzz-mcp")
    async with Client(server) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        for kind, config, field in BAD_CONFIGS:
            result = await client.call_tool(
                "create_background_task", {"type": kind, "config": config}
            )
            assert result.is_error, (kind, config)
            text = _error_text(result)
            assert field in text and "unreachable" not in text, (kind, config, text)
        per_type = {
            "web_monitor": "create_web_monitor",
            "threshold_watch": "create_threshold_watch",
            "schedule": "create_reminder",
        }
        for kind, config, field in BAD_CONFIGS[::3]:
            if kind in per_type:
                result = await client.call_tool(per_type[kind], {"config": config})
                assert result.is_error and field in _error_text(result), (kind, config)
        calls: list[tuple[str, dict[str, Any]]] = [
            ("update_task", {"task_id": "web-monitor/fuzz-mcp/x", "config": {"urls": []}}),
            ("update_task", {"task_id": "reminder/fuzz-mcp/x", "config": {"cron": "a b c d e"}}),
            ("get_task", {"task_id": "web-monitor/somebody-else/x"}),
            ("get_task", {"task_id": 12}),
            ("pause_task", {}),
            ("delete_task", {"task_id": "x", "purge": "maybe"}),
            ("list_tasks", {"state": "sleeping"}),
            ("list_tasks", {"page_size": 0}),
            ("list_tasks", {"page_size": 5, "page_token": "x" * 5000}),
            ("create_background_task", {"type": "pigeon", "config": WEB}),
        ]
        for name, arguments in calls:
            result = await client.call_tool(name, arguments)
            text = _error_text(result)
            assert result.is_error and text != f"Error executing tool {name}", (name, text)
            assert re.search(rf"Error executing tool {name}: \S", text), text
        # The schemas clients see are the typed models, not {"type": "object"}.
        config_schema = tools["create_background_task"].input_schema["properties"]["config"]
        variants = {variant["title"] for variant in config_schema["anyOf"]}
        assert variants == {
            "WebMonitorConfig",
            "ThresholdWatchConfig",
            "ReminderConfig",
            "NewsDigestConfig",
        }
        web = tools["create_web_monitor"].input_schema["properties"]["config"]
        assert web["properties"]["urls"]["items"]["format"] == "uri"
        for tool in ("create_background_task", "update_task", "create_reminder"):
            assert _undescribed(tools[tool].input_schema) == [], tool
        assert _undescribed(web) == []


async def test_mcp_argument_errors_name_the_field_and_what_it_expects(
    offline_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL)
    await upgrade_async(offline_settings.resolved_database_url)
    calls: list[tuple[str, dict[str, Any], str]] = [
        ("list_tasks", {"state": "sleeping"}, "state: Input should be 'active', 'paused' or"),
        ("list_tasks", {"page_size": 0}, "page_size: Input should be greater than or equal to 1"),
        ("get_task", {"task_id": 12}, "task_id: Input should be a valid string"),
        ("pause_task", {}, "task_id: required"),
        ("delete_task", {"task_id": "x", "purge": "maybe"}, "purge: Input should be a valid"),
        (
            "start_remediation",
            {
                "alert": {
                    "source": "manual",
                    "cluster_id": "http://evil/",
                    "namespace": "default",
                    "workload": "web",
                }
            },
            "alert.cluster_id: must be a TKE cluster id (cls- and 8 lowercase",
        ),
        # The target is never guessed: an alert without a namespace was remediated in default.
        (
            "start_remediation",
            {"alert": {"source": "manual", "cluster_id": "cls-7kq2m0ab", "workload": "web"}},
            "alert.namespace: required",
        ),
    ]
    async with Client(build_server(offline_settings, stdio_user="fuzz-mcp")) as client:
        for name, arguments, expected in calls:
            result = await client.call_tool(name, arguments)
            text = _error_text(result)
            assert result.is_error and expected in text, (name, text)
            # Nothing of mcp's generated "<tool>Arguments" model or pydantic's help links.
            for noise in ("Arguments", "validation error for", "pydantic", "For further"):
                assert noise not in text, (name, text)


async def test_mcp_tools_say_temporal_is_unreachable(
    offline_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL)
    await _registered(offline_settings, "fuzz-mcp")
    # A member is told what does not work; where Temporal runs is an admin's (below).
    expected = TEMPORAL_DOWN
    async with Client(build_server(offline_settings, stdio_user="fuzz-mcp")) as client:
        calls: list[tuple[str, dict[str, Any]]] = [
            ("list_tasks", {}),
            ("get_task", {"task_id": "web-monitor/fuzz-mcp/x"}),
            ("create_web_monitor", {"config": WEB}),
            # One tool of each other area that needs Temporal: the server maps them all.
            ("regenerate_briefing", {}),
            ("abort_remediation", {"remediation_id": "remediation/fuzz", "reason": "test"}),
        ]
        for name, arguments in calls:
            result = await client.call_tool(name, arguments)
            assert result.is_error and expected in _error_text(result), _error_text(result)
            assert offline_settings.temporal_address not in _error_text(result)
    db = Database(offline_settings.resolved_database_url)
    try:
        async with db.session() as session:
            await UserRepository(session).create(UserCreate(name="fuzz-adm", role=Role.ADMIN))
            await session.commit()
    finally:
        await db.close()
    async with Client(build_server(offline_settings, stdio_user="fuzz-adm")) as client:
        result = await client.call_tool("list_tasks", {})
    address = f"Temporal is unreachable at {offline_settings.temporal_address}"
    assert result.is_error and address in _error_text(result), _error_text(result)


async def test_the_openapi_document_lists_each_refusal_a_route_answers(
    api: httpx.AsyncClient,
) -> None:
    """A client generated from /openapi.json knew 200, 201 and 422 alone: every other answer
    (a wrong token, another's thing, Temporal down) was an undocumented error to it."""
    document = (await api.get("/openapi.json")).json()
    error_body = {"$ref": "#/components/schemas/ErrorBody"}
    assert document["components"]["schemas"]["ErrorBody"]["required"] == ["detail"]
    for path, operations in document["paths"].items():
        if path == "/health":  # asked by monitors without a token; it answers its state
            continue
        for method, operation in operations.items():
            for code in ("401", "503"):  # every route behind a token needs the app's database
                answer = operation["responses"][code]
                assert answer["content"]["application/json"]["schema"] == error_body, (
                    path,
                    method,
                    code,
                )
    # Real refusals, each among its route's documented answers.
    wrong_token = {"Authorization": "Bearer amb_not-a-token"}
    asked = [
        ("GET", "/tasks", "/tasks", {}, wrong_token),  # 401
        ("GET", "/tasks", "/tasks", {}, {}),  # 503: Temporal is down here
        ("GET", "/users/nobody", "/users/{name}", {}, {}),  # 403 to a member
        ("DELETE", "/share/99", "/share/{link_id}", {}, {}),  # 404
        ("GET", "/audit", "/audit", {"subject": "user:someone-else"}, {}),  # 403
        ("GET", "/events", "/events", {"user": "someone-else"}, {}),  # 403
        ("DELETE", "/agent/servers/none", "/agent/servers/{name}", {}, {}),  # 404
    ]
    codes = set()
    for method, url, path, params, headers in asked:
        answer = await api.request(method, url, params=params, headers=headers)
        documented = document["paths"][path][method.lower()]["responses"]
        assert str(answer.status_code) in documented, (method, url, answer.status_code)
        assert isinstance(answer.json(), dict), (method, url, answer.text)
        assert isinstance(answer.json()["detail"], str), (method, url, answer.text)
        codes.add(answer.status_code)
    assert {401, 403, 404, 503} <= codes
