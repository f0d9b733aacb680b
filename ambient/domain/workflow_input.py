"""A workflow's start input, as a run started by hand (the Temporal Web UI's "Start Workflow",
`temporal workflow start --input`) may give it wrongly.

The SDK decodes a run's input before any of its code runs, and one that does not decode (``{}``,
a field misspelled, a string where a number goes) failed the run's first workflow task on
every attempt: the run stayed Running, retried for ever. A model of this base is decoded by
the product's payload converter (`ambient.temporal.InputPayloadConverter`), which refuses it
instead: the run fails at once, for good, with a `BadWorkflowInput` error saying which field.
"""

from __future__ import annotations

from pydantic import BaseModel

# The ApplicationError type a run whose input did not decode (or did not fit) fails with.
BAD_WORKFLOW_INPUT = "BadWorkflowInput"
# What an update whose arguments do not fit is refused with (its type, for a caller's code:
# workflows/message_arguments.py refuses, the task service reads it back).
NOT_ITS_ARGUMENTS = "ArgumentsNotTaken"


class WorkflowInput(BaseModel):
    """The base of every workflow's start input (a model as any other: no field of its own)."""
