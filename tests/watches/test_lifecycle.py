"""A watch's life under time skipping: failures are data, keys belong to one life,
triggers queue, the baseline is taken at once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest_asyncio
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from ambient.clients.notify.registry import build_channels
from ambient.deps import WorkerDeps
from ambient.storage.repositories import InboxRepository
from ambient.watches.models import TaskStatus, ThresholdWatchInput
from ambient.watches.page_changes import EXCERPT_LINES
from ambient.watches.reminders import ReminderConfig, ReminderRun
from tests.conftest import running_worker, unique
from tests.support.record import save_history
from tests.support.servers import serve
from tests.support.users import register
from tests.support.waits import ask
from tests.watches.site import Site, article
from tests.watches.test_workflows import (
    USER,
    checks_reach,
    inbox_titles,
    kinds,
    loopback_deps,  # noqa: F401  (fixture)
    reads_chinese,
    threshold,
)
from workflows.reminder import ReminderWorkflow
from workflows.threshold_watch import ThresholdWatchWorkflow


@dataclass
class GatedSite(Site):
    """The test site, plus a metric that can answer HTML and a gate that holds reads."""

    html: bool = False
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: asyncio.Event = field(default_factory=asyncio.Event)

    hooks: list[bytes] = field(default_factory=list)
    hook_gate: asyncio.Event = field(default_factory=asyncio.Event)
    hook_waiting: asyncio.Event = field(default_factory=asyncio.Event)
    hook_status: int = 200  # what the webhook answers once its gate opens
    # Pages are held while page_gate is closed; page_waiting says one is asked for.
    page_gate: asyncio.Event = field(default_factory=asyncio.Event)
    page_waiting: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.gate.set()
        self.hook_gate.set()
        self.page_gate.set()

    async def page(self, request: Request) -> Response:
        self.page_waiting.set()
        await self.page_gate.wait()
        return await super().page(request)

    def app(self) -> Starlette:
        app = super().app()
        app.router.routes.insert(0, Route("/hook", self.hook, methods=["POST"]))
        return app

    async def hook(self, request: Request) -> Response:
        """A webhook target that holds each delivery until its gate opens."""
        self.hook_waiting.set()
        await self.hook_gate.wait()
        self.hooks.append(await request.body())
        return Response("ok", status_code=self.hook_status)

    async def value(self, request: Request) -> Response:
        self.waiting.set()
        await self.gate.wait()
        if self.html:
            return Response("<html><body>Maintenance</body></html>", media_type="text/html")
        return await super().value(request)


@pytest_asyncio.fixture
async def gated() -> AsyncIterator[tuple[GatedSite, str]]:
    state = GatedSite()
    async with serve(state.app()) as base:
        yield state, base


async def start_watch(
    env: WorkflowEnvironment, queue: str, base: str, task: str | None = None, **fields: Any
) -> WorkflowHandle[Any, Any]:
    task = task or unique("threshold-watch/alice/t")
    return await env.client.start_workflow(
        ThresholdWatchWorkflow.run,
        ThresholdWatchInput(user=USER, task=task, config=threshold(base, **fields)),
        id=task,
        task_queue=queue,
    )


async def test_metric_source_answering_html_is_a_failed_reading_and_the_watch_goes_on(
    ts_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],
) -> None:
    state, base = gated
    state.html, state.values = True, [50]
    async with running_worker(ts_env.client, loopback_deps) as worker:
        handle = await start_watch(ts_env, worker.task_queue, base, failure_threshold=2)
        status = await checks_reach(ts_env, handle, 3)
        state.html = False
        # The check after the next: the next may have read the HTML before the flip.
        recovered = await checks_reach(ts_env, handle, status.checks + 2)
        running = (await handle.describe()).status
    assert status.state == "active" and status.detail["failing"] is True
    assert status.detail["last_error"] == (
        "the source answered text/html, not JSON: <html><body>Maintenance</body></html>"
    )
    assert recovered.detail["last_value"] == 50 and recovered.detail["failing"] is False
    assert running is WorkflowExecutionStatus.RUNNING
    assert await kinds(loopback_deps, handle.id) == ["watch.failing", "watch.recovered"]


def hook(base: str, deps: WorkerDeps) -> list[dict[str, str]]:
    """A loopback webhook target (the deps' channels allowed to reach it)."""
    deps.channels = build_channels(deps.settings, deps.db, deps.http)
    return [{"type": "webhook", "target": f"{base}/hook"}]


def told(state: GatedSite) -> list[str]:
    """The titles the loopback webhook received, in order, without their task."""
    return [str(json.loads(body)["title"]).split(":")[0] for body in state.hooks]


async def test_reads_coming_back_during_a_breach_are_told_as_reading_again(
    ts_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],
) -> None:
    """120 (breach), three failed reads (failing), then 130: the metric never left its line,
    and its owner's last word was "Recovered", as a recovery from the breach says."""
    state, base = gated
    state.values = [50, 120, None, None, None, 130]
    async with running_worker(ts_env.client, loopback_deps) as worker:
        handle = await start_watch(ts_env, worker.task_queue, base, failure_threshold=3)
        status = await checks_reach(ts_env, handle, 7)
        await handle.signal("stop")
        await handle.result()
    assert status.detail["breaching"] is True and status.detail["last_value"] == 130
    assert await kinds(loopback_deps, handle.id) == [
        "watch.breach",
        "watch.failing",
        "watch.recovered",
        "watch.stopped",
    ]
    async with loopback_deps.db.session() as session:
        messages = list(reversed(await InboxRepository(session).list(USER, limit=10)))
    assert [m.title.split(":")[0] for m in messages] == ["Breach", "Failing", "Reading again"]
    assert messages[-1].body == "The metric reads again: value 130."


