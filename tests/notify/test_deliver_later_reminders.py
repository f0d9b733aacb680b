"""A reminder's message waiting for a later try (a greylisting mail server here) is not sent
once the user deleted the reminder, nor once they deleted it and created another under its
name (a new life, not the one that sent it); a paused reminder's still goes out, and so does
one whose schedule Temporal cannot describe at that try. Reminders recur until deleted (daily,
weekly, cron: no one-shot form ends by itself), so only a user's delete ends their messages."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    ScheduleHandle,
    WorkflowHandle,
)
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.notify import NotifyActivities
from ambient.deps import WorkerDeps
from ambient.domain.deliver_later import LaterOutcome, later_workflow_id
from ambient.domain.notify import DeliveryStatus, Message, NotifyRequest, Target
from ambient.watches.service import TaskService
from tests.conftest import unique
from tests.notify.standins import Mailbox
from tests.notify.test_deliver_later import ADDRESS, _row, alice
from tests.notify.test_deliver_later_ends import given_up_for
from tests.support.waits import eventually
from tests.watches.test_lifecycle_service import queue_of_its_own, tasks_of
from worker import build_worker

__all__ = ["alice"]  # the fixture, used by name

pytestmark = pytest.mark.devserver

# The mail server's delay, waited for in real time by the dev server's deliver-later run: long
# enough for the test's delete to come first.
GREYLISTED = "451 4.7.1 Greylisted, try again in 10 seconds"


def _reminder() -> dict[str, object]:
    """A daily reminder mailed to alice, at an hour the test's time does not reach."""
    hour = (datetime.now(UTC).hour + 12) % 24
    email = {"type": "email", "target": ADDRESS}
    return {"message": "站会", "hour": hour, "timezone": "UTC", "targets": [email]}


async def _run_now(client: Client, tasks: TaskService, task: str) -> str:
    """Run ``task`` now, as its schedule runs it; the run's workflow id (its message's key)
    once it has ended."""
    await tasks.trigger("alice", task)

    async def started() -> str | None:
        actions = (await client.get_schedule_handle(task).describe()).info.recent_actions
        started = [a.action for a in actions]
        assert all(isinstance(a, ScheduleActionExecutionStartWorkflow) for a in started)
        return started[-1].workflow_id if started else None  # type: ignore[union-attr]

    key = await eventually(started, "the reminder's run")
    assert await client.get_workflow_handle(key).result() == "站会"
    return key


async def _later(client: Client, key: str) -> WorkflowHandle[object, LaterOutcome]:
    workflow_id = later_workflow_id("alice", key)
    run = (await client.get_workflow_handle(workflow_id).describe()).run_id
    return client.get_workflow_handle(workflow_id, run_id=run, result_type=LaterOutcome)


@pytest.mark.parametrize("then", ["deleted", "created again", "paused"])
async def test_a_reminders_waiting_message_ends_with_the_reminder_the_user_deleted(
    dev_env: WorkflowEnvironment, alice: WorkerDeps, mailbox: Mailbox, then: str
) -> None:
    mailbox.greylist_first = 1
    mailbox.greylist_reply = GREYLISTED
    queue = queue_of_its_own(alice)
    tasks = tasks_of(dev_env.client, alice)
    async with build_worker(dev_env.client, alice, task_queue=queue):
        ref = await tasks.create("alice", "schedule", _reminder(), unique("standup"))
        key = await _run_now(dev_env.client, tasks, ref.task_id)
        # The reminder's run is over; its mail waits for the server's delay.
        assert (await _row(alice, key, "email")).status == "deferred"
        later = await _later(dev_env.client, key)
        if then == "paused":
            await tasks.pause("alice", ref.task_id)
        else:
            await tasks.delete("alice", ref.task_id)
        if then == "created again":  # another reminder under its name: not the one that sent
            await tasks.create("alice", "schedule", _reminder(), ref.task_id.rsplit("/", 1)[1])
        outcome = await asyncio.wait_for(later.result(), 120)
        if then != "deleted":
            await tasks.delete("alice", ref.task_id)
    if then == "paused":  # what it sent happened before the pause
        assert outcome == LaterOutcome()
        assert [mail["To"] for mail in mailbox.messages] == [ADDRESS]
        assert (await _row(alice, key, "email")).status == "sent"
        return
    assert len(mailbox.tries) == 1 and mailbox.messages == []  # no try after the delete
    await given_up_for(alice, key, outcome, f"its reminder {ref.task_id} was deleted; not sent")


async def test_a_reminders_later_try_goes_on_when_temporal_cannot_say_whether_it_was_deleted(
    dev_env: WorkflowEnvironment,
    alice: WorkerDeps,
    mailbox: Mailbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Temporal not answering the schedule's describe at the later try: not known to be
    # deleted, the message is tried as before.
    mailbox.greylist_first = 1
    tasks = tasks_of(dev_env.client, alice)
    ref = await tasks.create("alice", "schedule", _reminder(), unique("standup"))
    action = (await dev_env.client.get_schedule_handle(ref.task_id).describe()).schedule.action
    request = NotifyRequest(
        user="alice",
        message=Message(title="Reminder", body="站会"),
        targets=[Target(type="email", target=ADDRESS)],
        idempotency_key=f"{action.id}-2026-12-07T08:00:00Z",  # type: ignore[attr-defined]
        task=ref.task_id,
        attempts=1,
    )
    notify = NotifyActivities(alice.db, alice.channels)
    tries = ActivityEnvironment(client=dev_env.client)
    first = await tries.run(notify.notify, request)
    assert [d.status for d in first.deliveries] == [DeliveryStatus.DEFERRED]
    # No worker runs the hand-over here: its try is run below, as that run would.
    await dev_env.client.get_workflow_handle(
        later_workflow_id("alice", request.idempotency_key)
    ).terminate()

    async def unavailable(self: ScheduleHandle, **_: object) -> None:
        raise RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")

    try:
        with monkeypatch.context() as patched:
            patched.setattr(ScheduleHandle, "describe", unavailable)
            later = await tries.run(notify.notify_later, request)
    finally:
        await tasks.delete("alice", ref.task_id)
    assert [d.status for d in later.deliveries] == [DeliveryStatus.SENT]
    assert [mail["To"] for mail in mailbox.messages] == [ADDRESS]
