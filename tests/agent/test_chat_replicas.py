"""Chat conversations across API replicas: two stores (each its own Database, as two processes
have) on one app database, SQLite and PostgreSQL; the model is the OpenAI stand-in."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from mcp import Client
from mcp.server.mcpserver import MCPServer
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageFunctionToolCall
from pydantic import SecretStr
from sqlalchemy import event, select, update

from ambient.agent.chat import CUT_OFF, ChatAgent, ChatEvent
from ambient.agent.conversations import BUSY, UNSTORED, Conversation, ConversationStore
from ambient.agent.facade import AgentFacade
from ambient.agent.hub import McpServerSpec, client_for
from ambient.deps import WorkerDeps
from ambient.domain.users import UserCreate
from ambient.settings import Settings
from ambient.status import DATABASE_DOWN
from ambient.storage import Database
from ambient.storage.migrate import upgrade_async
from ambient.storage.models import ChatConversation, utcnow
from ambient.storage.users import UserRepository
from api.app import create_app
from tests.agent.test_chat_confirm import LOOPBACK, tables
from tests.agent.test_facade import READ, WRITE, toy_server
from tests.conftest import unique
from tests.foundation.test_postgres import postgres_url  # noqa: F401 - the fixture
from tests.standins.llm_api import API_KEY, Content, LLMApi, ToolCalls
from tests.support.api_replicas import STARTUP_SECONDS
from tests.support.servers import free_port, http_client, serve
from tests.support.waits import HANG, eventually

ROOT = Path(__file__).resolve().parents[2]
NO_LONGER_OPEN = "That confirmation is no longer open"
DROP_USERS = ToolCalls([("remote__drop_table", {"name": "users"})])


@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def app_database(request: pytest.FixtureRequest, settings: Settings) -> str:
    """The URL of the test's migrated app database: its SQLite file, then a PostgreSQL."""
    if request.param == "sqlite":
        return settings.resolved_database_url
    url: str = request.getfixturevalue("postgres_url")
    await upgrade_async(url)
    return url


@asynccontextmanager
async def replicas(
    url: str, count: int = 2, **options: Any
) -> AsyncIterator[list[ConversationStore]]:
    """``count`` API replicas' conversation stores on the app database at ``url``, each with a
    Database of its own (its engine and pool, as a process has); ``options`` for each store."""
    dbs = [Database(url) for _ in range(count)]
    try:
        yield [ConversationStore(db, **options) for db in dbs]
    finally:
        for db in dbs:
            await db.close()


@asynccontextmanager
async def agents(
    llm: LLMApi,
    server: Callable[[], MCPServer[Any]],
    count: int = 2,
    read_only_tools: Sequence[str] = (),
) -> AsyncIterator[list[ChatAgent]]:
    """``count`` replicas' chat agents: one model endpoint (``llm``), each its own connection
    to the person's MCP server "remote" (``server()``: each a server sharing what the test
    looks at), whose ``read_only_tools`` run unasked."""
    facades = [AgentFacade(timeout_seconds=10) for _ in range(count)]
    for facade in facades:
        facade.add_server(
            "remote", lambda: Client(server(), cache=None), read_only_tools=read_only_tools
        )
    try:
        async with serve(llm.app()) as base:
            model = AsyncOpenAI(api_key=API_KEY, base_url=f"{base}/v1", max_retries=0)
            yield [ChatAgent(model, "standin", f, system="be brief") for f in facades]
    finally:
        for facade in facades:
            await facade.close()


async def said(
    agent: ChatAgent, conversation: Conversation, text: str | None, **answer: Any
) -> list[ChatEvent]:
    return [e async for e in agent.turn(conversation, text, **answer)]


async def until(check: Callable[[], object], what: str, *, bound: float = HANG) -> None:
    """Wait (as ``eventually`` does) until ``check()``, a look at this process's own state."""

    async def looked() -> object:
        return check()

    await eventually(looked, what, bound=bound)


def kinds(events: list[ChatEvent]) -> list[str]:
    return [e.type for e in events]


def spoken(request: dict[str, Any]) -> list[tuple[str, str | None]]:
    """What a request to the model carried of the conversation: each message's role and text
    (a tool call's function, a tool result's content)."""
    told = []
    for message in request["messages"]:
        calls = message.get("tool_calls") or []
        text = calls[0]["function"]["name"] if calls else message.get("content")
        told.append((message["role"], text))
    return told


