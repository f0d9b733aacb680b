"""Watch rules under time skipping, with real activities against a local site."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError, WorkflowUpdateStage
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.domain.users import Language, UserCreate, UserSettings
from ambient.storage.repositories import EventRepository, InboxRepository
from ambient.storage.users import UserRepository
from ambient.watches.models import (
    TaskStatus,
    ThresholdWatchInput,
    ThresholdWatchState,
)
from ambient.watches.threshold_config import ThresholdWatchConfig
from ambient.watches.threshold_rule import ThresholdState
from tests.conftest import running_worker, unique
from tests.support.record import save_history
from tests.support.servers import serve
from tests.support.waits import ask, eventually
from tests.watches.site import Site
from workflows.threshold_watch import ThresholdWatchWorkflow

USER = "alice"


@pytest_asyncio.fixture
async def site() -> AsyncIterator[tuple[Site, str]]:
    state = Site()
    async with serve(state.app()) as base:
        yield state, base


@pytest_asyncio.fixture
async def loopback_deps(deps: WorkerDeps) -> WorkerDeps:
    deps.settings = deps.settings.model_copy(update={"fetch_allow_cidrs": ["127.0.0.1/32"]})
    async with deps.db.session() as session:
        await UserRepository(session).create(UserCreate(name=USER))
        await session.commit()
    return deps


async def reads_chinese(deps: WorkerDeps, language: Language = Language.ZH) -> None:
    """USER chooses Chinese (or ``language``): what they are told is said in it."""
    async with deps.db.session() as session:
        users = UserRepository(session)
        user = await users.get(USER)
        assert user is not None
        await users.update(user, UserSettings(language=language))
        await session.commit()


async def checks_reach(
    env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any], count: int
) -> TaskStatus:
    """Skip time a little at a time until the watch has done ``count`` checks."""
    for _ in range(1000):
        status: TaskStatus = await ask(handle, "status", result_type=TaskStatus)
        if status.checks >= count:
            return status
        await env.sleep(timedelta(seconds=20))
    raise AssertionError(f"only {status.checks} checks, wanted {count}")


async def kinds(deps: WorkerDeps, task: str) -> list[str]:
    async with deps.db.session() as session:
        events = await EventRepository(session).list(task=task, limit=1000)
    return [event.kind for event in reversed(events)]


async def inbox_titles(deps: WorkerDeps) -> list[str]:
    async with deps.db.session() as session:
        return [m.title for m in reversed(await InboxRepository(session).list(USER, limit=100))]


def threshold(base: str, **fields: Any) -> ThresholdWatchConfig:
    return ThresholdWatchConfig.model_validate(
        {
            "source": {"type": "http_json", "url": f"{base}/value", "json_path": "$.data.amount"},
            "threshold": 100,
            "check_interval_minutes": 1,
            **fields,
        }
    )


async def start_threshold(
    env: WorkflowEnvironment,
    queue: str,
    config: ThresholdWatchConfig,
    state: ThresholdWatchState | None = None,
) -> WorkflowHandle[Any, Any]:
    task = unique("threshold-watch/alice/t")
    return await env.client.start_workflow(
        ThresholdWatchWorkflow.run,
        ThresholdWatchInput(user=USER, task=task, config=config, state=state),
        id=task,
        task_queue=queue,
    )


async def test_breach_and_recovery_notify_once_each(
    ts_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    state, base = site
    state.values = [90, 120, 130, 140, 80, 70, 60]
    async with running_worker(ts_env.client, loopback_deps) as worker:
        handle = await start_threshold(ts_env, worker.task_queue, threshold(base))
        status = await checks_reach(ts_env, handle, 7)
        await handle.signal("stop")
        await handle.result()
    await save_history(handle, "threshold_watch")
    assert status.detail["breaches_total"] == 1
    assert [v for _, v in status.detail["values"]] == [90, 120, 130, 140, 80, 70, 60]  # type: ignore[union-attr,attr-defined]
    assert await kinds(loopback_deps, handle.id) == [
        "watch.breach",
        "watch.recovery",
        "watch.stopped",
    ]
    titles = await inbox_titles(loopback_deps)
    assert [t.split(":")[0] for t in titles] == ["Breach", "Recovered"]


async def test_a_breach_says_the_value_and_the_line_as_read_not_rounded(
    ts_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    # Told with 6 significant digits: "value 98765.4 (above 50000.2)"; 52428800 bytes of a
    # Cloud Monitor metric read "5.24288e+07". Said after what crossed: several watches of one
    # kind read alike by their values.
    state, base = site
    state.values = [49999.99, 98765.43]
    config = threshold(base, threshold=50000.25)
    async with running_worker(ts_env.client, loopback_deps) as worker:
        handle = await start_threshold(ts_env, worker.task_queue, config)
        await checks_reach(ts_env, handle, 2)
        await handle.signal("stop")
        await handle.result()
    async with loopback_deps.db.session() as session:
        messages = await InboxRepository(session).list(USER, limit=10)
    assert [(m.title, m.body) for m in messages] == [
        (
            f"Breach: {handle.id}",
            f"$.data.amount of {base}/value: value 98765.43 (rule: above 50000.25)",
        )
    ]


async def test_a_breach_is_said_in_chinese_to_a_user_who_reads_chinese(
    ts_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    await reads_chinese(loopback_deps)
    state, base = site
    state.values = [49999.99, 98765.43, 100]
    async with running_worker(ts_env.client, loopback_deps) as worker:
        handle = await start_threshold(
            ts_env, worker.task_queue, threshold(base, threshold=50000.25)
        )
        await checks_reach(ts_env, handle, 3)
        await handle.signal("stop")
        await handle.result()
    async with loopback_deps.db.session() as session:
        messages = await InboxRepository(session).list(USER, limit=10)
    # Its line in the words the task page says it (it said "above 50000.25").
    assert [(m.title, m.body) for m in reversed(messages)] == [
        (
            f"越限告警：{handle.id}",
            f"{base}/value 的 $.data.amount：当前值 98765.43（规则：高于 50000.25）",
        ),
        (
            f"已恢复：{handle.id}",
            f"{base}/value 的 $.data.amount：当前值 100（规则：高于 50000.25）",
        ),
    ]


@pytest.mark.parametrize(("combine", "joined"), [("any", "或"), ("all", "且")])
async def test_a_chinese_readers_alerts_join_the_lines_as_they_combine(
    ts_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,
    site: tuple[Site, str],
    combine: str,
    joined: str,
) -> None:
    """A breach names the lines it passed, a recovery every line, joined by 或 (any) or 且
    (all), as the task's summary on its page says them."""
    await reads_chinese(loopback_deps)
    state, base = site
    state.values = [50, 120, 80] if combine == "any" else [50, 150, 80]
    lines = [{"op": "above", "value": 100}, {"op": "below", "value": 10}]
    if combine == "all":
        lines = [{"op": "above", "value": 100}, {"op": "below", "value": 200}]
    config = threshold(base, conditions=lines, threshold=None, combine=combine)
    async with running_worker(ts_env.client, loopback_deps) as worker:
        handle = await start_threshold(ts_env, worker.task_queue, config)
        await checks_reach(ts_env, handle, 3)
        await handle.signal("stop")
        await handle.result()
    async with loopback_deps.db.session() as session:
        messages = await InboxRepository(session).list(USER, limit=10)
    said = f"{base}/value 的 $.data.amount"
    second = "低于 10" if combine == "any" else "低于 200"
    breach = "高于 100" if combine == "any" else f"高于 100 {joined} {second}"
    value = 120 if combine == "any" else 150
    assert [(m.title, m.body) for m in reversed(messages)] == [
        (f"越限告警：{handle.id}", f"{said}：当前值 {value}（规则：{breach}）"),
        (f"已恢复：{handle.id}", f"{said}：当前值 80（规则：高于 100 {joined} {second}）"),
    ]
    # And in English, the lines joined as they combine (a recovery's had read "value 80
    # (above 100, below 10)").
    english = {"any": "or", "all": "and"}[combine]
    await reads_chinese(loopback_deps, Language.EN)
    state.values, state.value_reads = [50, value, 80], 0
    async with running_worker(ts_env.client, loopback_deps) as worker:
        handle = await start_threshold(ts_env, worker.task_queue, config)
        await checks_reach(ts_env, handle, 3)
        await handle.signal("stop")
        await handle.result()
    async with loopback_deps.db.session() as session:
        recovered = (await InboxRepository(session).list(USER, limit=1))[0]
    lines = f"above 100 {english} {second.replace('低于', 'below')}"
    assert recovered.body == f"$.data.amount of {base}/value: value 80 (rule: {lines})"


