"""Who aborted a remediation: the user a door checked, or — for an abort signalled in Temporal
by hand (the Web UI's signals carry no identity) — a sender the audit says is not verified,
whatever name the signal gave."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.remediation.runs import AbortInput, AuditEntry, RemediationStatus
from ambient.remediation.service import RemediationService
from ambient.remediation.storage import PAGE, UNVERIFIED, answer_verified, record_asked
from ambient.storage import Database
from ambient.storage.audit import AuditRepository
from ambient.wiring import AppState
from tests.conftest import unique
from tests.remediation.doors import steering_doors
from tests.remediation.support import (
    add_user,
    alert,
    new_token,
    only_its_hash_kept,
    remediation_settings,
    remediations_on_dev,
    tokens_sent,
    waiting_dry_run,
)
from tests.support.record import save_history
from tests.support.waits import eventually
from workflows.remediation import GradedRemediationWorkflow

# How each door tells a user who may not steer the run that it is none of theirs.
NOT_YOURS = {
    "mcp": "no remediation '{rid}' among yours",
    "api": '404 {{"detail":"no remediation \'{rid}\' among yours',
    "form": "That remediation is not one of yours",
    "cli": "no remediation '{rid}' among yours",
}
DOORS = tuple(NOT_YOURS)
# The name each door gives itself in the audit record of what it asked (its `via`).
VIA = {"mcp": "mcp", "api": "api", "form": "web", "cli": "cli"}


async def _waiting(remediations: RemediationService, user: str, rid: str) -> bool:
    return (await remediations.get(user, rid)).state == "waiting_approval"


async def _aborted(remediations: RemediationService, user: str, rid: str) -> bool:
    return (await remediations.get(user, rid)).state == "aborted"


@pytest.mark.parametrize("given", ["owner", UNVERIFIED])
async def test_an_abort_signalled_in_temporal_is_recorded_as_not_verified_not_as_its_name(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, given: str
) -> None:
    # The Web UI's "Send a signal" with {"by": "<the owner>"} was audited as the owner's abort,
    # and the run's outcome said "aborted by <owner>": any name could be given. A signal giving
    # the unverified sender's own name was taken for a verified one (the names compared).
    remediation_settings(deps, remediation_approval_from_rung=1)
    owner = unique("own")
    given = owner if given == "owner" else given
    await add_user(deps, owner)
    async with remediations_on_dev(dev_env, deps) as (url, _, remediations):
        rid = (await remediations.start(owner, alert(url, workload=owner))).remediation_id
        await eventually(lambda: _waiting(remediations, owner, rid), f"{rid} waits")
        handle = dev_env.client.get_workflow_handle_for(GradedRemediationWorkflow.run, rid)
        await handle.signal(GradedRemediationWorkflow.abort, AbortInput(by=given, reason="stop it"))
        status = await handle.result()
        view = await remediations.get(owner, rid)

    assert status.state == "aborted"
    assert (
        status.outcome
        == view.outcome
        == (
            # A dry run's end says it was one (its restart changed nothing).
            "a dry run, nothing was changed: aborted in Temporal, not through ambient-ops: the "
            f"sender is not verified (it gave the name {given!r}): stop it"
        )
    )
    async with deps.db.session() as session:
        rows = await AuditRepository(session).list(subject=status.run_key)
    assert [r.action for r in rows if r.action.startswith("abort")] == ["aborted"]
    (aborted,) = [r for r in rows if r.action == "aborted"]
    assert aborted.actor == UNVERIFIED
    assert aborted.detail["given_by"] == given and aborted.detail["reason"] == "stop it"
    assert aborted.detail["sender"] == "not verified: sent in Temporal"


async def test_every_door_checks_the_caller_and_records_the_abort_under_that_user(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=1)
    owner, stranger = unique("own"), unique("stranger")
    await add_user(deps, owner)
    await add_user(deps, stranger, permission="execute")
    tokens = {name: await new_token(deps, name) for name in (owner, stranger)}
    async with remediations_on_dev(dev_env, deps) as (url, settings, remediations):
        rids = {}
        for door in DOORS:
            started = await remediations.start(owner, alert(url, workload=f"{owner}-{door}"))
            rids[door] = started.remediation_id
        for rid in rids.values():
            await eventually(lambda rid=rid: _waiting(remediations, owner, rid), f"{rid} waits")
        state = AppState(
            settings=settings, db=deps.db, temporal=dev_env.client, channels=deps.channels
        )
        doors = steering_doors("abort", state, settings, tokens, stranger)
        for door, rid in rids.items():
            # A user who may not steer the run is refused at every door, the run left waiting.
            refused = await doors[door](stranger, rid)
            assert NOT_YOURS[door].format(rid=rid) in refused, (door, refused)
            assert await _waiting(remediations, owner, rid), door
            assert await doors[door](owner, rid) == "", door
        for rid in rids.values():
            await eventually(lambda rid=rid: _aborted(remediations, owner, rid), f"{rid} ends")
        views = {door: await remediations.get(owner, rid) for door, rid in rids.items()}
        sent = {door: await tokens_sent(dev_env.client, rid) for door, rid in rids.items()}

    for door, view in views.items():
        said = f"a dry run, nothing was changed: aborted by {owner}: via {door}"
        assert view.outcome == said, view.outcome
        async with deps.db.session() as session:
            rows = await AuditRepository(session).list(subject=view.run_key)
        steps = [(r.action, r.actor) for r in rows if r.action.startswith("abort")]
        assert steps == [("abort", owner), ("aborted", owner)], (door, steps)
        assert [r.detail.get("via") for r in rows if r.action == "abort"] == [VIA[door]], door
        # The door's abort carried a one-time token; its record holds only the token's hash.
        (token,) = sent[door]
        await only_its_hash_kept(deps, rows, "abort", token)


async def test_a_doors_record_of_an_abort_that_never_arrived_verifies_no_abort_sent_in_temporal(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # A door records the abort before it signals. When the signal did not get through (the
    # network, the run gone by then), the record stayed: an abort signalled in Temporal with
    # that user and reason was audited as the door's, and the outcome named the user.
    remediation_settings(deps, remediation_approval_from_rung=1)
    owner = unique("own")
    await add_user(deps, owner)
    async with remediations_on_dev(dev_env, deps) as (url, _, remediations):
        rid = (await remediations.start(owner, alert(url, workload=owner))).remediation_id
        await eventually(lambda: _waiting(remediations, owner, rid), f"{rid} waits")
        run_key = (await remediations.get(owner, rid)).run_key
        # What the door records before it signals, with the signal then lost.
        async with deps.db.writing() as session:
            await record_asked(session, run_key, owner, {"reason": "stop it"}, "abort")
        handle = dev_env.client.get_workflow_handle_for(GradedRemediationWorkflow.run, rid)
        await handle.signal(GradedRemediationWorkflow.abort, AbortInput(by=owner, reason="stop it"))
        status = await handle.result()

    assert status.outcome == (
        "a dry run, nothing was changed: aborted in Temporal, not through ambient-ops: the "
        f"sender is not verified (it gave the name {owner!r}): stop it"
    )
    async with deps.db.session() as session:
        rows = await AuditRepository(session).list(subject=status.run_key)
    assert [(r.action, r.actor) for r in rows if r.action.startswith("abort")] == [
        ("abort", owner),
        ("aborted", UNVERIFIED),
    ]


@asynccontextmanager
async def _waiting_run(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> AsyncIterator[tuple[str, RemediationService, WorkflowHandle[Any, RemediationStatus]]]:
    """A dry run waiting for its first approval, on a worker of the dev server: its owner, the
    service and the run's handle."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    owner = unique("own")
    await add_user(deps, owner)
    async with remediations_on_dev(dev_env, deps) as (url, _, remediations):
        rid = await waiting_dry_run(remediations, owner, url)
        yield (
            owner,
            remediations,
            dev_env.client.get_workflow_handle_for(GradedRemediationWorkflow.run, rid),
        )