async def held_in_its_call(
    llm: LLMApi, agent: ChatAgent, conversation: Conversation, held: list[str]
) -> asyncio.Task[list[ChatEvent]]:
    """A first turn of ``conversation``, started and waiting in its gated tool call."""
    llm.script(ToolCalls([("remote__wait_for_gate", {})]), Content("one"))
    first = asyncio.create_task(said(agent, conversation, "wait for the gate"))
    await until(lambda: held, "the first turn in its tool call")
    return first


async def test_a_conversation_goes_on_on_another_replica_with_everything_said_before(
    app_database: str,
) -> None:
    llm, dropped = LLMApi(), list[str]()
    async with replicas(app_database) as (one, two), agents(llm, lambda: tables(dropped)) as (a, b):
        user = unique("ann")
        first = await one.open(user, None)
        llm.script(Content("Noted: the users table."))
        await said(a, first, "the table I mean is users")
        again = await two.open(user, first.id)
        llm.script(Content("You mean the users table."))
        events = await said(b, again, "which table did I mean?")
    assert again.id == first.id and {e.conversation_id for e in events} == {first.id}
    assert kinds(events) == ["message", "done"]
    assert spoken(llm.requests[1]) == [
        ("system", "be brief"),
        ("user", "the table I mean is users"),
        ("assistant", "Noted: the users table."),
        ("user", "which table did I mean?"),
    ]


async def test_a_confirm_asked_on_one_replica_and_approved_on_another_runs_its_call_once(
    app_database: str,
) -> None:
    llm, dropped = LLMApi(), list[str]()
    async with replicas(app_database) as (one, two), agents(llm, lambda: tables(dropped)) as (a, b):
        user = unique("ann")
        asked_here = await one.open(user, None)
        llm.script(DROP_USERS)
        (confirm,) = await said(a, asked_here, "drop the users table")
        assert confirm.type == "confirm" and dropped == []
        # The yes reaches the other replica (the load balancer's choice).
        llm.script(Content("Dropped users."))
        answered_there = await two.open(user, asked_here.id)
        yes = await said(b, answered_there, None, approve=True, confirm_id=confirm.confirm_id)
        assert kinds(yes) == ["tool_call", "tool_result", "message", "done"], yes
        assert dropped == ["users"] and yes[1].text == "dropped users"
        # The same yes again on the first replica (a retried request), whose copy of the
        # conversation still lists the call: read again, it runs nothing.
        asked = len(llm.requests)
        again = await said(a, asked_here, None, approve=True, confirm_id=confirm.confirm_id)
    assert kinds(again) == ["error", "done"] and NO_LONGER_OPEN in (again[0].text or "")
    assert dropped == ["users"] and len(llm.requests) == asked


async def test_two_yeses_at_once_on_two_replicas_run_the_call_once(app_database: str) -> None:
    llm, dropped = LLMApi(), list[str]()
    async with replicas(app_database) as (one, two), agents(llm, lambda: tables(dropped)) as (a, b):
        user = unique("ann")
        conversation = await one.open(user, None)
        llm.script(DROP_USERS)
        (confirm,) = await said(a, conversation, "drop the users table")
        llm.script(Content("Dropped users."))
        # Two tabs, or a retry through the other replica, both in flight.
        copies = [conversation, await two.open(user, conversation.id)]
        answers = await asyncio.gather(
            *(
                said(agent, copy, None, approve=True, confirm_id=confirm.confirm_id)
                for agent, copy in zip((a, b), copies, strict=True)
            )
        )
        assert dropped == ["users"]
        assert sorted(kinds(answer) for answer in answers) == [
            ["error", "done"],
            ["tool_call", "tool_result", "message", "done"],
        ]
        # Whichever replica ran it, the conversation has its result on both.
        for agent, copy in zip((a, b), copies, strict=True):
            llm.script(Content("Yes."))
            await said(agent, copy, "is it gone?")
            assert ("tool", "dropped users") in spoken(llm.requests[-1])
    assert dropped == ["users"]


GATE = ["wait_for_gate"]


def gate(opened: asyncio.Event, held: list[str]) -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer(name="gate")

    async def wait_for_gate() -> str:
        """Answers once the gate opens."""
        held.append("waiting")
        await opened.wait()
        return "open"

    server.add_tool(wait_for_gate, annotations=READ)
    return server


@asynccontextmanager
async def statements(db: Database, start: str, holding: str = "") -> AsyncIterator[list[str]]:
    """The statements ``db`` ran that begin with ``start`` and hold ``holding``."""
    claims: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith(start) and holding in statement:
            claims.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
    try:
        yield claims
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", seen)


