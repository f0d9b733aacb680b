"""A threshold watch cancelled while it joins its breach's running remediation asks the join
again (tests/watches/test_watch_cancelled.py), while its first ``join_remediation`` (no
heartbeat: it never hears the cancel) goes on and writes too. One breach is one
``deduplicated`` row: both asks carry the breach's check's key."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from sqlalchemy import select
from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities import registry
from activities.remediation import RemediationActivities
from ambient.deps import WorkerDeps
from ambient.remediation.alerts import remediation_id
from ambient.remediation.joins import REPEATED
from ambient.remediation.runs import JoinRequest, RemediationInput
from ambient.storage.models import AuditRecord
from ambient.storage.repositories import EventRepository
from ambient.watches.models import ThresholdWatchInput
from tests.conftest import unique
from tests.remediation.test_triage import cloud  # noqa: F401  (fixture)
from tests.remediation.test_watch_intake import USER as WATCHER
from tests.standins.tencent_api import TencentApi
from tests.support.servers import HANG
from tests.watches.test_watch_cancelled import _canceled, _cancelled_when, _remediating_watch
from workflows.remediation import GradedRemediationWorkflow


async def test_a_threshold_watch_cancelled_while_it_joins_audits_the_join_once(
    dev_env: WorkflowEnvironment,
    deps: WorkerDeps,
    cloud: tuple[TencentApi, Any],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its first join is held before it writes; the cancel cuts it for the watch, which asks
    again (a second activity) and ends. The first then writes as well: keyed by each ask's
    activity, the owner read two repeats of one breach."""
    config, alert = await _remediating_watch(deps, cloud)
    rid = remediation_id(alert)
    running = await dev_env.client.start_workflow(
        GradedRemediationWorkflow.run,
        RemediationInput(alert=alert, user=WATCHER, mode="execute"),
        id=rid,
        task_queue=unique("nobody"),  # no worker: it stays running, its joins signalled
    )
    taken, release, first_done = asyncio.Event(), asyncio.Event(), asyncio.Event()
    asked: list[str | None] = []

    class Held(RemediationActivities):
        @activity.defn(name="join_remediation")
        async def join_remediation(self, request: JoinRequest) -> bool:
            asked.append(request.key)
            if taken.is_set():
                return await super().join_remediation(request)  # the re-ask
            taken.set()
            await release.wait()  # until the watch has asked again and ended
            try:
                return await super().join_remediation(request)
            finally:
                first_done.set()

    async def first_joins_late(handle: WorkflowHandle[Any, Any]) -> None:
        await _canceled(handle)
        release.set()
        await asyncio.wait_for(first_done.wait(), HANG)

    monkeypatch.setattr(registry, "RemediationActivities", Held)
    task = f"threshold-watch/{WATCHER}/{unique('cpu')}"
    run = ThresholdWatchInput(user=WATCHER, task=task, config=config)
    try:
        history = "threshold_watch_cancelled_while_joining_audited_once"
        await _cancelled_when(dev_env, deps, run, "check_now", taken, history, first_joins_late)
        async with deps.db.session() as session:
            events = await EventRepository(session).list(task=task, limit=100)
            subject = f"{rid}@{running.result_run_id}"
            query = select(AuditRecord).where(
                AuditRecord.subject == subject, AuditRecord.action == REPEATED
            )
            repeats = list(await session.scalars(query))
    finally:
        release.set()
        await running.terminate("test over")
    said = sorted(e.kind for e in events)
    # Joined as a name only (the run has no worker to say whose it is): said once, too.
    assert said == [
        "remediation.joined_as_name",
        "watch.breach",
        "watch.remediation_started",
        "watch.stopped",
    ]
    ((actor, key),) = [(r.actor, r.detail["key"]) for r in repeats]  # one row, not two
    assert actor == WATCHER
    # Both asks carry its check's key, its life's (a run id), not its task's: a watch's id is a
    # name its owner chose. Stored hashed, nothing a sender made is read in the row.
    (first, again) = asked
    assert first == again and first is not None and re.search(r"/1@[\w-]+/remediate$", first), asked
    assert task.split("/")[-1] not in first, first
    assert len(key) == 32 and set(key) <= set("0123456789abcdef"), key
