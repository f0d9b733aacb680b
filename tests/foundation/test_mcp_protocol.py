"""The MCP server as clients other than ours drive it: the protocol's own refusals."""

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS

from ambient.wiring import AppState, StateHolder
from mcp_server.server import build_server
from tests.foundation.test_mcp import state

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
