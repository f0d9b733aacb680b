"""The event agent when its push fails for good: the decision is still recorded."""

from __future__ import annotations

from sqlalchemy import func, select
from temporalio.testing import WorkflowEnvironment

from activities.notify import delivery_key
from ambient.deps import WorkerDeps
from ambient.domain.event_digest import DigestRun
from ambient.storage.models import Event
from ambient.storage.repositories import EventRepository, InboxRepository
from tests.agent.test_event_agent import _events, _run, _user
from tests.conftest import running_worker, unique
from tests.support.deliveries import left_in_flight
from tests.support.record import save_history
from workflows.event_agent import EventDigestWorkflow


async def test_a_digest_whose_push_fails_for_good_is_recorded_and_not_told_again(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    user = unique("agent-down")
    await _user(deps, user)
    hn = f"web-monitor/{user}/hn"
    await _events(
        deps,
        user,
        ("watch.hit", hn, {"url": "https://news.example/a"}),
        ("watch.breach", f"threshold-watch/{user}/btc", {"value": 101000}),
    )
    async with deps.db.session() as session:
        mark = await session.scalar(select(func.max(Event.id)))
    # An earlier try's worker died sending this digest: the push fails for good.
    await left_in_flight(deps.db, delivery_key(f"event-agent/{user}/{mark}", "inbox", ""), user)
    async with running_worker(ts_env.client, deps) as worker:
        handle = await ts_env.client.start_workflow(
            EventDigestWorkflow.run,
            DigestRun(user=user),
            id=f"event-agent/{user}/run-1",
            task_queue=worker.task_queue,
        )
        first = await handle.result()
        await save_history(handle, "event_digest_undelivered")
        # The next run reads on from the decision: only the failure, not the batch again.
        second = await _run(ts_env, worker.task_queue, user, 2)
    assert (first.last_event_id, first.events, first.notified) == (mark, 2, True)
    assert (second.events, second.notified) == (1, True)
    async with deps.db.session() as session:
        decisions = await EventRepository(session).list(user=user, task=f"event-agent/{user}")
        failed = await EventRepository(session).list(user=user, kind="delivery.failed")
        [told] = await InboxRepository(session).list(user)
    assert [d.kind for d in decisions] == ["agent.digest", "agent.digest"]
    assert "in flight" in decisions[1].payload["undelivered"]
    assert "undelivered" not in decisions[0].payload
    assert [e.payload["retrying"] for e in failed] == [False]
    assert told.title == "delivery.failed"