async def test_two_messages_at_once_on_two_replicas_are_answered_one_after_the_other(
    app_database: str,
) -> None:
    llm, opened, held = LLMApi(), asyncio.Event(), list[str]()
    async with (
        replicas(app_database) as (one, two),
        agents(llm, lambda: gate(opened, held), read_only_tools=GATE) as (a, b),
        statements(two.db, "UPDATE chat_conversations SET holder") as claims,
    ):
        user = unique("ann")
        conversation = await one.open(user, None)
        llm.script(ToolCalls([("remote__wait_for_gate", {})]), Content("one"), Content("two"))
        first = asyncio.create_task(said(a, conversation, "wait for the gate"))
        await until(lambda: held, "the first turn in its tool call")
        second = asyncio.create_task(said(b, await two.open(user, conversation.id), "and then?"))
        # The second replica asks for the conversation and is refused while the first holds it.
        await until(lambda: len(claims) >= 2, "the second turn waiting")
        assert not second.done() and len(llm.requests) == 1
        opened.set()
        answers = [(await first)[-2].text, (await second)[-2].text]
    assert answers == ["one", "two"]
    # The second turn came after the whole first one: its call, its result and its answer.
    assert spoken(llm.requests[2]) == [
        ("system", "be brief"),
        ("user", "wait for the gate"),
        ("assistant", "remote__wait_for_gate"),
        ("tool", "open"),
        ("assistant", "one"),
        ("user", "and then?"),
    ]


async def test_a_message_while_another_replica_answers_too_long_is_told_to_send_again(
    settings: Settings,
) -> None:
    llm, opened, held = LLMApi(), asyncio.Event(), list[str]()
    url = settings.resolved_database_url
    async with (
        replicas(url, count=1) as (one,),
        replicas(url, count=1, wait_seconds=0.5) as (impatient,),
        agents(llm, lambda: gate(opened, held), read_only_tools=GATE) as (a, b),
    ):
        user = unique("ann")
        conversation = await one.open(user, None)
        first = await held_in_its_call(llm, a, conversation, held)
        there = await impatient.open(user, conversation.id)
        refused = await said(b, there, "and then?")
        assert kinds(refused) == ["error", "done"] and refused[0].text == BUSY
        assert len(llm.requests) == 1 and not first.done()
        opened.set()
        assert (await first)[-2].text == "one"
        # Sent again once the answer is there, it is answered, after it.
        llm.script(Content("two"))
        assert (await said(b, there, "and then?"))[-2].text == "two"
    # Refused, the message was not kept: it is in the conversation once, after the answer.
    assert spoken(llm.requests[-1])[1:] == [
        ("user", "wait for the gate"),
        ("assistant", "remote__wait_for_gate"),
        ("tool", "open"),
        ("assistant", "one"),
        ("user", "and then?"),
    ]


async def test_a_conversation_and_its_waiting_calls_outlive_a_restart(settings: Settings) -> None:
    llm, dropped = LLMApi(), list[str]()
    url = settings.resolved_database_url
    async with agents(llm, lambda: tables(dropped), count=1) as (agent,):
        user = unique("ann")
        async with replicas(url, count=1) as (before,):
            conversation = await before.open(user, None)
            llm.script(DROP_USERS)
            (confirm,) = await said(agent, conversation, "drop the users table")
        # The API restarted (a deploy): a new process, a new store, the same database.
        async with replicas(url, count=1) as (after,):
            kept = await after.open(user, conversation.id)
            async with after.turn(kept):
                assert (
                    kept.messages == conversation.messages and kept.confirm_id == confirm.confirm_id
                )
                assert [type(c) for c in kept.pending] == [ChatCompletionMessageFunctionToolCall]
                assert kept.pending == conversation.pending
            llm.script(Content("Dropped users."))
            yes = await said(agent, kept, None, approve=True, confirm_id=confirm.confirm_id)
    assert kinds(yes) == ["tool_call", "tool_result", "message", "done"]
    assert dropped == ["users"] and kept.id == conversation.id


async def test_a_conversation_id_is_its_users_own_on_every_replica(settings: Settings) -> None:
    llm, dropped = LLMApi(), list[str]()
    async with (
        replicas(settings.resolved_database_url) as (one, two),
        agents(llm, lambda: tables(dropped)) as (a, b),
    ):
        ann, bob = unique("ann"), unique("bob")
        hers = await one.open(ann, None)
        llm.script(Content("Noted."))
        await said(a, hers, "my secret is 42")
        # Bob names her conversation (a shared link, a guess): a new one of his own.
        his = await two.open(bob, hers.id)
        llm.script(Content("I do not know."))
        await said(b, his, "what is the secret?")
        assert his.id != hers.id and ("user", "my secret is 42") not in spoken(llm.requests[-1])
        # Hers goes on, on either replica, untouched by his.
        llm.script(Content("42."))
        await said(b, await two.open(ann, hers.id), "what is my secret?")
    assert spoken(llm.requests[-1])[1:] == [
        ("user", "my secret is 42"),
        ("assistant", "Noted."),
        ("user", "what is my secret?"),
    ]


