"""Roles over the API: only admins register users and grant; nobody grants to themselves."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
import pytest_asyncio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from ambient import grants
from ambient.domain.users import Role, UserCreate
from ambient.setting_types import ServerSecret
from ambient.settings import Settings
from ambient.speakers import SpeakerKind, resolve_speaker
from ambient.storage import Database
from ambient.storage.audit import AuditRepository
from ambient.storage.users import UserRepository
from api.app import create_app
from tests.support.admins import admin_headers
from tests.support.servers import free_port, http_client, serve


async def _api(settings: Settings, **extra: Any) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}", **extra})
    async with serve(create_app(settings)) as base:
        async with http_client(base) as client:
            yield client


@pytest_asyncio.fixture
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _api(settings):
        yield client


@pytest_asyncio.fixture
async def scheduled_api(
    settings: Settings, dev_env: WorkflowEnvironment
) -> AsyncIterator[httpx.AsyncClient]:
    """The API with Temporal there: a change of a user's schedule asks their daily briefing."""
    address = dev_env.client.service_client.config.target_host
    async for client in _api(settings, temporal_address=address):
        yield client


@pytest_asyncio.fixture
async def open_api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _api(settings, open_registration=True):
        yield client


@pytest_asyncio.fixture
async def admin(api: httpx.AsyncClient, settings: Settings) -> dict[str, str]:
    return await admin_headers(settings, "root")


async def _member(api: httpx.AsyncClient, admin: dict[str, str], name: str) -> dict[str, str]:
    created = await api.post("/users", json={"name": name}, headers=admin)
    assert created.status_code == 201, created.text
    return {"Authorization": f"Bearer {created.json()['token']}"}


async def _audit(settings: Settings, **filters: Any) -> list[tuple[str, str, str, dict[str, Any]]]:
    db = Database(settings.resolved_database_url)
    try:
        async with db.session() as session:
            records = await AuditRepository(session).list(**filters)
    finally:
        await db.close()
    return [(r.actor, r.action, r.subject, r.detail) for r in records]


async def test_registration_without_an_admin_token_is_refused_by_default(
    api: httpx.AsyncClient, admin: dict[str, str], settings: Settings
) -> None:
    anonymous = await api.post("/users", json={"name": "mallory"})
    assert anonymous.status_code == 401
    assert "admin" in anonymous.json()["detail"]
    assert "AMBIENT_OPEN_REGISTRATION" in anonymous.json()["detail"]
    member = await _member(api, admin, "mia")
    by_member = await api.post("/users", json={"name": "mallory"}, headers=member)
    assert by_member.status_code == 403
    assert "only an admin registers users" in by_member.json()["detail"]
    bad_token = await api.post(
        "/users", json={"name": "mallory"}, headers={"Authorization": "Bearer amb_nope"}
    )
    assert bad_token.status_code == 401
    names = [u["name"] for u in (await api.get("/users", headers=admin)).json()]
    assert names == ["mia", "root"]  # mallory never came to be
    assert await _audit(settings, subject="user:mia") == [
        ("root", "user.register", "user:mia", {"role": "member", "rollback_permission": "dry_run"})
    ]


async def test_an_admin_registers_admins_and_members_with_a_permission(
    api: httpx.AsyncClient, admin: dict[str, str], settings: Settings
) -> None:
    created = await api.post(
        "/users",
        json={"name": "ada", "role": "admin", "rollback_permission": "execute"},
        headers=admin,
    )
    assert created.status_code == 201
    assert (created.json()["user"]["role"], created.json()["user"]["rollback_permission"]) == (
        "admin",
        "execute",
    )
    assert await _audit(settings, subject="user:ada") == [
        ("root", "user.register", "user:ada", {"role": "admin", "rollback_permission": "execute"})
    ]
    bad = await api.post("/users", json={"name": "x", "role": "owner"}, headers=admin)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "role"]


