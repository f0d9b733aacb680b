"""A start's ``request_id`` at the MCP and CLI doors (the API's and the service's are in
test_join_retry): sent again, the start is answered as started, no repeat written; a malformed
id is refused by the service's one rule, said what to send, nothing started."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from ambient.cli import app as cli
from ambient.deps import WorkerDeps
from ambient.remediation.alerts import Alert
from ambient.wiring import AppState
from tests.conftest import unique
from tests.remediation.support import (
    add_user,
    alert,
    mcp,
    remediation_settings,
    remediations_on_dev,
)

FORM = "1-128 of A-Z a-z 0-9 . _ : -"
Answer = dict[str, Any] | str | None  # a start's fields, or its refusal's words
# A door's starts of ``owner``'s alert, one per request_id, in turn.
Door = Callable[[AppState, str, Alert, list[str]], Awaitable[list[Answer]]]


async def by_mcp(state: AppState, owner: str, sent: Alert, request_ids: list[str]) -> list[Answer]:
    """``start_remediation`` called by ``owner``'s MCP client."""
    answers: list[Answer] = []
    async with mcp(state, owner) as client:
        for request_id in request_ids:
            args = {"alert": sent.model_dump(mode="json"), "request_id": request_id}
            result = await client.call_tool("start_remediation", args)
            said = " ".join(getattr(c, "text", "") for c in result.content)
            answers.append(said if result.is_error else result.structured_content)
    return answers


async def by_cli(state: AppState, owner: str, sent: Alert, request_ids: list[str]) -> list[Answer]:
    """``ambient remediation start --json`` run as ``owner``: its JSON when it exits 0."""
    env = {
        "AMBIENT_DATA_DIR": str(state.settings.data_dir),
        "AMBIENT_USER": owner,
        "AMBIENT_TEMPORAL_ADDRESS": state.settings.temporal_address,
        "AMBIENT_TEMPORAL_TASK_QUEUE": state.settings.temporal_task_queue,
        "AMBIENT_FETCH_ALLOW_CIDRS": '["127.0.0.1/32"]',
        "COLUMNS": "300",
    }
    args = ["remediation", "start", sent.model_dump_json(), "--json", "--request-id"]
    runs = [
        await asyncio.to_thread(CliRunner().invoke, cli, [*args, request_id], env=env)
        for request_id in request_ids
    ]
    return [json.loads(run.output) if run.exit_code == 0 else run.output for run in runs]


@pytest.mark.parametrize(
    ("door", "malformed", "request_id"),
    [(by_mcp, "a b", "m-1"), (by_cli, "x" * 129, "c-1")],
    ids=["mcp", "cli"],
)
async def test_a_start_retried_with_its_request_id_is_answered_as_started(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, door: Door, malformed: str, request_id: str
) -> None:
    owner = unique("start-own")
    remediation_settings(deps)
    await add_user(deps, owner)
    async with remediations_on_dev(dev_env, deps) as (url, settings, remediations):
        state = AppState(
            settings=settings, db=deps.db, temporal=dev_env.client, channels=deps.channels
        )
        starts = [malformed, request_id, request_id]
        refused, first, again = await door(state, owner, alert(url, workload=owner), starts)
        assert isinstance(first, dict), first
        view = await remediations.get(owner, first["remediation_id"])
        await remediations.abort(owner, first["remediation_id"], reason="test over", via="api")
    assert isinstance(refused, str) and "request_id" in refused and FORM in refused, refused
    assert "nothing was started" in refused, refused
    assert first["created"] and again == first
    assert [a for a in view.audit if a.action == "deduplicated"] == []


async def test_a_request_id_answers_as_its_start_only_while_its_run_goes_on_or_just_ended(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An integration sends its alert's fingerprint as the request_id. The incident came back
    hours after its run had ended and was answered "started", state scoring, of the old run:
    nothing was started. A retry just after the run ended is still answered as its start
    was; past REQUEST_KEPT the same id starts the next run."""
    from temporalio.client import WorkflowExecutionStatus

    from ambient.remediation import service

    owner = unique("start-life")
    remediation_settings(deps)
    await add_user(deps, owner)
    async with remediations_on_dev(dev_env, deps) as (url, _, remediations):
        sent = alert(url, workload=owner)
        first = await remediations.start(owner, sent, request_id="am-fp-1")
        rid = first.remediation_id
        handle = dev_env.client.get_workflow_handle(rid)
        first_run = (await handle.describe()).run_id
        await remediations.abort(owner, rid, reason="incident over", via="api")
        await handle.result()
        retried = await remediations.start(owner, sent, request_id="am-fp-1")
        monkeypatch.setattr(service, "REQUEST_KEPT", timedelta(0))
        later = await remediations.start(owner, sent, request_id="am-fp-1")
        described = await handle.describe()
        await remediations.abort(owner, rid, reason="test over", via="api")
    assert retried == first
    assert later.created and later.state == "scoring", later
    assert described.run_id != first_run and described.status is WorkflowExecutionStatus.RUNNING