async def test_a_chinese_readers_failing_alert_says_why_in_chinese(
    ts_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],
) -> None:
    """The task page says the failure in Chinese; the push to the same reader said it in
    English inside the Chinese sentence."""
    await reads_chinese(loopback_deps)
    state, base = gated
    state.html, state.values = True, [50]
    async with running_worker(ts_env.client, loopback_deps) as worker:
        handle = await start_watch(ts_env, worker.task_queue, base, failure_threshold=1)
        await checks_reach(ts_env, handle, 2)
        await handle.signal("stop")
        await handle.result()
    async with loopback_deps.db.session() as session:
        (message,) = await InboxRepository(session).list(USER, limit=10)
    assert message.title == f"读取失败：{handle.id}"
    said = "数据源答复的是 text/html，不是 JSON：<html><body>Maintenance</body></html>"
    assert message.body == f"连续 1 次读取失败：{said}"


async def test_paused_in_breach_resumed_after_recovery_tells_the_recovery_once(
    ts_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],
) -> None:
    state, base = gated
    state.values = [50, 120]
    targets = hook(base, loopback_deps)  # before the worker: its channels reach it
    async with running_worker(ts_env.client, loopback_deps) as worker:
        handle = await start_watch(ts_env, worker.task_queue, base, targets=targets)
        await checks_reach(ts_env, handle, 3)
        await handle.signal("pause")
        state.values, state.value_reads = [80], 0
        await ts_env.sleep(timedelta(minutes=30))
        await handle.signal("resume")
        status = await checks_reach(ts_env, handle, 5)
        await handle.signal("stop")
        await handle.result()
    assert status.detail["breaching"] is False
    assert told(state) == ["Breach", "Recovered"]


async def test_a_line_raised_during_a_breach_neither_re_alerts_nor_loses_the_recovery(
    ts_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],
) -> None:
    state, base = gated
    state.values = [50, 120]
    targets = hook(base, loopback_deps)  # before the worker: its channels reach it
    async with running_worker(ts_env.client, loopback_deps) as worker:
        handle = await start_watch(ts_env, worker.task_queue, base, targets=targets)
        await checks_reach(ts_env, handle, 3)
        new = threshold(base, threshold=110, targets=targets).model_dump(mode="json")
        await handle.execute_update("update_config", new, id="raise")
        await checks_reach(ts_env, handle, 6)
        state.values, state.value_reads = [105], 0
        status = await checks_reach(ts_env, handle, 9)
        await handle.signal("stop")
        await handle.result()
    assert status.detail["breaching"] is False
    assert told(state) == ["Breach", "Recovered"]