async def _idle(db: Database, conversation_id: str, hours: float) -> None:
    """The conversation's last turn ``hours`` ago."""
    async with db.writing() as session:
        await session.execute(
            update(ChatConversation)
            .where(ChatConversation.id == conversation_id)
            .values(updated_at=utcnow() - timedelta(hours=hours))
        )


async def _kept(db: Database) -> set[str]:
    async with db.session() as session:
        return set(await session.scalars(select(ChatConversation.id)))


async def test_a_conversation_idle_six_hours_is_gone_and_a_user_keeps_their_newest(
    settings: Settings,
) -> None:
    async with replicas(settings.resolved_database_url, kept_per_user=3) as (one, two):
        ann, bob = unique("ann"), unique("bob")
        stale, fresh = await one.open(ann, None), await one.open(ann, None)
        await _idle(one.db, stale.id, 6.1)
        await _idle(one.db, fresh.id, 5.9)
        assert (await two.open(ann, fresh.id)).id == fresh.id
        renewed = await two.open(ann, stale.id)
        # A new conversation in its place; the idle one is gone from the database.
        assert renewed.id not in (stale.id, fresh.id)
        assert await _kept(two.db) == {fresh.id, renewed.id}
        # A user's fourth conversation drops their oldest, not another user's.
        his = await two.open(bob, None)
        newer = [(await one.open(ann, None)).id for _ in range(2)]
        assert await _kept(one.db) == {renewed.id, *newer, his.id}
        assert (await one.open(ann, fresh.id)).id != fresh.id


async def test_a_conversation_begun_on_one_api_replica_goes_on_on_another(
    deps: WorkerDeps,
) -> None:
    llm, name = LLMApi(), unique("chat")
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name))
        await session.commit()
    async with serve(llm.app()) as llm_url:
        settings = deps.settings.model_copy(
            update={"openai_api_key": SecretStr(API_KEY), "openai_base_url": f"{llm_url}/v1"}
        )
        # Two API processes behind one load balancer: each its own app, one app database.
        async with (
            serve(create_app(settings)) as one,
            serve(create_app(settings)) as two,
            http_client(headers={"Authorization": f"Bearer {token}"}) as http,
        ):

            async def post(base: str, **body: Any) -> list[dict[str, Any]]:
                response = await http.post(f"{base}/chat", json=body)
                assert response.status_code == 200, response.text
                return [json.loads(line) for line in response.text.splitlines()]

            llm.script(Content("Noted: the users table."))
            first = await post(one, message="the table I mean is users")
            conversation = first[0]["conversation_id"]
            llm.script(Content("You mean the users table."))
            second = await post(
                two, message="which table did I mean?", conversation_id=conversation
            )
    assert [(e["type"], e["conversation_id"]) for e in second] == [
        ("message", conversation),
        ("done", conversation),
    ]
    assert spoken(llm.requests[1])[1:] == [
        ("user", "the table I mean is users"),
        ("assistant", "Noted: the users table."),
        ("user", "which table did I mean?"),
    ]


def hanging_tables(dropped: list[str], released: asyncio.Event) -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer(name="tables")

    async def drop_table(name: str) -> str:
        """Destroys a table."""
        dropped.append(name)
        await released.wait()  # the replica that called is killed before it hears back
        return f"dropped {name}"

    server.add_tool(drop_table, annotations=WRITE)
    return server


@contextmanager
def replica_process(config: dict[str, Any], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A replica answering a confirm (tests.agent.chat_replica) in a process of its own, its
    output to ``log``; killed (-9) when the block ends."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMBIENT_", "OPENAI_"))}
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.agent.chat_replica", json.dumps(config)],
            env={**env, "PYTHONPATH": str(ROOT)},
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()


