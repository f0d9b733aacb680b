"""The daily briefing's own pause and resume (POST /briefings/daily/pause|resume, `ambient
briefing pause`) of a briefing already so: nothing is sent, and the answer says so."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from ambient import temporal
from ambient.briefing.models import BriefingStatus
from ambient.cli import app as cli
from ambient.deps import WorkerDeps
from ambient.domain.users import UserCreate
from ambient.storage.users import UserRepository
from tests.briefing.harness import briefing_stack
from tests.briefing.test_briefing_task_door import zone_at_midday
from tests.conftest import unique
from tests.support.api_worker import signed_in_api
from tests.support.waits import eventually

ALREADY = "it already was; nothing was sent"


async def test_pausing_a_paused_briefing_or_resuming_a_running_one_sends_nothing(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A task's pause of a paused task sends nothing and says so; the daily briefing's own
    pause and resume signalled every time (a signal more in its run's history) and answered
    as if it had just been paused or resumed."""
    name = unique("steer")
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name))
        await session.commit()
    async with briefing_stack(dev_env, deps) as stack:
        await stack.service.create(name, {"timezone": zone_at_midday(), "language": "en"})
        run = dev_env.client.get_workflow_handle(f"daily-briefing/{name}")

        async def signals() -> int:
            kinds = [e.event_type async for e in run.fetch_history_events()]
            return kinds.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)

        async def settled() -> bool:
            # Its start's work done too: an activity that answers then is a workflow task.
            described = (await run.describe()).raw_description
            return not (described.HasField("pending_workflow_task") or described.pending_activities)

        settings = stack.service.settings.model_copy(
            update={"temporal_address": dev_env.client.service_client.config.target_host}
        )
        answers = []
        async with signed_in_api(settings, token) as http:
            for action in ("resume", "pause", "pause"):
                await eventually(settled, "the run is idle")
                before = await signals()
                answered = await http.post(f"/briefings/daily/{action}")
                assert answered.status_code == 200, answered.text
                body = answered.json()
                answers.append((action, body["paused"], body["note"], await signals() - before))
        await eventually(settled, "the run is idle")
        before = await signals()
        env = {
            "AMBIENT_DATA_DIR": str(settings.data_dir),
            "AMBIENT_TEMPORAL_ADDRESS": settings.temporal_address,
            "AMBIENT_TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
            "AMBIENT_USER": name,
        }
        result = await asyncio.to_thread(CliRunner().invoke, cli, ["briefing", "pause"], env=env)
        assert result.exit_code == 0, result.output
        assert await signals() == before
        await run.signal("stop")
    assert answers == [
        ("resume", False, ALREADY, 0),
        ("pause", True, None, 1),
        ("pause", True, ALREADY, 0),
    ]
    assert " ".join(result.output.split()) == f"daily-briefing/{name} paused ({ALREADY})"


async def test_a_resume_landing_between_the_describe_and_the_status_is_answered_paused(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The describe found the briefing already paused (nothing sent); another door's resume
    taken before the answer's status read must not make it say "it already was" with paused
    false (the status read came first before, with the same race the other way)."""
    name = unique("steer")
    async with deps.db.session() as session:
        await UserRepository(session).create(UserCreate(name=name))
        await session.commit()
    async with briefing_stack(dev_env, deps) as stack:
        service = stack.service
        await service.create(name, {"timezone": zone_at_midday(), "language": "en"})
        run = dev_env.client.get_workflow_handle(f"daily-briefing/{name}")

        async def taken(state: str) -> bool:
            described = await run.describe()
            found = described.typed_search_attributes.get(temporal.STATE)
            return found == state and not described.raw_description.HasField(
                "pending_workflow_task"
            )

        await run.signal("pause")
        await eventually(lambda: taken("paused"), "the pause taken")
        read = service.read_status

        async def resumed_meanwhile(user: str, **kwargs: Any) -> BriefingStatus | None:
            await run.signal("resume")  # another door's resume, taken before the read
            await eventually(lambda: taken("active"), "the other resume taken")
            return await read(user, **kwargs)

        monkeypatch.setattr(service, "read_status", resumed_meanwhile)
        answer = await service.pause(name)
        await run.signal("stop")
    assert (answer.note, answer.paused) == (ALREADY, True)
