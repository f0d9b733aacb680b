from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr

from ambient.domain import users
from ambient.domain.users import validate_timezone
from ambient.refusals import Refusal
from ambient.settings import Settings
from api.app import create_app
from tests.support.admins import admin_headers
from tests.support.servers import free_port, http_client, serve


@pytest_asyncio.fixture
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    # Temporal at a closed port (the client connects lazily): a user's settings save without
    # it, all but a changed briefing schedule (tests/briefing/test_briefing_follows_settings.py).
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with serve(create_app(settings)) as base:
        async with http_client(base) as client:
            yield client


@pytest_asyncio.fixture
async def admin(api: httpx.AsyncClient, settings: Settings) -> dict[str, str]:
    """Headers of an admin (the app has migrated the database by now)."""
    return await admin_headers(settings)


async def test_register_read_update_and_rotate_token(
    api: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    created = await api.post(
        "/users",
        json={"name": "alice", "email": "alice@example.com", "timezone": "Asia/Shanghai"},
        headers=admin,
    )
    assert created.status_code == 201
    body = created.json()
    token = body["token"]
    assert token.startswith("amb_")
    assert body["user"]["name"] == "alice"
    assert body["user"]["rollback_permission"] == "dry_run"
    assert body["user"]["role"] == "member"
    assert body["user"]["briefing_window_start"] == "06:00"
    auth = {"Authorization": f"Bearer {token}"}

    me = await api.get("/users/me", headers=auth)
    assert me.status_code == 200 and me.json()["email"] == "alice@example.com"

    updated = await api.patch(
        "/users/me",
        headers=auth,
        json={"wake_words": ["你好，小智"], "assistant_name": "小安"},
    )
    assert updated.status_code == 200
    assert updated.json()["rollback_permission"] == "dry_run"
    assert updated.json()["assistant_name"] == "小安"

    rotated = await api.post("/users/me/token", headers=auth)
    new_token = rotated.json()["token"]
    assert (await api.get("/users/me", headers=auth)).status_code == 401
    assert (
        await api.get("/users/me", headers={"Authorization": f"Bearer {new_token}"})
    ).status_code == 200


async def test_bad_input_is_422_naming_the_field(
    api: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    bad_name = await api.post("/users", json={"name": "Not Valid!"}, headers=admin)
    assert bad_name.status_code == 422
    assert bad_name.json()["detail"][0]["loc"] == ["body", "name"]

    reserved = await api.post("/users", json={"name": "me"}, headers=admin)
    assert reserved.status_code == 422 and reserved.json()["detail"][0]["loc"] == ["body", "name"]

    bad_zone = await api.post(
        "/users", json={"name": "zed", "timezone": "Mars/Olympus"}, headers=admin
    )
    assert bad_zone.status_code == 422
    assert bad_zone.json()["detail"][0]["loc"] == ["body", "timezone"]
    assert "unknown IANA time zone" in bad_zone.json()["detail"][0]["msg"]

    token = (await api.post("/users", json={"name": "zed"}, headers=admin)).json()["token"]
    bad_window = await api.patch(
        "/users/me",
        headers={"Authorization": f"Bearer {token}"},
        json={"briefing_window_start": "25:00"},
    )
    assert bad_window.status_code == 422
    assert bad_window.json()["detail"][0]["loc"] == ["body", "briefing_window_start"]
    me = await api.get("/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["briefing_window_start"] == "06:00"  # nothing changed


async def test_a_name_the_audit_log_gives_the_system_is_refused_as_a_user_name(
    api: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    # The audit log names the operator's CLI, open registration and a remediation's own
    # decisions by these actors: a user so named would pass for them in every record.
    for name in ("operator", "open-registration", "remediation"):
        refused = await api.post("/users", json={"name": name}, headers=admin)
        assert refused.status_code == 422, (name, refused.text)
        assert refused.json()["detail"][0]["loc"] == ["body", "name"]
        assert "reserved" in refused.json()["detail"][0]["msg"]
        assert (await api.get(f"/users/{name}", headers=admin)).status_code == 404


async def test_a_product_agents_id_is_refused_as_a_user_name(
    api: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    # The discussion bus seeds these agents: a person so named could never post as themselves
    # ("an agent's id, not a person's"), and an admin's post as the agent read as theirs.
    for name in ("xiaozhi", "briefing", "triage"):
        refused = await api.post("/users", json={"name": name}, headers=admin)
        assert refused.status_code == 422, (name, refused.text)
        assert refused.json()["detail"][0]["loc"] == ["body", "name"]
        assert "reserved" in refused.json()["detail"][0]["msg"]
        assert (await api.get(f"/users/{name}", headers=admin)).status_code == 404


async def test_duplicate_name_conflicts_and_missing_token_is_401(
    api: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    assert (await api.post("/users", json={"name": "bob"}, headers=admin)).status_code == 201
    assert (await api.post("/users", json={"name": "bob"}, headers=admin)).status_code == 409
    assert (await api.get("/users/me")).status_code == 401
    assert (await api.get("/users/bob")).status_code == 401


async def test_health_reports_unreachable_temporal_as_503(api: httpx.AsyncClient) -> None:
    response = await api.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["temporal_reachable"] is False
    assert body["database_reachable"] is True
    assert body["llm_mode"] == "offline"


async def test_health_and_the_front_page_name_no_address_to_whoever_is_not_signed_in(
    settings: Settings,
) -> None:
    # The model's server (its URL may carry a key) and Temporal at closed ports: both down.
    temporal = f"127.0.0.1:{free_port()}"
    llm = f"http://127.0.0.1:{free_port()}/llm-gateway/v1"
    settings = settings.model_copy(
        update={
            "temporal_address": temporal,
            "openai_base_url": llm,
            "openai_api_key": SecretStr("sk-test"),
        }
    )
    async with serve(create_app(settings)) as base:
        async with http_client(base) as client:
            health, page = await client.get("/health"), await client.get("/")
    assert health.status_code == 503
    body = health.json()
    assert body["temporal_reachable"] is False and body["database_reachable"] is True
    assert body["llm_mode"] == "remote" and body["llm_reachable"] is False
    for text in (health.text, page.text):
        assert temporal not in text and "llm-gateway" not in text
        assert settings.resolved_database_url.split("///")[-1] not in text


async def test_openapi_lists_the_resources(api: httpx.AsyncClient) -> None:
    paths = (await api.get("/openapi.json")).json()["paths"]
    assert {"/health", "/users", "/users/me", "/events", "/events/stream"} <= set(paths)


async def test_inbox_lists_messages_and_marks_them_read(
    api: httpx.AsyncClient, settings: Settings, admin: dict[str, str]
) -> None:
    from ambient.domain.notify import Message
    from ambient.storage import Database
    from ambient.storage.repositories import InboxRepository

    token = (await api.post("/users", json={"name": "ivy"}, headers=admin)).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    other = (await api.post("/users", json={"name": "ola"}, headers=admin)).json()["token"]
    assert (await api.get("/inbox", headers=auth)).json() == []

    db = Database(settings.resolved_database_url)  # the app's SQLite file
    async with db.session() as session:  # as the inbox's send stores it
        await InboxRepository(session).add("ivy", Message(title="Disk 91%", body="on node-3"))
        await session.commit()
    await db.close()

    messages = (await api.get("/inbox", headers=auth)).json()
    assert [(m["title"], m["body"], m["read"]) for m in messages] == [
        ("Disk 91%", "on node-3", False)
    ]
    message_id = messages[0]["id"]
    assert (
        await api.post(f"/inbox/{message_id}/read", headers={"Authorization": f"Bearer {other}"})
    ).status_code == 404
    assert (await api.post(f"/inbox/{message_id}/read", headers=auth)).json()["read"] is True
    assert (await api.get("/inbox?unread=true", headers=auth)).json() == []


async def test_a_wake_word_that_is_empty_huge_or_given_twice_is_422_naming_it(
    api: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    token = (await api.post("/users", json={"name": "wendy"}, headers=admin)).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    twice = (["你好，小智", "你好，小智"], ["hey ambient", "Hey  Ambient"], ["hi", " hi "])
    for words in ([""], ["   "], ["你好，小智", "嘿" * 100_000], *twice):
        refused = await api.patch("/users/me", headers=auth, json={"wake_words": words})
        assert refused.status_code == 422, (words[-1][:10], refused.text[:200])
        assert refused.json()["detail"][0]["loc"][:2] == ["body", "wake_words"]
    me = await api.get("/users/me", headers=auth)
    assert me.json()["wake_words"] == ["你好，小智"]  # nothing changed
    accepted = await api.patch("/users/me", headers=auth, json={"wake_words": ["嘿，小智"]})
    assert accepted.status_code == 200 and accepted.json()["wake_words"] == ["嘿，小智"]


async def test_a_blank_assistant_name_is_refused_and_spaces_around_one_are_dropped(
    api: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    # "   " was saved as the assistant's name (its wake words' companion): a name of nothing.
    created = await api.post("/users", json={"name": "blanca"}, headers=admin)
    auth = {"Authorization": f"Bearer {created.json()['token']}"}
    blank = await api.patch("/users/me", headers=auth, json={"assistant_name": "   "})
    assert blank.status_code == 422, blank.text
    [error] = blank.json()["detail"]
    assert error["loc"] == ["body", "assistant_name"], error
    registered = await api.post(
        "/users", json={"name": "blanco", "assistant_name": "\t"}, headers=admin
    )
    assert registered.status_code == 422, registered.text
    assert registered.json()["detail"][0]["loc"] == ["body", "assistant_name"]
    padded = await api.patch("/users/me", headers=auth, json={"assistant_name": "  小智  "})
    assert padded.status_code == 200 and padded.json()["assistant_name"] == "小智", padded.text


async def test_a_voiceprint_id_is_saved_without_the_spaces_around_it(
    api: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    # " Alice " was saved as it was: a speaker is looked up by the name xiaozhi-server gives,
    # trimmed ("alice"), so that voice never answered to its user.
    created = await api.post("/users", json={"name": "vpa"}, headers=admin)
    auth = {"Authorization": f"Bearer {created.json()['token']}"}
    padded = await api.patch("/users/me", headers=auth, json={"voiceprint_id": " Alice "})
    assert padded.status_code == 200 and padded.json()["voiceprint_id"] == "Alice", padded.text
    blank = await api.patch("/users/me", headers=auth, json={"voiceprint_id": "   "})
    assert blank.status_code == 422, blank.text
    assert blank.json()["detail"][0]["loc"] == ["body", "voiceprint_id"], blank.text


async def test_an_overlong_name_in_a_path_is_refused_by_name_not_quoted_back(
    api: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    # GET /users/<30 KB> answered a 30 KB "no user '...'" (PATCH .../permissions was bounded),
    # DELETE /agent/servers/<30 KB> a 30 KB "you have no MCP server named '...'".
    for method, path in (("GET", "/users/{}"), ("DELETE", "/agent/servers/{}")):
        answer = await api.request(method, path.format("n" * 30_000), headers=admin)
        assert answer.status_code == 422, (path, answer.status_code, answer.text[:200])
        [error] = answer.json()["detail"]
        assert error["loc"] == ["path", "name"] and error["type"] == "string_too_long", error["loc"]


async def test_a_setting_under_another_name_is_refused_by_name_and_nothing_changes(
    api: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    # {"time_zone": ...} was dropped: 200, and the briefing kept its old zone with nothing said.
    created = await api.post("/users", json={"name": "tess"}, headers=admin)
    auth = {"Authorization": f"Bearer {created.json()['token']}"}
    for sent, field in (
        ({"time_zone": "Asia/Shanghai"}, "time_zone"),
        ({"timezone": "Asia/Shanghai", "wake_word": "你好"}, "wake_word"),
    ):
        refused = await api.patch("/users/me", headers=auth, json=sent)
        assert refused.status_code == 422, (sent, refused.text)
        detail = refused.json()["detail"]
        assert [(d["loc"], d["type"]) for d in detail] == [(["body", field], "extra_forbidden")]
    me = (await api.get("/users/me", headers=auth)).json()
    assert me["timezone"] == created.json()["user"]["timezone"]
    registered = await api.post(
        "/users", json={"name": "tom", "time_zone": "Asia/Shanghai"}, headers=admin
    )
    assert registered.status_code == 422, registered.text
    assert [d["loc"] for d in registered.json()["detail"]] == [["body", "time_zone"]]
    assert (await api.get("/users/tom", headers=admin)).status_code == 404


async def test_an_admin_reading_users_sees_a_members_push_targets_without_their_keys(
    api: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    token = (await api.post("/users", json={"name": "kay"}, headers=admin)).json()["token"]
    kay = {"Authorization": f"Bearer {token}"}
    key = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    channels = [{"type": "wecom", "target": key}, {"type": "email", "target": "kay@example.com"}]
    saved = await api.put("/users/me/push", json={"channels": channels}, headers=kay)
    assert saved.status_code == 200, saved.text
    listed = await api.get("/users", headers=admin)
    one = await api.get("/users/kay", headers=admin)
    for text in (listed.text, one.text):
        assert key not in text and "0f1e…" in text and "kay@example.com" in text
    # The owner reads the whole config where it is kept.
    mine = await api.get("/users/me/push", headers=kay)
    assert mine.json()["channels"][0]["target"] == key


def test_a_time_zone_is_checked_without_listing_the_zone_folders_again() -> None:
    # Briefing and reminder configs check their zone each time one is decoded (every workflow
    # task that reads one); listing the zone folders (~600 files) cost ~10 ms of CPU each time.
    # Read on the cache itself: a host with only the tzdata package lists no zone folder.
    assert validate_timezone("Asia/Shanghai") == "Asia/Shanghai"
    misses = users._zones.cache_info().misses
    assert validate_timezone("Europe/Paris") == "Europe/Paris"
    with pytest.raises(Refusal, match="unknown IANA time zone 'Mars/Olympus'"):
        validate_timezone("Mars/Olympus")
    assert users._zones.cache_info().misses == misses
