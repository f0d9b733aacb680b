"""What the Temporal Web UI shows of a run: its Current Details, asked as the Web UI asks, and
the words it labels each step of the run's history with."""

from __future__ import annotations

from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowHandle
from temporalio.converter import DataConverter

# The steps of a run the Web UI lists with a summary: what each is called here.
STEPS = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED: "activity",
    EventType.EVENT_TYPE_MARKER_RECORDED: "local activity",
    EventType.EVENT_TYPE_TIMER_STARTED: "timer",
    EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED: "child",
}
LOCAL_ACTIVITY = "core_local_activity"  # a local activity's marker (a patch's is another)


async def current_details(handle: WorkflowHandle[Any, Any]) -> str:
    """The run's Current Details (the metadata query the Web UI sends; a worker answers it)."""
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return metadata.current_details


async def steps(handle: WorkflowHandle[Any, Any], converter: DataConverter) -> list[str]:
    """Each activity, local activity, timer and child the run started, as "kind: summary" in
    the order of its history ("kind: -" when it has none)."""
    said: list[str] = []
    async for event in handle.fetch_history_events():
        step = STEPS.get(event.event_type)
        if step is None or not _a_step(event):
            continue
        summary = "-"
        if event.HasField("user_metadata") and event.user_metadata.HasField("summary"):
            (summary,) = await converter.decode([event.user_metadata.summary])
        said.append(f"{step}: {summary}")
    return said


def _a_step(event: HistoryEvent) -> bool:
    if event.event_type != EventType.EVENT_TYPE_MARKER_RECORDED:
        return True
    return event.marker_recorded_event_attributes.marker_name == LOCAL_ACTIVITY
