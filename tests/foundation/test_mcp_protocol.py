"""The MCP server as clients other than ours drive it: the protocol's own refusals."""

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, METHOD_NOT_FOUND

from ambient.settings import Settings
from ambient.storage.migrate import upgrade_async
from ambient.wiring import AppState, StateHolder
from api.app import create_app
from mcp_server.server import build_server
from mcp_server.voice import build_voice_server
from tests.foundation.test_mcp import state
from tests.support.admins import admin_headers
from tests.support.servers import http_client, serve
from tests.voice.support import assert_speakable

__all__ = ["state"]  # the fixture, shared with test_mcp


async def test_a_tools_list_cursor_the_server_never_gave_is_refused_as_invalid_params(
    state: AppState,
) -> None:
    # Spec 2025-06-18, server/utilities/pagination, "Error Handling": invalid cursors SHOULD
    # be answered with -32602. The whole list came back, as if it were the page after the cursor.
    server = build_server(state.settings, holder=StateHolder(state))
    async with Client(server) as client:
        listed = await client.list_tools()
        assert listed.next_cursor is None and len(listed.tools) > 50
        # The first call of 小智's side names an empty cursor: that is no cursor.
        first = await client.list_tools(cursor="", cache_mode="bypass")
        assert len(first.tools) == len(listed.tools)
        with pytest.raises(MCPError) as refused:
            await client.list_tools(cursor="eyJwYWdlIjogMn0=", cache_mode="bypass")
    assert refused.value.code == INVALID_PARAMS
    assert refused.value.error.message == (
        "Unknown cursor 'eyJwYWdlIjogMn0=': tools/list answers in one page, call it without one."
    )


async def test_an_unknown_prompt_is_refused_as_invalid_params(state: AppState) -> None:
    """Spec, server/prompts, "Error Handling": an invalid prompt name is -32602. It was
    JSON-RPC error 0, which a client reads as a server fault, on /mcp and /mcp/voice."""
    for build in (build_server, build_voice_server):
        async with Client(build(state.settings, holder=StateHolder(state))) as client:
            with pytest.raises(MCPError) as refused:
                await client.get_prompt("x")
        assert refused.value.code == INVALID_PARAMS, build
        assert refused.value.error.message == "Unknown prompt: x: prompts/list names the prompts"


async def test_the_voice_server_lists_its_tools_by_the_same_rules_as_the_main_one(
    state: AppState,
) -> None:
    """/mcp/voice answered a cursor it never gave with the whole list, and sent the voice model
    every turn the per-field titles /mcp leaves out."""
    server = build_voice_server(state.settings, holder=StateHolder(state))
    async with Client(server) as client:
        listed = await client.list_tools(cursor="")
        assert listed.next_cursor is None and {"greet", "recent_errors"} <= {
            tool.name for tool in listed.tools
        }
        assert "title" not in repr([tool.input_schema for tool in listed.tools])
        with pytest.raises(MCPError) as refused:
            await client.list_tools(cursor="abc", cache_mode="bypass")
    assert refused.value.code == INVALID_PARAMS
    assert refused.value.error.message == (
        "Unknown cursor 'abc': tools/list answers in one page, call it without one."
    )


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": "2024-11-05",
        "capabilities": {},
        "clientInfo": {"name": "strict-peer", "version": "1"},
    },
}


