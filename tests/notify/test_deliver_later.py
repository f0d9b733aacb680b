"""Deliver later: a receiver that says "try again later" (a greylisting mail server, a webhook
answering 429 with a Retry-After past a send's waits) is given the message once, by a
deliver-later run, after the delay it asked for; the workflow that sent it goes on at once;
a refusal for good is still given up at once."""

import asyncio
import dataclasses
import os
import signal
import subprocess
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleSpec,
    ScheduleState,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowHistory,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities.notify import NotifyActivities
from ambient.clients.notify.registry import build_channels
from ambient.deps import WorkerDeps
from ambient.domain.deliver_later import LaterDelivery, LaterOutcome, later_workflow_id
from ambient.domain.notify import DeliveryStatus, Message, NotifyRequest, Target
from ambient.domain.users import UserCreate
from ambient.storage.models import Delivery, Event
from ambient.storage.repositories import DeliveryRepository, EventRepository
from ambient.storage.users import UserRepository
from ambient.watches.reminders import ReminderConfig, ReminderRun
from tests.conftest import running_worker, unique
from tests.notify.standins import Mailbox
from tests.remediation.test_crash import worker_env, worker_process
from tests.support.record import save_history
from tests.support.servers import HANG, polls_workflow_tasks, serve
from tests.support.waits import eventually
from workflows.deliver_later import DeliverLaterWorkflow
from workflows.reminder import ReminderWorkflow

ADDRESS = "alice@example.com"
SKIP = timedelta(seconds=20)  # the test server's time skipped at once while a later run waits


@pytest_asyncio.fixture
async def alice(deps: WorkerDeps, mailbox: Mailbox) -> AsyncIterator[WorkerDeps]:
    """User alice, and ``deps`` with email through the loopback mailbox (deliver later on, at
    its defaults: a first wait of 60 s, given up after an hour)."""
    async with deps.db.session() as session:
        await UserRepository(session).create(UserCreate(name="alice"))
        await session.commit()
    deps.settings = deps.settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": mailbox.port,
            "smtp_tls": "none",
            "fetch_allow_cidrs": ["127.0.0.1/32"],
        }
    )
    deps.channels = build_channels(deps.settings, deps.db, deps.http)
    yield deps


def _reminder(*targets: dict[str, str]) -> ReminderConfig:
    return ReminderConfig.model_validate({"message": "站会", "targets": list(targets)})


async def _remind(
    ts_env: WorkflowEnvironment, worker: Worker, task: str, *targets: dict[str, str]
) -> str:
    """One run of alice's reminder ``task`` with ``targets`` (workflow id ``task``/run)."""
    return await ts_env.client.execute_workflow(
        ReminderWorkflow.run,
        ReminderRun(user="alice", task=task, config=_reminder(*targets)),
        id=f"{task}/run",
        task_queue=worker.task_queue,
    )


@asynccontextmanager
async def _standing(
    client: Client, worker: Worker, task: str, *targets: dict[str, str]
) -> AsyncIterator[None]:
    """Alice's reminder ``task`` standing (its schedule paused: it fires only as the test runs
    it, as ``_remind``), deleted after: a later try of a reminder whose schedule is gone gives
    its message up as deleted."""
    run = ReminderRun(user="alice", task=task, config=_reminder(*targets))
    action = ScheduleActionStartWorkflow(
        ReminderWorkflow.run, run, id=f"{task}/run", task_queue=worker.task_queue
    )
    spec = ScheduleSpec(cron_expressions=["0 8 * * *"])
    schedule = await client.create_schedule(
        task, Schedule(action=action, spec=spec, state=ScheduleState(paused=True))
    )
    try:
        yield
    finally:
        await schedule.delete()


async def _later(ts_env: WorkflowEnvironment, task: str) -> WorkflowHandle[object, LaterOutcome]:
    """The deliver-later run of the reminder run ``task``/run's notification."""
    workflow_id = later_workflow_id("alice", f"{task}/run")
    # By its run: a handle without one gives up waiting for the result at the first long
    # poll that ends without it.
    run = (await ts_env.client.get_workflow_handle(workflow_id).describe()).run_id
    return ts_env.client.get_workflow_handle(workflow_id, run_id=run, result_type=LaterOutcome)


