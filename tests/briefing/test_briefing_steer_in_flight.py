"""The daily briefing's own pause and resume (POST /briefings/daily/pause|resume) while a
control is still on its way (no worker took it), and when the run ends between the look and
the signal."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from ambient import controls_in_flight, no_answer
from ambient.briefing.service import NOT_FOUND, BriefingService
from ambient.deps import WorkerDeps
from ambient.domain.users import UserCreate
from ambient.settings import Settings
from ambient.storage.users import UserRepository
from tests.briefing.harness import briefing_stack
from tests.briefing.test_briefing_task_door import zone_at_midday
from tests.conftest import unique
from tests.support.api_worker import signed_in_api
from tests.support.waits import eventually

ALREADY = "it already was; nothing was sent"


async def test_a_second_pause_while_the_first_is_on_its_way_sends_nothing(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Paused twice while the worker is away: the first pause waits in the run's history for
    a worker, and the second looked at the run's state as its worker last made it ("active")
    and sent a second pause signal. A pause on its way is a paused briefing, as a task's
    is: the second is answered "already so" and sends nothing."""
    # The status read after each control waits this long for the absent worker.
    monkeypatch.setattr(no_answer, "QUERY_TIMEOUT", timedelta(seconds=2))
    user, token, settings = await _briefing(dev_env, deps, "ida")
    async with signed_in_api(settings, token) as http:
        first = await http.post("/briefings/daily/pause")
        second = await http.post("/briefings/daily/pause")
    assert first.status_code == 200, first.text
    assert (first.json()["paused"], first.json()["note"]) == (
        True,
        controls_in_flight.DELIVERED_UNCONFIRMED,
    )
    assert second.status_code == 200, second.text
    assert (second.json()["paused"], second.json()["note"]) == (True, ALREADY)
    run = dev_env.client.get_workflow_handle(f"daily-briefing/{user}")
    signals = [
        e.workflow_execution_signaled_event_attributes.signal_name
        async for e in run.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    await run.terminate("the test is over")
    assert signals == ["pause"]


async def test_a_pause_that_reaches_a_run_ended_since_its_look_is_said_not_found(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run ended (here: terminated by an operator) between the pause's look at it and its
    signal: the server's NOT_FOUND was not caught, and the API answered 500. It is answered as
    a pause of an ended briefing is: 404, no daily briefing."""
    user, token, settings = await _briefing(dev_env, deps, "jon")
    look = BriefingService._live

    async def ended_after_the_look(self: BriefingService, user: str):  # type: ignore[no-untyped-def]
        looked = await look(self, user)
        await dev_env.client.get_workflow_handle(f"daily-briefing/{user}").terminate("ended")
        return looked

    monkeypatch.setattr(BriefingService, "_live", ended_after_the_look)
    async with signed_in_api(settings, token) as http:
        paused = await http.post("/briefings/daily/pause")
    assert paused.status_code == 404, paused.text
    assert paused.json()["detail"] == NOT_FOUND % user


async def _briefing(
    env: WorkflowEnvironment, deps: WorkerDeps, name: str
) -> tuple[str, str, Settings]:
    """A user's briefing created and idle, its worker gone: the user, their token, and the
    API's settings."""
    user = unique(name)
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=user))
        await session.commit()
    async with briefing_stack(env, deps) as stack:
        await stack.service.create(user, {"timezone": zone_at_midday(), "language": "en"})
        run = env.client.get_workflow_handle(f"daily-briefing/{user}")

        async def idle() -> bool:
            described = (await run.describe()).raw_description
            return not (described.HasField("pending_workflow_task") or described.pending_activities)

        await eventually(idle, "the run is idle")
        settings = stack.service.settings.model_copy(
            update={"temporal_address": env.client.service_client.config.target_host}
        )
    return user, token, settings
