"""How a deliver-later run ends besides delivered or given up at its give-up: the task that
sent it was deleted meanwhile (given up at once; a paused one still delivers), or its later
try fell in the user's quiet hours (suppressed, as any push then, and said ended)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities.notify import NotifyActivities
from ambient import temporal
from ambient.deps import WorkerDeps
from ambient.domain.deliver_later import LaterOutcome, later_workflow_id
from ambient.domain.notify import DeliveryStatus, Message, NotifyRequest, Target
from ambient.storage.users import UserRepository
from tests.conftest import unique
from tests.notify.standins import Mailbox
from tests.notify.test_deliver_later import ADDRESS, _events, _outcome, _row, alice
from tests.notify.workflows import StandingWatch
from workflows.deliver_later import DeliverLaterWorkflow

__all__ = ["alice"]  # the fixture, used by name


@asynccontextmanager
async def _serving_tries(
    ts_env: WorkflowEnvironment, alice: WorkerDeps
) -> AsyncIterator[tuple[NotifyActivities, ActivityEnvironment]]:
    """Alice's notify activities, and a worker on their activity environment's task queue
    serving the deliver-later runs a hand-over starts there (and the standing watch)."""
    notify = NotifyActivities(alice.db, alice.channels)
    tries = ActivityEnvironment(client=ts_env.client)
    async with Worker(
        ts_env.client,
        task_queue=tries.info.task_queue,
        workflows=[DeliverLaterWorkflow, StandingWatch],
        activities=[notify.notify_later, notify.notify_given_up],
        workflow_runner=temporal.workflow_runner(),
    ):
        yield notify, tries


async def _ended(run: Any) -> None:
    """Wait until ``run`` (a handle a start returned) has ended, without skipping the test
    server's time: its ``result()`` would skip it, and the deliver-later run's try, due after
    the greylist's delay, would run before the test's next step (a briefing replaced by a new
    config would be seen between its two runs, as if deleted)."""
    for _ in range(100):  # a bound
        if (await run.describe()).status != WorkflowExecutionStatus.RUNNING:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{run.id} never ended")


async def _handed_over_then(
    ts_env: WorkflowEnvironment, alice: WorkerDeps, state: str, *, delete: bool
) -> tuple[str, str, LaterOutcome]:
    """Alice's web monitor (in ``state``) mails a change to a server that greylists it once:
    the notify activity's last try hands it over; then the watch is deleted (``delete``) or
    left as it is. The watch's id, the notification's key and the deliver-later run's
    outcome."""
    async with _serving_tries(ts_env, alice) as (notify, tries):
        watch = await ts_env.client.start_workflow(
            StandingWatch.run,
            id=unique("web-monitor/alice/news"),
            task_queue=tries.info.task_queue,
            search_attributes=temporal.search_attributes("web_monitor", "alice", state=state),
        )
        key = unique(f"{watch.id}/change")
        request = NotifyRequest(
            user="alice",
            message=Message(title="Changed: news", body="Storm warning."),
            targets=[Target(type="email", target=ADDRESS)],
            idempotency_key=key,
            task=watch.id,
            attempts=1,
        )
        result = await tries.run(notify.notify, request)
        assert [d.status for d in result.deliveries] == [DeliveryStatus.DEFERRED]
        if delete:
            await watch.signal(StandingWatch.stop)  # the task's delete: its run ends
            await _ended(watch)
        workflow_id = later_workflow_id("alice", key)
        run = (await ts_env.client.get_workflow_handle(workflow_id).describe()).run_id
        later = ts_env.client.get_workflow_handle(workflow_id, run_id=run, result_type=LaterOutcome)
        outcome = await _outcome(ts_env, later)
        if not delete:
            await watch.signal(StandingWatch.stop)
        return watch.id, key, outcome


async def test_a_later_delivery_of_a_watch_deleted_meanwhile_is_given_up_at_once_not_sent(
    ts_env: WorkflowEnvironment, alice: WorkerDeps, mailbox: Mailbox
) -> None:
    mailbox.greylist_first = 1
    watch, key, outcome = await _handed_over_then(ts_env, alice, "active", delete=True)
    assert len(mailbox.tries) == 1 and mailbox.messages == []  # no try after the delete
    await given_up_for(alice, key, outcome, f"its task {watch} was deleted; not sent")


async def given_up_for(alice: WorkerDeps, key: str, outcome: LaterOutcome, why: str) -> None:
    """The greylisted mail of ``key`` ended for good, unsent, for ``why``: its row failed at
    its one try, said retrying at the greylisting, then once that it ended and why."""
    reason = f"permanent: {why}"
    assert outcome == LaterOutcome(gave_up=True, failures=[f"email: {reason}"])
    row = await _row(alice, key, "email")
    assert (row.status, row.error, row.attempts) == ("failed", reason, 1)
    retrying, ended = sorted(
        await _events(alice, "delivery.failed"), key=lambda e: not e.payload["retrying"]
    )
    assert retrying.payload["retrying"] and "Greylisted" in retrying.payload["error"]
    assert not ended.payload["retrying"]
    assert ended.payload["error"] == why


async def test_a_later_delivery_of_a_paused_watch_is_still_delivered(
    ts_env: WorkflowEnvironment, alice: WorkerDeps, mailbox: Mailbox
) -> None:
    # The change happened before the pause: its mail still goes out.
    mailbox.greylist_first = 1
    _, key, outcome = await _handed_over_then(ts_env, alice, "paused", delete=False)
    assert outcome == LaterOutcome()
    assert [mail["To"] for mail in mailbox.messages] == [ADDRESS]
    assert (await _row(alice, key, "email")).status == "sent"


async def test_a_later_try_in_quiet_hours_is_suppressed_and_said_ended_not_left_retrying(
    ts_env: WorkflowEnvironment, alice: WorkerDeps, mailbox: Mailbox
) -> None:
    # Greylisted at the first try (the inbox copy landed then); quiet hours began before the
    # later try: held back as any push in quiet hours, and the "retrying" said at the
    # greylisting is followed by its end, not left the last word.
    mailbox.greylist_first = 1
    notify = NotifyActivities(alice.db, alice.channels)
    key = unique("disk")
    request = NotifyRequest(
        user="alice",
        message=Message(title="Disk 91%", body="node-3"),
        targets=[Target(type="inbox"), Target(type="email", target=ADDRESS)],
        idempotency_key=key,
        attempts=1,
    )
    first = await ActivityEnvironment(client=ts_env.client).run(notify.notify, request)
    assert [(d.channel, d.status) for d in first.deliveries] == [
        ("inbox", DeliveryStatus.SENT),
        ("email", DeliveryStatus.DEFERRED),
    ]
    await ts_env.client.get_workflow_handle(later_workflow_id("alice", key)).terminate()
    async with alice.db.session() as session:
        users = UserRepository(session)
        user = await users.get("alice")
        assert user is not None
        hour = datetime.now(ZoneInfo(user.timezone)).hour  # in her zone, an hour either side
        quiet = {"start": f"{(hour - 1) % 24:02d}:00", "end": f"{(hour + 2) % 24:02d}:00"}
        await users.set_push_config(user, {"channels": [], "quiet_hours": quiet})
        await session.commit()

    later = await ActivityEnvironment(client=ts_env.client).run(notify.notify_later, request)
    assert [(d.channel, d.status) for d in later.deliveries] == [
        ("inbox", DeliveryStatus.DUPLICATE),
        ("email", DeliveryStatus.SUPPRESSED),
    ]
    assert len(mailbox.tries) == 1 and mailbox.messages == []
    row = await _row(alice, key, "email")
    assert (row.status, row.error, row.attempts) == ("suppressed", "quiet hours", 2)
    retrying, ended = sorted(
        await _events(alice, "delivery.failed"), key=lambda e: not e.payload["retrying"]
    )
    assert retrying.payload["retrying"] and "Greylisted" in retrying.payload["error"]
    assert not ended.payload["retrying"]
    assert ended.payload["error"] == "held back by quiet hours when tried again; not sent"
    # Tried again after that (a retry whose result was lost): nothing more is said.
    await ActivityEnvironment(client=ts_env.client).run(notify.notify_later, request)
    assert len(await _events(alice, "delivery.failed")) == 2


async def test_a_later_delivery_of_a_watch_deleted_and_created_again_is_not_sent_as_the_new_ones(
    ts_env: WorkflowEnvironment, alice: WorkerDeps, mailbox: Mailbox
) -> None:
    # The watch's key names its life (the first run of its chain). Deleted and created again
    # under the same name while its mail waits: the new life's run is running, but the old
    # life's change must not go out as the new watch's.
    mailbox.greylist_first = 1
    async with _serving_tries(ts_env, alice) as (notify, tries):
        task = unique("web-monitor/alice/news")
        attributes = temporal.search_attributes("web_monitor", "alice", state="active")
        old = await ts_env.client.start_workflow(
            StandingWatch.run,
            id=task,
            task_queue=tries.info.task_queue,
            search_attributes=attributes,
        )
        key = f"{task}/{old.first_execution_run_id}/poll/1"
        request = NotifyRequest(
            user="alice",
            message=Message(title="Changed: news", body="Storm warning."),
            targets=[Target(type="email", target=ADDRESS)],
            idempotency_key=key,
            task=task,
            attempts=1,
        )
        result = await tries.run(notify.notify, request)
        assert [d.status for d in result.deliveries] == [DeliveryStatus.DEFERRED]
        await old.signal(StandingWatch.stop)  # deleted ...
        await _ended(old)
        new = await ts_env.client.start_workflow(  # ... and created again: a new life
            StandingWatch.run,
            id=task,
            task_queue=tries.info.task_queue,
            search_attributes=attributes,
        )
        workflow_id = later_workflow_id("alice", key)
        run = (await ts_env.client.get_workflow_handle(workflow_id).describe()).run_id
        later = ts_env.client.get_workflow_handle(workflow_id, run_id=run, result_type=LaterOutcome)
        outcome = await _outcome(ts_env, later)
        await new.signal(StandingWatch.stop)
    assert len(mailbox.tries) == 1 and mailbox.messages == []
    reason = f"permanent: its task {task} was deleted; not sent"
    assert outcome == LaterOutcome(gave_up=True, failures=[f"email: {reason}"])
    assert (await _row(alice, key, "email")).status == "failed"


async def _briefing_run(ts_env: WorkflowEnvironment, queue: str, created: datetime) -> Any:
    """Alice's daily briefing as a deliver-later try sees it: its run, and the memo's creation
    the service writes (kept by a run that a new config replaces, new at a create)."""
    return await ts_env.client.start_workflow(
        StandingWatch.run,
        id="daily-briefing/alice",
        task_queue=queue,
        search_attributes=temporal.search_attributes("daily_briefing", "alice", state="active"),
        memo=temporal.task_memo("Daily briefing for alice", created),
    )


async def _briefing_push_then(
    ts_env: WorkflowEnvironment, alice: WorkerDeps, *, created_again: bool
) -> tuple[str, LaterOutcome]:
    """Alice's briefing pushes a day's briefing to a server that greylists it once; then the
    briefing is deleted and created again (``created_again``), or a new config replaces its
    run (it keeps its creation). The notification's key and the deliver-later outcome."""
    async with _serving_tries(ts_env, alice) as (notify, tries):
        queue = tries.info.task_queue
        old = await _briefing_run(ts_env, queue, datetime.now(ZoneInfo("UTC")))
        # A briefing's push key names the day, not a run: the same day is pushed once.
        key = f"daily-briefing/alice/{unique('2026-11-30')}/push"
        request = NotifyRequest(
            user="alice",
            message=Message(title="Briefing", body="Yesterday: 3 errors."),
            targets=[Target(type="email", target=ADDRESS)],
            idempotency_key=key,
            task="daily-briefing/alice",
            attempts=1,
        )
        result = await tries.run(notify.notify, request)
        assert [d.status for d in result.deliveries] == [DeliveryStatus.DEFERRED]
        memo = await (await old.describe()).memo()
        await old.signal(StandingWatch.stop)  # deleted, or replaced by a new config ...
        await _ended(old)
        created = datetime.now(ZoneInfo("UTC")) if created_again else temporal.created_at(memo)
        assert created is not None
        new = await _briefing_run(ts_env, queue, created)  # ... and its next run
        workflow_id = later_workflow_id("alice", key)
        run = (await ts_env.client.get_workflow_handle(workflow_id).describe()).run_id
        later = ts_env.client.get_workflow_handle(workflow_id, run_id=run, result_type=LaterOutcome)
        outcome = await _outcome(ts_env, later)
        await new.signal(StandingWatch.stop)
    return key, outcome