async def test_cooldown_suppresses_a_second_breach(
    ts_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    state, base = site
    state.values = [120, 80, 130, 70, 60]
    async with running_worker(ts_env.client, loopback_deps) as worker:
        handle = await start_threshold(
            ts_env, worker.task_queue, threshold(base, cooldown_minutes=60)
        )
        await checks_reach(ts_env, handle, 5)
    assert await kinds(loopback_deps, handle.id) == ["watch.breach", "watch.recovery"]


async def test_a_breach_inside_the_cooldown_that_outlasts_it_is_told_when_it_ends(
    ts_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    """Breach, recovery, then over the line again inside the cooldown and for good: the
    owner's last word was "Recovered" while the metric stayed over the line for hours. The
    cooldown holds a second alert back; it does not drop one that is still true."""
    state, base = site
    state.values = [120, 80, 130]  # then 130 at every check
    async with running_worker(ts_env.client, loopback_deps) as worker:
        handle = await start_threshold(
            ts_env, worker.task_queue, threshold(base, cooldown_minutes=5)
        )
        status = await checks_reach(ts_env, handle, 12)
        await handle.signal("stop")
        await handle.result()
    await save_history(handle, "threshold_watch_breach_after_cooldown")
    assert status.detail["breaching"] is True and status.detail["breaches_total"] == 2
    assert await kinds(loopback_deps, handle.id) == [
        "watch.breach",
        "watch.recovery",
        "watch.breach",
        "watch.stopped",
    ]


async def test_failures_notify_failing_once_then_recovered_once(
    ts_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    state, base = site
    state.values = [None, None, None, None, None, 50]
    async with running_worker(ts_env.client, loopback_deps) as worker:
        handle = await start_threshold(
            ts_env, worker.task_queue, threshold(base, failure_threshold=3)
        )
        await checks_reach(ts_env, handle, 7)
    assert await kinds(loopback_deps, handle.id) == ["watch.failing", "watch.recovered"]


async def test_a_failed_read_inside_a_for_run_neither_counts_nor_breaks_it(
    ts_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    """for_checks 3 counts breaching readings: a read that failed between them (HTTP 500) is
    no reading, over or under the line; the third breaching one alerts."""
    state, base = site
    state.values = [120, None, 120, None, 120, 90]
    async with running_worker(ts_env.client, loopback_deps) as worker:
        config = threshold(base, for_checks=3, failure_threshold=5)
        handle = await start_threshold(ts_env, worker.task_queue, config)
        after_two = await checks_reach(ts_env, handle, 4)
        assert after_two.detail["breaching"] is False
        status = await checks_reach(ts_env, handle, 6)
        await handle.signal("stop")
        await handle.result()
    assert status.detail["breaches_total"] == 1
    assert await kinds(loopback_deps, handle.id) == [
        "watch.breach",
        "watch.recovery",
        "watch.stopped",
    ]


async def test_pause_stops_checks_and_resume_restarts_them(
    ts_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    state, base = site
    state.values = [50]
    async with running_worker(ts_env.client, loopback_deps) as worker:
        handle = await start_threshold(ts_env, worker.task_queue, threshold(base))
        await checks_reach(ts_env, handle, 2)
        await handle.signal("pause")
        paused = await ask(handle, "status", result_type=TaskStatus)
        await ts_env.sleep(timedelta(minutes=30))
        still = await ask(handle, "status", result_type=TaskStatus)
        assert paused.state == "paused" and still.checks == paused.checks
        await handle.signal("resume")
        resumed = await checks_reach(ts_env, handle, paused.checks + 2)
        assert resumed.state == "active"
    assert await kinds(loopback_deps, handle.id) == ["watch.paused", "watch.resumed"]


async def test_update_validator_rejects_interval_under_a_minute(
    ts_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    state, base = site
    state.values = [50]
    async with running_worker(ts_env.client, loopback_deps) as worker:
        config = threshold(base)
        handle = await start_threshold(ts_env, worker.task_queue, config)
        bad = config.model_dump(mode="json") | {"check_interval_minutes": 0.5}
        with pytest.raises(WorkflowUpdateFailedError) as failure:
            await handle.execute_update("update_config", bad, id="u1")
        assert "check_interval_minutes" in str(failure.value.cause)
        status = await ask(handle, "status", result_type=TaskStatus)
        assert status.config["check_interval_minutes"] == 1
        good = config.model_dump(mode="json") | {"check_interval_minutes": 5}
        await handle.execute_update("update_config", good, id="u2")
        status = await ask(handle, "status", result_type=TaskStatus)
        assert status.config["check_interval_minutes"] == 5


async def test_continued_state_carries_breach_and_counts(
    ts_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    """What continue-as-new hands over: still in breach, so a high value does not re-alert."""
    state, base = site
    state.values = [150, 150, 40]
    carried = ThresholdWatchState(checks=41, rule=ThresholdState(breaching=True), breaches_total=3)
    async with running_worker(ts_env.client, loopback_deps) as worker:
        handle = await start_threshold(ts_env, worker.task_queue, threshold(base), carried)
        status = await checks_reach(ts_env, handle, 44)
        # The count shows a check once it begins; its event is recorded as it ends.
        for _ in range(100):
            if await kinds(loopback_deps, handle.id):
                break
            await asyncio.sleep(0.05)
    assert status.detail["breaches_total"] == 3
    assert await kinds(loopback_deps, handle.id) == ["watch.recovery"]


async def test_watch_started_without_a_source_reports_it_and_reads_once_given_one(
    ts_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    """Started around the service (a named metric never resolved): failed readings, not a
    workflow task that fails forever; update_config gives the source and the watch reads."""
    state, base = site
    state.values = [50]
    named = ThresholdWatchConfig.model_validate(
        {"metric": "bitcoin_price", "threshold": 100, "check_interval_minutes": 1}
    )
    async with running_worker(ts_env.client, loopback_deps) as worker:
        handle = await start_threshold(ts_env, worker.task_queue, named)
        first = await handle.execute_update("baseline", result_type=TaskStatus)
        assert first.detail["last_error"] == (
            "source: no metric source (named metrics resolve at the API)"
        )
        assert first.detail["last_value"] is None
        await handle.execute_update("update_config", threshold(base).model_dump(mode="json"))
        status = await checks_reach(ts_env, handle, first.checks + 1)
        assert status.detail["last_value"] == 50 and status.detail["last_error"] is None


class TwoSources:
    """/old answers 90 until ``hold`` is set, then holds its answers until ``release`` and
    says 150; /new answers 50."""

    def __init__(self) -> None:
        self.held = 0
        self.hold, self.release = asyncio.Event(), asyncio.Event()

    async def old(self, request: Request) -> Response:
        if not self.hold.is_set():
            return JSONResponse({"data": {"amount": "90"}})
        self.held += 1
        await self.release.wait()
        return JSONResponse({"data": {"amount": "150"}})

    async def new(self, request: Request) -> Response:
        return JSONResponse({"data": {"amount": "50"}})


async def test_a_reading_of_the_replaced_source_is_not_judged_as_the_new_sources(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,
    product_local_read_limit: None,
) -> None:
    """The owner moves the watch to another metric while a check reads the old one: that
    reading (150, over the line) was judged by the new metric's fresh rule, "Breach" for a
    metric at 50 (then "Recovered" at the next check), and check now answered it."""
    sources = TwoSources()
    app = Starlette(routes=[Route("/old", sources.old), Route("/new", sources.new)])
    async with serve(app) as base:
        old = {"type": "http_json", "url": f"{base}/old", "json_path": "$.data.amount"}
        new = {"type": "http_json", "url": f"{base}/new", "json_path": "$.data.amount"}
        async with running_worker(dev_env.client, loopback_deps) as worker:
            handle = await start_threshold(dev_env, worker.task_queue, threshold(base, source=old))
            await handle.execute_update("baseline", result_type=TaskStatus)  # 90: within
            sources.hold.set()
            asked = await handle.start_update(
                "checked_now", wait_for_stage=WorkflowUpdateStage.ACCEPTED, result_type=TaskStatus
            )

            async def reading() -> bool:
                # The local read, cut off after its limit, then the activity's read.
                return sources.held >= 2

            await eventually(reading, "the check's activity reading /old")
            config = threshold(base, source=new).model_dump(mode="json")
            await handle.execute_update("update_config", config)
            sources.release.set()  # the old metric's read answers 150
            # Check now answers the check of the metric the watch reads now.
            answer = await asked.result()
            await handle.signal("stop")
            await handle.result()
    await save_history(handle, "threshold_watch_source_replaced_mid_read")
    assert answer.config["source"]["url"] == f"{base}/new"
    assert (answer.detail["last_value"], answer.detail["breaching"]) == (50, False), answer.detail
    assert await kinds(loopback_deps, handle.id) == ["watch.stopped"]
