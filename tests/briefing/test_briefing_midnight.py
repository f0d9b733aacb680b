"""The morning briefing as a user meets it around midnight in their own zone, greeted by two."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

from temporalio.testing import WorkflowEnvironment

from ambient.briefing.config import BriefingConfig, plan_for
from ambient.briefing.greeting_answers import GreetOutcome
from ambient.deps import WorkerDeps
from tests.briefing.harness import briefing_stack, make_user


async def test_midnight_in_new_york_ends_the_day_given_and_two_speakers_get_one_briefing(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A user in New York (not the default Asia/Shanghai): greeted at 08:00, a greeting at
    23:59:59 their time hears it was given at 08:00; at 00:00:01 it is a new day, outside its
    window, not "already given"; at 06:00:01 two speakers greeting at once get the new day's
    briefing once between them."""
    await make_user(deps.db, "nina")
    async with briefing_stack(ts_env, deps) as stack:
        config = BriefingConfig(timezone="America/New_York", language="en")
        day = await stack.plan(config)
        await stack.service.create("nina", config)
        await stack.skip_to(day.window_start + timedelta(hours=2))
        first = await stack.service.greet("nina", request_id="morning")
        assert first.outcome is GreetOutcome.SPOKEN and first.given_at_local == "08:00"
        following = plan_for(date.fromisoformat(day.date) + timedelta(days=1), config)
        midnight = following.logs_to  # the one that ends the day greeted
        assert midnight == day.logs_to + timedelta(days=1)

        await stack.skip_to(midnight - timedelta(seconds=1))
        late = await stack.service.greet("nina", request_id="late")
        assert late.outcome is GreetOutcome.ALREADY_GIVEN and late.given_at_local == "08:00"
        assert late.date == day.date, late

        await stack.skip_to(midnight + timedelta(seconds=1))
        night = await stack.service.greet("nina", request_id="night")
        assert night.outcome is GreetOutcome.OUTSIDE_WINDOW, night
        assert night.date == following.date and "between 6:00 and 10:00." in night.text

        await stack.skip_to(following.window_start + timedelta(seconds=1))
        kitchen, office = await asyncio.gather(
            stack.service.greet("nina", request_id="kitchen", via="voice"),
            stack.service.greet("nina", request_id="office", via="voice"),
        )
        outcomes = sorted([kitchen.outcome, office.outcome])
        assert outcomes == [GreetOutcome.ALREADY_GIVEN, GreetOutcome.SPOKEN], (kitchen, office)
        spoken = kitchen if kitchen.outcome is GreetOutcome.SPOKEN else office
        assert spoken.date == following.date and spoken.given_at_local == "06:00"
        assert spoken.text.startswith("Good morning"), spoken.text
