"""The event agent when its push fails for good: the decision is still recorded."""

from __future__ import annotations

from sqlalchemy import func, select
from temporalio.testing import WorkflowEnvironment

from activities.deliveries import delivery_key
from ambient.deps import WorkerDeps
from ambient.domain.event_digest import DigestRun
from ambient.domain.push import PushConfig
from ambient.storage.models import Event
from ambient.storage.repositories import DeliveryRepository, EventRepository, InboxRepository
from ambient.storage.users import UserRepository
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
        # The next run reads on from the decision: not the batch again, nor the push's own
        # failure (it is the agent's, recorded with its decision).
        second = await _run(ts_env, worker.task_queue, user, 2)
    assert (first.last_event_id, first.events, first.notified) == (mark, 2, True)
    assert (second.events, second.notified) == (0, False)
    async with deps.db.session() as session:
        mine = await EventRepository(session).list(user=user, task=f"event-agent/{user}")
        told = await InboxRepository(session).list(user)
    assert [e.kind for e in mine] == ["agent.digest", "delivery.failed"]
    [decision, failed] = sorted(mine, key=lambda e: e.kind)
    assert "in flight" in decision.payload["undelivered"]
    assert failed.payload["retrying"] is False
    assert told == []


async def test_a_digest_push_refused_by_a_channel_is_not_told_again_and_again(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    user = unique("agent-refused")
    await _user(deps, user)
    # The person's watch messages go to email too, and this server sends no email: each
    # digest's email is refused (a delivery.failed event of the person's).
    async with deps.db.session() as session:
        users = UserRepository(session)
        row = await users.get(user)
        assert row is not None
        config = {"channels": [{"type": "email", "target": "a@example.com", "kinds": ["watch"]}]}
        await users.set_push_config(row, PushConfig.model_validate(config).model_dump(mode="json"))
        await session.commit()
    await _events(deps, user, ("watch.hit", f"web-monitor/{user}/hn", {"url": "https://a.example"}))
    async with running_worker(ts_env.client, deps) as worker:
        runs = [await _run(ts_env, worker.task_queue, user, n) for n in (2, 3, 4)]
    # The hit is told once; the digest's own refused email is no news to push again (it
    # would be refused again, and told again, every run).
    assert [(r.events, r.notified) for r in runs] == [(1, True), (0, False), (0, False)]
    async with deps.db.session() as session:
        told = await InboxRepository(session).list(user)
        failed = await EventRepository(session).list(user=user, kind="delivery.failed")
        sends = await DeliveryRepository(session).list(user=user, task=f"event-agent/{user}")
    assert [m.title for m in told] == ["watch.hit"]
    # The refusal is the agent's, filed under its task with its deliveries.
    assert [(e.task, e.payload["channel"]) for e in failed] == [(f"event-agent/{user}", "email")]
    assert sorted((d.channel, d.status) for d in sends) == [("email", "failed"), ("inbox", "sent")]
