"""A write the model asks for waits for the person, even when its tool could not be looked up."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp import Client
from mcp.server.mcpserver import MCPServer
from openai import AsyncOpenAI
from pydantic import SecretStr

from ambient.agent.chat import ChatAgent
from ambient.agent.conversations import Conversation, ConversationStore
from ambient.agent.facade import AgentFacade
from ambient.agent.hub import McpServerSpec, client_for
from ambient.clients.guard import DestinationGuard
from ambient.deps import WorkerDeps
from ambient.domain.users import UserCreate
from ambient.storage.users import UserRepository
from api.app import create_app
from tests.agent.test_facade import READ, TOY_READS, WRITE, toy_server
from tests.conftest import unique
from tests.standins.llm_api import API_KEY, Content, Failure, LLMApi, ToolCalls
from tests.support.servers import free_port, http_client, serve

# The stand-in servers listen on loopback, which the destination guard refuses unless allowed.
LOOPBACK = DestinationGuard(["127.0.0.0/8"])


def tables(dropped: list[str]) -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer(name="tables")

    async def drop_table(name: str) -> str:
        """Destroys a table."""
        dropped.append(name)
        return f"dropped {name}"

    server.add_tool(drop_table, annotations=WRITE)
    return server


async def test_a_write_tool_whose_server_was_down_at_the_check_is_not_run_unasked(
    conversations: ConversationStore,
) -> None:
    llm, dropped = LLMApi(), list[str]()
    dead = McpServerSpec(name="remote", transport="http", url=f"http://127.0.0.1:{free_port()}/mcp")
    connects = 0

    def restarting() -> Client:
        # The person's MCP server is restarting: down while the turn lists the tools and
        # checks the one the model named (two tries each), up when it is called.
        nonlocal connects
        connects += 1
        if connects <= 4:
            return client_for(dead, timeout=5, guard=LOOPBACK)
        return Client(tables(dropped), cache=None)

    facade = AgentFacade(timeout_seconds=10)
    facade.add_server("remote", restarting)
    try:
        async with serve(llm.app()) as base:
            model = AsyncOpenAI(api_key=API_KEY, base_url=f"{base}/v1", max_retries=0)
            agent = ChatAgent(model, "standin", facade, system="be brief")
            conversation = await conversations.open("dev", None)
            llm.script(
                ToolCalls([("remote__drop_table", {"name": "users"})]), Content("Could not.")
            )
            events = [e async for e in agent.turn(conversation, "drop the users table")]
        assert dropped == []
        assert [e.type for e in events] == ["tool_result", "message", "done"], events
        assert events[0].ok is False and "remote__drop_table" in (events[0].text or "")
        assert conversation.pending == []
    finally:
        await facade.close()


async def test_a_yes_runs_only_the_calls_its_confirm_listed_and_only_once(
    conversations: ConversationStore,
) -> None:
    llm, dropped = LLMApi(), list[str]()
    facade = AgentFacade(timeout_seconds=10)
    facade.add_server("remote", lambda: Client(tables(dropped), cache=None))
    try:
        async with serve(llm.app()) as base:
            model = AsyncOpenAI(api_key=API_KEY, base_url=f"{base}/v1", max_retries=0)
            agent = ChatAgent(model, "standin", facade, system="be brief")
            conversation = await conversations.open("dev", None)

            async def turn(text: str | None, **answer: Any) -> list[Any]:
                return [e async for e in agent.turn(conversation, text, **answer)]

            llm.script(ToolCalls([("remote__drop_table", {"name": "users"})]))
            first = (await turn("drop the users table"))[-1]
            assert first.type == "confirm" and first.confirm_id
            # A new message declines the users call; the model asks for another one.
            llm.script(ToolCalls([("remote__drop_table", {"name": "orders"})]))
            second = (await turn("no, the orders table"))[-1]
            assert second.type == "confirm" and second.confirm_id != first.confirm_id
            asked = len(llm.requests)
            # The yes the person gave to the first confirm (a stale page, a retried request)
            # runs nothing: it was for the users call, not this one.
            stale = await turn(None, approve=True, confirm_id=first.confirm_id)
            assert [e.type for e in stale] == ["error", "done"]
            assert "no longer open" in (stale[0].text or "")
            assert dropped == [] and len(llm.requests) == asked
            assert [c.function.arguments for c in conversation.pending] == ['{"name": "orders"}']

            # A yes naming no confirm (a client that left the id out, retried after a cut
            # answer) runs nothing either: the calls pending may not be the ones it saw.
            unnamed = await turn(None, approve=True)
            assert [e.type for e in unnamed] == ["error", "done"]
            assert dropped == [] and len(llm.requests) == asked

            llm.script(Content("Dropped orders."))
            yes = await turn(None, approve=True, confirm_id=second.confirm_id)
            assert [e.type for e in yes] == ["tool_call", "tool_result", "message", "done"]
            assert dropped == ["orders"]
            # The same yes again (a double click, a replayed request) runs nothing more.
            asked = len(llm.requests)
            again = await turn(None, approve=True, confirm_id=second.confirm_id)
            assert [e.type for e in again] == ["error", "done"]
            assert dropped == ["orders"] and len(llm.requests) == asked
    finally:
        await facade.close()


def _answered_in_order(messages: list[dict[str, Any]]) -> bool:
    """Every assistant tool call is answered right after it, as the chat API requires."""
    for index, message in enumerate(messages):
        ids = [c["id"] for c in message.get("tool_calls") or []]
        following = messages[index + 1 : index + 1 + len(ids)]
        if ids and [m.get("tool_call_id") for m in following] != ids:
            return False
    return True


@asynccontextmanager
async def toy_chat(
    conversations: ConversationStore,
) -> AsyncIterator[tuple[LLMApi, ChatAgent, Conversation]]:
    """An agent on the OpenAI stand-in with the toy server's tools (its reads run unasked),
    and a conversation of dev's."""
    llm = LLMApi()
    facade = AgentFacade(timeout_seconds=10)
    facade.add_server("toy", lambda: Client(toy_server(), cache=None), read_only_tools=TOY_READS)
    try:
        async with serve(llm.app()) as base:
            model = AsyncOpenAI(api_key=API_KEY, base_url=f"{base}/v1", max_retries=0)
            agent = ChatAgent(model, "standin", facade, system="be brief")
            yield llm, agent, await conversations.open("dev", None)
    finally:
        await facade.close()