async def test_open_registration_creates_members_only(
    open_api: httpx.AsyncClient, settings: Settings
) -> None:
    created = await open_api.post("/users", json={"name": "newbie"})
    assert created.status_code == 201
    user = created.json()["user"]
    assert (user["role"], user["rollback_permission"]) == ("member", "dry_run")
    for grab in ({"role": "admin"}, {"rollback_permission": "execute"}):
        refused = await open_api.post("/users", json={"name": "grabby", **grab})
        assert refused.status_code == 403
        assert "only an admin grants" in refused.json()["detail"]
    admin = await admin_headers(settings)
    assert (await open_api.get("/users/grabby", headers=admin)).status_code == 404
    # Asking for what a member gets anyway is fine.
    plain = await open_api.post(
        "/users", json={"name": "plain", "role": "member", "rollback_permission": "dry_run"}
    )
    assert plain.status_code == 201 and plain.json()["user"]["role"] == "member"
    assert await _audit(settings, subject="user:newbie") == [
        (
            "open-registration",
            "user.register",
            "user:newbie",
            {"role": "member", "rollback_permission": "dry_run"},
        )
    ]


async def test_open_registration_takes_no_name_the_settings_give_rights_to(
    settings: Settings,
) -> None:
    """AMBIENT_REMEDIATION_APPROVERS, AMBIENT_SECRETS' users and the triage user grant by
    name: with open registration anyone took such a name nobody had registered yet, and with
    it saw, approved and aborted the runs on those clusters, or sent through the secret."""
    settings = settings.model_copy(
        update={
            "remediation_approvers": {"cls-prod*": ["oncall"]},
            "secrets": {"ops-hook": ServerSecret(value=SecretStr("x"), users=["relay"])},
            "remediation_triage_user": "night",
        }
    )
    async for api in _api(settings, open_registration=True):
        origin = str(api.base_url).rstrip("/")
        for name in ("oncall", "relay", "night"):
            refused = await api.post("/users", json={"name": name})
            assert refused.status_code == 403, refused.text
            assert "an admin registers it" in refused.json()["detail"], refused.text
            page = await api.post(
                "/register",
                data={"name": name},
                headers={"Origin": origin, "accept-language": "en"},
            )
            assert page.status_code == 422, page.text
            assert f"name: &#39;{name}&#39; is taken" in page.text
        admin = await admin_headers(settings)
        assert (await api.post("/users", json={"name": "oncall"}, headers=admin)).status_code == 201
        names = [u["name"] for u in (await api.get("/users", headers=admin)).json()]
    assert names == ["admin", "oncall"]
    assert await _audit(settings, action="user.register", subject_prefix="user:") == [
        (
            "operator",
            "user.register",
            "user:admin",
            {"role": "admin", "rollback_permission": "dry_run"},
        ),
        (
            "admin",
            "user.register",
            "user:oncall",
            {"role": "member", "rollback_permission": "dry_run"},
        ),
    ]


async def test_member_cannot_grant_itself_rollback_permission_or_admin(
    api: httpx.AsyncClient, admin: dict[str, str], settings: Settings
) -> None:
    member = await _member(api, admin, "eve")
    for body in (
        {"rollback_permission": "execute"},
        {"role": "admin"},
        {"rollback_permission": "execute", "assistant_name": "Evil"},
    ):
        refused = await api.patch("/users/me", json=body, headers=member)
        assert refused.status_code == 403, refused.text
        assert "only an admin grants" in refused.json()["detail"]
    direct = await api.patch(
        "/users/eve/permissions", json={"rollback_permission": "execute"}, headers=member
    )
    assert direct.status_code == 403
    me = (await api.get("/users/me", headers=member)).json()
    assert (me["role"], me["rollback_permission"], me["assistant_name"]) == (
        "member",
        "dry_run",
        "小智",
    )
    refusals = await _audit(settings, subject="user:eve", action="user.grant.refused")
    assert [(actor, detail["requested"]) for actor, _, _, detail in refusals] == [
        ("eve", {"rollback_permission": "execute"}),
        ("eve", {"role": "admin"}),
        ("eve", {"rollback_permission": "execute"}),
        ("eve", {"rollback_permission": "execute"}),
    ]
    assert await _audit(settings, subject="user:eve", action="user.grant") == []


