"""Who is speaking: the name a voice model passes is one user's, and no member's own setting
takes another user's voice (or everyone's owner) at the settings doors, the greeting door and
/mcp/voice."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from temporalio.testing import WorkflowEnvironment

from ambient.settings import Settings
from ambient.speakers import SpeakerKind, resolve_speaker
from ambient.storage import Database
from api.app import create_app
from mcp_server.voice_sentences import UNKNOWN_SPEAKER
from tests.conftest import unique
from tests.support.admins import admin_headers
from tests.support.servers import http_client, serve


@asynccontextmanager
async def _api(
    settings: Settings, dev_env: WorkflowEnvironment
) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    """The API over the dev server (no worker: nothing here waits on one)."""
    address = dev_env.client.service_client.config.target_host
    settings = settings.model_copy(update={"temporal_address": address, "open_registration": True})
    async with serve(create_app(settings)) as base, http_client(base) as http:
        yield base, http


async def _voice(base: str, token: str, tool: str, **args: Any) -> str:
    """What /mcp/voice answers ``tool`` for ``token``'s user, with the official client."""
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, trust_env=False, timeout=60) as http,
        Client(streamable_http_client(f"{base}/mcp/voice", http_client=http)) as client,
    ):
        result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    return str(getattr(result.content[0], "text", ""))


async def _settings_form(http: httpx.AsyncClient, base: str, token: str, **data: str) -> str:
    """The settings page's notice after posting ``data`` ("" once saved)."""
    answer = await http.post(
        "/app/settings",
        data=data,
        headers={"Origin": base, "Cookie": f"ambient_token={token}", "accept-language": "en"},
    )
    return "" if answer.status_code == 303 else html.unescape(answer.text)


async def test_a_voiceprint_with_capitals_beyond_ascii_is_its_users_voice_and_no_one_elses(
    settings: Settings, dev_env: WorkflowEnvironment, db: Database
) -> None:
    """A speaker's name is matched in any case, but SQLite's lower() folds ASCII alone: jo's
    voiceprint 'JOSÉ' was no voice of jo's (a stranger on jo's own speaker, jo's own greeting
    by it refused as another's), and 'josé' was free for a member, whose allowing jo's speaker
    then answered jo's voice as that member (jo's approvals by voice made as theirs)."""
    jo, mal = unique("jo"), unique("mal")
    async with _api(settings, dev_env) as (base, http):
        admin = await admin_headers(settings)
        tokens = {}
        for name, voiceprint in ((jo, "JOSÉ"), (mal, None)):
            body = {"name": name} | ({"voiceprint_id": voiceprint} if voiceprint else {})
            made = await http.post("/users", json=body, headers=admin)
            assert made.status_code == 201, made.text
            tokens[name] = made.json()["token"]
        as_jo, as_mal = ({"Authorization": f"Bearer {tokens[n]}"} for n in (jo, mal))
        device = await http.post(
            "/xiaozhi/devices", json={"device_id": "aa:00:00:00:00:01"}, headers=as_jo
        )
        assert device.status_code == 201, device.text
        # The member asks for jo's voiceprint in other cases, at the API and on the settings page.
        taken = [
            await http.patch("/users/me", json={"voiceprint_id": said}, headers=as_mal)
            for said in ("josé", "José")
        ]
        page = await _settings_form(http, base, tokens[mal], voiceprint_id="jOSÉ")
        allowed = await http.post("/xiaozhi/devices/aa:00:00:00:00:01/allow", headers=as_mal)
        assert allowed.status_code == 200, allowed.text
        mine = (await http.get("/users/me", headers=as_mal)).json()["voiceprint_id"]
        # jo's own voice, however the model writes it, at the greeting door and /mcp/voice.
        greeted = await http.post("/voice/greeting", json={"voiceprint_id": "José"}, headers=as_jo)
        heard = [
            await _voice(base, tokens[jo], "what_needs_me", speaker=s) for s in ("José", "JOSÉ")
        ]
    for answer in taken:
        assert answer.status_code == 422, answer.text
        [error] = answer.json()["detail"]
        assert error["loc"] == ["body", "voiceprint_id"] and "choose another" in error["msg"]
    assert "cannot be used as a voiceprint id: choose another" in page, page[-500:]
    assert mine is None
    assert greeted.status_code == 200 and greeted.json()["outcome"] == "unavailable", greeted.text
    assert heard == ["现在没有需要你处理的事，不过你还没有任务在看着。"] * 2, heard
    for said in ("José", "JOSÉ", "josé"):
        speaker = await resolve_speaker(db, jo, said, approvers={})
        assert speaker.kind == SpeakerKind.OWNER and speaker.user is not None, said
        assert speaker.user.name == jo


async def test_the_owner_as_a_role_word_cannot_be_taken_by_one_user_from_everyone(
    settings: Settings, dev_env: WorkflowEnvironment, db: Database
) -> None:
    """ "主人"/"owner" is what a model writes for a speaker's owner where no voiceprint names
    anyone: a member who took it as their voiceprint id (or a user registered as 'owner') was
    that word for every other user, whose own speaker then answered them as a stranger."""
    ann, mal = unique("ann"), unique("mal")
    async with _api(settings, dev_env) as (base, http):
        admin = await admin_headers(settings)
        tokens = {}
        for name in (ann, mal):
            made = await http.post("/users", json={"name": name}, headers=admin)
            assert made.status_code == 201, made.text
            tokens[name] = made.json()["token"]
        as_mal = {"Authorization": f"Bearer {tokens[mal]}"}
        refused = [
            await http.patch("/users/me", json={"voiceprint_id": word}, headers=as_mal)
            for word in ("主人", "Owner", " owner ")
        ]
        page = await _settings_form(http, base, tokens[mal], voiceprint_id="主人")
        named = await http.post("/users", json={"name": "owner"}, headers=admin)
        opened = await http.post(
            "/register", data={"name": "owner"}, headers={"Origin": base, "accept-language": "en"}
        )
        heard = await _voice(base, tokens[ann], "what_needs_me", speaker="主人")
    for answer in refused:
        assert answer.status_code == 422, answer.text
        [error] = answer.json()["detail"]
        assert error["loc"] == ["body", "voiceprint_id"], error
        assert "a voice model calls a speaker's owner so" in error["msg"], error
    assert "a voice model calls a speaker's owner so" in page, page[-500:]
    assert named.status_code == 422 and named.json()["detail"][0]["loc"] == ["body", "name"]
    assert opened.status_code == 422 and "owner" in html.unescape(opened.text)
    assert heard == "现在没有需要你处理的事，不过你还没有任务在看着。" != UNKNOWN_SPEAKER, heard
    for word in ("主人", "owner"):
        assert (await resolve_speaker(db, ann, word, approvers={})).kind == SpeakerKind.OWNER
