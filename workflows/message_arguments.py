"""Starts, signals and updates whose arguments do not fit their handler, as sent by hand.

The Temporal Web UI's "Send a signal" with its input box left empty sends no argument, and
`temporal workflow signal --input` twice sends two. The SDK decodes by the handler's type
hints only when the counts match and otherwise calls ``handler(*args)``: the TypeError failed
the workflow task on every attempt, for good (the signal stays in the history). Here such a
signal is dropped with a warning, as the SDK drops one whose input does not decode, such an
update is refused (before it is accepted where the handler has a validator), and such a start
fails the run for good (BadWorkflowInput, as one whose input does not decode: see
ambient.domain.workflow_input). A handler that takes no argument (`stop`, `pause`) is given
none by the SDK, whatever was sent: such a signal is taken, its inputs ignored. A workflow
with an ``@workflow.init`` is built from its input before any interceptor runs: one started
with no input still fails its first task.
"""

from __future__ import annotations

import inspect
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ExecuteWorkflowInput,
    HandleSignalInput,
    HandleUpdateInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

with workflow.unsafe.imports_passed_through():
    from ambient.domain.workflow_input import BAD_WORKFLOW_INPUT, NOT_ITS_ARGUMENTS


def _misfit(kind: str, name: str, args: list[Any]) -> str | None:
    """Why ``args`` do not fit the handler of the signal or update ``name`` (None: they fit,
    or the handler is not one a class declares, left to the SDK)."""
    defn = workflow._Definition.from_class(type(workflow.instance()))
    if defn is None:
        return None
    handler = (defn.signals if kind == "signal" else defn.updates).get(name)
    if handler is None or handler.name is None:  # a dynamic handler takes any arguments
        return None
    try:
        # Bound as the SDK calls it: positionally, after the workflow object.
        inspect.signature(handler.fn).bind(*([None] if handler.is_method else []), *args)
    except TypeError as error:
        return f"{len(args)} argument(s) given: {error}"
    return None


class _Inbound(WorkflowInboundInterceptor):
    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        try:
            inspect.signature(input.run_fn).bind(None, *input.args)
        except TypeError as error:
            raise ApplicationError(
                f"the input does not fit: {len(input.args)} argument(s) given: {error}",
                type=BAD_WORKFLOW_INPUT,
                non_retryable=True,
            ) from None
        return await super().execute_workflow(input)

    async def handle_signal(self, input: HandleSignalInput) -> None:
        misfit = _misfit("signal", input.signal, list(input.args))
        if misfit is not None:
            workflow.logger.warning("signal %r dropped: %s", input.signal, misfit)
            return
        await super().handle_signal(input)

    def handle_update_validator(self, input: HandleUpdateInput) -> None:
        self._refuse_misfit(input)
        super().handle_update_validator(input)

    async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
        # Reached without a validator (or on replay): an update accepted, failed, no change.
        self._refuse_misfit(input)
        return await super().handle_update_handler(input)

    @staticmethod
    def _refuse_misfit(input: HandleUpdateInput) -> None:
        misfit = _misfit("update", input.update, list(input.args))
        if misfit is not None:
            raise ApplicationError(
                f"update {input.update!r} refused: {misfit}",
                type=NOT_ITS_ARGUMENTS,
                non_retryable=True,
            )


class MessageArguments(Interceptor):
    """Every worker's and replay's: a signal or update with arguments its handler cannot take
    never fails the workflow task."""

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _Inbound