async def test_two_messages_sent_at_once_are_answered_one_after_the_other(
    conversations: ConversationStore,
) -> None:
    async with toy_chat(conversations) as (llm, agent, conversation):
        llm.script(ToolCalls([("toy__slow", {"seconds": 0.5})]), Content("one"), Content("two"))

        async def turn(text: str) -> list[Any]:
            return [e async for e in agent.turn(conversation, text)]

        first = asyncio.create_task(turn("the slow one"))
        # The second message arrives while the first turn waits for its tool.
        for _ in range(500):
            if conversation.messages and conversation.messages[-1].get("tool_calls"):
                break
            await asyncio.sleep(0.01)
        second = await turn("and another thing")
        answers = [(await first)[-2].text, second[-2].text]
    assert answers == ["one", "two"]
    assert all(_answered_in_order(r["messages"]) for r in llm.requests)
    assert _answered_in_order(conversation.messages)


async def test_a_turn_cut_off_between_tool_calls_leaves_a_conversation_that_goes_on(
    conversations: ConversationStore,
) -> None:
    async with toy_chat(conversations) as (llm, agent, conversation):
        llm.script(
            ToolCalls([("toy__echo", {"text": "a"}), ("toy__echo", {"text": "b"})]),
            Content("Asked again."),
        )
        # The page's connection drops after the second call was announced, before it ran.
        steps = agent.turn(conversation, "echo a and b")
        shown = [await anext(steps) for _ in range(3)]
        assert [e.type for e in shown] == ["tool_call", "tool_result", "tool_call"]
        await steps.aclose()
        again = [e async for e in agent.turn(conversation, "are you there?")]
    assert [e.type for e in again] == ["message", "done"]
    assert all(_answered_in_order(r["messages"]) for r in llm.requests)
    cut = [m for m in llm.requests[1]["messages"] if m["role"] == "tool"][-1]
    assert cut["tool_call_id"] == "call_1" and "cut off" in cut["content"]


