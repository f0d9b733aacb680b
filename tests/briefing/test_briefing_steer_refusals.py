"""The daily briefing's own pause and resume (POST /briefings/daily/pause|resume) when the
status read after the control is refused: only a worker that did not answer yet is "delivered;
not confirmed"; a worker that keeps failing the run, or a run deleted meanwhile, is said so."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio import workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from ambient import no_answer, temporal
from ambient.briefing.config import BriefingConfig
from ambient.briefing.models import KIND, BriefingCarry, BriefingRun
from ambient.briefing.service import BriefingService
from ambient.deps import WorkerDeps
from ambient.domain.users import UserCreate
from ambient.storage.users import UserRepository
from ambient.watches.configs import task_id_for
from tests.briefing.test_briefing_task_door import deleted_while_sending
from tests.conftest import unique
from tests.foundation.test_failing_task import Failing, refused_by_the_server
from tests.support.api_worker import signed_in_api
from tests.support.waits import eventually


@workflow.defn(name="DailyBriefingWorkflow", sandboxed=False)
class FailingBriefing(Failing):
    """A briefing's run (its input as the service starts it) whose worker fails its task."""

    @workflow.run
    async def run(self, run: BriefingRun) -> None:
        await self._run()


async def test_a_pause_of_a_briefing_whose_worker_keeps_failing_it_is_said_so(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Paused while its worker kept failing the run's workflow task (code that cannot replay
    it after a deploy, a bug): the server refused the status read after the pause at once, and
    the answer was "delivered; not confirmed yet", as of a worker that would answer in a
    moment. It says the pause is delivered and not applied while the worker keeps failing the
    run, as a 503 whose words every door matches as a failing worker."""
    client = dev_env.client
    user, queue = unique("fay"), unique("tq")
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=user))
        await session.commit()
    run = BriefingRun(
        user=user,
        task_id=task_id_for(user),
        config=BriefingConfig(timezone="Asia/Shanghai", language="en"),
        carry=BriefingCarry(),
    )
    settings = deps.settings.model_copy(
        update={"temporal_address": client.service_client.config.target_host}
    )
    async with Worker(client, task_queue=queue, workflows=[FailingBriefing]):
        handle = await client.start_workflow(
            FailingBriefing.run,
            run,
            id=task_id_for(user),
            task_queue=queue,
            search_attributes=temporal.search_attributes(KIND, user, state="active"),
            execution_timeout=timedelta(minutes=2),
            # Each failed attempt held past 1 s, not 10: the third attempt comes soon.
            task_timeout=timedelta(seconds=1),
        )
        try:
            await handle.signal(Failing.breaks)
            await eventually(lambda: refused_by_the_server(handle), "the server refuses reads")
            async with signed_in_api(settings, token) as http:
                paused = await http.post("/briefings/daily/pause")
        finally:
            await handle.terminate("the test is over")
    assert paused.status_code == 503, paused.text
    said = paused.json()["detail"]
    assert said.startswith("delivered; not applied"), said
    assert no_answer.worker_trouble(said) == "failing", said


async def test_a_pause_that_reaches_a_briefing_deleted_meanwhile_is_said_deleted(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pause that looked before a delete reached the deleted run while it still finished (a
    send's push cut short, its record held): the run, stopping, answered its status, and the
    pause was answered as applied ("paused") to a briefing that no longer exists. It is said
    deleted, as a pause sent after the delete is."""
    user = unique("del")

    async def looked_before_the_delete(_self: BriefingService, _user: str) -> tuple[str, str]:
        return "active", "a look before the delete"

    async with deleted_while_sending(dev_env, deps, user, monkeypatch) as (tasks, _config, _rel):
        async with deps.db.session() as session:
            repo = UserRepository(session)
            found = await repo.get(user)
            assert found is not None
            token = await repo.rotate_token(found)
            await session.commit()
        settings = tasks.briefings.settings.model_copy(
            update={"temporal_address": dev_env.client.service_client.config.target_host}
        )
        monkeypatch.setattr(BriefingService, "_live", looked_before_the_delete)
        async with signed_in_api(settings, token) as http:
            paused = await http.post("/briefings/daily/pause")
    assert paused.status_code == 404, paused.text
    assert "was deleted" in paused.json()["detail"], paused.text
