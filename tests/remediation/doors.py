"""A remediation steered through each door (MCP, API, web form, CLI) as one user: each door's
function answers "" when the door took the request, else what it said."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Literal
from urllib.parse import unquote

from typer.testing import CliRunner

from ambient.cli import app as cli
from ambient.settings import Settings
from ambient.wiring import AppState
from api.app import create_app
from tests.remediation.support import call, error_of, mcp
from tests.support.pages import signed_in
from tests.support.servers import http_client, serve

Door = Callable[[str, str], Awaitable[str]]
# Per action: the MCP tool and its arguments, the API's path and body, the form's notice (its
# start: an approval's names the step).
_ASKED = {
    "abort": ("abort_remediation", {}, "abort", {}, "Abort requested"),
    "approve": (
        "approve_remediation",
        {"approve": True},
        "approval",
        {"approve": True},
        "Approved step ",
    ),
}


def steering_doors(
    action: Literal["abort", "approve"],
    state: AppState,
    settings: Settings,
    tokens: dict[str, str],
    stranger: str,
) -> dict[str, Door]:
    """``action`` with the reason "via <door>", as ``user`` through each door (``stranger``'s
    MCP call is read as the tool error it is)."""
    tool, tool_args, path, body, notice = _ASKED[action]
    env = {
        "AMBIENT_DATA_DIR": str(settings.data_dir),
        "AMBIENT_TEMPORAL_ADDRESS": settings.temporal_address,
        "AMBIENT_TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
    }

    async def by_mcp(user: str, rid: str) -> str:
        async with mcp(state, user=user) as client:
            if user == stranger:
                return await error_of(client, tool, remediation_id=rid, **tool_args)
            await call(client, tool, remediation_id=rid, reason="via mcp", **tool_args)
            return ""

    async def by_api(user: str, rid: str) -> str:
        async with (
            serve(create_app(settings)) as base,
            http_client(base) as http,
        ):
            answer = await http.post(
                f"/remediations/{rid.removeprefix('remediation/')}/{path}",
                json={**body, "reason": "via api"},
                headers={"Authorization": f"Bearer {tokens[user]}"},
            )
        return "" if answer.status_code == 200 else f"{answer.status_code} {answer.text}"

    async def by_form(user: str, rid: str) -> str:
        async with signed_in(settings, tokens[user], f"/app/remediation?id={rid}") as http:
            answer = await http.post(
                "/app/remediation/action",
                data={"remediation_id": rid, "action": action, "reason": "via form"},
            )
        assert answer.status_code == 303, answer.text
        said = unquote(answer.headers["location"].partition("msg=")[2])
        return "" if said.startswith(notice) else said

    async def by_cli(user: str, rid: str) -> str:
        args = ["remediation", action, rid, "--user", user, "--reason", "via cli"]
        result = await asyncio.to_thread(CliRunner().invoke, cli, args, env=env)
        return "" if result.exit_code == 0 else " ".join(result.output.split())

    return {"mcp": by_mcp, "api": by_api, "form": by_form, "cli": by_cli}
