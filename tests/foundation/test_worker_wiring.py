import asyncio
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import PollerBehaviorSimpleMaximum

from activities.notify import NotifyActivities
from ambient import __version__
from ambient.clients.notify.base import ChannelRegistry
from ambient.clients.notify.inbox import InboxChannel
from ambient.deps import WorkerDeps
from ambient.domain.notify import DeliveryStatus, Message, NotifyRequest, Target
from ambient.domain.users import UserCreate
from ambient.storage import Database
from ambient.storage.repositories import EventRepository, InboxRepository
from ambient.storage.users import UserRepository
from tests.conftest import running_worker, unique
from tests.support.workflows import PingInput, PingWorkflow
from worker import build_worker, release_free_memory


async def _user(db: Database, name: str) -> None:
    async with db.session() as session:
        await UserRepository(session).create(UserCreate(name=name))
        await session.commit()


async def _pinged(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, db: Database
) -> tuple[WorkflowHandle[Any, Any], Any]:
    """alice pinged through a running worker: the run's handle and its result."""
    await _user(db, "alice")
    async with running_worker(ts_env.client, deps, workflows=[PingWorkflow]) as worker:
        handle = await ts_env.client.start_workflow(
            PingWorkflow.run,
            PingInput(user="alice", text="hello"),
            id=unique("ping"),
            task_queue=worker.task_queue,
        )
        return handle, await handle.result()


async def test_worker_runs_workflow_that_records_event_and_notifies_inbox(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, db: Database
) -> None:
    handle, result = await _pinged(ts_env, deps, db)

    assert [d.status for d in result.deliveries] == [DeliveryStatus.SENT]
    async with db.session() as session:
        events = await EventRepository(session).list(user="alice")
        inbox = await InboxRepository(session).list("alice")
    assert [(e.kind, e.task, e.payload) for e in events] == [
        ("test.ping", handle.id, {"text": "hello"})
    ]
    assert [(m.title, m.body) for m in inbox] == [("ping", "hello")]


async def test_the_worker_takes_new_runs_first_workflow_tasks_on_five_polls_at_once(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # With the SDK's defaults one poll took them: an alert storm's hundred first tasks came one
    # round trip after another (docs/benchmarks.md, "Alert storm, third round").
    config = build_worker(ts_env.client, deps, task_queue=unique("tq")).config()
    polls = config["workflow_task_poller_behavior"]
    assert isinstance(polls, PollerBehaviorSimpleMaximum)
    assert int(polls.maximum * config["nonsticky_to_sticky_poll_ratio"]) == 5


async def test_notify_twice_with_same_key_delivers_once(db: Database) -> None:
    await _user(db, "bob")
    activities = NotifyActivities(db, ChannelRegistry([InboxChannel(db)]))
    request = NotifyRequest(
        user="bob",
        message=Message(title="t", body="b"),
        targets=[Target(channel="inbox")],
        idempotency_key="wf-1/step-3",
    )
    env = ActivityEnvironment()
    first = await env.run(activities.notify, request)
    second = await env.run(activities.notify, request)

    assert first.deliveries[0].status is DeliveryStatus.SENT
    assert second.deliveries[0].status is DeliveryStatus.DUPLICATE
    async with db.session() as session:
        assert len(await InboxRepository(session).list("bob")) == 1


async def test_unknown_channel_fails_permanently_without_blocking_others(db: Database) -> None:
    await _user(db, "carol")
    activities = NotifyActivities(db, ChannelRegistry([InboxChannel(db)]))
    request = NotifyRequest(
        user="carol",
        message=Message(title="t", body="b"),
        targets=[Target(channel="pager", target="x"), Target(channel="inbox")],
        idempotency_key="wf-2/step-1",
    )
    result = await ActivityEnvironment().run(activities.notify, request)

    pager, inbox = result.deliveries
    assert pager.status is DeliveryStatus.FAILED
    assert pager.error is not None and "unknown channel 'pager'" in pager.error
    assert "registered: inbox" in pager.error
    assert inbox.status is DeliveryStatus.SENT


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def test_the_worker_gives_memory_it_freed_among_live_objects_back_to_the_system() -> None:
    # Blocks over pymalloc's 512 bytes come from glibc; every tenth kept alive holds the
    # pages between them, which glibc keeps for itself unless asked (the worker's checks free
    # bodies and parsed pages among the polls' long-lived objects the same way).
    blocks = [bytes(range(256)) * 8 for _ in range(20_000)]  # ≈ 40 MB
    kept = blocks[::10]
    del blocks
    freed = _rss_mb()
    trimmer = asyncio.create_task(release_free_memory(every=0.05))
    try:
        for _ in range(200):  # a bound, not a timing claim
            if _rss_mb() < freed - 20:
                break
            await asyncio.sleep(0.05)
        assert _rss_mb() < freed - 20
    finally:
        trimmer.cancel()
    assert len(kept) == 2_000


async def test_the_worker_names_its_build_in_the_history_it_writes(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, db: Database
) -> None:
    # Left unnamed, the SDK hashed the code of every loaded module at each worker start (~1,800
    # of them, compiled where no .pyc was cached): seconds of CPU before the first poll.
    handle, _ = await _pinged(ts_env, deps, db)
    completed = [
        event.workflow_task_completed_event_attributes
        for event in (await handle.fetch_history()).events
        if event.HasField("workflow_task_completed_event_attributes")
    ]
    assert completed and {c.binary_checksum for c in completed} == {f"ambient-ops-{__version__}"}