async def test_admin_grants_are_audited_old_to_new_and_never_to_itself(
    api: httpx.AsyncClient, admin: dict[str, str], settings: Settings
) -> None:
    await _member(api, admin, "bob")
    granted = await api.patch(
        "/users/bob/permissions", json={"rollback_permission": "execute"}, headers=admin
    )
    assert granted.status_code == 200
    assert granted.json()["changes"] == {
        "rollback_permission": {"old": "dry_run", "new": "execute"}
    }
    assert granted.json()["user"]["rollback_permission"] == "execute"
    again = await api.patch(
        "/users/bob/permissions", json={"rollback_permission": "execute"}, headers=admin
    )
    assert again.json()["changes"] == {}
    promoted = await api.patch(
        "/users/bob/permissions",
        json={"role": "admin", "rollback_permission": "none"},
        headers=admin,
    )
    assert promoted.json()["changes"] == {
        "role": {"old": "member", "new": "admin"},
        "rollback_permission": {"old": "execute", "new": "none"},
    }
    assert await _audit(settings, subject="user:bob", action="user.grant") == [
        (
            "root",
            "user.grant",
            "user:bob",
            {"rollback_permission": {"old": "dry_run", "new": "execute"}},
        ),
        (
            "root",
            "user.grant",
            "user:bob",
            {
                "role": {"old": "member", "new": "admin"},
                "rollback_permission": {"old": "execute", "new": "none"},
            },
        ),
    ]
    self_grant = await api.patch(
        "/users/root/permissions", json={"rollback_permission": "execute"}, headers=admin
    )
    assert self_grant.status_code == 403 and "No one grants to themselves" in self_grant.text
    # "me" is the caller, as in /users/me (no user has that name): the same refusal, audited
    # about the caller, not a 404 "No user 'me'" that nobody audits.
    me_grant = await api.patch("/users/me/permissions", json={"role": "member"}, headers=admin)
    assert me_grant.status_code == 403 and "No one grants to themselves" in me_grant.text
    refusals = await _audit(settings, subject="user:root", action="user.grant.refused")
    assert [detail["requested"] for *_, detail in refusals] == [
        {"rollback_permission": "execute"},
        {"role": "member"},
    ]
    root = (await api.get("/users/me", headers=admin)).json()
    assert root["rollback_permission"] == "dry_run"
    missing = await api.patch("/users/nobody/permissions", json={"role": "admin"}, headers=admin)
    assert missing.status_code == 404
    empty = await api.patch("/users/bob/permissions", json={}, headers=admin)
    assert empty.status_code == 422 and "rollback_permission" in empty.text
    long_name = await api.patch(
        "/users/" + "x" * 5000 + "/permissions", json={"role": "admin"}, headers=admin
    )
    assert long_name.status_code == 422
    assert long_name.json()["detail"][0]["loc"] == ["path", "name"]
    bad = await api.patch(
        "/users/bob/permissions", json={"rollback_permission": "all"}, headers=admin
    )
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "rollback_permission"]