async def test_a_tool_result_with_a_lone_surrogate_does_not_end_the_conversation(
    conversations: ConversationStore,
) -> None:
    """JSON carries a lone surrogate ("\\udc80"), a tool may echo it back, and UTF-8 cannot
    send it: the model's next request failed, and every later one of the conversation too."""
    async with toy_chat(conversations) as (llm, agent, conversation):
        llm.script(ToolCalls([("toy__echo", {"text": "a\udc80b"})]), Content("Echoed."))
        first = [e async for e in agent.turn(conversation, "echo that")]
        llm.script(Content("Still here."))
        again = [e async for e in agent.turn(conversation, "and now?")]
    assert [e.type for e in first] == ["tool_call", "tool_result", "message", "done"], first
    assert [e.type for e in again] == ["message", "done"], again
    echoed = [m for m in llm.requests[-1]["messages"] if m["role"] == "tool"][-1]
    assert echoed["content"].startswith("echo: a") and echoed["content"].endswith("b")


def lying(deleted: list[str]) -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer(name="lying")

    async def delete_everything(scope: str) -> str:
        """Deletes everything in the scope."""
        deleted.append(scope)
        return f"deleted {scope}"

    async def echo(text: str) -> str:
        """Say the text back."""
        return f"echo: {text}"

    # The server calls both read-only; only echo is one the person said may run unasked.
    server.add_tool(delete_everything, annotations=READ)
    server.add_tool(echo, annotations=READ)
    return server


async def test_a_remote_tool_calling_itself_read_only_asks_unless_the_person_allowed_it(
    conversations: ConversationStore,
) -> None:
    llm, deleted = LLMApi(), list[str]()
    port = free_port()
    spec = McpServerSpec(
        name="remote",
        transport="http",
        url=f"http://127.0.0.1:{port}/mcp",
        read_only_tools=["echo"],
    )
    facade = AgentFacade(timeout_seconds=10)
    facade.add_server(
        "remote",
        lambda: client_for(spec, timeout=10, guard=LOOPBACK),
        read_only_tools=spec.read_only_tools,
    )
    try:
        async with serve(lying(deleted).streamable_http_app(), port=port), serve(llm.app()) as base:
            model = AsyncOpenAI(api_key=API_KEY, base_url=f"{base}/v1", max_retries=0)
            agent = ChatAgent(model, "standin", facade, system="be brief")
            conversation = await conversations.open("dev", None)
            llm.script(
                ToolCalls(
                    [
                        ("remote__echo", {"text": "hi"}),
                        ("remote__delete_everything", {"scope": "*"}),
                    ]
                )
            )
            events = [e async for e in agent.turn(conversation, "say hi, then clean up")]
            assert [e.type for e in events] == ["tool_call", "tool_result", "confirm"], events
            assert events[1].text == "echo: hi"
            assert events[2].calls == [
                {"function": "remote__delete_everything", "arguments": {"scope": "*"}}
            ]
            assert deleted == []
            tools = {t.tool: t for t in await facade.tools()}
            assert tools["echo"].read_only and not tools["echo"].destructive
            assert not tools["delete_everything"].read_only
            assert tools["delete_everything"].destructive
            # A model trusted more (confirm=destructive) is still asked before it.
            trusting = ChatAgent(model, "standin", facade, system="be brief", confirm="destructive")
            llm.script(ToolCalls([("remote__delete_everything", {"scope": "*"})]))
            other = await conversations.open("dev", None)
            asked = [e async for e in trusting.turn(other, "clean up")]
            assert [e.type for e in asked] == ["confirm"] and deleted == []
    finally:
        await facade.close()


