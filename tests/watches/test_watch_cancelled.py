"""A watch or a reminder's run cancelled in Temporal (the Web UI's "Request Cancellation")
while it delivers an alert (the webhook holds its answer): the run ends Canceled, after the end
a delete gives it (a watch says ``watch.stopped``; a web monitor's poll hands back first), and
the cut delivery is no delivery failure. A threshold watch took the cancel for its delivery's
failure and ran on (a cancel is delivered once: lost for good); a web monitor ended at once,
its poll left running and no ``watch.stopped`` said; a reminder recorded its delivery failed
and completed (real dev server: the time-skipping one mishandles a cancel meeting an activity
that completes, sdk-java#2391)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.exceptions import CancelledError
from temporalio.testing import WorkflowEnvironment

from activities import registry
from activities.events import EventActivities
from activities.remediation import RemediationActivities
from ambient import temporal
from ambient.clients.notify.registry import build_channels
from ambient.deps import WorkerDeps
from ambient.domain.events import RecordEventInput
from ambient.remediation.alerts import Alert, alert_from_breach, remediation_id
from ambient.remediation.runs import JoinRequest, RemediationInput
from ambient.storage.repositories import DeliveryRepository, EventRepository
from ambient.watches.models import ThresholdWatchInput, ThresholdWatchState
from ambient.watches.reminders import ReminderConfig, ReminderRun
from ambient.watches.threshold_config import ThresholdWatchConfig
from tests.conftest import running_worker, unique
from tests.remediation.support import add_user, remediation_settings
from tests.remediation.test_triage import cloud  # noqa: F401  (fixture)
from tests.remediation.test_watch_intake import METRIC, source
from tests.remediation.test_watch_intake import USER as WATCHER
from tests.standins.tencent_api import TencentApi
from tests.support.record import save_history
from tests.support.servers import HANG
from tests.support.waits import eventually
from tests.watches.site import article
from tests.watches.test_baseline_slow_channel import _mcp, call
from tests.watches.test_lifecycle import GatedSite, gated  # noqa: F401  (fixture)
from tests.watches.test_workflows import USER, loopback_deps, threshold  # noqa: F401  (fixture)
from workflows.remediation import GradedRemediationWorkflow
from workflows.reminder import ReminderWorkflow
from workflows.threshold_watch import ThresholdWatchWorkflow

# A send's time (the lease is this plus its margin): the held webhook's try ends at it, and
# a cut delivery is given up once its lease is gone (at the product's 30 s, ~40 s a test).
SEND_TIME = 8.0


def _with_webhook(deps: WorkerDeps, send_time: float = SEND_TIME) -> WorkerDeps:
    deps.settings = deps.settings.model_copy(update={"notify_target_timeout": send_time})
    deps.channels = build_channels(deps.settings, deps.db, deps.http)
    return deps


async def _kinds(deps: WorkerDeps, task: str) -> list[str]:
    async with deps.db.session() as session:
        return sorted(e.kind for e in await EventRepository(session).list(task=task, limit=100))


async def _said_last(deps: WorkerDeps, task: str) -> dict[str, Any]:
    """The last ``delivery.failed`` said of ``task``: what its reader is left with."""
    async with deps.db.session() as session:
        events = await EventRepository(session).list(task=task, kind="delivery.failed", limit=100)
    return dict(max(events, key=lambda e: e.id).payload)


async def _ended_or_failed(handle: WorkflowHandle[Any, Any], deps: WorkerDeps, task: str) -> bool:
    """The run closed, or it took its cut delivery for a failure (and ran on)."""
    if (await handle.describe()).status is not WorkflowExecutionStatus.RUNNING:
        return True
    return any(k.endswith("delivery_failed") for k in await _kinds(deps, task))


async def _canceled(handle: WorkflowHandle[Any, Any]) -> None:
    with_cancel = None
    try:
        # A cut delivery is given up once its webhook try ends (SEND_TIME, then the give-up's
        # retries until the try's lease is gone): a busy machine stretches it. A hang guard.
        await asyncio.wait_for(handle.result(), 3 * HANG)
    except WorkflowFailureError as ended:
        with_cancel = ended.cause
    assert isinstance(with_cancel, CancelledError), with_cancel
    assert (await handle.describe()).status is WorkflowExecutionStatus.CANCELED


async def _settled(deps: WorkerDeps, key_of: str, task: str) -> list[tuple[str, str]]:
    """The rows of ``task``'s event ``key_of`` once none is pending (in flight)."""
    async with deps.db.session() as session:
        events = await EventRepository(session).list(task=task, limit=100)
        (told,) = [e for e in events if e.kind == key_of]
        rows = await DeliveryRepository(session).under(USER, told.idempotency_key)
    found = sorted((row.channel, row.status) for row in rows)
    return [] if any(status == "pending" for _, status in found) else found


