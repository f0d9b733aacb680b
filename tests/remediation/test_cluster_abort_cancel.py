"""An abort and a cancel in Temporal around a change: a run cancelled while its abort waits
for the change on the wire, and a change given up (aborted, cancelled) after a try that may
have written."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import CancelledError
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.remediation.ladder import Rung
from ambient.remediation.runs import AbortInput
from ambient.remediation.storage import UNVERIFIED
from ambient.remediation.views import audit_action
from tests.remediation.support import (
    CANCEL_REQUESTED,
    HeldAnswer,
    error_rate,
    refusing,
    run_ended,
    signal_taken,
    some,
    taken_after,
)
from tests.remediation.test_cluster import _kubeconfig
from tests.remediation.test_cluster_cancel import CANCELLED, HeldRequest, Queue
from tests.remediation.test_cluster_edges import _checkout, _executing
from tests.remediation.test_workflow import USER
from tests.standins.kube_api import WRITES, _status
from tests.support.record import save_history
from tests.support.servers import HANG, serve
from tests.support.waits import eventually
from workflows.remediation import ABORTED_BEFORE_CHANGE as ABORTED
from workflows.remediation import GradedRemediationWorkflow

ACTIVITY_COMPLETED = EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED


@asynccontextmanager
async def _cluster(
    deps: WorkerDeps,
    tmp_path: Path,
    holding: HeldRequest | HeldAnswer | BusyRead | StoredThenBusy,
    refused: int,
    healthy_from: int | None = None,
) -> AsyncIterator[tuple[Any, str]]:
    """The stand-in behind ``holding``, its first ``refused`` writes answered 503; USER may
    execute there: the stand-in and the alert's metric URL (never healthy unless said)."""
    api = _checkout(tmp_path)
    api.unavailable_writes = refused
    async with serve(holding.wrap(api.app())) as base:
        await _executing(deps, _kubeconfig(tmp_path, base), approval_from=0)
        async with error_rate(healthy_from=healthy_from) as (_, url):
            yield api, url


async def _change_retried(handle: WorkflowHandle[Any, Any], why: str) -> None:
    """Waits until the run scheduled its regular change: its one first try ran out or failed."""

    async def retried() -> bool:
        scheduled = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        return scheduled in [e.event_type async for e in handle.fetch_history_events()]

    await eventually(retried, why)


@pytest.mark.devserver
@pytest.mark.parametrize("together", [False, True], ids=["after-the-abort", "with-the-answer"])
async def test_a_run_cancelled_while_its_abort_waits_for_the_change_says_what_it_wrote(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path, together: bool
) -> None:
    """Aborted while the regular change's write was under way, the abort waits for that write's
    answer; the run then cancelled in Temporal. Cancelled before the answer came (the cancel
    in a workflow task of its own, the answer in a later one), the cancel went unheard: the run
    ended as the abort ends it and closed Completed, no `cancelled` in its audit. Cancelled
    after the answer came, both in one workflow task, the SDK raised the cancel with the change
    done and its answer went unread: the restart made was said not made, its slot given back
    and the `cancelled` audit's `written` empty (a person told there was nothing to undo)."""
    holding = HeldRequest(lambda method, path, patched: method == "PATCH" and patched == 1)
    queue = Queue(dev_env, deps)
    async with _cluster(deps, tmp_path, holding, refused=1) as (api, url), queue.acts():
        try:
            async with queue.runs():
                handle = await queue.start(url)
                await asyncio.wait_for(holding.arrived.wait(), HANG)  # the change's write
                await handle.signal(GradedRemediationWorkflow.abort, AbortInput(by=USER))
                await signal_taken(handle)
                if not together:
                    await handle.cancel()
                    await taken_after(handle, CANCEL_REQUESTED, "the run took the cancel")
                    holding.release.set()
                    with pytest.raises(WorkflowFailureError) as closed:
                        await asyncio.wait_for(handle.result(), HANG)
        finally:
            holding.release.set()
        if together:

            async def completed() -> bool:
                events = [e.event_type async for e in handle.fetch_history_events()]
                return ACTIVITY_COMPLETED in events

            await eventually(completed, "the change completed")
            await handle.cancel()
        async with queue.runs():
            if together:
                with pytest.raises(WorkflowFailureError) as closed:
                    await asyncio.wait_for(handle.result(), HANG)
            await save_history(
                handle,
                "remediation_cancelled_as_an_aborted_change_completes"
                if together
                else "remediation_cancelled_while_an_abort_waits_for_its_change",
            )
            status, audit, slot = await run_ended(deps, handle)

    assert isinstance(closed.value.cause, CancelledError)
    sent = [(c.kind, c.method, c.status) for c in api.calls if c.method in WRITES]
    assert sent == [("deployments", "PATCH", 503), ("deployments", "PATCH", 200)]
    assert (status.state, status.outcome) == ("aborted", CANCELLED)
    (restart,) = status.attempts
    assert (restart.rung, restart.applied) == (Rung.RESTART, True), restart
    assert slot is not None  # the restart was made: it counts
    (cancelled,) = [r for r in audit if r.action == "cancelled"]
    assert cancelled.actor == UNVERIFIED
    assert cancelled.detail["written"] == [f"rung 1 (restart): {restart.detail}"]
    assert [r.detail["state"] for r in audit if r.action == "finished"] == ["aborted"]


