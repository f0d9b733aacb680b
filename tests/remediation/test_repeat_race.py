"""An alert sent again just as its run ends: the repeat starts the next run, never a 500."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import Response
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    SignalWorkflowInput,
    StartWorkflowUpdateInput,
    WorkflowHandle,
)
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.remediation import joins
from ambient.remediation.runs import FINAL_STATES, ApprovalInput, RemediationStatus
from ambient.remediation.service import RemediationService
from ambient.remediation.views import InvalidRemediationError
from ambient.storage.audit import AuditRepository
from ambient.temporal import STATE
from tests.conftest import running_worker, unique
from tests.remediation.support import (
    ErrorRate,
    add_user,
    alert,
    as_door,
    closed_today_and_tomorrow,
    error_rate,
    remediation_settings,
    remediations_with_worker,
    state_reaches,
)
from tests.support.servers import serve
from tests.support.waits import eventually

Racer = Callable[[WorkflowHandle[Any, Any]], Awaitable[None]]  # what befalls the run meanwhile


class BeforeJoined(Interceptor):
    """Runs ``act`` on the run, through another client, just before a repeat's "joined" signal
    reaches it: the moment between the start that found it running and the repeat's signal."""

    def __init__(self, other: Client, act: Racer) -> None:
        self.other, self.act = other, act

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        other, act = self.other, self.act
        acted: list[str] = []

        async def once(workflow_id: str) -> None:
            # The join's update, or its signal when no worker took the update in time (a
            # loaded host): the run is raced once.
            if not acted:
                acted.append(workflow_id)
                await act(other.get_workflow_handle(workflow_id))

        class Outbound(OutboundInterceptor):
            async def signal_workflow(self, input: SignalWorkflowInput) -> None:
                if input.signal == "joined":
                    await once(input.id)
                await super().signal_workflow(input)

            async def start_workflow_update(self, input: StartWorkflowUpdateInput) -> Any:
                if input.update == "join":
                    await once(input.id)
                return await super().start_workflow_update(input)

        return Outbound(next)


async def repeat_racing(
    dev_env: WorkflowEnvironment,
    deps: WorkerDeps,
    racer: Racer,
    **sent: Any,
) -> None:
    """A run waiting for approval at rung 1 and its alert sent again through a client whose
    ``racer`` acts on the run between the repeat's look at it and its signal: the repeat starts
    the next run under the same id."""
    owner = unique("ops")
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, owner)
    async with remediations_with_worker(dev_env, deps, healthy_from=1) as (url, settings, service):
        subject = alert(url, workload=unique("checkout"), **sent)
        first = await service.start(owner, subject, "dry_run")
        handle = dev_env.client.get_workflow_handle(
            first.remediation_id, result_type=RemediationStatus
        )
        await state_reaches(
            dev_env, handle, ("waiting_approval",), step=timedelta(milliseconds=100)
        )
        first_run = (await handle.describe()).run_id
        config: dict[str, Any] = dev_env.client.config()
        racing = Client(**{**config, "interceptors": [BeforeJoined(dev_env.client, racer)]})
        with pytest.MonkeyPatch.context() as patch:
            # The racer acts inside the join's wait for its update to be taken: on a loaded
            # host a run's resolving outlasted the product's second, and the repeat went to
            # the run still applying (rightly joined, not the race this test makes).
            patch.setattr(joins, "JOIN_TAKEN_WITHIN", 120.0)
            repeat = await RemediationService(racing, settings, deps.db).start(
                owner, subject, "dry_run"
            )
        assert repeat.created and repeat.remediation_id == first.remediation_id, repeat
        assert (await handle.describe()).run_id != first_run
        await handle.terminate("test over")


async def ends(run: WorkflowHandle[Any, Any]) -> None:
    """The run ends (terminated by another client)."""
    await run.terminate("ended meanwhile")


