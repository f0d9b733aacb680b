"""A chat turn's hold on its conversation: lost while the turn runs, let go when it ends, and
the clock it runs by; two replicas' stores on one app database, the model the OpenAI stand-in."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import text, update

from ambient.agent.conversations import BUSY, TAKEN
from ambient.storage.migrate import upgrade_async
from ambient.storage.models import ChatConversation, utcnow
from tests.agent.test_chat_replicas import (  # noqa: F401 - app_database, postgres_url: fixtures
    GATE,
    agents,
    app_database,
    gate,
    held_in_its_call,
    kinds,
    postgres_url,
    replicas,
    said,
    spoken,
    statements,
    tables,
    until,
)
from tests.conftest import unique
from tests.standins.llm_api import Content, Failure, LLMApi, ToolCalls
from tests.support.servers import HANG


async def test_a_call_whose_turn_lost_its_conversation_meanwhile_is_shown_with_its_result(
    app_database: str,  # noqa: F811 - the fixture
) -> None:
    llm, opened, held = LLMApi(), asyncio.Event(), list[str]()
    async with (
        replicas(app_database, count=1) as (one,),
        agents(llm, lambda: gate(opened, held), count=1, read_only_tools=GATE) as (agent,),
    ):
        conversation = await one.open(unique("ann"), None)
        llm.script(ToolCalls([("remote__wait_for_gate", {})]), Content("never asked"))
        turn = asyncio.create_task(said(agent, conversation, "wait for the gate"))
        await until(lambda: held, "the turn in its tool call")
        # Another replica took the conversation over (this one's hold looked run out to it).
        async with one.db.writing() as session:
            await session.execute(
                update(ChatConversation)
                .where(ChatConversation.id == conversation.id)
                .values(holder="another-replica")
            )
        opened.set()
        events = await turn
    # The call ran: the person reads what it answered, then that nothing more was done.
    assert kinds(events) == ["tool_call", "tool_result", "error", "done"]
    assert (events[1].ok, events[1].text, events[2].text) == (True, "open", TAKEN)
    assert len(llm.requests) == 1


async def test_a_replica_whose_clock_runs_an_hour_ahead_waits_for_the_turn_holding_it(
    postgres_url: str,  # noqa: F811 - the fixture
) -> None:
    # Replicas on several hosts: one host's clock an hour ahead of the others'.
    await upgrade_async(postgres_url)
    llm, opened, held = LLMApi(), asyncio.Event(), list[str]()
    async with (
        replicas(postgres_url, count=1) as (one,),
        replicas(
            postgres_url, count=1, wait_seconds=0.5, clock=lambda: utcnow() + timedelta(hours=1)
        ) as (ahead,),
        agents(llm, lambda: gate(opened, held), read_only_tools=GATE) as (a, b),
    ):
        user = unique("ann")
        conversation = await one.open(user, None)
        first = await held_in_its_call(llm, a, conversation, held)
        # Its hold, renewed, has not run out: the replica ahead is told to send again.
        refused = await said(b, await ahead.open(user, conversation.id), "and then?")
        assert kinds(refused) == ["error", "done"] and refused[0].text == BUSY
        assert len(llm.requests) == 1 and not first.done()
        opened.set()
        answered = await first
    assert kinds(answered) == ["tool_call", "tool_result", "message", "done"]


async def test_a_replica_whose_clock_runs_an_hour_behind_takes_over_once_a_dead_hold_ran_out(
    postgres_url: str,  # noqa: F811 - the fixture
) -> None:
    await upgrade_async(postgres_url)
    llm = LLMApi()
    async with (
        replicas(postgres_url, count=1) as (one,),
        replicas(
            postgres_url, count=1, wait_seconds=30, clock=lambda: utcnow() - timedelta(hours=1)
        ) as (behind,),
        agents(llm, lambda: gate(asyncio.Event(), []), count=1) as (agent,),
    ):
        user = unique("ann")
        conversation = await one.open(user, None)
        # A replica with a right clock was killed mid-turn: its hold runs out in a second.
        async with one.db.writing() as session:
            await session.execute(
                update(ChatConversation)
                .where(ChatConversation.id == conversation.id)
                .values(holder="killed-replica", lease_until=utcnow() + timedelta(seconds=1))
            )
        llm.script(Content("Hello."))
        events = await said(agent, await behind.open(user, conversation.id), "hello")
    # Taken once the hold ran out, not an hour later (past the wait: told to send again).
    assert kinds(events) == ["message", "done"], events


async def test_a_turn_cut_off_while_its_database_does_not_answer_ends_without_waiting_on_it(
    postgres_url: str,  # noqa: F811 - the fixture
) -> None:
    """The person's connection drops mid-turn while the conversation's row is locked (another
    transaction, a database not answering): the request ends, and the hold runs out by itself."""
    await upgrade_async(postgres_url)
    llm, opened, held = LLMApi(), asyncio.Event(), list[str]()
    async with (
        replicas(postgres_url, count=1, lease_seconds=1.5) as (one,),
        agents(llm, lambda: gate(opened, held), count=1, read_only_tools=GATE) as (agent,),
    ):
        user = unique("ann")
        conversation = await one.open(user, None)
        llm.script(ToolCalls([("remote__wait_for_gate", {})]))
        turn = asyncio.create_task(said(agent, conversation, "wait for the gate"))
        await until(lambda: held, "the turn in its tool call")
        async with one.db.engine.connect() as locking:
            await locking.execute(
                text("SELECT id FROM chat_conversations WHERE id = :id FOR UPDATE"),
                {"id": conversation.id},
            )
            turn.cancel()
            await asyncio.wait({turn}, timeout=HANG)
            ended_while_locked = turn.done()
            await locking.rollback()
        opened.set()
        # The conversation goes on once the cut-off turn's hold ran out.
        llm.script(Content("Hello again."))
        after = await said(agent, await one.open(user, conversation.id), "still there?")
    assert ended_while_locked and turn.cancelled()
    assert kinds(after) == ["message", "done"], after


async def test_a_turn_writes_its_messages_when_they_changed_not_again_as_it_ends(
    app_database: str,  # noqa: F811 - the fixture
) -> None:
    llm = LLMApi()
    async with (
        replicas(app_database) as (one, two),
        agents(llm, lambda: tables([])) as (a, b),
        statements(one.db, "UPDATE chat_conversations SET", "messages=") as writes,
    ):
        user = unique("ann")
        conversation = await one.open(user, None)
        # Answered: the messages stored with the answer, the turn's end gives the hold back only.
        llm.script(Content("Hi."))
        await said(a, conversation, "hello")
        assert len(writes) == 1
        # The model failing: what the turn added (the person's words) is stored as it ends.
        llm.script(Failure(500, "overloaded"))
        failed = await said(a, conversation, "are you there?")
        assert kinds(failed) == ["error"] and len(writes) == 2
        llm.script(Content("Yes."))
        await said(b, await two.open(user, conversation.id), "hello?")
    assert spoken(llm.requests[-1])[1:] == [
        ("user", "hello"),
        ("assistant", "Hi."),
        ("user", "are you there?"),
        ("user", "hello?"),
    ]