async def _outcome(
    ts_env: WorkflowEnvironment, later: WorkflowHandle[object, LaterOutcome]
) -> LaterOutcome:
    """The later run's outcome. Its waits are skipped step by step: only the handles a start
    returned skip the test server's time while they wait for a result."""
    # Bounded by the worker's time, not by a count of steps: a thousand steps are hours of the
    # run's time but seconds of ours, and a worker a loaded machine held back for them had not
    # yet taken the run's next task (a clean-clone run: "never ended").
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 3 * HANG
    while loop.time() < deadline:
        if (await later.describe()).status != WorkflowExecutionStatus.RUNNING:
            return await later.result()
        await ts_env.sleep(SKIP)
    raise AssertionError("the later run never ended")


def _timers(history: WorkflowHistory) -> list[timedelta]:
    return [
        e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
    ]


def _between_tries(history: WorkflowHistory) -> tuple[int, timedelta]:
    """The later run's notify activity: the attempt that ended it, and how long after it was
    scheduled that attempt started (the waits between its tries, in the server's time)."""
    scheduled = next(
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    )
    started = next(
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    )
    waited = started.event_time.ToDatetime() - scheduled.event_time.ToDatetime()
    return started.activity_task_started_event_attributes.attempt, waited


async def _events(deps: WorkerDeps, kind: str) -> list[Event]:
    async with deps.db.session() as session:
        return [e for e in await EventRepository(session).list(user="alice") if e.kind == kind]


async def _row(deps: WorkerDeps, key: str, channel: str) -> Delivery:
    """The delivery row of notification ``key`` on ``channel`` (a reminder's inbox has one)."""
    async with deps.db.session() as session:
        rows = await DeliveryRepository(session).under("alice", key)
    (row,) = [row for row in rows if row.channel == channel]
    return row


async def test_a_greylisted_email_is_delivered_once_after_the_delay_its_server_asked_for(
    ts_env: WorkflowEnvironment, alice: WorkerDeps, mailbox: Mailbox
) -> None:
    # The server greylists: "451 ... try again in 300 seconds" to the reminder's try and the
    # next one, then takes the mail. The activity's own retries (about 35 s in all) met the
    # 451 each time and the mail was lost; now a deliver-later run tries again when asked.
    mailbox.greylist_first = 2
    task = unique("reminder/alice/standup")
    async with running_worker(ts_env.client, alice) as worker:
        assert await _remind(ts_env, worker, task, {"type": "email", "target": ADDRESS}) == "站会"
        # The reminder's run is over before any mail: it did not wait for the server's delay.
        assert mailbox.messages == []
        later = await _later(ts_env, task)
        outcome = await _outcome(ts_env, later)
    await save_history(later, "deliver_later_greylisted")
    assert outcome == LaterOutcome()
    assert [mail["To"] for mail in mailbox.messages] == [ADDRESS]
    assert len(mailbox.tries) == 3  # the reminder's try, two of the later run's
    history = await later.fetch_history()
    # Each wait as the server asked: 300 s before the later run's first try, 300 s again
    # (the next retry's delay, not the policy's 60 s backoff) before its second.
    assert _timers(history) == [timedelta(seconds=300)]
    attempt, waited = _between_tries(history)
    assert attempt == 2 and waited >= timedelta(seconds=300), (attempt, waited)
    # Said once as retrying, never as given up; not counted as the reminder's failure.
    (retrying,) = await _events(alice, "delivery.failed")
    assert retrying.payload["retrying"] is True and "Greylisted" in retrying.payload["error"]
    assert await _events(alice, "schedule.delivery_failed") == []
    row = await _row(alice, f"{task}/run", "email")
    assert (row.status, row.attempts) == ("sent", 3)