@asynccontextmanager
async def posting_to_mcp(
    settings: Settings, *, admin: bool = True
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    """The API served on loopback, a client to it and the headers an MCP POST sends (with an
    admin's token, or none)."""
    await upgrade_async(settings.resolved_database_url)
    async with (
        serve(create_app(settings)) as base,
        http_client(base) as http,
    ):
        token = await admin_headers(settings) if admin else {}
        yield (
            http,
            token
            | {
                "Accept": "application/json, text/event-stream",
                "Content-Type": "application/json",
            },
        )


# Each with a word its refusal says, the id it is answered under (null when unreadable) and
# its code: an id no request may have, a batch, a missing "jsonrpc", params that are a list,
# a response whose result is no object, an error whose code is no integer.
MALFORMED: list[tuple[Any, str, int | None, int]] = [
    ({"jsonrpc": "2.0", "id": None, "method": "tools/list"}, "id", None, -32600),
    ({"jsonrpc": "2.0", "id": 1.5, "method": "tools/list"}, "id", None, -32600),
    ({"jsonrpc": "2.0", "id": True, "method": "tools/list"}, "id", None, -32600),
    ({"jsonrpc": "2.0", "id": {"n": 1}, "method": "tools/list"}, "id", None, -32600),
    ([{"jsonrpc": "2.0", "id": 1, "method": "ping"}], "one JSON-RPC object", None, -32600),
    ({"id": 7, "method": "ping"}, "jsonrpc", 7, -32600),
    ({"jsonrpc": "2.0", "id": 8, "method": "ping", "params": [1]}, "params", 8, -32602),
    # A response or an error is refused for what its result or error lacks, not its method.
    ({"jsonrpc": "2.0", "id": 9, "result": 5}, "result: Input should be", 9, -32600),
    ({"jsonrpc": "2.0", "id": 10, "error": {"code": "x"}}, "error.code: Input", 10, -32600),
    # Nested past Python's recursion limit: still the SDK's parse error, not a 500.
    ("[" * 5000 + "]" * 5000, "Parse error", None, -32700),
]


async def test_a_malformed_message_over_http_is_answered_invalid_request_as_over_the_bridge(
    settings: Settings,
) -> None:
    """A request whose id is null, a fraction, true or an object was read as a notification:
    202 and no answer ever, where the endpoint bridge answers -32600 (a strict JSON-RPC peer
    waits for its reply). A batch or an envelope without "jsonrpc" got -32602 (invalid params)
    with pydantic's dump of four union members. Both MCP doors now answer as the bridge does:
    -32600 in one sentence (under the id when it is readable), nothing run."""
    async with posting_to_mcp(settings) as (http, headers):
        # Both MCP endpoints are stateless: each request stands alone, no session id.
        paths = ("/mcp", "/mcp/voice")
        for path, body, said, ident, code in [(p, *case) for p in paths for case in MALFORMED]:
            sent = body if isinstance(body, str) else json.dumps(body)
            answer = await http.post(path, content=sent, headers=headers)
            assert answer.status_code == 400, (path, body, answer.status_code, answer.text)
            refused = answer.json()
            assert refused["id"] == ident and refused["error"]["code"] == code, (path, refused)
            message = refused["error"]["message"]
            assert said in message and "pydantic" not in message and "\n" not in message, message
        # A notification's refusal has no id (MCP's Streamable HTTP): it was id null.
        notice = {"jsonrpc": "2.0", "method": "notifications/x", "params": [1]}
        for path in paths:
            answer = await http.post(path, json=notice, headers=headers)
            assert answer.status_code == 400 and "id" not in answer.json(), answer.text
            assert answer.json()["error"]["code"] == -32602, answer.text
        # The well-formed are served as before.
        ping = {"jsonrpc": "2.0", "id": "p-1", "method": "ping"}
        answered = await http.post("/mcp/voice", json=ping, headers=headers)
        assert answered.json() == {"jsonrpc": "2.0", "id": "p-1", "result": {}}


async def test_a_tool_call_without_a_tools_name_is_refused_naming_it(settings: Settings) -> None:
    """tools/call with its name missing, null or a number, or params null, was answered
    -32602 "Invalid request parameters", naming nothing."""
    async with posting_to_mcp(settings) as (http, headers):
        for path in ("/mcp", "/mcp/voice"):
            for params in ({"arguments": {}}, {"name": None}, {"name": 7}, None):
                call = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": params}
                posted = await http.post(path, json=call, headers=headers)
                # /mcp answers in an event stream, /mcp/voice (JSON responses) in JSON.
                data = [x for x in posted.text.splitlines() if x.startswith("data:")]
                answer = json.loads(data[0].removeprefix("data:") if data else posted.text)
                assert answer["id"] == 3 and answer["error"]["code"] == -32602, answer
                assert "params.name" in answer["error"]["message"], answer


async def test_a_malformed_message_from_an_unknown_caller_is_refused_unauthenticated(
    settings: Settings,
) -> None:
    """The malformed-message check ran before the SDK's token check: a caller without a token,
    or with a wrong one, got 400 and -32600 instead of 401 (and every unauthenticated body was
    parsed). Now the token is checked first: 401, the body unread."""
    async with posting_to_mcp(settings, admin=False) as (http, headers):
        answers = [
            await http.post(path, json=body, headers=headers | token)
            for path in ("/mcp", "/mcp/voice")
            for token in ({}, {"Authorization": "Bearer not-a-token"})
            for body, *_ in MALFORMED[:2]
        ]
    assert [a.status_code for a in answers] == [401] * 8
    # No token, no error code (RFC 6750 §3.1); a wrong one is an invalid_token.
    expected = [None, None, "invalid_token", "invalid_token"] * 2
    assert [a.json().get("error") for a in answers] == expected


async def test_a_refused_host_or_origin_is_logged_once(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Our check asked the SDK's validator, which logs, then handed the request to the SDK's
    transport, which validated and logged it again: each refusal was in the log twice."""
    async with posting_to_mcp(settings) as (http, headers):
        for path in ("/mcp", "/mcp/voice"):
            for refused, status in (
                ({"Host": "rebound.example:80"}, 421),
                ({"Origin": "http://evil.example"}, 403),
            ):
                caplog.clear()
                with caplog.at_level(logging.WARNING, logger="mcp.server.transport_security"):
                    answer = await http.post(path, content="{}", headers=headers | refused)
                assert answer.status_code == status, (path, answer.text)
                said = [r.getMessage() for r in caplog.records if "Invalid" in r.getMessage()]
                assert len(said) == 1, (path, said)


async def test_a_malformed_message_for_a_host_mcp_does_not_allow_is_refused_for_its_host(
    settings: Settings,
) -> None:
    """The malformed-message check ran before the SDK's Host and Origin checks: a wrong Host
    with a malformed body got 400 (the body) instead of 421 (DNS-rebinding protection first,
    as the SDK orders it), and a page on another origin got its body read and answered."""
    async with posting_to_mcp(settings) as (http, headers):
        for path in ("/mcp", "/mcp/voice"):
            for body, *_ in (MALFORMED[0], MALFORMED[-1]):
                sent = body if isinstance(body, str) else json.dumps(body)
                host = await http.post(
                    path, content=sent, headers=headers | {"Host": "rebound.example:80"}
                )
                assert host.status_code == 421, (path, host.status_code, host.text)
                assert "'rebound.example:80'" in host.text and "ALLOWED_HOSTS" in host.text
                origin = await http.post(
                    path, content=sent, headers=headers | {"Origin": "http://evil.example"}
                )
                assert (origin.status_code, origin.text) == (403, "Invalid Origin header")


def _body(answer: httpx.Response) -> Any:
    """A JSON-RPC answer, sent as JSON or as the one event of a server-sent stream."""
    if answer.headers["content-type"].startswith("text/event-stream"):
        data = [line[5:] for line in answer.text.splitlines() if line.startswith("data:")]
        return json.loads(data[-1])
    return answer.json()


# A tools/call whose arguments are of the wrong type, at the top or inside, with what the
# answer names: the field, or "arguments" itself when they are no object.
WRONG_ARGUMENTS: list[tuple[str, Any, str]] = [
    ("list_events", {"limit": "many"}, "limit"),
    ("list_events", {"limit": [5]}, "limit"),
    ("list_events", "limit=5", "arguments"),
    ("list_events", [5], "arguments"),
    ("list_events", 5, "arguments"),
]


async def test_a_tool_call_whose_arguments_have_the_wrong_type_gets_a_readable_tool_error(
    settings: Settings,
) -> None:
    """Arguments that were no object (a string, a list, a number) got JSON-RPC -32602 "Invalid
    request parameters": no field named, nothing a model could correct. Every such call is a
    tool error naming the field and what it takes; the voice answers it in words, not an error
    (a voice client drops an error's text)."""
    async with posting_to_mcp(settings) as (http, headers):
        for tool, arguments, field in WRONG_ARGUMENTS:
            call = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": tool, "arguments": arguments},
            }
            answer = await http.post("/mcp", json=call, headers=headers)
            assert answer.status_code == 200, (arguments, answer.status_code, answer.text)
            result = _body(answer)["result"]
            said = result["content"][0]["text"]
            assert result["isError"] is True, (arguments, result)
            assert said.startswith(f"Error executing tool {tool}: invalid arguments — "), said
            assert f"{field}:" in said and "pydantic" not in said, said
            if field == "arguments":
                assert "an object" in said and "limit" in said, said  # what it takes
        for arguments in ("hours=2", ["2"], 2):
            call = {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {"name": "recent_errors", "arguments": arguments},
            }
            answer = await http.post("/mcp/voice", json=call, headers=headers)
            assert answer.status_code == 200, (arguments, answer.text)
            result = _body(answer)["result"]
            assert not result.get("isError"), result
            assert_speakable(result["content"][0]["text"])
            said = result["content"][0]["text"]
            assert "没听清" in said or "didn't catch" in said, result


async def test_a_page_on_another_origin_is_refused_403_whatever_token_it_sends(
    settings: Settings,
) -> None:
    """Spec (basic/transports, Security Warning): servers MUST validate Origin on all incoming
    connections and answer an invalid one 403. The token was checked first: a page without
    one, or with a wrong one, got 401 (and the resource metadata's address), its Origin never
    looked at; a rebound Host got 401 too. Now Host and Origin come first, token or none."""
    async with posting_to_mcp(settings, admin=False) as (http, headers):
        for path in ("/mcp", "/mcp/voice"):
            for token in ({}, {"Authorization": "Bearer not-a-token"}):
                origin = await http.post(
                    path,
                    json=INITIALIZE,
                    headers=headers | token | {"Origin": "http://evil.example"},
                )
                assert (origin.status_code, origin.text) == (403, "Invalid Origin header"), path
                assert "www-authenticate" not in origin.headers
                host = await http.post(
                    path, json=INITIALIZE, headers=headers | token | {"Host": "rebound.example:80"}
                )
                assert host.status_code == 421 and "'rebound.example:80'" in host.text, path
            # A page on loopback is no rebinding: it is asked for its token.
            local = await http.post(
                path, json=INITIALIZE, headers=headers | {"Origin": "http://localhost:3000"}
            )
            assert local.status_code == 401, (path, local.text)


# Values a strict client's checker sends (the MCP conformance suite's): not a version, one
# before the first and one after the last.
UNSUPPORTED_VERSIONS = ("invalid-protocol-version", "2000-01-01", "2099-01-01")
SERVED_VERSIONS = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"]


async def test_an_unsupported_protocol_version_header_is_refused_naming_the_versions_served(
    settings: Settings,
) -> None:
    """Spec (basic/transports, Protocol Version Header): an invalid or unsupported
    MCP-Protocol-Version is answered 400. It was, but a request was told "params._meta must be
    an object carrying the required ... envelope keys" (the SDK routes any header it does not
    know to the 2026 envelope), and a notification that the server supports 2026-07-28 alone.
    Both now name the header, the value and every version served (in ``data`` as the SDK's own
    refusal shapes it); a served version is answered as before."""
    listing = {"jsonrpc": "2.0", "id": "v-1", "method": "tools/list"}
    notice = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    async with posting_to_mcp(settings) as (http, headers):
        for path in ("/mcp", "/mcp/voice"):
            for version in UNSUPPORTED_VERSIONS:
                sent = headers | {"MCP-Protocol-Version": version}
                for body in (listing, notice):
                    answer = await http.post(path, json=body, headers=sent)
                    assert answer.status_code == 400, (path, version, answer.text)
                    refused = answer.json()
                    assert refused.get("id") == body.get("id"), refused
                    error = refused["error"]
                    assert error["code"] == -32022, refused
                    assert error["data"] == {"supported": SERVED_VERSIONS, "requested": version}
                    said = error["message"]
                    assert f"MCP-Protocol-Version {version!r}" in said, said
                    assert all(served in said for served in SERVED_VERSIONS), said
            served = await http.post(
                path, json=listing, headers=headers | {"MCP-Protocol-Version": "2025-06-18"}
            )
            assert served.status_code == 200 and "tools" in _body(served)["result"], served.text


async def test_no_change_notifications_are_promised_or_listened_for(state: AppState) -> None:
    """The server sends no list changes: at the 2026 protocol the SDK still said
    listChanged and subscribe true (initialize said false), and held each subscriptions/listen
    stream open with nothing ever to send, as many as were asked for."""
    for build in (build_server, build_voice_server):
        async with Client(build(state.settings, holder=StateHolder(state))) as client:
            capabilities = client.server_capabilities
            assert capabilities is not None and capabilities.tools is not None, build
            assert not capabilities.tools.list_changed, capabilities
            assert capabilities.resources is None or not (
                capabilities.resources.subscribe or capabilities.resources.list_changed
            ), capabilities
            assert capabilities.prompts is None or not capabilities.prompts.list_changed
            with pytest.raises(MCPError) as refused:
                async with client.listen(tools_list_changed=True):
                    pass
        assert refused.value.code == METHOD_NOT_FOUND, build
