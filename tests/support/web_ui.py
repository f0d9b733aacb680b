"""What the Temporal Web UI shows of a run: its Current Details, asked as the Web UI asks."""

from __future__ import annotations

from typing import Any

from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowHandle


async def current_details(handle: WorkflowHandle[Any, Any]) -> str:
    """The run's Current Details (the metadata query the Web UI sends; a worker answers it)."""
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return metadata.current_details
