"""A chat turn's hold on its conversation: lost while the turn runs, let go when it ends, and
the clock it runs by; two replicas' stores on one app database, the model the OpenAI stand-in."""

from __future__ import annotations

import asyncio

from sqlalchemy import update

from ambient.agent.conversations import TAKEN
from ambient.storage.models import ChatConversation
from tests.agent.test_chat_replicas import (  # noqa: F401 - app_database, postgres_url: fixtures
    GATE,
    agents,
    app_database,
    gate,
    kinds,
    postgres_url,
    replicas,
    said,
    until,
)
from tests.conftest import unique
from tests.standins.llm_api import Content, LLMApi, ToolCalls


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