@pytest.mark.parametrize(
    ("signal", "args"),
    [
        ("abort", [{"by": "ops", "reason": "first"}, "extra"]),
        ("joined", []),
        ("joined", [{"user": "ops"}, {"user": "ops"}]),
    ],
    ids=["abort-two-inputs", "joined-no-input", "joined-two-inputs"],
)
async def test_a_signal_sent_by_hand_with_inputs_that_do_not_fit_is_dropped_and_the_run_goes_on(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, signal: str, args: list[object]
) -> None:
    # docs/remediation.md: a signal whose input does not decode is dropped, the run unchanged.
    # The Web UI's "Send a signal" with its input box left empty (no input), or two inputs,
    # called the handler with the wrong number of arguments: the TypeError failed the run's
    # workflow task on every attempt, for good (the signal stays in its history).
    async with _waiting_run(dev_env, deps) as (owner, remediations, handle):
        rid = handle.id
        await handle.signal(signal, args=args)
        await handle.signal(GradedRemediationWorkflow.abort, AbortInput(by=owner, reason="second"))
        await eventually(lambda: _aborted(remediations, owner, rid), f"{rid} ends")
        status = await handle.result()
        failures = [
            e.workflow_task_failed_event_attributes.failure.message
            async for e in handle.fetch_history_events()
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
        ]
    assert failures == []
    # The abort that fitted is the one taken.
    assert status.outcome is not None and status.outcome.endswith(": second"), status.outcome


