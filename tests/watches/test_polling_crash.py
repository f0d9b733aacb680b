"""kill -9 of the worker in the middle of a poll, right after a change was stored.

The worker is a real process (`ambient worker`). The poll has stored the change event (with the
poll's position) but has not handed it back to the workflow when the worker dies. A new
worker process resumes the poll when the dead attempt's heartbeat timeout passes (and the
dead process has been silent past its ``dead_after``, the retry's claim on the watch): it must
hand back the stored change (so the history has it), notify it no second time, and take the
page's last seen text from where the dead attempt left it (no change reported again).
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.poll_upkeep import DEAD_PROCESS
from ambient.deps import WorkerDeps
from ambient.storage.polls import WatchPollLease
from ambient.storage.repositories import EventRepository, InboxRepository
from ambient.watches.leases import Lease, end_lost
from ambient.watches.models import TaskStatus
from ambient.watches.polling import PollLost
from tests.conftest import running_worker, unique
from tests.remediation.test_crash import worker_env, worker_process
from tests.support.record import save_history
from tests.support.servers import polls_workflow_tasks, serve
from tests.support.waits import eventually
from tests.watches.site import Site, article
from tests.watches.test_lifecycle import GatedSite
from tests.watches.test_polling import (
    USER,
    _changes,
    _checks,
    events,
    fast,
    loopback_deps,
    poll_requests,
    poll_results,
    start,
    status,
)

__all__ = ["loopback_deps"]  # the fixture, used by name


async def stored_change(deps: WorkerDeps, task: str) -> bool:
    async with deps.db.session() as session:
        rows = await EventRepository(session).list(task=task, limit=10)
    return any(row.kind == "watch.change" for row in rows)


def crash_env(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path, name: str
) -> dict[str, str]:
    """A worker process's settings on its own task queue, allowed to fetch from loopback."""
    address = dev_env.client.service_client.config.target_host
    env = worker_env(deps, address, unique(name), tmp_path / "no-kubeconfig")
    env["AMBIENT_FETCH_ALLOW_CIDRS"] = "127.0.0.1/32"
    return env


async def serving(
    dev_env: WorkflowEnvironment, env: dict[str, str], process: subprocess.Popen[bytes]
) -> None:
    """Wait for a worker process started just now to poll its queue. A query needs a live
    worker: asked before one polls, the server answers "no poller seen for task queue
    recently" (or holds the query until its deadline); a killed worker's pollers stay listed
    for minutes, hence this process's own identity."""
    queue = env["AMBIENT_TEMPORAL_TASK_QUEUE"]
    await eventually(partial(polls_workflow_tasks, dev_env.client, queue, process.pid), bound=120)


async def kill_after_a_stored_change(
    dev_env: WorkflowEnvironment,
    deps: WorkerDeps,
    tmp_path: Path,
    env: dict[str, str],
    site: Site,
    url: str,
    *,
    task: str,
    window: float,
) -> WorkflowHandle[Any, Any]:
    """Start a watch in a worker process, change its page, and kill -9 the worker once the
    change is stored but before it is handed back (the poll claimed the watch's lease before
    it fetched)."""
    with worker_process(env, tmp_path, tmp_path / "worker-1.log") as first:
        queue = env["AMBIENT_TEMPORAL_TASK_QUEUE"]
        handle = await start(dev_env, queue, fast([url]), window=window, task=task)
        await serving(dev_env, env, first)
        await eventually(lambda: _checks(handle, 1))
        site.pages["/news"] = article("Quiet morning.", "The bridge is closed.")
        await eventually(lambda: stored_change(deps, task))
        first.send_signal(signal.SIGKILL)
        assert await asyncio.to_thread(first.wait, 30) == -signal.SIGKILL
    return handle


async def assert_told_once(
    handle: WorkflowHandle[Any, Any], deps: WorkerDeps, task: str, url: str
) -> None:
    """The change is stored once, in the history once, and in the inbox once."""
    stored = [key for kind, key in await events(deps, task) if kind == "watch.change"]
    assert len(stored) == 1
    in_history = [e.key for r in await poll_results(handle) for e in r.events]
    assert in_history == stored
    async with deps.db.session() as session:
        inbox = await InboxRepository(session).list(USER, limit=10)
    assert [m.title for m in inbox] == [f"Changed: {url}"]


async def fetched(site: Site, n: int) -> bool:
    return len(site.requests) >= n


