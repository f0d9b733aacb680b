"""Through the API and the MCP tools, an answer naming a run (its run_key) decides only that run:
the key of the same alert's earlier run is refused, and the current run still waits."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.wiring import AppState
from api.app import create_app
from tests.conftest import unique
from tests.remediation.support import (
    RunKeys,
    alert,
    error_of,
    mcp,
    remediation_settings,
    remediations_on_dev,
    two_runs,
)
from tests.support.admins import admin_headers
from tests.support.servers import http_client, serve
from tests.support.users import register
from tests.support.waits import eventually


async def test_an_earlier_runs_key_is_refused_through_the_api_and_the_tools(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=1)
    name = unique("kai")
    async with remediations_on_dev(dev_env, deps) as (url, settings, remediations):
        async with (
            serve(create_app(settings)) as base,
            http_client(base) as http,
        ):
            registered = await http.post(
                "/users", json={"name": name}, headers=await admin_headers(settings)
            )
            assert registered.status_code == 201, registered.text
            http.headers["Authorization"] = f"Bearer {registered.json()['token']}"
            sent = alert(url, workload=name, settle_seconds=0)
            rid, first, second = await two_runs(remediations, name, sent)

            path = f"/remediations/{rid.removeprefix('remediation/')}"
            for answer in (
                await http.post(f"{path}/approval", json={"approve": True, "run_key": first}),
                await http.post(f"{path}/abort", json={"run_key": first}),
            ):
                assert answer.status_code == 409, answer.text
                assert "earlier run" in answer.json()["detail"], answer.text
            # A key that names no run of this remediation is not called an earlier one.
            for made_up in (f"{rid}@00000000-0000-4000-8000-000000000000", "no-such-key"):
                answer = await http.post(
                    f"{path}/approval", json={"approve": True, "run_key": made_up}
                )
                assert answer.status_code == 409, answer.text
                assert "no run of" in answer.json()["detail"], answer.text

            state = AppState(
                settings=settings, db=deps.db, temporal=dev_env.client, channels=deps.channels
            )
            async with mcp(state, user=name) as client:
                for tool, args in (
                    ("approve_remediation", {"approve": True}),
                    ("abort_remediation", {}),
                ):
                    said = await error_of(client, tool, remediation_id=rid, run_key=first, **args)
                    assert "earlier run" in said, said
        view = await remediations.get(name, rid)
        assert (view.run_key, view.state, view.attempts) == (second, "waiting_approval", [])


async def test_a_runs_status_is_read_of_the_run_whose_owner_was_checked_not_a_later_one(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Who may see or steer a run is read from the run `describe` answers; its status was then
    queried of whichever run of the remediation was the latest by then: a run started in
    between (the same workload's next alert, another owner's) was shown and steered."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    name = unique("lea")
    await register(deps.db, name)
    async with remediations_on_dev(dev_env, deps) as (url, _, remediations):
        same_alert = alert(url, workload=name, settle_seconds=0)
        rid = (await remediations.start(name, same_alert, mode="dry_run")).remediation_id
        runs = RunKeys(remediations, name, rid)
        first = await eventually(runs.waiting, "the first run waits for approval")
        described = await dev_env.client.get_workflow_handle(rid).describe()
        await remediations.abort(name, rid, "not now", via="api")
        await eventually(lambda: runs.ended(first), "the first run ends")
        await remediations.start(name, same_alert, mode="dry_run")
        second = await eventually(runs.waiting, "the second run waits for approval")
        # The look that checked the first run's owner, answered after the second started.
        status = await remediations._status(rid, described)
    assert second != first
    assert status.run_key == first and status.state != "waiting_approval", status
