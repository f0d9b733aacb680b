"""A web monitor as a release before compare-and-set ran it: its ``update_config`` takes the
config alone (a second argument is refused by the worker's MessageArguments interceptor)."""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ambient.watches.models import TaskStatus, WebMonitorInput
    from ambient.watches.polling import WEB_MONITOR_TYPE

from workflows.web_monitor import WebMonitorWorkflow


@workflow.defn(name=WEB_MONITOR_TYPE)
class OldReleaseWebMonitor(WebMonitorWorkflow):
    @workflow.init
    def __init__(self, request: WebMonitorInput) -> None:
        super().__init__(request)

    @workflow.run
    async def run(self, request: WebMonitorInput) -> TaskStatus:
        return await super().run(request)

    @workflow.update
    async def update_config(self, config: dict[str, Any]) -> dict[str, Any]:  # type: ignore[override]
        return await super().update_config(config)

    @update_config.validator
    def validate_config(self, config: dict[str, Any]) -> None:  # type: ignore[override]
        super().validate_config(config)