async def test_members_see_only_themselves_and_admins_see_everyone(
    api: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    member = await _member(api, admin, "mo")
    await _member(api, admin, "ann")
    assert (await api.get("/users", headers=member)).status_code == 403
    assert (await api.get("/users/ann", headers=member)).status_code == 403
    assert (await api.get("/users/mo", headers=member)).json()["name"] == "mo"
    listed = (await api.get("/users", headers=admin)).json()
    assert [(u["name"], u["role"]) for u in listed] == [
        ("ann", "member"),
        ("mo", "member"),
        ("root", "admin"),
    ]
    assert (await api.get("/users/ann", headers=admin)).json()["name"] == "ann"
    assert (await api.get("/users/nobody", headers=admin)).status_code == 404
    assert (await api.get("/users")).status_code == 401


async def _mcp_call(base: str, token: str, tool: str, **args: Any) -> tuple[bool, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers, trust_env=False, timeout=30) as http:
        async with Client(streamable_http_client(f"{base}/mcp", http_client=http)) as client:
            result = await client.call_tool(tool, args)
    text = " ".join(getattr(part, "text", "") for part in result.content)
    return bool(result.is_error), text if result.is_error else result.structured_content


async def test_over_mcp_http_the_token_owner_is_the_caller_and_a_member_cannot_grant(
    settings: Settings,
) -> None:
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with (
        serve(create_app(settings)) as base,
        http_client(base) as http,
    ):
        admin = await admin_headers(settings, "root")
        admin_token = admin["Authorization"].removeprefix("Bearer ")
        created = await http.post("/users", json={"name": "mel"}, headers=admin)
        member_token = created.json()["token"]

        _, me = await _mcp_call(base, member_token, "whoami")
        refused, message = await _mcp_call(
            base, member_token, "grant_permission", user_name="mel", rollback_permission="execute"
        )
        _, granted = await _mcp_call(
            base, admin_token, "grant_permission", user_name="mel", rollback_permission="none"
        )
        mel = await http.get("/users/mel", headers=admin)
    assert (me["name"], me["role"]) == ("mel", "member")
    assert refused and "Only an admin may grant" in message
    assert granted["changes"] == {"rollback_permission": {"old": "dry_run", "new": "none"}}
    assert mel.json()["rollback_permission"] == "none"
    assert [(a, act) for a, act, _, _ in await _audit(settings, subject="user:mel")] == [
        ("root", "user.register"),
        ("mel", "user.grant.refused"),
        ("root", "user.grant"),
    ]


async def test_audit_api_shows_admins_everything_and_members_their_own_records(
    api: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    member = await _member(api, admin, "kim")
    await _member(api, admin, "lee")
    await api.patch("/users/kim/permissions", json={"rollback_permission": "none"}, headers=admin)
    await api.patch("/users/me", json={"role": "admin"}, headers=member)

    everything = (await api.get("/audit", headers=admin)).json()
    assert [(r["actor"], r["action"], r["subject"]) for r in everything] == [
        ("operator", "user.register", "user:root"),
        ("root", "user.register", "user:kim"),
        ("root", "user.register", "user:lee"),
        ("root", "user.grant", "user:kim"),
        ("kim", "user.grant.refused", "user:kim"),
    ]
    grants = (await api.get("/audit?action=user.grant", headers=admin)).json()
    assert [r["detail"] for r in grants] == [
        {"rollback_permission": {"old": "dry_run", "new": "none"}}
    ]
    mine = (await api.get("/audit", headers=member)).json()
    assert {r["subject"] for r in mine} == {"user:kim"} and len(mine) == 3
    for query in ("?subject=user:lee", "?subject_prefix=user:"):
        assert (await api.get(f"/audit{query}", headers=member)).status_code == 403
    assert (await api.get("/audit")).status_code == 401
    assert (await api.get("/audit?limit=0", headers=admin)).status_code == 422


async def test_the_audit_log_reads_on_past_its_first_page_to_the_newest_record(
    api: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    """Records come oldest first, at most 1,000 a request: past the first page nobody could
    read the newest ones (a grant made today, once the log held 1,000 records)."""
    await _member(api, admin, "pia")
    for permission in ("none", "execute", "dry_run", "none"):
        granted = await api.patch(
            "/users/pia/permissions", json={"rollback_permission": permission}, headers=admin
        )
        assert granted.status_code == 200, granted.text
    read: list[dict[str, Any]] = []
    after: int | None = None
    for _ in range(5):  # bounded: a page that does not move on would repeat forever
        query = {"subject": "user:pia", "limit": 2} | ({"after": after} if after else {})
        page = (await api.get("/audit", params=query, headers=admin)).json()
        if not page:
            break
        read += page
        after = page[-1]["id"]
    assert [r["action"] for r in read] == ["user.register"] + ["user.grant"] * 4
    assert read[-1]["detail"] == {"rollback_permission": {"old": "dry_run", "new": "none"}}
    assert (await api.get("/audit?after=-1", headers=admin)).status_code == 422


# The same forbidden grants through each door: the service refuses them all alike.
FORBIDDEN_GRANTS = [
    ("member", "mel", {"rollback_permission": "execute"}, "Only an admin may grant"),
    ("member", "root", {"role": "member"}, "Only an admin may grant"),
    ("admin", "root", {"role": "member"}, "No one grants to themselves"),
]


async def test_a_forbidden_grant_is_refused_alike_by_the_api_and_mcp_and_changes_nothing(
    settings: Settings,
) -> None:
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with (
        serve(create_app(settings)) as base,
        http_client(base) as http,
    ):
        admin = await admin_headers(settings, "root")
        created = await http.post("/users", json={"name": "mel"}, headers=admin)
        tokens = {
            "admin": admin["Authorization"].removeprefix("Bearer "),
            "member": created.json()["token"],
        }
        answers = []
        for caller, target, change, words in FORBIDDEN_GRANTS:
            over_api = await http.patch(
                f"/users/{target}/permissions",
                json=change,
                headers={"Authorization": f"Bearer {tokens[caller]}"},
            )
            over_mcp = await _mcp_call(
                base, tokens[caller], "grant_permission", user_name=target, **change
            )
            answers.append((words, over_api.status_code, over_api.json()["detail"], over_mcp))
        users = {u["name"]: u for u in (await http.get("/users", headers=admin)).json()}
    for words, code, detail, (refused, message) in answers:
        assert code == 403 and words in detail
        assert refused and words in message
    assert (users["mel"]["role"], users["mel"]["rollback_permission"]) == ("member", "dry_run")
    assert users["root"]["role"] == "admin"
    refusals = await _audit(settings, action="user.grant.refused")
    assert len(refusals) == 2 * len(FORBIDDEN_GRANTS)
    assert await _audit(settings, action="user.grant") == []


async def test_who_registers_whom_is_the_grants_service_for_every_door(
    db: Database, settings: Settings
) -> None:
    # The API and the page's open registration both ask grants.register; no door decides.
    closed_settings = settings.model_copy(update={"open_registration": False})
    open_settings = settings.model_copy(update={"open_registration": True})
    async with db.session() as session:
        with pytest.raises(grants.RegistrationRefusedError) as closed:
            await grants.register(session, None, UserCreate(name="eve"), settings=closed_settings)
        assert closed.value.needs_token and "AMBIENT_OPEN_REGISTRATION" in str(closed.value)
        with pytest.raises(grants.RegistrationRefusedError) as granted:
            await grants.register(
                session, None, UserCreate(name="eve", role=Role.ADMIN), settings=open_settings
            )
        assert not granted.value.needs_token and "(remove role)" in str(granted.value)
        assert await UserRepository(session).get("eve") is None
        user, _ = await grants.register(
            session, None, UserCreate(name="eve"), settings=open_settings
        )
        assert user.role == Role.MEMBER


async def test_a_member_cannot_take_another_users_voiceprint_or_name_as_its_voiceprint(
    api: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    """Who speaks is found by voiceprint id or user name: one taken twice made the owner's
    speaker unable to tell its own user (and the device greeting a 500)."""
    created = await api.post(
        "/users", json={"name": "vera", "voiceprint_id": "VP-Vera"}, headers=admin
    )
    assert created.status_code == 201
    mallory = await _member(api, admin, "mal")
    for taken in ("vp-vera", "Vera"):
        answer = await api.patch("/users/me", json={"voiceprint_id": taken}, headers=mallory)
        assert answer.status_code == 422, answer.text
        [error] = answer.json()["detail"]
        assert error["loc"] == ["body", "voiceprint_id"]
        assert error["msg"] == f"{taken!r} cannot be used as a voiceprint id: choose another"
    # The settings page is the same door.
    origin = str(api.base_url).rstrip("/")
    page = await api.post(
        "/app/settings",
        data={"voiceprint_id": "VP-VERA"},
        headers={"Origin": origin, "Cookie": f"ambient_token={mallory['Authorization'][7:]}"},
    )
    assert "cannot be used as a voiceprint id" in page.text
    assert (await api.get("/users/me", headers=mallory)).json()["voiceprint_id"] is None
    # One's own voiceprint is kept on any save, and a free one is taken.
    vera = await api.patch(
        "/users/me",
        json={"voiceprint_id": "VP-Vera"},
        headers={"Authorization": f"Bearer {created.json()['token']}"},
    )
    assert vera.status_code == 200
    mine = await api.patch("/users/me", json={"voiceprint_id": "vp-mal"}, headers=mallory)
    assert mine.json()["voiceprint_id"] == "vp-mal"
    # Registering a second user with a taken voiceprint is refused alike.
    twice = await api.post(
        "/users", json={"name": "vic", "voiceprint_id": "VP-VERA"}, headers=admin
    )
    assert twice.status_code == 422
    assert twice.json()["detail"][0]["loc"] == ["body", "voiceprint_id"]


async def test_a_refused_voiceprint_or_name_tells_nothing_of_the_user_who_has_it(
    api: httpx.AsyncClient, open_api: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    """A voiceprint id (or a new user's name) that would name a voice twice is refused, in
    words that say what to do: not that another user has it, nor whether it is their name or
    their voiceprint (it told anyone probing names which users exist)."""
    created = await api.post(
        "/users", json={"name": "quinn", "voiceprint_id": "VP-Quinn"}, headers=admin
    )
    assert created.status_code == 201, created.text
    member = await _member(api, admin, "mab")
    for taken in ("vp-quinn", "Quinn"):
        answer = await api.patch("/users/me", json={"voiceprint_id": taken}, headers=member)
        assert answer.status_code == 422, answer.text
        [error] = answer.json()["detail"]
        assert error["loc"] == ["body", "voiceprint_id"]
        assert error["msg"] == f"{taken!r} cannot be used as a voiceprint id: choose another"
    # Open registration under someone's voiceprint is refused as a name that is taken.
    page = await open_api.post(
        "/register",
        data={"name": "vp-quinn"},
        headers={"Origin": str(open_api.base_url).rstrip("/"), "accept-language": "en"},
    )
    assert page.status_code == 422
    assert "name: &#39;vp-quinn&#39; is taken" in page.text and "another user" not in page.text


async def test_a_new_user_cannot_be_named_as_another_users_voiceprint(
    api: httpx.AsyncClient, open_api: httpx.AsyncClient, admin: dict[str, str], db: Database
) -> None:
    """A speaker is found by voiceprint id or user name, and one found twice is nobody: a user
    registered as 'ren' after lin took the voiceprint 'Ren' left lin's own speaker (and ren's)
    unable to tell who spoke."""
    lin = await _member(api, admin, "lin")
    taken = await api.patch("/users/me", json={"voiceprint_id": "Ren"}, headers=lin)
    assert taken.status_code == 200, taken.text
    refused = await api.post("/users", json={"name": "ren"}, headers=admin)
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["detail"]
    assert error["loc"] == ["body", "name"]
    # The admin (who reads every user) is told whose it is; open registration is not.
    assert error["msg"] == (
        "'ren' is lin's voiceprint id: clear or change that voiceprint id first, or choose "
        "another name"
    )
    page = await open_api.post(
        "/register",
        data={"name": "ren"},
        headers={"Origin": str(open_api.base_url).rstrip("/"), "accept-language": "en"},
    )
    assert page.status_code == 422 and "name: &#39;ren&#39; is taken" in page.text
    async with db.session() as session:
        assert await UserRepository(session).get("ren") is None
    assert (await resolve_speaker(db, "lin", "Ren", approvers={})).kind == SpeakerKind.OWNER


# Names the settings give rights to, as the tests below set them.
GRANTING = {
    "remediation_approvers": {"cls-prod*": ["oncall"]},
    "secrets": {"ops-hook": ServerSecret(value=SecretStr("x"), users=["relay"])},
    "remediation_triage_user": "night",
}


async def test_no_voiceprint_id_takes_a_name_the_settings_give_rights_to(
    settings: Settings,
) -> None:
    """A voiceprint id names its user as a name does, so a new user may not be named as one:
    a member who took an approver's name as their voiceprint id (at open registration, or in
    their settings) kept the admin from ever registering the approver ("'oncall' cannot be
    used as a name")."""
    settings = settings.model_copy(update=GRANTING)
    async for api in _api(settings, open_registration=True):
        admin = await admin_headers(settings)
        member = await _member(api, admin, "mallory")
        origin = str(api.base_url).rstrip("/")
        cookie = {"Origin": origin, "Cookie": f"ambient_token={member['Authorization'][7:]}"}
        for name in ("oncall", "Relay", "night"):
            opened = await api.post("/users", json={"name": "mal", "voiceprint_id": name})
            assert opened.status_code == 422, opened.text
            patched = await api.patch("/users/me", json={"voiceprint_id": name}, headers=member)
            assert patched.status_code == 422, patched.text
            [error] = patched.json()["detail"]
            assert error["loc"] == ["body", "voiceprint_id"]
            # Said as a voiceprint id someone has: what the settings give it is not told.
            assert error["msg"] == f"{name!r} cannot be used as a voiceprint id: choose another"
            page = await api.post("/app/settings", data={"voiceprint_id": name}, headers=cookie)
            assert "cannot be used as a voiceprint id" in page.text
            by_admin = await api.post(
                "/users", json={"name": "vic", "voiceprint_id": name}, headers=admin
            )
            assert by_admin.status_code == 422, by_admin.text
        assert (await api.get("/users/me", headers=member)).json()["voiceprint_id"] is None
        # The admin registers each name; its own name is its user's voiceprint id as ever.
        for made in ({"name": "oncall", "voiceprint_id": "OnCall"}, {"name": "relay"}):
            answer = await api.post("/users", json=made, headers=admin)
            assert answer.status_code == 201, answer.text


async def test_an_admin_registers_a_name_the_settings_give_rights_to_held_as_a_voiceprint(
    settings: Settings, db: Database
) -> None:
    """A voiceprint id taken before such ids were refused, or before the settings named it,
    is cleared when an admin registers that name, and the clearing audited: the name was
    "cannot be used as a name" for good."""
    settings = settings.model_copy(update=GRANTING)
    async with db.session() as session:
        users = UserRepository(session)
        for name, voiceprint in (("mallory", "OnCall"), ("mab", "night"), ("lin", "vp-lin")):
            await users.create(UserCreate(name=name, voiceprint_id=voiceprint))
        await session.commit()
    async for api in _api(settings):
        admin = await admin_headers(settings)
        made = await api.post("/users", json={"name": "oncall"}, headers=admin)
        assert made.status_code == 201, made.text
        listed = (await api.get("/users", headers=admin)).json()
        voiceprints = {user["name"]: user["voiceprint_id"] for user in listed}
        assert voiceprints["mallory"] is None and voiceprints["mab"] == "night", voiceprints
        # A name the settings give nothing is refused as before, the admin told by whom (an
        # admin reads every user): "choose another" left them to search why.
        kept = await api.post("/users", json={"name": "vp-lin"}, headers=admin)
        assert kept.status_code == 422, kept.text
        [error] = kept.json()["detail"]
        assert error["loc"] == ["body", "name"] and "is lin's voiceprint id" in error["msg"]
    assert await _audit(settings, action="user.voiceprint.cleared") == [
        (
            "admin",
            "user.voiceprint.cleared",
            "user:mallory",
            {"voiceprint_id": "OnCall", "registered": "oncall"},
        )
    ]
    assert (await resolve_speaker(db, "oncall", "OnCall", approvers={})).kind == SpeakerKind.OWNER


def test_the_operator_registers_a_name_the_settings_give_rights_to_held_as_a_voiceprint(
    tmp_path: Path,
) -> None:
    """`ambient user create NAME` clears a voiceprint id that is NAME, as an admin's
    registration does, where the server's settings give NAME rights."""
    import asyncio

    from typer.testing import CliRunner

    from ambient.cli import app as cli

    env = {"AMBIENT_DATA_DIR": str(tmp_path), "AMBIENT_REMEDIATION_TRIAGE_USER": "night"}
    runner = CliRunner()
    created = runner.invoke(cli, ["user", "create", "mab"], env=env)
    assert created.exit_code == 0, created.output

    async def voiceprint(name: str, value: str | None = None) -> str | None:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'ambient.db'}")
        try:
            async with db.session() as session:
                user = await UserRepository(session).existing(name, LookupError(name))
                if value is not None:  # taken before such ids were refused
                    user.voiceprint_id = value
                    await session.commit()
                return user.voiceprint_id
        finally:
            await db.close()

    asyncio.run(voiceprint("mab", "Night"))
    created = runner.invoke(cli, ["user", "create", "night"], env=env)
    assert created.exit_code == 0, created.output
    assert "cleared mab's voiceprint id 'Night'" in created.output
    assert asyncio.run(voiceprint("mab")) is None
    # A name the settings give nothing: refused, naming whose voiceprint id it is.
    asyncio.run(voiceprint("mab", "zed"))
    refused = runner.invoke(cli, ["user", "create", "zed"], env=env)
    assert refused.exit_code == 1, refused.output
    assert "'zed' is mab's voiceprint id" in refused.output, refused.output


async def test_briefing_times_that_could_make_no_briefing_are_refused_where_they_are_set(
    scheduled_api: httpx.AsyncClient, admin: dict[str, str], settings: Settings, db: Database
) -> None:
    """A greeting window that ends before it starts, or a preparation after it starts, was
    stored; the user's next briefing then failed on a field they never gave it."""
    api = scheduled_api
    kai = await _member(api, admin, "kai")
    for body, field in (
        ({"briefing_window_start": "11:00"}, "briefing_window_start"),
        ({"briefing_window_end": "05:30"}, "briefing_window_end"),
        ({"briefing_prepare_at": "07:00"}, "briefing_prepare_at"),
        ({"briefing_window_start": "09:00", "briefing_window_end": "09:00"}, "briefing_window_end"),
    ):
        answer = await api.patch("/users/me", json=body | {"phone": "+86 10 1234"}, headers=kai)
        assert answer.status_code == 422, (body, answer.text)
        [error] = answer.json()["detail"]
        assert error["loc"] == ["body", field]
        assert error["input"] == body[field]
    me = (await api.get("/users/me", headers=kai)).json()
    assert (me["briefing_prepare_at"], me["briefing_window_start"], me["briefing_window_end"]) == (
        "05:00",
        "06:00",
        "10:00",
    )
    assert me["phone"] is None  # nothing of a refused update is stored
    moved = {"briefing_window_start": "11:00", "briefing_window_end": "12:00"}
    assert (await api.patch("/users/me", json=moved, headers=kai)).status_code == 200
    late = await api.patch("/users/me", json={"briefing_prepare_at": "10:30"}, headers=kai)
    assert late.status_code == 200, late.text
    # Registering with them is refused alike.
    created = await api.post(
        "/users", json={"name": "kit", "briefing_prepare_at": "06:30"}, headers=admin
    )
    assert created.status_code == 422
    assert created.json()["detail"][0]["loc"] == ["body", "briefing_prepare_at"]
    # The settings page is the same door, and says it in the user's language.
    async with db.session() as session:
        user = await UserRepository(session).get("kai")
        assert user is not None
        user.language = "zh"
        await session.commit()
    origin = str(api.base_url).rstrip("/")
    page = await api.post(
        "/app/settings",
        data={"briefing_window_end": "10:00"},
        headers={"Origin": origin, "Cookie": f"ambient_token={kai['Authorization'][7:]}"},
    )
    assert page.status_code == 422
    assert "到: 问候时段在开始（11:00）之前就结束了（10:00）" in html.unescape(page.text)


def test_the_user_audit_command_shows_every_record_to_the_newest(tmp_path: Path) -> None:
    """`ambient user audit NAME` showed the oldest 200 records and stopped: a user with more
    history never saw their latest grants there."""
    import asyncio
    import json

    from typer.testing import CliRunner

    from ambient.cli import app as cli

    env = {"AMBIENT_DATA_DIR": str(tmp_path)}
    runner = CliRunner()
    created = runner.invoke(cli, ["user", "create", "lin"], env=env)
    assert created.exit_code == 0, created.output

    async def grant_many() -> None:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'ambient.db'}")
        try:
            async with db.session() as session:
                for n in range(1, 251):
                    await AuditRepository(session).append(
                        actor="root", action="user.grant", subject="user:lin", detail={"n": n}
                    )
                await session.commit()
        finally:
            await db.close()

    asyncio.run(grant_many())
    shown = runner.invoke(cli, ["user", "audit", "lin", "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    rows = json.loads(shown.output)
    assert len(rows) == 251 and rows[-1]["detail"] == {"n": 250}, len(rows)


async def test_a_profile_phone_without_its_country_code_is_refused_where_it_is_set(
    api: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    # The SMS channel texts the profile's phone through gateways that put "+" before the
    # digits: a Chinese mobile saved as 13800000000 could never be texted (refused at send).
    mei = await _member(api, admin, "mei")
    answer = await api.patch("/users/me", json={"phone": "13800000000"}, headers=mei)
    assert answer.status_code == 422, answer.text
    [error] = answer.json()["detail"]
    assert error["loc"] == ["body", "phone"] and "+8613800000000" in error["msg"]
    answer = await api.patch("/users/me", json={"phone": "+86 138-0000-0000"}, headers=mei)
    assert answer.status_code == 200, answer.text
    assert answer.json()["phone"] == "+86 138-0000-0000"


async def test_the_owner_as_a_role_word_is_refused_where_voiceprints_are_in_use(
    api: httpx.AsyncClient, admin: dict[str, str], db: Database
) -> None:
    """ "主人"/"owner" is what a model writes for the user when no voiceprint names anyone: the
    owner. Where voiceprints are in use it may be a voice they did not match, which was answered
    as the owner (an approval by voice included); and a user called so is that user."""
    mei = await _member(api, admin, "mei")
    for word in ("主人", "Owner"):
        assert (await resolve_speaker(db, "mei", word, approvers={})).kind == SpeakerKind.OWNER
    marked = await api.patch("/users/me", json={"voiceprint_id": "vp-mei"}, headers=mei)
    assert marked.status_code == 200, marked.text
    for word in ("主人", "owner", "未知说话人"):
        assert (await resolve_speaker(db, "mei", word, approvers={})).kind == SpeakerKind.UNKNOWN
    assert (await resolve_speaker(db, "mei", "vp-mei", approvers={})).kind == SpeakerKind.OWNER
