"""The per-wake context (/xiaozhi/context) says what greet will answer about the briefing."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from temporalio.testing import WorkflowEnvironment

from ambient.briefing.greeting_answers import GreetOutcome
from ambient.briefing.service import BriefingService, task_id_for
from ambient.deps import WorkerDeps
from ambient.storage.users import UserRepository
from ambient.xiaozhi_context import voice_facts
from tests.briefing.harness import make_user
from tests.conftest import running_worker, unique
from tests.support.waits import eventually

ZONES = ("UTC", "Asia/Shanghai", "America/New_York", "Asia/Tokyo", "Europe/Berlin")
# UTC+14, +13 and +12: each a day or more ahead of AWAY_PROFILE's UTC-12, so their dates always
# differ from its date; one of them is away from its midnight at any hour.
AWAY_ZONES = ("Pacific/Kiritimati", "Etc/GMT-13", "Etc/GMT-12")
AWAY_PROFILE = "Etc/GMT+12"


async def _user(deps: WorkerDeps, name: str, timezone: str) -> None:
    await make_user(deps.db, name)
    async with deps.db.session() as session:
        row = await UserRepository(session).get(name)
        assert row is not None
        row.timezone = timezone
        await session.commit()


async def _facts(deps: WorkerDeps, service: BriefingService, name: str) -> tuple[bool, bool]:
    async with deps.db.session() as session:
        user = await UserRepository(session).get(name)
    assert user is not None
    facts = await voice_facts(deps.db, user, briefings=service, budget=5)
    return facts.briefing_ready, facts.briefing_given_today


async def _prepared(service: BriefingService, name: str) -> None:
    async def done() -> bool:
        return (await service.status(name)).prepared is not None

    await eventually(done, f"{name}'s briefing prepared")


async def _paused(service: BriefingService, name: str, paused: bool) -> bool:
    return (await service.status(name)).paused is paused


async def test_the_context_says_ready_only_when_greet_would_speak_the_briefing(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """It said 'ready, call greet' for a briefing prepared before its window (greet answers
    'outside the window'), and looked for today's briefing by the date in the user's profile
    time zone, not the briefing's own (a briefing configured in another zone was never ready)."""
    now = datetime.now(UTC)
    zone = next(z for z in ZONES if 1 <= now.astimezone(ZoneInfo(z)).hour <= 21)
    later = f"{now.astimezone(ZoneInfo(zone)).hour + 2:02d}:00"
    # Its window is the whole day: a zone where it is not near midnight (at 23:59 the window
    # is over, and after midnight the new day is not yet prepared).
    away_zone = next(z for z in AWAY_ZONES if 1 <= now.astimezone(ZoneInfo(z)).hour <= 22)
    early, away = unique("early"), unique("away")
    await _user(deps, early, zone)
    # Their dates always differ: the briefing's day is not the profile's.
    await _user(deps, away, AWAY_PROFILE)
    async with running_worker(dev_env.client, deps) as worker:
        settings = deps.settings.model_copy(update={"temporal_task_queue": worker.task_queue})
        service = BriefingService(dev_env.client, settings, deps.db, tencent=deps.tencent)
        day = {"prepare_at": "00:00", "window_end": "23:59", "language": "en"}
        await service.create(early, {**day, "timezone": zone, "window_start": later})
        await service.create(away, {**day, "timezone": away_zone, "window_start": "00:00"})
        try:
            await _prepared(service, early)
            assert await _facts(deps, service, early) == (False, False)
            answer = await service.greet(early, via="voice", audio=False)
            assert answer.outcome is GreetOutcome.OUTSIDE_WINDOW

            await _prepared(service, away)
            assert await _facts(deps, service, away) == (True, False)
            # Paused, greet answers "paused": not ready either, until resumed.
            await service.pause(away)
            await eventually(lambda: _paused(service, away, True), "paused")
            assert await _facts(deps, service, away) == (False, False)
            assert (await service.greet(away, via="voice")).outcome is GreetOutcome.PAUSED
            await service.resume(away)
            await eventually(lambda: _paused(service, away, False), "resumed")
            assert await _facts(deps, service, away) == (True, False)
            answer = await service.greet(away, via="voice", audio=False)
            assert answer.outcome is GreetOutcome.SPOKEN
            assert await _facts(deps, service, away) == (False, True)
        finally:
            await service.delete(early)
            await service.delete(away)


async def test_a_briefing_not_read_in_time_is_not_said_as_not_given(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """With the worker away (busy, stopped, restarting), the context said the briefing spoken
    this morning was not given today: an unknown told the voice model as a fact."""
    name, none = unique("late"), unique("nobrief")
    await _user(deps, name, "UTC")
    await _user(deps, none, "UTC")
    day = {"prepare_at": "00:00", "window_start": "00:00", "window_end": "23:59"}
    async with running_worker(dev_env.client, deps) as worker:
        settings = deps.settings.model_copy(update={"temporal_task_queue": worker.task_queue})
        service = BriefingService(dev_env.client, settings, deps.db, tencent=deps.tencent)
        await service.create(name, {**day, "timezone": "UTC", "language": "en"})
        await _prepared(service, name)
        answer = await service.greet(name, via="voice", audio=False)
        assert answer.outcome is GreetOutcome.SPOKEN
        assert await _facts(deps, service, name) == (False, True)
    # No worker answers the briefing's query within the context's budget: not known.
    async with deps.db.session() as session:
        user, nobody = (
            await UserRepository(session).get(name),
            await UserRepository(session).get(none),
        )
    assert user is not None and nobody is not None
    facts = await voice_facts(deps.db, user, briefings=service, budget=0.5)
    assert (facts.briefing_ready, facts.briefing_given_today) == (False, None)
    # A user with no briefing at all: none is known to have been given.
    facts = await voice_facts(deps.db, nobody, briefings=service, budget=5)
    assert (facts.briefing_ready, facts.briefing_given_today) == (False, False)
    await dev_env.client.get_workflow_handle(task_id_for(name)).terminate("test over")
