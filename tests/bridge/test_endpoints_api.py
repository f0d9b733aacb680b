"""/xiaozhi/endpoints and `ambient xiaozhi endpoint`: who may register what, bad URLs refused
with the field named, tokens masked; the API process dials what is registered."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from pydantic import ValidationError
from rich.console import Console
from typer.testing import CliRunner

from ambient.bridge.endpoints import EndpointCreate
from ambient.cli import app as cli
from ambient.commands import xiaozhi as xiaozhi_commands
from ambient.domain.users import UserCreate
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.users import UserRepository
from api.app import create_app
from tests.conftest import unique
from tests.standins.xiaozhi_broker import running_broker
from tests.support.admins import admin_headers
from tests.support.servers import HANG, free_port, http_client, serve


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "fetch_allow_cidrs": ["127.0.0.1/32"],  # the broker stand-in listens on loopback
            "temporal_address": f"127.0.0.1:{free_port()}",
        }
    )


@pytest_asyncio.fixture
async def api(api_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        serve(create_app(api_settings)) as base,
        http_client(base) as http,
    ):
        yield http


async def member_headers(settings: Settings, name: str) -> dict[str, str]:
    db = Database(settings.resolved_database_url)
    try:
        async with db.session() as session:
            _, token = await UserRepository(session).create(UserCreate(name=name))
            await session.commit()
    finally:
        await db.close()
    return {"Authorization": f"Bearer {token}"}


async def test_an_endpoint_registered_over_the_api_is_dialed_by_the_api_process_within_5s(
    api: httpx.AsyncClient, api_settings: Settings
) -> None:
    token = unique("jwt")
    user = unique("mia")
    headers = await member_headers(api_settings, user)
    async with running_broker({token}) as broker:
        url = broker.url(token)
        created = await api.post(
            "/xiaozhi/endpoints", json={"user": user, "url": url}, headers=headers
        )
        assert created.status_code == 201, created.text
        assert token not in created.text and created.json()["url"].endswith("token=***")
        await broker.held(token)
        [row] = (await api.get("/xiaozhi/endpoints", headers=headers)).json()
        assert (row["user"], row["state"], row["last_error"]) == (user, "connected", None)
        connection = broker.connections[token][0]
        gone = await api.delete(f"/xiaozhi/endpoints/{row['id']}", headers=headers)
        assert gone.status_code == 200
        await asyncio.wait_for(connection.closed.wait(), HANG)
        assert connection.close_reason == "1001 endpoint released"


async def test_a_rotated_token_ends_the_endpoints_and_devices_it_could_have_made(
    api: httpx.AsyncClient, api_settings: Settings
) -> None:
    """A leaked API token registered a 接入点 (its own broker) and a 小智 device; the owner
    rotates the token. The 接入点 stayed connected and served approvals and pauses as them,
    and the device token read their alerts: both are ended, and the audit says so."""
    token, mac = unique("jwt"), "aa:bb:cc:dd:ee:42"
    user = unique("mia")
    leaked = await member_headers(api_settings, user)
    async with running_broker({token}) as broker:
        made = await api.post(
            "/xiaozhi/endpoints", json={"user": user, "url": broker.url(token)}, headers=leaked
        )
        assert made.status_code == 201, made.text
        device = await api.post("/xiaozhi/devices", json={"device_id": mac}, headers=leaked)
        assert device.status_code == 201, device.text
        wake = {"device-id": mac, "Authorization": f"Bearer {device.json()['token']}"}
        assert (await api.get("/xiaozhi/context", headers=wake)).json()["code"] == 0
        connection = await broker.held(token)
        rotated = await api.post("/users/me/token", headers=leaked)
        assert rotated.status_code == 200, rotated.text
        answer = rotated.json()
        told = (
            answer["voice_token_revoked"],
            answer["devices_removed"],
            answer["endpoints_removed"],
        )
        assert told == (False, 1, 1)  # the owner is told what to add again
        await asyncio.wait_for(connection.closed.wait(), HANG)
        mine = {"Authorization": f"Bearer {rotated.json()['token']}"}
        assert (await api.get("/xiaozhi/endpoints", headers=mine)).json() == []
        assert (await api.get("/xiaozhi/devices", headers=mine)).json() == []
        assert (await api.get("/xiaozhi/context", headers=wake)).json()["code"] == 401
        audit = await api.get("/audit", params={"action": "user.token.rotated"}, headers=mine)
    [row] = audit.json()
    assert (row["detail"]["endpoints_removed"], row["detail"]["devices_removed"]) == (1, 1)


async def test_an_endpoint_added_where_the_bridge_is_off_says_no_process_will_dial_it(
    api_settings: Settings,
) -> None:
    # AMBIENT_XIAOZHI_BRIDGE=false: it said "not dialed yet", and would have forever.
    settings = api_settings.model_copy(update={"xiaozhi_bridge": False})
    user = unique("mia")
    headers = await member_headers(settings, user)
    async with serve(create_app(settings)) as base, http_client(base) as api:
        created = await api.post(
            "/xiaozhi/endpoints",
            json={"user": user, "url": "wss://api.xiaozhi.me/mcp/?token=abc"},
            headers=headers,
        )
        assert created.status_code == 201, created.text
        [listed] = (await api.get("/xiaozhi/endpoints", headers=headers)).json()
    for row in (created.json(), listed):
        assert row["state"] == "retrying"
        assert row["last_error"] == (
            "no process dials 接入点 here: the bridge is off (AMBIENT_XIAOZHI_BRIDGE=false); "
            "ask the operator to turn it on"
        )


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://api.xiaozhi.me/mcp/?token=abc", "must start with wss:// or ws://"),
        ("wss:///mcp/?token=abc", "has no host"),
        ("wss://api.xiaozhi.me/mcp/", "has no token parameter"),
        ("ws://169.254.169.254/mcp/?token=abc", "cloud metadata address"),
        ("ws://10.1.2.3/mcp/?token=abc", "private address"),
        # A token no broker issues: it was stored, then dialed (and refused) forever.
        ("wss://api.xiaozhi.me/mcp/?token=a%00b", "holds a NUL character (U+0000)"),
        ("wss://api.xiaozhi.me/mcp/?token=t&x%00=1", "holds a NUL character (U+0000)"),
        # Stored, then never dialed: websockets refuses such a URL at every dial.
        ("wss://api.xiaozhi.me/mcp/?token=abc#top", "fragment identifier is meaningless"),
        # ... or sent as a request line no server reads ("did not receive a valid HTTP response").
        ("wss://api.xiaozhi.me/mcp/?token=abc def", "contains spaces, backslashes or controls"),
        # A mark copied with the URL: it went into the token, and the broker said the token
        # was wrong or expired, so the user pasted the same again.
        ("wss://api.xiaozhi.me/mcp/?token=eyJh.eyJz.c2ln。", "token holds '。' (U+3002)"),
        ("wss://api.xiaozhi.me/mcp/?token=eyJh.c2ln%E2%80%8B", "token holds '\\u200b' (U+200B)"),
        ("wss://api.xiaozhi.me/mcp/?token=eyJh.c2ln\ufeff", "(U+FEFF), which no token has"),
    ],
)
async def test_a_bad_url_is_refused_with_422_naming_the_field(
    api: httpx.AsyncClient, api_settings: Settings, url: str, says: str
) -> None:
    headers = await admin_headers(api_settings)
    answer = await api.post(
        "/xiaozhi/endpoints", json={"user": "admin", "url": url}, headers=headers
    )
    assert answer.status_code == 422
    [error] = answer.json()["detail"]
    assert error["loc"] == ["body", "url"] and says in error["msg"]
    assert (await api.get("/xiaozhi/endpoints", headers=headers)).json() == []


def test_a_token_of_base64_or_a_jwt_is_taken_as_written() -> None:
    for token in ("eyJhbGciOi.eyJzdWIi.c2lnbmF0dXJl_-", "q2V+a/b=", "q2V%2Ba%2Fb%3D"):
        url = f"wss://api.xiaozhi.me/mcp/?token={token}"
        assert EndpointCreate(user="admin", url=url).url == url


def test_a_url_holding_a_nul_is_refused_by_the_rule_itself_not_only_by_a_door() -> None:
    # The API refuses a raw NUL in any body; the rule refuses it for every door.
    for url in ("wss://api.xiaozhi.me/mcp/?token=a\x00b", "wss://api.xiaozhi.me/mcp/?token=a%00b"):
        with pytest.raises(ValidationError) as refused:
            EndpointCreate(user="admin", url=url)
        [error] = refused.value.errors()
        assert error["loc"] == ("url",) and "holds a NUL character (U+0000)" in error["msg"]


async def test_members_register_and_see_their_own_endpoints_admins_everyones(
    api: httpx.AsyncClient, api_settings: Settings
) -> None:
    alice, bob = unique("alice"), unique("bob")
    as_alice = await member_headers(api_settings, alice)
    as_bob = await member_headers(api_settings, bob)
    as_admin = await admin_headers(api_settings)
    url = "wss://api.xiaozhi.me/mcp/?token=a.b.c"
    refused = await api.post("/xiaozhi/endpoints", json={"user": bob, "url": url}, headers=as_alice)
    assert refused.status_code == 403
    unknown = await api.post(
        "/xiaozhi/endpoints", json={"user": "nobody", "url": url}, headers=as_admin
    )
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "user"]
    mine = (
        await api.post("/xiaozhi/endpoints", json={"user": alice, "url": url}, headers=as_alice)
    ).json()
    bobs = "wss://api.xiaozhi.me/mcp/?token=d.e.f"
    for_bob = await api.post(
        "/xiaozhi/endpoints", json={"user": bob, "url": bobs}, headers=as_admin
    )
    assert for_bob.status_code == 201
    assert [e["id"] for e in (await api.get("/xiaozhi/endpoints", headers=as_alice)).json()] == [
        mine["id"]
    ]
    assert len((await api.get("/xiaozhi/endpoints", headers=as_admin)).json()) == 2
    assert (await api.delete(f"/xiaozhi/endpoints/{mine['id']}", headers=as_bob)).status_code == 404
    assert (
        await api.delete(f"/xiaozhi/endpoints/{mine['id']}", headers=as_alice)
    ).status_code == 200


async def test_a_url_already_registered_is_refused_for_anyone_as_one_connection_holds_it(
    api: httpx.AsyncClient, api_settings: Settings
) -> None:
    # xiaozhi.me keeps one tool connection per 接入点: two registrations of it would be dialed
    # by the bridge as two connections, each closing the other as replaced, forever.
    alice, bob = unique("alice"), unique("bob")
    as_alice = await member_headers(api_settings, alice)
    await member_headers(api_settings, bob)
    as_admin = await admin_headers(api_settings)
    url = "wss://api.xiaozhi.me/mcp/?token=g.h.i"
    first = await api.post("/xiaozhi/endpoints", json={"user": alice, "url": url}, headers=as_alice)
    assert first.status_code == 201, first.text
    for who, body in (
        (as_alice, {"user": alice, "url": url, "verbatim": True}),
        (as_alice, {"user": alice, "url": f"  {url}"}),
        (as_admin, {"user": bob, "url": url.replace("api.xiaozhi.me", "API.xiaozhi.me")}),
        # wss's own port said: the same 接入点 (it was registered a second time).
        (as_admin, {"user": bob, "url": url.replace("xiaozhi.me/", "xiaozhi.me:443/")}),
    ):
        again = await api.post("/xiaozhi/endpoints", json=body, headers=who)
        assert again.status_code == 422, again.text
        [error] = again.json()["detail"]
        assert error["loc"] == ["body", "url"], error
        assert error["msg"] == (
            f"this 接入点 is already registered (endpoint {first.json()['id']}); it holds one "
            "connection: remove that endpoint first"
        ), error
        assert "g.h.i" not in again.text
    assert [e["id"] for e in (await api.get("/xiaozhi/endpoints", headers=as_admin)).json()] == [
        first.json()["id"]
    ]
    # Another agent's token on the same broker is another 接入点.
    other = "wss://api.xiaozhi.me/mcp/?token=j.k.l"
    assert (
        await api.post("/xiaozhi/endpoints", json={"user": alice, "url": other}, headers=as_alice)
    ).status_code == 201


async def test_a_url_another_user_registered_is_refused_without_naming_their_endpoint(
    api: httpx.AsyncClient, api_settings: Settings
) -> None:
    """A member sending a 接入点 URL another user registered was told "already registered
    (endpoint 7)": the other user's endpoint id, which their own list never shows. Refused,
    as before, naming no endpoint; its owner and an admin still get the id."""
    alice, bob = unique("alice"), unique("bob")
    as_alice = await member_headers(api_settings, alice)
    as_bob = await member_headers(api_settings, bob)
    url = "wss://api.xiaozhi.me/mcp/?token=m.n.o"
    first = await api.post("/xiaozhi/endpoints", json={"user": alice, "url": url}, headers=as_alice)
    assert first.status_code == 201, first.text
    again = await api.post("/xiaozhi/endpoints", json={"user": bob, "url": url}, headers=as_bob)
    assert again.status_code == 422, again.text
    [error] = again.json()["detail"]
    assert error["loc"] == ["body", "url"], error
    assert error["msg"] == (
        "this 接入点 is already registered by another user; it holds one connection: "
        "ask an admin, who sees which endpoint holds it"
    ), error
    assert (await api.get("/xiaozhi/endpoints", headers=as_bob)).json() == []


def test_the_cli_adds_lists_and_removes_with_the_token_masked(
    api_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMBIENT_DATA_DIR", str(api_settings.data_dir))
    runner = CliRunner()
    assert runner.invoke(cli, ["user", "create", "nia"]).exit_code == 0
    secret = "eyJhbGciOiJFUzI1NiJ9.c2VjcmV0.sig"
    url = f"wss://api.xiaozhi.me/mcp/?token={secret}"
    added = runner.invoke(cli, ["xiaozhi", "endpoint", "add", "--user", "nia", url, "--verbatim"])
    assert added.exit_code == 0, added.output
    assert secret not in added.output and "token=***" in added.output
    table = runner.invoke(cli, ["xiaozhi", "endpoint", "list"])
    assert "nia" in table.output and "retrying" in table.output and secret not in table.output
    listed = runner.invoke(cli, ["xiaozhi", "endpoint", "list", "--json"])
    [row] = json.loads(listed.output)
    assert {k: row[k] for k in ("id", "user", "state", "verbatim")} == {
        "id": 1,
        "user": "nia",
        "state": "retrying",
        "verbatim": True,
    }
    assert row["url"] == "wss://api.xiaozhi.me/mcp/?token=***" and row["since"]
    bad = runner.invoke(
        cli, ["xiaozhi", "endpoint", "add", "--user", "nia", "wss://x.example/mcp/"]
    )
    assert bad.exit_code == 2 and "url: " in bad.output and "token" in bad.output
    stranger = runner.invoke(cli, ["xiaozhi", "endpoint", "add", "--user", "nobody", url])
    assert (stranger.exit_code, stranger.stdout) == (1, "")
    assert stranger.stderr == (
        "no user 'nobody': an admin registers it (ambient user create nobody)\n"
    )
    assert runner.invoke(cli, ["xiaozhi", "endpoint", "remove", "1"]).exit_code == 0
    again = runner.invoke(cli, ["xiaozhi", "endpoint", "remove", "1"])
    assert (again.exit_code, again.stdout) == (1, "")
    assert again.stderr == "no xiaozhi endpoint 1; see the list\n"
    # What the user typed is said back as typed, brackets and all (not read as markup).
    for name in ("[admin]", "[/]"):
        odd = runner.invoke(cli, ["xiaozhi", "endpoint", "add", "--user", name, url])
        assert (odd.exit_code, odd.stdout) == (1, ""), odd.output
        assert name in odd.stderr, odd.stderr
    # An id no id column holds: refused as the argument, not a database overflow.
    huge = runner.invoke(cli, ["xiaozhi", "endpoint", "remove", str(2**63)])
    assert huge.exit_code == 2 and "endpoint_id" in huge.output, huge.output
    assert json.loads(runner.invoke(cli, ["xiaozhi", "endpoint", "list", "--json"]).output) == []


async def test_a_user_nobody_registered_is_refused_in_every_commands_words_at_each_door(
    api: httpx.AsyncClient, api_settings: Settings
) -> None:
    """README "Output": a --user nobody registered is "no user 'NAME': an admin registers it
    (ambient user create NAME)", exit 1. `xiaozhi device add --user ghost` said "user: no user
    'ghost'" (exit 1), `xiaozhi endpoint add --user ghost` "user: 'ghost' is not a registered
    user" (exit 2): the words `ambient chat` was fixed away from, and no way to fix it. The
    API answers both 422 at the user, in the same words."""
    words = "no user 'ghost': an admin registers it (ambient user create ghost)"
    url = "wss://api.xiaozhi.me/mcp/?token=t"
    env = {"AMBIENT_DATA_DIR": str(api_settings.data_dir), "COLUMNS": "300"}
    said = {
        door: await asyncio.to_thread(CliRunner().invoke, cli, args, env=env)
        for door, args in {
            "device add": ["xiaozhi", "device", "add", "aa:bb:cc:dd:ee:ff", "--user", "ghost"],
            "endpoint add": ["xiaozhi", "endpoint", "add", url, "--user", "ghost"],
        }.items()
    }
    assert {door: (r.exit_code, r.stdout, r.stderr) for door, r in said.items()} == {
        door: (1, "", f"{words}\n") for door in said
    }
    headers = await admin_headers(api_settings)
    answers = [
        await api.post(path, json=body, headers=headers)
        for path, body in (
            ("/xiaozhi/devices", {"device_id": "aa:bb:cc:dd:ee:ff", "user": "ghost"}),
            ("/xiaozhi/endpoints", {"url": url, "user": "ghost"}),
        )
    ]
    assert [(a.status_code, a.json()["detail"][0]["loc"]) for a in answers] == [
        (422, ["body", "user"])
    ] * 2
    assert all(a.json()["detail"][0]["msg"] == words for a in answers), [a.json() for a in answers]


def test_the_cli_lists_an_endpoints_last_error_and_url_as_text_not_markup(
    api_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMBIENT_DATA_DIR", str(api_settings.data_dir))
    # Wide enough that no cell wraps (the module's console took its width at import).
    monkeypatch.setattr(xiaozhi_commands, "console", Console(width=400))
    runner = CliRunner()
    assert runner.invoke(cli, ["user", "create", "nia"]).exit_code == 0
    url = "wss://api.xiaozhi.me/mcp/?token=abc"
    assert runner.invoke(cli, ["xiaozhi", "endpoint", "add", "--user", "nia", url]).exit_code == 0
    # What the bridge writes when a dial fails: the TLS library's words, brackets and all.
    error = "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed ([/] [bold])"
    with sqlite3.connect(api_settings.data_dir / "ambient.db") as db:
        db.execute("UPDATE xiaozhi_endpoints SET last_error = ?", (error,))
    table = runner.invoke(cli, ["xiaozhi", "endpoint", "list"])
    assert table.exit_code == 0, table.output
    assert error in table.output