async def test_delivery_that_fails_for_good_is_counted_and_the_watch_goes_on(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, gated: tuple[GatedSite, str]
) -> None:
    """The inbox of a user who does not exist refuses the message (FOREIGN KEY)."""
    state, base = gated
    state.values = [120, 130, 140]
    deps.settings = deps.settings.model_copy(update={"fetch_allow_cidrs": ["127.0.0.1/32"]})
    async with running_worker(ts_env.client, deps) as worker:
        handle = await start_watch(ts_env, worker.task_queue, base)
        status = await checks_reach(ts_env, handle, 3)
        running = (await handle.describe()).status
        await handle.signal("stop")
        final: TaskStatus = await handle.result()
    assert running is WorkflowExecutionStatus.RUNNING
    assert status.state == "active" and status.detail["breaches_total"] == 1
    assert status.detail["delivery_failures"] == 1
    failure: Any = status.detail["last_failure"]
    assert failure["what"] == "delivery of watch.breach" and failure["error"]
    assert final.state == "stopped"
    # The refused delivery is filed under the watch too, before the watch's own record.
    assert await kinds(deps, handle.id) == [
        "watch.breach",
        "delivery.failed",
        "watch.delivery_failed",
        "watch.stopped",
    ]


async def test_event_that_cannot_be_recorded_is_counted_and_the_watch_goes_on(
    ts_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],
) -> None:
    state, base = gated
    state.values = [50, 50, 120, 120, 120]
    async with loopback_deps.db.session() as session:
        await session.execute(text("ALTER TABLE events RENAME TO events_away"))
        await session.commit()
    async with running_worker(ts_env.client, loopback_deps) as worker:
        handle = await start_watch(ts_env, worker.task_queue, base)
        status = await checks_reach(ts_env, handle, 4)
        async with loopback_deps.db.session() as session:
            await session.execute(text("ALTER TABLE events_away RENAME TO events"))
            await session.commit()
        await handle.signal("stop")
        final: TaskStatus = await handle.result()
    assert status.state == "active" and status.detail["event_failures"] == 1
    failure: Any = status.detail["last_failure"]
    assert failure["what"] == "event watch.breach" and "events" in failure["error"]
    assert final.state == "stopped" and final.checks >= 4
    # The delivery still went out; the stop was recorded once the table was back.
    assert [t.split(":")[0] for t in await inbox_titles(loopback_deps)] == ["Breach"]
    assert await kinds(loopback_deps, handle.id) == ["watch.stopped"]


async def test_task_created_again_alerts_again_in_its_new_life(
    ts_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],
) -> None:
    state, base = gated
    state.values = [150]
    task = unique("threshold-watch/alice/again")
    lives = []
    async with running_worker(ts_env.client, loopback_deps) as worker:
        for _ in range(2):
            handle = await start_watch(ts_env, worker.task_queue, base, task=task)
            status = await checks_reach(ts_env, handle, 1)
            lives.append(status.detail["life"])
            await handle.signal("stop")
            await handle.result()
    assert lives[0] != lives[1]
    assert await kinds(loopback_deps, task) == [
        "watch.breach",
        "watch.stopped",
        "watch.breach",
        "watch.stopped",
    ]
    titles = await inbox_titles(loopback_deps)
    assert [t.split(":")[0] for t in titles] == ["Breach", "Breach"]


async def test_trigger_during_a_check_runs_another_check_right_after_it(
    ts_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],
) -> None:
    """The trigger lands while the first check is still delivering its breach alert."""
    state, base = gated
    state.values = [150, 160, 170]
    deps = loopback_deps
    deps.channels = build_channels(deps.settings, deps.db, deps.http)
    state.hook_gate.clear()
    hook = [{"type": "webhook", "target": f"{base}/hook"}]
    async with running_worker(ts_env.client, deps) as worker:
        handle = await start_watch(ts_env, worker.task_queue, base, targets=hook)
        started = (await handle.describe()).start_time
        await state.hook_waiting.wait()  # the first check is delivering its alert
        await handle.signal("check_now")
        status = await ask(handle, "status", result_type=TaskStatus)
        assert status.checks == 1
        state.hook_gate.set()
        status = await checks_reach(ts_env, handle, 2)
        while status.detail["last_value"] != 160:  # the second check's reading lands
            await ts_env.sleep(timedelta(seconds=1))
            status = await ask(handle, "status", result_type=TaskStatus)
        await handle.signal("stop")
        await handle.result()
    await save_history(handle, "threshold_watch_queued_trigger")  # type: ignore[arg-type]
    second = datetime.fromisoformat(str(status.detail["last_checked_at"]))
    # Queued, not lost: the interval is a minute, the second check came with the first.
    assert second - started < timedelta(seconds=30)


