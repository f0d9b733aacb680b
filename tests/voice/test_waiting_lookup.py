"""What waits for my approval, among many open runs: the lookup behind what_needs_me, the
approvals by voice and the context provider, against the Temporal dev server's visibility."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.testing import WorkflowEnvironment

from ambient import temporal, xiaozhi_context
from ambient.deps import WorkerDeps
from ambient.remediation.runs import RemediationStatus
from ambient.storage.models import RemediationRecord
from ambient.xiaozhi_context import waiting_for
from tests.conftest import unique
from tests.remediation.support import (
    add_user,
    alert,
    remediation_settings,
    remediations_with_worker,
    state_reaches,
)


@pytest.mark.parametrize(
    ("newer", "state"),
    [
        # Newer runs the table still shows open (acting, verifying, or rows a terminated
        # workflow left behind): none of them waits for anyone.
        (25, "verifying"),
        # More open runs than one read of the table holds (a storm still acting): the one
        # waiting is older than all of them.
        (600, "verifying"),
        # An alert storm's runs since, all finished: the one waiting is older than all of them.
        (600, "resolved"),
    ],
)
async def test_a_run_waiting_for_me_is_found_behind_many_newer_runs(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, newer: int, state: str
) -> None:
    owner = unique("ops")
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, owner)
    async with remediations_with_worker(dev_env, deps, healthy_from=1) as (url, _, service):
        started = await service.start(owner, alert(url, workload=unique("checkout")), "dry_run")
        handle = dev_env.client.get_workflow_handle(
            started.remediation_id, result_type=RemediationStatus
        )
        await state_reaches(
            dev_env, handle, ("waiting_approval",), step=timedelta(milliseconds=100)
        )
        async with deps.db.session() as session:
            for i in range(newer):
                rid = f"remediation/{unique('busy')}"
                session.add(
                    RemediationRecord(
                        run_key=f"{rid}@run-{i}",
                        remediation_id=rid,
                        user=owner,
                        cluster_id="cls-test0001",
                        service=f"cls-test0001/prod/busy-{i}",
                        alert_type="error_rate",
                        source="manual",
                        mode="dry_run",
                        state=state,
                    )
                )
            await session.commit()
        # The server's list shows what the workflow set when it began to wait.
        shown = (
            f'WorkflowId = "{started.remediation_id}" '
            f'AND {temporal.STATE.name} = "waiting_approval"'
        )
        while not [e async for e in dev_env.client.list_workflows(shown)]:
            await dev_env.sleep(timedelta(milliseconds=50))

        found = await waiting_for(service, owner)

    assert [r.remediation_id for r in found] == [started.remediation_id]


async def test_without_the_servers_list_the_run_that_waited_longest_is_still_asked(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Where the server's list cannot be had (here: the time-skipping server has no
    visibility), the open runs are asked themselves, at most 20: the newest 20 were asked, so
    25 newer open runs hid the one waiting for approval ('the first one', the one that waited
    longest) from what_needs_me, the approvals by voice and the context."""
    owner = unique("ops")
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, owner)
    async with remediations_with_worker(ts_env, deps, healthy_from=1) as (url, _, service):
        started = await service.start(owner, alert(url, workload=unique("checkout")), "dry_run")
        handle = ts_env.client.get_workflow_handle(
            started.remediation_id, result_type=RemediationStatus
        )
        await state_reaches(ts_env, handle, ("waiting_approval",))
        async with deps.db.session() as session:
            for i in range(25):
                rid = f"remediation/{unique('busy')}"
                session.add(
                    RemediationRecord(
                        run_key=f"{rid}@run-{i}",
                        remediation_id=rid,
                        user=owner,
                        cluster_id="cls-test0001",
                        service=f"cls-test0001/prod/busy-{i}",
                        alert_type="error_rate",
                        source="manual",
                        mode="dry_run",
                        state="verifying",
                    )
                )
            await session.commit()
        found = await waiting_for(service, owner)

    assert [r.remediation_id for r in found] == [started.remediation_id]


async def test_runs_the_server_lists_as_waiting_past_the_asked_ones_are_found(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a storm of 52 waiting runs, only the 20 that waited longest were asked: "approve
    t500" found nothing and 20 were said to wait. Past the asked ones (here one), a run the
    server lists as waiting is taken at its word (the answer re-reads it)."""
    monkeypatch.setattr(xiaozhi_context, "ASKED_AT_MOST", 1)
    owner = unique("ops")
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, owner)
    async with remediations_with_worker(dev_env, deps, healthy_from=1) as (url, _, service):
        started = [
            await service.start(owner, alert(url, workload=unique(name)), "dry_run")
            for name in ("checkout", "t500")
        ]
        await waiting_and_listed(dev_env, [r.remediation_id for r in started])

        found = await waiting_for(service, owner)

    # Both, oldest first by the runs' own start (a second start's first workflow task can be
    # run before the first's: their order of start calls does not decide it).
    assert {r.remediation_id for r in found} == {r.remediation_id for r in started}
    assert [r.started_at for r in found] == sorted(r.started_at for r in found)
    assert {r.state for r in found} == {"waiting_approval"}


async def test_a_run_waiting_for_me_is_found_when_the_servers_list_is_full_of_others_runs(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server's list is of every user's waiting runs, newest first, at most 1,000 (here
    one): past that many, the runs of a user whose waited longer were left out of it and said
    not to wait ("没有等你审批的修复"). A full list is not taken as the whole: the user's own
    open runs are asked of the server by their ids, each found (past the ones asked, here one,
    too: not only the oldest)."""
    monkeypatch.setattr(xiaozhi_context, "SHOWN_AT_MOST", 1)
    monkeypatch.setattr(xiaozhi_context, "ASKED_AT_MOST", 1)
    owner, other = unique("ops"), unique("ops")
    remediation_settings(deps, remediation_approval_from_rung=1)
    for user in (owner, other):
        await add_user(deps, user)
    async with remediations_with_worker(dev_env, deps, healthy_from=1) as (url, _, service):
        started = [
            await service.start(user, alert(url, workload=unique("checkout")), "dry_run")
            for user in (owner, owner, other)
        ]
        await waiting_and_listed(dev_env, [r.remediation_id for r in started])

        found = await waiting_for(service, owner)

    assert {r.remediation_id for r in found} == {r.remediation_id for r in started[:2]}


async def waiting_and_listed(env: WorkflowEnvironment, ids: list[str]) -> None:
    """Each run waits for its approval, and the server's list shows it so."""
    for rid in ids:
        handle = env.client.get_workflow_handle(rid, result_type=RemediationStatus)
        await state_reaches(env, handle, ("waiting_approval",), step=timedelta(milliseconds=100))
    listed = " OR ".join(f'WorkflowId = "{rid}"' for rid in ids)
    shown = f'({listed}) AND {temporal.STATE.name} = "waiting_approval"'
    while len([e async for e in env.client.list_workflows(shown)]) < len(ids):
        await env.sleep(timedelta(milliseconds=50))