@pytest.mark.devserver
async def test_a_worker_killed_mid_poll_resumes_without_losing_state_or_reporting_twice(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps, tmp_path: Path
) -> None:
    site = Site()
    site.pages["/news"] = article("Quiet morning.")
    async with serve(site.app()) as base:
        env = crash_env(dev_env, loopback_deps, tmp_path, "poll-crash")
        # The retried poll takes the watch only from a dead process: silent past its
        # dead_after (30 s by default; the least allowed here, as the window).
        env["AMBIENT_WORKER_DEAD_AFTER_SECONDS"] = "5"
        task = unique(f"web-monitor/{USER}/crash")
        # Long enough that the change is still inside the poll when it dies (it is found at
        # the poll's first or second check, half a second apart); the heartbeat timeout (and so
        # the resume) follows the window, and the resumed poll hands back once it has passed.
        handle = await kill_after_a_stored_change(
            dev_env, loopback_deps, tmp_path, env, site, f"{base}/news", task=task, window=5.0
        )
        # No worker now: the history says what the workflow has recorded.
        before = [e for r in await poll_results(handle) for e in r.events]
        with worker_process(env, tmp_path, tmp_path / "worker-2.log") as second:
            await serving(dev_env, env, second)
            await eventually(lambda: _changes(handle, 1), bound=120)
            # A few checks of the resumed poll see the same page: nothing more to tell.
            checks = (await status(handle)).checks
            await eventually(lambda: _checks(handle, checks + 4))
            await handle.signal("stop")
            final = TaskStatus.model_validate(await asyncio.wait_for(handle.result(), 60))
    assert before == []  # the change had not been handed back when the worker died
    assert final.detail["changes_total"] == 1
    await assert_told_once(handle, loopback_deps, task, f"{base}/news")


async def retried_poll(handle: WorkflowHandle[Any, Any]) -> Any:
    """The watch's poll once Temporal runs it again (a second attempt, started), or None."""
    described = await handle.describe()
    for pending in described.raw_description.pending_activities:
        if (
            pending.activity_type.name == "poll_pages"
            and pending.attempt >= 2
            and pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        ):
            return pending
    return None


