"""A refusal or hint names only the tools its client is served: a server built for some areas
(`ambient mcp --area`), one of the discussion servers, the voice profile. The full server's words
are the services' own."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from mcp import Client
from mcp.types import CallToolResult, TextContent
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.domain.users import Language, UserCreate
from ambient.storage.users import UserRepository
from ambient.wiring import AppState, StateHolder
from mcp_server.server import INSTRUCTIONS, build_server
from mcp_server.tools import in_served_words, tools_named
from mcp_server.voice import build_voice_server
from tests.conftest import unique


def _state(deps: WorkerDeps, env: WorkflowEnvironment, user: str) -> AppState:
    return AppState(
        settings=deps.settings,
        db=deps.db,
        temporal=env.client,
        channels=deps.channels,
        stdio_user=user,
    )


async def _user(deps: WorkerDeps, language: Language | None = None) -> str:
    name = unique("areas")
    async with deps.db.session() as session:
        user, _ = await UserRepository(session).create(UserCreate(name=name))
        user.language = language
        await session.commit()
    return name


def _text(result: CallToolResult) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


def _named(text: str) -> set[str]:
    """The tools ``text`` names (a two-or-more-word name: "greet" is a word too)."""
    return set(tools_named(text))


async def _said(client: Client, tool: str, **args: Any) -> tuple[str, set[str]]:
    """What ``tool`` answered, and the tools ``client`` is served."""
    served = {t.name for t in (await client.list_tools()).tools}
    result = await client.call_tool(tool, args)
    return _text(result), served


@pytest.mark.parametrize("language", [Language.EN, Language.ZH])
async def test_a_briefing_server_greeting_with_none_set_up_names_no_task_tool(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, language: Language
) -> None:
    """`ambient mcp --area briefing` with no model configured: greet answered "call
    create_daily_briefing", a tool of the tasks area this server does not serve."""
    assert deps.settings.llm_mode == "offline"
    user = await _user(deps, language)
    holder = StateHolder(_state(deps, dev_env, user))
    async with Client(build_server(deps.settings, holder=holder, areas=["briefing"])) as client:
        text, served = await _said(client, "greet")
        result = await client.call_tool("greet", {})
    assert "create_daily_briefing" not in served
    assert _named(text) <= served, text
    # Said in words, in the user's language; the structured answer says the same.
    words = "能创建任务的服务器" if language == Language.ZH else "a server that can create tasks"
    assert words in text, text
    assert result.structured_content is not None
    assert result.structured_content["outcome"] == "unavailable"
    assert words in result.structured_content["text"]
    # The full server serves the tool, and names it as the service does.
    async with Client(build_server(deps.settings, holder=holder)) as client:
        text, _ = await _said(client, "greet")
    assert "create_daily_briefing" in text, text


