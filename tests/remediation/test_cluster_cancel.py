"""A run cancelled in Temporal (the Web UI's "Request Cancellation"): it cleans up, then
closes as Cancelled, while it waits for an approval, while its change is tried, while its
change settles before verification, while an activity works on it (the first change's one
try, the verification) and before its opening answered; an abort then ends it "aborted"."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import CancelledError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.registry import build_activities
from ambient import temporal
from ambient.clients.notify.base import ChannelRegistry
from ambient.clients.notify.inbox import InboxChannel
from ambient.deps import WorkerDeps
from ambient.remediation.alerts import remediation_id
from ambient.remediation.ladder import Rung
from ambient.remediation.runs import (
    AbortInput,
    Opened,
    OpenInput,
    RemediationInput,
    RemediationStatus,
)
from ambient.remediation.service import RemediationService
from ambient.remediation.storage import UNVERIFIED, ActionLedger
from ambient.storage.audit import AuditRepository
from tests.conftest import running_worker, unique
from tests.remediation.support import alert, error_rate, state_reaches
from tests.remediation.test_cluster import CLUSTER, _kubeconfig
from tests.remediation.test_cluster_edges import HeldWrites, _checkout, _executing
from tests.remediation.test_workflow import USER, start
from tests.standins.kube_api import WRITES
from tests.support.record import save_history
from tests.support.servers import HANG, serve
from tests.support.waits import ask, eventually
from workflows.registry import ALL_WORKFLOWS
from workflows.remediation import GradedRemediationWorkflow
from workflows.remediation_records import search_attributes

CANCEL_REQUESTED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED
SIGNALED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
TASK_STARTED = EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
TASK_TIMED_OUT = EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT
UPSERTED = EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
CANCELLED = (
    "cancelled in Temporal (Request Cancellation), not through ambient-ops: "
    "the sender is not verified"
)


@dataclass
class HeldInbox:
    """The inbox's send held until ``release``: a push under way (the notify activity)."""

    inbox: InboxChannel
    name: str = "inbox"
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, *args: Any, **kwargs: Any) -> str | None:
        self.arrived.set()
        await self.release.wait()
        return await self.inbox.send(*args, **kwargs)


@pytest.mark.devserver
@pytest.mark.parametrize("when", ["approval", "push", "change", "settle"])
async def test_a_run_cancelled_in_temporal_cleans_up_and_says_so(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path, when: str
) -> None:
    """It closed as Cancelled at once: its row left "running" (list and stats counted it
    open), no audit entry of its end, and the slot its step's gate reserved stayed counted
    against the cluster's hour though the change on the wire was not made. Cancelled while
    the push asking for its approval was sent, the run took the push's cancellation for its
    failure ("push_failed") and went on to wait for the approval: it never closed."""
    api = _checkout(tmp_path)
    holding = HeldWrites(nth=2, hold=when == "change")
    if when == "change":
        api.unavailable_writes = 4  # the write on the wire is refused after the cancellation
    pushing = HeldInbox(InboxChannel(deps.db))
    if when == "push":
        deps.channels = ChannelRegistry([pushing])
    else:
        pushing.release.set()
    async with serve(holding.wrap(api.app())) as base:
        asked = when in ("approval", "push")
        await _executing(deps, _kubeconfig(tmp_path, base), approval_from=1 if asked else 0)
        async with (
            error_rate(healthy_from=None) as (_, url),
            running_worker(dev_env.client, deps) as worker,
        ):
            settle = 3600 if when == "settle" else 0
            subject = alert(url, cluster_id=CLUSTER, settle_seconds=settle)
            handle = await start(dev_env, worker.task_queue, subject, mode="execute")
            try:
                if when == "change":
                    await asyncio.wait_for(holding.arrived.wait(), HANG)
                elif when == "push":
                    await asyncio.wait_for(pushing.arrived.wait(), HANG)
                else:
                    wanted = "waiting_approval" if when == "approval" else "settling"
                    await state_reaches(dev_env, handle, (wanted,))
                await handle.cancel()
            finally:
                holding.release.set()
            try:
                with pytest.raises(WorkflowFailureError) as closed:
                    await asyncio.wait_for(handle.result(), HANG)
            finally:
                pushing.release.set()  # held until the run closed: its push never answered
            status = await ask(handle, "status", result_type=RemediationStatus)
            settings = deps.settings.model_copy(update={"temporal_task_queue": worker.task_queue})
            view = await RemediationService(dev_env.client, settings, deps.db).get(USER, handle.id)
            if when in ("change", "push"):
                # Recorded: the cancelled paths replay (tests/histories).
                await save_history(handle, f"remediation_cancelled_during_{when}")
        async with deps.db.session() as session:
            audit = await AuditRepository(session).list(subject=status.run_key, limit=1000)
            slot = await ActionLedger(session).reserved(f"{status.run_key}#1")

    assert isinstance(closed.value.cause, CancelledError)
    assert (status.state, status.outcome) == ("aborted", CANCELLED)
    assert (view.state, view.outcome) == ("aborted", CANCELLED)
    assert status.waiting is None and status.next_rung is None
    (cancelled,) = [r for r in audit if r.action == "cancelled"]
    assert cancelled.actor == UNVERIFIED
    assert [r.detail["state"] for r in audit if r.action == "finished"] == ["aborted"]
    if when == "change":
        assert api.writes() == [], [(c.method, c.status) for c in api.calls]
        assert [(a.rung, a.applied, a.skipped_reason) for a in status.attempts] == [
            (Rung.RESTART, False, "cancelled before its change")
        ]
        assert slot is None  # nothing changed: the cluster's hour does not count it
    elif when == "settle":
        assert [(a.rung, a.applied) for a in status.attempts] == [(Rung.RESTART, True)]
        assert slot is not None  # the restart was made: it counts
    else:
        assert status.attempts == [] and api.writes() == []
        assert "push_failed" not in [r.action for r in audit]


