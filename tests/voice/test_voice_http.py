"""/mcp/voice over real HTTP as xiaozhi-server's client uses it, and the context provider."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy import update
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.migrate import upgrade_async
from ambient.storage.models import XiaozhiDevice
from api.app import create_app
from tests.remediation.support import run_row
from tests.standins.xiaozhi_server import fetch_all
from tests.support.admins import admin_headers
from tests.support.servers import HANG, http_client, serve
from tests.voice.support import UNREACHED, assert_speakable, register, voice_api
from tests.voice.test_voice_arguments import SPAN_AGAIN

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def _message(method: str, id_: int | str | None = None, **params: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
    if id_ is not None:
        message["id"] = id_
    return message


INITIALIZE = _message(
    "initialize",
    0,
    protocolVersion="2024-11-05",
    capabilities={},
    clientInfo={"name": "xiaozhi-mcp-client", "version": "1.0.0"},
)


def _result(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = json.loads(response.text)
    return body


async def fetch(providers: list[dict[str, Any]], device_id: str) -> tuple[str, list[str]]:
    """xiaozhi-server's context fetch, waiting as long as a loaded host needs: these tests check
    what the speaker is told; its 3 s budget is bench/xiaozhi_voice.py's figure."""
    return await asyncio.to_thread(fetch_all, providers, device_id, HANG)


async def test_pipelined_requests_without_a_session_id_all_work_with_the_users_token(
    settings: Settings,
) -> None:
    async with voice_api(settings) as (_, http):
        me = await register(http, settings, "voiceuser")
        headers = {**ACCEPT, **me}
        # xiaozhi-server sends these three at once, without waiting and without Mcp-Session-Id.
        initialized, listed, started = await asyncio.gather(
            http.post("/mcp/voice", json=_message("notifications/initialized"), headers=headers),
            http.post("/mcp/voice", json=_message("tools/list", 1), headers=headers),
            http.post("/mcp/voice", json=INITIALIZE, headers=headers),
        )
        assert initialized.status_code == 202, initialized.text
        assert _result(started)["result"]["serverInfo"]["name"] == "ambient-voice"
        assert "mcp-session-id" not in started.headers
        tools = _result(listed)["result"]["tools"]
        assert len(tools) <= 10 and {"greet", "what_needs_me"} <= {t["name"] for t in tools}
        assert len(listed.content) <= 8 * 1024

        # A call is one request too; the answer is words in content[0].text.
        called = await http.post(
            "/mcp/voice",
            json=_message("tools/call", "a1b2_n_3", name="recent_errors", arguments={}),
            headers=headers,
        )
        answer = _result(called)
        assert answer["id"] == "a1b2_n_3"
        assert_speakable(answer["result"]["content"][0]["text"])

        anonymous = await http.post("/mcp/voice", json=INITIALIZE, headers=ACCEPT)
        assert anonymous.status_code == 401
        # The tokens are ours, not OAuth's: no OAuth metadata is named or served.
        assert anonymous.headers["www-authenticate"] == 'Bearer realm="ambient-ops"'
        for path in (
            "/.well-known/oauth-protected-resource/mcp/voice",
            "/.well-known/oauth-protected-resource/mcp",
        ):
            assert (await http.get(path)).status_code == 404
        wrong = await http.post(
            "/mcp/voice", json=INITIALIZE, headers={**ACCEPT, "Authorization": "Bearer nope"}
        )
        assert wrong.status_code == 401
        # The full server is still where it was, stateless too: its tools listed at once.
        full = await http.post("/mcp", json=_message("tools/list", 2), headers=headers)
        assert full.status_code == 200 and "mcp-session-id" not in full.headers, full.text
        (data,) = [line[5:] for line in full.text.splitlines() if line.startswith("data:")]
        assert len(json.loads(data)["result"]["tools"]) > len(tools), data


async def test_a_client_writing_nulls_or_a_byte_order_mark_is_answered_at_both_http_doors(
    settings: Settings,
) -> None:
    """As the bridge answers them: the SDK refused a call whose ``_meta`` it could not read
    (-32602 "Invalid request parameters") and a body starting with a byte order mark (400)."""
    async with voice_api(settings) as (_, http):
        headers = {**ACCEPT, **await register(http, settings, "nullwriter")}
        for path in ("/mcp/voice", "/mcp"):
            for n, meta in enumerate(({"agentId": 42, "progressToken": None}, "agent-42", None)):
                listed = await http.post(
                    path, json=_message("tools/list", n, cursor=None, _meta=meta), headers=headers
                )
                assert listed.status_code == 200 and '"tools"' in listed.text, (path, listed.text)
            ping = json.dumps(_message("ping", 9)).encode()
            pinged = await http.post(path, content=b"\xef\xbb\xbf" + ping, headers=headers)
            assert pinged.status_code == 200 and '"result":{}' in pinged.text, (path, pinged.text)