async def test_a_wait_past_the_give_up_asked_by_one_target_leaves_the_others_their_tries(
    ts_env: WorkflowEnvironment, alice: WorkerDeps, mailbox: Mailbox
) -> None:
    """A webhook's daily quota (429, Retry-After a day) beside a greylisting mail server: the
    day was the later run's next retry delay, past its give-up, so the run gave up after its
    first try, and the mail the server would have taken ten minutes later was never sent."""
    mailbox.greylist_first = 5 + 2  # the reminder's five tries, then two of the later run's
    mailbox.greylist_reply = "451 4.7.1 Greylisted, try again in 5 minutes"
    alice.settings = alice.settings.model_copy(update={"notify_give_up_seconds": 1800.0})
    alice.channels = build_channels(alice.settings, alice.db, alice.http)
    posts: list[int] = []

    async def hook(request: Request) -> Response:
        posts.append(429)
        return Response("daily quota", status_code=429, headers={"Retry-After": "86400"})

    task = unique("reminder/alice/standup")
    async with serve(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as base:
        async with running_worker(ts_env.client, alice) as worker:
            email = {"type": "email", "target": ADDRESS}
            await _remind(
                ts_env, worker, task, email, {"type": "webhook", "target": f"{base}/hook"}
            )
            later = await _later(ts_env, task)
            outcome = await _outcome(ts_env, later)
    assert [mail["To"] for mail in mailbox.messages] == [ADDRESS], outcome
    assert (await _row(alice, f"{task}/run", "email")).status == "sent"
    webhook = await _row(alice, f"{task}/run", "webhook")
    assert webhook.status == "failed" and "429" in (webhook.error or ""), webhook.error
    assert outcome.gave_up and [f.split(":")[0] for f in outcome.failures] == ["webhook"]


async def test_a_delivery_a_later_run_has_reads_deferred_until_its_give_up_then_failed(
    ts_env: WorkflowEnvironment, alice: WorkerDeps, mailbox: Mailbox
) -> None:
    # While a deliver-later run has it, the row says so: deferred, the receiver's answer, and
    # until when it is tried again; it read "failed" with "transient: ...", as one given up.
    mailbox.greylist_first = 1000
    notify = NotifyActivities(alice.db, alice.channels)
    key = unique("disk")
    request = NotifyRequest(
        user="alice",
        message=Message(title="Disk 91%", body="node-3"),
        targets=[Target(type="email", target=ADDRESS)],
        idempotency_key=key,
        attempts=1,
    )
    give_up = timedelta(seconds=alice.settings.notify_give_up_seconds)
    before = datetime.now(UTC)
    # Its task queue has no worker: the run handed to waits, and is ended by hand below.
    result = await ActivityEnvironment(client=ts_env.client).run(notify.notify, request)
    after = datetime.now(UTC)
    assert [d.status for d in result.deliveries] == [DeliveryStatus.DEFERRED]
    row = await _row(alice, key, "email")
    assert row.status == "deferred" and "Greylisted" in (row.error or "")
    assert row.retry_until is not None and before + give_up <= row.retry_until <= after + give_up
    handed = ts_env.client.get_workflow_handle(later_workflow_id("alice", key))
    await handed.terminate()

    # A try of the run meets "later" again: still deferred, until the run's give-up (the
    # try's schedule-to-close, less one try's time).
    run = ActivityEnvironment(client=ts_env.client)
    scheduled = datetime.now(UTC)
    run.info = dataclasses.replace(
        run.info,
        workflow_id=handed.id,
        scheduled_time=scheduled,
        started_time=scheduled,
        schedule_to_close_timeout=timedelta(minutes=58),
        start_to_close_timeout=timedelta(minutes=2),
    )
    with pytest.raises(ApplicationError, match="Greylisted"):
        await run.run(notify.notify_later, request)
    row = await _row(alice, key, "email")
    assert (row.status, row.attempts) == ("deferred", 2)
    assert row.retry_until == scheduled + timedelta(minutes=56)
    # Given up (the run's last step): failed, with the receiver's last answer, said once.
    await run.run(notify.notify_given_up, request)
    row = await _row(alice, key, "email")
    assert row.status == "failed" and "Greylisted" in (row.error or "")
    said = sorted(e.payload["retrying"] for e in await _events(alice, "delivery.failed"))
    assert said == [False, True]


async def test_a_recipient_refused_for_good_is_given_up_at_once_not_later(
    ts_env: WorkflowEnvironment, alice: WorkerDeps, mailbox: Mailbox
) -> None:
    mailbox.refuse.add(ADDRESS)  # "550 no such user"
    task = unique("reminder/alice/standup")
    async with running_worker(ts_env.client, alice) as worker:
        await _remind(ts_env, worker, task, {"type": "email", "target": ADDRESS})
        with pytest.raises(RPCError) as missing:
            await _later(ts_env, task)
    assert missing.value.status is RPCStatusCode.NOT_FOUND  # nothing handed over
    assert len(mailbox.tries) == 1 and mailbox.messages == []
    (failed,) = await _events(alice, "schedule.delivery_failed")
    assert "(550 no such user)" in failed.payload["errors"][0]


async def test_a_refusal_for_good_after_greylisting_ends_the_later_delivery_at_once(
    ts_env: WorkflowEnvironment, alice: WorkerDeps, mailbox: Mailbox
) -> None:
    mailbox.greylist_first = 1
    task = unique("reminder/alice/standup")
    async with running_worker(ts_env.client, alice) as worker:
        await _remind(ts_env, worker, task, {"type": "email", "target": ADDRESS})
        mailbox.refuse.add(ADDRESS)  # the mailbox is gone by the next try
        later = await _later(ts_env, task)
        outcome = await _outcome(ts_env, later)
    assert not outcome.gave_up
    (failure,) = outcome.failures
    assert failure.startswith("email: permanent: recipient ") and "refused (550" in failure
    assert len(mailbox.tries) == 2 and mailbox.messages == []  # one later try, no more
    assert _between_tries(await later.fetch_history())[0] == 1
    # Said retrying at the greylisting, then refused for good: two events, no "given up".
    retrying, refused = sorted(
        await _events(alice, "delivery.failed"), key=lambda e: not e.payload["retrying"]
    )
    assert retrying.payload["retrying"] and "(451 4.7.1 Greylisted" in retrying.payload["error"]
    assert not refused.payload["retrying"] and "(550 no such user)" in refused.payload["error"]


async def _greylisted_for_good(
    ts_env: WorkflowEnvironment, alice: WorkerDeps, mailbox: Mailbox, reply: str, task: str
) -> tuple[WorkflowHandle[object, LaterOutcome], LaterOutcome]:
    """Reminder ``task``'s email to a server that greylists it with ``reply`` every time, given
    up 15 minutes after its hand-over: its deliver-later run and how that ended."""
    mailbox.greylist_first = 1000
    mailbox.greylist_reply = reply
    alice.settings = alice.settings.model_copy(update={"notify_give_up_seconds": 900.0})
    alice.channels = build_channels(alice.settings, alice.db, alice.http)
    async with running_worker(ts_env.client, alice) as worker:
        await _remind(ts_env, worker, task, {"type": "email", "target": ADDRESS})
        later = await _later(ts_env, task)
        return later, await _outcome(ts_env, later)


async def test_a_greylisting_without_end_is_given_up_after_the_setting_with_its_last_answer(
    ts_env: WorkflowEnvironment, alice: WorkerDeps, mailbox: Mailbox
) -> None:
    task = unique("reminder/alice/standup")
    later, outcome = await _greylisted_for_good(
        ts_env, alice, mailbox, "451 4.7.1 Greylisted, try again in 5 minutes", task
    )
    await save_history(later, "deliver_later_gave_up")
    # Tried at the hand-over and 5, 10 and 15 minutes after it; a try 20 minutes after would
    # start past the give-up (15 minutes, plus a try's own time).
    assert len(mailbox.tries) == 4 and mailbox.messages == []
    assert outcome.gave_up
    (failure,) = outcome.failures
    assert (
        failure.startswith("email: transient: recipient ")
        and "refused for now" in failure
        and "5 minutes" in failure
    )
    given_up = [e for e in await _events(alice, "delivery.failed") if not e.payload["retrying"]]
    (said,) = given_up
    assert "451" in said.payload["error"] and "try again in 5 minutes" in said.payload["error"]
    row = await _row(alice, f"{task}/run", "email")
    assert row.status == "failed" and "451" in (row.error or "") and row.attempts == 4


async def test_a_webhook_asking_to_wait_past_a_sends_waits_is_posted_again_then_once(
    ts_env: WorkflowEnvironment, alice: WorkerDeps
) -> None:
    # "429, Retry-After: 120": longer than a send waits in a try (30 s), so the activity's
    # retries (about 35 s) met the 429 each time. Now a deliver-later run posts after 120 s.
    answers: list[int] = []

    async def hook(request: Request) -> Response:
        answers.append(429 if not answers else 200)
        if answers[-1] == 429:
            return Response("slow down", status_code=429, headers={"Retry-After": "120"})
        return Response("ok")

    task = unique("reminder/alice/standup")
    async with serve(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as base:
        async with running_worker(ts_env.client, alice) as worker:
            await _remind(ts_env, worker, task, {"type": "webhook", "target": f"{base}/hook"})
            assert answers == [429]
            later = await _later(ts_env, task)
            assert await _outcome(ts_env, later) == LaterOutcome()
    assert answers == [429, 200]
    assert _timers(await later.fetch_history()) == [timedelta(seconds=120)]
    assert (await _row(alice, f"{task}/run", "webhook")).status == "sent"
    (retrying,) = await _events(alice, "delivery.failed")
    assert retrying.payload["error"] == "HTTP 429 (Retry-After: 120)"


def _mail_worker_env(
    dev_env: WorkflowEnvironment, alice: WorkerDeps, mailbox: Mailbox, queue: str, tmp_path: Path
) -> dict[str, str]:
    """`ambient worker`'s environment on ``queue``, mailing through ``mailbox``."""
    address = dev_env.client.service_client.config.target_host
    env = worker_env(alice, address, queue, tmp_path / "no-kubeconfig")
    return env | {
        "AMBIENT_SMTP_HOST": "127.0.0.1",
        "AMBIENT_SMTP_PORT": str(mailbox.port),
        "AMBIENT_SMTP_TLS": "none",
        "AMBIENT_NOTIFY_TARGET_TIMEOUT": "5",  # the row's lease: 10 s, within the heartbeat's 30
    }


@pytest.mark.devserver
async def test_a_later_try_whose_worker_died_as_the_server_took_the_mail_sends_no_second_copy(
    dev_env: WorkflowEnvironment, alice: WorkerDeps, mailbox: Mailbox, tmp_path: Path
) -> None:
    # The dangerous window: the mail server has taken the message, the row does not say sent
    # yet. `ambient worker` is killed -9 right there (the server keeps the mail, its 250 goes
    # nowhere). The try runs again in a new worker once the dead one's heartbeat timeout has
    # passed, and the row's lease with it: it must not mail a second copy.
    queue = unique("later-crash")
    env = _mail_worker_env(dev_env, alice, mailbox, queue, tmp_path)
    first: list[subprocess.Popen[bytes]] = []

    def kill_the_worker() -> None:
        if first and first[0].poll() is None:
            os.kill(first[0].pid, signal.SIGKILL)

    mailbox.on_data = kill_the_worker
    request = NotifyRequest(
        user="alice",
        message=Message(title="Disk 91%", body="node-3"),
        targets=[Target(type="email", target=ADDRESS)],
        idempotency_key=unique("disk"),
    )
    with worker_process(env, tmp_path, tmp_path / "worker-1.log") as worker:
        first.append(worker)
        later = await dev_env.client.start_workflow(
            DeliverLaterWorkflow.run,
            LaterDelivery(request=request, wait=1, backoff=1, give_up_after=600),
            id=later_workflow_id("alice", request.idempotency_key),
            task_queue=queue,
        )
        assert await asyncio.to_thread(worker.wait, 120) == -signal.SIGKILL
    assert len(mailbox.messages) == 1  # taken, unanswered
    row = await _row(alice, request.idempotency_key, "email")
    assert row.status == "pending"  # the dead try's: in flight until its lease ends
    with worker_process(env, tmp_path, tmp_path / "worker-2.log") as second:
        await eventually(lambda: polls_workflow_tasks(dev_env.client, queue, second.pid), bound=120)
        outcome = await asyncio.wait_for(later.result(), 180)
    assert len(mailbox.messages) == 1, "a second copy"
    # Not known to be delivered: said so, not sent again (as a connection lost after DATA).
    row = await _row(alice, request.idempotency_key, "email")
    assert row.status == "failed" and "may have been delivered; not sent again" in (row.error or "")
    assert [line.split(": ", 1)[0] for line in outcome.failures] == ["email"]
    (said,) = await _events(alice, "delivery.failed")
    assert not said.payload["retrying"] and "may have been delivered" in said.payload["error"]


@pytest.mark.devserver
async def test_a_try_whose_worker_died_before_the_servers_354_sends_the_mail_once_later(
    dev_env: WorkflowEnvironment, alice: WorkerDeps, mailbox: Mailbox, tmp_path: Path
) -> None:
    # A server that holds its 354 to DATA (a policy check there) has none of the message:
    # the worker killed -9 then had recorded the row as handing it over, and the next try
    # gave it up as "may have been delivered", a mail never sent.
    queue = unique("later-before-354")
    env = _mail_worker_env(dev_env, alice, mailbox, queue, tmp_path)
    first: list[subprocess.Popen[bytes]] = []

    def kill_the_worker() -> None:
        if first and first[0].poll() is None:
            os.kill(first[0].pid, signal.SIGKILL)
            first[0].wait()  # dead before the 354 goes

    mailbox.on_data_command = kill_the_worker
    request = NotifyRequest(
        user="alice",
        message=Message(title="Disk 92%", body="node-4"),
        targets=[Target(type="email", target=ADDRESS)],
        idempotency_key=unique("disk"),
    )
    with worker_process(env, tmp_path, tmp_path / "worker-1.log") as worker:
        first.append(worker)
        later = await dev_env.client.start_workflow(
            DeliverLaterWorkflow.run,
            LaterDelivery(request=request, wait=1, backoff=1, give_up_after=600),
            id=later_workflow_id("alice", request.idempotency_key),
            task_queue=queue,
        )
        assert await asyncio.to_thread(worker.wait, 120) == -signal.SIGKILL
    mailbox.on_data_command = None
    assert mailbox.messages == []
    with worker_process(env, tmp_path, tmp_path / "worker-2.log") as second:
        await eventually(lambda: polls_workflow_tasks(dev_env.client, queue, second.pid), bound=120)
        outcome = await asyncio.wait_for(later.result(), 180)
    assert len(mailbox.messages) == 1 and outcome.failures == [], outcome
    row = await _row(alice, request.idempotency_key, "email")
    assert row.status == "sent", row.error


async def test_a_try_hands_over_once_only_later_answers_are_left_or_at_its_last_try(
    ts_env: WorkflowEnvironment, alice: WorkerDeps
) -> None:
    # One webhook answers 503 ("later"), the other 500 (a plain failure, which may pass in
    # seconds): the activity's quick retries go on; its last try hands both over. A receiver
    # asking to wait past the give-up is not handed over: the retries end as before.
    async def busy(request: Request) -> Response:
        return Response("busy", status_code=503)

    async def broken(request: Request) -> Response:
        return Response("boom", status_code=500)

    async def closed(request: Request) -> Response:
        return Response("closed", status_code=503, headers={"Retry-After": "7200"})

    routes = [
        Route("/busy", busy, methods=["POST"]),
        Route("/broken", broken, methods=["POST"]),
        Route("/closed", closed, methods=["POST"]),
    ]
    notify = NotifyActivities(alice.db, alice.channels)
    tries = ActivityEnvironment(client=ts_env.client)

    def request(key: str, *paths: str, attempts: int) -> NotifyRequest:
        return NotifyRequest(
            user="alice",
            message=Message(title="Disk 91%", body="node-3"),
            targets=[Target(type="webhook", target=f"{base}{path}") for path in paths],
            idempotency_key=key,
            attempts=attempts,  # the first try of 5, or the last of 1
        )

    async with serve(Starlette(routes=routes)) as base:
        mixed = unique("mixed")
        with pytest.raises(ApplicationError, match="HTTP 500"):
            await tries.run(notify.notify, request(mixed, "/busy", "/broken", attempts=5))
        with pytest.raises(RPCError):
            await ts_env.client.get_workflow_handle(later_workflow_id("alice", mixed)).describe()
        result = await tries.run(notify.notify, request(mixed, "/busy", "/broken", attempts=1))
        assert [d.status for d in result.deliveries] == [DeliveryStatus.DEFERRED] * 2
        handed = ts_env.client.get_workflow_handle(later_workflow_id("alice", mixed))
        assert (await handed.describe()).workflow_type == "DeliverLaterWorkflow"
        await handed.terminate()

        past = unique("past")
        with pytest.raises(ApplicationError, match=r"HTTP 503 \(Retry-After: 7200\)"):
            await tries.run(notify.notify, request(past, "/closed", attempts=1))
        with pytest.raises(RPCError):
            await ts_env.client.get_workflow_handle(later_workflow_id("alice", past)).describe()


async def test_a_hand_over_whose_result_was_lost_is_not_said_given_up_while_its_run_goes_on(
    ts_env: WorkflowEnvironment, alice: WorkerDeps, mailbox: Mailbox
) -> None:
    # The notify activity's last try handed the mail over, then its worker died before
    # reporting: its caller takes the activity for failed and says each delivery given up
    # (notify_given_up). The deliver-later run still tries it: that would be said too soon.
    mailbox.greylist_first = 1
    notify = NotifyActivities(alice.db, alice.channels)
    tries = ActivityEnvironment(client=ts_env.client)  # its task queue has no worker: it waits
    key = unique("disk")
    request = NotifyRequest(
        user="alice",
        message=Message(title="Disk 91%", body="node-3"),
        targets=[Target(type="email", target=ADDRESS)],
        idempotency_key=key,
        attempts=1,
    )
    result = await tries.run(notify.notify, request)
    assert [d.status for d in result.deliveries] == [DeliveryStatus.DEFERRED]
    await tries.run(notify.notify_given_up, request)
    assert [e.payload["retrying"] for e in await _events(alice, "delivery.failed")] == [True]
    # Once no run goes on (here: ended by hand), it is said.
    await ts_env.client.get_workflow_handle(later_workflow_id("alice", key)).terminate()
    await tries.run(notify.notify_given_up, request)
    said = sorted(e.payload["retrying"] for e in await _events(alice, "delivery.failed"))
    assert said == [False, True]


async def test_a_failure_handed_over_with_a_later_answer_at_the_last_try_is_not_said_given_up(
    ts_env: WorkflowEnvironment, alice: WorkerDeps
) -> None:
    # The activity's last try: one webhook answers 503 with a Retry-After ("later"), the other
    # 500. Both go to the deliver-later run, which tries the 500 again too: neither is given up
    # yet, so no delivery.failed says "not retrying" (the run says so if it gives up).
    async def busy(request: Request) -> Response:
        return Response("busy", status_code=503, headers={"Retry-After": "120"})

    async def broken(request: Request) -> Response:
        return Response("boom", status_code=500)

    routes = [Route("/busy", busy, methods=["POST"]), Route("/broken", broken, methods=["POST"])]
    notify = NotifyActivities(alice.db, alice.channels)
    tries = ActivityEnvironment(client=ts_env.client)  # its task queue has no worker: it waits
    key = unique("mixed")
    async with serve(Starlette(routes=routes)) as base:
        request = NotifyRequest(
            user="alice",
            message=Message(title="Disk 91%", body="node-3"),
            targets=[Target(type="webhook", target=f"{base}{p}") for p in ("/busy", "/broken")],
            idempotency_key=key,
            attempts=1,
        )
        result = await tries.run(notify.notify, request)
    assert [d.status for d in result.deliveries] == [DeliveryStatus.DEFERRED] * 2
    handed = ts_env.client.get_workflow_handle(later_workflow_id("alice", key))
    assert (await handed.describe()).status == WorkflowExecutionStatus.RUNNING
    said = sorted(
        (e.payload["error"], e.payload["retrying"]) for e in await _events(alice, "delivery.failed")
    )
    # Told apart by the receivers' answers (a target is shown by its host only).
    assert said == [("HTTP 500", True), ("HTTP 503 (Retry-After: 120)", True)]
    await handed.terminate()


async def test_no_later_try_starts_after_the_give_up(
    ts_env: WorkflowEnvironment, alice: WorkerDeps, mailbox: Mailbox
) -> None:
    # "Try again in 4 minutes", given up 15 minutes after the hand-over: tried then and 4, 8
    # and 12 minutes after it. A try 16 minutes after would start past the give-up (and with
    # less than a try's time left before the activity's schedule-to-close, cut off mid-send).
    task = unique("reminder/alice/standup")
    _, outcome = await _greylisted_for_good(
        ts_env, alice, mailbox, "451 4.7.1 Greylisted, try again in 4 minutes", task
    )
    assert outcome.gave_up
    assert len(mailbox.tries) == 4, len(mailbox.tries)
    # Given up with the receiver's last answer, said once.
    (failure,) = outcome.failures
    assert (
        failure.startswith("email: transient: recipient ")
        and "refused for now" in failure
        and "4 minutes" in failure
    )
    said = sorted(e.payload["retrying"] for e in await _events(alice, "delivery.failed"))
    assert said == [False, True]


async def test_a_later_try_whose_receiver_asks_an_absurd_wait_ends_with_its_answer(
    ts_env: WorkflowEnvironment, alice: WorkerDeps
) -> None:
    # A later try's webhook answers "429, Retry-After: 10^20 s" (a bug at the receiver): past
    # any give-up, so the try fails with the receiver's answer and no retry comes before the
    # give-up; it must not fail with an error of its own (timedelta's OverflowError), which
    # Temporal retried by the backoff with the answer lost.
    async def hook(request: Request) -> Response:
        return Response("slow down", status_code=429, headers={"Retry-After": "1" + "0" * 20})

    notify = NotifyActivities(alice.db, alice.channels)
    tries = ActivityEnvironment(client=ts_env.client)
    async with serve(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as base:
        request = NotifyRequest(
            user="alice",
            message=Message(title="Disk 91%", body="node-3"),
            targets=[Target(type="webhook", target=f"{base}/hook")],
            idempotency_key=unique("absurd"),
        )
        with pytest.raises(ApplicationError) as failed:
            await tries.run(notify.notify_later, request)
    assert failed.value.type == "TransientNotifyError"
    assert "HTTP 429" in str(failed.value)
    assert failed.value.next_retry_delay is not None
    assert failed.value.next_retry_delay >= timedelta(seconds=alice.settings.notify_give_up_seconds)


async def test_a_later_delivery_cancelled_by_an_operator_is_said_given_up(
    dev_env: WorkflowEnvironment, alice: WorkerDeps, mailbox: Mailbox
) -> None:
    # An operator cancels the deliver-later run (the Web UI's way to stop its retries) while it
    # waits the 300 s the mail server asked: the delivery is over, and the user is told so once,
    # as when the run gives up; else it stays "retrying" for good. On a real server (the
    # time-skipping one tried a failed try again after the cancel, and the run's end waited on
    # its skipped time: a CI run's "never ended").
    mailbox.greylist_first = 1000
    task = unique("reminder/alice/standup")
    async with running_worker(dev_env.client, alice) as worker:
        await _remind(dev_env, worker, task, {"type": "email", "target": ADDRESS})
        later = await _later(dev_env, task)
        await later.cancel()
        with pytest.raises(WorkflowFailureError):
            await later.result()
    assert len(mailbox.tries) == 1  # the reminder's own try: none after the cancel
    assert (await later.describe()).status == WorkflowExecutionStatus.CANCELED
    await save_history(later, "deliver_later_cancelled")
    said = sorted(e.payload["retrying"] for e in await _events(alice, "delivery.failed"))
    assert said == [False, True]
    # Failed, with the receiver's answer (or, cancelled in a try, as no try finished it).
    assert (await _row(alice, f"{task}/run", "email")).status == "failed"


async def test_a_later_delivery_cancelled_while_its_try_is_told_later_is_cancelled_not_given_up(
    dev_env: WorkflowEnvironment, alice: WorkerDeps, mailbox: Mailbox
) -> None:
    # The operator's cancel reaches the run while a try waits on the mail server, which then
    # answers "later" before the try heard the cancel: Temporal tries no more, and the run
    # took that failure for its give-up, ending Completed "gave up" instead of Canceled.
    mailbox.greylist_first = 1000
    mailbox.greylist_reply = "451 4.7.1 Greylisted, try again in 5 seconds"
    asked, answer = threading.Event(), threading.Event()
    greylisting = mailbox.handle_RCPT

    async def held(server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if mailbox.tries:  # the later run's try, held at the server until the cancel is in
            asked.set()
            await asyncio.to_thread(answer.wait, HANG)
        return await greylisting(server, session, envelope, address, options)

    mailbox.handle_RCPT = held  # type: ignore[method-assign]
    task = unique("reminder/alice/standup")
    email = {"type": "email", "target": ADDRESS}
    async with (
        running_worker(dev_env.client, alice) as worker,
        _standing(dev_env.client, worker, task, email),
    ):
        await _remind(dev_env, worker, task, email)
        later = await _later(dev_env, task)
        await asyncio.to_thread(asked.wait, HANG)
        await later.cancel()

        async def cancel_asked() -> bool:
            events = (await later.fetch_history()).events
            return any(
                e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED for e in events
            )

        await eventually(cancel_asked, "the try's cancel asked")
        answer.set()
        with pytest.raises(WorkflowFailureError):
            await later.result()
    assert (await later.describe()).status == WorkflowExecutionStatus.CANCELED
    await save_history(later, "deliver_later_cancelled_mid_try")
    assert len(mailbox.tries) == 2  # no try after the cancel
    said = sorted(e.payload["retrying"] for e in await _events(alice, "delivery.failed"))
    assert said == [False, True]
    assert (await _row(alice, f"{task}/run", "email")).status == "failed"


async def test_a_503_that_names_no_delay_is_tried_again_in_seconds_not_handed_over(
    ts_env: WorkflowEnvironment, alice: WorkerDeps
) -> None:
    # A proxy in front of the webhook answers 503 once, with no Retry-After (its upstream
    # restarting: seconds). The activity's quick retries (2 s on) deliver it while the
    # reminder runs; nothing says a minute's wait was asked for, so no deliver-later run.
    answers: list[int] = []

    async def hook(request: Request) -> Response:
        answers.append(503 if not answers else 200)
        return Response("upstream restarting" if answers[-1] == 503 else "ok", answers[-1])

    task = unique("reminder/alice/standup")
    async with serve(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as base:
        async with running_worker(ts_env.client, alice) as worker:
            await _remind(ts_env, worker, task, {"type": "webhook", "target": f"{base}/hook"})
            assert answers == [503, 200]
            with pytest.raises(RPCError) as missing:
                await _later(ts_env, task)
    assert missing.value.status is RPCStatusCode.NOT_FOUND
    assert (await _row(alice, f"{task}/run", "webhook")).status == "sent"
