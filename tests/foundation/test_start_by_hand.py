"""A workflow started by hand (the Temporal Web UI's "Start Workflow", `temporal workflow start
--input`) with an input it cannot take fails at once, for good, saying why: before, the run
stayed Running with its first workflow task failing on every attempt ("Failed decoding
arguments", a missing argument)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from ambient.briefing.models import BriefingRun
from ambient.deps import WorkerDeps
from ambient.domain.workflow_input import BAD_WORKFLOW_INPUT
from ambient.settings import Settings
from ambient.temporal import data_converter
from tests.conftest import running_worker, unique
from tests.support.record import save_history
from workflows.registry import ALL_WORKFLOWS
from workflows.reminder import ReminderWorkflow
from workflows.web_monitor import WebMonitorWorkflow


def _name(cls: type) -> str:
    defn = workflow._Definition.must_from_class(cls)
    assert defn.name is not None
    return defn.name


def _built_from_input(cls: type) -> bool:
    """An ``@workflow.init`` workflow: the SDK builds it from its input before any interceptor."""
    return hasattr(cls.__init__, "__temporal_workflow_init")


# Replayed (tests/histories): an input that does not decode, and a count that does not fit.
RECORDED = (WebMonitorWorkflow, ReminderWorkflow)

STARTS = [
    *[
        pytest.param(cls, [{}], "required", id=f"{_name(cls)}-empty-object")
        for cls in ALL_WORKFLOWS
    ],
    *[
        pytest.param(cls, ["a string"], "should be an object", id=f"{_name(cls)}-not-an-object")
        for cls in ALL_WORKFLOWS
    ],
    *[
        pytest.param(cls, args, "argument(s) given", id=f"{_name(cls)}-{len(args)}-inputs")
        for cls in ALL_WORKFLOWS
        if not _built_from_input(cls)
        for args in ([], [{}, {}])
    ],
]


@pytest.mark.parametrize(("cls", "args", "said"), STARTS)
async def test_a_run_started_by_hand_with_an_input_it_cannot_take_fails_saying_why(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, cls: type, args: list[Any], said: str
) -> None:
    client = dev_env.client
    async with running_worker(client, deps) as worker:
        handle = await client.start_workflow(
            _name(cls), args=args, id=unique("by-hand"), task_queue=worker.task_queue
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await asyncio.wait_for(handle.result(), 60)  # Running for ever before
        failures = [
            e.workflow_task_failed_event_attributes.failure.message
            async for e in handle.fetch_history_events()
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
        ]
        if cls in RECORDED and not args[0:1] == ["a string"]:
            await save_history(handle, f"{_name(cls)}_bad_input_{len(args)}".lower())
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError), cause
    assert cause.type == BAD_WORKFLOW_INPUT and cause.non_retryable
    assert said in cause.message, cause.message
    assert failures == []


async def test_a_client_reading_a_run_input_that_does_not_decode_meets_a_value_error() -> None:
    # Readers of a run's input (a briefing's records, a reminder's schedule) take a ValueError
    # for one they cannot read, as pydantic's ValidationError was.
    converter = data_converter(Settings())
    payloads = await converter.encode([{"user": 5}])
    with pytest.raises(ValueError, match="the input is not a BriefingRun: user: "):
        await converter.decode(payloads, [BriefingRun])
