"""Web monitors poll in a long-running activity: on the dev server, in real (short) time."""

# ruff: noqa: F811 - the fixtures `site` and `loopback_deps` are imported and used by name

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from functools import partial
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    WorkflowHandle,
    WorkflowHistory,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

import activities.polling as polling
from activities import poll_upkeep
from activities.polling import PagePoller
from ambient.deps import WorkerDeps
from ambient.storage import Database
from ambient.storage.repositories import DeliveryRepository, EventRepository, InboxRepository
from ambient.watches.configs import WebMonitorConfig
from ambient.watches.models import TaskStatus, WebMonitorInput
from ambient.watches.polling import EndPoll, PollRequest, PollResult
from tests.conftest import running_worker, unique
from tests.support.record import save_history
from tests.support.servers import HANG, free_port, serve
from tests.support.waits import ask, eventually
from tests.watches.site import Site, article
from tests.watches.test_workflows import (  # noqa: F401  (fixtures)
    USER,
    loopback_deps,
    reads_chinese,
    site,
)


def fast(urls: list[str], **fields: Any) -> WebMonitorConfig:
    return WebMonitorConfig.model_validate({"urls": urls, "check_interval_minutes": 1, **fields})


async def start(
    env: WorkflowEnvironment,
    queue: str,
    config: WebMonitorConfig,
    *,
    every: float = 0.5,
    window: float | None = 3.0,
    task: str | None = None,
    **extra: Any,
) -> WorkflowHandle[Any, Any]:
    """A web monitor checked every ``every`` seconds (below the product minimum: tests only)."""
    task = task or unique(f"web-monitor/{USER}/p")
    return await env.client.start_workflow(
        "WebMonitorWorkflow",
        WebMonitorInput(
            user=USER,
            task=task,
            config=config,
            poll_window_seconds=window,
            check_interval_seconds=every,
            **extra,
        ),
        id=task,
        task_queue=queue,
    )


async def status(handle: WorkflowHandle[Any, Any]) -> TaskStatus:
    return await ask(handle, "status", result_type=TaskStatus)


async def events(deps: WorkerDeps, task: str) -> list[tuple[str, str | None]]:
    async with deps.db.session() as session:
        rows = await EventRepository(session).list(task=task, limit=1000)
    return [(row.kind, row.idempotency_key) for row in reversed(rows)]


async def poll_results(handle: WorkflowHandle[Any, Any]) -> list[PollResult]:
    """Every poll result recorded in the workflow's history."""
    history = await handle.fetch_history()
    converter = handle._client.data_converter  # decode as the workflow does
    polls, results = set(), []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            if event.activity_task_scheduled_event_attributes.activity_type.name == "poll_pages":
                polls.add(event.event_id)
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            done = event.activity_task_completed_event_attributes
            if done.scheduled_event_id in polls:
                (value,) = await converter.decode(done.result.payloads, [PollResult])
                results.append(value)
    return results


