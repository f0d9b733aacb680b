"""A NUL character (U+0000), which PostgreSQL refuses in text, is refused naming where it is at
every door on a real PostgreSQL: the API's paths, queries and JSON bodies, the MCP tools'
arguments; nothing is written."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client
from sqlalchemy import func, select

from ambient.clients.notify.registry import build_channels
from ambient.domain.users import Role, UserCreate
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.migrate import upgrade_async
from ambient.storage.models import AuditRecord, User
from ambient.storage.users import UserRepository
from ambient.wiring import AppState, StateHolder
from api.app import create_app
from mcp_server.server import build_server
from tests.conftest import unique
from tests.foundation.test_postgres import on_postgres, postgres_url  # noqa: F401  (fixture)
from tests.support.api_worker import signed_in_api
from tests.support.servers import http_client, serve

NUL = "a\x00b"
ENDPOINT = "wss://api.xiaozhi.me/mcp/?token=t"

# (method, path, JSON body, where the NUL is named): the routes that reached PostgreSQL with it.
ROUTES: list[tuple[str, str, Any, list[str | int]]] = [
    ("GET", "/users/a%00b", None, ["path", "name"]),
    ("PATCH", "/users/a%00b/permissions", {"role": "admin"}, ["path", "name"]),
    ("DELETE", "/agent/servers/a%00b", None, ["path", "name"]),
    ("POST", "/xiaozhi/devices/a%00b/allow", None, ["path", "ref"]),
    ("DELETE", "/xiaozhi/devices/a%00b/allow", None, ["path", "ref"]),
    ("DELETE", "/xiaozhi/devices/a%00b", None, ["path", "ref"]),
    ("GET", "/audit?subject=a%00b", None, ["query", "subject"]),
    ("POST", "/briefings/send", {"request_id": NUL}, ["body", "request_id"]),
    ("GET", "/audit?subject_prefix=a%00b", None, ["query", "subject_prefix"]),
    ("POST", "/share", {"kind": "report", "title": NUL, "body": "x"}, ["body", "title"]),
    ("POST", "/xiaozhi/devices", {"device_id": "aa:bb", "user": NUL}, ["body", "user"]),
    (
        "POST",
        "/xiaozhi/devices",
        {"device_id": "aa:bb", "speakers": [NUL]},
        ["body", "speakers", 0],
    ),
    (
        "POST",
        "/xiaozhi/endpoints",
        {"user": NUL, "url": "wss://api.xiaozhi.me/mcp/?token=t"},
        ["body", "user"],
    ),
]


async def _count(db: Database, row: Any) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(row)) or 0)


@pytest.mark.parametrize(
    ("method", "path", "body", "loc"), ROUTES, ids=[f"{r[0]} {r[1]} {r[3][-1]}" for r in ROUTES]
)
async def test_a_nul_is_refused_naming_where_it_is_and_nothing_is_written_on_postgresql(
    settings: Settings,
    postgres_url: str,  # noqa: F811
    method: str,
    path: str,
    body: Any,
    loc: list[str | int],
) -> None:
    async with on_postgres(settings, postgres_url) as (settings, db):
        async with db.session() as session:
            _, token = await UserRepository(session).create(
                UserCreate(name=unique("root"), role=Role.ADMIN)
            )
            await session.commit()
        before = (await _count(db, User), await _count(db, AuditRecord))
        async with signed_in_api(settings, token) as http:
            response = await http.request(method, path, json=body)
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert [e["loc"] for e in detail] == [loc], detail
        assert "NUL" in detail[0]["msg"]
        assert (await _count(db, User), await _count(db, AuditRecord)) == before


# (tool, arguments, the argument named): the tools that reached PostgreSQL with it, or whose
# refusal of it read as a crash ("Error executing tool list_events").
TOOLS: list[tuple[str, dict[str, Any], str]] = [
    ("list_events", {"kind": NUL}, "kind"),
    ("list_events", {"user": NUL}, "user"),
    ("read_inbox", {"user": NUL}, "user"),
    ("send_briefing", {"request_id": NUL}, "request_id"),
    ("list_deliveries", {"task": NUL}, "task"),
    ("list_deliveries", {"user": NUL}, "user"),
    ("grant_permission", {"user_name": NUL, "role": "admin"}, "user_name"),
]


@pytest.mark.parametrize(
    ("tool", "arguments", "field"), TOOLS, ids=[f"{t[0]} {t[2]}" for t in TOOLS]
)
async def test_a_nul_in_a_tool_argument_is_a_readable_refusal_naming_it_on_postgresql(
    settings: Settings,
    postgres_url: str,  # noqa: F811
    tool: str,
    arguments: dict[str, Any],
    field: str,
) -> None:
    settings = settings.model_copy(update={"database_url": postgres_url})
    await upgrade_async(postgres_url)
    db = Database(postgres_url)
    try:
        root = unique("root")
        async with db.session() as session:
            await UserRepository(session).create(UserCreate(name=root, role=Role.ADMIN))
            await session.commit()
        before = (await _count(db, User), await _count(db, AuditRecord))
        async with http_client() as http:
            state = AppState(
                settings=settings,
                db=db,
                temporal=None,  # type: ignore[arg-type]  # these tools never use it
                channels=build_channels(settings, db, http),
                stdio_user=root,
            )
            async with Client(build_server(settings, holder=StateHolder(state))) as client:
                result = await client.call_tool(tool, arguments)
        assert result.is_error
        assert [getattr(c, "text", None) for c in result.content] == [
            f"Error executing tool {tool}: invalid arguments — {field}: holds a NUL character "
            "(U+0000), which cannot be stored"
        ]
        assert (await _count(db, User), await _count(db, AuditRecord)) == before
    finally:
        await db.close()


# (form page, fields): forms whose text reached PostgreSQL with a NUL in it.
FORMS: list[tuple[str, dict[str, str]]] = [
    ("/app/xiaozhi/devices/remove", {"device": NUL}),
    ("/app/xiaozhi/devices", {"device_id": NUL}),
    ("/app/xiaozhi/endpoints/remove", {"endpoint": NUL}),
    ("/app/settings", {"name": NUL}),
]


@pytest.mark.parametrize(("path", "fields"), FORMS, ids=[f[0] for f in FORMS])
async def test_a_nul_in_a_form_is_shown_as_the_form_s_refusal_on_postgresql(
    settings: Settings,
    postgres_url: str,  # noqa: F811
    path: str,
    fields: dict[str, str],
) -> None:
    async with on_postgres(settings, postgres_url) as (settings, db):
        async with db.session() as session:
            _, token = await UserRepository(session).create(UserCreate(name=unique("page")))
            await session.commit()
        before = (await _count(db, User), await _count(db, AuditRecord))
        async with serve(create_app(settings)) as base:
            async with http_client(
                base, headers={"origin": base}, cookies={"ambient_token": token}
            ) as http:
                response = await http.post(path, data=fields)
        assert response.status_code == 422, response.text
        assert "NUL" in response.text
        assert (await _count(db, User), await _count(db, AuditRecord)) == before
