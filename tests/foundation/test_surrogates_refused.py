"""A lone UTF-16 surrogate ("\\ud800" in JSON: valid JSON, no UTF-8) is refused naming where it
is, at the API and in MCP tool arguments, before anything reaches the database."""

from __future__ import annotations

from mcp import Client

from ambient.deps import WorkerDeps
from api.app import create_app
from tests.conftest import unique
from tests.discussions.test_scoping import _server
from tests.discussions.test_tools import _users
from tests.support.servers import http_client, serve

SAYS = "holds a lone UTF-16 surrogate (U+D800-U+DFFF), which is no text"


async def test_a_lone_surrogate_in_a_body_or_a_tool_argument_is_refused_by_name(
    deps: WorkerDeps,
) -> None:
    me = unique("sur")
    tokens = await _users(deps, me)
    body = '{"channels": [{"type": "webhook", "target": "https://example.com/\\ud800"}]}'
    async with (
        serve(create_app(deps.settings)) as base,
        http_client(base) as http,
    ):
        # Was a 500 "internal error": the text reached the database, which could not encode it.
        push = await http.put(
            "/users/me/push",
            content=body.encode(),
            headers={"Authorization": f"Bearer {tokens[me]}", "content-type": "application/json"},
        )
        kept = await http.get("/users/me", headers={"Authorization": f"Bearer {tokens[me]}"})
    assert push.status_code == 422, push.text
    [error] = push.json()["detail"]
    assert error["loc"] == ["body", "channels", 0, "target"] and error["msg"] == SAYS, error
    assert "example.com" not in kept.text
    # Was "Error executing tool send_message" (and read_discussion): nothing a caller can act on.
    async with Client(_server(deps, me)) as mcp:
        said = {}
        for tool, args, where in (
            ("send_message", {"from_id": me, "topic": "t\ud800", "content": "c"}, "topic"),
            ("read_discussion", {"discussion_id": "d\ud800"}, "discussion_id"),
        ):
            result = await mcp.call_tool(tool, args)
            assert result.is_error
            said[tool] = [getattr(c, "text", None) for c in result.content]
            assert said[tool] == [
                f"Error executing tool {tool}: invalid arguments — {where}: {SAYS}"
            ], said
        listed = await mcp.call_tool("list_discussions", {})
    assert listed.structured_content is not None
    assert listed.structured_content["discussions"] == []