async def test_each_change_is_stored_notified_and_in_history_once(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    state, base = site
    state.pages["/news"] = article("First headline.")
    async with running_worker(dev_env.client, loopback_deps) as worker:
        handle = await start(dev_env, worker.task_queue, fast([f"{base}/news"]))
        await eventually(lambda: _checks(handle, 1))
        for n in range(3):
            state.pages["/news"] = article(f"Headline number {n}.")
            await eventually(partial(_changes, handle, n + 1))
        await handle.signal("stop")
        final = TaskStatus.model_validate(await handle.result())
    await save_history(handle, "web_monitor")
    stored = await events(loopback_deps, handle.id)
    changes = [key for kind, key in stored if kind == "watch.change"]
    assert len(changes) == 3 and len(set(changes)) == 3
    results = await poll_results(handle)
    in_history = [e.key for r in results for e in r.events]
    assert in_history == changes
    assert final.detail["changes_total"] == 3
    assert sum(r.checks for r in results) == final.checks
    # Unchanged pages cost a conditional GET between the changes.
    assert ("/news", 304) in state.requests


async def _checks(handle: WorkflowHandle[Any, Any], n: int) -> bool:
    return (await status(handle)).checks >= n


async def _changes(handle: WorkflowHandle[Any, Any], n: int) -> bool:
    changes: Any = (await status(handle)).detail["changes_total"]
    return int(changes) >= n


async def test_keyword_hits_on_new_text_are_reported_once(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    state, base = site
    state.pages["/news"] = article("AI beats humans at chess.", "Weather is sunny.")
    state.pages["/blog"] = article("Nothing to see.")
    config = fast([f"{base}/news", f"{base}/blog"], keywords=["machine learning"])
    async with running_worker(dev_env.client, loopback_deps) as worker:
        handle = await start(dev_env, worker.task_queue, config)
        await eventually(lambda: _checks(handle, 2))
        state.pages["/news"] = article(
            "AI beats humans at chess.", "A machine learning chip ships."
        )
        await handle.signal("check_now")
        await eventually(lambda: _changes(handle, 1))
        await eventually(lambda: _checks(handle, 6))
        await handle.signal("stop")
        final = TaskStatus.model_validate(await handle.result())
    await save_history(handle, "web_monitor_keywords")
    assert final.detail["hits_total"] == 1 and final.detail["changes_total"] == 1
    assert [kind for kind, _ in await events(loopback_deps, handle.id)] == [
        "watch.hit",
        "watch.stopped",
    ]
    assert await inbox_titles(loopback_deps) == [f"Keyword hit on {base}/news"]
    assert ("/blog", 304) in state.requests


async def test_a_keyword_hit_in_the_inbox_of_a_user_who_reads_chinese_is_said_in_chinese(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    # The inbox copy is stored with the event, not sent: it too is said in their language.
    await reads_chinese(loopback_deps)
    state, base = site
    state.pages["/news"] = article("AI beats humans at chess.")
    config = fast([f"{base}/news"], keywords=["machine learning"])
    async with running_worker(dev_env.client, loopback_deps) as worker:
        handle = await start(dev_env, worker.task_queue, config)
        await eventually(lambda: _checks(handle, 1))
        state.pages["/news"] = article(
            "AI beats humans at chess.", "A machine learning chip ships."
        )
        await handle.signal("check_now")
        await eventually(lambda: _changes(handle, 1))
        await handle.signal("stop")
        await handle.result()
    assert await inbox_titles(loopback_deps) == [f"关键词命中：{base}/news"]


async def test_a_failing_page_is_said_why_in_chinese_to_a_user_who_reads_chinese(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    """The task page says the failure in Chinese; the alert to the same reader said it in
    English inside the Chinese sentence ("最近一次错误：HTTP 404")."""
    await reads_chinese(loopback_deps)
    _, base = site
    config = fast([f"{base}/gone"], failure_threshold=1)
    async with running_worker(dev_env.client, loopback_deps) as worker:
        handle = await start(dev_env, worker.task_queue, config)
        await eventually(lambda: _kinds_include(loopback_deps, handle.id, "watch.failing"))
        await handle.signal("stop")
        await handle.result()
    async with loopback_deps.db.session() as session:
        (message,) = await InboxRepository(session).list(USER, limit=10)
    assert message.title == f"访问失败：{base}/gone"
    assert message.body == "连续 1 次检查失败。最近一次错误：服务器答复 HTTP 404"


async def test_first_check_is_the_baseline_taken_at_once_with_per_url_outcomes(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    state, base = site
    state.pages["/news"] = article("Markets are calm today.")
    config = fast([f"{base}/news", f"{base}/missing"])
    async with running_worker(dev_env.client, loopback_deps) as worker:
        # The product's interval (a minute): the baseline must not wait for it.
        handle = await start(dev_env, worker.task_queue, config, every=60.0, window=120.0)
        baseline = await handle.execute_update("baseline", result_type=TaskStatus)
        # A page that changes before the second check is reported, not taken as baseline.
        state.pages["/news"] = article("Markets are calm today.", "Rates rise by 1%.")
        await handle.signal("check_now")
        await eventually(lambda: _changes(handle, 1))
        later = await status(handle)
        await handle.signal("stop")
        await handle.result()
    await save_history(handle, "web_monitor_baseline")
    urls: Any = baseline.detail["urls"]
    assert baseline.checks == 1
    assert urls[f"{base}/news"]["last_outcome"] == "baseline"
    assert urls[f"{base}/missing"]["last_outcome"] == "error"
    assert "404" in urls[f"{base}/missing"]["last_error"]
    later_urls: Any = later.detail["urls"]
    assert later_urls[f"{base}/news"]["last_outcome"] == "changed"
    assert [kind for kind, _ in await events(loopback_deps, handle.id)] == [
        "watch.change",
        "watch.stopped",
    ]


async def inbox_titles(deps: WorkerDeps) -> list[str]:
    async with deps.db.session() as session:
        return [m.title for m in reversed(await InboxRepository(session).list(USER, limit=100))]


async def test_failing_and_recovered_are_told_once_each_and_handed_back_at_once(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    state, base = site
    state.pages["/news"] = article("All good.")
    config = fast([f"{base}/news"], failure_threshold=2)
    async with running_worker(dev_env.client, loopback_deps) as worker:
        # A long window: only the failure and the recovery can make the poll hand back.
        handle = await start(dev_env, worker.task_queue, config, window=600.0)
        await eventually(lambda: _checks(handle, 1))
        body = state.pages.pop("/news")  # 404 from now on
        await eventually(lambda: _kinds_include(loopback_deps, handle.id, "watch.failing"))
        failing = await eventually(lambda: _url_state(handle, f"{base}/news", "failing"))
        state.pages["/news"] = body
        await eventually(lambda: _kinds_include(loopback_deps, handle.id, "watch.recovered"))
        recovered = await eventually(lambda: _url_state(handle, f"{base}/news", "failures", 0))
        await handle.signal("stop")
        await handle.result()
    assert failing["last_outcome"] == "error" and "404" in failing["last_error"]
    assert recovered["failing"] is False
    kinds = [kind for kind, _ in await events(loopback_deps, handle.id)]
    assert kinds == ["watch.failing", "watch.recovered", "watch.stopped"]
    results = await poll_results(handle)
    ends = [r.ended for r in results]
    assert ends[:3] == ["first", "failure", "failure"] and ends[-1] == "control"
    assert [e.kind for r in results for e in r.events] == ["watch.failing", "watch.recovered"]
    titles = await inbox_titles(loopback_deps)
    assert titles == [f"Failing: {base}/news", f"Recovered: {base}/news"]


async def test_a_304_to_a_monitors_first_read_is_a_failed_check_not_a_page_not_modified(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps
) -> None:
    """A page server that answers 304 Not Modified though no validators were sent: the
    monitor recorded "not_modified" at every check and never took a baseline."""

    async def not_modified(_: Request) -> Response:
        return Response(status_code=304)

    whole = "the server answered 304 Not Modified to a request for the whole page"
    async with (
        serve(Starlette(routes=[Route("/{path:path}", not_modified)])) as base,
        running_worker(dev_env.client, loopback_deps) as worker,
    ):
        url = f"{base}/news"
        handle = await start(dev_env, worker.task_queue, fast([url], failure_threshold=2))
        first: Any = (await handle.execute_update("baseline", result_type=TaskStatus)).detail
        assert first["urls"][url]["last_outcome"] == "error", first["urls"][url]
        # The checks go on, each a failure, until the page is told failing.
        await eventually(lambda: _kinds_include(loopback_deps, handle.id, "watch.failing"))
        failing = await eventually(lambda: _url_state(handle, url, "failing"))
        await handle.signal("stop")
        await handle.result()
    assert first["urls"][url]["last_error"] == whole
    assert (failing["last_outcome"], failing["last_error"]) == ("error", whole)
    assert failing["failures"] >= 2 and failing["hash"] is None  # no baseline taken
    failed = [e for r in await poll_results(handle) for e in r.events]
    assert [(e.kind, e.payload["error"]) for e in failed] == [("watch.failing", whole)]


async def test_pause_update_trigger_and_stop_take_effect_without_waiting_for_the_window(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    state, base = site
    state.pages["/a"] = article("Page A.")
    state.pages["/b"] = article("Page B.")
    async with running_worker(dev_env.client, loopback_deps) as worker:
        # Checked every half second, in polls of ten minutes: a control that waited for the
        # window would fail this test.
        handle = await start(dev_env, worker.task_queue, fast([f"{base}/a"]), window=600.0)
        await eventually(lambda: _checks(handle, 1))
        await eventually(lambda: _fetched(state, "/a", 3))
        await handle.signal("pause")
        paused = await eventually(lambda: _ended(handle, 2))
        fetched = len(state.requests)
        await handle.signal("check_now")  # one check while paused
        await eventually(lambda: _ended(handle, 3))
        assert len(state.requests) == fetched + 1
        await handle.signal("resume")
        await eventually(lambda: _fetched(state, "/a", 6))
        update = fast([f"{base}/b"]).model_dump(mode="json")
        await handle.execute_update("update_config", update)
        await eventually(lambda: _fetched(state, "/b", 2))
        await handle.signal("stop")
        final = TaskStatus.model_validate(await handle.result())
    assert paused[-1].ended == "control"
    results = await poll_results(handle)
    assert all(r.ended in ("first", "control") for r in results)
    assert final.state == "stopped" and final.config["urls"] == [f"{base}/b"]


async def test_an_update_sent_in_temporal_with_a_keyword_nobody_can_see_is_rejected(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    # The Web UI's "update_config" is a door too: its validator reads the config by the same
    # rules as the service, so a keyword of a Hangul filler is refused there and never recorded.
    state, base = site
    state.pages["/a"] = article("Page A.")
    async with running_worker(dev_env.client, loopback_deps) as worker:
        handle = await start(dev_env, worker.task_queue, fast([f"{base}/a"], keywords=["AI"]))
        await eventually(lambda: _checks(handle, 1))
        update = {"urls": [f"{base}/a"], "check_interval_minutes": 1, "keywords": ["\u3164"]}
        with pytest.raises(WorkflowUpdateFailedError) as rejected:
            await handle.execute_update("update_config", update)
        said = str(rejected.value.cause)
        assert "a keyword of only invisible characters (U+3164) matches nothing" in said, said
        kept = await status(handle)
        await handle.signal("stop")
        await handle.result()
    assert kept.config["keywords"] == ["AI"]


async def test_a_watch_terminated_under_its_poll_stops_fetching_within_a_look(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,
    site: tuple[Site, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Terminate (the Web UI's button) closes the run without asking its poll to end; the poll
    # would fetch, and notify, until its next heartbeat (0.8 x its timeout: most of an hour).
    # The process running it asks the server which runs closed and ends their polls.
    monkeypatch.setattr(poll_upkeep, "CLOSED_EVERY", 1.0)
    state, base = site
    state.pages["/t"] = article("Terminated soon.")
    async with running_worker(dev_env.client, loopback_deps) as worker:
        handle = await start(dev_env, worker.task_queue, fast([f"{base}/t"]), window=600.0)
        await eventually(lambda: _fetched(state, "/t", 4))
        await handle.terminate("from the Web UI")

        deadline = time.monotonic() + 60.0  # a bound, not a timing claim
        quiet = 0  # windows of three check intervals in a row without a fetch: one alone may
        while quiet < 3:  # be a starved poll's pause on a loaded host, not its end
            before = len(state.requests)
            await asyncio.sleep(1.5)
            quiet = quiet + 1 if len(state.requests) == before else 0
            assert time.monotonic() < deadline, "still fetching a minute after the terminate"
        after = len(state.requests)
        await asyncio.sleep(3.0)
        assert len(state.requests) == after


async def _kinds_include(deps: WorkerDeps, task: str, kind: str) -> bool:
    return kind in [k for k, _ in await events(deps, task)]


async def _url_state(
    handle: WorkflowHandle[Any, Any], url: str, field: str, value: Any = True
) -> dict[str, Any] | None:
    urls: Any = (await status(handle)).detail["urls"]
    seen = urls.get(url) or {}
    return seen if seen.get(field) == value else None


async def _fetched(pages: Site, path: str, n: int) -> bool:
    return sum(1 for p, _ in pages.requests if p == path) >= n


async def _ended(handle: WorkflowHandle[Any, Any], n: int) -> list[PollResult] | None:
    results = await poll_results(handle)
    return results if len(results) >= n else None


async def test_a_webhook_gets_each_change_once_and_a_dead_one_is_counted_not_fatal(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps
) -> None:
    from ambient.clients.notify.registry import build_channels
    from tests.watches.test_lifecycle import GatedSite

    state = GatedSite()
    async with serve(state.app()) as base:
        state.pages["/news"] = article("Calm.")
        deps = loopback_deps
        # A 5 s send timeout: a delivery lease of 10 s, so the dead hook gives up in its first
        # poll (loopback allowed); the live hook's post fits it on a loaded host (one cut off
        # after it arrived is posted again).
        settings = deps.settings.model_copy(update={"notify_target_timeout": 5.0})
        deps.channels = build_channels(settings, deps.db, deps.http)
        hooks = [{"type": "webhook", "target": f"{base}/hook"}]
        dead = [{"type": "webhook", "target": "http://127.0.0.1:9/hook"}]
        async with running_worker(dev_env.client, deps) as worker:
            live = await start(dev_env, worker.task_queue, fast([f"{base}/news"], targets=hooks))
            gone = await start(dev_env, worker.task_queue, fast([f"{base}/news"], targets=dead))
            await eventually(lambda: _checks(live, 1))
            await eventually(lambda: _checks(gone, 1))
            state.pages["/news"] = article("Calm.", "Storm warning.")
            await eventually(lambda: _changes(live, 1))
            await eventually(lambda: _delivery_failed(gone), bound=90)
            for handle in (live, gone):
                await handle.signal("stop")
            live_final = TaskStatus.model_validate(await live.result())
            gone_final = TaskStatus.model_validate(await gone.result())
    assert len(state.hooks) == 1 and b"Storm warning." in state.hooks[0]
    assert live_final.detail["delivery_failures"] == 0
    assert gone_final.detail["delivery_failures"] == 1
    failure: Any = gone_final.detail["last_failure"]
    assert failure["what"] == "delivery of watch.change"
    gone_kinds = [kind for kind, _ in await events(deps, gone.id)]
    # The channel's own failure records, retried then given up (the task's deliveries show
    # them), then the watch's.
    assert gone_kinds == [
        "watch.change",
        "delivery.failed",
        "delivery.failed",
        "watch.delivery_failed",
        "watch.stopped",
    ]
    async with deps.db.session() as session:
        failed = await EventRepository(session).list(task=gone.id, kind="delivery.failed")
    assert [e.payload["retrying"] for e in reversed(failed)] == [True, False]
    # Both users' inboxes got the change once each (written with the event).
    assert (await inbox_titles(deps)).count(f"Changed: {base}/news") == 2


async def _delivery_failed(handle: WorkflowHandle[Any, Any]) -> bool:
    failures: Any = (await status(handle)).detail["delivery_failures"]
    return int(failures or 0) >= 1


async def test_a_continued_watch_keeps_its_life_grid_and_event_numbers(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    state, base = site
    state.pages["/news"] = article("One.")
    async with running_worker(dev_env.client, loopback_deps) as worker:
        handle = await start(
            dev_env,
            worker.task_queue,
            fast([f"{base}/news"]),
            window=1.5,
            continue_as_new_after_checks=3,
        )
        task = handle.id
        first_run = handle.first_execution_run_id or (await handle.describe()).run_id
        await eventually(lambda: _checks(handle, 1))
        life = (await status(handle)).detail["life"]
        for n in range(3):
            state.pages["/news"] = article(f"Update number {n} of the news.")
            await eventually(partial(_changes, handle, n + 1))
        await handle.signal("stop")
        final = TaskStatus.model_validate(await handle.result())
        runs = (await handle.describe()).run_id
    assert runs != first_run  # it continued as new at least once
    assert final.detail["life"] == life
    stored = [key for kind, key in await events(loopback_deps, task) if kind == "watch.change"]
    assert len(stored) == 3 and len(set(stored)) == 3
    assert [str(key).rsplit("/", 1)[1] for key in stored] == ["1", "2", "3"]


async def test_get_task_adds_the_running_polls_heartbeated_progress(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    from ambient.briefing.service import BriefingService
    from ambient.watches.polling import PollProgress
    from ambient.watches.service import TaskService

    state, base = site
    state.pages["/news"] = article("Steady.")
    async with running_worker(dev_env.client, loopback_deps) as worker:
        # A long window: the checks stay inside the running poll; only heartbeats say them.
        handle = await start(dev_env, worker.task_queue, fast([f"{base}/news"]), window=600.0)
        service = TaskService(
            dev_env.client,
            loopback_deps.settings,
            loopback_deps.db,
            briefings=BriefingService(dev_env.client, loopback_deps.settings, loopback_deps.db),
        )
        # The baseline poll heartbeats its one check too, just before it hands back: the
        # heartbeat meant here is the long poll's, which runs once the baseline is recorded.
        await eventually(lambda: _checks(handle, 1))
        beat = await eventually(lambda: _heartbeat(handle))
        shown = await service.get(USER, handle.id)
        recorded = await status(handle)
        # The server takes the long poll's next heartbeat minutes later: get saw this one.
        assert await _heartbeat(handle) == beat
        await handle.signal("stop")
        await handle.result()
    assert isinstance(beat, PollProgress)
    assert shown.checks == recorded.checks + beat.checks and beat.checks >= 1
    urls: Any = shown.detail["urls"]
    assert urls[f"{base}/news"]["last_outcome"] == "not_modified"
    assert recorded.checks == 1  # only the baseline was handed back
    # Where the validators came from ("not known", a hash) tells a reader nothing: not shown,
    # from the heartbeat or the workflow's record.
    recorded_urls: Any = recorded.detail["urls"]
    assert "validators_from" not in urls[f"{base}/news"]
    assert "validators_from" not in recorded_urls[f"{base}/news"]


async def test_get_task_never_counts_a_poll_that_hands_back_meanwhile_twice(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    """get reads the running poll's heartbeat (describe) and the recorded checks (query):
    a poll handing back between the two must not be counted in both."""
    from ambient.briefing.service import BriefingService
    from ambient.watches.service import TaskService

    state, base = site
    state.pages["/news"] = article("Steady.")
    async with running_worker(dev_env.client, loopback_deps) as worker:
        # Short windows: a hand-back every second, the next check a quarter second after it.
        handle = await start(
            dev_env, worker.task_queue, fast([f"{base}/news"]), every=0.25, window=1.0
        )
        service = TaskService(
            dev_env.client,
            loopback_deps.settings,
            loopback_deps.db,
            briefings=BriefingService(dev_env.client, loopback_deps.settings, loopback_deps.db),
        )
        await eventually(lambda: _checks(handle, 1))
        over, handbacks, recorded = [], 0, (await status(handle)).checks
        while handbacks < 10:  # gets straddling ten hand-backs (caught the bug 4 times of 4 at 8)
            shown = await service.get(USER, handle.id)
            made = len(state.requests)  # every check fetches the one page once
            if shown.checks > made:
                over.append((shown.checks, made))
            now = (await status(handle)).checks
            handbacks, recorded = handbacks + (now > recorded), now
        await handle.signal("stop")
        await handle.result()
    assert over == []


async def _heartbeat(handle: WorkflowHandle[Any, Any]) -> Any:
    from ambient.watches.polling import PollProgress

    described = await handle.describe()
    for pending in described.raw_description.pending_activities:
        payloads = pending.heartbeat_details.payloads
        if pending.activity_type.name == "poll_pages" and payloads:
            converter = handle._client.data_converter
            (progress,) = await converter.decode(payloads, [PollProgress])
            if progress.checks >= 1:
                return progress
    return None


async def test_a_poll_that_fails_for_good_is_recorded_and_the_watch_polls_again(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    from sqlalchemy import text

    state, base = site
    state.pages["/news"] = article("Before the outage.")
    db = loopback_deps.db
    async with running_worker(dev_env.client, loopback_deps) as worker:
        # Its tries fail 0.1, 0.2, 0.4 and 0.8 s apart (the product's 1, 2, 4 and 8 s).
        handle = await start(
            dev_env, worker.task_queue, fast([f"{base}/news"]), poll_retry_seconds=0.1
        )
        await eventually(lambda: _checks(handle, 1))
        async with db.session() as session:  # the poll's own table goes away
            await session.execute(text("ALTER TABLE watch_polls RENAME TO watch_polls_away"))
            await session.commit()
        await handle.signal("check_now")  # a new poll starts, and cannot read where it stood
        await eventually(
            lambda: _kinds_include(loopback_deps, handle.id, "watch.poll_failed"), bound=90
        )
        async with db.session() as session:
            await session.execute(text("ALTER TABLE watch_polls_away RENAME TO watch_polls"))
            await session.commit()
        state.pages["/news"] = article("After the outage, news again.")
        await eventually(lambda: _changes(handle, 1))
        await handle.signal("stop")
        final = TaskStatus.model_validate(await handle.result())
    kinds = [kind for kind, _ in await events(loopback_deps, handle.id)]
    assert kinds[0] == "watch.poll_failed" and kinds[-1] == "watch.stopped"
    assert "watch.change" in kinds
    async with db.session() as session:
        failed = await EventRepository(session).list(
            task=handle.id, kind="watch.poll_failed", limit=10
        )
    # The failure is recorded with its cause. (Not read from last_failure: on a loaded
    # machine a later poll that misses its 10 s hand-back is cancelled and shows there as
    # "Cancelled" — seen in CI.)
    assert any("watch_polls" in row.payload["error"] for row in failed)
    assert final.detail["last_failure"]["what"] == "poll"
    assert final.state == "stopped" and final.detail["event_failures"] >= 1


@pytest.mark.parametrize("baseline_asked", [False, True])
async def test_a_watch_whose_first_polls_failed_checks_again_once_the_outage_ends(
    baseline_asked: bool,
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,
    site: tuple[Site, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its first polls fail for good (the app database away) while its create's `baseline`
    update waits: that update stayed in the run after its caller gave up, and the run's
    continue-as-new, which waits for every handler, waited for good: no poll ran again, and
    the watch said "active"."""
    state, base = site
    state.pages["/news"] = article("First headline.")
    outage = {"on": True}
    real = polling.PollSession

    def session(*args: Any) -> Any:
        if outage["on"]:  # every poll fails for good
            raise ApplicationError("database unavailable", non_retryable=True)
        return real(*args)

    monkeypatch.setattr(polling, "PollSession", session)
    async with running_worker(dev_env.client, loopback_deps) as worker:
        handle = await start(
            dev_env,
            worker.task_queue,
            fast([f"{base}/news"]),
            continue_as_new_after_events=30,
        )
        # What TaskService.create does: it asks for the baseline, and gives up waiting.
        asked = None
        if baseline_asked:
            asked = await handle.start_update(
                "baseline", wait_for_stage=WorkflowUpdateStage.ACCEPTED, result_type=TaskStatus
            )

        async def at_its_end() -> bool:
            """The run's history is as long as continues it as new (or it continued)."""
            described = await handle.describe()
            info = described.raw_description.workflow_execution_info
            return info.history_length >= 30 or described.run_id != info.first_run_id

        await eventually(at_its_end, "the run's continue-as-new point, its polls failing")
        outage["on"] = False  # the database is back
        await eventually(lambda: _checks(handle, 1), "a check after the outage")
        answer = await asked.result() if asked is not None else None
        await handle.signal("stop")
        await handle.result()
    if answer is not None:
        first = dev_env.client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
        await save_history(first, "web_monitor_baseline_after_a_failed_poll")
        # The baseline answers once the first poll failed: no check, and why.
        assert (answer.state, answer.checks) == ("active", 0)
        assert "database unavailable" in answer.detail["last_error"], answer.detail


def workflows_only(env: WorkflowEnvironment, queue: str, deps: WorkerDeps) -> Worker:
    """A worker process that runs the workflows and their local activities (end_poll) only."""
    from activities.registry import build_activities
    from ambient import temporal
    from workflows.registry import ALL_WORKFLOWS

    return Worker(
        env.client,
        task_queue=queue,
        workflows=ALL_WORKFLOWS,
        activities=build_activities(deps),
        no_remote_activities=True,
        workflow_runner=temporal.workflow_runner(),
    )


def activities_only(env: WorkflowEnvironment, queue: str, deps: WorkerDeps) -> Worker:
    """A worker process that runs the other activities (poll_pages, the events) only."""
    from activities.registry import build_activities

    return Worker(env.client, task_queue=queue, activities=build_activities(deps))


async def test_a_control_reaches_a_poll_running_in_another_worker_process(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    """The workflow's worker has no poll of its own; the poll's worker reads the request.

    Two workers on one queue, as two processes would be: A runs the workflows and local
    activities (``end_poll``), B the other activities (``poll_pages``). A pause must
    end B's poll through the end request, not through Temporal's cancellation (which B would
    hear of only at its next heartbeat, minutes away in production).
    """
    state, base = site
    state.pages["/a"] = article("Page A.")
    queue = unique("tq")
    a = workflows_only(dev_env, queue, loopback_deps)
    b = activities_only(dev_env, queue, loopback_deps)
    async with a, b:
        handle = await start(dev_env, queue, fast([f"{base}/a"]), window=600.0)
        await eventually(lambda: _checks(handle, 1))
        await eventually(lambda: _fetched(state, "/a", 3))  # B's long poll is checking
        await handle.signal("pause")
        paused = await eventually(lambda: _ended(handle, 2))
        fetched = len(state.requests)
        await handle.signal("stop")
        await handle.result()
    assert paused[-1].ended == "control"
    history = await handle.fetch_history()
    kinds = [event.event_type for event in history.events]
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED not in kinds
    assert len(state.requests) == fetched  # nothing checked while paused


async def test_a_poll_cancelled_after_its_hand_back_wait_is_no_failure(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    """No process takes the poll (a loaded or missing activity worker): a pause asks it to
    hand back, END_POLL_WAIT passes, the workflow cancels it — asked for, so no failure."""
    state, base = site
    state.pages["/a"] = article("Page A.")
    handle, paused = await _paused_with_no_poller(dev_env, loopback_deps, loopback_deps, base)
    await save_history(handle, "web_monitor_poll_cancelled_after_hand_back_wait")
    assert paused.state == "paused"
    assert paused.detail["last_failure"] is None
    assert paused.detail["event_failures"] == 0
    assert "watch.poll_failed" not in [kind for kind, _ in await events(loopback_deps, handle.id)]
    assert state.requests == []  # nothing was checked: no process ran the poll


async def test_a_pause_while_the_database_is_down_still_ends_the_poll(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    """The poll runs where the workflow's worker cannot reach it and the database is down:
    end_poll's request could not be written, and it was tried again without end (the
    workflow task held, the pause never reaching the poll) until the database came back. Now
    it is tried twice; then the workflow cancels the poll through Temporal, as when no
    process answers."""
    state, base = site
    state.pages["/a"] = article("Page A.")
    down = replace(
        loopback_deps, db=Database(f"postgresql+asyncpg://x:y@127.0.0.1:{free_port()}/x")
    )
    handle, paused = await _paused_with_no_poller(dev_env, down, loopback_deps, base)
    await save_history(handle, "web_monitor_end_poll_database_down")
    assert paused.state == "paused"
    assert state.requests == []  # nothing was checked: no process ran the poll


async def _paused_with_no_poller(
    env: WorkflowEnvironment, workflow_deps: WorkerDeps, activity_deps: WorkerDeps, base: str
) -> tuple[WorkflowHandle[Any, Any], TaskStatus]:
    """A watch whose workflows-only worker (on workflow_deps) is paused before any process
    took its poll, until the workflow cancelled it; its status then, and the watch stopped."""
    queue = unique("tq")
    async with workflows_only(env, queue, workflow_deps):
        handle = await start(env, queue, fast([f"{base}/a"]))
        await eventually(lambda: _scheduled(handle, 1))
        await handle.signal("pause")
        await eventually(lambda: _settled_after_cancel(handle))
        paused = await status(handle)
        # The stop's own activities (the stopped event) need a worker that runs activities.
        async with activities_only(env, queue, activity_deps):
            await handle.signal("stop")
            await handle.result()
    return handle, paused


async def _settled_after_cancel(handle: WorkflowHandle[Any, Any]) -> bool:
    """The poll was cancelled before any process took it, and the workflow took that in."""
    kinds = [event.event_type for event in (await handle.fetch_history()).events]
    if EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED not in kinds:
        return False
    after = kinds[kinds.index(EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED) :]
    return EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED in after


async def test_a_watch_created_again_reports_its_changes_under_its_new_life(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    """Same task id twice: the second life starts from its own baseline and numbering."""
    state, base = site
    task = unique(f"web-monitor/{USER}/again")
    lives = []
    async with running_worker(dev_env.client, loopback_deps) as worker:
        for version in ("one", "two"):
            state.pages["/again"] = article(f"Before {version}.")
            handle = await start(dev_env, worker.task_queue, fast([f"{base}/again"]), task=task)
            await eventually(lambda h=handle: _checks(h, 1))
            state.pages["/again"] = article(f"After {version}.")
            await eventually(lambda h=handle: _changes(h, 1))
            lives.append((await status(handle)).detail["life"])
            await handle.signal("stop")
            await handle.result()
    assert lives[0] != lives[1]
    changes = [key for kind, key in await events(loopback_deps, task) if kind == "watch.change"]
    assert changes == [f"{task}/{lives[0]}/poll/1", f"{task}/{lives[1]}/poll/1"]
    titles = await inbox_titles(loopback_deps)
    assert len([t for t in titles if "again" in t]) == 2


async def scheduled_polls(
    handle: WorkflowHandle[Any, Any], history: WorkflowHistory | None = None
) -> list[tuple[PollRequest, Any]]:
    """Every poll the workflow scheduled (in ``history``, fetched if not given): its request and
    its ActivityTaskScheduled event."""
    history = history or await handle.fetch_history()
    converter = handle._client.data_converter
    polls = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled = event.activity_task_scheduled_event_attributes
            if scheduled.activity_type.name == "poll_pages":
                (request,) = await converter.decode(scheduled.input.payloads, [PollRequest])
                polls.append((request, event))
    return polls


async def poll_requests(handle: WorkflowHandle[Any, Any]) -> list[tuple[PollRequest, float]]:
    """Every poll the workflow scheduled: its request and heartbeat timeout (seconds)."""
    return [
        (
            request,
            event.activity_task_scheduled_event_attributes.heartbeat_timeout.ToTimedelta().total_seconds(),
        )
        for request, event in await scheduled_polls(handle)
    ]


async def _scheduled(handle: WorkflowHandle[Any, Any], n: int) -> bool:
    return len(await poll_requests(handle)) >= n


async def test_watches_created_together_hand_back_spread_over_their_window(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    state, base = site
    state.pages["/a"] = article("Page A.")
    async with running_worker(dev_env.client, loopback_deps) as worker:
        # Checked every minute: polls of sixty checks (an hour), the product's own window.
        handles = [
            await start(dev_env, worker.task_queue, fast([f"{base}/a"]), every=60.0, window=None)
            for _ in range(3)
        ]
        for handle in handles:
            await eventually(partial(_scheduled, handle, 2))
        await handles[0].signal("pause")
        await eventually(lambda: _ended(handles[0], 2))
        await handles[0].signal("resume")
        await eventually(partial(_scheduled, handles[0], 3))
        for handle in handles:
            await handle.signal("stop")
        for handle in handles:
            await handle.result()
    await save_history(handles[0], "web_monitor_phased")
    firsts = []
    for handle in handles:
        polls = await poll_requests(handle)
        baseline, first = polls[0][0], polls[1][0]
        assert baseline.first_only and not first.first_only
        # The run's first poll lasts a part of the window (at least one interval) ...
        assert 60.0 <= first.window_seconds <= 3600.0
        # ... and its heartbeat timeout is the backstop only (leases notice a dead worker
        # first): one whole window, so the server hears of the poll about once an hour.
        assert polls[1][1] == 3600.0
        firsts.append(first.window_seconds)
    # Drawn for each watch: they hand back apart. A draw under one interval is raised to it,
    # so two watches may meet there (a chance of 1 in 60 each: seen once in CI).
    above = [seconds for seconds in firsts if seconds > 60.0]
    assert len(set(firsts)) >= 2 and len(set(above)) == len(above), firsts
    later = (await poll_requests(handles[0]))[2][0]
    assert later.window_seconds == 3600.0  # then whole windows


def _end_first_sends() -> int:
    """End the sends a poll started for its own events (not those it sends again), as their
    process would at a restart; how many were running."""
    ended = 0
    for task in asyncio.all_tasks():
        coro: Any = task.get_coro()
        if getattr(coro, "__qualname__", "") != "PollReports.deliver" or coro.cr_frame is None:
            continue
        if not coro.cr_frame.f_locals.get("again"):
            task.cancel()
            ended += 1
    return ended


async def _handed_back_unsent(handle: WorkflowHandle[Any, Any]) -> bool:
    return any(r.undelivered for r in await poll_results(handle))


async def _hooks_since(state: Any, before: int, n: int) -> bool:
    return len(state.hooks) >= before + n


async def test_a_change_handed_back_unsent_is_delivered_once_though_its_watch_is_paused_or_stopped(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps
) -> None:
    """The change's webhook answered 500 and its delivery waited to try again when the watch
    was paused (or deleted): the poll handed the change back unsent, and the send then ended
    with its process (a restart). The next poll sends such a change again, but a paused watch
    had no next poll until it was resumed, and a stopped one none at all: the change was in
    the history and the webhook never got it."""
    from ambient.clients.notify.registry import build_channels
    from tests.watches.test_lifecycle import GatedSite

    state = GatedSite()
    deps = loopback_deps
    # A send ended in flight holds its delivery row for the target timeout plus 5 s.
    deps.settings = deps.settings.model_copy(update={"notify_target_timeout": 5.0})
    async with serve(state.app()) as base:
        deps.channels = build_channels(deps.settings, deps.db, deps.http)  # loopback allowed
        hooks = [{"type": "webhook", "target": f"{base}/hook"}]
        async with running_worker(dev_env.client, deps) as worker:
            for how in ("pause", "stop"):
                # A 500 is retried inside the poll (a 503 asks to be tried later: a
                # deliver-later run's, tests/notify/test_deliver_later.py).
                state.hook_status = 500
                state.pages[f"/{how}"] = article("Calm.")
                config = fast([f"{base}/{how}"], targets=hooks)
                handle = await start(dev_env, worker.task_queue, config, window=600.0)
                await eventually(partial(_checks, handle, 1))
                refused = len(state.hooks)
                state.pages[f"/{how}"] = article("Calm.", f"Storm warning ({how}).")
                await eventually(
                    partial(_hooks_since, state, refused, 1)
                )  # a 500: it waits to retry
                await handle.signal(how)
                await eventually(partial(_handed_back_unsent, handle))
                assert _end_first_sends() == 1
                state.hook_status = 200
                taken = len(state.hooks)
                await eventually(partial(_hooks_since, state, taken, 1))
                if how == "pause":
                    await eventually(partial(_undelivered_none, handle))
                    assert (await status(handle)).state == "paused"
                    await handle.signal("stop")
                final = TaskStatus.model_validate(await handle.result())
                keys = {json.loads(body)["idempotency_key"] for body in state.hooks[refused:]}
                (key,) = [k for kind, k in await events(deps, handle.id) if kind == "watch.change"]
                assert keys == {f"{key}:webhook:{base}/hook"}
                assert len(state.hooks) == taken + 1  # taken once
                assert f"Storm warning ({how})." in json.loads(state.hooks[-1])["body"]
                assert final.detail["delivery_failures"] == 0
                kinds = [kind for kind, _ in await events(deps, handle.id)]
                assert "watch.delivery_failed" not in kinds and kinds[-1] == "watch.stopped"
                await save_history(handle, f"web_monitor_held_sent_{how}")


async def _undelivered_none(handle: WorkflowHandle[Any, Any]) -> bool:
    results = await poll_results(handle)
    return bool(results) and not results[-1].undelivered


# A control reaching a stopped web monitor as it sends its held change: the history of each.
LATE_CONTROLS = {
    "check_now": "web_monitor_held_sent_check_now",
    "stop": "web_monitor_held_sent_stop_again",
    "checked_now": "web_monitor_held_sent_checked_now",
}


@pytest.mark.parametrize("control", list(LATE_CONTROLS))
async def test_a_control_reaching_a_stopped_web_monitor_leaves_its_held_change_sent(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,
    monkeypatch: pytest.MonkeyPatch,
    control: str,
) -> None:
    """A web monitor deleted while a change's webhook answered 500 sends that change again as
    it ends; a check now arriving meanwhile (the Web UI's signal button, a door that looked
    before the delete; the service's update, racing the delete) or a second stop (a repeated
    delete, a retried stop) woke the stopped watch, which asked that last poll to hand back:
    the change was handed back unsent and the watch ended, its webhook never given it. A
    signal cannot be refused: the stopping watch takes it and changes nothing; the update is
    refused, as an update of a stopped watch's config is."""
    from ambient.clients.notify.registry import build_channels
    from tests.watches.test_lifecycle import GatedSite

    asked_to_end: list[int | None] = []
    end_poll = PagePoller.end_poll

    @activity.defn(name="end_poll")
    async def counted_end(self, request: EndPoll) -> bool:  # type: ignore[no-untyped-def]
        asked_to_end.append(request.poll)
        return await end_poll(self, request)

    monkeypatch.setattr(PagePoller, "end_poll", counted_end)
    state, deps = GatedSite(), loopback_deps
    deps.settings = deps.settings.model_copy(update={"notify_target_timeout": 5.0})
    async with serve(state.app()) as base:
        deps.channels = build_channels(deps.settings, deps.db, deps.http)  # loopback allowed
        async with running_worker(dev_env.client, deps) as worker:
            state.hook_status = 500
            state.pages["/late"] = article("Calm.")
            hooks = [{"type": "webhook", "target": f"{base}/hook"}]
            config = fast([f"{base}/late"], targets=hooks)
            handle = await start(dev_env, worker.task_queue, config, window=600.0)
            await eventually(partial(_checks, handle, 1))
            refused = len(state.hooks)
            state.pages["/late"] = article("Calm.", "Storm warning (late).")
            await eventually(partial(_hooks_since, state, refused, 1))  # a 500: it waits
            state.hook_gate.clear()  # the change sent again as the watch ends: held
            state.hook_waiting.clear()
            try:
                await handle.signal("stop")
                await eventually(partial(_handed_back_unsent, handle))
                assert _end_first_sends() == 1
                stopped_poll = list(asked_to_end)
                state.hook_status = 200
                await asyncio.wait_for(state.hook_waiting.wait(), HANG)
                refusal = None
                if control == "checked_now":
                    # Answered once its workflow task is done: the end_poll it asked, run.
                    try:
                        await handle.execute_update("checked_now", result_type=TaskStatus)
                    except WorkflowUpdateFailedError as refused:
                        refusal = str(refused.cause)
                else:
                    await handle.signal(control)
                    await eventually(partial(_signal_taken, handle), f"the {control} taken")
                assert asked_to_end == stopped_poll  # the last poll's send goes on
            finally:
                state.hook_gate.set()
            final = TaskStatus.model_validate(await asyncio.wait_for(handle.result(), HANG))
            await save_history(handle, LATE_CONTROLS[control])
    if control == "checked_now":
        assert refusal and refusal.endswith("the task is stopped; create it again to restart it")
    assert not (await poll_results(handle))[-1].undelivered
    async with deps.db.session() as session:
        rows = await DeliveryRepository(session).list(user=USER, task=handle.id)
    assert {r.channel: r.status for r in rows} == {"inbox": "sent", "webhook": "sent"}
    assert final.detail["delivery_failures"] == 0


async def _signal_taken(handle: WorkflowHandle[Any, Any]) -> bool:
    """Whether a workflow task completed after the run's last signal (the signal handled)."""
    events = [e.event_type async for e in handle.fetch_history_events()]
    signalled = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    last = max(i for i, e in enumerate(events) if e == signalled)
    return EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED in events[last:]