async def test_a_get_of_an_mcp_endpoint_is_answered_405_at_once_not_held_open(
    settings: Settings,
) -> None:
    """A browser or curl opening /mcp/voice (Accept */*) got the SDK's SSE stream for a
    server's own messages, which a stateless endpoint never sends: the request hung (its pings
    kept any read timeout from firing). Streamed, so such a stream fails the status check at
    once; the deadline only turns a hang into a failure."""
    async with voice_api(settings) as (_, http):
        me = await register(http, settings, "browser")
        for path in ("/mcp/voice", "/mcp"):
            for accept in ("*/*", "text/html,*/*;q=0.8", "text/event-stream"):
                async with (
                    asyncio.timeout(HANG),
                    http.stream("GET", path, headers={**me, "Accept": accept}) as got,
                ):
                    assert got.status_code == 405, (path, accept, got.headers)
                    await got.aread()
                assert got.headers["allow"] == "POST"
                error = got.json()["error"]
                assert error["message"].startswith("Method Not Allowed: this MCP endpoint")
                assert "send JSON-RPC requests by POST" in error["message"]
            # A session's end (DELETE) too: a stateless endpoint has none, and takes POST alone.
            ended = await http.delete(path, headers=me)
            assert (ended.status_code, ended.headers["allow"]) == (405, "POST"), path
            assert "POST only; it has no session to end" in ended.json()["error"]["message"]
        # Who is not known is still told so first.
        anonymous = await http.get("/mcp/voice")
        assert anonymous.status_code == 401, anonymous.text


async def test_the_context_provider_answers_a_registered_device_and_refuses_others(
    settings: Settings,
) -> None:
    async with voice_api(settings) as (_, http):
        me = await register(http, settings, "kitchen")
        other = await register(http, settings, "neighbour")
        bad = await http.post("/xiaozhi/devices", json={"device_id": "no spaces!"}, headers=me)
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "device_id"]
        # Written as a MAC but none (a typo): registered, it matched no wake ever.
        for typo in ("zz:bb:cc:dd:ee:ff", "aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee:ff:00"):
            bad = await http.post("/xiaozhi/devices", json={"device_id": typo}, headers=me)
            assert bad.status_code == 422 and "is no MAC" in bad.text, (typo, bad.text)
            assert bad.json()["detail"][0]["loc"] == ["body", "device_id"]
        added = await http.post(
            "/xiaozhi/devices", json={"device_id": "AA:BB:CC:DD:EE:01"}, headers=me
        )
        assert added.status_code == 201, added.text
        device = added.json()
        assert device["device_id"] == "aa:bb:cc:dd:ee:01" and device["user"] == "kitchen"
        taken = await http.post(
            "/xiaozhi/devices", json={"device_id": "aa:bb:cc:dd:ee:01"}, headers=other
        )
        assert taken.status_code == 422 and "registered to another user" in taken.text
        not_yours = await http.post(
            "/xiaozhi/devices",
            json={"device_id": "aa:bb:cc:dd:ee:02", "user": "kitchen"},
            headers=other,
        )
        assert not_yours.status_code == 403

        # Someone else's consent is theirs to give: the owner cannot name them.
        named = await http.post(
            "/xiaozhi/devices",
            json={"device_id": "aa:bb:cc:dd:ee:03", "speakers": ["neighbour"]},
            headers=me,
        )
        assert named.status_code == 403 and "allow" in named.text
        # A speaker is a user name: a megabyte of one is refused by its place, not quoted back.
        huge = await http.post(
            "/xiaozhi/devices",
            json={"device_id": "aa:bb:cc:dd:ee:04", "speakers": ["n" * 100_000]},
            headers=await admin_headers(settings),
        )
        assert huge.status_code == 422 and len(huge.text) < 2_000, huge.text[:300]
        assert huge.json()["detail"][0]["loc"] == ["body", "speakers", 0]
        allowed = await http.post("/xiaozhi/devices/aa:bb:cc:dd:ee:01/allow", headers=other)
        assert allowed.status_code == 200 and allowed.json()["speakers"] == ["neighbour"]
        withdrawn = await http.delete(f"/xiaozhi/devices/{device['id']}/allow", headers=other)
        assert withdrawn.status_code == 200 and withdrawn.json()["speakers"] == []

        wake = {"device-id": "AA:BB:CC:DD:EE:01", "Authorization": f"Bearer {device['token']}"}
        context = await http.get("/xiaozhi/context", headers=wake)
        assert context.status_code == 200, context.text
        body = context.json()
        assert body["code"] == 0
        assert body["data"]["assistant_name"] == "小智" and body["data"]["user"] == "kitchen"
        assert body["data"]["briefing_ready"] is False and body["data"]["open_alerts"] == 0
        assert body["data"]["approvals_waiting"] == 0

        for headers in (
            {"device-id": "aa:bb:cc:dd:ee:01", "Authorization": "Bearer wrong"},
            {"device-id": "aa:bb:cc:dd:ee:99", "Authorization": f"Bearer {device['token']}"},
            {"device-id": "aa:bb:cc:dd:ee:01"},
        ):
            refused = await http.get("/xiaozhi/context", headers=headers)
            # A 200 whose code is not 0: xiaozhi-server logs the msg and goes on without data.
            assert refused.status_code == 200
            assert refused.json()["code"] == 401 and "data" not in refused.json()
            assert refused.json()["msg"]
        missing = await http.get("/xiaozhi/context", headers={"Authorization": "Bearer x"})
        assert missing.json()["code"] == 400

        assert [d["device_id"] for d in (await http.get("/xiaozhi/devices", headers=me)).json()]
        assert (await http.get("/xiaozhi/devices", headers=other)).json() == []
        stranger = await http.delete(f"/xiaozhi/devices/{device['id']}", headers=other)
        assert stranger.status_code == 404
        removed = await http.delete("/xiaozhi/devices/aa:bb:cc:dd:ee:01", headers=me)
        assert removed.status_code == 200
        gone = await http.get("/xiaozhi/context", headers=wake)
        assert gone.json()["code"] == 401


