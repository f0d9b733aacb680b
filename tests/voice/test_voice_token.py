"""A voice token: what a 小智 server's settings file holds opens /mcp/voice as its user, and
nothing else (the user's API token there opened every tool and route to whoever read it)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from typer.testing import CliRunner

from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.audit import AuditRepository
from tests.voice.support import assert_speakable, register, voice_api

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def _call(method: str, id_: int, **params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "method": method, "params": params}


def _bearer(token: str) -> dict[str, str]:
    return {**ACCEPT, "Authorization": f"Bearer {token}"}


def _answer(text: str) -> dict[str, Any]:
    """The JSON-RPC answer of a streamable HTTP reply (JSON, or one SSE event)."""
    lines = [line[5:] for line in text.splitlines() if line.startswith("data:")]
    body: dict[str, Any] = json.loads(lines[0] if lines else text)
    return body


async def test_a_voice_token_opens_the_voice_profile_as_its_user_and_nothing_else(
    settings: Settings,
) -> None:
    async with voice_api(settings) as (_, http):
        me = await register(http, settings, "lan")
        issued = await http.post("/users/me/voice-token", headers=me)
        assert issued.status_code == 200, issued.text
        voice = issued.json()["token"]
        assert voice.startswith("ambv_")

        listed = await http.post("/mcp/voice", json=_call("tools/list", 1), headers=_bearer(voice))
        assert listed.status_code == 200, listed.text
        names = {t["name"] for t in _answer(listed.text)["result"]["tools"]}
        assert {"greet", "what_needs_me"} <= names
        called = await http.post(
            "/mcp/voice",
            json=_call("tools/call", 2, name="recent_errors", arguments={"hours": 6}),
            headers=_bearer(voice),
        )
        text = _answer(called.text)["result"]["content"][0]["text"]
        assert_speakable(text)
        assert "6 小时" in text, text  # answered as lan, a user the service knows

        # Nothing else opens to it: the full MCP server, the API, the pages' sign-in.
        # Each says it is a voice token at the wrong door, not only "invalid token".
        full = await http.post("/mcp", json=_call("tools/list", 3), headers=_bearer(voice))
        assert full.status_code == 401, full.text
        assert "opens /mcp/voice only" in full.json()["error_description"], full.text
        me_read = await http.get("/users/me", headers={"Authorization": f"Bearer {voice}"})
        assert me_read.status_code == 401, me_read.text
        assert "opens /mcp/voice only" in me_read.json()["detail"], me_read.text
        rotated = await http.post("/users/me/token", headers={"Authorization": f"Bearer {voice}"})
        assert rotated.status_code == 401, rotated.text
        signed = await http.post(
            "/signin", data={"token": voice}, headers={"origin": str(http.base_url)}
        )
        assert "ambient_token" not in signed.cookies, signed.headers
        assert "这是语音令牌" in signed.text, signed.text  # the server's default language
        api_token = me["Authorization"].split()[1]
        signed_in = await http.post(
            "/signin", data={"token": api_token}, headers={"origin": str(http.base_url)}
        )
        assert "ambient_token" in signed_in.cookies, signed_in.headers  # what a sign-in sets

        # The API token still opens the voice profile too.
        still = await http.post("/mcp/voice", json=_call("tools/list", 4), headers={**ACCEPT, **me})
        assert still.status_code == 200, still.text

        # A new one stops the one before; a revoked one opens nothing.
        again = (await http.post("/users/me/voice-token", headers=me)).json()["token"]
        old = await http.post("/mcp/voice", json=_call("tools/list", 5), headers=_bearer(voice))
        assert old.status_code == 401, old.text
        # At the voice door a replaced voice token is invalid, not "send your API token here"
        # (which asked for the full-rights token in xiaozhi-server's settings file).
        assert old.json()["error_description"] == "invalid token", old.text
        assert 'error_description="invalid token"' in old.headers["www-authenticate"]
        new = await http.post("/mcp/voice", json=_call("tools/list", 6), headers=_bearer(again))
        assert new.status_code == 200, new.text
        # The device token beside it in xiaozhi-server's settings, swapped in: said so, at
        # the voice door as at the others (a bare "invalid token" before).
        device = "xzd_" + "a" * 40
        for door in ("/mcp/voice", "/mcp"):
            swapped = await http.post(door, json=_call("tools/list", 8), headers=_bearer(device))
            assert swapped.status_code == 401, swapped.text
            said = swapped.json()["error_description"]
            assert said.startswith("a device token (xzd_) opens /xiaozhi/context only"), said
        shown = await http.get("/users/me", headers=me)
        assert shown.json()["voice_token"] is True, shown.text  # one is out, never the token
        gone = await http.delete("/users/me/voice-token", headers=me)
        assert gone.status_code == 204, gone.text
        after = await http.post("/mcp/voice", json=_call("tools/list", 7), headers=_bearer(again))
        assert after.status_code == 401, after.text
        assert (await http.get("/users/me", headers=me)).json()["voice_token"] is False

        # A leaked API token could issue one: rotating the API token (a leak's remedy) ends
        # the voice token too.
        kept = (await http.post("/users/me/voice-token", headers=me)).json()["token"]
        fresh = (await http.post("/users/me/token", headers=me)).json()["token"]
        ended = await http.post("/mcp/voice", json=_call("tools/list", 8), headers=_bearer(kept))
        assert ended.status_code == 401, ended.text
        assert (await http.get("/users/me", headers=_bearer(fresh))).json()["voice_token"] is False

    # Each issue, revoke and rotation is audited as its user, the tokens never written.
    async with Database(settings.resolved_database_url) as db, db.session() as session:
        records = await AuditRepository(session).list(subject="user:lan")
    said = [(r.actor, r.action, r.detail) for r in records if r.action != "user.register"]
    assert said == [
        ("lan", "user.voice_token.issued", {}),
        ("lan", "user.voice_token.issued", {}),
        ("lan", "user.voice_token.revoked", {}),
        ("lan", "user.voice_token.issued", {}),
        (
            "lan",
            "user.token.rotated",
            {"voice_token_revoked": True, "devices_removed": 0, "endpoints_removed": 0},
        ),
    ], said
    assert not any("ambv_" in str(r.detail) or "amb_" in str(r.detail) for r in records)


async def test_the_command_line_issues_and_revokes_a_users_voice_token(settings: Settings) -> None:
    from ambient.cli import app as cli

    env = {"AMBIENT_DATABASE_URL": settings.resolved_database_url}
    async with voice_api(settings) as (_, http):
        await register(http, settings, "mu")

        def run(*args: str) -> Any:  # the command runs its own event loop: in a thread
            return asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env)

        made = await run("user", "voice-token", "mu")
        assert made.exit_code == 0, made.output
        token = made.output.split()[-1]
        assert token.startswith("ambv_") and "opens /mcp/voice only" in made.output, made.output
        opened = await http.post("/mcp/voice", json=_call("tools/list", 1), headers=_bearer(token))
        assert opened.status_code == 200, opened.text
        revoked = await run("user", "voice-token", "mu", "--revoke")
        assert revoked.exit_code == 0 and "revoked" in revoked.output, revoked.output
        shut = await http.post("/mcp/voice", json=_call("tools/list", 2), headers=_bearer(token))
        assert shut.status_code == 401, shut.text
        none = await run("user", "voice-token", "mu", "--revoke")
        assert none.exit_code == 0 and "had no voice token" in none.output, none.output
        nobody = await run("user", "voice-token", "nobody")
        assert nobody.exit_code == 1 and "no user 'nobody'" in nobody.output, nobody.output


async def test_an_admin_stops_a_members_voice_token_and_a_member_cannot_stop_anothers(
    settings: Settings,
) -> None:
    """A leaked 小智 settings file: an admin ends its voice token without the server's shell."""
    from tests.support.admins import admin_headers

    async with voice_api(settings) as (_, http):
        owner = await register(http, settings, "qi")
        other = await register(http, settings, "ru")
        voice = (await http.post("/users/me/voice-token", headers=owner)).json()["token"]
        refused = await http.delete("/users/qi/voice-token", headers=other)
        assert refused.status_code == 403, refused.text
        still = await http.post("/mcp/voice", json=_call("tools/list", 1), headers=_bearer(voice))
        assert still.status_code == 200, still.text
        nobody = await http.delete(
            "/users/nobody/voice-token", headers=await admin_headers(settings)
        )
        assert nobody.status_code == 404, nobody.text
        stopped = await http.delete("/users/qi/voice-token", headers=await admin_headers(settings))
        assert stopped.status_code == 204, stopped.text
        shut = await http.post("/mcp/voice", json=_call("tools/list", 2), headers=_bearer(voice))
        assert shut.status_code == 401, shut.text
    async with Database(settings.resolved_database_url) as db, db.session() as session:
        records = await AuditRepository(session).list(
            subject="user:qi", action="user.voice_token.revoked"
        )
    assert [r.actor for r in records] == ["admin"]  # admin_headers' admin, audited as such
