"""A long chat stays within the model's context: its oldest turns are dropped, whole."""

from __future__ import annotations

import json

from ambient.agent.chat import CUT_TO_FIT, _size
from ambient.agent.conversations import ConversationStore
from ambient.storage.models import ChatConversation
from tests.agent.test_chat_confirm import toy_chat
from tests.standins.llm_api import Content, ToolCalls

# A tool result the size of a day's log lines read back (the facade keeps up to 20,000).
LINES = "ERROR payment-api timed out after 30s\n" * 300


async def test_a_long_conversation_is_answered_turn_after_turn_within_the_models_context(
    conversations: ConversationStore,
) -> None:
    """Each turn reads ~11,000 characters through a tool. The whole conversation was sent with
    every request: by the third turn it was past the model's context, and from then on every
    message was answered with the model's 400, in that conversation for good."""
    async with toy_chat(conversations) as (llm, agent, conversation):
        llm.context_chars = 50_000
        for n in range(6):
            llm.script(ToolCalls([("toy__echo", {"text": LINES})]), Content(f"answer {n}"))
            said = [e async for e in agent.turn(conversation, f"question {n}")]
            assert [(e.type, e.text) for e in said if e.type in ("message", "error")] == [
                ("message", f"answer {n}")
            ], said
        for request in llm.requests:
            messages = request["messages"]
            # The system prompt stays; what follows begins with a person's message.
            assert [m["role"] for m in messages[:2]] == ["system", "user"], messages[:2]
            assert len(json.dumps(request, ensure_ascii=False)) <= 50_000
        # The last request held the last turn and none of the first; the stored conversation
        # is as bounded as what is sent.
        asked = [m["content"] for m in llm.requests[-1]["messages"] if m["role"] == "user"]
        assert asked[-1] == "question 5" and "question 0" not in asked, asked
        async with conversations.db.session() as session:
            row = await session.get(ChatConversation, conversation.id)
        assert row is not None
        # What the last request held, and the answer to it: no older turn.
        assert row.messages[:-1] == llm.requests[-1]["messages"]
        assert row.messages[-1] == {"role": "assistant", "content": "answer 5"}
        held = sum(_size(m) for m in row.messages[1:-1])
        assert held <= agent.history_chars, held


async def test_a_turn_of_long_results_alone_past_the_budget_is_still_answered(
    conversations: ConversationStore,
) -> None:
    """One question, four tool rounds of ~18,000 characters each: the turn alone was past the
    model's context (only older turns were dropped), the request was refused and the question
    never answered. Its results are shortened, oldest first, the newest kept whole."""
    async with toy_chat(conversations) as (llm, agent, conversation):
        llm.context_chars = 50_000
        line = "ERROR payment-api timed out after 30s "
        for n in range(4):
            llm.script(ToolCalls([("toy__repeat", {"text": f"{n}{line}", "times": 480})]))
        llm.script(Content("four reads done"))
        said = [e async for e in agent.turn(conversation, "read the day four ways")]
        assert [(e.type, e.text) for e in said if e.type in ("message", "error")] == [
            ("message", "four reads done")
        ], said
        last = llm.requests[-1]["messages"]
        assert len(json.dumps(llm.requests[-1], ensure_ascii=False)) <= 50_000
        results = [m["content"] for m in last if m["role"] == "tool"]
        assert [r[0] for r in results] == ["0", "1", "2", "3"], [r[:40] for r in results]
        # The oldest shortened, saying so; the newest whole.
        assert results[0].endswith(CUT_TO_FIT)
        assert results[-1] == f"3{line}" * 480
        held = sum(_size(m) for m in last[1:])
        assert held <= agent.history_chars, held