async def two_digest_runs(
    env: WorkflowEnvironment,
    deps: WorkerDeps,
    state: GatedSite,
    base: str,
    after: str,
    categories: tuple[str, ...] = (),
) -> tuple[str, list[str]]:
    """A news digest of ``base``/front run twice, the page ``after`` between the runs: its
    task and the two runs' bodies."""
    config = ReminderConfig.model_validate(
        {
            "action": "news_digest",
            "news_urls": [f"{base}/front"],
            "hour": 8,
            "categories": list(categories),
        }
    )
    task = unique("reminder/alice/digest")
    bodies = []
    async with running_worker(env.client, deps) as worker:
        for day in range(2):
            bodies.append(
                await env.client.execute_workflow(
                    ReminderWorkflow.run,
                    ReminderRun(user=USER, task=task, config=config),
                    id=f"{task}/run-{day}",
                    task_queue=worker.task_queue,
                )
            )
            state.pages["/front"] = after
    return task, bodies


async def test_news_digest_second_run_reports_what_changed_since_the_first(
    ts_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],
) -> None:
    state, base = gated
    state.pages["/front"] = article("Old story about rivers.")
    after = article("Old story about rivers.", "New bridge opens.")
    task, bodies = await two_digest_runs(ts_env, loopback_deps, state, base, after)
    await save_history(ts_env.client.get_workflow_handle(f"{task}/run-1"), "reminder_news_digest")
    assert "first look taken" in bodies[0]
    assert "first look" not in bodies[1] and "New bridge opens." in bodies[1]


async def test_a_digest_tells_every_new_headline_then_how_many_more(
    ts_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],
) -> None:
    """A page with 8 new headlines was told in 5, the other 3 never (the next run compares
    with the page as stored), and nothing said that any were left out."""
    await reads_chinese(loopback_deps)
    state, base = gated
    new = [f"Headline number {n} of the day." for n in range(1, 21)]
    for count, more in ((8, 0), (20, 20 - EXCERPT_LINES)):
        state.pages["/front"] = article("Old story about rivers.")
        after = article("Old story about rivers.", *new[:count])
        _task, bodies = await two_digest_runs(ts_env, loopback_deps, state, base, after)
        told = [line for line in new[:count] if f"- {line}" in bodies[1]]
        assert told == new[: min(count, EXCERPT_LINES)], bodies[1]
        said = f"… and {more} more new lines"
        assert bodies[1].endswith(said) if more else "more" not in bodies[1], bodies[1]
    async with loopback_deps.db.session() as session:
        sent = (await InboxRepository(session).list(USER, limit=1))[0]
    assert sent.body.endswith(f"……另有 {20 - EXCERPT_LINES} 行新内容"), sent.body


async def test_a_digest_page_that_only_lost_lines_says_nothing_new(
    ts_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],
) -> None:
    """A page whose changes were only removals was a section of its address alone."""
    await reads_chinese(loopback_deps)
    state, base = gated
    state.pages["/front"] = article("Old story about rivers.", "Another old story.")
    after = article("Old story about rivers.")
    _task, bodies = await two_digest_runs(ts_env, loopback_deps, state, base, after)
    assert bodies[1] == f"**{base}/front**: nothing new", bodies[1]
    async with loopback_deps.db.session() as session:
        sent = (await InboxRepository(session).list(USER, limit=1))[0]
    assert sent.body == f"**{base}/front**：没有新内容", sent.body