async def test_a_later_push_of_a_briefing_deleted_and_created_again_is_not_sent_as_the_new_ones(
    ts_env: WorkflowEnvironment, alice: WorkerDeps, mailbox: Mailbox
) -> None:
    # The briefing's key names its day, not its life: the new briefing's run is running, but
    # the deleted one's push must not reach alice from the briefing she created since.
    mailbox.greylist_first = 1
    key, outcome = await _briefing_push_then(ts_env, alice, created_again=True)
    assert len(mailbox.tries) == 1 and mailbox.messages == []
    reason = "permanent: its task daily-briefing/alice was deleted; not sent"
    assert outcome == LaterOutcome(gave_up=True, failures=[f"email: {reason}"])
    assert (await _row(alice, key, "email")).status == "failed"


async def test_a_later_push_of_a_briefing_whose_config_changed_meanwhile_is_delivered(
    ts_env: WorkflowEnvironment, alice: WorkerDeps, mailbox: Mailbox
) -> None:
    # A new config replaces the run, not the briefing: its push goes out as asked.
    mailbox.greylist_first = 1
    key, outcome = await _briefing_push_then(ts_env, alice, created_again=False)
    assert outcome == LaterOutcome() and len(mailbox.messages) == 1
    assert (await _row(alice, key, "email")).status == "sent"