@pytest.mark.devserver
async def test_a_killed_workers_poll_runs_again_in_a_live_worker_long_before_its_timeout(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps, tmp_path: Path
) -> None:
    """The same kill with a 10-minute poll (heartbeat timeout 10 minutes): the worker started
    after it finds the dead process's lease and fails that attempt by its task token, and
    Temporal runs the same poll again there at once: no signal, no new poll, the workflow is
    not woken; the second attempt hands the stored change back once."""
    site = Site()
    site.pages["/news"] = article("Quiet morning.")
    async with serve(site.app()) as base:
        env = crash_env(dev_env, loopback_deps, tmp_path, "poll-lost")
        env["AMBIENT_WORKER_DEAD_AFTER_SECONDS"] = "5"
        task = unique(f"web-monitor/{USER}/lost")
        handle = await kill_after_a_stored_change(
            dev_env, loopback_deps, tmp_path, env, site, f"{base}/news", task=task, window=600.0
        )
        polls_before = len(await poll_requests(handle))
        with worker_process(env, tmp_path, tmp_path / "worker-2.log"):
            # Dead after 5 s, found at the next sweep: well inside the poll's 10 minutes.
            retried = await eventually(partial(retried_poll, handle))
            # The second attempt took over the stored change (it hands it back with its
            # window, or now, when stopped) and checks the same page again: nothing new.
            await eventually(partial(fetched, site, len(site.requests) + 3))
            await handle.signal("stop")
            final = TaskStatus.model_validate(await asyncio.wait_for(handle.result(), 60))
    requests = await poll_requests(handle)
    assert len(requests) == polls_before  # the same poll ran again, no new one
    assert requests[-1][1] == 600.0  # its heartbeat timeout: not what noticed the death
    assert retried.attempt == 2 and retried.last_failure.message == DEAD_PROCESS
    history = await handle.fetch_history()
    signals = [
        e.workflow_execution_signaled_event_attributes.signal_name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    assert signals == ["stop"]
    assert final.detail["changes_total"] == 1
    await assert_told_once(handle, loopback_deps, task, f"{base}/news")


async def written_lease(deps: WorkerDeps, task: str, poll: int) -> Lease | None:
    """The lease of the watch's poll number ``poll``, once its process has written it."""
    async with deps.db.session() as session:
        row = await session.scalar(select(WatchPollLease).where(WatchPollLease.task == task))
    if row is None or row.poll != poll:
        return None
    return Lease(row.task, row.life, row.run_id, row.poll, row.process)


async def polls_closed(handle: WorkflowHandle[Any, Any], n: int) -> bool:
    """Whether ``n`` polls have closed in the history (completed, failed, cancelled, timed out)."""
    history = await handle.fetch_history()
    polls: set[int] = set()
    closed = 0
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            if event.activity_task_scheduled_event_attributes.activity_type.name == "poll_pages":
                polls.add(event.event_id)
        attributes = {
            EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "activity_task_completed",
            EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "activity_task_failed",
            EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: "activity_task_canceled",
            EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "activity_task_timed_out",
        }.get(event.event_type)
        if attributes is not None:
            done = getattr(event, f"{attributes}_event_attributes")
            closed += done.scheduled_event_id in polls
    return closed >= n


@pytest.mark.devserver
async def test_a_poll_reported_lost_while_temporal_runs_it_again_hands_its_change_back_once(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps
) -> None:
    """Temporal retried the dead process's poll in a live one before a sweep found the dead
    lease: the sweep's signal (here before the poll's result) must not make the workflow drop
    the live poll's result and let the next poll hand the same stored change back again."""
    site = Site()
    site.pages["/news"] = article("Quiet morning.")
    async with serve(site.app()) as base, running_worker(dev_env.client, loopback_deps) as worker:
        url = f"{base}/news"
        task = unique(f"web-monitor/{USER}/retried")
        handle = await start(dev_env, worker.task_queue, fast([url]), window=20.0, task=task)
        await eventually(lambda: _checks(handle, 1))
        site.pages["/news"] = article("Quiet morning.", "The bridge is closed.")
        await eventually(lambda: stored_change(loopback_deps, task))
        # The poll after the baseline's: it stored the change and has not handed it back.
        lease = await eventually(partial(written_lease, loopback_deps, task, 2))
        # What a sweep does with the dead process's lease of this poll: the signal, then
        # (its process read as alive after all) the end request for exactly this poll.
        lost = PollLost(life=lease.life, run_id=lease.run_id, poll=lease.poll, process="dead")
        await handle.signal("poll_lost", lost)
        await end_lost(loopback_deps.db, [lease])
        await eventually(lambda: _changes(handle, 1))
        await eventually(partial(polls_closed, handle, 2))  # the baseline and the lost poll
        await handle.signal("stop")
        final = TaskStatus.model_validate(await asyncio.wait_for(handle.result(), 60))
    await save_history(handle, "web_monitor_poll_lost_answers")
    assert final.detail["changes_total"] == 1
    await assert_told_once(handle, loopback_deps, task, url)


@pytest.mark.devserver
async def test_a_change_whose_webhook_was_still_retrying_when_its_worker_stopped_is_delivered_once(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps, tmp_path: Path
) -> None:
    """A change's webhook answered 500 and its delivery waited to try again when the worker
    was stopped (a restart): the poll handed the change back and the delivery ended with the
    process. The next poll, in the worker started after, never sent it: the change was in the
    history and the webhook never got it."""
    state = GatedSite()
    state.pages["/news"] = article("Quiet morning.")
    state.hook_status = 500  # retried inside the poll (a 503 asks for a deliver-later run)
    async with serve(state.app()) as base:
        env = crash_env(dev_env, loopback_deps, tmp_path, "handback")
        task = unique(f"web-monitor/{USER}/handback")
        config = fast([f"{base}/news"], targets=[{"type": "webhook", "target": f"{base}/hook"}])
        with worker_process(env, tmp_path, tmp_path / "worker-1.log") as first:
            queue = env["AMBIENT_TEMPORAL_TASK_QUEUE"]
            handle = await start(dev_env, queue, config, window=600.0, task=task)
            await serving(dev_env, env, first)
            await eventually(lambda: _checks(handle, 1))
            state.pages["/news"] = article("Quiet morning.", "The bridge is closed.")
            await eventually(lambda: _answered(state, 1))  # a 500: the delivery waits to retry
            first.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(first.wait, 30) == 0
        refused = len(state.hooks)
        handed = [e.key for r in await poll_results(handle) for e in r.events]
        assert len(handed) == 1  # the graceful stop handed the change back
        state.hook_status = 200
        with worker_process(env, tmp_path, tmp_path / "worker-2.log") as second:
            await serving(dev_env, env, second)
            await eventually(lambda: _answered(state, refused + 1))
            await eventually(partial(fetched, state, len(state.requests) + 3))
            await handle.signal("stop")
            await asyncio.wait_for(handle.result(), 60)
    sent = [json.loads(body) for body in state.hooks]
    # The refused tries, then one that was taken: all of the change, under one key.
    assert [body["idempotency_key"] for body in sent] == [f"{handed[0]}:webhook:{base}/hook"] * (
        refused + 1
    )
    assert "The bridge is closed." in sent[-1]["body"]


async def _answered(state: GatedSite, n: int) -> bool:
    return len(state.hooks) >= n


async def _no_poll_pending(handle: WorkflowHandle[Any, Any]) -> bool:
    described = await handle.describe()
    pending = described.raw_description.pending_activities
    return not any(p.activity_type.name == "poll_pages" for p in pending)


@pytest.mark.devserver
async def test_a_pause_just_after_the_worker_died_is_no_poll_failure(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps, tmp_path: Path
) -> None:
    """Paused a moment after its worker was killed: the poll's end went unread, its cancel
    waited, the sweep failed the attempt ("PollLost"), and the watch showed a failure it never
    had (event_failures 1, a watch.poll_failed event), for a poll the user only asked to stop."""
    site = Site()
    site.pages["/news"] = article("Quiet morning.")
    async with serve(site.app()) as base:
        env = crash_env(dev_env, loopback_deps, tmp_path, "pause-after-kill")
        task = unique(f"web-monitor/{USER}/pausekill")
        with worker_process(env, tmp_path, tmp_path / "worker-1.log") as first:
            queue = env["AMBIENT_TEMPORAL_TASK_QUEUE"]
            handle = await start(dev_env, queue, fast([f"{base}/news"]), window=600.0, task=task)
            await serving(dev_env, env, first)
            await eventually(lambda: _checks(handle, 1))

            async def polling() -> bool:
                return len(site.requests) >= 3

            await eventually(polling)
            first.send_signal(signal.SIGKILL)
            assert await asyncio.to_thread(first.wait, 30) == -signal.SIGKILL
        await handle.signal("pause")
        with worker_process(env, tmp_path, tmp_path / "worker-2.log") as second:
            await serving(dev_env, env, second)
            await eventually(lambda: _no_poll_pending(handle), bound=120)
            paused = await status(handle)
            fetched = len(site.requests)
            await asyncio.sleep(2)
            assert len(site.requests) == fetched  # paused: nothing checked
            await handle.signal("stop")
            await asyncio.wait_for(handle.result(), 60)
            await save_history(handle, "web_monitor_paused_after_its_worker_died")
    kinds = [kind for kind, _ in await events(loopback_deps, task)]
    assert paused.state == "paused" and paused.detail["event_failures"] == 0, paused.detail
    assert "watch.poll_failed" not in kinds, kinds


class FailingThenGated:
    """A page that fails its first ``fail`` answers, holds the next until the test lets it go
    (a worker is killed while it waits), fails one more, then answers."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.answers = 0
        self.held = asyncio.Event()
        self.release = asyncio.Event()

    def app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.responses import Response
        from starlette.routing import Route

        async def page(request: Any) -> Response:
            self.answers += 1
            n = self.answers
            if n == self.fail + 1:
                self.held.set()
                await self.release.wait()
            if n <= self.fail + 2:
                return Response("down", status_code=500)
            return Response(article("Back."), media_type="text/html")

        return Starlette(routes=[Route("/news", page)])


@pytest.mark.devserver
async def test_failed_checks_counted_before_a_worker_died_still_count_towards_failing(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps, tmp_path: Path
) -> None:
    """Three failed checks (the first poll's one, then two), the worker killed during the
    fourth: the poll that runs again counts on from three (not from its first heartbeat's
    two), so the next failure is the fourth, the threshold: the page is told failing, then
    recovered after four failures."""
    site = FailingThenGated(fail=3)
    async with serve(site.app()) as base:
        env = crash_env(dev_env, loopback_deps, tmp_path, "poll-failures")
        env["AMBIENT_WORKER_DEAD_AFTER_SECONDS"] = "5"
        task = unique(f"web-monitor/{USER}/failing")
        with worker_process(env, tmp_path, tmp_path / "worker-1.log") as first:
            queue = env["AMBIENT_TEMPORAL_TASK_QUEUE"]
            config = fast([f"{base}/news"], failure_threshold=4)
            handle = await start(dev_env, queue, config, window=600.0, task=task)
            await serving(dev_env, env, first)
            await asyncio.wait_for(site.held.wait(), 60)
            first.send_signal(signal.SIGKILL)
            assert await asyncio.to_thread(first.wait, 30) == -signal.SIGKILL
        site.release.set()
        with worker_process(env, tmp_path, tmp_path / "worker-2.log"):
            await eventually(lambda: _answered_times(site, 7), bound=120)
            await handle.signal("stop")
            await asyncio.wait_for(handle.result(), 60)
    told = [(k, p) for k, p in await _payloads(loopback_deps, task) if k != "watch.stopped"]
    assert [kind for kind, _ in told] == ["watch.failing", "watch.recovered"]
    assert told[0][1]["failures"] == 4
    assert told[1][1]["after_failures"] == 4


async def _answered_times(site: FailingThenGated, n: int) -> bool:
    return site.answers >= n


async def _payloads(deps: WorkerDeps, task: str) -> list[tuple[str, dict[str, Any]]]:
    async with deps.db.session() as session:
        rows = await EventRepository(session).list(task=task, limit=100)
    return [(row.kind, dict(row.payload)) for row in reversed(rows)]
