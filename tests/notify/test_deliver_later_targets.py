"""A deliver-later run sends to the targets its task names when it tries, not to those it named
when it sent: a target the user took out of the task meanwhile is not sent to (its row and its
run say why), one still there is."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleSpec,
    ScheduleState,
)
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.notify import NotifyActivities
from ambient import temporal
from ambient.deps import WorkerDeps
from ambient.domain.deliver_later import LaterOutcome, later_workflow_id
from ambient.domain.notify import DeliveryStatus, Message, NotificationKind, NotifyRequest
from ambient.watches.configs import WebMonitorConfig
from ambient.watches.notification_spec import notification_targets
from ambient.watches.reminders import ReminderConfig, ReminderRun
from tests.conftest import unique
from tests.notify.standins import Mailbox
from tests.notify.test_deliver_later import ADDRESS, _events, _outcome, _row, alice
from tests.notify.test_deliver_later_ends import _serving_tries
from tests.notify.workflows import StandingWatch
from tests.support.servers import serve

__all__ = ["alice"]  # the fixture, used by name


def _config(*targets: dict[str, str]) -> dict[str, Any]:
    config = {"urls": ["https://example.com/news"], "targets": list(targets)}
    return WebMonitorConfig.model_validate(config).model_dump(mode="json")


@pytest.mark.parametrize("refusals", [1, 2])
async def test_a_later_delivery_goes_to_the_targets_the_watch_names_when_it_tries(
    ts_env: WorkflowEnvironment, alice: WorkerDeps, mailbox: Mailbox, refusals: int
) -> None:
    # The mail server greylists, the webhook asks for a minute: both handed over. The user
    # then takes the email out of the watch: the later try mailed it all the same. With the
    # webhook asking again at that try (2), its outcome did not list the email ended there.
    mailbox.greylist_first = 1
    answers: list[int] = []

    async def hook(request: Request) -> Response:
        answers.append(429 if len(answers) < refusals else 200)
        return Response("", status_code=answers[-1], headers={"Retry-After": "60"})

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    async with serve(app) as base, _serving_tries(ts_env, alice) as (notify, tries):
        email = {"type": "email", "target": ADDRESS}
        webhook = {"type": "webhook", "target": f"{base}/hook"}
        watch = await ts_env.client.start_workflow(
            StandingWatch.run,
            id=unique("web-monitor/alice/news"),
            task_queue=tries.info.task_queue,
            search_attributes=temporal.search_attributes("web_monitor", "alice", state="active"),
        )
        await watch.signal(StandingWatch.configure, _config(email, webhook))
        sent = WebMonitorConfig.model_validate(_config(email, webhook))
        key = unique(f"{watch.id}/change")
        request = NotifyRequest(
            user="alice",
            message=Message(title="Changed: news", body="Storm warning."),
            targets=notification_targets(sent.notification, sent.targets),
            idempotency_key=key,
            task=watch.id,
            attempts=1,
        )
        result = await tries.run(notify.notify, request)
        assert [(d.channel, d.status) for d in result.deliveries] == [
            ("inbox", DeliveryStatus.SENT),
            ("email", DeliveryStatus.DEFERRED),
            ("webhook", DeliveryStatus.DEFERRED),
        ]
        await watch.signal(StandingWatch.configure, _config(webhook))  # the user's update
        workflow_id = later_workflow_id("alice", key)
        run = (await ts_env.client.get_workflow_handle(workflow_id).describe()).run_id
        later = ts_env.client.get_workflow_handle(workflow_id, run_id=run, result_type=LaterOutcome)
        outcome = await _outcome(ts_env, later)
        await watch.signal(StandingWatch.stop)
    assert len(mailbox.tries) == 1 and mailbox.messages == []  # no try after the removal
    assert answers == [429] * refusals + [200]
    assert (await _row(alice, key, "webhook")).status == "sent"
    reason = f"permanent: its target was taken out of its task {watch.id}; not sent"
    row = await _row(alice, key, "email")
    assert (row.status, row.error) == ("failed", reason)
    assert outcome == LaterOutcome(failures=[f"email: {reason}"])
    # Said retrying at the "later" answers, then once that it ended, and why.
    ended = [e for e in await _events(alice, "delivery.failed") if not e.payload["retrying"]]
    assert [(e.payload["channel"], e.payload["error"]) for e in ended] == [
        ("email", reason.removeprefix("permanent: "))
    ]


@pytest.mark.devserver
async def test_a_later_delivery_of_a_reminder_goes_to_the_targets_its_schedule_names_now(
    dev_env: WorkflowEnvironment, alice: WorkerDeps, mailbox: Mailbox
) -> None:
    # A reminder's config is its schedule's: the user took the email out of it while the
    # reminder's mail waited for a greylisting server; the webhook stays.
    mailbox.greylist_first = 1
    answers: list[int] = []

    async def hook(request: Request) -> Response:
        answers.append(429 if not answers else 200)
        return Response("", status_code=answers[-1], headers={"Retry-After": "60"})

    async with serve(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as base:
        email = {"type": "email", "target": ADDRESS}
        webhook = {"type": "webhook", "target": f"{base}/hook"}
        sent = ReminderConfig.model_validate({"message": "站会", "targets": [email, webhook]})
        task = unique("reminder/alice/standup")
        request = NotifyRequest(
            user="alice",
            message=Message(title="Reminder", body="站会"),
            targets=notification_targets(sent.notification, sent.targets),
            idempotency_key=f"{task}/run",
            task=task,
            attempts=1,
        )
        notify = NotifyActivities(alice.db, alice.channels)
        tries = ActivityEnvironment(client=dev_env.client)
        first = await tries.run(notify.notify, request)
        assert [d.status for d in first.deliveries][1:] == [DeliveryStatus.DEFERRED] * 2
        # No worker runs the hand-over here: its try is run below, as that run would.
        await dev_env.client.get_workflow_handle(
            later_workflow_id("alice", request.idempotency_key)
        ).terminate()
        now = ReminderConfig.model_validate({"message": "站会", "targets": [webhook]})
        run = ReminderRun(user="alice", task=task, config=now)
        schedule = await dev_env.client.create_schedule(
            task,
            Schedule(
                action=ScheduleActionStartWorkflow(
                    "ReminderWorkflow", run, id=f"{task}/run", task_queue=tries.info.task_queue
                ),
                spec=ScheduleSpec(cron_expressions=["0 8 * * *"]),
                state=ScheduleState(paused=True),
            ),
        )
        try:
            later = await tries.run(notify.notify_later, request)
        finally:
            await schedule.delete()
    assert [(d.channel, d.status) for d in later.deliveries] == [
        ("inbox", DeliveryStatus.DUPLICATE),
        ("webhook", DeliveryStatus.SENT),
        ("email", DeliveryStatus.FAILED),
    ]
    assert len(mailbox.tries) == 1 and mailbox.messages == [] and answers == [429, 200]
    row = await _row(alice, request.idempotency_key, "email")
    assert row.error == f"permanent: its target was taken out of its task {task}; not sent"


async def test_a_target_the_watch_still_names_however_written_is_sent_later(
    ts_env: WorkflowEnvironment, alice: WorkerDeps, mailbox: Mailbox
) -> None:
    """The user's update kept the email, its address in other capitals and its kinds narrowed
    to watch messages: compared as written, it was said "taken out of its task" and not sent."""
    mailbox.greylist_first = 1
    async with _serving_tries(ts_env, alice) as (notify, tries):
        email = {"type": "email", "target": ADDRESS}
        watch = await ts_env.client.start_workflow(
            StandingWatch.run,
            id=unique("web-monitor/alice/news"),
            task_queue=tries.info.task_queue,
            search_attributes=temporal.search_attributes("web_monitor", "alice", state="active"),
        )
        await watch.signal(StandingWatch.configure, _config(email))
        sent = WebMonitorConfig.model_validate(_config(email))
        key = unique(f"{watch.id}/change")
        request = NotifyRequest(
            user="alice",
            message=Message(
                title="Changed: news", body="Storm warning.", kind=NotificationKind.WATCH
            ),
            targets=notification_targets(sent.notification, sent.targets),
            idempotency_key=key,
            task=watch.id,
            attempts=1,
        )
        result = await tries.run(notify.notify, request)
        assert ("email", DeliveryStatus.DEFERRED) in [
            (d.channel, d.status) for d in result.deliveries
        ]
        kept = {"type": "email", "target": ADDRESS.upper(), "kinds": ["watch"]}
        await watch.signal(StandingWatch.configure, _config(kept))
        workflow_id = later_workflow_id("alice", key)
        run = (await ts_env.client.get_workflow_handle(workflow_id).describe()).run_id
        later = ts_env.client.get_workflow_handle(workflow_id, run_id=run, result_type=LaterOutcome)
        outcome = await _outcome(ts_env, later)
        await watch.signal(StandingWatch.stop)
    assert outcome == LaterOutcome(failures=[])
    assert (await _row(alice, key, "email")).status == "sent"
    assert len(mailbox.messages) == 1
