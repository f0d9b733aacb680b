"""A greeting at the edges: no worker answering, a config change under way, a record that fails."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from activities.briefing import BriefingActivities
from ambient.briefing import creation, greeting, records
from ambient.briefing.config import BriefingConfig
from ambient.briefing.errors import BriefingError, BriefingNotFoundError
from ambient.briefing.greeting import GREET_ROUND_TRIP
from ambient.briefing.greeting_answers import GreetOutcome, GreetRequest, GreetResult
from ambient.briefing.service import BriefingService
from ambient.deps import WorkerDeps
from ambient.domain.users import Language, Role, UserCreate
from ambient.storage.briefings import BriefingRepository
from ambient.storage.users import UserRepository, not_registered
from ambient.watches.configs import task_id_for
from tests.briefing.harness import Stack, briefing_stack, make_user
from tests.conftest import unique
from tests.support.record import save_history
from tests.support.waits import eventually
from worker import build_worker
from workflows.daily_briefing import GREETING_CLOCK_SKEW, DailyBriefingWorkflow


async def _prepared(service, user):  # type: ignore[no-untyped-def]
    status = await service.status(user)
    return status if status.prepared is not None else None


async def test_a_greeting_with_the_worker_down_before_its_query_hears_not_in_time(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """The worker is down when ivy greets: the "already given?" query got no answer and the
    greeting raised "no worker answered within 5 s"; now she hears the spoken "not in time"."""
    await make_user(deps.db, "ivy")
    queue = unique("tq")
    settings = deps.settings.model_copy(update={"temporal_task_queue": queue})
    deps.settings = deps.settings.model_copy(update={"max_cached_workflows": 0})
    service = BriefingService(ts_env.client, settings, deps.db, tencent=deps.tencent)
    config = BriefingConfig(timezone="Asia/Shanghai", language="en")
    worker = build_worker(ts_env.client, deps, task_queue=queue)
    running = asyncio.create_task(worker.run())
    stack = Stack(env=ts_env, service=service, worker=worker)
    day = await stack.plan(config)
    await service.create("ivy", config)
    await stack.skip_to(day.window_start + timedelta(minutes=1))
    await eventually(lambda: _prepared(service, "ivy"), "briefing prepared")
    await worker.shutdown()
    await running
    answer = await service.greet("ivy", via="voice", request_id="worker-down", within=3)
    assert answer.outcome is GreetOutcome.PREPARING
    assert "did not answer in time" in answer.text


@pytest.mark.parametrize("language", ["en", "zh"])
async def test_a_greeting_no_worker_polls_for_hears_the_worker_is_not_running(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, language: str
) -> None:
    """No worker has polled the briefing's queue lately (none started, or one stopped minutes
    ago): ivy heard "greet me again" at every greeting, which never answered. She hears that
    the worker is not running, for an administrator to start it."""
    user = unique("ivy")  # the run of each language lives on: one user each
    await make_user(deps.db, user)
    heard = {"temporal_task_queue": unique("tq"), "default_language": Language(language)}
    settings = deps.settings.model_copy(update=heard)
    # The dev server: the time-skipping one answers no DescribeTaskQueue.
    service = BriefingService(dev_env.client, settings, deps.db, tencent=deps.tencent)
    await service.create(user, BriefingConfig(timezone="Asia/Shanghai", language=language))
    try:
        answer = await service.greet(user, via="voice", request_id="nobody", within=3)
    finally:
        await dev_env.client.get_workflow_handle(task_id_for(user)).terminate("test over")
    assert answer.outcome is GreetOutcome.UNAVAILABLE, answer
    said = {"en": "worker is not running", "zh": "后台程序没有在运行"}[language]
    assert said in answer.text, answer.text


async def test_a_greeting_while_a_new_config_replaces_the_run_is_kept_or_said_again(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jon greets as his config changes: after create read the run's status and before it
    replaced the run. He heard the briefing, the new run did not know, the day stayed
    unmarked and his next greeting spoke it again. Now the greeting is carried over (one
    that comes while the run is handed over too: test_briefing_hand_over_held)."""
    await make_user(deps.db, "jon")
    async with briefing_stack(ts_env, deps) as stack:
        service = stack.service
        config = BriefingConfig(timezone="Asia/Shanghai", language="en")
        day, first_run = await stack.created("jon", config)
        await stack.skip_to(day.window_start + timedelta(minutes=5))
        await eventually(lambda: _prepared(service, "jon"), "briefing prepared")
        heard = []
        read = BriefingService.read_status

        async def read_then_greet(self, user, *args, **kwargs):  # type: ignore[no-untyped-def]
            status = await read(self, user, *args, **kwargs)
            if not heard:  # after create's first read, before the run is handed over
                heard.append(await service.greet("jon", via="voice", request_id="between"))
            return status

        with monkeypatch.context() as patched:
            patched.setattr(BriefingService, "read_status", read_then_greet)
            assert (
                await service.create("jon", config.model_copy(update={"window_end": "11:00"}))
            ).created
        again = await service.greet("jon", request_id="again")
        view = await service.get_briefing("jon", day.date)
        first = ts_env.client.get_workflow_handle("daily-briefing/jon", run_id=first_run)
        await save_history(first, "daily_briefing_handed_over")
    assert heard[0].outcome is GreetOutcome.SPOKEN
    assert again.outcome is GreetOutcome.ALREADY_GIVEN, again.text
    assert view.given_at == heard[0].given_at


