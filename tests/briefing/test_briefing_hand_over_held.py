"""A config change holds the run (its `hand_over` update) while it replaces it. A request cut
short after its hand-over (its process died, its client went away) never replaced the run,
and for the hold's 30 s every "你好，小智" heard "did not answer in time": a voice user greets
once, and the briefing was not heard. Now a held run answers a greeting at once, and the run
that replaces it learns of a greeting spoken meanwhile from its history, so the day is still
spoken once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from ambient.briefing import greeting
from ambient.briefing.config import BriefingConfig
from ambient.briefing.greeting import DEVICE_LISTENS
from ambient.briefing.greeting_answers import NOT_IN_TIME, GreetOutcome
from ambient.deps import WorkerDeps
from ambient.storage.briefings import BriefingRepository
from ambient.watches.configs import task_id_for
from tests.briefing.harness import briefing_stack, make_user
from tests.conftest import unique
from tests.support.record import save_history
from tests.support.waits import eventually
from tests.voice.support import say, voice_client, worker_state
from workflows.daily_briefing import DailyBriefingWorkflow


@pytest.mark.parametrize("door", ["device", "voice profile"])
async def test_a_greeting_while_a_hand_over_nobody_finishes_holds_the_run_is_spoken_at_once(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, door: str
) -> None:
    """The hand-over taken and its request gone: the device's greeting (POST /voice/greeting's
    path) or the voice profile's is answered by the run at once, with the briefing."""
    user = unique("held")
    await make_user(deps.db, user)
    async with briefing_stack(ts_env, deps) as stack:
        service = stack.service
        await stack.created_in_window(user, BriefingConfig(timezone="Asia/Shanghai"))

        async def prepared() -> bool:
            return (await service.status(user)).prepared is not None

        await eventually(prepared, "the day's briefing prepared")
        handle = ts_env.client.get_workflow_handle(task_id_for(user))
        await handle.execute_update(DailyBriefingWorkflow.hand_over)  # then its request died
        if door == "device":
            answer = await service.greet(user, via="voice", within=DEVICE_LISTENS)
            assert answer.outcome is GreetOutcome.SPOKEN, answer.text
            text = answer.text
        else:
            state = worker_state(ts_env.client, deps, stack.worker.task_queue)
            async with voice_client(state, user) as voice:
                text = await say(voice, "greet")
        status = await service.status(user)
        if door == "device":
            await save_history(handle, "daily_briefing_greeted_while_held")
    assert text not in NOT_IN_TIME, text
    # Spoken to this greeting: the day given, by the voice.
    assert status.given_at is not None and status.given_via == "voice", status


async def test_a_greeting_spoken_while_the_run_is_handed_over_is_not_spoken_again_by_the_new(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kim greets after her config change handed the run over and before it replaced it: she
    hears the briefing there, and the new run, started with the status the hand-over read,
    reads that greeting from the replaced run's history. The greeting's own record is late (a
    busy database): the new run knows all the same, and stores it."""
    await make_user(deps.db, "kim")

    async def late(*_args):  # type: ignore[no-untyped-def]
        return None  # the greeting's record not written by the time the new run prepares

    monkeypatch.setattr(greeting, "store_given", late)
    async with briefing_stack(ts_env, deps) as stack:
        service = stack.service
        config = BriefingConfig(timezone="Asia/Shanghai", language="en")
        day = await stack.created_in_window("kim", config)

        async def prepared() -> bool:
            return (await service.status("kim")).prepared is not None

        await eventually(prepared, "the day's briefing prepared")
        heard = []
        start = Client.start_workflow

        async def greet_then_start(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            heard.append(await service.greet("kim", via="voice", request_id="between"))
            return await start(self, *args, **kwargs)

        with monkeypatch.context() as patched:
            patched.setattr(Client, "start_workflow", greet_then_start)
            changed = config.model_copy(update={"window_end": "11:00"})
            assert (await service.create("kim", changed)).created
        await stack.skip_to(await stack.now() + timedelta(minutes=1))
        again = await service.greet("kim", via="voice", request_id="again")

        # Stored by the new run before it planned its day, which the greeting waited for.
        async with deps.db.session() as session:
            row = await BriefingRepository(session).get("kim", day.date)
        status = await service.status("kim")
        new_run = ts_env.client.get_workflow_handle(task_id_for("kim"))
        await save_history(new_run, "daily_briefing_greeting_carried_from_hand_over")
    assert heard[0].outcome is GreetOutcome.SPOKEN, heard[0].text
    assert again.outcome is GreetOutcome.ALREADY_GIVEN, again.text
    assert status.config.window_end == "11:00"
    assert status.last_given_at == heard[0].given_at
    assert row is not None and (row.given_at, row.given_via) == (heard[0].given_at, "voice")
