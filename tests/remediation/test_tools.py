"""Remediation MCP tools end to end: a real worker on the time-skipping server, in-memory MCP."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.remediation.runs import FINAL_STATES, RemediationStatus
from ambient.remediation.storage import RemediationRepository
from ambient.remediation.views import InvalidRemediationError
from ambient.sharing import ShareLinkRepository, create_link
from ambient.storage.audit import AuditRepository
from tests.conftest import running_worker
from tests.remediation.support import (
    USER,
    add_user,
    alert,
    app_state,
    call,
    error_of,
    error_rate,
    mcp,
    remediation_settings,
    state_reaches,
)
from tests.support.record import save_history


async def test_score_alert_shows_score_budget_plan_and_starts_nothing(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps)
    await add_user(deps, USER)
    async with running_worker(ts_env.client, deps) as worker:
        state = app_state(ts_env, deps, worker.task_queue)
        async with mcp(state, read_only=True) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert "start_remediation" not in tools
            assert tools["score_alert"].annotations.read_only_hint  # type: ignore[union-attr]
            subject = alert("http://127.0.0.1:9/metrics").model_dump(mode="json")
            scored = await call(client, "score_alert", alert=subject)
    assert scored["score"] == 89 and scored["budget"] == 4
    assert set(scored["dimensions"]) == {"impact", "severity", "importance", "time_sensitivity"}
    assert all(d["reason"] for d in scored["dimensions"].values())
    assert [s["rung"] for s in scored["plan"]] == [1, 2, 3, 4]
    assert scored["generated_by"] == "offline"
    async with deps.db.session() as session:
        assert await RemediationRepository(session).list() == []


async def waiting_for_approval(env: WorkflowEnvironment, rid: str) -> None:
    handle = env.client.get_workflow_handle(rid, result_type=RemediationStatus)
    await state_reaches(env, handle, ("waiting_approval",), step=timedelta(seconds=1))


async def test_start_then_a_named_approver_sends_it_again_approves_and_inspects(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # The team that shares the cluster names its approvers in the policy.
    remediation_settings(
        deps,
        remediation_approval_from_rung=1,
        remediation_approvers={"cls-test*": ["oncall"]},
    )
    await add_user(deps, USER)
    await add_user(deps, "oncall")
    async with (
        error_rate(healthy_from=2) as (_, url),
        running_worker(ts_env.client, deps) as worker,
    ):
        state = app_state(ts_env, deps, worker.task_queue)
        subject = alert(url).model_dump(mode="json")
        async with mcp(state) as client:
            started = await call(client, "start_remediation", alert=subject, mode="dry_run")
            rid = started["remediation_id"]
            assert rid.startswith("remediation/") and started["created"]
            handle = ts_env.client.get_workflow_handle(rid, result_type=RemediationStatus)
            await waiting_for_approval(ts_env, rid)
            plan = await call(client, "get_remediation", remediation_id=rid)
            assert plan["state"] == "waiting_approval"
            assert [s["rung"] for s in plan["plan"]] == [1, 2, 3, 4]
            assert plan["waiting"]["what"] == "approval" and plan["attempts"] == []
            assert {"scored", "planned", "permission"} <= {a["action"] for a in plan["audit"]}

        async with mcp(state, user="oncall") as other:
            again = await call(other, "start_remediation", alert=subject)
            assert again["deduplicated"] and not again["created"]
            assert again["remediation_id"] == rid and again["state"] == "waiting_approval"
            assert "already being remediated" in again["message"]
            seen = await call(other, "get_remediation", remediation_id=rid)
            assert seen["user"] == USER
            decision = await call(other, "approve_remediation", remediation_id=rid, approve=True)
            assert decision["approver"] == "oncall" and decision["rung"] == 1
        final = await state_reaches(ts_env, handle, FINAL_STATES)

        async with mcp(state) as client:
            shown = await call(client, "get_remediation", remediation_id=rid)
            listed = await call(client, "list_remediations")
            resolved = await call(client, "list_remediations", state="resolved")
            # A state no remediation can be in is refused, not answered with an empty list.
            wrong_state = await error_of(client, "list_remediations", state="done")
        # ...by the service itself too, for a door without a schema (the CLI's --state).
        with pytest.raises(InvalidRemediationError, match="state: use one of"):
            await state.remediations.list_page(USER, state="done")
        async with mcp(state) as client:
            stats = await call(client, "remediation_stats")
            again = await error_of(client, "approve_remediation", remediation_id=rid, approve=True)
            link = await call(client, "share_remediation", remediation_id=rid)
        async with deps.db.session() as session:
            token = link["url"].rsplit("/share/", 1)[1]
            page = await ShareLinkRepository(
                session, state.settings.secret_key.get_secret_value()
            ).open(token)

    assert final.state == "resolved"
    assert [r["remediation_id"] for r in resolved["remediations"]] == [rid]
    assert "state" in wrong_state and "resolved" in wrong_state
    assert shown["state"] == "resolved" and shown["joined_by"] == ["oncall"]
    actions = [a["action"] for a in shown["audit"]]
    assert "deduplicated" in actions and "approval" in actions and "action" in actions
    action = next(a for a in shown["audit"] if a["action"] == "action")
    assert action["detail"]["patch"]["deployment/prod/checkout"]["spec"]["template"]
    assert [r["remediation_id"] for r in listed["remediations"]] == [rid]
    # A dry run changed nothing: counted apart, out of the success figures.
    assert (stats["dry_runs"], stats["finished"], stats["resolved"]) == (1, 0, 0)
    assert stats["by_rung"] == [] and stats["states"] == {"resolved": 1}
    assert "not waiting for approval" in again
    assert "Remediation of cls-test0001/prod/checkout" in page.html
    assert "1 restart" in page.html and "resolved" in page.html and "approval" in page.html


async def test_share_remediation_past_the_hours_links_is_refused_in_words(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=1, share_links_per_hour=1)
    await add_user(deps, USER)
    async with running_worker(ts_env.client, deps) as worker:
        state = app_state(ts_env, deps, worker.task_queue)
        subject = alert("http://127.0.0.1:9/metrics").model_dump(mode="json")
        async with mcp(state) as client:
            rid = (await call(client, "start_remediation", alert=subject))["remediation_id"]
            await waiting_for_approval(ts_env, rid)
            await create_link(deps.db, state.settings, USER, "report", "t", "b")  # the hour's one
            refused = await error_of(client, "share_remediation", remediation_id=rid)
            await call(client, "abort_remediation", remediation_id=rid, reason="test over")
    assert refused == (
        "Error executing tool share_remediation: share link limit: 1 made in the last hour "
        "(max 1); try again in 60 min"
    )


async def test_sending_another_users_alert_again_grants_neither_sight_nor_control(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # An approver named for another cluster is nobody here.
    remediation_settings(
        deps, remediation_approval_from_rung=1, remediation_approvers={"cls-other": ["eve"]}
    )
    await add_user(deps, USER)
    await add_user(deps, "mallory", permission="dry_run")
    await add_user(deps, "eve", permission="execute")
    async with running_worker(ts_env.client, deps) as worker:
        state = app_state(ts_env, deps, worker.task_queue)
        subject = alert("http://127.0.0.1:9/metrics").model_dump(mode="json")
        async with mcp(state) as client:
            rid = (await call(client, "start_remediation", alert=subject))["remediation_id"]
        await waiting_for_approval(ts_env, rid)
        answers: dict[str, dict[str, Any]] = {}
        refusals: dict[str, list[str]] = {}
        for stranger in ("mallory", "eve"):
            async with mcp(state, user=stranger) as other:
                answers[stranger] = await call(other, "start_remediation", alert=subject)
                refusals[stranger] = [
                    await error_of(other, "get_remediation", remediation_id=rid),
                    await error_of(other, "share_remediation", remediation_id=rid),
                    await error_of(other, "approve_remediation", remediation_id=rid, approve=True),
                    await error_of(other, "approve_remediation", remediation_id=rid, approve=False),
                    await error_of(other, "abort_remediation", remediation_id=rid),
                ]
                listed = await call(other, "list_remediations")
                assert listed["remediations"] == []
        async with mcp(state) as client:
            shown = await call(client, "get_remediation", remediation_id=rid)
            await call(client, "abort_remediation", remediation_id=rid, reason="test over")

    for stranger, answer in answers.items():
        assert answer == {
            "remediation_id": rid,
            "created": False,
            "deduplicated": True,
            "mode": None,
            "state": None,
            "message": "this workload is already being remediated by its "
            "owner: nothing was started, and its plan and steps are the owner's to see; your "
            "alert is not added to it (its owner sees that you sent one, not its text): an "
            "admin or an approver of the cluster can send it, or send it again once that run "
            "ends",
        }, stranger
        assert all("among yours" in text for text in refusals[stranger]), refusals
    # The owner's run goes on untouched; the owner's audit says who sent the alert again.
    assert shown["state"] == "waiting_approval" and shown["approvals"] == []
    repeated = [a for a in shown["audit"] if a["action"] == "deduplicated"]
    assert sorted(a["actor"] for a in repeated) == ["eve", "mallory"]


async def test_two_alerts_on_one_workload_from_other_sources_and_metrics_make_one_ladder(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A Cloud Monitor CPU alarm and an error-rate alert on checkout started two runs, and two
    ladders restarted, scaled out and rolled back one Deployment against each other."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, USER)
    async with running_worker(ts_env.client, deps) as worker:
        state = app_state(ts_env, deps, worker.task_queue)
        errors = alert("http://127.0.0.1:9/metrics").model_dump(mode="json")
        cpu = {**errors, "source": "monitor", "metric": "cpu_usage", "message": "CPU 97%"}
        async with mcp(state) as client:
            first = await call(client, "start_remediation", alert=errors)
            await waiting_for_approval(ts_env, first["remediation_id"])
            second = await call(client, "start_remediation", alert=cpu)
            shown = await call(client, "get_remediation", remediation_id=first["remediation_id"])
            await call(client, "abort_remediation", remediation_id=first["remediation_id"])
    assert first["created"] and not second["created"] and second["deduplicated"]
    assert second["remediation_id"] == first["remediation_id"]
    assert second["message"].startswith("this workload is already being remediated: ")
    assert shown["joined_by"] == [USER]


async def test_an_alert_joined_on_another_metric_is_checked_before_the_run_calls_itself_resolved(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A CPU alert joined an error-rate run on the same workload: only the run's own alert was
    verified, and the run ended resolved (and pushed) with the CPU still breaching."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, USER)
    async with (
        error_rate(healthy_from=1) as (_, errors_url),
        error_rate(healthy_from=None, unhealthy=0.123456789) as (_, cpu_url),
        running_worker(ts_env.client, deps) as worker,
    ):
        state = app_state(ts_env, deps, worker.task_queue)
        errors = alert(errors_url)
        cpu = alert(cpu_url, source="monitor", metric="cpu_usage", message="CPU 97%")
        async with mcp(state) as client:
            first = await call(client, "start_remediation", alert=errors.model_dump(mode="json"))
            rid = first["remediation_id"]
            await waiting_for_approval(ts_env, rid)
            second = await call(
                client, "start_remediation", alert=cpu.model_dump(mode="json"), mode="execute"
            )
            await call(client, "approve_remediation", remediation_id=rid, approve=True)
            handle = ts_env.client.get_workflow_handle(rid, result_type=RemediationStatus)
            status = await state_reaches(ts_env, handle, tuple(FINAL_STATES))
            await handle.result()
            await save_history(handle, "graded_remediation_joined_alert_open")  # type: ignore[arg-type]
        async with deps.db.session() as session:
            (row,) = await AuditRepository(session).list(
                subject=status.run_key, action="deduplicated", limit=10
            )

    assert second["deduplicated"] and second["remediation_id"] == rid
    # It asked execute of a dry run: the answer says the run stays what it is.
    assert second["message"].endswith(
        "the execute asked here changes nothing: the run keeps the mode it started with "
        "(a dry_run stays a dry_run)"
    ), second["message"]
    assert (row.detail["alert_source"], row.detail["metric"]) == ("monitor", "cpu_usage")
    assert [(a.source, a.metric) for a in status.joined_alerts] == [("monitor", "cpu_usage")]
    assert status.attempts[0].resolved is True
    assert status.state == "handed_over", status.outcome
    # Its reading as read (not rounded to six digits).
    assert "alerts that joined this run are not known to be over: monitor cpu_usage " in (
        status.outcome
    )
    assert "(0.123456789: not healthy)" in status.outcome, status.outcome


async def test_a_run_handed_over_names_the_alerts_that_joined_it(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A refused run was handed over naming its own alert only: the CPU alert that joined it
    was in no message the person got."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, USER)
    async with running_worker(ts_env.client, deps) as worker:
        state = app_state(ts_env, deps, worker.task_queue)
        errors = alert("http://127.0.0.1:9/metrics")
        cpu = alert("http://127.0.0.1:9/cpu", source="monitor", metric="cpu_usage")
        async with mcp(state) as client:
            rid = (await call(client, "start_remediation", alert=errors.model_dump(mode="json")))[
                "remediation_id"
            ]
            await waiting_for_approval(ts_env, rid)
            await call(client, "start_remediation", alert=cpu.model_dump(mode="json"))
            await call(client, "approve_remediation", remediation_id=rid, approve=False)
            handle = ts_env.client.get_workflow_handle(rid, result_type=RemediationStatus)
            status = await state_reaches(ts_env, handle, tuple(FINAL_STATES))
        async with deps.db.session() as session:
            (row,) = await AuditRepository(session).list(
                subject=status.run_key, action="hand_over", limit=10
            )

    assert status.state == "handed_over", status.outcome
    assert "Alerts that joined it: monitor cpu_usage." in row.detail["body"], row.detail["body"]


async def test_permission_none_is_refused_clearly_and_nothing_starts(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps)
    await add_user(deps, USER, permission="none")
    async with running_worker(ts_env.client, deps) as worker:
        state = app_state(ts_env, deps, worker.task_queue)
        subject = alert("http://127.0.0.1:9/metrics")
        async with mcp(state) as client:
            message = await error_of(
                client, "start_remediation", alert=subject.model_dump(mode="json"), mode="execute"
            )
        handle = ts_env.client.get_workflow_handle(f"remediation/{subject.fingerprint()}")
        try:
            await handle.describe()
            started = True
        except Exception:
            started = False
    assert "rollback_permission is 'none'" in message and "Nothing was started" in message
    assert not started
    # Audited, as a cloud write refused for the same permission is (docs/roles.md).
    async with deps.db.session() as session:
        refused = await AuditRepository(session).list(action="start_refused")
    assert [(r.actor, r.subject, r.detail) for r in refused] == [
        (USER, handle.id, {"mode": "execute", "permission": "none"})
    ]


async def test_bad_alert_names_the_field(ts_env: WorkflowEnvironment, deps: WorkerDeps) -> None:
    remediation_settings(deps)
    await add_user(deps, USER)
    async with running_worker(ts_env.client, deps) as worker:
        state = app_state(ts_env, deps, worker.task_queue)
        bad = alert("http://127.0.0.1:9/m").model_dump(mode="json") | {"workload": "Bad Name!"}
        async with mcp(state) as client:
            message = await error_of(client, "start_remediation", alert=bad)
    assert "workload" in message and "Deployment name" in message


async def test_a_member_cannot_see_or_abort_another_members_remediation(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, USER)
    await add_user(deps, "mallory")
    async with running_worker(ts_env.client, deps) as worker:
        state = app_state(ts_env, deps, worker.task_queue)
        subject = alert("http://127.0.0.1:9/metrics").model_dump(mode="json")
        async with mcp(state) as client:
            rid = (await call(client, "start_remediation", alert=subject))["remediation_id"]
        async with mcp(state, user="mallory") as other:
            hidden = await error_of(other, "get_remediation", remediation_id=rid)
            refused = await error_of(other, "abort_remediation", remediation_id=rid)
            listed = await call(other, "list_remediations")
        async with mcp(state) as client:
            aborted = await call(client, "abort_remediation", remediation_id=rid, reason="test")
        try:
            result = await ts_env.client.get_workflow_handle(
                rid, result_type=RemediationStatus
            ).result()
        except WorkflowFailureError as exc:  # pragma: no cover - shows the cause if it fails
            raise AssertionError(exc.cause) from exc
    assert "among yours" in hidden and "among yours" in refused
    assert listed["remediations"] == []
    assert aborted["remediation_id"] == rid
    assert result.state == "aborted"


async def test_the_assistant_asks_the_person_before_it_approves_refuses_or_aborts(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # The chat loop holds a destructive tool call until the person says yes: a model's
    # say-so (or text injected into what it reads) never steers someone's remediation.
    remediation_settings(deps)
    await add_user(deps, USER)
    state = app_state(ts_env, deps, "unused")
    async with mcp(state) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    steering = {
        name: tools[name].annotations for name in ("approve_remediation", "abort_remediation")
    }
    assert {name: notes.destructive_hint for name, notes in steering.items() if notes} == {
        "approve_remediation": True,
        "abort_remediation": True,
    }