@pytest.mark.devserver
@pytest.mark.parametrize("how", ["abort", "cancel"])
async def test_a_change_given_up_after_a_try_that_timed_out_keeps_its_slot(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path, how: str
) -> None:
    """The first change's one try ran out of time while the API server, its restart stored,
    held the answer; the regular change, its retry, was then given up before it started,
    aborted or cancelled in Temporal. Its cancellation was taken for the whole change's:
    "before its change", its slot given back (the cluster's hour did not count the restart
    made). A try that may have written makes it "change failed", its slot kept, for a person
    to look at, told the change may have been made and what to check (it said "could not be
    applied (Activity timed out)", "Tried: restart (not applied)", and the `cancelled` audit's
    `written` was empty)."""
    holding = HeldAnswer()
    queue = Queue(dev_env, deps)
    async with _cluster(deps, tmp_path, holding, refused=0) as (api, url):
        # The one try of the opening's workflow task has the step's time at most: 3 s, room
        # for its reads on a loaded host before the write whose answer is held.
        deps.settings = deps.settings.model_copy(update={"remediation_step_timeout_seconds": 3})
        # No worker takes the regular change: it waits unstarted for what comes.
        async with queue.runs():
            handle = await queue.start(url)
            try:
                await asyncio.wait_for(holding.arrived.wait(), HANG)  # stored, answer held

                await _change_retried(handle, "the one try ran out of time, the change retried")
            finally:
                holding.release.set()
            if how == "abort":
                await handle.signal(GradedRemediationWorkflow.abort, AbortInput(by=USER))
                await signal_taken(handle)  # the change cancelled before a worker takes it
                async with queue.acts():  # the pushes of its end
                    await asyncio.wait_for(handle.result(), HANG)
            else:
                await handle.cancel()
                with pytest.raises(WorkflowFailureError) as closed:
                    await asyncio.wait_for(handle.result(), HANG)
                assert isinstance(closed.value.cause, CancelledError)
            await save_history(
                handle,
                "remediation_aborted_and_handed_over_after_its_first_try_timed_out"
                if how == "abort"
                else "remediation_cancelled_after_its_first_try_timed_out",
            )
            status, audit, slot = await run_ended(deps, handle)

    assert [(c.kind, c.method, c.status) for c in api.writes()] == [("deployments", "PATCH", 200)]
    (restart,) = status.attempts
    maybe = "may have been made (its answer was lost after 3 s): check deployment/prod/checkout"
    said = f"rung 1 (restart) {maybe.replace('made', 'applied')}"
    assert (restart.applied, restart.maybe_applied, restart.detail) == (False, True, maybe)
    assert restart.skipped_reason == f"change failed: {said}"
    assert slot is not None  # it may have written (and did): the cluster's hour counts it
    if how == "cancel":
        assert (status.state, status.outcome) == ("aborted", CANCELLED)
        (cancelled,) = [r for r in audit if r.action == "cancelled"]
        assert cancelled.actor == UNVERIFIED
        # A person may have to undo it: listed with what the run wrote.
        assert cancelled.detail["written"] == [f"rung 1 (restart): {maybe}"]
    else:
        # As a change that may have written always was: a person takes it from there, told
        # what to look at (not "could not be applied", "restart (not applied)").
        assert (status.state, status.outcome) == ("handed_over", said)
        (handed,) = [r for r in audit if r.action == "hand_over"]
        assert handed.detail["reason"] == said
        assert "Tried: restart (may have been applied)." in handed.detail["body"]
        # The abort that handed it over is audited, its sender as checked (none here: sent
        # in Temporal), as every abort is.
        (aborted,) = [r for r in audit if r.action == "aborted"]
        assert (aborted.actor, aborted.detail["given_by"]) == (UNVERIFIED, USER)
        # It cut the change's retries short: the abort stopped the run, and is said so.
        assert (aborted.detail["ended"], aborted.detail["stopped_it"]) == ("handed_over", True)
        assert audit_action(aborted.action, aborted.detail) == "aborted"