async def _cancelled_while_delivering(
    dev_env: WorkflowEnvironment,
    deps: WorkerDeps,
    state: GatedSite,
    start: Callable[[Client, str], Awaitable[WorkflowHandle[Any, Any]]],
    task: str,
    told: str,
    history: str,
) -> None:
    """The run ``start`` starts, cancelled while the webhook holds its first delivery (of the
    event ``told``): it ends Canceled, not running on. The send's time (SEND_TIME) said
    the send failed and would be tried again; the run that heard its cancel gave it up, so
    the last word says it is not (it stayed "retrying" for good: the run ended before the
    try heard the cancel, and nothing retried it)."""
    try:
        async with running_worker(dev_env.client, deps) as worker:
            handle = await start(dev_env.client, worker.task_queue)
            await asyncio.wait_for(state.hook_waiting.wait(), HANG)
            await handle.cancel()
            await eventually(lambda: _ended_or_failed(handle, deps, task), "the cancel heard")
            status = (await handle.describe()).status
            assert status is WorkflowExecutionStatus.CANCELED, status  # not running on
            await _canceled(handle)
            await save_history(handle, history)
            rows = await eventually(lambda: _settled(deps, told, task), "rows settled")
    finally:
        state.hook_gate.set()
    assert ("webhook", "failed") in rows, rows
    last = await _said_last(deps, task)
    assert (last["channel"], last["retrying"]) == ("webhook", False), last
    assert state.hooks == []  # the held POST was never answered as taken