@dataclass
class HeldRequest:
    """Holds the first request ``holds`` picks until ``release``, then answers it as the API
    server would: a change or a verification's read under way."""

    holds: Callable[[str, str, int], bool]  # method, path, PATCHes answered before it
    patched: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    # The held request's answer lost: its connection ends mid-answer (whether it was stored
    # is not known to the client).
    lost: bool = False
    # Every request ``holds`` picks is held, not only the first (``let_through``).
    every: bool = False

    def let_through(self) -> None:
        """The requests held go on; the next one ``holds`` picks is held."""
        release, self.release = self.release, asyncio.Event()
        self.arrived = asyncio.Event()
        release.set()

    def wrap(self, app: Any) -> Any:
        async def held(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                method, path = scope["method"], scope["path"]
                picked = self.every or not self.arrived.is_set()
                if picked and self.holds(method, path, self.patched):
                    release = self.release
                    self.arrived.set()
                    await release.wait()
                    if self.lost:
                        headers = [
                            (b"content-type", b"application/json"),
                            (b"content-length", b"64"),
                        ]
                        await send(
                            {"type": "http.response.start", "status": 200, "headers": headers}
                        )
                        await send({"type": "http.response.body", "body": b"{", "more_body": False})
                        return
                await app(scope, receive, send)
                self.patched += method == "PATCH"
                return
            await app(scope, receive, send)

        return held


HOLDS: dict[str, Callable[[str, str, int], bool]] = {
    # The restart's write, sent by the first change's one try in the opening's workflow task.
    "first-try": lambda method, path, patched: method == "PATCH",
    # The verification's read of the Deployment's rollout, after the restart was written.
    "verify": lambda method, path, patched: (
        method == "GET" and patched == 1 and path.endswith("/deployments/checkout")
    ),
}


async def _verification_held(handle: WorkflowHandle[Any, Any], holding: HeldRequest) -> None:
    """Until a read held is the verification's, and the run's history has it verifying: an
    abort from then on comes while the verification works. The opening's workflow task runs
    the run up to its verification (the first try, the settle, the verification's reads, as
    local activities); a worker too slow for the task's 2 s (a loaded CI host) loses that
    task, and the next runs it again from the history's start, the first try's read of the
    Deployment with it: that read held, or the lost run's verification's, an abort then came
    before the verification in the run's history, and the run stopped at its settle, as an
    abort during the settle is promised to (the attempt unverified), or before its first
    climb. Every read held, a lost task's and the first try's are let through until the
    history has the run verifying."""

    def verifying(event: Any) -> bool:
        said = event.upsert_workflow_search_attributes_event_attributes.search_attributes
        state = said.indexed_fields.get(temporal.STATE.name)
        return event.event_type == UPSERTED and state is not None and state.data == b'"verifying"'

    async def told(lost: int) -> tuple[bool, int] | None:
        events = [e async for e in handle.fetch_history_events()]
        said = any(map(verifying, events)), sum(e.event_type == TASK_TIMED_OUT for e in events)
        return said if said[0] or said[1] > lost else None

    lost = 0
    while True:
        await asyncio.wait_for(holding.arrived.wait(), HANG)
        # Held at the first try's read run again (the run "applying"): let through.
        if (await ask(handle, "status", result_type=RemediationStatus)).state == "verifying":
            ask_history = functools.partial(told, lost)
            recorded, lost = await eventually(ask_history, "the run verifying, or a task lost")
            if recorded:
                return
        holding.let_through()


async def _told_while_held(handle: WorkflowHandle[Any, Any]) -> None:
    """Until the run took a workflow task after the cancellation or abort was sent: the server
    passed it on while the held activity still ran (the task's heartbeat)."""

    async def told() -> bool:
        sent = False
        async for event in handle.fetch_history_events():
            if event.event_type in (CANCEL_REQUESTED, SIGNALED):
                sent = True
            elif sent and event.event_type == TASK_STARTED:
                return True
        return False

    await eventually(told, "the run told of its cancellation while an activity ran")


@pytest.mark.devserver
@pytest.mark.parametrize(
    ("how", "when"), [("cancel", "first-try"), ("cancel", "verify"), ("abort", "verify")]
)
async def test_a_run_stopped_while_an_activity_works_on_its_change_ends_as_asked(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path, how: str, when: str
) -> None:
    """Cancelled in Temporal while the first change's try or the verification was under way,
    the activity's cancellation was taken for its failure: the run handed over ("could not be
    verified") or went on to the regular change, and closed as Completed, not Cancelled. Now
    the try under way is let finish, its write is the attempt's, and the audit says it. A
    short workflow task timeout makes the server pass the cancellation (or the owner's abort)
    on while the activity runs, as for a worker busy with an alert storm's activities."""
    api = _checkout(tmp_path)
    holding = HeldRequest(HOLDS[when], every=when == "verify")
    async with serve(holding.wrap(api.app())) as base:
        await _executing(deps, _kubeconfig(tmp_path, base), approval_from=0)
        async with (
            error_rate(healthy_from=None) as (_, url),
            running_worker(dev_env.client, deps) as worker,
        ):
            subject = alert(url, cluster_id=CLUSTER, settle_seconds=0)
            handle = await dev_env.client.start_workflow(
                GradedRemediationWorkflow.run,
                RemediationInput(alert=subject, user=USER, mode="execute"),
                id=f"{remediation_id(subject)}-{unique('t')}",
                task_queue=worker.task_queue,
                search_attributes=search_attributes(USER, subject.cluster_id),
                task_timeout=timedelta(seconds=2),
            )
            try:
                if when == "verify":
                    await _verification_held(handle, holding)
                else:
                    await asyncio.wait_for(holding.arrived.wait(), HANG)
                if how == "cancel":
                    await handle.cancel()
                else:
                    queue = {"temporal_task_queue": worker.task_queue}
                    settings = deps.settings.model_copy(update=queue)
                    await RemediationService(dev_env.client, settings, deps.db).abort(
                        USER, handle.id, "stop", via="api"
                    )
                await _told_while_held(handle)
            finally:
                holding.release.set()
            if how == "cancel":
                with pytest.raises(WorkflowFailureError) as closed:
                    await asyncio.wait_for(handle.result(), HANG)
                assert isinstance(closed.value.cause, CancelledError)
                # Recorded: the cancelled-in-activity paths replay (tests/histories).
                await save_history(handle, f"remediation_cancelled_during_{when.replace('-', '_')}")
            else:
                await asyncio.wait_for(handle.result(), HANG)
            status = await ask(handle, "status", result_type=RemediationStatus)
        async with deps.db.session() as session:
            audit = await AuditRepository(session).list(subject=status.run_key, limit=1000)
            slot = await ActionLedger(session).reserved(f"{status.run_key}#1")

    restart = status.attempts[0]
    assert [(a.rung, a.applied) for a in status.attempts] == [(Rung.RESTART, True)]
    assert slot is not None  # the restart was made: it counts
    assert [(c.kind, c.method) for c in api.writes()] == [("deployments", "PATCH")]
    assert status.state == "aborted" and status.waiting is None and status.next_rung is None
    assert [r.detail["state"] for r in audit if r.action == "finished"] == ["aborted"]
    assert "hand_over" not in [r.action for r in audit]
    if how == "cancel":
        assert status.outcome == CANCELLED
        (cancelled,) = [r for r in audit if r.action == "cancelled"]
        assert cancelled.actor == UNVERIFIED
        assert cancelled.detail["state"] == ("applying" if when == "first-try" else "verifying")
        assert cancelled.detail["written"] == [f"rung 1 (restart): {restart.detail}"]
        assert restart.detail.startswith("restart deployment prod/checkout"), restart.detail
    else:
        assert status.outcome.startswith("aborted by"), status.outcome
        assert restart.verified is True and restart.resolved is False


@pytest.mark.devserver
async def test_a_run_cancelled_while_its_first_try_is_refused_writes_nothing_more(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """Cancelled in Temporal while the first change's one try was held at the API server, the
    try then refused (a 503, a failure another try may pass): the run took the refusal for a
    reason to try again, ignored the cancellation, and climbed the whole ladder (two more
    PATCHes and a NetworkPolicy written after it), ending budget_exhausted, no `cancelled` in
    its audit. Now the cancellation heard during the try is kept: nothing more is tried."""
    api = _checkout(tmp_path)
    api.unavailable_writes = 1  # the held write is refused once it is let through
    closed, status, audit, slot = await _cancelled_at_first_try(
        dev_env,
        deps,
        tmp_path,
        api,
        HeldRequest(HOLDS["first-try"]),
        "remediation_cancelled_during_refused_first_try",
    )

    # The one write sent is the held one, refused; none after the cancellation.
    sent = [(c.kind, c.method, c.status) for c in api.calls if c.method in WRITES]
    assert sent == [("deployments", "PATCH", 503)]
    assert isinstance(closed.cause, CancelledError)
    assert (status.state, status.outcome) == ("aborted", CANCELLED)
    assert status.waiting is None and status.next_rung is None
    assert [(a.rung, a.applied, a.skipped_reason) for a in status.attempts] == [
        (Rung.RESTART, False, "cancelled before its change")
    ]
    assert [r.detail["state"] for r in audit if r.action == "finished"] == ["aborted"]
    assert "hand_over" not in [r.action for r in audit]
    (cancelled,) = [r for r in audit if r.action == "cancelled"]
    assert cancelled.actor == UNVERIFIED
    assert (cancelled.detail["state"], cancelled.detail["written"]) == ("applying", [])
    assert slot is None  # nothing changed: the cluster's hour does not count it


class Queue:
    """One task queue served by two workers started and stopped apart: ``runs`` the workflows
    (and their local activities), ``acts`` the regular activities. Stopped, ``runs`` lets two
    things reach a run in one workflow task; ``acts`` leaves a regular activity unstarted."""

    def __init__(self, env: WorkflowEnvironment, deps: WorkerDeps) -> None:
        self.env, self.deps, self.name = env, deps, unique("tq")

    def runs(self) -> Worker:
        return Worker(
            self.env.client,
            task_queue=self.name,
            workflows=ALL_WORKFLOWS,
            activities=build_activities(self.deps),
            no_remote_activities=True,
            workflow_runner=temporal.workflow_runner(),
            build_id=temporal.BUILD_ID,
        )

    def acts(self) -> Worker:
        return Worker(
            self.env.client,
            task_queue=self.name,
            activities=build_activities(self.deps),
            build_id=temporal.BUILD_ID,
        )

    async def start(
        self, url: str, task_timeout: timedelta | None = None, aborted: AbortInput | None = None
    ) -> WorkflowHandle[Any, RemediationStatus]:
        """A run of an alert on CLUSTER's checkout, never healthy (``aborted`` as it starts)."""
        subject = alert(url, cluster_id=CLUSTER, settle_seconds=0)
        return await self.env.client.start_workflow(
            GradedRemediationWorkflow.run,
            RemediationInput(alert=subject, user=USER, mode="execute"),
            id=f"{remediation_id(subject)}-{unique('t')}",
            task_queue=self.name,
            search_attributes=search_attributes(USER, subject.cluster_id),
            task_timeout=task_timeout,
            start_signal="abort" if aborted else None,
            start_signal_args=[aborted] if aborted else [],
        )


@pytest.mark.devserver
async def test_a_run_cancelled_as_its_change_completes_reports_the_write_it_made(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """The regular change completes and the cancel comes before the run hears of it: both
    reach the run in one workflow task, where the SDK raises the cancel with the change done.
    Its answer went unread: the restart made was said not made, its slot given back and the
    `cancelled` audit's `written` empty (a person told there was nothing to undo)."""
    api = _checkout(tmp_path)
    api.unavailable_writes = 1  # the first try refused: the regular change writes
    holding = HeldRequest(lambda method, path, patched: method == "PATCH" and patched == 1)
    queue = Queue(dev_env, deps)

    async def completed(handle: WorkflowHandle[Any, Any]) -> bool:
        done = EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
        return done in [e.event_type async for e in handle.fetch_history_events()]

    async with serve(holding.wrap(api.app())) as base:
        await _executing(deps, _kubeconfig(tmp_path, base), approval_from=0)
        async with error_rate(healthy_from=None) as (_, url), queue.acts():
            try:
                async with queue.runs():
                    handle = await queue.start(url)
                    await asyncio.wait_for(holding.arrived.wait(), HANG)  # the change's write
            finally:
                holding.release.set()
            await eventually(lambda: completed(handle), "the change completed")
            await handle.cancel()
            async with queue.runs():
                with pytest.raises(WorkflowFailureError) as closed:
                    await asyncio.wait_for(handle.result(), HANG)
                await save_history(handle, "remediation_cancelled_as_its_change_completes")
                status = await ask(handle, "status", result_type=RemediationStatus)
        async with deps.db.session() as session:
            audit = await AuditRepository(session).list(subject=status.run_key, limit=1000)
            slot = await ActionLedger(session).reserved(f"{status.run_key}#1")

    assert isinstance(closed.value.cause, CancelledError)
    sent = [(c.kind, c.method, c.status) for c in api.calls if c.method in WRITES]
    assert sent == [("deployments", "PATCH", 503), ("deployments", "PATCH", 200)]
    (restart,) = status.attempts
    assert (restart.rung, restart.applied) == (Rung.RESTART, True), restart
    assert slot is not None  # the restart was made: it counts
    (cancelled,) = [r for r in audit if r.action == "cancelled"]
    assert cancelled.detail["written"] == [f"rung 1 (restart): {restart.detail}"]


@pytest.mark.devserver
async def test_a_run_cancelled_while_its_first_try_s_answer_is_lost_says_it_may_have_written(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """Cancelled while the first try's write was held, that write's answer then lost (the
    connection ended mid-answer: it may have been stored): the run said "cancelled before its
    change", gave the slot back and audited nothing written. Only a change known unmade is."""
    api = _checkout(tmp_path)
    closed, status, _, slot = await _cancelled_at_first_try(
        dev_env,
        deps,
        tmp_path,
        api,
        HeldRequest(HOLDS["first-try"], lost=True),
        "remediation_cancelled_as_its_first_try_is_lost",
    )

    assert isinstance(closed.cause, CancelledError)
    (restart,) = status.attempts
    assert restart.applied is False
    assert (restart.skipped_reason or "").startswith("change failed: "), restart.skipped_reason
    assert slot is not None  # it may have written: the cluster's hour counts it


async def _cancelled_at_first_try(
    dev_env: WorkflowEnvironment,
    deps: WorkerDeps,
    tmp_path: Path,
    api: Any,
    holding: HeldRequest,
    history: str,
) -> tuple[WorkflowFailureError, RemediationStatus, list[Any], Any]:
    """A run cancelled in Temporal while ``holding`` held its first try's write, then let
    through: how it closed (recorded as ``history``), its status, audit and step slot."""
    async with serve(holding.wrap(api.app())) as base:
        await _executing(deps, _kubeconfig(tmp_path, base), approval_from=0)
        async with (
            error_rate(healthy_from=None) as (_, url),
            running_worker(dev_env.client, deps) as worker,
        ):
            subject = alert(url, cluster_id=CLUSTER, settle_seconds=0)
            handle = await dev_env.client.start_workflow(
                GradedRemediationWorkflow.run,
                RemediationInput(alert=subject, user=USER, mode="execute"),
                id=f"{remediation_id(subject)}-{unique('t')}",
                task_timeout=timedelta(seconds=2),
                task_queue=worker.task_queue,
                search_attributes=search_attributes(USER, subject.cluster_id),
            )
            try:
                await asyncio.wait_for(holding.arrived.wait(), HANG)
                await handle.cancel()
                await _told_while_held(handle)
            finally:
                holding.release.set()
            with pytest.raises(WorkflowFailureError) as closed:
                await asyncio.wait_for(handle.result(), HANG)
            await save_history(handle, history)  # its path replays (tests/histories)
            status = await ask(handle, "status", result_type=RemediationStatus)
        async with deps.db.session() as session:
            audit = await AuditRepository(session).list(subject=status.run_key, limit=1000)
            slot = await ActionLedger(session).reserved(f"{status.run_key}#1")
    return closed.value, status, list(audit), slot


@pytest.mark.devserver
async def test_a_run_cancelled_before_its_opening_answered_ends_cancelled_its_slot_counted(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """The opening (open_remediation, a local activity in the run's first workflow task)
    reserved the first rung's slot and wrote its records; its answer was still on its way when
    the run was cancelled (heard at the task's heartbeat). The run reads what its opening
    recorded and ends Cancelled, nothing written. The slot stays counted: from the rows, this
    is not told from a lost task whose try may have written with its answer lost, and the
    first rung is said as a change that may have been made, with what to check."""
    api = _checkout(tmp_path)
    async with serve(api.app()) as base:
        await _executing(deps, _kubeconfig(tmp_path, base), approval_from=0)
        everything = build_activities(deps)
        (opening,) = [a for a in everything if a.__name__ == "open_remediation"]
        opened = asyncio.Event()

        @activity.defn(name="open_remediation")
        async def answer_held(request: OpenInput) -> Opened:
            answer: Opened = await opening(request)
            opened.set()
            await asyncio.Event().wait()  # its answer held: cancelled here, with the run
            return answer

        async with error_rate(healthy_from=None) as (_, url):
            worker = Worker(
                dev_env.client,
                task_queue=unique("tq"),
                workflows=ALL_WORKFLOWS,
                activities=[a for a in everything if a is not opening] + [answer_held],
                workflow_runner=temporal.workflow_runner(),
                build_id=temporal.BUILD_ID,
            )
            async with worker:
                subject = alert(url, cluster_id=CLUSTER, settle_seconds=0)
                handle = await start(dev_env, worker.task_queue, subject, mode="execute")
                await asyncio.wait_for(opened.wait(), HANG)
                run_key = f"{handle.id}@{handle.first_execution_run_id}"
                async with deps.db.session() as session:
                    assert await ActionLedger(session).reserved(f"{run_key}#1") is not None
                await handle.cancel()
                with pytest.raises(WorkflowFailureError) as closed:
                    await asyncio.wait_for(handle.result(), HANG)
                status = await ask(handle, "status", result_type=RemediationStatus)
        async with deps.db.session() as session:
            audit = await AuditRepository(session).list(subject=run_key, limit=1000)
            slot = await ActionLedger(session).reserved(f"{run_key}#1")

    assert isinstance(closed.value.cause, CancelledError)
    assert (status.state, status.outcome) == ("aborted", CANCELLED)
    assert [(a.rung, a.applied, a.maybe_applied) for a in status.attempts] == [
        (Rung.RESTART, False, True)
    ]
    maybe = status.attempts[0].detail
    assert maybe.startswith("may have been made") and "deployment/prod/checkout" in maybe, maybe
    assert api.writes() == []
    assert slot is not None  # not known unmade: counted
    (cancelled,) = [r for r in audit if r.action == "cancelled"]
    assert (cancelled.detail["state"], cancelled.detail["written"]) == (
        "scoring",
        [f"rung 1 (restart): {maybe}"],
    )
    assert [r.detail["state"] for r in audit if r.action == "finished"] == ["aborted"]