async def test_a_new_config_that_failed_to_start_does_not_leave_the_run_refusing_greetings(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kai's config change fails after the run was handed over (Temporal refuses the new
    run's start): the old run kept running and answered every greeting "did not answer in
    time" for the rest of the window. Now the hand-over lapses and a later greeting speaks."""
    await make_user(deps.db, "kai")
    async with briefing_stack(ts_env, deps) as stack:
        service = stack.service
        config = BriefingConfig(timezone="Asia/Shanghai", language="en")
        await stack.created_in_window("kai", config)
        await eventually(lambda: _prepared(service, "kai"), "briefing prepared")

        async def refuse(*_args, **_kwargs):  # type: ignore[no-untyped-def]
            raise RPCError("server unavailable", RPCStatusCode.UNAVAILABLE, b"")

        with monkeypatch.context() as patched:
            patched.setattr(Client, "start_workflow", refuse)
            with pytest.raises(RPCError):
                await service.create("kai", config.model_copy(update={"window_end": "11:00"}))
        await stack.skip_to(await stack.now() + timedelta(minutes=1))
        later = await service.greet("kai", via="voice", request_id="later")
        status = await service.status("kai")
    assert later.outcome is GreetOutcome.SPOKEN, later.text
    assert status.config == config and status.given_at == later.given_at


async def test_a_new_config_not_started_within_the_hand_over_leaves_the_run_as_it_was(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database is slow to store the carried greeting: create gives up within half the
    hold ("try again") rather than replace the run after it speaks again."""
    await make_user(deps.db, "kit")
    async with briefing_stack(ts_env, deps) as stack:
        service = stack.service
        config = BriefingConfig(timezone="Asia/Shanghai", language="en")
        await stack.created_in_window("kit", config)
        spoken = await service.greet("kit", request_id="first")
        store = records.store_given

        async def slow(*args):  # type: ignore[no-untyped-def]
            await asyncio.sleep(2)
            await store(*args)

        with monkeypatch.context() as patched:
            patched.setattr(creation, "HAND_OVER_HOLD", timedelta(seconds=2))
            patched.setattr(records, "store_given", slow)
            with pytest.raises(BriefingError, match="try again"):
                await service.create("kit", config.model_copy(update={"window_end": "11:00"}))
        await stack.skip_to(await stack.now() + timedelta(minutes=1))
        again = await service.greet("kit", via="voice", request_id="again")
        status = await service.status("kit")
    assert spoken.outcome is GreetOutcome.SPOKEN
    assert again.outcome is GreetOutcome.ALREADY_GIVEN, again.text
    assert status.config == config


async def test_a_create_sent_again_while_its_cut_short_hand_over_holds_says_try_again(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A create handed the run over and was cut short ("try again"); sent again at once it
    handed the run over a second time. Only one hand-over holds a run: the second hears the
    run is being changed, nothing replaced, and once the hold is over the create replaces it."""
    user = unique("held")
    await make_user(deps.db, user)
    async with briefing_stack(ts_env, deps) as stack:
        service = stack.service
        config = BriefingConfig(timezone="Asia/Shanghai", language="en")
        await stack.created_in_window(user, config)
        await service.greet(user, request_id="first")
        store = records.store_given

        async def slow(*args):  # type: ignore[no-untyped-def]
            await asyncio.sleep(2)
            await store(*args)

        later = config.model_copy(update={"window_end": "11:00"})
        with monkeypatch.context() as patched:
            patched.setattr(creation, "HAND_OVER_HOLD", timedelta(seconds=2))
            patched.setattr(records, "store_given", slow)
            with pytest.raises(BriefingError, match="did not reach Temporal in time"):
                await service.create(user, later)
        with pytest.raises(BriefingError, match="being changed by another request; try again"):
            await service.create(user, later)
        assert (await service.status(user)).config == config
        await stack.skip_to(await stack.now() + timedelta(minutes=1))
        assert (await service.create(user, later)).created
        assert (await service.status(user)).config == later


async def test_a_greeting_stored_slower_than_its_wait_is_stored_all_the_same(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spoken answer waits a moment for the greeting's record, a database busy with
    writes cannot hold it. Past that moment the write was cut off: the record waited for the
    window's end, and a run reset from the Web UI before it spoke the day again. The answer
    still does not wait; the record is written after it."""
    await make_user(deps.db, "lia")
    store, released = greeting.store_given, asyncio.Event()

    async def busy(*args):  # type: ignore[no-untyped-def]
        await released.wait()  # a database busy past the answer's wait
        await store(*args)

    monkeypatch.setattr(greeting, "store_given", busy)
    monkeypatch.setattr(greeting, "STORE_GIVEN_WITHIN", 0.05)
    async with briefing_stack(ts_env, deps) as stack:
        service = stack.service
        await stack.created_in_window("lia", BriefingConfig(timezone="Asia/Shanghai"))
        await eventually(lambda: _prepared(service, "lia"), "briefing prepared")
        spoken = await service.greet("lia", via="voice", request_id="busy")
        released.set()  # the database answers after the greeting was said

        async def stored():  # type: ignore[no-untyped-def]
            async with deps.db.session() as session:
                rows = await BriefingRepository(session).list("lia", limit=1)
            return rows[0] if rows and rows[0].given_at is not None else None

        row = await eventually(stored, "the greeting's record")
    assert spoken.outcome is GreetOutcome.SPOKEN, spoken.text
    assert (row.given_at, row.given_via) == (spoken.given_at, "voice")


async def test_a_greeting_waiting_for_preparation_when_the_run_is_handed_over_is_answered(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Zed greets after a failed preparation (his greeting prepares again and waits for it)
    and his config changes meanwhile: the greeting was not woken, the run was replaced under
    it and it failed ("the Workflow completed before the Update completed"), so the voice
    said a generic refusal. Now it hears "did not answer in time", to greet again."""
    await make_user(deps.db, "zed")
    calls: list[str] = []
    held = asyncio.Event()

    async def prepare(_self, request):  # type: ignore[no-untyped-def]
        calls.append(request.reason)
        if len(calls) == 1:
            raise ApplicationError("database away", non_retryable=True)
        await held.wait()  # the greeting's preparation does not end before the hand-over
        raise ApplicationError("still away", non_retryable=True)

    monkeypatch.setattr(BriefingActivities, "_prepare", prepare)
    async with briefing_stack(ts_env, deps) as stack:
        service = stack.service
        config = BriefingConfig(timezone="Asia/Shanghai", language="en")
        day, first_run = await stack.created("zed", config)
        await stack.skip_to(day.window_start + timedelta(minutes=5))
        await eventually(lambda: _failed(service, "zed"), "preparation failed")
        greeting = asyncio.create_task(
            service.greet("zed", via="voice", request_id="waiting", within=15)
        )
        await eventually(lambda: _true(len(calls) == 2), "the greeting prepares again")
        changed = config.model_copy(update={"window_end": "11:00"})
        assert (await service.create("zed", changed)).created
        heard = await greeting
        held.set()
        first = ts_env.client.get_workflow_handle("daily-briefing/zed", run_id=first_run)
        await save_history(first, "daily_briefing_handed_over_waiting")
    assert heard.outcome is GreetOutcome.PREPARING
    assert "did not answer in time" in heard.text


async def _failed(service, user):  # type: ignore[no-untyped-def]
    status = await service.status(user)
    return status if status.preparation_error else None


async def _true(value: bool) -> bool:
    return value


async def _past(stack: Stack, instant: datetime) -> bool:
    return await stack.now() > instant


async def test_a_greeting_whose_record_failed_is_not_spoken_again_after_a_new_create(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database refuses the stopped run's record of lou's greeting: the run logged it
    and ended, the create that followed read no greeting and the new run spoke the same
    morning's briefing again. Now the ended run's own state says the day was given."""
    await make_user(deps.db, "lou")
    async with briefing_stack(ts_env, deps) as stack:
        service = stack.service
        config = BriefingConfig(timezone="Asia/Shanghai", language="en")
        day = await stack.created_in_window("lou", config)
        spoken = await service.greet("lou", request_id="first")
        with monkeypatch.context() as patched:
            patched.setattr(BriefingRepository, "record_given", _refuse)
            await service.delete("lou")
            await eventually(lambda: _ended(service, "lou"), "the stopped run ended")
        await service.create("lou", config)
        await stack.skip_to(day.window_start + timedelta(minutes=30))
        again = await service.greet("lou", request_id="again")
        view = await service.get_briefing("lou", day.date)
    assert again.outcome is GreetOutcome.ALREADY_GIVEN, again.text
    assert again.given_at_local == spoken.given_at_local
    assert view.given_at == spoken.given_at


async def test_a_greeting_whose_record_failed_is_known_to_a_create_no_worker_answers(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As above, with no worker to ask when the briefing is created again (down, or too busy to
    replay the ended run within a query's 5 s): the ended run's greeting was read by a query,
    the create went on without it and the new run spoke the same morning again. It is read
    from what the server recorded of that run now."""
    await make_user(deps.db, "lia")
    async with briefing_stack(ts_env, deps) as stack:
        service = stack.service
        config = BriefingConfig(timezone="Asia/Shanghai", language="en")
        day = await stack.created_in_window("lia", config)
        spoken = await service.greet("lia", via="voice", request_id="first")
        with monkeypatch.context() as patched:
            patched.setattr(BriefingRepository, "record_given", _refuse)
            await service.delete("lia")
            await eventually(lambda: _ended(service, "lia"), "the stopped run ended")
    assert (await service.create("lia", config)).created  # no worker polls its queue now
    async with build_worker(ts_env.client, deps, task_queue=stack.worker.task_queue):
        await stack.skip_to(day.window_start + timedelta(minutes=30))
        again = await service.greet("lia", request_id="again")
        view = await service.get_briefing("lia", day.date)
    assert again.outcome is GreetOutcome.ALREADY_GIVEN, again.text
    assert again.given_at_local == spoken.given_at_local
    assert (view.given_at, view.given_via) == (spoken.given_at, "voice")


async def test_a_greeting_the_database_did_not_take_is_shown_and_known_the_next_run(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record at the window's end fails for good: the status says so (it only went to
    the worker's log), the day goes on, and a stop and a create that day still know it."""
    await make_user(deps.db, "max")
    async with briefing_stack(ts_env, deps) as stack:
        service = stack.service
        config = BriefingConfig(timezone="Asia/Shanghai", language="en")
        day = await stack.created_in_window("max", config)
        spoken = await service.greet("max", request_id="first")
        with monkeypatch.context() as patched:
            patched.setattr(BriefingRepository, "record_given", _refuse)
            await stack.skip_to(day.window_end + timedelta(minutes=1))
            status = await eventually(lambda: _record_failed(service, "max"), "record failed")
            await service.delete("max")
            await eventually(lambda: _ended(service, "max"), "the stopped run ended")
        await service.create("max", config)
        again = await service.greet("max", request_id="again")
        view = await service.get_briefing("max", day.date)
    assert status.record_error == f"{day.date}: database away"
    assert status.day is not None and status.day.date > day.date
    assert again.outcome is GreetOutcome.ALREADY_GIVEN, again.text
    assert view.given_at == spoken.given_at


async def _refuse(*_args, **_kwargs):  # type: ignore[no-untyped-def]
    raise ApplicationError("database away", non_retryable=True)


async def _record_failed(service, user):  # type: ignore[no-untyped-def]
    status = await service.read_status(user)  # the run's own: its failure's text (an admin's)
    return status if status and status.record_error else None


async def _ended(service, user):  # type: ignore[no-untyped-def]
    from ambient.briefing.errors import BriefingNotFoundError

    try:
        await service.status(user)
    except BriefingNotFoundError:
        return True
    return None


async def test_a_move_to_a_zone_behind_does_not_skip_the_next_morning_there(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Nia's Shanghai briefing of day D ends at 02:00 UTC; at 03:00 UTC (19:00 the evening
    before D in Los Angeles) she moves it to Los Angeles. The new run skipped the Los Angeles
    morning of D (13:00 UTC, hours later: it compared the dates of two zones) and briefed
    first on D+1. Now D's morning there is planned: its logs run past what D covered."""
    await make_user(deps.db, "nia")
    async with briefing_stack(ts_env, deps) as stack:
        service = stack.service
        config = BriefingConfig(timezone="Asia/Shanghai", language="en")
        day = await stack.plan(config)
        await service.create("nia", config)
        await stack.skip_to(day.window_end + timedelta(hours=1))
        await eventually(lambda: _completed(service, "nia", day.date), "the day completed")
        moved = config.model_copy(update={"timezone": "America/Los_Angeles"})
        assert (await service.create("nia", moved)).created
        status = await eventually(lambda: _planned(service, "nia"), "the day planned")
    assert status.day is not None
    assert status.day.date == day.date
    assert status.day.prepare_at == day.logs_to + timedelta(hours=8 + 8 + 5)  # 05:00 in LA


async def test_a_second_change_after_a_move_to_a_zone_behind_keeps_the_morning_there(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Nia moves her briefing of day D from Shanghai to Los Angeles (D's morning there is
    planned), then the same evening changes only its window: create took D's midnight in
    the new zone, not the one D was briefed in, and the Los Angeles morning of D was skipped
    for D+1. Now the run's own midnight is carried and D stays planned."""
    await make_user(deps.db, "noa")
    async with briefing_stack(ts_env, deps) as stack:
        service = stack.service
        config = BriefingConfig(timezone="Asia/Shanghai", language="en")
        day = await stack.plan(config)
        await service.create("noa", config)
        await stack.skip_to(day.window_end + timedelta(hours=1))
        await eventually(lambda: _completed(service, "noa", day.date), "the day completed")
        moved = config.model_copy(update={"timezone": "America/Los_Angeles"})
        assert (await service.create("noa", moved)).created
        await eventually(lambda: _planned(service, "noa"), "the day planned")
        again = moved.model_copy(update={"window_end": "11:00"})
        assert (await service.create("noa", again)).created
        status = await eventually(lambda: _planned_with(service, "noa", again), "planned again")
    assert status.day is not None
    assert status.day.date == day.date


async def _planned_with(service, user, config):  # type: ignore[no-untyped-def]
    status = await service.status(user)
    return status if status.day is not None and status.config == config else None


async def _completed(service, user, date):  # type: ignore[no-untyped-def]
    status = await service.status(user)
    return status if status.last_date == date else None


async def _planned(service, user):  # type: ignore[no-untyped-def]
    status = await service.status(user)
    return status if status.day is not None else None


async def test_a_greeting_waiting_for_preparation_when_the_briefing_is_deleted_is_answered(
    ts_env: WorkflowEnvironment,
    deps: WorkerDeps,
    monkeypatch: pytest.MonkeyPatch,
    recwarn: pytest.WarningsRecorder,
) -> None:
    """Uma greets after a failed preparation (her greeting prepares again and waits for it)
    and deletes the briefing meanwhile: the run ended under the greeting (the worker warned of
    an unfinished `greet` update) and the voice said "did not answer in time", as of a worker
    that did not answer. Now the greeting is answered before the run ends: the briefing is no
    longer set up, as greeted again."""
    await make_user(deps.db, "uma")
    calls: list[str] = []
    held = asyncio.Event()

    async def prepare(_self, request):  # type: ignore[no-untyped-def]
        calls.append(request.reason)
        if len(calls) == 1:
            raise ApplicationError("database away", non_retryable=True)
        await held.wait()
        raise ApplicationError("still away", non_retryable=True)

    monkeypatch.setattr(BriefingActivities, "_prepare", prepare)
    async with briefing_stack(ts_env, deps) as stack:
        service = stack.service
        config = BriefingConfig(timezone="Asia/Shanghai", language="en")
        await stack.created_in_window("uma", config)
        await eventually(lambda: _failed(service, "uma"), "preparation failed")
        greeting = asyncio.create_task(
            service.greet("uma", via="voice", request_id="waiting", within=15)
        )
        await eventually(lambda: _true(len(calls) == 2), "the greeting prepares again")
        await service.delete("uma")
        heard = await greeting
        held.set()
        handle = ts_env.client.get_workflow_handle("daily-briefing/uma")
        assert await handle.result() == "stopped"
        await save_history(handle, "daily_briefing_deleted_while_greeting")
        again = await service.greet("uma", via="voice", request_id="again")
    assert (heard.outcome, heard.text) == (again.outcome, again.text), heard
    assert again.outcome is GreetOutcome.UNAVAILABLE, again
    unfinished = [w for w in recwarn if "UnfinishedUpdateHandlers" in type(w.message).__name__]
    assert not unfinished, [str(w.message) for w in unfinished]


async def test_a_briefing_deleted_and_created_again_in_a_zone_behind_keeps_the_morning_there(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Ned hears his Shanghai briefing of day D, and that evening (still the evening before D
    in Los Angeles) deletes it and creates it again in Los Angeles. The new run carried only
    the date D given, compared it with Los Angeles dates, and skipped the morning of D there
    for D+1. Now the day's midnight in the zone it was given in is carried too."""
    await make_user(deps.db, "ned")
    async with briefing_stack(ts_env, deps) as stack:
        service = stack.service
        config = BriefingConfig(timezone="Asia/Shanghai", language="en")
        day = await stack.created_in_window("ned", config)
        spoken = await service.greet("ned", via="voice", request_id="morning", within=15)
        assert spoken.outcome is GreetOutcome.SPOKEN, spoken
        await stack.skip_to(day.window_end + timedelta(hours=1))
        await eventually(lambda: _completed(service, "ned", day.date), "the day completed")
        await service.delete("ned")
        moved = config.model_copy(update={"timezone": "America/Los_Angeles"})

        async def created() -> bool:
            try:
                return (await service.create("ned", moved)).created
            except BriefingError:  # "still finishing; create it again in a minute"
                return False

        await eventually(created, "created again")
        status = await eventually(lambda: _planned(service, "ned"), "the day planned")
        assert status.day is not None
        assert status.day.date == day.date
        # That morning in Los Angeles is spoken: its preparation read back the Shanghai day's
        # greeting (the same date's row) and took the morning as spoken, "already given".
        await stack.skip_to(status.day.window_start + timedelta(minutes=5))
        there = await service.greet("ned", via="voice", request_id="la-morning", within=15)
        view = await service.get_briefing("ned", day.date)
    assert there.outcome is GreetOutcome.SPOKEN, there.text
    assert view.given_at is not None and view.given_at > spoken.given_at  # type: ignore[operator]


async def test_an_admin_greeting_a_name_nobody_has_is_told_so_not_that_no_briefing_is_set_up(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """An admin's greet(user_id="nobdy") answered "Hello! No daily briefing is set up yet; set
    one up on the web page or in a chat with me." for a user who does not exist."""
    boss, ghost, plain = unique("boss"), unique("nobdy"), unique("plain")
    async with deps.db.session() as session:
        await UserRepository(session).create(UserCreate(name=boss, role=Role.ADMIN))
        await session.commit()
    await make_user(deps.db, plain)
    service = BriefingService(dev_env.client, deps.settings, deps.db, tencent=deps.tencent)
    with pytest.raises(BriefingNotFoundError) as refused:
        await service.greet(ghost, caller=boss, audio=False)
    assert str(refused.value) == not_registered(ghost)
    unset = await service.greet(plain, caller=boss, audio=False)
    # Theirs to set up: "call create_daily_briefing" would set up the admin's own (a review).
    assert unset.outcome is GreetOutcome.UNAVAILABLE, unset
    assert unset.text in (
        f"{plain} has no daily briefing set up yet: {plain} sets one up.",
        f"{plain} 还没有设置每日简报：需要 {plain} 自己设置。",
    ), unset.text


async def test_a_greeting_for_a_user_without_a_briefing_reads_the_users_row_once(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """ "No daily briefing is set up" read the user's row twice: once to know the user exists,
    once more for the language it is said in."""
    from sqlalchemy import event

    plain = unique("plain")
    await make_user(deps.db, plain)
    service = BriefingService(dev_env.client, deps.settings, deps.db, tencent=deps.tencent)
    reads: list[str] = []

    def noted(_conn, _cursor, statement, parameters, *_):  # type: ignore[no-untyped-def]
        if "FROM users" in statement and plain in str(parameters):
            reads.append(statement)

    event.listen(deps.db.engine.sync_engine, "before_cursor_execute", noted)
    try:
        unset = await service.greet(plain, audio=False)
    finally:
        event.remove(deps.db.engine.sync_engine, "before_cursor_execute", noted)
    assert unset.outcome is GreetOutcome.UNAVAILABLE and "No daily briefing" in unset.text
    assert len(reads) == 1, reads


async def test_a_greeting_sent_by_hand_with_an_endless_wait_is_refused_naming_it(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A greet update sent from the Web UI or `temporal workflow update execute` with a wait
    no timedelta holds (1e300, Infinity) was taken: one inside the window before the briefing
    was ready raised OverflowError in the handler, a workflow task failure retried forever.
    It is refused before it is recorded, naming the field, and the briefing answers on."""
    user = unique("greet-by-hand")
    await make_user(deps.db, user)
    async with briefing_stack(ts_env, deps) as stack:
        await stack.created(user, BriefingConfig(timezone="Asia/Shanghai", language="en"))
        handle = ts_env.client.get_workflow_handle(f"daily-briefing/{user}")
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update("greet", {"request_id": "by-hand", "wait_seconds": 1e300})
        status = await stack.service.status(user)
    # The SDK's "Failed decoding arguments", caused by the model's refusal of the field.
    reason = refused.value.cause.cause
    assert reason is not None and "wait_seconds" in str(reason), reason
    assert status.given_at is None and not status.paused


async def test_a_greeting_sent_by_hand_is_a_trial_that_keeps_the_users_day(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """An operator trying the greeting from the Web UI (a greet update with a request id only)
    was spoken the briefing and the day was used up: the user's "你好，小智" then heard
    "already given". It hears what the user would, with no given_at, and the user's greeting
    speaks the day."""
    user = unique("greet-trial")
    await make_user(deps.db, user)
    async with briefing_stack(ts_env, deps) as stack:
        await stack.created_in_window(user, BriefingConfig(timezone="Asia/Shanghai", language="en"))
        await eventually(lambda: _prepared(stack.service, user), "briefing prepared")
        handle = ts_env.client.get_workflow_handle(f"daily-briefing/{user}")
        trial = await handle.execute_update(
            "greet", {"request_id": "by-hand"}, result_type=GreetResult
        )
        kept = await stack.service.status(user)
        spoken = await stack.service.greet(user, via="voice", request_id="morning")
        await save_history(handle, "daily_briefing_greeting_sent_by_hand")
    assert trial.outcome is GreetOutcome.SPOKEN and trial.given_at is None, trial
    assert kept.given_at is None, kept
    assert spoken.outcome is GreetOutcome.SPOKEN and spoken.given_at is not None, spoken.text
    assert spoken.text.startswith(trial.text), (trial.text, spoken.text)


@pytest.mark.parametrize("nonsense", [[{"by": "hand"}], ["now"], [0], [{"by": "hand"}, "now"]])
async def test_a_hand_over_sent_by_hand_with_arguments_is_refused_and_greetings_go_on(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, nonsense: list[object]
) -> None:
    """The service sends hand_over with no argument; one sent from the Web UI with an input was
    taken (no validator), and the briefing refused greetings for HAND_OVER_HOLD. It is refused
    before it is recorded, and the next greeting is spoken. Two inputs (`temporal workflow
    update execute --input` twice) failed the run's workflow task on every attempt."""
    user = unique("hand-over-by-hand")
    await make_user(deps.db, user)
    async with briefing_stack(ts_env, deps) as stack:
        await stack.created_in_window(user, BriefingConfig(timezone="Asia/Shanghai", language="en"))
        await eventually(lambda: _prepared(stack.service, user), "briefing prepared")
        handle = ts_env.client.get_workflow_handle(f"daily-briefing/{user}")
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update("hand_over", args=nonsense)
        spoken = await stack.service.greet(user, via="voice", request_id="after")
    assert spoken.outcome is GreetOutcome.SPOKEN, spoken.text


async def test_a_greeting_taken_up_by_its_answer_by_has_time_to_answer_its_caller(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pia's speaker listens 8 s. The workflow took a greeting until its answer_by plus the
    clock skew it allows (5 s), and answer_by was the moment the speaker stops listening: a
    greeting taken up by a backed-up worker in those last seconds spent the day on nobody
    (she heard "not in time", then "already given at 09:03"). Now answer_by leaves the
    answer's way back and the skew inside the time she listens."""
    await make_user(deps.db, "pia")
    sent: list[GreetRequest] = []
    execute = WorkflowHandle.execute_update

    async def recorded(self, update, arg=None, *args, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(arg, GreetRequest):
            sent.append(arg)
        return await execute(self, update, arg, *args, **kwargs)

    async with briefing_stack(ts_env, deps) as stack:
        service = stack.service
        config = BriefingConfig(timezone="Asia/Shanghai", language="en")
        await stack.created_in_window("pia", config)
        await eventually(lambda: _prepared(service, "pia"), "briefing prepared")
        start = await service.clock()  # the server's, which time skipping moves on

        async def clock() -> datetime:  # the clock answer_by is read from, held still
            return start

        monkeypatch.setattr(service, "clock", clock)
        monkeypatch.setattr(WorkflowHandle, "execute_update", recorded)
        await service.greet("pia", via="voice", request_id="morning", within=8)
    [request] = sent
    assert request.answer_by is not None
    latest_taken = request.answer_by + GREETING_CLOCK_SKEW
    assert latest_taken + timedelta(seconds=GREET_ROUND_TRIP) <= start + timedelta(seconds=8)


async def test_a_greeting_that_waited_past_its_callers_end_keeps_the_day(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Quinn's greeting was taken up in time, then waited for a preparation that ended after
    her speaker had stopped listening: the briefing was spoken to nobody and the day used up
    (her next greeting heard "already given"). Now that greeting says not ready, and the next
    one speaks the day."""
    await make_user(deps.db, "quinn")
    calls: list[str] = []
    ready = asyncio.Event()
    prepare_for_real = BriefingActivities._prepare

    async def prepare(self, request):  # type: ignore[no-untyped-def]
        calls.append(request.reason)
        if len(calls) == 1:  # the morning's preparation: the greeting's own is the one held
            raise ApplicationError("database away", non_retryable=True)
        await ready.wait()
        return await prepare_for_real(self, request)

    monkeypatch.setattr(BriefingActivities, "_prepare", prepare)
    async with briefing_stack(ts_env, deps) as stack:
        config = BriefingConfig(timezone="Asia/Shanghai", language="en")
        await stack.created_in_window("quinn", config)
        await eventually(lambda: _failed(stack.service, "quinn"), "preparation failed")
        handle = ts_env.client.get_workflow_handle("daily-briefing/quinn")
        # Taken up in time (within answer_by and the skew allowed: 10 s), waiting up to 19 s.
        answer_by = await stack.now() + timedelta(seconds=5)
        request = GreetRequest(request_id="gone", via="voice", wait_seconds=19, answer_by=answer_by)
        waiting = await handle.start_update(
            DailyBriefingWorkflow.greet,
            request,
            id="greet-gone",
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
        )
        await eventually(lambda: _true(len(calls) == 2), "the greeting prepares again")
        # The preparation ends once the caller is gone by the workflow's clock (real time: a
        # running activity holds the test server's clock to it).
        gone = answer_by + GREETING_CLOCK_SKEW
        await eventually(lambda: _past(stack, gone), "the caller gone")
        ready.set()
        heard = await waiting.result()
        spoken = await stack.service.greet("quinn", via="voice", request_id="again")
        await save_history(handle, "daily_briefing_greeting_past_answer_by")
    assert heard.outcome is GreetOutcome.PREPARING, heard
    assert spoken.outcome is GreetOutcome.SPOKEN, spoken.text