def test_devices_are_added_listed_and_removed_from_the_command_line(
    settings: Settings, tmp_path: Path
) -> None:
    from ambient.cli import app as cli

    env = {"AMBIENT_DATA_DIR": str(settings.data_dir)}
    runner = CliRunner()
    assert runner.invoke(cli, ["user", "create", "lin"], env=env).exit_code == 0
    added = runner.invoke(
        cli, ["xiaozhi", "device", "add", "--user", "lin", "AA:BB:CC:00:00:07"], env=env
    )
    assert added.exit_code == 0, added.output
    token = added.output.strip().splitlines()[-1]
    assert token.startswith("xzd_")
    listed = runner.invoke(cli, ["xiaozhi", "device", "list", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert [(r["device_id"], r["user"]) for r in rows] == [("aa:bb:cc:00:00:07", "lin")]
    assert token not in listed.output and "token" not in rows[0]
    unknown_user = runner.invoke(
        cli, ["xiaozhi", "device", "add", "--user", "nobody", "aa:bb:cc:00:00:08"], env=env
    )
    assert (unknown_user.exit_code, unknown_user.stdout) == (1, "")
    assert unknown_user.stderr == (
        "no user 'nobody': an admin registers it (ambient user create nobody)\n"
    )
    removed = runner.invoke(cli, ["xiaozhi", "device", "remove", str(rows[0]["id"])], env=env)
    assert removed.exit_code == 0 and "removed" in removed.output
    assert (
        json.loads(runner.invoke(cli, ["xiaozhi", "device", "list", "--json"], env=env).output)
        == []
    )


async def test_the_context_still_answers_when_temporal_does_not(settings: Settings) -> None:
    """Open runs need Temporal to tell which wait for approval; when it is down the count is
    unknown (null) and every other fact is there, within xiaozhi-server's 3 s."""
    from ambient import temporal
    from ambient.domain.users import UserCreate
    from ambient.remediation.service import RemediationService
    from ambient.storage import Database
    from ambient.storage.users import UserRepository
    from ambient.xiaozhi import DeviceService
    from ambient.xiaozhi_context import voice_facts

    await upgrade_async(settings.resolved_database_url)
    db = Database(settings.resolved_database_url)
    try:
        async with db.session() as session:
            user, _ = await UserRepository(session).create(UserCreate(name="yun"))
            session.add(
                run_row(
                    "remediation/f00d",
                    "yun",
                    "run1",
                    cluster_id="cls-test01",
                    service="cls-test01/prod/checkout",
                    source="manual",
                )
            )
            await session.commit()
            lead, _ = await UserRepository(session).create(UserCreate(name="lead"))
            bystander, _ = await UserRepository(session).create(UserCreate(name="bystander"))
            await session.commit()
        await DeviceService(db).add("yun", "yun", "aa:bb:cc:dd:ee:10")
        down = settings.model_copy(
            update={
                "temporal_address": "127.0.0.1:1",
                "remediation_approvers": {"cls-test*": ["lead"]},
            }
        )
        client = await temporal.connect(down, lazy=True)
        runs = RemediationService(client, down, db)
        facts = await voice_facts(db, user, runs, budget=0.3)
        # The approver named for its cluster counts it as "what needs me" lists it; another
        # member does not.
        theirs = await voice_facts(db, lead, runs, budget=0.3)
        others = await voice_facts(db, bystander, runs, budget=0.3)
    finally:
        await db.close()
    assert facts.open_alerts == 1 and facts.approvals_waiting is None
    assert facts.user == "yun" and facts.briefing_ready is False
    assert theirs.open_alerts == 1 and others.open_alerts == 0


async def test_the_official_mcp_client_over_streamable_http_speaks_with_the_voice_tools(
    settings: Settings,
) -> None:
    """As xiaozhi-server's settings-file client connects: url + headers, streamable HTTP."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async with voice_api(settings) as (base, http):
        me = await register(http, settings, "hua")
        async with (
            httpx2.AsyncClient(timeout=HANG, headers=me, trust_env=False) as client_http,
            Client(streamable_http_client(f"{base}/mcp/voice", http_client=client_http)) as client,
        ):
            tools = (await client.list_tools()).tools
            result = await client.call_tool("recent_errors", {"hours": 12})
            # A span in the user's words is read as hours, one past a week as the week; one
            # that says none is asked again.
            spoken = await client.call_tool("recent_errors", {"hours": "过去两天"})
            past_a_week = await client.call_tool("recent_errors", {"hours": 500})
            no_span = await client.call_tool("recent_errors", {"hours": "soon"})
    assert len(tools) <= 10
    assert not result.is_error
    text = getattr(result.content[0], "text", "")
    assert_speakable(text)
    # The tests' Temporal is unreachable: no task runs, and that is said with the span read.
    assert text == f"最近 12 小时没有记录到错误{UNREACHED}"
    assert getattr(spoken.content[0], "text", "") == f"最近两天没有记录到错误{UNREACHED}"
    assert getattr(past_a_week.content[0], "text", "") == f"最近 7 天没有记录到错误{UNREACHED}"
    assert not no_span.is_error
    assert getattr(no_span.content[0], "text", "") == SPAN_AGAIN


async def test_a_member_cannot_walk_device_numbers_to_learn_whose_speakers_hear_whom(
    settings: Settings,
) -> None:
    """Allowing a device is one's own consent to a speaker one can name (its MAC): a device's
    number walked from 1 told a stranger every speaker's MAC, owner and who else it answers."""
    async with voice_api(settings) as (_, http):
        bob = await register(http, settings, "bob-den")
        alice = await register(http, settings, "alice-den")
        mallory = await register(http, settings, "mallory-den")
        mac = "aa:bb:cc:dd:ee:42"
        device = (await http.post("/xiaozhi/devices", json={"device_id": mac}, headers=bob)).json()
        assert (await http.post(f"/xiaozhi/devices/{mac}/allow", headers=alice)).status_code == 200

        walked = await http.post(f"/xiaozhi/devices/{device['id']}/allow", headers=mallory)
        assert walked.status_code == 404, walked.text
        assert mac not in walked.text and "alice-den" not in walked.text
        [listed] = (await http.get("/xiaozhi/devices", headers=bob)).json()
        assert listed["speakers"] == ["alice-den"]

        # Named by its MAC, mallory allows it for herself and hears of no one else's consent.
        named = await http.post(f"/xiaozhi/devices/{mac}/allow", headers=mallory)
        assert named.status_code == 200
        assert named.json() == {
            "device_id": mac,
            "speakers": ["mallory-den"],
            "allowed": True,
        }
        [listed] = (await http.get("/xiaozhi/devices", headers=bob)).json()
        assert listed["speakers"] == ["alice-den", "mallory-den"]


async def test_a_device_token_with_letters_beyond_ascii_is_a_wrong_token_not_a_crash(
    settings: Settings,
) -> None:
    """A device configured with a pasted token (a full-width character, a trailing "。")."""
    settings = settings.model_copy(
        update={"voice_device_tokens": {"kitchen": SecretStr("device-secret-1")}}
    )
    async with voice_api(settings) as (_, http):
        for token in ("device-secret-1。", "设备"):
            answer = await http.post(
                "/voice/greeting",
                json={"user_id": "anyone"},
                headers={"X-Device-Token": token.encode()},
            )
            assert answer.status_code == 401, answer.text


async def test_the_context_provider_reads_the_bearer_scheme_in_any_case(
    settings: Settings,
) -> None:
    """xiaozhi-server sends the configured headers as they are written in its config.yaml, and
    the scheme of an Authorization header is case-insensitive (RFC 9110), as every other door
    of ours reads it: 'bearer xzd_…' was refused as a wrong device token."""
    async with voice_api(settings) as (_, http):
        me = await register(http, settings, "study")
        device = (
            await http.post("/xiaozhi/devices", json={"device_id": "aa:bb:cc:dd:ee:21"}, headers=me)
        ).json()
        for scheme in ("Bearer", "bearer", "BEARER"):
            token = f"{scheme} {device['token']}"
            wake = {"device-id": "aa:bb:cc:dd:ee:21", "Authorization": token}
            answer = (await http.get("/xiaozhi/context", headers=wake)).json()
            assert answer["code"] == 0 and answer["data"]["user"] == "study", (scheme, answer)


async def test_the_context_provider_answers_at_its_url_with_a_trailing_slash(
    settings: Settings,
) -> None:
    """A context_providers url copied with a trailing slash: the app answered 404, which
    xiaozhi-server logs as '请求失败: 404' and wakes without context (its plain GET would follow
    no redirect either); /mcp/voice takes either form."""
    async with voice_api(settings) as (_, http):
        me = await register(http, settings, "attic")
        device = (
            await http.post("/xiaozhi/devices", json={"device_id": "aa:bb:cc:dd:ee:31"}, headers=me)
        ).json()
        wake = {"device-id": "aa:bb:cc:dd:ee:31", "Authorization": f"Bearer {device['token']}"}
        answer = await http.get("/xiaozhi/context/", headers=wake)
        assert answer.status_code == 200, answer.status_code
        assert answer.json()["code"] == 0 and answer.json()["data"]["user"] == "attic"


async def test_a_device_id_header_longer_than_any_id_is_no_registered_device(
    settings: Settings,
) -> None:
    """A device-id of a registered 64-character id and more was cut to its first 64 and taken
    as that device."""
    async with voice_api(settings) as (_, http):
        me = await register(http, settings, "hall")
        long_id = "d" * 64
        device = (
            await http.post("/xiaozhi/devices", json={"device_id": long_id}, headers=me)
        ).json()
        for sent, code in ((long_id, 0), (long_id + "-x", 401)):
            wake = {"device-id": sent, "Authorization": f"Bearer {device['token']}"}
            answer = (await http.get("/xiaozhi/context", headers=wake)).json()
            assert answer["code"] == code, (sent, answer)


async def test_a_mac_registered_in_another_notation_is_the_device_xiaozhi_names(
    settings: Settings,
) -> None:
    """The firmware sends its MAC as aa:bb:cc:dd:ee:ff; a MAC copied from a router page or a
    label as AA-BB-CC-DD-EE-FF (or aabb.ccdd.eeff, AABBCCDDEEFF) was stored as typed, so the
    device was registered and every wake was refused as an unknown device."""
    async with voice_api(settings) as (_, http):
        me = await register(http, settings, "porch")
        for typed, mac in (
            ("AA-BB-CC-DD-EE-51", "aa:bb:cc:dd:ee:51"),
            ("aabb.ccdd.ee52", "aa:bb:cc:dd:ee:52"),
            ("AABBCCDDEE53", "aa:bb:cc:dd:ee:53"),
            # Huawei and H3C (display mac-address), HP and Aruba: stored as typed, refused.
            ("AABB-CCDD-EE54", "aa:bb:cc:dd:ee:54"),
            ("aabbcc-ddee55", "aa:bb:cc:dd:ee:55"),
        ):
            added = await http.post("/xiaozhi/devices", json={"device_id": typed}, headers=me)
            assert added.status_code == 201 and added.json()["device_id"] == mac, added.text
            wake = {"device-id": mac, "Authorization": f"Bearer {added.json()['token']}"}
            answer = (await http.get("/xiaozhi/context", headers=wake)).json()
            assert answer["code"] == 0, (typed, answer)
        twice = await http.post(
            "/xiaozhi/devices", json={"device_id": "aa:bb:cc:dd:ee:51"}, headers=me
        )
        assert twice.status_code == 422 and "already registered" in twice.text
        # an id that is no MAC is kept as it is (lowercase), as before
        other = await http.post("/xiaozhi/devices", json={"device_id": "web-test-1"}, headers=me)
        assert other.json()["device_id"] == "web-test-1"
        # A row an earlier release stored as typed is the device the firmware names.
        legacy = await http.post(
            "/xiaozhi/devices", json={"device_id": "aa:bb:cc:dd:ee:56"}, headers=me
        )
        db = Database(settings.resolved_database_url)
        try:
            async with db.session() as session:
                await session.execute(
                    update(XiaozhiDevice)
                    .where(XiaozhiDevice.device_id == "aa:bb:cc:dd:ee:56")
                    .values(device_id="aabb-ccdd-ee56")
                )
                await session.commit()
        finally:
            await db.close()
        wake = {
            "device-id": "aa:bb:cc:dd:ee:56",
            "Authorization": f"Bearer {legacy.json()['token']}",
        }
        assert (await http.get("/xiaozhi/context", headers=wake)).json()["code"] == 0
        # Registered again while that row stands: a second row of one device, and the
        # firmware's wake matched either (its owner's token refused half the time).
        again = await http.post(
            "/xiaozhi/devices", json={"device_id": "AA-BB-CC-DD-EE-56"}, headers=me
        )
        assert again.status_code == 422 and "already registered" in again.text, again.text


async def test_a_mac_copied_from_the_mqtt_client_id_is_the_device_xiaozhi_names(
    settings: Settings,
) -> None:
    """Over MQTT a 小智 writes its MAC with underscores (client id GID_test@@@aa_bb_cc_dd_ee_ff@@@…,
    topic devices/p2p/aa_bb_cc_dd_ee_ff: the firmware's log and the gateway's show it so), while
    xiaozhi-server's context request names it aa:bb:cc:dd:ee:ff. A MAC copied from there was
    stored as typed: registered (201), and every wake refused as an unknown device."""
    async with voice_api(settings) as (base, http):
        me = await register(http, settings, "attic")
        added = await http.post(
            "/xiaozhi/devices", json={"device_id": "AA_BB_CC_DD_EE_61"}, headers=me
        )
        assert added.status_code == 201, added.text
        assert added.json()["device_id"] == "aa:bb:cc:dd:ee:61", added.text
        token = {"Authorization": f"Bearer {added.json()['token']}"}
        context, logged = await fetch(
            [{"url": f"{base}/xiaozhi/context", "headers": token}], "aa:bb:cc:dd:ee:61"
        )
        assert logged == [] and "- **user：** attic" in context, logged
        # the same MAC named with underscores is the same device, whichever side writes it so
        again = await http.post(
            "/xiaozhi/devices", json={"device_id": "aa:bb:cc:dd:ee:61"}, headers=me
        )
        assert again.status_code == 422 and "already registered" in again.text


async def test_the_greeting_door_knows_a_voiceprint_id_whatever_its_case(
    settings: Settings, dev_env: WorkflowEnvironment
) -> None:
    """The voice tools match a voiceprint id case-insensitively (and the database keeps it
    unique so): /voice/greeting answered the same speaker 422 'no user has this voiceprint id'."""
    settings = settings.model_copy(
        update={
            "temporal_address": dev_env.client.service_client.config.target_host,
            "voice_device_tokens": {"hall": SecretStr("device-secret-2")},
        }
    )
    async with (
        serve(create_app(settings)) as base,
        http_client(base, timeout=20) as http,
    ):
        admin = await admin_headers(settings)
        made = await http.post(
            "/users", json={"name": "lin", "voiceprint_id": "VP-Lin"}, headers=admin
        )
        assert made.status_code in (200, 201), made.text
        device = {"X-Device-Token": "device-secret-2"}
        for said in ("VP-Lin", "vp-lin", " vp-LIN "):
            answer = await http.post(
                "/voice/greeting", json={"voiceprint_id": said}, headers=device
            )
            assert answer.status_code == 200, (said, answer.text)
            # Known as lin, who has no daily briefing yet.
            assert answer.json()["outcome"] == "unavailable"
        stranger = await http.post(
            "/voice/greeting", json={"voiceprint_id": "vp-mei"}, headers=device
        )
        assert stranger.status_code == 422
        assert stranger.json()["detail"][0]["loc"][-1] == "voiceprint_id"
        # A user without a voiceprint id is known by their name, as the voice tools' speaker
        # is (docs/xiaozhi.md: "mei,mei,梅工"): this door answered it 422 as nobody's voice.
        made = await http.post("/users", json={"name": "mei"}, headers=admin)
        assert made.status_code == 201, made.text
        named = await http.post("/voice/greeting", json={"voiceprint_id": "Mei"}, headers=device)
        assert named.status_code == 200 and named.json()["outcome"] == "unavailable", named.text


async def test_a_member_greeting_by_voiceprint_learns_nothing_of_anothers_voice(
    settings: Settings, dev_env: WorkflowEnvironment
) -> None:
    """A member's token on /voice/greeting with someone else's voiceprint id was answered 403
    "greeting for 'lin' needs the admin role", and with an id nobody has 422 "no user has this
    voiceprint id": any member could tell which voiceprint ids exist and whose they are. Every
    id but the member's own is now refused alike, naming nobody; their own still greets."""
    settings = settings.model_copy(
        update={"temporal_address": dev_env.client.service_client.config.target_host}
    )
    async with voice_api(settings) as (_, http):
        admin = await admin_headers(settings)
        for name in ("lin", "kai"):
            made = await http.post(
                "/users", json={"name": name, "voiceprint_id": f"vp-{name}"}, headers=admin
            )
            assert made.status_code == 201, made.text
        kai = {"Authorization": f"Bearer {made.json()['token']}"}
        answers = [
            await http.post("/voice/greeting", json={"voiceprint_id": said}, headers=kai)
            for said in ("vp-lin", "VP-LIN", "vp-nobody")
        ]
        assert {(a.status_code, a.text) for a in answers} == {
            (answers[0].status_code, answers[0].text)
        }
        assert answers[0].status_code == 403 and "lin" not in answers[0].text, answers[0].text
        own = await http.post("/voice/greeting", json={"voiceprint_id": "VP-Kai"}, headers=kai)
        assert own.status_code == 200 and own.json()["outcome"] == "unavailable", own.text


async def test_one_context_provider_config_answers_each_of_the_owners_speakers(
    settings: Settings,
) -> None:
    """xiaozhi-server sends the same configured headers for every device it serves (its
    context_providers are the server's or the agent's, not a device's): the second speaker of a
    household woke without context, logged as 'unknown device or wrong device token'. A device
    token answers for every device of its owner, and for nobody else's; a speaker the owner has
    not registered yet was logged with the same words, as if the token were wrong."""
    async with voice_api(settings) as (base, http):
        me = await register(http, settings, "flat")
        other = await register(http, settings, "upstairs")
        macs = ["aa:bb:cc:dd:ee:61", "aa:bb:cc:dd:ee:62"]
        tokens = []
        for mac in macs:
            added = await http.post("/xiaozhi/devices", json={"device_id": mac}, headers=me)
            assert added.status_code == 201, added.text
            tokens.append(added.json()["token"])
        theirs = await http.post(
            "/xiaozhi/devices", json={"device_id": "aa:bb:cc:dd:ee:63"}, headers=other
        )
        assert theirs.status_code == 201, theirs.text

        # config.yaml names one token, the first device's (as docs/xiaozhi.md step 4 shows)
        providers = [
            {"url": f"{base}/xiaozhi/context", "headers": {"Authorization": f"Bearer {tokens[0]}"}}
        ]
        for mac in macs:
            context, logged = await fetch(providers, mac)
            assert logged == [] and "- **user：** flat" in context, (mac, logged)
        # the other user's speaker, asked with our token: nothing of theirs, and (as for a
        # speaker of ours not registered yet) what to do, not "wrong token" with a right one
        not_ours = (
            "device %s is not one of flat's devices: register it"
            " (POST /xiaozhi/devices, or ambient xiaozhi device add)"
        )
        for mac in ("aa:bb:cc:dd:ee:63", "AA-BB-CC-DD-EE-64"):
            context, logged = await fetch(providers, mac)
            said = not_ours % mac.lower().replace("-", ":")
            assert context == "" and logged == [f"API {base}/xiaozhi/context 返回错误码: {said}"]
        # a token that is no device's says so, whatever the device
        wrong = [{"url": providers[0]["url"], "headers": {"Authorization": "Bearer xzd_nope"}}]
        context, logged = await fetch(wrong, macs[0])
        assert context == "" and logged == [
            f"API {base}/xiaozhi/context 返回错误码: wrong device token: send the token shown"
            " when one of your devices was registered"
        ]
        # their own token answers for their own device only
        theirs_config = [
            {"url": providers[0]["url"], "headers": {"Authorization": theirs.json()["token"]}}
        ]
        context, _ = await fetch(theirs_config, "aa:bb:cc:dd:ee:63")
        assert "- **user：** upstairs" in context
        context, _ = await fetch(theirs_config, macs[1])
        assert context == ""


async def test_a_device_number_past_the_databases_range_is_no_device_at_every_door(
    settings: Settings,
) -> None:
    """A number too long for the database (a MAC's digits typed as a number, a paste) or a
    digit beyond ASCII ('²') names no device: they crashed the CLI with a traceback
    (OverflowError, ValueError); the API answered '²' with a 500."""
    from ambient.cli import app as cli

    async with voice_api(settings) as (_, http):
        me = await register(http, settings, "ned")
        added = await http.post(
            "/xiaozhi/devices", json={"device_id": "aa:bb:cc:00:00:09"}, headers=me
        )
        assert added.status_code == 201, added.text
        for ref in ("99999999999999999999999", "²"):
            gone = await http.delete(f"/xiaozhi/devices/{ref}", headers=me)
            assert gone.status_code == 404, gone.text
            allowed = await http.post(f"/xiaozhi/devices/{ref}/allow", headers=me)
            assert allowed.status_code == 404, allowed.text
        env = {"AMBIENT_DATA_DIR": str(settings.data_dir)}
        runner = CliRunner()
        for ref in ("99999999999999999999999", "²"):
            removed = await asyncio.to_thread(
                runner.invoke, cli, ["xiaozhi", "device", "remove", ref], env=env
            )
            assert (removed.exit_code, removed.stderr) == (1, f"no device {ref!r} among yours\n")
        [left] = (await http.get("/xiaozhi/devices", headers=me)).json()
        assert left["device_id"] == "aa:bb:cc:00:00:09"


def test_a_reference_naming_two_devices_is_refused_and_removes_neither(
    settings: Settings,
) -> None:
    """'2' was both device 2's number and another device's id: remove took whichever row the
    database gave first, silently. Now it names both and removes nothing."""
    from ambient.cli import app as cli

    env = {"AMBIENT_DATA_DIR": str(settings.data_dir)}
    runner = CliRunner()
    assert runner.invoke(cli, ["user", "create", "lin"], env=env).exit_code == 0
    for device in ("2", "aa:bb:cc:00:00:0b"):  # ids 1 and 2
        added = runner.invoke(cli, ["xiaozhi", "device", "add", "--user", "lin", device], env=env)
        assert added.exit_code == 0, added.output
    removed = runner.invoke(cli, ["xiaozhi", "device", "remove", "2"], env=env)
    assert removed.exit_code == 1, removed.output
    assert removed.stderr == (
        "'2' names 2 devices: device 1 (2), device 2 (aa:bb:cc:00:00:0b); "
        "nothing changed; name the one you mean by a reference only it has\n"
    )
    listed = json.loads(runner.invoke(cli, ["xiaozhi", "device", "list", "--json"], env=env).output)
    assert len(listed) == 2
    gone = runner.invoke(cli, ["xiaozhi", "device", "remove", "aa:bb:cc:00:00:0b"], env=env)
    assert gone.exit_code == 0, gone.output


async def test_a_host_mcp_does_not_allow_is_refused_naming_the_setting_that_allows_it(
    settings: Settings,
) -> None:
    # xiaozhi-server behind another host name: the operator reads this answer in its log.
    await upgrade_async(settings.resolved_database_url)
    async with (
        serve(create_app(settings)) as base,
        http_client(base) as http,
    ):
        me = await register(http, settings, "hostuser")
        for path in ("/mcp/voice", "/mcp"):
            refused = await http.post(
                path,
                json=INITIALIZE,
                headers={**ACCEPT, **me, "Host": "ambient.example.internal:8000"},
            )
            assert refused.status_code == 421, refused.text
            assert "ambient.example.internal:8000" in refused.text
            assert "AMBIENT_MCP_ALLOWED_HOSTS" in refused.text
    # The name as the docs say it, without a port: that host at any port (and at none).
    allowed = settings.model_copy(update={"mcp_allowed_hosts": ["ambient.example.internal"]})
    async with serve(create_app(allowed)) as base, http_client(base) as http:
        me = await register(http, allowed, "hostuser2")
        for host in ("ambient.example.internal:8000", "ambient.example.internal"):
            answered = await http.post(
                "/mcp/voice", json=INITIALIZE, headers={**ACCEPT, **me, "Host": host}
            )
            assert answered.status_code == 200, answered.text
        other = await http.post(
            "/mcp/voice", json=INITIALIZE, headers={**ACCEPT, **me, "Host": "evil.example:8000"}
        )
        assert other.status_code == 421, other.text
