"""A token is one user's at every door, checked at every call: an open MCP session hears a
demotion or a rotation at its next call, and a device token opens no user's door (nor a user's
token a device's)."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from ambient.settings import Settings
from api.app import create_app
from tests.conftest import unique
from tests.support.admins import admin_headers
from tests.support.servers import http_client, serve

MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


def _settings(settings: Settings, dev_env: WorkflowEnvironment) -> Settings:
    address = dev_env.client.service_client.config.target_host
    return settings.model_copy(update={"temporal_address": address})


async def _refusal(client: Client, tool: str, **args: Any) -> str:
    result = await client.call_tool(tool, args)
    assert result.is_error, result.structured_content
    return " ".join(getattr(c, "text", "") for c in result.content)


async def test_an_open_mcp_session_hears_a_demotion_and_a_rotated_token_at_its_next_call(
    settings: Settings, dev_env: WorkflowEnvironment
) -> None:
    settings = _settings(settings, dev_env)
    ada, bob = unique("ada"), unique("bob")
    async with serve(create_app(settings)) as base, http_client(base) as http:
        operator = await admin_headers(settings)
        tokens = {}
        for name, role in ((ada, "admin"), (bob, "member")):
            made = await http.post("/users", json={"name": name, "role": role}, headers=operator)
            tokens[name] = made.json()["token"]
        ada_headers = {"Authorization": f"Bearer {tokens[ada]}"}
        async with httpx2.AsyncClient(headers=ada_headers, trust_env=False, timeout=60) as h:
            async with Client(streamable_http_client(f"{base}/mcp", http_client=h)) as session:
                opened = await session.call_tool("list_events", {"user": bob})
                assert not opened.is_error, opened.content
                demoted = await http.patch(
                    f"/users/{ada}/permissions", json={"role": "member"}, headers=operator
                )
                assert demoted.status_code == 200, demoted.text
                # The same session, the next call: the role is read from the database.
                said = await _refusal(session, "list_events", user=bob)
                assert "only an admin reads another user's records" in said
                said = await _refusal(
                    session, "grant_permission", user_name=bob, rollback_permission="none"
                )
                assert "Only an admin may grant permissions" in said
                rotated = await http.post("/users/me/token", headers=ada_headers)
                assert rotated.status_code == 200
                with pytest.raises(MCPError):
                    await session.call_tool("whoami", {})
        # Nor does the rotated token open a new session; the new one does.
        listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        for path in ("/mcp", "/mcp/voice"):
            old = await http.post(path, json=listing, headers={**ada_headers, **MCP_HEADERS})
            assert old.status_code == 401, (path, old.text)
        new = {"Authorization": f"Bearer {rotated.json()['token']}"}
        async with httpx2.AsyncClient(headers=new, trust_env=False, timeout=60) as h:
            async with Client(streamable_http_client(f"{base}/mcp", http_client=h)) as session:
                me = await session.call_tool("whoami", {})
        assert me.structured_content is not None
        assert (me.structured_content["name"], me.structured_content["role"]) == (ada, "member")


async def test_device_tokens_open_no_users_door_and_user_tokens_no_devices(
    settings: Settings, dev_env: WorkflowEnvironment
) -> None:
    settings = _settings(settings, dev_env).model_copy(
        update={"voice_device_tokens": {"kitchen": SecretStr(unique("operator-device"))}}
    )
    operator_device = settings.voice_device_tokens["kitchen"].get_secret_value()
    bob, mac = unique("bob"), "aa:bb:cc:dd:ee:01"
    async with serve(create_app(settings)) as base, http_client(base) as http:
        made = await http.post("/users", json={"name": bob}, headers=await admin_headers(settings))
        token = made.json()["token"]
        device = await http.post(
            "/xiaozhi/devices",
            json={"device_id": mac},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert device.status_code == 201, device.text
        device_token = device.json()["token"]
        listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        # Device tokens, and the user's token with its case changed, are no user's token.
        for wrong in (device_token, operator_device, token.upper(), token.lower()):
            bearer = {"Authorization": f"Bearer {wrong}"}
            assert (await http.get("/users/me", headers=bearer)).status_code == 401, wrong
            for path in ("/mcp", "/mcp/voice"):
                answer = await http.post(path, json=listing, headers={**bearer, **MCP_HEADERS})
                assert answer.status_code == 401, (path, wrong)
        # The user's token is not a device's: not at the context provider, not as a device
        # token at the greeting (a device token there may name anyone).
        for wrong in (token, device_token.upper()):
            context = await http.get(
                "/xiaozhi/context", headers={"device-id": mac, "Authorization": f"Bearer {wrong}"}
            )
            assert context.json()["code"] == 401, (wrong, context.text)
        for wrong in (token, device_token, operator_device.upper(), f"{operator_device}x"):
            greeting = await http.post(
                "/voice/greeting", json={"user_id": bob}, headers={"X-Device-Token": wrong}
            )
            assert greeting.status_code == 401, (wrong, greeting.text)
        # The device's own token answers for it.
        context = await http.get(
            "/xiaozhi/context",
            headers={"device-id": mac, "Authorization": f"Bearer {device_token}"},
        )
        assert (context.json()["code"], context.json()["data"]["user"]) == (0, bob)
