"""What the Temporal Web UI shows of a daily briefing under time skipping: its summary in each
run's Current Details, the runs it continued as new too."""

from __future__ import annotations

from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from ambient.briefing.config import BriefingConfig
from ambient.deps import WorkerDeps
from tests.briefing.harness import briefing_stack, make_user
from tests.support.waits import eventually
from tests.support.web_ui import current_details

SAID = "Daily briefing for uma: prepare 05:00, greeting window 06:00–10:00 (Asia/Shanghai)"


async def test_a_briefings_runs_continued_as_new_say_its_summary_in_their_current_details(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A run continued as new (every day) has no Summary: Temporal does not carry the start's
    over. Its Current Details said only the day ("2026-11-24: not prepared yet; …"), and a run
    continued while paused nothing at all."""
    await make_user(deps.db, "uma")
    async with briefing_stack(ts_env, deps) as stack:
        config = BriefingConfig(timezone="Asia/Shanghai", language="en")
        day = await stack.plan(config)
        ref = await stack.service.create("uma", config)
        handle = ts_env.client.get_workflow_handle(ref.task_id)
        first = (await handle.describe()).run_id

        async def planned(run: str, date: str) -> str | None:
            if (await handle.describe()).run_id != run:
                return None
            details = await current_details(handle)
            return details if date in details else None

        said = await eventually(lambda: planned(first, day.date), "the first day planned")
        assert said == f"{SAID}\n\n{day.date}: not prepared yet"
        await stack.service.pause("uma")
        await stack.skip_to(day.window_end + timedelta(minutes=5))

        async def continued() -> str | None:
            run = (await handle.describe()).run_id
            return run if run != first else None

        second = await eventually(continued, "the next run, paused")
        assert await current_details(handle) == f"{SAID}\n\npaused"
        await stack.service.resume("uma")
        status = await eventually(lambda: _planned(stack, day.date), "the next day planned")
        assert status is not None
        assert await current_details(handle) == f"{SAID}\n\n{status}: not prepared yet"
        assert (await handle.describe()).run_id == second


async def _planned(stack, after: str):  # type: ignore[no-untyped-def]
    status = await stack.service.status("uma")
    return status.day.date if status.day is not None and status.day.date > after else None
