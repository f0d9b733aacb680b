"""A watch and the triage report the remediation id of the run they started or joined.

Replaying their recorded histories, the id the workflow reports — the triage's result, the
watch's watch.remediation_started event — must be the child id in the history.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHistory
from temporalio.worker import (
    ExecuteWorkflowInput,
    Interceptor,
    Replayer,
    StartActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from ambient.replay import load_workflows, replay
from ambient.temporal import PLAIN_CONVERTER, workflow_runner

HISTORIES = Path(__file__).parent.parent / "histories"
SEEN: list[Any] = []


class _Outbound(WorkflowOutboundInterceptor):
    def start_activity(self, input: StartActivityInput) -> Any:
        SEEN.append(("activity", input.activity, input.args))
        return super().start_activity(input)


class _Inbound(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_Outbound(outbound))

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        result = await super().execute_workflow(input)
        SEEN.append(("result", result))
        return result


class _Seeing(Interceptor):
    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _Inbound


def children(name: str) -> list[str]:
    events = json.loads((HISTORIES / f"{name}.json").read_text())["events"]
    key = "startChildWorkflowExecutionInitiatedEventAttributes"
    return [e[key]["workflowId"] for e in events if key in e]


async def replayed(name: str) -> list[Any]:
    SEEN.clear()
    replayer = Replayer(
        workflows=load_workflows(["tests.support.workflows:TEST_WORKFLOWS"]),
        data_converter=PLAIN_CONVERTER,
        workflow_runner=workflow_runner(),
        interceptors=[_Seeing()],
    )
    history = WorkflowHistory.from_json(name, (HISTORIES / f"{name}.json").read_text())
    result = await replay(replayer, history)
    assert result.replay_failure is None, result.replay_failure
    return list(SEEN)


async def test_the_triage_reports_the_ids_of_the_runs_it_started_or_joined() -> None:
    for name, field in (("alert_triage", "started"), ("alert_triage_joined", "joined")):
        results = [seen[1] for seen in await replayed(name) if seen[0] == "result"]
        assert results, name
        assert getattr(results[-1], field) == children(name), name


def told_ids(seen: list[Any]) -> list[str]:
    """The ids a watch's events name: remediation_id, or the reason it was not started."""
    ids = []
    for entry in seen:
        event = entry[2][0] if entry[0] == "activity" and entry[2] else None
        if getattr(event, "kind", None) == "watch.remediation_started":
            ids.append(event.payload["remediation_id"])
        elif getattr(event, "kind", None) == "watch.remediation_requested":
            ids.append(event.payload["reason"].partition(" ")[0])
    return ids


async def test_a_watch_reports_the_id_of_the_run_it_started_or_joined() -> None:
    for name in ("threshold_watch_remediate_region", "threshold_watch_join_bounded"):
        assert told_ids(await replayed(name)) == children(name), name