async def test_a_briefing_server_refusal_names_no_task_tool(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A briefing tool refused for want of a daily briefing said "create one with
    create_daily_briefing" on a server without the tasks area."""
    user = await _user(deps)
    holder = StateHolder(_state(deps, dev_env, user))
    async with Client(build_server(deps.settings, holder=holder, areas=["briefing"])) as client:
        text, served = await _said(client, "regenerate_briefing")
    assert text.startswith("Error executing tool regenerate_briefing: no daily briefing"), text
    assert _named(text) <= served, text
    assert "set one up from a server that can create tasks; this one cannot" in text, text
    async with Client(build_server(deps.settings, holder=holder)) as client:
        text, _ = await _said(client, "regenerate_briefing")
    assert "create one with create_daily_briefing" in text, text


@pytest.mark.parametrize(
    ("which", "tool"), [("signing", "close_discussion"), ("annotate", "annotate_discussion")]
)
async def test_a_discussion_server_refusal_names_no_bus_tool(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, which: str, tool: str
) -> None:
    """`ambient mcp --server signing|annotate`: a discussion the caller does not take part in
    was refused with "list_discussions shows yours", a tool of the bus server."""
    user = await _user(deps)
    state = _state(deps, dev_env, user)
    # `build_discussion_server` is these areas' server: it opens its own state, here the test's.
    server = build_server(deps.settings, holder=StateHolder(state), areas=[which])
    server_full = build_server(deps.settings, holder=StateHolder(state))
    async with Client(server) as client:
        text, served = await _said(client, tool, discussion_id="nope")
    assert "list_discussions" not in served
    assert text.startswith(f"Error executing tool {tool}: no discussion 'nope'"), text
    assert _named(text) <= served, text
    assert "a server with the discussion bus's reading tools lists yours" in text, text
    async with Client(server_full) as client:
        text, _ = await _said(client, tool, discussion_id="nope")
    assert "list_discussions shows yours" in text, text


async def test_the_voice_profile_names_only_its_own_tools(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Each voice tool refused (nothing set up, nothing of that name, nothing waiting) names no
    tool the voice profile lacks: what is spoken must never send the person or the voice
    model to one."""
    user = await _user(deps, Language.EN)
    holder = StateHolder(_state(deps, dev_env, user))
    calls: Iterable[tuple[str, dict[str, Any]]] = [
        ("greet", {}),
        ("what_needs_me", {}),
        ("task_status", {"name": "nothing"}),
        ("pause_task", {"name": "nothing"}),
        ("resume_task", {"name": "nothing"}),
        ("approve_remediation", {"which": "nothing"}),
        ("refuse_remediation", {"which": "nothing"}),
        ("recent_errors", {}),
        ("create_daily_briefing", {}),  # a tool of the full server, not the voice's
    ]
    async with Client(build_voice_server(deps.settings, holder=holder)) as client:
        served = {t.name for t in (await client.list_tools()).tools}
        for tool, args in calls:
            result = await client.call_tool(tool, args)
            text = _text(result)
            assert not result.is_error, (tool, text)
            assert _named(text) <= served, (tool, text)


def test_a_served_tool_stays_named_and_an_aside_naming_another_is_left_out() -> None:
    """What the server does with a text: the served tool named as the service names it, an
    aside naming one not served left out, a quoted value (an id the caller gave) kept."""
    text = (
        "this is about an earlier run of remediation/ab, which has ended; the same alert's "
        "current run is another: look at it (get_remediation) before answering it"
    )
    assert in_served_words(text, {"get_remediation"}) == text
    assert in_served_words(text, set()) == text.replace(" (get_remediation)", "")
    quoted = "no task 'list_tasks'; call list_tasks to see your task ids"
    assert in_served_words(quoted, set()) == (
        "no task 'list_tasks'; this server does not serve the tool for that"
    )
    # A sentence before the one naming it stays whole.
    two = "No briefing yet. Call create_daily_briefing to set one up."
    assert in_served_words(two, set()) == (
        "No briefing yet. Set one up from a server that can create tasks; this one cannot."
    )


async def test_the_callers_own_argument_names_and_a_spoken_briefing_are_said_as_given(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Only the service's hints are reworded. An argument named like a tool ("list_tasks") was
    refused as "this server does not serve the tool for that: not an argument of greet", the
    name it echoes gone; a spoken briefing quoting a log line that names one
    ("send_message failed …") lost that clause, its segments still saying it."""
    user = await _user(deps)
    holder = StateHolder(_state(deps, dev_env, user))
    server = build_server(deps.settings, holder=holder, areas=["briefing"])
    async with Client(server) as client:
        text, served = await _said(client, "greet", list_tasks=True)
    assert "list_tasks" not in served
    assert "invalid arguments — list_tasks: not an argument of greet" in text, text
    line = "The most frequent error was send_message failed for order <*>: upstream timeout."
    spoken = CallToolResult(
        content=[TextContent(type="text", text=line)],
        structured_content={"outcome": "spoken", "text": line, "segments": [line]},
    )
    assert server._said_result(spoken) is spoken


def test_the_instructions_name_only_what_the_server_serves(deps: WorkerDeps) -> None:
    """Every server was told "Start with get_status; every task tool takes the task_id that
    create_* tools return", a briefing-only one too (it has neither)."""
    full = build_server(deps.settings)
    assert full.instructions == INSTRUCTIONS
    briefing = build_server(deps.settings, areas=["briefing"])
    assert briefing.instructions is not None
    assert _named(briefing.instructions) == set() and "create_*" not in briefing.instructions
    tasks = build_server(deps.settings, areas=["tasks", "system"], read_only=True)
    assert tasks.instructions is not None and "get_status" in tasks.instructions
    assert "create_*" not in tasks.instructions  # read-only: none served
