"""EventDigestWorkflow — `event-agent/{user}` (a Schedule): tell the person what matters, once.

Each run reads the events the agent has not decided about, asks the model (or the offline
rules) whether they need the person now, pushes one summary if so, and records its decision as
an `agent.digest` / `agent.held` event — which is also the cursor of the next run. A run that
dies after pushing and before recording is repeated by the next one with the same key, so the
push is not sent twice.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.event_agent import EventAgentActivities
    from ambient.domain.event_digest import (
        MAX_EVENTS,
        CollectedEvents,
        DigestResult,
        DigestRun,
        agent_task,
    )
    from ambient.domain.notify import Message, NotificationKind, Target, Wording

from workflows.sends import deliver, given_up, record_event

READ_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=2))


@workflow.defn
class EventDigestWorkflow:
    @workflow.run
    async def run(self, request: DigestRun) -> DigestResult:
        user = request.user
        collected = await workflow.execute_activity_method(
            EventAgentActivities.collect_unseen_events,
            user,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=READ_RETRY,
            summary=f"read the events {user} was not told of yet",
        )
        if not collected.events:
            # A whole read of events not to tell (other people's, a voice conversation's) is
            # passed: the next run would read the same batch again, and nothing after it ever.
            if collected.last_id - collected.after_id >= MAX_EVENTS:
                await _record_decision(user, collected, "agent.held", "nothing to tell")
                return DigestResult(last_event_id=collected.last_id, events=0, notified=False)
            return DigestResult(last_event_id=collected.after_id, events=0, notified=False)
        verdict = await workflow.execute_activity_method(
            EventAgentActivities.decide_digest,
            collected,
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=READ_RETRY,
            summary=f"decide whether {len(collected.events)} event(s) need {user} now",
        )
        decision, generated_by = verdict.decision, verdict.generated_by
        # Late commits (ambient/storage/event_cursor.py): the batch's key names its late events
        # and the decision carries the cursor's gaps, so the next run reads them again.
        key = f"event-agent/{user}/{collected.mark}"
        undelivered = ""
        if decision.notify:
            # In Chinese to whoever reads it: the rules' message, or the frame of the model's
            # (written in the events' language) when it gave no title.
            zh = verdict.zh or (None if decision.title else Wording(title="事件摘要"))
            try:
                await deliver(
                    user=user,
                    key=key,
                    message=Message(
                        title=decision.title or "What happened",
                        body=decision.body,
                        kind=NotificationKind.WATCH,
                        zh=zh,
                    ),
                    # The inbox always; the person's push channels for watch messages too.
                    targets=[Target(type="inbox", target="")],
                    about="the events that need them",
                    task=agent_task(user),
                )
            except ActivityError as error:
                undelivered = given_up(error)
        kind = "agent.digest" if decision.notify else "agent.held"
        await _record_decision(
            user, collected, kind, decision.reason, decision.title, generated_by, undelivered
        )
        return DigestResult(
            last_event_id=collected.last_id,
            events=len(collected.events),
            notified=decision.notify,
            generated_by=generated_by,
        )


async def _record_decision(
    user: str,
    collected: CollectedEvents,
    kind: str,
    reason: str,
    title: str = "",
    generated_by: str = "offline",
    undelivered: str = "",
) -> None:
    """The run's decision as an event: what it read up to (the next run's cursor) and why
    (and, when its push failed for good, ``undelivered``: why not)."""
    await record_event(
        user=user,
        task=agent_task(user),
        kind=kind,
        key=f"event-agent/{user}/{collected.mark}/decision",
        payload={
            "last_event_id": collected.last_id,
            "gaps": [list(g) for g in collected.gaps],
            "events": len(collected.events),
            "reason": reason,
            "title": title,
            "generated_by": generated_by,
            **({"undelivered": undelivered} if undelivered else {}),
        },
    )