async def test_a_replica_killed_while_its_approved_call_runs_leaves_the_call_run_once(
    settings: Settings, tmp_path: Path
) -> None:
    """The yes reaches a replica that runs the call and is killed (-9) before it stores the
    result: the same yes on another replica, or the next message, runs nothing again."""
    llm, dropped, released = LLMApi(), list[str](), asyncio.Event()
    port = free_port()
    spec = McpServerSpec(name="remote", transport="http", url=f"http://127.0.0.1:{port}/mcp")
    facade = AgentFacade(timeout_seconds=10)
    facade.add_server("remote", lambda: client_for(spec, timeout=10, guard=LOOPBACK))
    url, log = settings.resolved_database_url, tmp_path / "replica.log"
    try:
        async with (
            serve(hanging_tables(dropped, released).streamable_http_app(), port=port),
            serve(llm.app()) as llm_url,
            replicas(url, count=1) as (here,),
        ):
            try:
                model = AsyncOpenAI(api_key=API_KEY, base_url=f"{llm_url}/v1", max_retries=0)
                agent = ChatAgent(model, "standin", facade, system="be brief")
                user = unique("ann")
                conversation = await here.open(user, None)
                llm.script(DROP_USERS)
                (confirm,) = await said(agent, conversation, "drop the users table")
                config = {
                    "database_url": url,
                    "llm_url": f"{llm_url}/v1",
                    "mcp_url": spec.url,
                    "user": user,
                    "conversation_id": conversation.id,
                    "confirm_id": confirm.confirm_id,
                    "lease_seconds": 1.0,
                }
                with replica_process(config, log) as replica:
                    await until(
                        lambda: dropped or replica.poll() is not None,
                        "the other replica running the call",
                        # A new process importing the agent's stack: 14-17 s at load 10-15.
                        bound=STARTUP_SECONDS,
                    )
                    assert dropped == ["users"], log.read_text()
                # The same yes here (this copy still lists the call), once the dead replica's
                # hold ran out: nothing runs.
                again = await said(
                    agent, conversation, None, approve=True, confirm_id=confirm.confirm_id
                )
                assert kinds(again) == ["error", "done"], again
                assert NO_LONGER_OPEN in (again[0].text or "")
                llm.script(Content("It may not have run; check before dropping again."))
                after = await said(agent, conversation, "did it work?")
            finally:
                released.set()  # the dead replica's call, still waiting in the server
    finally:
        await facade.close()
    assert kinds(after) == ["message", "done"] and dropped == ["users"]
    # The model reads that the call's answer never came, not that it is still to run.
    assert spoken(llm.requests[-1])[1:] == [
        ("user", "drop the users table"),
        ("assistant", "remote__drop_table"),
        ("tool", CUT_OFF),
        ("user", "did it work?"),
    ]


async def test_servers_added_changed_or_removed_through_one_api_replica_hold_on_another(
    deps: WorkerDeps,
) -> None:
    name, port = unique("servers"), free_port()
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name))
        await session.commit()
    settings = deps.settings.model_copy(update={"fetch_allow_cidrs": ["127.0.0.0/8"]})
    toy = {"name": "toy", "transport": "http", "url": f"http://127.0.0.1:{port}/mcp"}
    async with (
        serve(toy_server().streamable_http_app(), port=port),
        serve(create_app(settings)) as one,
        serve(create_app(settings)) as two,
        http_client(headers={"Authorization": f"Bearer {token}"}) as http,
    ):

        async def unasked(base: str) -> dict[str, bool]:
            """The toy server's tools the chat on ``base`` offers, and which run unasked."""
            listed = (await http.get(f"{base}/agent/tools")).json()
            return {t["tool"]: t["read_only"] for t in listed["tools"] if t["server"] == "toy"}

        assert await unasked(two) == {}  # the second replica's agent, made before the add
        added = await http.post(f"{one}/agent/servers", json={**toy, "read_only_tools": ["echo"]})
        assert added.status_code == 201, added.text
        assert (await unasked(two))["echo"] is True
        # The person takes echo back: it asks first, whichever replica the next turn is on.
        changed = await http.patch(f"{one}/agent/servers/toy", json={"read_only_tools": []})
        assert changed.status_code == 200, changed.text
        assert not any((await unasked(two)).values())
        assert (await http.delete(f"{one}/agent/servers/toy")).status_code == 204
        assert await unasked(two) == {}


async def test_a_turn_whose_database_stops_answering_ends_with_an_error_saying_so() -> None:
    # The conversation was opened; the database went away before its turn began.
    llm, gone = LLMApi(), Database(f"postgresql+asyncpg://ambient@127.0.0.1:{free_port()}/app")
    try:
        async with agents(llm, lambda: tables([]), count=1) as (agent,):
            store = ConversationStore(gone)
            conversation = Conversation(id=unique("c"), user="ann", store=store)
            events = await said(agent, conversation, "hello")
    finally:
        await gone.close()
    assert kinds(events) == ["error", "done"] and llm.requests == []
    # Said in a chat user's terms: where the database is (its host and port) is the log's.
    assert events[0].text == f"{UNSTORED}: {DATABASE_DOWN}", events
