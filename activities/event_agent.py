"""The event-driven agent's activities: read the unseen events, decide about them."""

from __future__ import annotations

import asyncio
import json

from temporalio import activity

from ambient.clients.llm import LLMClient, data_block
from ambient.domain.event_digest import (
    AGENT_KINDS,
    MAX_EVENTS,
    CollectedEvents,
    DigestDecision,
    DigestDraft,
    DigestVerdict,
    EventBrief,
    agent_task,
    events_language,
    gist,
    looping,
    notable,
    offline_verdict,
    sendable,
)
from ambient.storage import Database
from ambient.storage.event_cursor import EventCursor, read_events
from ambient.storage.repositories import EventRepository

SYSTEM = (
    "You are an operations assistant telling a person about the new events of their "
    "background tasks (keyword hits, threshold breaches, failures, remediations). Set "
    "notify=true, and write one short message that sums the events up: several related "
    "events become one message. Write the title and body in the language you are told. "
    "Plain text only: no HTML, no JSON, no list of the events; at most four sentences."
)
# A small model sampling a message (the server's default temperature) says one sentence over
# and over now and then: a mild penalty on repeated tokens, with the short body of DigestDraft
# and the plain-text rule, took its first answers from 9 loops in 28 notable batches to none
# (docs/benchmarks.md, the event agent round 12). 1.0 cut loops too, but wrote HTML and echoed
# the events' JSON.
FREQUENCY_PENALTY = 0.5


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
            # A voice conversation's own state (a question asked back) is no event to tell;
            # nor are the agent's own (its pushes' failures: told, each would be pushed to the
            # same refusing channel and fail again, a message every run). Nor a delivery
            # failure still retried (greylisted, handed to a deliver-later run): it may yet be
            # delivered, and its end, if it fails, is an event of its own (retrying: false).
            if row.kind not in AGENT_KINDS
            and not row.kind.startswith("voice.")
            and row.task != agent_task(user)
            and not (row.kind == "delivery.failed" and (row.payload or {}).get("retrying") is True)
        ]
        collected = CollectedEvents(after_id=cursor.last, events=events, read_to=after.last)
        # Gaps above the mark this run records are read again anyway (id > mark).
        collected.gaps = [
            (gap, at.isoformat())
            for gap, at in sorted(after.gaps.items())
            if gap < collected.last_id
        ]
        return collected

    @activity.defn
    async def decide_digest(self, collected: CollectedEvents) -> DigestVerdict:
        """The model's decision (validated), or the offline rules; and who made it: the model
        has most of the activity's time, the rules the rest (a slow or hung model timed the
        activity out three times, the run failed, and the next run read the same batch)."""
        limit = activity.info().start_to_close_timeout
        within = limit.total_seconds() * 0.75 if limit else None
        return await decide(self._llm, collected.events, within=within)


async def decide(
    llm: LLMClient, events: list[EventBrief], within: float | None = None
) -> DigestVerdict:
    """The decision about a batch of events: the model writes the message, the policy decides
    whether there is one (or the offline rules do both, saying why); the model's part
    ``within`` seconds."""
    try:
        async with asyncio.timeout(within):
            return await _decided(llm, events)
    except TimeoutError:
        late = f" (offline rules: the model did not answer within {round(within or 0)} s)"
        return offline_verdict(events, late)


async def _decided(llm: LLMClient, events: list[EventBrief]) -> DigestVerdict:
    # Routine events never notify, notable ones always do: the policy, not a judgement. A
    # small model told so in its prompt still notified every pause and held 1 to 3 of 28
    # notable batches (bench/llm_steps.py), so the model is asked only to write the message.
    if llm.offline or not any(notable(e.kind) for e in events):
        return offline_verdict(events)
    lines = "\n".join(json.dumps(e.model_dump(mode="json"), ensure_ascii=False) for e in events)
    code = events_language(events)
    language = "Chinese (简体中文)" if code == "zh" else "English"
    request = f"New events, one JSON object per line:\n{data_block('events', lines)}"

    async def draft(told: str) -> tuple[DigestDecision | None, str | None]:
        """The model's message, written in ``language`` as ``told``; or None and why not."""
        outcome = await llm.answer(
            system=SYSTEM,
            user=f"Write the title and body in {language}{told} {request}",
            schema=DigestDraft,
            frequency_penalty=FREQUENCY_PENALTY,
        )
        return (outcome.value.decision() if outcome.value is not None else None), outcome.failure

    first, failure = await draft(".")
    if first is None:
        # The reason is stored with the agent's decision: it says the rules decided, and why.
        return offline_verdict(events, f" (offline rules: {failure})")
    if first.notify and not sendable(first, code):
        # A small model answers Chinese events in English now and then, or says one sentence
        # over and over: asked once more.
        second, _ = await draft(" only, not in any other language, each sentence once.")
        if second is not None and sendable(second, code):
            first = second
        elif looping(first):  # never sent: the rules' message, saying why
            return offline_verdict(events, f"; {llm.model}'s message repeated itself")
    if not first.notify:
        # The model would have held notable events: they are told, in the rules' words (its
        # own text was written to say nothing needs telling), and its answer kept as the reason.
        why = f"; {llm.model} would have held them: {first.reason}"
        return offline_verdict(events, why, overruled=True)
    return DigestVerdict(decision=first, generated_by=llm.model)
