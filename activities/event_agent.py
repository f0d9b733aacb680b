"""The event-driven agent's activities: read the unseen events, decide about them."""

from __future__ import annotations

import json

from temporalio import activity

from ambient.clients.llm import LLMClient, data_block
from ambient.domain.event_digest import (
    AGENT_KINDS,
    MAX_EVENTS,
    CollectedEvents,
    DigestDecision,
    DigestVerdict,
    EventBrief,
    gist,
    notable,
    offline_decision,
)
from ambient.storage import Database
from ambient.storage.event_cursor import EventCursor, read_events
from ambient.storage.repositories import EventRepository

SYSTEM = (
    "You are an operations assistant deciding whether to interrupt a person. Given the new "
    "events of their background tasks, answer notify=true only if something needs their "
    "attention now (keyword hits, threshold breaches, failures, remediations); several related "
    "events become one short message. Routine events (paused, resumed, first looks) never "
    "notify. Write the title and body in the language of the events, briefly."
)


class EventAgentActivities:
    def __init__(self, db: Database, llm: LLMClient) -> None:
        self._db, self._llm = db, llm

    @activity.defn
    async def collect_unseen_events(self, user: str) -> CollectedEvents:
        """Events after the last one the agent decided about (its own decisions are the cursor)."""
        async with self._db.session() as session:
            repo = EventRepository(session)
            cursor = EventCursor()
            for kind in AGENT_KINDS:
                last = await repo.list(user=user, kind=kind, limit=1)
                if last:
                    recorded = EventCursor.from_payload(last[0].payload)
                    cursor = recorded if recorded.last > cursor.last else cursor
            # Late commits too: an event that committed after a later one was read is in the
            # cursor's gaps and read now (a plain id > last would skip it for good).
            rows, after = await read_events(session, cursor, user=user, limit=MAX_EVENTS)
        events = [
            EventBrief(
                id=row.id, kind=row.kind, task=row.task, at=row.created_at, gist=gist(row.payload)
            )
            for row in rows
            if row.kind not in AGENT_KINDS
        ]
        collected = CollectedEvents(after_id=cursor.last, events=events)
        # Gaps above the mark this run records are read again anyway (id > mark).
        collected.gaps = [
            (gap, at.isoformat())
            for gap, at in sorted(after.gaps.items())
            if gap < collected.last_id
        ]
        return collected

    @activity.defn
    async def decide_digest(self, collected: CollectedEvents) -> DigestVerdict:
        """The model's decision (validated), or the offline rules; and who made it."""
        return await decide(self._llm, collected.events)


async def decide(llm: LLMClient, events: list[EventBrief]) -> DigestVerdict:
    """The model's decision about a batch of events, or the offline rules' saying why."""
    # Routine events never notify: the policy, not a judgement, so no model is asked (a
    # small model told so in its prompt still notified every pause, bench/llm_steps.py).
    if llm.offline or not any(notable(e.kind) for e in events):
        return DigestVerdict(decision=offline_decision(events))
    lines = "\n".join(json.dumps(e.model_dump(mode="json"), ensure_ascii=False) for e in events)
    outcome = await llm.answer(
        system=SYSTEM,
        user="New events, one JSON object per line:\n" + data_block("events", lines),
        schema=DigestDecision,
    )
    if outcome.value is not None:
        return DigestVerdict(decision=outcome.value, generated_by=llm.model)
    decision = offline_decision(events)
    # The reason is stored with the agent's decision: it says the rules decided, and why.
    decision.reason = f"{decision.reason} (offline rules: {outcome.failure})"[:300]
    return DigestVerdict(decision=decision)