@dataclass
class BusyRead:
    """The first change's read of the Deployment (its second GET, after the checkpoint's)
    answered 503 as a busy API server answers it: a try turned away before it wrote."""

    gets: int = 0

    def wrap(self, app: Any) -> Any:
        async def busy(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["method"] == "GET":
                self.gets += scope["path"].endswith("/deployments/checkout")
                if scope["path"].endswith("/deployments/checkout") and self.gets == 2:
                    refusal = _status(503, "ServiceUnavailable", "the apiserver is shutting down")
                    await refusal(scope, receive, send)
                    return
            await app(scope, receive, send)

        return busy


@pytest.mark.devserver
async def test_an_abort_after_a_first_try_refused_at_its_read_is_before_its_change(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """The first change's one try was refused (503) at its read, before it sent a write; the
    run was aborted while the regular change, its retry, waited unstarted. The try's refusal
    did not say it wrote nothing, so it was taken for one that may have written: the run
    handed over ("could not be applied"), its slot kept for a change nobody made."""
    queue = Queue(dev_env, deps)
    async with _cluster(deps, tmp_path, BusyRead(), refused=0) as (api, url):
        async with queue.runs():
            handle = await queue.start(url)

            await _change_retried(handle, "the one try refused, the change retried")
            await handle.signal(GradedRemediationWorkflow.abort, AbortInput(by=USER))
            await signal_taken(handle)  # the change cancelled before a worker takes it
            async with queue.acts():  # the pushes of its end
                await asyncio.wait_for(handle.result(), HANG)
            status, audit, slot = await run_ended(deps, handle)

    assert api.writes() == []
    assert status.state == "aborted", status.outcome
    assert [(a.rung, a.applied, a.skipped_reason) for a in status.attempts] == [
        (Rung.RESTART, False, ABORTED)
    ]
    assert [r.detail["state"] for r in audit if r.action == "finished"] == ["aborted"]
    assert slot is None  # nothing changed: the cluster's hour does not count it


@pytest.mark.devserver
@pytest.mark.usefixtures("quick_change_retries")  # its retries spent in a second
async def test_a_change_refused_until_its_retries_are_spent_after_a_try_that_wrote_keeps_its_slot(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """The first change's one try ran out of time, its restart stored; every retry was then
    refused (503) at its read of the Deployment, before it wrote. The last said it wrote
    nothing and the activity gave the slot back: the cluster's hour did not count the restart
    made, and the hand-over said the rung "could not be applied"."""
    holding = HeldAnswer()
    queue = Queue(dev_env, deps)
    async with _cluster(deps, tmp_path, holding, refused=0) as (api, url):
        deps.settings = deps.settings.model_copy(update={"remediation_step_timeout_seconds": 3})
        async with queue.runs():
            handle = await queue.start(url)
            try:
                await asyncio.wait_for(holding.arrived.wait(), HANG)  # stored, answer held

                await _change_retried(handle, "the one try ran out of time, the change retried")
            finally:
                api.unavailable_reads = {"deployments": 1000}  # every retry refused at its read
                holding.release.set()
            async with queue.acts():
                await asyncio.wait_for(handle.result(), HANG)
            status, audit, slot = await run_ended(deps, handle)

    assert [(c.kind, c.method, c.status) for c in api.writes()] == [("deployments", "PATCH", 200)]
    (restart,) = status.attempts
    said = (
        "rung 1 (restart) may have been applied (its answer was lost after 3 s): "
        "check deployment/prod/checkout"
    )
    assert slot is not None  # the restart was stored: the cluster's hour counts it
    assert (restart.applied, restart.maybe_applied) == (False, True)
    assert (status.state, status.outcome) == ("handed_over", said)
    assert [r.detail["reason"] for r in audit if r.action == "hand_over"] == [said]


@pytest.mark.devserver
async def test_a_change_refused_for_good_at_its_read_after_a_try_that_wrote_keeps_its_slot(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """The first change's one try ran out of time, its restart stored; the regular change's
    first attempt was then refused for good (403) at its read of the Deployment. Its activity
    gave the slot back (attempt 1, nothing written by it), and the hand-over said the rung
    "could not be applied": the restart made was neither counted nor said maybe made."""
    holding = HeldAnswer()
    queue = Queue(dev_env, deps)
    async with _cluster(deps, tmp_path, holding, refused=0) as (api, url):
        deps.settings = deps.settings.model_copy(update={"remediation_step_timeout_seconds": 3})
        async with queue.runs():
            handle = await queue.start(url)
            try:
                await asyncio.wait_for(holding.arrived.wait(), HANG)  # stored, answer held

                await _change_retried(handle, "the one try ran out of time, the change retried")
            finally:
                api.forbidden = {"get deployments"}  # the retry refused for good at its read
                holding.release.set()
            async with queue.acts():
                await asyncio.wait_for(handle.result(), HANG)
            status, audit, slot = await run_ended(deps, handle)

    assert [(c.kind, c.method, c.status) for c in api.writes()] == [("deployments", "PATCH", 200)]
    (restart,) = status.attempts
    said = (
        "rung 1 (restart) may have been applied (its answer was lost after 3 s): "
        "check deployment/prod/checkout"
    )
    assert (restart.applied, restart.maybe_applied) == (False, True)
    assert (status.state, status.outcome) == ("handed_over", said)
    assert [r.detail["reason"] for r in audit if r.action == "hand_over"] == [said]
    assert slot is not None  # the restart was stored: the cluster's hour counts it


@dataclass
class StoredThenBusy:
    """The second restart sent (the regular change's first attempt, after the one try's 503)
    stored, its answer held past the attempt's time; once ``busy``, the Deployment's GET held
    until ``answer``, then refused 503: the next attempt turned away at its read."""

    stored: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    reading: asyncio.Event = field(default_factory=asyncio.Event)
    answer: asyncio.Event = field(default_factory=asyncio.Event)
    busy: bool = False
    patches: int = 0

    def wrap(self, app: Any) -> Any:
        async def held(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            deployment = scope["path"].endswith("/deployments/checkout")
            if self.busy and scope["method"] == "GET" and deployment:
                self.reading.set()
                await self.answer.wait()
                await _status(503, "ServiceUnavailable", "busy")(scope, receive, send)
                return
            self.patches += scope["method"] == "PATCH"
            if scope["method"] != "PATCH" or self.patches != 2:
                await app(scope, receive, send)
                return

            async def late(message: Any) -> None:
                if message["type"] == "http.response.start":
                    self.stored.set()
                    await self.release.wait()
                await send(message)

            await app(scope, receive, late)

        return held


@pytest.mark.devserver
async def test_an_abort_while_a_retry_is_refused_at_its_read_after_an_attempt_that_wrote(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """The regular change's first attempt stored its restart, its answer lost (out of time);
    the run was aborted while attempt 2 was refused (503) at its read of the Deployment. That
    refusal said it wrote nothing, and the run, which cannot see attempt 1, said "aborted
    before its change" and gave the slot back: the cluster's hour did not count the restart."""
    holding = StoredThenBusy()
    queue = Queue(dev_env, deps)
    async with _cluster(deps, tmp_path, holding, refused=1) as (api, url):
        deps.settings = deps.settings.model_copy(update={"remediation_step_timeout_seconds": 3})
        async with queue.runs(), queue.acts():
            handle = await queue.start(url)
            try:
                await asyncio.wait_for(holding.stored.wait(), HANG)  # attempt 1's, held
                holding.busy = True
                await asyncio.wait_for(holding.reading.wait(), HANG)  # attempt 2 at its read
                await handle.signal(GradedRemediationWorkflow.abort, AbortInput(by=USER))
                await signal_taken(handle)  # its retries cancelled, attempt 2 let finish
            finally:
                holding.release.set()
                holding.answer.set()
            await asyncio.wait_for(handle.result(), HANG)
            status, audit, slot = await run_ended(deps, handle)

    assert [(c.kind, c.method, c.status) for c in api.writes()] == [("deployments", "PATCH", 200)]
    (restart,) = status.attempts
    assert slot is not None  # the restart was stored: the cluster's hour counts it
    assert restart.applied is False
    assert restart.skipped_reason is not None
    assert restart.skipped_reason.startswith("change failed: "), restart.skipped_reason
    assert status.state == "handed_over", status.outcome
    assert [r.detail["state"] for r in audit if r.action == "finished"] == ["handed_over"]
    assert [r.actor for r in audit if r.action == "aborted"] == [UNVERIFIED]


@pytest.mark.devserver
@pytest.mark.parametrize("when", ["change-tried", "before-its-first-step"])
async def test_a_run_cancelled_while_its_aborted_step_gives_its_slot_back_gives_it_back(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path, when: str
) -> None:
    """Aborted while the change was tried (nothing written), or before the first step (the
    opening reserved its slot), the step gives its slot back, and the run is cancelled in
    Temporal while the database refuses that write. The run counted the slot given back
    before it was, and its cancellation, which cuts the giving back short, gave nothing
    back: the cluster's hour counted a change nobody made."""
    holding = HeldRequest(lambda method, path, patched: method == "PATCH" and patched == 1)
    queue = Queue(dev_env, deps)
    # The first try and the regular change's write under way are refused (503): unwritten.
    async with _cluster(deps, tmp_path, holding, refused=2) as (api, url), queue.acts():
        async with queue.runs():
            # A short workflow task: the server passes the cancel on while the run gives
            # its slot back (a local activity, retried in the task).
            short = timedelta(seconds=2)
            if when == "before-its-first-step":
                async with refusing(deps, "DELETE", "remediation_actions") as tried:
                    handle = await queue.start(url, short, AbortInput(by=USER))
                    await eventually(partial(some, tried), "the slot given back, refused")
                    await handle.cancel()
                    await taken_after(handle, CANCEL_REQUESTED, "the run took the cancel")
            else:
                handle = await queue.start(url, short)
                try:
                    await asyncio.wait_for(holding.arrived.wait(), HANG)
                    await handle.signal(GradedRemediationWorkflow.abort, AbortInput(by=USER))
                    await signal_taken(handle)
                    async with refusing(deps, "DELETE", "remediation_actions") as tried:
                        holding.release.set()
                        await eventually(partial(some, tried), "the slot given back, refused")
                        await handle.cancel()
                        await taken_after(handle, CANCEL_REQUESTED, "the run took the cancel")
                finally:
                    holding.release.set()
            with pytest.raises(WorkflowFailureError) as closed:
                await asyncio.wait_for(handle.result(), HANG)
            step = "first_step" if when == "before-its-first-step" else "step"
            await save_history(
                handle, f"remediation_cancelled_as_its_aborted_{step}_frees_its_slot"
            )
            status, audit, slot = await run_ended(deps, handle)

    assert isinstance(closed.value.cause, CancelledError)
    assert api.writes() == []
    assert [(a.rung, a.applied, a.skipped_reason) for a in status.attempts] == (
        [] if when == "before-its-first-step" else [(Rung.RESTART, False, ABORTED)]
    )
    assert (status.state, status.outcome) == ("aborted", CANCELLED)
    assert [r.actor for r in audit if r.action == "cancelled"] == [UNVERIFIED]
    assert slot is None  # nothing changed: the cluster's hour does not count it