async def test_a_digests_categories_keep_out_news_of_other_topics(
    ts_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],
) -> None:
    """categories are the news a digest keeps: a day with none of them listed every new line
    of every topic."""
    await reads_chinese(loopback_deps)
    state, base = gated
    state.pages["/front"] = article("昨日旧闻。")
    after = article("昨日旧闻。", "某明星官宣结婚。", "足球联赛第十轮战报。")
    _task, bodies = await two_digest_runs(
        ts_env, loopback_deps, state, base, after, ("价格", "油价")
    )
    assert bodies[1] == f"**{base}/front**: nothing new in your categories", bodies[1]
    async with loopback_deps.db.session() as session:
        sent = (await InboxRepository(session).list(USER, limit=1))[0]
    assert sent.body == f"**{base}/front**：你关注的类别没有新内容", sent.body


async def test_webhook_that_refuses_connections_uses_up_retries_and_the_watch_goes_on(
    ts_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],
) -> None:
    state, base = gated
    state.values = [120, 130, 40, 30]
    deps = loopback_deps
    # The registry's guards read the settings they were built with: allow loopback targets.
    deps.channels = build_channels(deps.settings, deps.db, deps.http)
    refused = [{"type": "webhook", "target": "http://127.0.0.1:9/hook"}]
    async with running_worker(ts_env.client, deps) as worker:
        handle = await start_watch(ts_env, worker.task_queue, base, targets=refused)
        status = await checks_reach(ts_env, handle, 4)
        running = (await handle.describe()).status
        await handle.signal("stop")
        await handle.result()
    await save_history(handle, "threshold_watch_delivery_failed")  # type: ignore[arg-type]
    assert running is WorkflowExecutionStatus.RUNNING
    assert status.state == "active" and status.detail["breaching"] is False
    # Breach and recovery were each announced; each delivery failed and was counted.
    assert status.detail["delivery_failures"] == 2
    failure: Any = status.detail["last_failure"]
    assert failure["what"] == "delivery of watch.recovery"
    # Each delivery's failures, filed under the watch: retrying, then given up.
    assert await kinds(deps, handle.id) == [
        "watch.breach",
        "delivery.failed",
        "delivery.failed",
        "watch.delivery_failed",
        "watch.recovery",
        "delivery.failed",
        "delivery.failed",
        "watch.delivery_failed",
        "watch.stopped",
    ]


async def test_create_answers_created_when_no_worker_takes_the_baseline(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """No worker polls yet: the task exists and says so; its baseline comes with the worker."""
    from ambient.briefing.service import BriefingService
    from ambient.watches.service import TaskService as Service

    settings = deps.settings.model_copy(update={"temporal_task_queue": unique("idle-tq")})
    briefings = BriefingService(dev_env.client, settings, deps.db)
    service = Service(dev_env.client, settings, deps.db, briefings=briefings, baseline_wait=0.5)
    user = unique("idle")
    await register(deps.db, user)
    ref = await service.create(
        user,
        "web_monitor",
        {"urls": ["https://example.com/"], "check_interval_minutes": 5},
    )
    assert ref.created is True and ref.baseline is None
    await dev_env.client.get_workflow_handle(ref.task_id).terminate("test over")


async def test_a_digests_hits_past_those_shown_are_counted_in_the_readers_language(
    ts_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    gated: tuple[GatedSite, str],
) -> None:
    """A Chinese reader's digest said "… 2 more lines" in English after a category's hits."""
    await reads_chinese(loopback_deps)
    state, base = gated
    state.pages["/front"] = article("昨日旧闻。")
    prices = [f"第 {n} 条油价新闻。" for n in range(1, 8)]
    after = article("昨日旧闻。", *prices)
    _task, bodies = await two_digest_runs(ts_env, loopback_deps, state, base, after, ("油价",))
    assert bodies[1].endswith("- [油价] … 2 more lines"), bodies[1]
    async with loopback_deps.db.session() as session:
        sent = (await InboxRepository(session).list(USER, limit=1))[0]
    assert sent.body.endswith("- [油价] ……另有 2 行"), sent.body
    assert "- [油价] 第 1 条油价新闻。" in sent.body
