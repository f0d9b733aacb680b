"""The pages speak of what is on the page, never of MCP tools (the services' words)."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import httpx
from mcp import Client
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from ambient.briefing.config import BriefingConfig
from ambient.deps import WorkerDeps
from ambient.domain.users import UserCreate
from ambient.settings import Settings
from ambient.storage.users import UserRepository
from api.app import create_app
from api.routers.page_words import what_went_wrong
from mcp_server.server import build_server
from mcp_server.tools import TOOL_NAMES
from tests.conftest import running_worker, unique
from tests.support.api_worker import api_client
from tests.support.servers import serve
from tests.voice.support import worker_state


def _shown(response: httpx.Response) -> str:
    """What the person sees: the message the redirect carries, or the page's notice (a form
    shown again with what is wrong), or the page."""
    if response.status_code == 303:
        return unquote(response.headers["location"].partition("msg=")[2])
    notice = re.search(r'<p class="notice" role="status">(.*?)</p>', response.text)
    if notice:
        return html.unescape(notice.group(1))
    return re.sub(r"<[^>]+>", " ", response.text)


async def test_pages_answer_in_their_own_words_without_tool_names(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    settings = deps.settings.model_copy(
        update={"temporal_address": dev_env.client.service_client.config.target_host}
    )
    name = unique("reader")
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name))
        await session.commit()
    async with Client(build_server(settings, stdio_user=name)) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
    async with (
        serve(create_app(settings)) as base,
        api_client(base, cookies={"ambient_token": token}, headers={"origin": base}) as http,
    ):
        seen = {
            "briefing of a day": _shown(await http.get("/app/briefings?date=2020-01-01")),
            "no briefing yet": _shown(await http.get("/app/briefings")),
            "prepare with none": _shown(
                await http.post("/app/briefings/action", data={"action": "regenerate"})
            ),
            "task of nobody": _shown(
                await http.post(
                    "/app/tasks/action",
                    data={"task_id": f"web-monitor/{name}/none", "action": "pause"},
                )
            ),
            "unknown remediation": _shown(await http.get("/app/remediation?id=nope")),
            "unknown discussion": _shown(await http.get("/app/discussion?id=nope")),
            "reply to none": _shown(
                await http.post(
                    "/app/discussions/post", data={"content": "hi", "discussion_id": "nope"}
                )
            ),
            "monitor without host": _shown(
                await http.post("/app/tasks", data={"urls": "https://a.example\nhttp:///x"})
            ),
        }
    for case, text in seen.items():
        named = sorted(tool for tool in tools if re.search(rf"\b{tool}\b", text))
        assert named == [], (case, named, text)
    assert (
        "No briefing for 2020-01-01. The days that have one are under History."
        in (seen["briefing of a day"])
    )
    # No model in tests: the assistant it sent them to answers it cannot chat.
    assert settings.llm_mode == "offline"
    assert (
        "No briefings yet. With no language model configured the assistant cannot set up your "
        "morning briefing: ask your administrator to." in seen["no briefing yet"]
    )
    assert seen["prepare with none"] == (
        "You have no morning briefing set up: nothing to prepare or send."
    )
    assert seen["task of nobody"] == "That task is not one of yours; it may have been deleted."
    assert (
        seen["unknown remediation"] == "That remediation is not one of yours, or no longer exists."
    )
    assert seen["unknown discussion"] == "That discussion does not exist."
    assert seen["reply to none"] == "That discussion does not exist."
    assert seen["monitor without host"] == (
        "Not created: Pages, line 2: must be an http(s) URL with a host, "
        "e.g. https://example.com/page"
    )


def test_a_page_drops_the_clause_naming_a_tool_and_keeps_the_advice_after_it() -> None:
    said = ValueError(
        "no task 'web-monitor/ada/x'; call list_tasks to see your task ids; nothing changed; "
        "name the one you mean by a reference only it has"
    )
    assert what_went_wrong(said, lambda text: text) == (
        "No task 'web-monitor/ada/x'; nothing changed; name the one you mean by a reference "
        "only it has"
    )


async def test_the_tool_names_pages_drop_are_the_full_servers(settings: Settings) -> None:
    """Read from the areas' registrations without building a server (that validated every
    tool's schema, about 1 s on the event loop the first time a page showed an error)."""
    names = {tool.name for tool in await build_server(settings).list_tools()}
    assert names == TOOL_NAMES


async def test_with_a_model_no_briefing_yet_sends_the_user_to_the_assistant(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    settings = deps.settings.model_copy(
        update={
            "temporal_address": dev_env.client.service_client.config.target_host,
            "openai_api_key": SecretStr("sk-test"),
        }
    )
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=unique("reader")))
        await session.commit()
    async with (
        serve(create_app(settings)) as base,
        api_client(base, cookies={"ambient_token": token}) as http,
    ):
        shown = _shown(await http.get("/app/briefings"))
    assert "No briefings yet. Ask the assistant on  Tasks &amp; events" in shown, shown


async def test_an_administrator_with_no_briefing_and_no_model_is_told_where_to_set_it_up(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """The briefings page told the administrator, the one who can set it up, to ask the
    administrator: with no model, where they set it up is the server's command line."""
    from ambient.domain.users import Role

    settings = deps.settings.model_copy(
        update={"temporal_address": dev_env.client.service_client.config.target_host}
    )
    assert settings.llm_mode == "offline"
    texts = {}
    for role in (Role.ADMIN, Role.MEMBER):
        async with deps.db.session() as session:
            _, token = await UserRepository(session).create(
                UserCreate(name=unique("reader"), role=role)
            )
            await session.commit()
        async with (
            serve(create_app(settings)) as base,
            api_client(base, cookies={"ambient_token": token}, headers={"origin": base}) as http,
        ):
            texts[role] = " ".join(_shown(await http.get("/app/briefings")).split())
    assert "create it from the server's command line" in texts[Role.ADMIN], texts
    assert "ask your administrator" not in texts[Role.ADMIN], texts
    assert "ask your administrator to." in texts[Role.MEMBER], texts


async def test_a_briefing_set_up_but_not_prepared_yet_is_said_set_up(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Carol's briefing was created by the administrator (`ambient briefing create`); before
    its first preparation her page said "ask your administrator to" set it up."""
    name = unique("carol")
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name))
        await session.commit()
    # A zone whose day's window (to 10:00) is over now: created inside it, the briefing is
    # prepared at once (a CI run at 09:00 in Berlin met it prepared).
    now = datetime.now(UTC)
    hours = next(h for h in range(-12, 15) if 13 <= (now + timedelta(hours=h)).hour < 20)
    zone = f"Etc/GMT{-hours:+d}" if hours else "UTC"
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        config = BriefingConfig(timezone=zone, prepare_at="04:30", language="en")
        await state.briefings.create(name, config)
        settings = state.settings.model_copy(
            update={"temporal_address": dev_env.client.service_client.config.target_host}
        )
        async with (
            serve(create_app(settings)) as base,
            api_client(base, cookies={"ambient_token": token}) as http,
        ):
            shown = _shown(await http.get("/app/briefings"))
        await state.briefings.delete(name)
    assert (
        "No briefings yet. Your morning briefing is set up: it is prepared each day at 04:30 "
        f"({zone})." in shown
    ), shown
