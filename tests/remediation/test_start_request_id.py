"""A start's ``request_id`` at the MCP and CLI doors (the API's and the service's are in
test_join_retry): sent again, the start is answered as started, no repeat written; a malformed
id is refused by the service's one rule, said what to send, nothing started."""

from __future__ import annotations

import asyncio
import json

from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from ambient.cli import app as cli
from ambient.deps import WorkerDeps
from tests.conftest import unique
from tests.remediation.support import (
    add_user,
    alert,
    app_state,
    call,
    error_of,
    mcp,
    remediation_settings,
    remediations_on_dev,
)

FORM = "1-128 of A-Z a-z 0-9 . _ : -"


async def test_start_remediation_retried_with_its_request_id_is_answered_as_started(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    owner = unique("mcp-own")
    remediation_settings(deps)
    await add_user(deps, owner)
    async with remediations_on_dev(dev_env, deps) as (url, settings, remediations):
        state = app_state(dev_env, deps, settings.temporal_task_queue)
        sent = alert(url, workload=owner).model_dump(mode="json")
        async with mcp(state, owner) as client:
            refused = await error_of(client, "start_remediation", alert=sent, request_id="a b")
            first = await call(client, "start_remediation", alert=sent, request_id="m-1")
            again = await call(client, "start_remediation", alert=sent, request_id="m-1")
        view = await remediations.get(owner, first["remediation_id"])
        await remediations.abort(owner, first["remediation_id"], reason="test over")
    assert "request_id" in refused and FORM in refused and "nothing was started" in refused
    assert first["created"] and again == first
    assert [a for a in view.audit if a.action == "deduplicated"] == []


async def test_cli_start_retried_with_its_request_id_is_answered_as_started(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    owner = unique("cli-own")
    remediation_settings(deps)
    await add_user(deps, owner)
    async with remediations_on_dev(dev_env, deps) as (url, settings, remediations):
        env = {
            "AMBIENT_DATA_DIR": str(settings.data_dir),
            "AMBIENT_USER": owner,
            "AMBIENT_TEMPORAL_ADDRESS": settings.temporal_address,
            "AMBIENT_TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
            "AMBIENT_FETCH_ALLOW_CIDRS": '["127.0.0.1/32"]',
            "COLUMNS": "300",
        }
        sent = alert(url, workload=owner).model_dump_json()

        async def start(request_id: str) -> tuple[int, str]:
            args = ["remediation", "start", sent, "--json", "--request-id", request_id]
            done = await asyncio.to_thread(CliRunner().invoke, cli, args, env=env)
            return done.exit_code, done.output

        refused = await start("x" * 129)
        first, again = await start("c-1"), await start("c-1")
        rid = json.loads(first[1])["remediation_id"]
        view = await remediations.get(owner, rid)
        await remediations.abort(owner, rid, reason="test over")
    assert refused[0] != 0 and "request_id" in refused[1] and FORM in refused[1], refused
    assert first[0] == again[0] == 0, (first, again)
    assert json.loads(first[1])["created"] and json.loads(again[1]) == json.loads(first[1])
    assert [a for a in view.audit if a.action == "deduplicated"] == []
