"""An alert sent by someone who may not see the run joins it (one ladder per workload) but puts
nothing of its own into the run: its text reaches none of the owner's messages, and its verify
block decides nothing. Sent through each door that starts a remediation (MCP, API, CLI), and
by a stranger's watch (its join activity; the triage's door is in test_triage.py)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from typer.testing import CliRunner

from activities.remediation import RemediationActivities
from ambient.cli import app as cli
from ambient.deps import WorkerDeps
from ambient.remediation.joins import NAME_ONLY
from ambient.remediation.runs import JoinRequest, RemediationStatus
from ambient.remediation.service import RemediationService
from ambient.storage.audit import AuditRepository
from ambient.storage.repositories import EventRepository
from ambient.wiring import AppState
from api.app import create_app
from tests.conftest import unique
from tests.remediation.support import (
    add_user,
    alert,
    call,
    mcp,
    new_token,
    remediation_settings,
    remediations_on_dev,
)
from tests.support.servers import http_client, serve
from tests.support.waits import eventually
from workflows.remediation import GradedRemediationWorkflow


async def _state(remediations: RemediationService, user: str, rid: str, *states: str) -> bool:
    return (await remediations.get(user, rid)).state in states


async def test_a_strangers_alert_joins_the_run_but_puts_no_text_in_the_owners_messages(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A member's alert on another member's workload (another metric) was kept in the run: its
    source and metric were in the owner's hand-over push and briefing ("Alerts that joined it:
    ..."), and its verify block decided whether the owner's run was over."""
    owner, stranger, oncall = unique("own"), unique("mal"), unique("oncall")
    remediation_settings(
        deps, remediation_approval_from_rung=1, remediation_approvers={"cls-test*": [oncall]}
    )
    for name in (owner, stranger, oncall):
        await add_user(deps, name)
    token = await new_token(deps, stranger)
    async with remediations_on_dev(dev_env, deps) as (url, settings, remediations):
        state = AppState(
            settings=settings, db=deps.db, temporal=dev_env.client, channels=deps.channels
        )
        rid = (await remediations.start(owner, alert(url, workload=owner))).remediation_id
        await eventually(lambda: _state(remediations, owner, rid, "waiting_approval"), "waits")

        def theirs(door: str) -> dict[str, Any]:
            text = f"CALL-555-{door}"
            fields = {"source": text, "metric": text, "message": text, "workload": owner}
            return alert(url, **fields).model_dump(mode="json")

        answers = {}
        async with mcp(state, user=stranger) as client:
            answers["mcp"] = await call(client, "start_remediation", alert=theirs("mcp"))
        async with serve(create_app(settings)) as base, http_client(base) as http:
            answer = await http.post(
                "/remediations",
                json={"alert": theirs("api")},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert answer.status_code == 200, answer.text
            answers["api"] = answer.json()
        env = {
            "AMBIENT_DATA_DIR": str(settings.data_dir),
            "AMBIENT_TEMPORAL_ADDRESS": settings.temporal_address,
            "AMBIENT_TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
            "AMBIENT_FETCH_ALLOW_CIDRS": '["127.0.0.1/32"]',
        }
        args = ["remediation", "start", json.dumps(theirs("cli")), "--user", stranger, "--json"]
        ran = await asyncio.to_thread(CliRunner().invoke, cli, args, env=env)
        assert ran.exit_code == 0, ran.output
        answers["cli"] = json.loads(ran.stdout)
        # An approver of the cluster may steer the run: their alert is the run's to check.
        async with mcp(state, user=oncall) as client:
            cpu = alert(url, source="monitor", metric="cpu_usage", workload=owner)
            await call(client, "start_remediation", alert=cpu.model_dump(mode="json"))

        await remediations.approve(owner, rid, approve=False, reason="not now", via="api")
        await eventually(lambda: _state(remediations, owner, rid, "handed_over"), "handed over")
        handle = dev_env.client.get_workflow_handle_for(GradedRemediationWorkflow.run, rid)
        status: RemediationStatus = await handle.result()
        view = await remediations.get(owner, rid)

    async with deps.db.session() as session:
        rows = await AuditRepository(session).list(subject=status.run_key, limit=100)
    assert all(a["deduplicated"] and a["state"] is None for a in answers.values()), answers
    assert all("not added to it" in a["message"] for a in answers.values()), answers
    # And what they can do about it.
    assert all("or send it again once that run ends" in a["message"] for a in answers.values())
    # One ladder: the stranger's alerts joined the owner's run, each repeat in its audit by name.
    repeats = [r for r in rows if r.action == "deduplicated"]
    assert sorted(r.actor for r in repeats) == sorted([stranger] * 3 + [oncall])
    assert view.joined_by == [stranger, oncall]
    # Only the approver's alert is the run's own: nothing of the stranger's is kept or said.
    assert [(a.source, a.metric) for a in status.joined_alerts] == [("monitor", "cpu_usage")]
    (handed,) = [r for r in rows if r.action == "hand_over"]
    assert "Alerts that joined it: monitor cpu_usage." in handed.detail["body"]
    said = json.dumps([status.outcome, [r.detail for r in rows]], ensure_ascii=False)
    assert "CALL-555" not in said, said


@pytest.mark.parametrize("keyed", [False, True])
async def test_a_strangers_watch_joins_as_a_name_and_is_told_so(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, keyed: bool
) -> None:
    """A watch's join is audited with its source, and a watch's source was its task id: a name
    its owner chose ("call-5550199-now"), shown to the run's owner by get_remediation; and its
    key (keyed), stored as sent in the row's detail, carried it too. And the watch said only
    ``joined``: nothing told its owner their alert was left out."""
    owner, stranger = unique("own"), unique("mal")
    task = f"threshold-watch/{stranger}/call-5550199-now"
    remediation_settings(deps, remediation_approval_from_rung=1)
    for name in (owner, stranger):
        await add_user(deps, name)
    async with remediations_on_dev(dev_env, deps) as (url, settings, remediations):
        rid = (await remediations.start(owner, alert(url, workload=owner))).remediation_id
        activities = RemediationActivities(deps.db, settings, None, {})
        theirs = alert(url, source="monitor", metric="call-5550199-now", workload=owner)
        # keyed: its key as a watch's join made it (join-keyed-by-check's first cut: its task).
        key = f"{task}/life/1/remediate" if keyed else None
        request = JoinRequest(remediation_id=rid, user=stranger, source=task, alert=theirs, key=key)
        joined = await ActivityEnvironment(dev_env.client).run(activities.join_remediation, request)
        view = await remediations.get(owner, rid)
        await remediations.abort(owner, rid, reason="test over", via="api")
    async with deps.db.session() as session:
        told = await EventRepository(session).list(user=stranger, kind=NAME_ONLY)

    assert joined is True and view.joined_by == [stranger]
    [repeat] = [a for a in view.audit if a.action == "deduplicated"]
    assert (repeat.actor, repeat.detail["source"]) == (stranger, "watch")
    assert "5550199" not in view.model_dump_json(), view
    # The watch's owner reads in their events what happened, and what they can do.
    [event] = told
    assert (event.task, event.payload["remediation_id"]) == (task, rid)
    assert "an admin or an approver of the cluster can send it" in event.payload["reason"]
