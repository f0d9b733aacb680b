"""A briefing replaced or created again during its day: the day's greeting is kept."""

from __future__ import annotations

from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from ambient.briefing.models import BriefingConfig, GreetOutcome
from ambient.deps import WorkerDeps
from ambient.storage.repositories import EventRepository
from tests.briefing.harness import briefing_stack, eventually, make_user


async def test_a_briefing_whose_config_changes_after_its_greeting_keeps_that_greeting(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """The greeting is stored when the window ends; a new config replaced the run before
    that, so the day's briefing stayed "ready" with no briefing.given event, and after a
    delete and a create the same morning it was spoken a second time."""
    await make_user(deps.db, "rita")
    async with briefing_stack(ts_env, deps) as stack:
        config = BriefingConfig(timezone="Asia/Shanghai", language="en")
        day = await stack.plan(config)
        await stack.service.create("rita", config)
        await stack.skip_to(day.window_start + timedelta(minutes=5))
        spoken = await stack.service.greet("rita", via="voice", request_id="first")
        later = config.model_copy(update={"window_end": "11:00"})
        assert (await stack.service.create("rita", later)).created
        await stack.service.delete("rita")
        await eventually(lambda: _ended(stack.service, "rita"), "the replaced run ended")
        await stack.service.create("rita", later)
        await stack.skip_to(day.window_start + timedelta(minutes=30))
        again = await stack.service.greet("rita", request_id="again")
        view = await stack.service.get_briefing("rita", day.date)
    assert spoken.outcome is GreetOutcome.SPOKEN
    assert again.outcome is GreetOutcome.ALREADY_GIVEN
    assert again.given_at_local == spoken.given_at_local
    assert view.status == "given" and view.given_at == spoken.given_at
    assert view.given_via == "voice"
    async with deps.db.session() as session:
        given = await EventRepository(session).list(user="rita", kind="briefing.given")
    assert [(e.payload["date"], e.payload["via"]) for e in given] == [(day.date, "voice")]


async def _ended(service, user):  # type: ignore[no-untyped-def]
    from ambient.briefing.errors import BriefingNotFoundError

    try:
        await service.status(user)
    except BriefingNotFoundError:
        return True
    return None