async def test_a_repeat_that_finds_its_run_ended_before_its_signal_starts_the_next_run(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    await repeat_racing(dev_env, deps, ends)


async def resolves(deps: WorkerDeps, run: WorkflowHandle[Any, Any]) -> None:
    """The run resolves (approved through a door, then healthy): the signal reaches a run that
    is still sending its report but changes nothing."""
    approval = ApprovalInput(approver="lead", approver_permission="execute", approve=True)
    await run.execute_update("approve", await as_door(deps, run, approval))

    async def ended() -> bool:
        return (await run.describe()).typed_search_attributes.get(STATE) in FINAL_STATES

    await eventually(ended, "the run resolved")


async def test_a_repeat_whose_run_ends_between_its_look_and_its_signal_starts_the_next_run(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # Told "joined", the sender's alert went to a run that had stopped looking at alerts.
    await repeat_racing(dev_env, deps, lambda run: resolves(deps, run), settle_seconds=0)


async def test_a_repeat_while_its_ended_run_sends_its_report_starts_the_next_run_after_it(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that has ended (resolved) still sends its notice; while it did, the alert again
    was answered "already being remediated (state resolved)" and nothing started: an alert
    that came back at once was dropped. It now waits for the ended run, then starts the next
    one; past the wait it says so (nothing started) instead of claiming a remediation."""
    import asyncio

    from temporalio.worker import Worker

    from activities.registry import build_activities
    from ambient import temporal
    from ambient.remediation.views import RemediationStateError
    from worker import ALL_WORKFLOWS, build_worker

    owner = unique("ops")
    remediation_settings(deps, remediation_approval_from_rung=6)
    await add_user(deps, owner)
    queue = unique("tq")
    # A worker that cannot send notices yet: the run's final notice waits for one that can.
    mute = [a for a in build_activities(deps) if a.__name__ != "notify"]  # type: ignore[attr-defined]
    async with error_rate(healthy_from=1) as (_, url):
        async with Worker(
            dev_env.client,
            task_queue=queue,
            workflows=ALL_WORKFLOWS,
            activities=mute,
            workflow_runner=temporal.workflow_runner(),
        ):
            settings = deps.settings.model_copy(update={"temporal_task_queue": queue})
            service = RemediationService(dev_env.client, settings, deps.db)
            sent = alert(url, workload=unique("checkout"), settle_seconds=0)
            first = await service.start(owner, sent, "dry_run")
            handle = dev_env.client.get_workflow_handle(first.remediation_id)
            for _ in range(300):
                described = await handle.describe()
                if described.typed_search_attributes.get(temporal.STATE) == "resolved":
                    break
                await asyncio.sleep(0.1)
            monkeypatch.setattr(joins, "FINISHING_WAIT", 1.0)
            with pytest.raises(RemediationStateError, match="still sending its report"):
                await service.start(owner, sent, "dry_run")
        monkeypatch.setattr(joins, "FINISHING_WAIT", 30.0)
        async with build_worker(dev_env.client, deps, task_queue=queue):
            repeat = await service.start(owner, sent, "dry_run")
            assert repeat.created and repeat.remediation_id == first.remediation_id, repeat
            assert (await handle.describe()).run_id != described.run_id
            await handle.terminate("test over")


async def test_a_repeat_while_a_handed_over_run_sends_its_push_is_not_joined_into_it(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run handed over (here: outside every change window) pushes to its owner before it
    ends; while the push went out its state was still the one before ('planned'), so the
    alert again was deduplicated into a run that will change nothing more. Its state is now
    handed_over before the push: the repeat waits for it, as for any ended run."""
    import asyncio

    from temporalio.worker import Worker

    from activities.registry import build_activities
    from ambient import temporal
    from ambient.remediation.views import RemediationStateError
    from worker import ALL_WORKFLOWS

    owner = unique("ops")
    remediation_settings(
        deps,
        remediation_approval_from_rung=6,
        remediation_change_windows=closed_today_and_tomorrow(deps),
        remediation_max_gate_wait_minutes=0,
    )
    await add_user(deps, owner)
    queue = unique("tq")
    # A worker that cannot send notices: the hand-over's push waits for one that can.
    mute = [a for a in build_activities(deps) if a.__name__ != "notify"]  # type: ignore[attr-defined]
    async with (
        error_rate(healthy_from=1) as (_, url),
        Worker(
            dev_env.client,
            task_queue=queue,
            workflows=ALL_WORKFLOWS,
            activities=mute,
            workflow_runner=temporal.workflow_runner(),
        ),
    ):
        settings = deps.settings.model_copy(update={"temporal_task_queue": queue})
        service = RemediationService(dev_env.client, settings, deps.db)
        sent = alert(url, workload=unique("checkout"))
        first = await service.start(owner, sent, "dry_run")
        handle = dev_env.client.get_workflow_handle(first.remediation_id)
        for _ in range(300):
            history = [e async for e in handle.fetch_history_events()]
            if any(
                e.activity_task_scheduled_event_attributes.activity_type.name == "notify"
                for e in history
            ):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("no hand-over push")
        monkeypatch.setattr(joins, "FINISHING_WAIT", 0.5)
        try:
            with pytest.raises(RemediationStateError, match="still sending its report"):
                await service.start(owner, sent, "dry_run")
        finally:
            await handle.terminate("test over")


async def test_a_reason_past_the_bound_is_refused_by_name_through_every_door(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """The API and MCP bound an approval's or abort's reason at 1000 characters; the web form
    and the CLI pass any text to the service, which refuses it naming the field (the web
    form's 500 and the CLI's pydantic dump were a ValidationError of the workflow input) and
    leaves the run as it was."""
    owner = unique("ops")
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, owner)
    async with remediations_with_worker(dev_env, deps, healthy_from=1) as (url, _, service):
        first = await service.start(owner, alert(url, workload=unique("checkout")), "dry_run")
        handle = dev_env.client.get_workflow_handle(
            first.remediation_id, result_type=RemediationStatus
        )
        await state_reaches(
            dev_env, handle, ("waiting_approval",), step=timedelta(milliseconds=100)
        )
        long = "x" * 1001
        with pytest.raises(InvalidRemediationError, match="reason: at most 1000") as refused:
            await service.approve(owner, first.remediation_id, False, long, via="api")
        assert refused.value.field == "reason"
        with pytest.raises(InvalidRemediationError, match="reason: at most 1000") as refused:
            await service.abort(owner, first.remediation_id, long, via="api")
        assert refused.value.field == "reason"
        status = await service.get(owner, first.remediation_id)
        await handle.terminate("test over")
    assert status.state == "waiting_approval" and status.approvals == []


async def test_a_run_repeated_a_thousand_times_still_shows_its_audit_to_its_end(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=1)
    name, stranger = unique("kai"), unique("mallory")
    await add_user(deps, name, permission="dry_run")
    async with remediations_with_worker(dev_env, deps) as (url, _, remediations):
        rid = (await remediations.start(name, alert(url, workload=name))).remediation_id
        handle = dev_env.client.get_workflow_handle(rid)
        waiting = await state_reaches(dev_env, handle, ("waiting_approval",), timedelta(0))
        # The rows a thousand repeats of the alert write (anyone may send it: an alarm that
        # fires every ten seconds for three hours, or a stranger), then the owner aborts.
        async with deps.db.session() as session:
            for _ in range(1000):
                await AuditRepository(session).append(
                    actor=stranger,
                    action="deduplicated",
                    subject=waiting.run_key,
                    detail={"user": stranger, "source": stranger},
                )
            await session.commit()
        await remediations.abort(name, rid, "mine to stop", via="api")
        await handle.result()
        view = await remediations.get(name, rid)

    actions = [line.action for line in view.audit]
    assert actions[0] == "scored" and actions.count("deduplicated") == 100
    assert actions[-2:] == ["aborted", "finished"], actions[-3:]
    assert [line.actor for line in view.audit if line.action == "aborted"] == [name]


class EndsAndRestartsAfterItsSignal(Interceptor):
    """The run takes the repeat's signal, then ends (terminated) and another intake starts the
    alert's next run, all before the repeat looks at the run again."""

    def __init__(self, other: Client, restart: Callable[[], Awaitable[Any]]) -> None:
        self.other, self.restart, self.raced = other, restart, False

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        racer = self

        class Outbound(OutboundInterceptor):
            async def start_workflow_update(self, input: StartWorkflowUpdateInput) -> Any:
                sent = await super().start_workflow_update(input)
                if input.update == "join" and not racer.raced:
                    racer.raced = True
                    await racer.other.get_workflow_handle(input.id).terminate("ended meanwhile")
                    await racer.restart()
                return sent

        return Outbound(next)


async def test_a_repeat_is_joined_into_the_run_it_signalled_not_a_newer_one(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # The second look went to the newest run of the id: the repeat was recorded against the
    # next run, which never got its signal (and the run that got it had ended).
    owner, sender = unique("ops"), unique("sender")
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, owner)
    await add_user(deps, sender)
    async with remediations_with_worker(dev_env, deps, healthy_from=1) as (url, settings, service):
        subject = alert(url, workload=unique("checkout"))
        rid = (await service.start(owner, subject, "dry_run")).remediation_id
        handle = dev_env.client.get_workflow_handle(rid, result_type=RemediationStatus)
        await state_reaches(
            dev_env, handle, ("waiting_approval",), step=timedelta(milliseconds=100)
        )
        racer = EndsAndRestartsAfterItsSignal(
            dev_env.client, lambda: service.start(owner, subject, "dry_run")
        )
        racing = Client(**{**dev_env.client.config(), "interceptors": [racer]})
        repeat = await RemediationService(racing, settings, deps.db).start(sender, subject)
        now = await service.get(owner, rid)
        async with deps.db.session() as session:
            joins = await AuditRepository(session).list(actor=sender, action="deduplicated")
        await handle.terminate("test over")
    assert racer.raced and repeat.deduplicated, repeat
    assert sender in now.joined_by, now.joined_by  # the run it was joined into got it
    assert [j.subject for j in joins] == [now.run_key]


class SentJoin(Interceptor):
    """Sets ``sent`` once a repeat's join has reached the server (a signal, taken) or is on
    its way to it (an update: its answer waits for the run)."""

    def __init__(self) -> None:
        self.sent = asyncio.Event()

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        sent = self.sent

        class Outbound(OutboundInterceptor):
            async def signal_workflow(self, input: SignalWorkflowInput) -> None:
                await super().signal_workflow(input)
                if input.signal == "joined":
                    sent.set()

            async def start_workflow_update(self, input: StartWorkflowUpdateInput) -> Any:
                if input.update == "join":
                    sent.set()
                return await super().start_workflow_update(input)

        return Outbound(next)


@dataclass
class HeldRead(ErrorRate):
    """The error rate, its first read held until ``release`` (the run's verify in flight)."""

    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def metrics(self, request: Request) -> Response:
        if not self.arrived.is_set():
            self.arrived.set()
            await self.release.wait()
        return await super().metrics(request)


async def test_an_alert_joining_while_its_run_verifies_is_checked_or_starts_the_next_run(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """An alert on the workload (another metric, still unhealthy) sent while the run's verify
    read was in flight: the run decided "resolved" in that workflow task, took the alert's
    signal after it, and never read the alert; the sender was told it joined (deduplicated)
    and nothing ever looked at it again. The run now takes an alert only before its outcome:
    past it, the alert starts the next run once this one has ended."""
    owner = unique("ops")
    remediation_settings(deps, remediation_approval_from_rung=6)
    await add_user(deps, owner)
    held = HeldRead(healthy_from=1)
    still_bad = ErrorRate(healthy_from=None)
    async with (
        serve(held.app()) as base,
        serve(still_bad.app()) as bad_base,
        running_worker(dev_env.client, deps) as worker,
    ):
        settings = deps.settings.model_copy(update={"temporal_task_queue": worker.task_queue})
        service = RemediationService(dev_env.client, settings, deps.db)
        workload = unique("checkout")
        first = await service.start(
            owner, alert(f"{base}/metrics", workload=workload, settle_seconds=0), "dry_run"
        )
        await asyncio.wait_for(held.arrived.wait(), 60)
        run_id = (await dev_env.client.get_workflow_handle(first.remediation_id).describe()).run_id
        handle = dev_env.client.get_workflow_handle(
            first.remediation_id, run_id=run_id, result_type=RemediationStatus
        )
        joining = SentJoin()
        racing = Client(**{**dev_env.client.config(), "interceptors": [joining]})
        other = alert(
            f"{bad_base}/metrics", workload=workload, metric="latency_p99", source="monitor"
        )
        repeat = asyncio.ensure_future(
            RemediationService(racing, settings, deps.db).start(owner, other, "dry_run")
        )
        await asyncio.wait_for(joining.sent.wait(), 60)
        held.release.set()
        answered = await asyncio.wait_for(repeat, 120)
        first_ended = await handle.result()
        if answered.created:  # the next run
            await dev_env.client.get_workflow_handle(first.remediation_id).terminate("test over")
    # Told it joined, the alert was read by the run before it ended; or it is the next run's.
    assert answered.created or still_bad.reads > 0, (answered, first_ended.state)