async def test_a_threshold_watch_cancelled_while_its_alert_is_delivered_ends_canceled(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    state, base = gated
    state.values = [150]
    state.hook_gate.clear()  # the webhook takes the breach's POST and holds its answer
    deps = _with_webhook(loopback_deps)
    task = unique("threshold-watch/alice/t")
    config = threshold(base, targets=[{"type": "webhook", "target": f"{base}/hook"}])

    async def start(client: Client, queue: str) -> WorkflowHandle[Any, Any]:
        return await client.start_workflow(
            ThresholdWatchWorkflow.run,
            ThresholdWatchInput(user=USER, task=task, config=config),
            id=task,
            task_queue=queue,
        )

    await _cancelled_while_delivering(
        dev_env,
        deps,
        state,
        start,
        task,
        "watch.breach",
        "threshold_watch_cancelled_while_delivering",
    )
    # No delivery failure of the watch's (no watch.delivery_failed).
    assert await _kinds(deps, task) == [
        "delivery.failed",
        "delivery.failed",
        "watch.breach",
        "watch.stopped",
    ]


async def _cancelled_when(
    dev_env: WorkflowEnvironment,
    deps: WorkerDeps,
    run: ThresholdWatchInput,
    start_signal: str,
    held: asyncio.Event,
    history: str,
    then: Callable[[WorkflowHandle[Any, Any]], Awaitable[None]] | None = None,
) -> None:
    """The threshold watch ``run``, started with ``start_signal``, cancelled once ``held``
    says what the test holds is under way, then (``then``) let go on: it ends Canceled, and
    its history is saved as ``history``."""
    async with running_worker(dev_env.client, deps) as worker:
        handle = await dev_env.client.start_workflow(
            ThresholdWatchWorkflow.run,
            run,
            id=run.task,
            task_queue=worker.task_queue,
            start_signal=start_signal,
        )
        await asyncio.wait_for(held.wait(), HANG)
        await handle.cancel()
        if then is not None:
            await then(handle)
        await _canceled(handle)
        await save_history(handle, history)


async def test_a_threshold_watch_cancelled_while_it_ends_still_says_it_stopped(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """Stopped with a breach left unwatched (its source replaced), the watch's end says so;
    the webhook holds that message as the run is cancelled. The cut delivery ended the end
    there: no ``watch.stopped``. The end goes on, and the run ends Canceled after it."""
    state, base = gated
    state.hook_gate.clear()  # the webhook takes the "no longer watched" POST and holds it
    deps = _with_webhook(loopback_deps)
    task = unique("threshold-watch/alice/t")
    config = threshold(base, targets=[{"type": "webhook", "target": f"{base}/hook"}])
    left = {"source": None, "said": "the old metric", "value": 150.0, "conditions": []}
    run = ThresholdWatchInput(
        user=USER, task=task, config=config, state=ThresholdWatchState(left_breach=left)
    )
    try:
        # Stopped before its first check: straight to its end.
        history = "threshold_watch_cancelled_while_ending"
        await _cancelled_when(dev_env, deps, run, "stop", state.hook_waiting, history)
    finally:
        state.hook_gate.set()
    assert await _kinds(deps, task) == [
        "delivery.failed",
        "delivery.failed",
        "watch.breach_unwatched",
        "watch.stopped",
    ]


async def _cancelled_at_first_alert(
    dev_env: WorkflowEnvironment,
    deps: WorkerDeps,
    site: tuple[GatedSite, str],
    run_state: ThresholdWatchState | None,
    then: str,
    history: str,
    **fields: Any,
) -> tuple[str, list[str]]:
    """A threshold watch whose check (at once: its first, or check now) reads 150 and tells
    more than one thing, cancelled while the webhook holds its first alert; the receiver
    answers again once the run told ``then`` (the check's next) or closed. The task, and what
    the watch said (its ``watch.*`` events) once its run ended Canceled."""
    state, base = site
    state.values = [150]
    state.hook_gate.clear()  # the webhook takes the first alert's POST and holds its answer
    task = unique("threshold-watch/alice/t")
    config = threshold(base, targets=[{"type": "webhook", "target": f"{base}/hook"}], **fields)
    run = ThresholdWatchInput(user=USER, task=task, config=config, state=run_state)

    async def told_or_closed(handle: WorkflowHandle[Any, Any]) -> None:
        async def told() -> bool:
            return then in await _kinds(deps, task) or await _closed(handle)

        await eventually(told, f"{then} told or the run closed")
        state.hook_gate.set()  # the receiver answers again

    try:
        # A continued run checks at once, as a new one does; the first alert sent, held.
        sent = state.hook_waiting
        await _cancelled_when(dev_env, deps, run, "check_now", sent, history, told_or_closed)
    finally:
        state.hook_gate.set()
    return task, [kind for kind in await _kinds(deps, task) if kind.startswith("watch.")]


async def test_a_threshold_watch_cancelled_while_its_first_alert_is_delivered_tells_the_rest(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """A failing watch (its continued run) reads a value over the line at check now: the
    check tells "recovered", then "breach", and the first is held as the run is cancelled.
    The cut delivery ended the check there: its breach, taken into the state (so never told
    again), was neither recorded nor sent. As a delete lets it, the check tells the rest (the
    cut delivery given up), then the watch ends and the run ends Canceled."""
    deps = _with_webhook(loopback_deps)
    failing = ThresholdWatchState(checks=3, failures=3, failing=True, last_error="down")
    task, said = await _cancelled_at_first_alert(
        dev_env, deps, gated, failing, "watch.breach", "threshold_watch_cancelled_while_alerting"
    )
    assert said == ["watch.breach", "watch.recovered", "watch.stopped"]  # no delivery_failed
    # The breach's delivery was made, not given up.
    settled = await eventually(lambda: _settled(deps, "watch.breach", task), "breach settled")
    assert settled == [("inbox", "sent"), ("webhook", "sent")]
    assert any(b"Breach: " in body for body in gated[0].hooks), gated[0].hooks


async def test_a_threshold_watch_cancelled_while_its_breach_is_delivered_still_remediates(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """A watch that remediates its breaches is cancelled while its breach is delivered: the
    remediation, asked for after it, was never asked for (its breach never told again). As
    a delete lets it, the check asks for it (this metric names no TKE workload: the request
    is recorded with why none started), then the watch ends."""
    deps = _with_webhook(loopback_deps)
    _, said = await _cancelled_at_first_alert(
        dev_env,
        deps,
        gated,
        None,
        "watch.remediation_requested",
        "threshold_watch_cancelled_before_remediating",
        on_breach="remediate",
    )
    assert said == ["watch.breach", "watch.remediation_requested", "watch.stopped"]


def _record_held(
    monkeypatch: pytest.MonkeyPatch, kind: str
) -> tuple[asyncio.Event, asyncio.Event, asyncio.Event]:
    """The worker's first try to record an event of ``kind`` held (``taken`` set) until
    ``release``: past the test's end, as a record the run's cancel cut before it ran; its
    write made then (``written`` set)."""
    taken, release, written = asyncio.Event(), asyncio.Event(), asyncio.Event()

    class Held(EventActivities):
        @activity.defn(name="record_event")
        async def record_event(self, event: RecordEventInput) -> int:
            if event.kind != kind or taken.is_set():
                return await super().record_event(event)
            taken.set()
            await release.wait()
            try:
                return await super().record_event(event)
            finally:
                written.set()

    monkeypatch.setattr(registry, "EventActivities", Held)
    return taken, release, written


async def _remediating_watch(
    deps: WorkerDeps, stand_in: tuple[TencentApi, Any]
) -> tuple[ThresholdWatchConfig, Alert]:
    """A watch config that remediates a TKE workload's breach (CPU 97 over 90, on the
    Tencent stand-in), and the alert its breach raises."""
    api, tencent = stand_in
    now = int(time.time())
    api.metric_points[METRIC] = [(now - 30, 97.0), (now + 3600, 97.0)]
    deps.tencent = tencent
    remediation_settings(deps)
    await add_user(deps, WATCHER)
    workload = unique("checkout")
    config = ThresholdWatchConfig.model_validate(
        {"source": source(workload), "conditions": [{"op": "above", "value": 90}]}
        | {"on_breach": "remediate"}
    )
    alert = alert_from_breach(source(workload), 97.0, config.conditions, "cpu 97")
    assert alert is not None
    return config, alert


async def test_a_threshold_watch_cancelled_while_its_breach_is_recorded_records_it(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The run is cancelled while its breach's record is held (its write not made: as one
    scheduled but not started, which the server cancels and never runs). The check went on
    without it: the breach was delivered ("Breach: ...") with no ``watch.breach`` recorded.
    The record is made again, then the breach told, then the watch ends."""
    state, base = gated
    state.values = [150]
    deps = _with_webhook(loopback_deps)
    taken, release, _ = _record_held(monkeypatch, "watch.breach")
    task = unique("threshold-watch/alice/t")
    config = threshold(base, targets=[{"type": "webhook", "target": f"{base}/hook"}])
    run = ThresholdWatchInput(user=USER, task=task, config=config)
    try:
        history = "threshold_watch_cancelled_while_recording"
        await _cancelled_when(dev_env, deps, run, "check_now", taken, history)
        said = [kind for kind in await _kinds(deps, task) if kind.startswith("watch.")]
    finally:
        release.set()
    assert said == ["watch.breach", "watch.stopped"]
    assert any(b"Breach: " in body for body in state.hooks), state.hooks


async def test_a_threshold_watch_cancelled_while_its_pause_is_recorded_records_it(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Paused, the watch records ``watch.paused`` (the control taken from its state first);
    the run is cancelled while that record is held (its write not made). The cut record ended
    the loop there and the pause was never said. It is recorded again, then the watch ends."""
    state, base = gated
    state.values = [5]
    taken, release, _ = _record_held(monkeypatch, "watch.paused")
    task = unique("threshold-watch/alice/t")
    run = ThresholdWatchInput(user=USER, task=task, config=threshold(base))
    try:
        history = "threshold_watch_cancelled_while_recording_a_control"
        await _cancelled_when(dev_env, loopback_deps, run, "pause", taken, history)
        said = await _kinds(loopback_deps, task)
    finally:
        release.set()
    assert said == ["watch.paused", "watch.stopped"]


async def test_a_threshold_watch_cancelled_while_it_joins_its_remediation_still_joins_it(
    dev_env: WorkflowEnvironment,
    deps: WorkerDeps,
    cloud: tuple[TencentApi, Any],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A watch that remediates its breaches finds its alert's remediation running (no worker
    for it) and joins it; the run is cancelled while the join is held. The cut join ended the
    check there: no remediation event, and its breach is never told again. The start is
    asked again (the child's id is the alert's: it joins the run, as a start the cancel cut
    would start it), then the watch ends."""
    config, alert = await _remediating_watch(deps, cloud)
    rid = remediation_id(alert)
    running = await dev_env.client.start_workflow(
        GradedRemediationWorkflow.run,
        RemediationInput(alert=alert, user=WATCHER, mode="execute"),
        id=rid,
        task_queue=unique("nobody"),  # no worker: it stays running
    )
    taken, release = asyncio.Event(), asyncio.Event()

    class Held(RemediationActivities):
        @activity.defn(name="join_remediation")
        async def join_remediation(self, request: JoinRequest) -> bool:
            if not taken.is_set():
                taken.set()  # the first join: held past the test's end
                await release.wait()
            return True  # the run found takes the alert in (a stand-in: that run never runs)

    monkeypatch.setattr(registry, "RemediationActivities", Held)
    task = f"threshold-watch/{WATCHER}/{unique('cpu')}"
    run = ThresholdWatchInput(user=WATCHER, task=task, config=config)
    try:
        history = "threshold_watch_cancelled_while_joining"
        await _cancelled_when(dev_env, deps, run, "check_now", taken, history)
        async with deps.db.session() as session:
            events = await EventRepository(session).list(task=task, limit=100)
    finally:
        release.set()
        await running.terminate("test over")
    said = sorted(e.kind for e in events if e.kind.startswith("watch."))
    assert said == ["watch.breach", "watch.remediation_started", "watch.stopped"]
    (started,) = [e.payload for e in events if e.kind == "watch.remediation_started"]
    assert (started["remediation_id"], started["joined"]) == (rid, True), started


async def test_a_web_monitor_cancelled_while_its_alert_is_delivered_ends_as_deleted(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """Its poll holds the failing page's alert (the webhook holds its answer) as the run is
    cancelled: the poll is ended as at a delete, its held alert sent by the stop's last poll,
    ``watch.stopped`` said, and the run ends Canceled."""
    state, base = gated
    state.hook_gate.clear()
    # The held try must outlast the cancel being heard, which a loaded machine took past
    # SEND_TIME over: that try then failed, a `delivery.failed` more.
    deps = _with_webhook(loopback_deps, send_time=30.0)
    config = {
        "urls": [f"{base}/gone"],
        "failure_threshold": 1,
        "targets": [{"type": "webhook", "target": f"{base}/hook"}],
    }
    try:
        async with running_worker(dev_env.client, deps) as worker:
            async with _mcp(dev_env, deps, worker.task_queue) as mcp:
                made = await call(mcp, "create_web_monitor", config=config, name=unique("m"))
            task = made["task_id"]
            handle = dev_env.client.get_workflow_handle(task)
            await asyncio.wait_for(state.hook_waiting.wait(), HANG)  # the alert is under way
            await handle.cancel()
            await eventually(lambda: _stopped_or_closed(handle), "the cancel heard")
            state.hook_gate.set()  # the receiver answers again: the stop's last poll sends
            await _canceled(handle)
            await save_history(handle, "web_monitor_cancelled_while_delivering")
    finally:
        state.hook_gate.set()
    assert await _kinds(deps, task) == ["watch.failing", "watch.stopped"]
    assert await _settled(deps, "watch.failing", task) == [("inbox", "sent"), ("webhook", "sent")]


async def test_a_reminder_cancelled_while_it_is_delivered_ends_canceled_not_failed(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    state, base = gated
    state.hook_gate.clear()
    deps = _with_webhook(loopback_deps)
    task = unique("reminder")
    config = ReminderConfig.model_validate(
        {"message": "standup", "targets": [{"type": "webhook", "target": f"{base}/hook"}]}
    )

    async def start(client: Client, queue: str) -> WorkflowHandle[Any, Any]:
        return await client.start_workflow(
            ReminderWorkflow.run,
            ReminderRun(user=USER, task=task, config=config),
            id=f"{task}/run",
            task_queue=queue,
        )

    await _cancelled_while_delivering(
        dev_env,
        deps,
        state,
        start,
        task,
        "schedule.reminder",
        "reminder_cancelled_while_delivering",
    )
    assert await _kinds(deps, task) == ["delivery.failed", "delivery.failed", "schedule.reminder"]


async def test_a_threshold_watch_cancelled_while_it_reads_its_metric_ends_canceled(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """The metric's source holds its answer as the run is cancelled during the read (a local
    activity): the run took the cut read for one to try again as a regular activity, and ran
    on."""
    state, base = gated
    state.values = [50]
    state.gate.clear()  # the source holds every read
    task = unique("threshold-watch/alice/t")
    try:
        async with running_worker(dev_env.client, loopback_deps) as worker:
            handle = await dev_env.client.start_workflow(
                ThresholdWatchWorkflow.run,
                ThresholdWatchInput(user=USER, task=task, config=threshold(base)),
                id=task,
                task_queue=worker.task_queue,
            )
            await asyncio.wait_for(state.waiting.wait(), HANG)  # the read under way
            await handle.cancel()

            async def ended_or_read_again() -> bool:
                described = await handle.describe()
                if described.status is not WorkflowExecutionStatus.RUNNING:
                    return True
                pending = described.raw_description.pending_activities
                return any(p.activity_type.name == "read_metric" for p in pending)

            await eventually(ended_or_read_again, "the cancel heard")
            status = (await handle.describe()).status
            assert status is WorkflowExecutionStatus.CANCELED, status  # not running on
            await _canceled(handle)
            await save_history(handle, "threshold_watch_cancelled_while_reading")
    finally:
        state.gate.set()
    assert await _kinds(deps=loopback_deps, task=task) == ["watch.stopped"]


async def test_a_web_monitor_cancelled_while_it_checks_a_page_ends_as_deleted(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    """Its poll reads a page (the server holds it) of check now as the run is cancelled: the
    run ended at once, its poll left running and no ``watch.stopped`` said."""
    state, base = gated
    state.pages["/a"] = article("A page.")
    task = ""
    try:
        async with running_worker(dev_env.client, loopback_deps) as worker:
            async with _mcp(dev_env, loopback_deps, worker.task_queue) as mcp:
                config = {"urls": [f"{base}/a"], "check_interval_minutes": 60}
                made = await call(mcp, "create_web_monitor", config=config, name=unique("m"))
            task = made["task_id"]
            handle = dev_env.client.get_workflow_handle(task)
            state.page_gate.clear()
            state.page_waiting.clear()
            await handle.signal("check_now")
            await asyncio.wait_for(state.page_waiting.wait(), HANG)  # the check under way
            await handle.cancel()
            await eventually(lambda: _stopped_or_closed(handle), "the cancel heard")
            state.page_gate.set()
            await _canceled(handle)
            await save_history(handle, "web_monitor_cancelled_while_checking")
    finally:
        state.page_gate.set()
    assert await _kinds(loopback_deps, task) == ["watch.stopped"]


async def _closed(handle: WorkflowHandle[Any, Any]) -> bool:
    return (await handle.describe()).status is not WorkflowExecutionStatus.RUNNING


async def _stopped_or_closed(handle: WorkflowHandle[Any, Any]) -> bool:
    """The run took its cancel for a stop (its state attribute says so), or closed."""
    described = await handle.describe()
    stopped = described.typed_search_attributes.get(temporal.STATE) == "stopped"
    return stopped or described.status is not WorkflowExecutionStatus.RUNNING


@pytest.mark.parametrize("first", [97.0, 50.0], ids=["breach-first", "baseline-first"])
async def test_a_remediating_watch_reset_does_not_remediate_its_told_breach_again(
    dev_env: WorkflowEnvironment,
    deps: WorkerDeps,
    cloud: tuple[TencentApi, Any],  # noqa: F811
    first: float,
) -> None:
    """docs/deploy.md: after a deploy a watch may be reset to its first workflow task. Its
    breach, still on, is found told before (the same check's events, or a later check's
    breach recorded as ``watch.already_told``), yet a watch that remediates its breaches asked
    for a second remediation of it once the first had ended: a second ladder on a workload a
    person may be looking at."""
    from tests.watches.test_lifecycle_service import reset_to_first_workflow_task

    config, alert = await _remediating_watch(deps, cloud)
    api, _ = cloud
    now = int(time.time())
    api.metric_points[METRIC] = [(now - 60, first)]
    rid = remediation_id(alert)
    task = f"threshold-watch/{WATCHER}/{unique('cpu')}"
    run = ThresholdWatchInput(user=WATCHER, task=task, config=config)

    async def kinds() -> list[str]:
        return [k for k in await _kinds(deps, task) if k.startswith("watch.")]

    async with running_worker(dev_env.client, deps) as worker:
        handle = await dev_env.client.start_workflow(
            ThresholdWatchWorkflow.run,
            run,
            id=task,
            task_queue=worker.task_queue,
            start_signal="check_now",
        )
        if first < 90:  # a baseline, then the breach at the next check
            await handle.execute_update("baseline")
            api.metric_points[METRIC] = [(now - 30, 97.0)]
            await handle.execute_update("checked_now")
        await eventually(lambda: _has(kinds, "watch.remediation_started"), "remediated")
        remediation = dev_env.client.get_workflow_handle(rid)
        started = (await remediation.describe()).run_id
        await remediation.terminate("the first remediation ended")
        reset = dev_env.client.get_workflow_handle(
            task, run_id=await reset_to_first_workflow_task(dev_env.client, task)
        )
        await reset.execute_update("checked_now")  # the reset run's first check is whole
        latest = (await remediation.describe()).run_id
        await reset.signal("stop")
        await reset.result()
        history = f"threshold_watch_reset_{'after_baseline' if first < 90 else 'at_breach'}"
        await save_history(reset, history)
    assert latest == started
    # The reset run's check is its own (its key marks its run): its breach is recorded as
    # told already in either case, where the breach-first one found the replaced run's event.
    said = ["watch.breach", "watch.remediation_started", "watch.already_told", "watch.stopped"]
    assert await kinds() == sorted(said)  # one remediation asked for: by the run before


async def _has(kinds: Callable[[], Awaitable[list[str]]], kind: str) -> bool:
    return kind in await kinds()
