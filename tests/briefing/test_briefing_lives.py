"""A briefing replaced or created again during its day: the day's greeting is kept."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from ambient import temporal
from ambient.briefing.config import BriefingConfig, ClsLogSpec
from ambient.briefing.greeting_answers import GreetOutcome, GreetResult
from ambient.briefing.models import KIND, BriefingRun
from ambient.briefing.service import BriefingService
from ambient.deps import WorkerDeps
from ambient.domain.configs import STORED
from ambient.storage.repositories import EventRepository
from ambient.watches.configs import task_id_for
from tests.briefing.harness import briefing_stack, briefings_away, make_user
from tests.standins.tencent_api import TencentApi
from tests.support.record import save_history
from tests.support.servers import serve
from tests.support.tencent import standin_tencent
from tests.support.waits import eventually
from workflows.daily_briefing import DailyBriefingWorkflow


async def test_a_briefing_whose_config_changes_after_its_greeting_keeps_that_greeting(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """The greeting is stored when the window ends; a new config replaced the run before
    that, so the day's briefing stayed "ready" with no briefing.given event, and after a
    delete and a create the same morning it was spoken a second time."""
    await make_user(deps.db, "rita")
    async with briefing_stack(ts_env, deps) as stack:
        config = BriefingConfig(timezone="Asia/Shanghai", language="en")
        day = await stack.created_in_window("rita", config)
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


async def test_a_greeting_spoken_while_the_hand_over_went_unanswered_is_carried(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new config replaces the run. The run did not answer the hand-over in time (its worker
    slow) yet spoke the morning's briefing to a greeting that came after the service had read
    its status: the new run, started from that read, spoke the same day again. What the
    replaced run spoke is read from the server's record of it before it is replaced."""
    await make_user(deps.db, "ivy")
    async with briefing_stack(ts_env, deps) as stack:
        config = BriefingConfig(timezone="Asia/Shanghai", language="en")
        day = await stack.created_in_window("ivy", config)
        spoken: list[GreetResult] = []

        async def unanswered(
            self: BriefingService, user: str, run_id: str | None = None
        ) -> tuple[None, None]:
            spoken.append(await self.greet(user, via="voice", request_id="meanwhile"))
            return None, None  # as a hand-over no worker took in time

        with monkeypatch.context() as patched:
            patched.setattr(BriefingService, "_hand_over", unanswered)
            later = config.model_copy(update={"window_end": "11:00"})
            assert (await stack.service.create("ivy", later)).created
        again = await stack.service.greet("ivy", request_id="again")
        view = await stack.service.get_briefing("ivy", day.date)
    assert [s.outcome for s in spoken] == [GreetOutcome.SPOKEN]
    assert again.outcome is GreetOutcome.ALREADY_GIVEN, again.text
    assert again.given_at_local == spoken[0].given_at_local
    assert (view.status, view.given_at, view.given_via) == ("given", spoken[0].given_at, "voice")


async def _ended(service, user):  # type: ignore[no-untyped-def]
    from ambient.briefing.errors import BriefingNotFoundError

    try:
        await service.status(user)
    except BriefingNotFoundError:
        return True
    return None


