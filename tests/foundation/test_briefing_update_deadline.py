"""A briefing's regenerate reached directly (MCP ``regenerate_briefing``, the API, pages, the
CLI) under one request deadline, as a task's requests are; a retried regenerate prepares once.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from activities.briefing import BriefingActivities
from ambient import no_answer
from ambient.briefing.errors import BriefingError
from ambient.deps import WorkerDeps
from ambient.watches.inputs import WorkerSilentError
from tests.foundation.test_request_deadline import (
    BUDGET,
    GENEROUS,
    briefing_at_rest,
    silent_after_first_answer,
)


async def test_a_regenerate_asked_directly_whose_worker_goes_silent_is_told_so_not_hung(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reached directly, a regenerate read the status, then sent `execute_update`, which waits
    for a worker with no end: one that answered the read and then fell silent held it for good."""
    monkeypatch.setattr(no_answer, "QUERY_TIMEOUT", BUDGET)
    async with briefing_at_rest(dev_env, deps, "deadline-regenerate") as (worker, tasks, user, _):
        silent_after_first_answer(monkeypatch, worker, tasks.briefings, "read_status")
        with pytest.raises(BriefingError) as told:
            await asyncio.wait_for(tasks.briefings.regenerate(user), GENEROUS)
    assert str(told.value) == (
        f"Temporal refused the request: {no_answer.silent_worker()}; the regenerate was asked "
        "for and may still run: call get_task later to see the briefing's status"
    )


async def test_a_briefing_update_whose_worker_goes_silent_asks_why_within_its_budget(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A briefing's update reads its status again as its new run is started: that read, its
    worker silent, took what was left of the request and then asked the server why (up to a
    second for each of two asks) past the request's deadline."""
    monkeypatch.setattr(no_answer, "QUERY_TIMEOUT", BUDGET)
    async with briefing_at_rest(dev_env, deps, "deadline-why-briefing") as at_rest_now:
        worker, tasks, user, task_id = at_rest_now
        silent_after_first_answer(monkeypatch, worker, tasks.briefings, "read_status")
        service, asked = dev_env.client.workflow_service, list[str]()
        system_info = service.get_system_info

        async def informed(*args: Any, **kwargs: Any) -> Any:
            asked.append("get_system_info")
            return await system_info(*args, **kwargs)

        monkeypatch.setattr(service, "get_system_info", informed)
        with pytest.raises(WorkerSilentError):
            await asyncio.wait_for(
                tasks.update(user, task_id, {"timezone": "Europe/Berlin"}), GENEROUS
            )
    # Its read waited out what was left of the request: nothing left to ask why with.
    assert asked == []


async def test_a_regenerate_retried_with_its_request_id_prepares_once(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A regenerate sent no update id: a retry after a cut answer prepared again (another LLM
    run). The same request_id is one regenerate; another is a new one."""
    prepare, reasons = BriefingActivities._prepare, list[str]()

    async def counted(self: BriefingActivities, request: Any) -> Any:
        reasons.append(request.reason)
        return await prepare(self, request)

    monkeypatch.setattr(BriefingActivities, "_prepare", counted)
    async with briefing_at_rest(dev_env, deps, "regenerate-once") as (_, tasks, user, _):
        reasons.clear()  # the day's own preparation, if any
        first = await tasks.briefings.regenerate(user, "r1")
        again = await tasks.briefings.regenerate(user, "r1")
        other = await tasks.briefings.regenerate(user, "r2")
    assert again == first
    assert other.version == first.version + 1
    assert reasons == ["regenerate", "regenerate"]