async def test_an_answer_after_hundreds_of_requests_by_its_approver_is_still_verified(
    db: Database,
) -> None:
    # Only the first 200 records of a user's requests in a run were read: from the 201st on
    # (a script retrying on timeouts), a real approval was refused as sent in Temporal, not
    # through ambient-ops, and audited as unverified.
    run_key, user = "remediation/0123456789abcdef@run", "amy"
    said = {"rung": 2, "approve": True, "reason": ""}
    async with db.writing() as session:
        for _ in range(PAGE):
            await record_asked(session, run_key, user, said)
        token = await record_asked(session, run_key, user, said)
    entry = AuditEntry(
        run_key=run_key,
        key=f"{run_key}/2/approve",
        actor=user,
        action="approved",
        detail={**said, "token": token},
        asked="approve",
    )
    async with db.writing() as session:
        assert await answer_verified(session, entry)


@pytest.mark.parametrize(
    ("args", "outcome"),
    [
        ([], "(it gave no name)"),
        ([{}], "(it gave no name)"),
        ([{"reason": "stop now"}], "(it gave no name): stop now"),
        (["stop now"], "(it gave no name): stop now"),
        ([{"by": "ops", "reason": 5}], "(it gave the name 'ops')"),
        ([{"by": "ops", "reason": "r" * 1200}], f"(it gave the name 'ops'): {'r' * 1000}"),
        # A name of any length had been kept whole (300,000 characters in the outcome, every
        # read of the run and its audit rows): cut to a user name's most.
        ([{"by": "o" * 300_000}], f"(it gave the name '{'o' * 63}')"),
    ],
    ids=[
        "no-input",
        "empty",
        "reason-alone",
        "a-string",
        "reason-not-text",
        "reason-too-long",
        "name-too-long",
    ],
)
async def test_an_abort_sent_by_hand_that_is_not_an_abort_input_still_stops_the_run(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, args: list[object], outcome: str
) -> None:
    # The Web UI's "Send a signal" abort with its input left empty, or {"reason": ...} alone,
    # did not decode: the SDK dropped it with a warning in the worker's log, the UI said
    # "Signal sent", and the run went on to its next change. An abort is a brake: whatever it
    # carries, it stops the run, said and audited as an abort no one verified.
    async with _waiting_run(dev_env, deps) as (_, _, handle):
        await handle.signal("abort", args=args)
        status = await asyncio.wait_for(handle.result(), 60)  # it waited for approval for ever
        if args == [{"reason": "stop now"}]:
            await save_history(handle, "remediation_aborted_by_hand_without_a_name")
        async with deps.db.session() as session:
            rows = await AuditRepository(session).list(subject=status.run_key)
    assert status.state == "aborted", status
    said = "a dry run, nothing was changed: aborted in Temporal, not through ambient-ops: the "
    assert status.outcome == f"{said}sender is not verified {outcome}", status.outcome
    assert [r.actor for r in rows if r.action == "aborted"] == [UNVERIFIED]