async def test_a_briefing_regenerated_the_evening_before_is_prepared_again_at_five(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """ "Run it now" in the evening prepares the coming day's briefing from the half of
    yesterday that has passed; the scheduled preparation then found it prepared and kept
    it, so the morning briefing missed the evening's errors and the night's results."""
    await make_user(deps.db, "eve")
    async with briefing_stack(ts_env, deps) as stack:
        config = BriefingConfig(timezone="Asia/Shanghai", language="en")
        logs = tmp_path / "app.log"
        day, _ = await stack.created("eve", config, logs=logs)
        await stack.skip_to(day.logs_to - timedelta(hours=5))  # 19:00 the evening before
        early = await stack.service.regenerate("eve")
        late_error = {
            "time": (day.logs_to - timedelta(hours=2)).isoformat(),
            "level": "ERROR",
            "message": "disk full on db-1",
        }
        with logs.open("a") as file:
            file.write(json.dumps(late_error) + "\n")
        await stack.skip_to(day.prepare_at + timedelta(minutes=1))
        status = await eventually(
            lambda: _prepared_again(stack.service, "eve"), "prepared again at five"
        )
        view = await stack.service.get_briefing("eve", day.date)
        handle = ts_env.client.get_workflow_handle("daily-briefing/eve")
        first_run = (await handle.describe()).run_id
        await stack.skip_to(day.window_end + timedelta(minutes=5))
        await eventually(lambda: _pushed(stack.service, "eve", day.date), "pushed")
        await save_history(
            ts_env.client.get_workflow_handle("daily-briefing/eve", run_id=first_run),
            "daily_briefing_regenerated_early",
        )
    assert early.date == day.date and early.version == 1
    assert status.prepared is not None and status.prepared.version == 2
    assert status.prepared_at is not None and status.prepared_at >= day.prepare_at
    assert view.version == 2 and view.content.errors == 41  # the day's 40, the evening's 1
    assert "disk full on db-1" in view.report_markdown


async def test_a_briefing_regenerated_the_evening_before_is_not_spoken_when_five_fails(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    """The evening's briefing, made from the half of yesterday that had passed, was kept when
    the 05:00 preparation failed (the database away), and the morning's greeting spoke it as
    the whole day: the evening's errors unsaid. Now the greeting tries the preparation again
    and, that failing too, says why."""
    await make_user(deps.db, "evan")
    async with briefing_stack(ts_env, deps) as stack:
        config = BriefingConfig(timezone="Asia/Shanghai", language="en")
        day, first_run = await stack.created("evan", config, logs=tmp_path / "app.log")
        await stack.skip_to(day.logs_to - timedelta(hours=5))  # 19:00 the evening before
        early = await stack.service.regenerate("evan")
        await briefings_away(deps.db)
        try:
            await stack.skip_to(day.prepare_at + timedelta(minutes=1))
            failed = await eventually(lambda: _failed(stack.service, "evan"), "05:00 failed")
            await stack.skip_to(day.window_start + timedelta(minutes=5))
            heard = await stack.service.greet("evan", request_id="morning")
        finally:
            await briefings_away(deps.db, away=False)
        await save_history(
            ts_env.client.get_workflow_handle("daily-briefing/evan", run_id=first_run),
            "daily_briefing_regenerated_early_then_failed",
        )
    assert early.date == day.date and early.version == 1
    assert failed.prepared is None, failed.prepared
    assert heard.outcome is GreetOutcome.UNAVAILABLE, heard.text


async def _failed(service, user):  # type: ignore[no-untyped-def]
    status = await service.status(user)
    return status if status.preparation_error is not None else None


async def _prepared_again(service, user):  # type: ignore[no-untyped-def]
    status = await service.status(user)
    return status if status.prepared is not None and status.prepared.version >= 2 else None


async def _pushed(service, user, date):  # type: ignore[no-untyped-def]
    view = await service.get_briefing(user, date)
    return view if view.pushed_at is not None else None


async def test_a_briefing_stored_before_a_rule_was_added_runs_and_can_be_changed(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A CLS query with "| select ..." is refused since a rule was added; a briefing created
    before it ran on (its input is read as it ran), but its day's plan, its preparation and
    its status read the config afresh and refused it: the day was never planned, and every
    read, pause, delete or config change failed, so the user could not even repair it."""
    await make_user(deps.db, "olga")
    source = {"type": "cls", "topic_id": "0a1b2c3d-0000-4000-8000-000000000001"}
    old = BriefingConfig.model_validate(
        {"log_source": source | {"query": "level:ERROR | select count(*) as n"}, "language": "en"},
        context=STORED,
    )
    # A CLS source is created only with Tencent Cloud's keys: the stand-in's.
    async with (
        serve(TencentApi().app()) as base,
        briefing_stack(ts_env, replace(deps, tencent=standin_tencent(base))) as stack,
    ):
        day = await stack.plan(old)
        await ts_env.client.start_workflow(
            DailyBriefingWorkflow.run,
            BriefingRun(user="olga", task_id=task_id_for("olga"), config=old),
            id=task_id_for("olga"),
            task_queue=stack.worker.task_queue,
            search_attributes=temporal.search_attributes(KIND, "olga", state="active"),
        )
        await stack.skip_to(day.window_start + timedelta(minutes=5))
        spoken = await stack.service.greet("olga", request_id="first")
        status = await stack.service.pause("olga")
        fixed = old.model_copy(update={"log_source": ClsLogSpec(**source, query="level:ERROR")})
        replaced = await stack.service.create("olga", fixed)
        after = await stack.service.status("olga")
    assert status.config == old and status.paused and status.day is not None
    assert status.day.date == day.date
    assert spoken.outcome is GreetOutcome.SPOKEN and spoken.date == day.date
    assert replaced.created and replaced.state == "paused"
    assert after.config == fixed and after.paused