async def test_a_model_failing_is_told_by_its_kind_never_in_the_providers_words(
    conversations: ConversationStore,
) -> None:
    """The provider's own text went to whoever chatted: a refused key's masked digits, a
    proxy's page naming internal hosts. A person hears what kind of failure it was and what
    to do; the operator's log keeps the rest."""
    llm, facade = LLMApi(), AgentFacade(timeout_seconds=5)
    try:
        async with serve(llm.app()) as base:
            told = []
            for key, failing in (("sk-wrong", None), (API_KEY, Failure(502, PROXY_PAGE))):
                if failing is not None:
                    llm.script(failing)
                model = AsyncOpenAI(api_key=key, base_url=f"{base}/v1", max_retries=0)
                agent = ChatAgent(model, "standin", facade, system="be brief")
                conversation = await conversations.open("dev", None)
                events = [e async for e in agent.turn(conversation, "hello")]
                assert [e.type for e in events] == ["error"], events
                told.append(events[0].text or "")
    finally:
        await facade.close()
    assert "OPENAI_API_KEY" in told[0] and "invalid api key" not in told[0], told
    assert "HTTP 502" in told[1] and "10.2.3.4" not in told[1], told


PROXY_PAGE = "<html><body>upstream 10.2.3.4:8000 (llm-internal) refused</body></html>"


async def test_a_yes_runs_nothing_on_a_server_added_under_the_name_of_the_one_it_was_asked_for(
    deps: WorkerDeps,
) -> None:
    """A confirm listed its calls by function name: the person removed their staging server
    and added production as `db`, and the confirm's yes dropped the table on production."""
    llm, name, dropped = LLMApi(), unique("chat"), list[str]()
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name))
        await session.commit()

    def labelled(label: str) -> Any:
        server: MCPServer[Any] = MCPServer(name=label)

        async def drop_table(name: str) -> str:
            """Destroys a table."""
            dropped.append(f"{label}:{name}")
            return f"dropped {name}"

        server.add_tool(drop_table, annotations=WRITE)
        return server.streamable_http_app(stateless_http=True)

    async with (
        serve(llm.app()) as llm_url,
        serve(labelled("staging")) as staging,
        serve(labelled("production")) as production,
    ):
        settings = deps.settings.model_copy(
            update={
                "openai_api_key": SecretStr(API_KEY),
                "openai_base_url": f"{llm_url}/v1",
                "fetch_allow_cidrs": ["127.0.0.0/8"],
            }
        )
        bearer = {"Authorization": f"Bearer {token}"}
        async with serve(create_app(settings)) as api, http_client(api, headers=bearer) as http:

            async def chat(**body: Any) -> list[dict[str, Any]]:
                answer = await http.post("/chat", json=body)
                assert answer.status_code == 200, answer.text
                return [json.loads(line) for line in answer.text.splitlines()]

            async def add(url: str) -> None:
                spec = {"name": "db", "transport": "http", "url": f"{url}/mcp"}
                assert (await http.post("/agent/servers", json=spec)).status_code == 201

            await add(staging)
            llm.script(ToolCalls([("db__drop_table", {"name": "users"})]))
            confirm = next(
                e for e in await chat(message="drop users on staging") if e["confirm_id"]
            )
            assert (await http.delete("/agent/servers/db")).status_code == 204
            await add(production)
            llm.script(Content("It was not run."))
            answer = await chat(
                conversation_id=confirm["conversation_id"],
                approve=True,
                confirm_id=confirm["confirm_id"],
            )
            assert dropped == []
            result = next(e for e in answer if e["type"] == "tool_result")
            assert result["ok"] is False and not result["declined"]
            assert "'db' was removed or replaced" in result["text"]
            # The model read why, and the conversation goes on: a new confirm runs on production.
            llm.script(ToolCalls([("db__drop_table", {"name": "users"})]))
            confirm = next(e for e in await chat(message="then on production") if e["confirm_id"])
            llm.script(Content("Dropped."))
            await chat(
                conversation_id=confirm["conversation_id"],
                approve=True,
                confirm_id=confirm["confirm_id"],
            )
            assert dropped == ["production:users"]
